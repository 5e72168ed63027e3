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
    text(&Value::String(s.to_string()))
}

/// `v` as JSON, with the characters that would make a line read other
/// than it is written escaped as `\uXXXX` (still valid JSON, the same
/// value): bidirectional controls, which reorder what a terminal or a
/// pull request shows ("Trojan Source"), other invisible format
/// characters, and the control characters JSON leaves as they are (DEL
/// and the C1 range, where some terminals read `U+009B` as the start of an
/// escape sequence).
pub(crate) fn text(v: &Value) -> String {
    escape_hidden(&v.to_string(), |c, out| {
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    })
    .into_owned()
}

/// `s` with control characters (a terminal's escape sequences, line
/// breaks) and [invisible format characters](is_deceptive) written as
/// `\u{..}`, for prose that quotes values from a document (a plan's
/// meanings): one line, shown as it reads.
pub(crate) fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    escape_hidden(s, |c, out| {
        out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)))
    })
}

/// Whether `c` would make a line read other than it is written: a control
/// character or an [invisible format character](is_deceptive).
fn hidden(c: char) -> bool {
    c.is_control() || is_deceptive(c)
}

/// `s` with each [hidden] character written out by `escape`; `s` itself
/// when it holds none.
fn escape_hidden(s: &str, escape: impl Fn(char, &mut String)) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(hidden) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 12);
    for c in s.chars() {
        if hidden(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// Invisible characters that change how text around them is shown:
/// bidirectional marks, embeddings, overrides and isolates, zero-width and
/// filler characters (the soft hyphen, Hangul fillers), interlinear
/// annotation marks, the tag block, and the byte-order mark.
fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{034f}'
            | '\u{061c}'
            | '\u{115f}'..='\u{1160}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{3164}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

fn comma(trailing: bool) -> &'static str {
    if trailing { "," } else { "" }
}

fn is_plain(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// `v` on one line: always for a plain value, however long (a line that
/// is long beats a value that is cut); for a list or map of plain values
/// with spaces after `,` and `:`, when it is at most [`INLINE_WIDTH`]
/// long; otherwise `None`, and the caller spreads it over lines.
fn one_line(v: &Value) -> Option<String> {
    let line = match v {
        Value::Array(items) if items.iter().all(is_plain) => format!(
            "[{}]",
            items.iter().map(text).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) if map.values().all(is_plain) => format!(
            "{{{}}}",
            sorted(map)
                .map(|(k, v)| format!("{}: {}", quote(k), text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(_) | Value::Object(_) => return None,
        plain => return Some(text(plain)),
    };
    (line.chars().count() <= INLINE_WIDTH).then_some(line)
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
        // `one_line` holds every plain value; kept total all the same.
        plain => push(
            out,
            mark,
            depth,
            format!("{p}{}{}", text(plain), comma(trailing)),
        ),
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

/// Lists of plain values: each element of either side once. Sets (both
/// sides sorted without repeats, as [`canonical`] leaves `Action`,
/// `Resource`, principals and condition values) merge in sorted order;
/// any other list, where order and repeats may mean something, is a
/// sequence diff.
fn diff_set(before: &[Value], after: &[Value], depth: usize, out: &mut Vec<Line>) {
    if !(is_set(before) && is_set(after)) {
        diff_sequence(before, after, depth, out);
        return;
    }
    let mut all: Vec<&Value> = before.iter().chain(after).collect();
    all.sort_by_key(|v| v.to_string());
    all.dedup();
    for v in all {
        let mark = match (before.contains(v), after.contains(v)) {
            (true, true) => Mark::Same,
            (true, false) => Mark::Remove,
            _ => Mark::Add,
        };
        push(out, mark, depth, format!("{},", text(v)));
    }
}

/// Sorted by the order [`canonical`] sorts sets in, with no repeats.
fn is_set(items: &[Value]) -> bool {
    items
        .windows(2)
        .all(|w| w[0].to_string().cmp(&w[1].to_string()).is_lt())
}

/// Past this many cells (elements before × elements after, once a common
/// head and tail are set aside) a list is shown as removed and added whole
/// rather than aligned: the alignment table would cost more than it helps.
const ALIGN_CELLS: usize = 1 << 20;

/// A longest-common-subsequence diff of two lists of plain values, in
/// their own order.
fn diff_sequence(before: &[Value], after: &[Value], depth: usize, out: &mut Vec<Line>) {
    let line = |v: &Value| format!("{},", text(v));
    let head = before.iter().zip(after).take_while(|(b, a)| b == a).count();
    let (b, a) = (&before[head..], &after[head..]);
    let tail = b
        .iter()
        .rev()
        .zip(a.iter().rev())
        .take_while(|(b, a)| b == a)
        .count();
    let (b, a) = (&b[..b.len() - tail], &a[..a.len() - tail]);
    for v in &before[..head] {
        push(out, Mark::Same, depth, line(v));
    }
    if b.len().saturating_mul(a.len()) > ALIGN_CELLS {
        for v in b {
            push(out, Mark::Remove, depth, line(v));
        }
        for v in a {
            push(out, Mark::Add, depth, line(v));
        }
    } else {
        // lcs[i][j]: the longest common subsequence of b[i..] and a[j..].
        let width = a.len() + 1;
        let mut lcs = vec![0u32; (b.len() + 1) * width];
        for i in (0..b.len()).rev() {
            for j in (0..a.len()).rev() {
                lcs[i * width + j] = if b[i] == a[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < b.len() || j < a.len() {
            if i < b.len() && j < a.len() && b[i] == a[j] {
                push(out, Mark::Same, depth, line(&b[i]));
                (i, j) = (i + 1, j + 1);
            } else if j == a.len()
                || (i < b.len() && lcs[(i + 1) * width + j] >= lcs[i * width + j + 1])
            {
                push(out, Mark::Remove, depth, line(&b[i]));
                i += 1;
            } else {
                push(out, Mark::Add, depth, line(&a[j]));
                j += 1;
            }
        }
    }
    for v in &before[before.len() - tail..] {
        push(out, Mark::Same, depth, line(v));
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

/// One side of a diff as text: the lines a reader of `before` (`side` is
/// [`Mark::Remove`]) or `after` ([`Mark::Add`]) sees, without marks, with
/// the commas JSON does not allow before a closing bracket dropped, and
/// the count of statements hidden as unchanged.
pub fn side(lines: &[Line], side: Mark) -> (String, usize) {
    let kept: Vec<&str> = lines
        .iter()
        .filter(|l| l.mark == Mark::Same || l.mark == side)
        .map(|l| l.text.as_str())
        .collect();
    let mut hidden = 0;
    let mut body: Vec<&str> = Vec::with_capacity(kept.len());
    for line in kept {
        if let Some(n) = line
            .strip_prefix("# (")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
        {
            hidden += n;
        } else {
            body.push(line);
        }
    }
    let mut out = String::new();
    for (i, line) in body.iter().enumerate() {
        let closes = body
            .get(i + 1)
            .is_none_or(|next| next.starts_with(']') || next.starts_with('}'));
        let line = match line.strip_suffix(',') {
            Some(trimmed) if closes => trimmed,
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    (out, hidden)
}

/// The contract of [`diff`], for any two JSON documents whose only
/// `Statement` key is at the top: each side of the diff ([`side`]) is
/// valid JSON with no key twice, equal to that document in canonical form
/// but for the statements both share, which are hidden and counted; the
/// diff marks something exactly when the documents differ in meaning; and
/// no line holds a character that could make it read other than it is
/// written. Checked by the property tests and the `policy_diff` fuzz
/// target.
///
/// # Errors
/// The first way the diff breaks its contract, with both documents.
#[doc(hidden)]
pub fn check_contract(before: &Value, after: &Value) -> Result<(), String> {
    let lines = diff(Some(before), Some(after));
    let (b, a) = (canonical(before), canonical(after));
    let fail = |what: String| Err(format!("{what}\nbefore: {before}\nafter: {after}"));
    if changes(&lines) != (b != a) {
        return fail(format!(
            "marks changes: {}, differ: {}",
            changes(&lines),
            b != a
        ));
    }
    if let Some(l) = lines.iter().find(|l| l.text.chars().any(hidden)) {
        return fail(format!("line with a hidden character: {:?}", l.text));
    }
    let shared = shared_statements(&b, &a);
    for (mark, doc) in [(Mark::Remove, &b), (Mark::Add, &a)] {
        let (text, hidden) = side(&lines, mark);
        let shown: Value = match serde_json::from_str::<Strict>(&text) {
            Ok(Strict(v)) => v,
            Err(e) => return fail(format!("{mark:?} side is not JSON ({e}):\n{text}")),
        };
        let expected = reread(&without(doc, &shared));
        if hidden != shared.len() || sorted_statements(shown) != sorted_statements(expected) {
            return fail(format!(
                "{mark:?} side shows (with {hidden} hidden, {} shared):\n{text}",
                shared.len()
            ));
        }
    }
    let (all_b, all_a) = (diff(Some(before), None), diff(None, Some(after)));
    for (lines, mark, doc) in [(all_b, Mark::Remove, &b), (all_a, Mark::Add, &a)] {
        if lines.iter().any(|l| l.mark != mark) {
            return fail(format!("a whole document with a line not marked {mark:?}"));
        }
        match serde_json::from_str::<Strict>(&side(&lines, mark).0) {
            Ok(Strict(v)) if v == reread(doc) => {}
            _ => {
                return fail(format!(
                    "the whole document marked {mark:?} is not the document"
                ));
            }
        }
    }
    Ok(())
}

/// The top-level statements of two canonical documents that a diff hides:
/// those both hold (as many times as both hold them), when their statement
/// lists differ.
fn shared_statements(b: &Value, a: &Value) -> Vec<Value> {
    let (Some(Value::Array(bs)), Some(Value::Array(as_))) =
        (b.get("Statement"), a.get("Statement"))
    else {
        return Vec::new();
    };
    if b == a || bs == as_ {
        return Vec::new();
    }
    let mut rest: Vec<&Value> = bs.iter().collect();
    let mut shared = Vec::new();
    for st in as_ {
        if let Some(i) = rest.iter().position(|b| *b == st) {
            shared.push(rest.remove(i).clone());
        }
    }
    shared
}

/// `doc` written and read back, as its side of a diff is: serde_json
/// reads some floats back a last bit off, the same way on both paths.
fn reread(doc: &Value) -> Value {
    serde_json::from_str(&doc.to_string()).unwrap_or(Value::Null)
}

fn without(doc: &Value, shared: &[Value]) -> Value {
    let mut doc = doc.clone();
    if let Some(Value::Array(statements)) = doc.get_mut("Statement") {
        for st in shared {
            if let Some(i) = statements.iter().position(|s| s == st) {
                statements.remove(i);
            }
        }
    }
    doc
}

/// The diff shows changed statements before removed and added ones: their
/// order is not part of the contract.
fn sorted_statements(mut doc: Value) -> Value {
    if let Some(Value::Array(statements)) = doc.get_mut("Statement") {
        statements.sort_by_key(Value::to_string);
    }
    doc
}

/// A JSON value read with a key given twice in one object as an error
/// (`serde_json::Value` keeps the last silently).
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Strict;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Strict, A::Error> {
                let mut items = Vec::new();
                while let Some(Strict(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Strict(Value::Array(items)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Strict, A::Error> {
                let mut out = Map::new();
                while let Some((k, Strict(v))) = map.next_entry::<String, Strict>()? {
                    if out.insert(k.clone(), v).is_some() {
                        return Err(serde::de::Error::custom(format!("key {k:?} twice")));
                    }
                }
                Ok(Strict(Value::Object(out)))
            }
        }
        d.deserialize_any(Visitor)
    }
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
    fn characters_that_hide_or_reorder_text_are_escaped() {
        // DEL and C1 controls pass through JSON unescaped (the fuzzer found
        // DEL in an ARN); U+202E reorders a line.
        let doc = json!({"Statement": [{"Principal": {"AWS": "arn\u{7f}\u{9b}2J\u{202e}toor"}}]});
        let lines = diff(None, Some(&doc));
        let shown: String = lines.iter().map(|l| l.text.as_str()).collect();
        assert!(
            shown.contains(r#""arn\u007f\u009b2J\u202etoor""#),
            "{shown}"
        );
        assert!(!shown.chars().any(hidden));
        assert_eq!(
            visible("a\nb\u{1b}[0m\u{2066}"),
            "a\\u{000a}b\\u{001b}[0m\\u{2066}"
        );
        check_contract(&doc, &json!({})).unwrap();
    }

    #[test]
    fn a_plain_value_longer_than_a_line_is_one_line() {
        let provider = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
        let trust = json!({"Statement": [{"Principal": {"Federated": provider}, "Sid": "Irsa"}]});
        let text = show(&diff(None, Some(&trust)));
        assert!(
            text.contains(&format!("\n+          \"{provider}\",\n")),
            "{text}"
        );
        let longer = json!({"Statement": [{"Principal": {"Federated": [provider, "x".repeat(2000)]}, "Sid": "Irsa"}]});
        check_contract(&trust, &longer).unwrap();
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
