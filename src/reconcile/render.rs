//! A plan as text (Terraform style), as Markdown for a pull request, or as
//! the JSON of docs/plan-format.md. Documents are shown through
//! [`super::diff`], changes explained through [`super::meaning`].

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::diff::{self, Mark};
use super::meaning::{Access, Meaning, meanings};
use super::plan::{Action, Plan, RoleKind};
use super::saved::FORMAT_VERSION;
use crate::repository_settings::Context;
use crate::tags::TAG_PROJECT;

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub change: usize,
    pub delete: usize,
}

pub(crate) fn summary(plan: &Plan) -> Summary {
    let mut s = Summary::default();
    for action in &plan.actions {
        match action {
            Action::CreateRole { .. } | Action::CreateRepository { .. } => s.create += 1,
            Action::PutRolePolicy { before: None, .. } => s.create += 1,
            Action::DeleteRepository { .. } | Action::DeleteRolePolicy { .. } => s.delete += 1,
            _ => s.change += 1,
        }
    }
    s
}

/// The machine format (docs/plan-format.md): each action as saved, plus
/// its `meanings` (never grouped).
pub fn to_json(plan: &Plan) -> Value {
    let actions: Vec<Value> = plan
        .actions
        .iter()
        .map(|action| {
            let mut value = serde_json::to_value(action).expect("an action serializes");
            if let Value::Object(map) = &mut value {
                map.insert("meanings".into(), json!(meanings(action)));
            }
            value
        })
        .collect();
    let mut value = json!({
        "format_version": FORMAT_VERSION,
        "changes": !plan.is_empty(),
        "summary": summary(plan),
        "actions": actions,
        "unmanaged": plan.unmanaged,
    });
    if let Some(note) = &plan.registry_scanning {
        value["registry_scanning"] = note.as_str().into();
    }
    if let Some(note) = &plan.tag_reads {
        value["tag_reads"] = note.as_str().into();
    }
    value
}

/// How a text or Markdown plan is drawn.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// ANSI colour (a terminal without `NO_COLOR`).
    pub colour: bool,
    /// Every repository of a group by name, not the first few.
    pub verbose: bool,
}

struct Style {
    colour: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// At least this many repository actions of one kind with the same content
/// are shown as one group (about a screenful of them).
pub const GROUP_AT: usize = 10;
/// A group names this many of its repositories unless verbose.
const GROUP_NAMES_SHOWN: usize = 10;
/// Names of a group are wrapped at this width (100 columns with the
/// indent).
const WRAP: usize = 94;

/// The sign of an entry: `+` create, `~` change, `-` delete, `!` orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    Create,
    Change,
    Delete,
    Orphan,
}

impl Sign {
    fn text(self) -> &'static str {
        match self {
            Self::Create => "+",
            Self::Change => "~",
            Self::Delete => "-",
            Self::Orphan => "!",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Self::Create => "32",
            Self::Change | Self::Orphan => "33",
            Self::Delete => "31",
        }
    }
}

/// One document shown as a structured diff, with an optional label.
struct Doc {
    label: Option<&'static str>,
    lines: Vec<diff::Line>,
}

/// An action (or a group of like repository actions) ready to draw.
struct Block {
    sign: Sign,
    title: String,
    /// One-line meanings, shown above the details (role and policy
    /// actions and setting changes; elsewhere the title says it).
    meanings: Vec<Meaning>,
    details: Vec<String>,
    docs: Vec<Doc>,
    /// A group's repositories.
    members: Vec<String>,
}

fn role_label(role: RoleKind, name: &str) -> String {
    let kind = match role {
        RoleKind::Controller => "controller",
        RoleKind::Push => "push",
    };
    format!("role {name} ({kind})")
}

fn compact(v: &Value) -> String {
    v.to_string()
}

