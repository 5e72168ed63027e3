//! Structured diffs of JSON documents (trust, inline and lifecycle
//! policies) for people: both sides in canonical form ([`canonical`]), keys
//! in sorted order, one line per member, `-`/`+` only on what changes.
//!
//! Pure: [`diff`] turns two optional documents into [`Line`]s; the plan
//! renderers decide where the marks go (beside the text on a terminal, in
//! the first column of a Markdown `diff` block) and whether to colour them.
//!
//! - Statements are a set: unchanged ones collapse into one note line
//!   (`# (2 unchanged statements hidden)`), a changed one is paired with its
//!   old self (same `Sid`, else most in common) and diffed member by member.
//! - Sets of strings (`Action`, `Resource`, principals, any list of plain
//!   values) show each element once, marked when added or removed.
//! - Other lists (a lifecycle policy's `rules`) pair by position.
//! - A created document is all `+`, a deleted one all `-`.
//!
//! Members end in a comma, as in Terraform's plans, so adding an element
//! never marks its neighbour as changed.

use serde_json::{Map, Value};

use super::canonical::canonical;

/// How a line of the diff changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Same,
    Add,
    Remove,
}

impl Mark {
    /// The character that marks it (`' '`, `'+'`, `'-'`).
    pub fn sign(self) -> char {
        match self {
            Self::Same => ' ',
            Self::Add => '+',
            Self::Remove => '-',
        }
    }
}

/// One line of a diff: its mark, its nesting depth and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub mark: Mark,
    pub depth: usize,
    pub text: String,
}

/// Lists and maps of plain values whose one-line form is at most this long
/// stay on one line when they do not change.
const INLINE_WIDTH: usize = 60;

/// The diff of `before` → `after`; `None` is a document that does not exist
/// (so one side only is a create or a delete). Two absent documents give
/// no lines.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<Line> {
    let mut out = Vec::new();
    let (before, after) = (before.map(canonical), after.map(canonical));
    match (&before, &after) {
        (Some(b), Some(a)) => diff_value(None, b, a, 0, false, &mut out),
        (Some(b), None) => whole(None, b, Mark::Remove, 0, false, &mut out),
        (None, Some(a)) => whole(None, a, Mark::Add, 0, false, &mut out),
        (None, None) => {}
    }
    out
}

/// Whether the diff marks anything (two spellings of one meaning do not).
pub fn changes(lines: &[Line]) -> bool {
    lines.iter().any(|l| l.mark != Mark::Same)
}

fn push(out: &mut Vec<Line>, mark: Mark, depth: usize, text: String) {
    out.push(Line { mark, depth, text });
}

fn prefix(key: Option<&str>) -> String {
    key.map_or_else(String::new, |k| format!("{}: ", quote(k)))
}

fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn comma(trailing: bool) -> &'static str {
    if trailing { "," } else { "" }
}

