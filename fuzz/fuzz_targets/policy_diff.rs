//! Plan rendering of policy documents as AWS may hand them back: two JSON
//! documents (split at the first NUL; a half that is not JSON is taken as
//! a string). The diff keeps its contract (`diff::check_contract`: each
//! side is its document, every member once, marked right, no hidden
//! characters) and the text, Markdown and JSON plans and the meanings of
//! every policy action return without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rise_registry::reconcile::diff;
use rise_registry::reconcile::meaning::meanings;
use rise_registry::reconcile::plan::{Action, Plan, RoleKind};
use rise_registry::reconcile::render::{TextOptions, to_json, to_markdown, to_text};
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
    let name = "rise-backend".to_string();
    let plan = Plan {
        actions: vec![
            Action::UpdateTrust {
                role: RoleKind::Controller,
                name: name.clone(),
                before: before.clone(),
                after: after.clone(),
            },
            Action::PutRolePolicy {
                role: RoleKind::Push,
                name: name.clone(),
                policy: "rise-push".into(),
                before: Some(before.clone()),
                after: after.clone(),
            },
            Action::DeleteRolePolicy {
                role: RoleKind::Push,
                name,
                policy: "rise-old".into(),
                before,
            },
        ],
        ..Plan::default()
    };
    for action in &plan.actions {
        assert!(!meanings(action).is_empty());
    }
    let options = TextOptions::default();
    let _ = (to_text(&plan, options), to_markdown(&plan, options), to_json(&plan));
});
