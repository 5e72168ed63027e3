//! Property tests of the plan renderers over generated documents: IAM
//! policies of every shape AWS accepts or a hand edit leaves behind (one
//! statement as an object, `Principal: "*"`, `NotAction`, conditions with
//! lists, no `Sid`), and JSON of any shape (long and unicode strings, keys
//! that need quoting, numbers, `null`, empty and nested lists and maps).
//!
//! For every pair: [`diff::check_contract`] holds (each side of the diff
//! is its document, every member once, marked right), and so does
//! [`render::check_policy_rendering`] (the meanings, the text, Markdown
//! and JSON plans return, show every diff line, and keep control and
//! bidirectional characters out).

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{diff, render};

/// Strings a policy may hold: ARNs of real length (an EKS OIDC provider),
/// a 2,000-character condition value, right-to-left and combining
/// characters, quotes, backslashes, backticks, newlines and escapes.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("*".to_string()),
        Just(
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
                .to_string()
        ),
        Just("oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE:sub".to_string()),
        Just("system:serviceaccount:rise-system:rise-registry".to_string()),
        Just("arn:aws:ecr:us-east-1:123456789012:repository/rise-apps/*".to_string()),
        Just("x".repeat(2000)),
        Just("\u{202e}txet desrever\u{202c} and e\u{301}\u{200b}".to_string()),
        Just("```\n\"quoted\" back\\slash\t\u{1b}[31m\u{7f}\u{9b}2J".to_string()),
        "[a-z:/*.-]{0,12}",
        "\\PC{0,80}",
        any::<String>(),
    ]
}

/// Keys: IAM's own, ones that need quoting, and any string. `Statement`
/// is left to [`policy`], which puts it at the top, where IAM has it.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Sid",
            "Effect",
            "Action",
            "NotAction",
            "Resource",
            "NotResource",
            "Principal",
            "NotPrincipal",
            "Condition",
            "AWS",
            "Federated",
            "Service",
            "StringEquals",
            "StringLike",
            "rules",
            "selection",
            "countNumber",
            "",
            "key with \"quotes\" and spaces",
            "ключ",
            "\u{202e}kcab",
        ])
        .prop_map(str::to_string),
        string().prop_filter("Statement is placed by policy()", |k| k != "Statement"),
    ]
}

fn plain() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        string().prop_map(Value::from),
    ]
}

/// Any JSON value, up to a few levels deep and a few dozen members wide.
fn value() -> impl Strategy<Value = Value> {
    plain().prop_recursive(5, 96, 12, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A string, or a list of them (IAM's sets).
fn strings() -> impl Strategy<Value = Value> {
    prop_oneof![
        string().prop_map(Value::from),
        prop::collection::vec(string(), 0..5).prop_map(|v| json!(v)),
    ]
}

fn statement() -> impl Strategy<Value = Value> {
    let principal = prop_oneof![
        Just(json!("*")),
        prop::collection::btree_map(
            prop::sample::select(vec!["AWS", "Federated", "Service"]).prop_map(str::to_string),
            strings(),
            0..3
        )
        .prop_map(|m| json!(m)),
        value(),
    ];
    let condition = prop::collection::btree_map(
        prop::sample::select(vec!["StringEquals", "StringLike", "ArnLike", "Bool"])
            .prop_map(str::to_string),
        prop::collection::btree_map(string(), strings(), 0..3),
        0..3,
    )
    .prop_map(|m| json!(m));
    (
        prop::option::of(prop::sample::select(vec!["A", "B", "IrsaTrust", ""])),
        prop::sample::select(vec!["Allow", "Deny"]),
        any::<bool>(),
        strings(),
        prop::option::of(strings()),
        prop::option::of(principal),
        prop::option::of(condition),
        prop::option::of((key(), value())),
    )
        .prop_map(
            |(sid, effect, not, actions, resource, principal, condition, extra)| {
                let mut st = Map::new();
                if let Some(sid) = sid {
                    st.insert("Sid".into(), sid.into());
                }
                st.insert("Effect".into(), effect.into());
                st.insert(if not { "NotAction" } else { "Action" }.into(), actions);
                for (k, v) in [
                    ("Resource", resource),
                    ("Principal", principal),
                    ("Condition", condition),
                ] {
                    if let Some(v) = v {
                        st.insert(k.into(), v);
                    }
                }
                if let Some((k, v)) = extra {
                    st.insert(k, v);
                }
                Value::Object(st)
            },
        )
}

/// A policy document: its statements as a list, or one statement as an
/// object (as IAM allows), sometimes a statement that is not an object.
fn policy(statements: Vec<Value>, single: bool) -> Value {
    let statement = match statements.as_slice() {
        [one] if single => one.clone(),
        _ => Value::Array(statements),
    };
    json!({"Version": "2012-10-17", "Statement": statement})
}

/// Two policies that share some statements and pair others by `Sid`.
fn policy_pair() -> impl Strategy<Value = (Value, Value)> {
    let stmts = || prop::collection::vec(prop_oneof![9 => statement(), 1 => value()], 0..4);
    (
        stmts(),
        stmts(),
        stmts(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(shared, only_before, only_after, single_b, single_a, reorder)| {
                let mut before: Vec<Value> = shared.iter().chain(&only_before).cloned().collect();
                let mut after: Vec<Value> = only_after.iter().chain(&shared).cloned().collect();
                if reorder {
                    before.reverse();
                    let turn = after.len().min(1);
                    after.rotate_left(turn);
                }
                (policy(before, single_b), policy(after, single_a))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn diffs_of_policies_keep_their_contract((before, after) in policy_pair()) {
        diff::check_contract(&before, &after).map_err(TestCaseError::fail)?;
        render::check_policy_rendering(&before, &after).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn diffs_of_any_json_keep_their_contract(before in value(), after in value()) {
        diff::check_contract(&before, &after).map_err(TestCaseError::fail)?;
        render::check_policy_rendering(&before, &after).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn a_document_diffed_with_itself_marks_nothing(doc in value()) {
        prop_assert!(!diff::changes(&diff::diff(Some(&doc), Some(&doc))));
        diff::check_contract(&doc, &doc).map_err(TestCaseError::fail)?;
    }
}
