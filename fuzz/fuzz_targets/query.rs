//! The credential endpoint's `project` and `access` query parameters.
//! Whatever project is accepted is a valid project name: it parses again to
//! itself and holds nothing that could widen an ARN or a path. `pull` is
//! read only from exactly `access=pull`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rise_registry::naming::ProjectName;
use rise_registry::auth::AccessKind;
use rise_registry::serve::credentials::{access_param, project_param};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(project) = project_param(Some(query)) {
        let name = project.as_str();
        assert_eq!(ProjectName::parse(name).as_ref(), Ok(&project));
        assert!(!name.is_empty() && name.len() <= 256);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)),
            "{name:?}"
        );
        assert!(!name.contains(".."));
    }
    if access_param(Some(query)) == Ok(AccessKind::Pull) {
        assert!(query.split('&').any(|pair| pair == "access=pull"), "{query:?}");
    }
});
