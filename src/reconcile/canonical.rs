//! Policy documents compared by meaning, not by text.
//!
//! IAM treats `"Action": "a"` and `"Action": ["a"]` alike, and the order of
//! statements, actions, resources and principals carries no meaning; AWS
//! also hands policies back reordered and (for trust policies) URL-encoded.
//! [`canonical`] maps every equivalent spelling to one value, so a setup
//! that has not changed never shows a diff.

use serde_json::{Map, Value};

/// Keys whose value is a set of strings (a string or a list in IAM).
const SET_KEYS: &[&str] = &[
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "AWS",
    "Service",
    "Federated",
    "CanonicalUser",
];

/// The canonical form of a policy document.
pub(crate) fn canonical(doc: &Value) -> Value {
    match doc {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let value = if SET_KEYS.contains(&key.as_str()) {
                    as_sorted_set(value)
                } else if key == "Statement" {
                    statements(value)
                } else if key == "Condition" {
                    conditions(value)
                } else {
                    canonical(value)
                };
                out.insert(key.clone(), value);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// A string or list of strings as a sorted, de-duplicated list.
fn as_sorted_set(value: &Value) -> Value {
    let mut items: Vec<Value> = match value {
        Value::Array(items) => items.iter().map(canonical).collect(),
        other => vec![canonical(other)],
    };
    items.sort_by_key(|v| v.to_string());
    items.dedup();
    Value::Array(items)
}

/// A condition block: each operator's keys hold a set of values (IAM
/// matches any of them, and `"v"` is `["v"]`). A block of another shape
/// is kept as it is, only canonical inside.
fn conditions(value: &Value) -> Value {
    let Value::Object(ops) = value else {
        return canonical(value);
    };
    let ops = ops
        .iter()
        .map(|(op, keys)| {
            let keys = match keys {
                Value::Object(keys) => Value::Object(
                    keys.iter()
                        .map(|(k, v)| (k.clone(), as_sorted_set(v)))
                        .collect(),
                ),
                other => canonical(other),
            };
            (op.clone(), keys)
        })
        .collect();
    Value::Object(ops)
}

/// Statements in a stable order (a single statement object becomes a list).
fn statements(value: &Value) -> Value {
    let mut items: Vec<Value> = match value {
        Value::Array(items) => items.iter().map(canonical).collect(),
        other => vec![canonical(other)],
    };
    items.sort_by_key(|v| v.to_string());
    Value::Array(items)
}

/// Whether two documents mean the same.
pub fn same(a: &Value, b: &Value) -> bool {
    canonical(a) == canonical(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_and_single_values_do_not_matter() {
        let a = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ecr:B", "ecr:A"], "Resource": "r"},
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": ["y", "x"]}}]});
        let b = json!({"Statement": [
            {"Principal": {"AWS": ["x", "y"]}, "Action": ["sts:AssumeRole"], "Effect": "Allow"},
            {"Resource": ["r"], "Action": ["ecr:A", "ecr:B", "ecr:A"], "Effect": "Allow"}],
            "Version": "2012-10-17"});
        assert!(same(&a, &b));
        // Condition values are sets too: one value is a list of one.
        let cond = |v: Value| {
            json!({"Statement": [{"Effect": "Allow", "Action": "a",
            "Condition": {"StringEquals": {"k": v}}}]})
        };
        assert!(same(
            &cond(json!(["y", "x"])),
            &cond(json!(["x", "y", "x"]))
        ));
        assert!(same(&cond(json!("x")), &cond(json!(["x"]))));
        assert!(!same(&cond(json!("x")), &cond(json!(["x", "y"]))));
    }

    #[test]
    fn meaning_still_matters() {
        let base = json!({"Statement": [{"Effect": "Allow", "Action": "ecr:A", "Resource": "r"}]});
        for other in [
            json!({"Statement": [{"Effect": "Deny", "Action": "ecr:A", "Resource": "r"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "ecr:B", "Resource": "r"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "ecr:A", "Resource": "*"}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "ecr:A", "Resource": "r"},
                                 {"Effect": "Allow", "Action": "ecr:C", "Resource": "r"}]}),
        ] {
            assert!(!same(&base, &other), "{other}");
        }
    }
}