/// The content of a repository action without its repository, for
/// grouping: equal shapes mean the same change to different repositories.
/// The project a repository's name ends in is replaced by `{project}`.
/// `None` for role actions, which are never grouped.
fn shape(action: &Action) -> Option<String> {
    let repository = match action {
        Action::CreateRepository { repository, .. }
        | Action::Adopt { repository, .. }
        | Action::Unorphan { repository }
        | Action::UpdateRepository { repository, .. }
        | Action::SetTags { repository, .. }
        | Action::Orphan { repository }
        | Action::DeleteRepository { repository } => repository,
        _ => return None,
    };
    let mut value = serde_json::to_value(action).ok()?;
    let map = value.as_object_mut()?;
    map.remove("repository");
    let own_project = |p: &Value| p.as_str().is_some_and(|p| repository.ends_with(p));
    if map.get("project").is_some_and(own_project) {
        map.insert("project".into(), json!("{project}"));
    }
    if let Some(tags) = map.get_mut("tags").and_then(Value::as_object_mut)
        && tags.get(TAG_PROJECT).is_some_and(own_project)
    {
        tags.insert(TAG_PROJECT.into(), json!("{project}"));
    }
    Some(value.to_string())
}

/// The plan's actions in order, like repository actions gathered into
/// groups of at least [`GROUP_AT`] at the place of their first.
fn entries(plan: &Plan) -> Vec<Vec<&Action>> {
    let mut by_shape: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let shapes: Vec<Option<String>> = plan.actions.iter().map(shape).collect();
    for (i, s) in shapes.iter().enumerate() {
        if let Some(s) = s {
            by_shape.entry(s.clone()).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (i, action) in plan.actions.iter().enumerate() {
        match shapes[i].as_ref().map(|s| &by_shape[s]) {
            Some(members) if members.len() >= GROUP_AT => {
                if members[0] == i {
                    out.push(members.iter().map(|&j| &plan.actions[j]).collect());
                }
            }
            _ => out.push(vec![action]),
        }
    }
    out
}

fn repository_of(action: &Action) -> String {
    action
        .repository()
        .map_or_else(|| action.to_string(), str::to_string)
}

/// The block for `actions` (one action, or a group of like ones shown
/// through the first). `registry_scans`: the registry's scanning
/// configuration governs, so a repository's own flag is not shown.
fn block(actions: &[&Action], registry_scans: bool) -> Block {
    let action = actions[0];
    let grouped = actions.len() > 1;
    let subject = if grouped {
        format!("{} repositories", actions.len())
    } else {
        format!("repository {}", repository_of(action))
    };
    let project = |p: &str| {
        if grouped {
            "{project}".to_string()
        } else {
            p.to_string()
        }
    };
    let mut b = Block {
        sign: Sign::Change,
        title: String::new(),
        meanings: meanings(action),
        details: Vec::new(),
        docs: Vec::new(),
        members: if grouped {
            actions.iter().map(|a| repository_of(a)).collect()
        } else {
            Vec::new()
        },
    };
    match action {
        Action::CreateRole {
            role,
            name,
            trust,
            tags,
        } => {
            b.sign = Sign::Create;
            b.title = role_label(*role, name);
            b.docs.push(Doc {
                label: Some("trust policy"),
                lines: diff::diff(None, Some(trust)),
            });
            if !tags.is_empty() {
                b.details.push(format!("tags: {}", compact(&json!(tags))));
            }
        }
        Action::UpdateTrust {
            role,
            name,
            before,
            after,
        } => {
            b.title = format!("{}: trust policy", role_label(*role, name));
            b.docs.push(Doc {
                label: None,
                lines: diff::diff(Some(before), Some(after)),
            });
        }
        Action::PutRolePolicy {
            role,
            name,
            policy,
            before,
            after,
        } => {
            if before.is_none() {
                b.sign = Sign::Create;
            }
            b.title = format!("policy {policy} on {}", role_label(*role, name));
            b.docs.push(Doc {
                label: None,
                lines: diff::diff(before.as_ref(), Some(after)),
            });
        }
        Action::DeleteRolePolicy {
            role,
            name,
            policy,
            before,
        } => {
            b.sign = Sign::Delete;
            b.title = format!("policy {policy} on {}", role_label(*role, name));
            b.docs.push(Doc {
                label: None,
                lines: diff::diff(Some(before), None),
            });
        }
        Action::CreateRepository { tags, settings, .. } => {
            b.sign = Sign::Create;
            b.title = subject;
            b.meanings.clear();
            let context = Context { registry_scans };
            let details: Vec<String> = settings
                .iter()
                .filter(|(s, _)| s.applies(&context))
                .map(|(s, v)| s.detail(v))
                .collect();
            b.details.push(details.join(", "));
            let mut tags = tags.clone();
            if let Some(p) = tags.get_mut(TAG_PROJECT) {
                *p = project(p);
            }
            b.details.push(format!("tags: {}", compact(&json!(tags))));
        }
        Action::Adopt { project: p, .. } => {
            let p = project(p);
            b.title = format!(
                "{subject}: adopt for project {p} (tags rise:managed=true, rise:project={p})"
            );
            b.meanings.clear();
        }
        Action::Unorphan { .. } => {
            b.title =
                format!("{subject}: un-orphan (its project is back; tag rise:orphaned removed)");
            b.meanings.clear();
        }
        Action::UpdateRepository { changes, .. } => {
            b.title = subject;
            for c in changes {
                let (before, after) = c.values();
                if c.setting.is_document() {
                    b.docs.push(Doc {
                        label: Some(c.attribute()),
                        lines: diff::diff((!before.is_null()).then_some(&before), Some(&after)),
                    });
                } else {
                    b.details.push(format!(
                        "{}: {} -> {}",
                        c.attribute(),
                        compact(&before),
                        compact(&after)
                    ));
                }
            }
        }
        Action::SetTags { set, remove, .. } => {
            let mut parts: Vec<String> = set.iter().map(|(k, v)| format!("+ {k} = {v}")).collect();
            parts.extend(remove.iter().map(|k| format!("- {k}")));
            b.title = format!("{subject}: tags {}", parts.join(", "));
            b.meanings.clear();
        }
        Action::SetRoleTags {
            role,
            name,
            set,
            remove,
        } => {
            let mut parts: Vec<String> = set.iter().map(|(k, v)| format!("+ {k} = {v}")).collect();
            parts.extend(remove.iter().map(|k| format!("- {k}")));
            b.title = format!("{}: tags {}", role_label(*role, name), parts.join(", "));
            b.meanings.clear();
        }
        Action::Orphan { .. } => {
            b.sign = Sign::Orphan;
            b.title = format!(
                "{subject}: orphan (no project claims it; tagged rise:orphaned=true, images kept)"
            );
            b.meanings.clear();
        }
        Action::DeleteRepository { .. } => {
            b.sign = Sign::Delete;
            b.title = format!("{subject} (auto_remove: the repository and its images are deleted)");
            b.meanings.clear();
        }
    }
    b
}

/// The names of a group: every one when verbose, else the first few and
/// how many more.
fn member_lines(members: &[String], verbose: bool) -> Vec<String> {
    let shown = if verbose {
        members
    } else {
        &members[..members.len().min(GROUP_NAMES_SHOWN)]
    };
    let mut lines = Vec::new();
    let mut line = String::new();
    for name in shown {
        if !line.is_empty() && line.len() + name.len() + 2 > WRAP {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(name);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    if shown.len() < members.len() {
        lines.push(format!(
            "… and {} more (`plan --verbose` lists every one)",
            members.len() - shown.len()
        ));
    }
    lines
}

/// A meaning as a text-plan line: widening ones shout.
fn meaning_text(m: &Meaning) -> (String, bool) {
    match m.access {
        Access::Widens => (format!("# WIDENS ACCESS: {}", m.text), true),
        Access::Narrows => (format!("# narrows access: {}", m.text), false),
        Access::Unchanged => (format!("# {}", m.text), false),
    }
}

/// Terraform-style text: `+` create, `~` update, `-` delete, `!` orphan;
/// one line of meaning per change; policy documents as structured diffs;
/// like repository actions grouped; a summary line.
pub fn to_text(plan: &Plan, options: TextOptions) -> String {
    let style = Style {
        colour: options.colour,
    };
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("No changes. AWS matches the configuration.\n");
    } else {
        out.push_str("rise-registry will perform these actions:\n\n");
    }
    for entry in entries(plan) {
        let b = block(&entry, plan.registry_scanning.is_some());
        let _ = writeln!(
            out,
            "  {} {}",
            style.paint(b.sign.colour(), b.sign.text()),
            b.title
        );
        for m in &b.meanings {
            let (text, loud) = meaning_text(m);
            let text = if loud {
                style.paint("1;31", &text)
            } else {
                text
            };
            let _ = writeln!(out, "      {text}");
        }
        for d in &b.details {
            let _ = writeln!(out, "      {d}");
        }
        for doc in &b.docs {
            if let Some(label) = doc.label {
                let _ = writeln!(out, "      {label}:");
            }
            for line in &doc.lines {
                let pad = " ".repeat(6 + 2 * line.depth);
                let _ = match line.mark {
                    Mark::Same => writeln!(out, "{pad}  {}", line.text),
                    Mark::Add => writeln!(
                        out,
                        "{pad}{}",
                        style.paint("32", &format!("+ {}", line.text))
                    ),
                    Mark::Remove => writeln!(
                        out,
                        "{pad}{}",
                        style.paint("31", &format!("- {}", line.text))
                    ),
                };
            }
        }
        for line in member_lines(&b.members, options.verbose) {
            if !b.members.is_empty() {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    if let Some(note) = &plan.registry_scanning {
        let _ = writeln!(out, "\nScanning: {note}.");
    }
    if let Some(note) = &plan.tag_reads {
        let _ = writeln!(out, "\nReads: {note}.");
    }
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(
            out,
            "\nUnder the prefix but not managed (left alone): {}",
            plan.unmanaged.join(", ")
        );
    }
    if !plan.is_empty() {
        let _ = writeln!(out, "\n{}", summary_line(plan));
    }
    out
}

fn summary_line(plan: &Plan) -> String {
    let s = summary(plan);
    format!(
        "Plan: {} to create, {} to change, {} to delete.",
        s.create, s.change, s.delete
    )
}

/// More repository entries than this go into a collapsed section of the
/// Markdown plan.
pub const MARKDOWN_COLLAPSE_AT: usize = 10;

/// Escapes text for Markdown prose and table cells.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_[]<>|#~!".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A fenced block of `lang` that no backtick run in `body` can close.
fn fence(lang: &str, body: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let ticks = "`".repeat((longest + 1).max(3));
    format!("{ticks}{lang}\n{body}{ticks}\n")
}

fn md_meaning(m: &Meaning) -> String {
    match m.access {
        Access::Widens => format!("**⚠ widens access:** {}", md(&m.text)),
        Access::Narrows => format!("*narrows access:* {}", md(&m.text)),
        Access::Unchanged => md(&m.text),
    }
}

fn md_block(out: &mut String, b: &Block, verbose: bool) {
    let _ = writeln!(
        out,
        "#### {}\n",
        md(&format!("{} {}", b.sign.text(), b.title))
    );
    for m in &b.meanings {
        let _ = writeln!(out, "- {}", md_meaning(m));
    }
    for d in &b.details {
        let _ = writeln!(out, "- {}", md(d));
    }
    if !b.meanings.is_empty() || !b.details.is_empty() {
        out.push('\n');
    }
    for doc in &b.docs {
        if let Some(label) = doc.label {
            let _ = writeln!(out, "{}:\n", md(label));
        }
        let body: String = doc
            .lines
            .iter()
            .map(|l| format!("{} {}{}\n", l.mark.sign(), "  ".repeat(l.depth), l.text))
            .collect();
        let _ = writeln!(out, "{}", fence("diff", &body));
    }
    if !b.members.is_empty() {
        // One paragraph of names; the count of the rest its own.
        let lines = member_lines(&b.members, verbose);
        let (names, more): (Vec<_>, Vec<_>) = lines.iter().partition(|l| !l.starts_with('…'));
        let names: Vec<&str> = names.iter().map(|l| l.as_str()).collect();
        let _ = writeln!(out, "{}\n", md(&names.join(", ")));
        for line in more {
            let _ = writeln!(out, "{}\n", md(line));
        }
    }
}

/// The plan for a pull-request comment: the summary as a table, what it
/// means (widening first), each change with its documents in fenced
/// `diff` blocks, and repository changes collapsed when there are many.
pub fn to_markdown(plan: &Plan, options: TextOptions) -> String {
    let mut out = String::from("### rise-registry plan\n\n");
    if plan.is_empty() {
        out.push_str("No changes. AWS matches the configuration.\n");
        return out;
    }
    let s = summary(plan);
    let _ = writeln!(out, "**{}**\n", summary_line(plan));
    out.push_str("| | to create | to change | to delete |\n|---|---:|---:|---:|\n");
    let is_role = |a: &Action| shape(a).is_none();
    let mut roles = Summary::default();
    for a in plan.actions.iter().filter(|a| is_role(a)) {
        let one = summary(&Plan {
            actions: vec![a.clone()],
            ..Plan::default()
        });
        roles.create += one.create;
        roles.change += one.change;
        roles.delete += one.delete;
    }
    let _ = writeln!(
        out,
        "| roles and policies | {} | {} | {} |",
        roles.create, roles.change, roles.delete
    );
    let _ = writeln!(
        out,
        "| repositories | {} | {} | {} |\n",
        s.create - roles.create,
        s.change - roles.change,
        s.delete - roles.delete
    );

    // What it means: every distinct meaning once, widening first, with how
    // many actions share it.
    let mut all: Vec<(Meaning, usize)> = Vec::new();
    for action in &plan.actions {
        for m in meanings(action) {
            match all.iter_mut().find(|(seen, _)| *seen == m) {
                Some((_, n)) => *n += 1,
                None => all.push((m, 1)),
            }
        }
    }
    all.sort_by_key(|(m, _)| m.access);
    out.push_str("#### What it means\n\n");
    for (m, n) in &all {
        let times = if *n > 1 {
            format!(" ({n} actions)")
        } else {
            String::new()
        };
        let _ = writeln!(out, "- {}{times}", md_meaning(m));
    }
    out.push('\n');

    let (role_entries, repo_entries): (Vec<_>, Vec<_>) =
        entries(plan).into_iter().partition(|e| is_role(e[0]));
    let registry_scans = plan.registry_scanning.is_some();
    for e in &role_entries {
        md_block(&mut out, &block(e, registry_scans), options.verbose);
    }
    let collapse = repo_entries.len() > MARKDOWN_COLLAPSE_AT;
    if collapse {
        let n: usize = repo_entries.iter().map(Vec::len).sum();
        let _ = writeln!(out, "<details><summary>{n} repository changes</summary>\n");
    }
    for e in &repo_entries {
        md_block(&mut out, &block(e, registry_scans), options.verbose);
    }
    if collapse {
        out.push_str("</details>\n\n");
    }
    if let Some(note) = &plan.registry_scanning {
        let _ = writeln!(out, "Scanning: {}.\n", md(note));
    }
    if let Some(note) = &plan.tag_reads {
        let _ = writeln!(out, "Reads: {}.\n", md(note));
    }
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(
            out,
            "Under the prefix but not managed (left alone): {}\n",
            md(&plan.unmanaged.join(", "))
        );
    }
    out
}

/// The renderers' contract over the policy actions a change from `before`
/// to `after` makes (a trust update, a role created with `after`, a
/// policy put and one deleted): every action has a meaning; the text and
/// Markdown plans show every line of the diff and hold no control
/// character but line ends and no bidirectional override; the JSON plan
/// holds every action. Checked by the property tests and the
/// `policy_diff` fuzz target.
///
/// # Errors
/// The first way a renderer breaks it.
#[doc(hidden)]
pub fn check_policy_rendering(before: &Value, after: &Value) -> Result<(), String> {
    let name = "rise-backend".to_string();
    let plan = Plan {
        actions: vec![
            Action::UpdateTrust {
                role: RoleKind::Controller,
                name: name.clone(),
                before: before.clone(),
                after: after.clone(),
            },
            Action::CreateRole {
                role: RoleKind::Push,
                name: name.clone(),
                trust: after.clone(),
                tags: BTreeMap::new(),
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
                before: before.clone(),
            },
        ],
        ..Plan::default()
    };
    if let Some(action) = plan.actions.iter().find(|a| meanings(a).is_empty()) {
        return Err(format!("no meaning for {action}"));
    }
    let options = TextOptions::default();
    let (text, markdown) = (to_text(&plan, options), to_markdown(&plan, options));
    let actions = to_json(&plan)["actions"].as_array().map(Vec::len);
    if actions != Some(plan.actions.len()) {
        return Err(format!("the JSON plan holds {actions:?} actions"));
    }
    for line in diff::diff(Some(before), Some(after)) {
        for (format, out) in [("text", &text), ("Markdown", &markdown)] {
            if !out.contains(&line.text) {
                return Err(format!("the {format} plan lacks {:?}", line.text));
            }
        }
    }
    for (format, out) in [("text", &text), ("Markdown", &markdown)] {
        let bad = out
            .chars()
            .find(|c| (c.is_control() && *c != '\n') || matches!(c, '\u{202a}'..='\u{202e}'));
        if let Some(c) = bad {
            return Err(format!("the {format} plan holds {c:?}"));
        }
    }
    Ok(())
}