fn is_plain(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// A value of plain members on one line, with spaces after `,` and `:`.
fn one_line(v: &Value) -> Option<String> {
    let text = match v {
        Value::Array(items) if items.iter().all(is_plain) => format!(
            "[{}]",
            items
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) if map.values().all(is_plain) => format!(
            "{{{}}}",
            sorted(map)
                .map(|(k, v)| format!("{}: {v}", quote(k)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other if is_plain(other) => other.to_string(),
        _ => return None,
    };
    (text.len() <= INLINE_WIDTH).then_some(text)
}

fn sorted(map: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.into_iter()
}

/// `v` in full, every line with `mark`.
fn whole(
    key: Option<&str>,
    v: &Value,
    mark: Mark,
    depth: usize,
    trailing: bool,
    out: &mut Vec<Line>,
) {
    let p = prefix(key);
    if let Some(text) = one_line(v) {
        push(out, mark, depth, format!("{p}{text}{}", comma(trailing)));
        return;
    }
    match v {
        Value::Array(items) => {
            push(out, mark, depth, format!("{p}["));
            for item in items {
                whole(None, item, mark, depth + 1, true, out);
            }
            push(out, mark, depth, format!("]{}", comma(trailing)));
        }
        Value::Object(map) => {
            push(out, mark, depth, format!("{p}{{"));
            for (k, item) in sorted(map) {
                whole(Some(k), item, mark, depth + 1, true, out);
            }
            push(out, mark, depth, format!("}}{}", comma(trailing)));
        }
        _ => unreachable!("plain values fit on one line"),
    }
}

fn diff_value(
    key: Option<&str>,
    before: &Value,
    after: &Value,
    depth: usize,
    trailing: bool,
    out: &mut Vec<Line>,
) {
    if before == after {
        whole(key, after, Mark::Same, depth, trailing, out);
        return;
    }
    let p = prefix(key);
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            push(out, Mark::Same, depth, format!("{p}{{"));
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                match (b.get(k), a.get(k)) {
                    (Some(bv), Some(av)) => diff_value(Some(k), bv, av, depth + 1, true, out),
                    (Some(bv), None) => whole(Some(k), bv, Mark::Remove, depth + 1, true, out),
                    (None, Some(av)) => whole(Some(k), av, Mark::Add, depth + 1, true, out),
                    (None, None) => {}
                }
            }
            push(out, Mark::Same, depth, format!("}}{}", comma(trailing)));
        }
        (Value::Array(b), Value::Array(a)) => {
            push(out, Mark::Same, depth, format!("{p}["));
            if key == Some("Statement") {
                diff_statements(b, a, depth + 1, out);
            } else if b.iter().chain(a).all(is_plain) {
                diff_set(b, a, depth + 1, out);
            } else {
                for i in 0..b.len().max(a.len()) {
                    match (b.get(i), a.get(i)) {
                        (Some(bv), Some(av)) => diff_value(None, bv, av, depth + 1, true, out),
                        (Some(bv), None) => whole(None, bv, Mark::Remove, depth + 1, true, out),
                        (None, Some(av)) => whole(None, av, Mark::Add, depth + 1, true, out),
                        (None, None) => {}
                    }
                }
            }
            push(out, Mark::Same, depth, format!("]{}", comma(trailing)));
        }
        _ => {
            whole(key, before, Mark::Remove, depth, trailing, out);
            whole(key, after, Mark::Add, depth, trailing, out);
        }
    }
}

/// Lists of plain values: each element once, in sorted order.
fn diff_set(before: &[Value], after: &[Value], depth: usize, out: &mut Vec<Line>) {
    let mut all: Vec<&Value> = before.iter().chain(after).collect();
    all.sort_by_key(|v| v.to_string());
    all.dedup();
    for v in all {
        let mark = match (before.contains(v), after.contains(v)) {
            (true, true) => Mark::Same,
            (true, false) => Mark::Remove,
            _ => Mark::Add,
        };
        push(out, mark, depth, format!("{v},"));
    }
}

/// Statements are a set: equal ones are hidden (counted in a note), the
/// rest are paired with their old selves where one can be found.
fn diff_statements(before: &[Value], after: &[Value], depth: usize, out: &mut Vec<Line>) {
    let mut removed: Vec<&Value> = before.iter().collect();
    let mut added = Vec::new();
    let mut unchanged = 0;
    for st in after {
        if let Some(i) = removed.iter().position(|b| *b == st) {
            removed.remove(i);
            unchanged += 1;
        } else {
            added.push(st);
        }
    }
    if unchanged > 0 {
        let s = if unchanged == 1 { "" } else { "s" };
        push(
            out,
            Mark::Same,
            depth,
            format!("# ({unchanged} unchanged statement{s} hidden)"),
        );
    }
    // Changed statements, then those that go, then those that come.
    let mut new = Vec::new();
    for st in added {
        match pair(st, &removed) {
            Some(i) => {
                let old = removed.remove(i);
                diff_value(None, old, st, depth, true, out);
            }
            None => new.push(st),
        }
    }
    for old in removed {
        whole(None, old, Mark::Remove, depth, true, out);
    }
    for st in new {
        whole(None, st, Mark::Add, depth, true, out);
    }
}

/// The old statement `st` most likely is: the one with its `Sid`, else the
/// one sharing most members (at least two, so unrelated statements show
/// as one removed and one added).
fn pair(st: &Value, candidates: &[&Value]) -> Option<usize> {
    if let Some(sid) = st.get("Sid")
        && let Some(i) = candidates.iter().position(|c| c.get("Sid") == Some(sid))
    {
        return Some(i);
    }
    let shared = |c: &Value| -> usize {
        match (st, c) {
            (Value::Object(a), Value::Object(b)) => {
                a.iter().filter(|(k, v)| b.get(*k) == Some(*v)).count()
            }
            _ => 0,
        }
    };
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.get("Sid").is_none() || st.get("Sid").is_none())
        .map(|(i, c)| (shared(c), i))
        .filter(|(n, _)| *n >= 2)
        .max_by_key(|(n, i)| (*n, std::cmp::Reverse(*i)))
        .map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Lines as a Markdown `diff` block would hold them.
    fn show(lines: &[Line]) -> String {
        lines
            .iter()
            .map(|l| format!("{}{}{}\n", l.mark.sign(), "  ".repeat(l.depth), l.text))
            .collect()
    }

    fn trust(principals: &[&str]) -> Value {
        json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "AccountRoot", "Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": principals}},
            {"Effect": "Allow", "Action": "sts:TagSession", "Principal": {"AWS": "x"}}]})
    }

    #[test]
    fn a_new_principal_is_one_added_line_in_its_statement() {
        let before = trust(&["arn:aws:iam::123456789012:root"]);
        let after = trust(&[
            "arn:aws:iam::123456789012:user/ci",
            "arn:aws:iam::123456789012:root",
        ]);
        assert_eq!(
            show(&diff(Some(&before), Some(&after))),
            r#" {
   "Statement": [
     # (1 unchanged statement hidden)
     {
       "Action": ["sts:AssumeRole"],
       "Effect": "Allow",
       "Principal": {
         "AWS": [
           "arn:aws:iam::123456789012:root",
+          "arn:aws:iam::123456789012:user/ci",
         ],
       },
       "Sid": "AccountRoot",
     },
   ],
   "Version": "2012-10-17",
 }
"#
        );
    }

    #[test]
    fn a_changed_value_is_a_removed_and_an_added_line_in_place() {
        let rule = |n: u32| {
            json!({"rules": [{"rulePriority": 1, "selection": {"countNumber": n, "tagStatus": "any"},
                              "action": {"type": "expire"}}]})
        };
        assert_eq!(
            show(&diff(Some(&rule(100)), Some(&rule(30)))),
            r#" {
   "rules": [
     {
       "action": {"type": "expire"},
       "rulePriority": 1,
       "selection": {
-        "countNumber": 100,
+        "countNumber": 30,
         "tagStatus": "any",
       },
     },
   ],
 }
"#
        );
    }

    #[test]
    fn created_and_deleted_documents_are_shown_whole() {
        let doc = json!({"Statement": [{"Effect": "Allow", "Action": "a", "Resource": "*"}]});
        let created = diff(None, Some(&doc));
        assert!(created.iter().all(|l| l.mark == Mark::Add), "{created:?}");
        let deleted = diff(Some(&doc), None);
        assert!(deleted.iter().all(|l| l.mark == Mark::Remove));
        assert_eq!(created.len(), deleted.len());
        assert_eq!(created.len(), 9, "{}", show(&created));
        assert!(diff(None, None).is_empty());
    }

    #[test]
    fn spelling_alone_is_no_change_and_unrelated_statements_are_not_paired() {
        let a = json!({"Statement": [{"Effect": "Allow", "Action": ["b", "a"], "Resource": "r"}]});
        let b = json!({"Statement": {"Resource": ["r"], "Action": ["a", "b"], "Effect": "Allow"}});
        assert!(!changes(&diff(Some(&a), Some(&b))));

        let c = json!({"Statement": [{"Effect": "Deny", "Action": "z", "Resource": "q"}]});
        let text = show(&diff(Some(&a), Some(&c)));
        // One whole statement out, one whole statement in: no member-level
        // diff between statements that share only their shape.
        assert!(text.contains("+      \"Action\": [\"z\"],"), "{text}");
        assert!(
            text.contains("-      \"Action\": [\"a\", \"b\"],"),
            "{text}"
        );
        assert!(text.find("-      \"Action\"") < text.find("+      \"Action\""));
    }

    #[test]
    fn a_statement_is_paired_by_sid_before_likeness() {
        let before = json!({"Statement": [
            {"Sid": "Push", "Effect": "Allow", "Action": ["a", "b"], "Resource": "r"},
            {"Sid": "Other", "Effect": "Allow", "Action": ["a", "b", "c"], "Resource": "s"}]});
        let after = json!({"Statement": [
            {"Sid": "Push", "Effect": "Allow", "Action": ["a", "b", "c"], "Resource": "r"},
            {"Sid": "Other", "Effect": "Allow", "Action": ["a", "b", "c"], "Resource": "s"}]});
        let lines = diff(Some(&before), Some(&after));
        let marked: Vec<_> = lines.iter().filter(|l| l.mark != Mark::Same).collect();
        assert_eq!(marked.len(), 1, "{}", show(&lines));
        assert_eq!(marked[0].text, "\"c\",");
        assert!(show(&lines).contains("# (1 unchanged statement hidden)"));
    }
}
