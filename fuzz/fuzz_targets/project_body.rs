//! The projects API's input: a request body read as a project's rules, and
//! an `If-Match` entity tag. Any bytes are answered without a panic; a
//! body that is accepted reads back the same when stored and read again
//! (what the store keeps is what was checked); an entity tag that parses
//! prints back to the same tag.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rise_registry::config::project_spec;
use rise_registry::store::Etag;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(tag) = Etag::parse(text) {
            assert_eq!(Etag::parse(&tag.to_string()), Some(tag), "{text:?}");
        }
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(spec) = project_spec(&body, None) {
        let stored = serde_json::json!({
            "access": body.get("access").cloned().unwrap_or_else(|| serde_json::json!([])),
            "pull_access": body.get("pull_access").cloned().unwrap_or_else(|| serde_json::json!([])),
        });
        let again = project_spec(&stored, None).expect("the stored form reads back");
        assert_eq!(again, spec);
    }
});
