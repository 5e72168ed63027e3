//! Plan rendering of policy documents as AWS may hand them back: two JSON
//! documents (split at the first NUL; a half that is not JSON is taken as
//! a string). The diff keeps its contract (`diff::check_contract`: each
//! side is its document, every member once, marked right, no hidden
//! characters) and so does `render::check_policy_rendering` (the meanings,
//! the text, Markdown and JSON plans of every policy action return, show
//! every diff line and hold no hidden character).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rise_registry::reconcile::{diff, render};
use serde_json::Value;

fn document(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fuzz_target!(|data: &[u8]| {
    let (before, after) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let (before, after) = (document(before), document(after));
    // The contract covers documents whose only `Statement` is at the top,
    // as in IAM; nested ones must still render.
    let nested = |v: &Value| {
        let text = v.to_string();
        let top = usize::from(v.get("Statement").is_some());
        text.matches("\"Statement\"").count() > top
    };
    if !nested(&before) && !nested(&after) {
        if let Err(e) = diff::check_contract(&before, &after) {
            panic!("{e}");
        }
    }
    if let Err(e) = render::check_policy_rendering(&before, &after) {
        panic!("{e}\nbefore: {before}\nafter: {after}");
    }
});
