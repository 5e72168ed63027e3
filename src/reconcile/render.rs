//! A plan as text (Terraform style) or as the JSON of docs/plan-format.md.

use std::fmt::Write;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::canonical::canonical;
use super::plan::{Action, ObservedState, Plan, RoleKind, Scope};

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

/// A fingerprint of what was observed: equal fingerprints mean the account
/// looked the same (policies compared by meaning).
pub(crate) fn fingerprint(observed: &ObservedState) -> String {
    let mut value = serde_json::to_value(observed).expect("observed state serializes");
    canonicalize_policies(&mut value);
    let digest = Sha256::digest(value.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn canonicalize_policies(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("Statement") {
                *value = canonical(value);
                return;
            }
            map.values_mut().for_each(canonicalize_policies);
        }
        Value::Array(items) => items.iter_mut().for_each(canonicalize_policies),
        _ => {}
    }
}

/// The machine format (docs/plan-format.md).
pub(crate) fn to_json(plan: &Plan) -> Value {
    let mut value = json!({
        "format_version": FORMAT_VERSION,
        "changes": !plan.is_empty(),
        "summary": summary(plan),
        "actions": plan.actions,
        "unmanaged": plan.unmanaged,
    });
    if let Some(note) = &plan.registry_scanning {
        value["registry_scanning"] = note.as_str().into();
    }
    value
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

/// Terraform-style text: `+` create, `~` update with before → after, `-`
/// delete; adopt and orphan marked; a summary line.
pub(crate) fn to_text(plan: &Plan, colour: bool) -> String {
    let style = Style { colour };
    let add = |t: &str| style.paint("32", t);
    let upd = |t: &str| style.paint("33", t);
    let del = |t: &str| style.paint("31", t);
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("No changes. AWS matches the configuration.\n");
    } else {
        out.push_str("rise-registry will perform these actions:\n\n");
    }
    for action in &plan.actions {
        let _ = match action {
            Action::CreateRole {
                role,
                name,
                trust,
                tags,
            } => {
                let _ = writeln!(out, "  {} {}", add("+"), role_label(*role, name));
                let _ = writeln!(out, "      trust: {}", compact(trust));
                if !tags.is_empty() {
                    let _ = writeln!(out, "      tags:  {}", compact(&json!(tags)));
                }
                Ok(())
            }
            Action::UpdateTrust {
                role,
                name,
                before,
                after,
            } => {
                let _ = writeln!(out, "  {} {}", upd("~"), role_label(*role, name));
                let _ = writeln!(
                    out,
                    "      trust: {}\n          -> {}",
                    compact(&canonical(before)),
                    compact(&canonical(after))
                );
                Ok(())
            }
            Action::PutRolePolicy {
                role,
                name,
                policy,
                before,
                after,
            } => {
                let sign = if before.is_some() { upd("~") } else { add("+") };
                let _ = writeln!(
                    out,
                    "  {sign} policy {policy} on {}",
                    role_label(*role, name)
                );
                if let Some(before) = before {
                    let _ = writeln!(
                        out,
                        "      {}\n        -> {}",
                        compact(&canonical(before)),
                        compact(&canonical(after))
                    );
                } else {
                    let _ = writeln!(out, "      {}", compact(after));
                }
                Ok(())
            }
            Action::DeleteRolePolicy {
                role, name, policy, ..
            } => {
                writeln!(
                    out,
                    "  {} policy {policy} on {}",
                    del("-"),
                    role_label(*role, name)
                )
            }
            Action::SetRoleTags {
                role,
                name,
                set,
                remove,
            } => {
                let _ = writeln!(out, "  {} {} tags", upd("~"), role_label(*role, name));
                for (k, v) in set {
                    let _ = writeln!(out, "      {} {k} = {v}", add("+"));
                }
                for k in remove {
                    let _ = writeln!(out, "      {} {k}", del("-"));
                }
                Ok(())
            }
            Action::CreateRepository {
                repository,
                tags,
                settings,
            } => {
                let _ = writeln!(out, "  {} repository {repository}", add("+"));
                let scan = if plan.registry_scanning.is_some() {
                    String::new()
                } else {
                    format!(", scan_on_push: {}", settings.scan_on_push)
                };
                let _ = writeln!(
                    out,
                    "      image_tag_mutability: {}{scan}, keep {} images",
                    settings.tag_mutability.as_str(),
                    settings.max_image_count
                );
                writeln!(out, "      tags: {}", compact(&json!(tags)))
            }
            Action::Adopt {
                repository,
                project,
            } => writeln!(
                out,
                "  {} repository {repository}: adopt for project {project} (tags rise:managed=true, rise:project={project})",
                upd("~")
            ),
            Action::Unorphan { repository } => writeln!(
                out,
                "  {} repository {repository}: un-orphan (its project is back; tag rise:orphaned removed)",
                upd("~")
            ),
            Action::UpdateRepository {
                repository,
                changes,
            } => {
                let _ = writeln!(out, "  {} repository {repository}", upd("~"));
                for c in changes {
                    let (before, after) = c.values();
                    let _ = writeln!(
                        out,
                        "      {}: {} -> {}",
                        c.attribute(),
                        compact(&before),
                        compact(&after)
                    );
                }
                Ok(())
            }
            Action::SetTags {
                repository,
                set,
                remove,
            } => {
                let _ = writeln!(out, "  {} repository {repository} tags", upd("~"));
                for (k, v) in set {
                    let _ = writeln!(out, "      {} {k} = {v}", add("+"));
                }
                for k in remove {
                    let _ = writeln!(out, "      {} {k}", del("-"));
                }
                Ok(())
            }
            Action::Orphan { repository } => writeln!(
                out,
                "  {} repository {repository}: orphan (no project claims it; tagged rise:orphaned=true, images kept)",
                upd("!")
            ),
            Action::DeleteRepository { repository } => writeln!(
                out,
                "  {} repository {repository} (auto_remove: the repository and its images are deleted)",
                del("-")
            ),
        };
    }
    if let Some(note) = &plan.registry_scanning {
        let _ = writeln!(out, "\nScanning: {note}.");
    }
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(
            out,
            "\nUnder the prefix but not managed (left alone): {}",
            plan.unmanaged.join(", ")
        );
    }
    if !plan.is_empty() {
        let s = summary(plan);
        let _ = writeln!(
            out,
            "\nPlan: {} to create, {} to change, {} to delete.",
            s.create, s.change, s.delete
        );
    }
    out
}

/// The `format_version` of plans this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// A plan saved by `plan --out`, applied by `apply FILE`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    /// [`fingerprint`] of the state the plan was made against.
    pub observed_fingerprint: String,
    /// What the plan covers (`--scope`); plans saved before scopes existed
    /// covered everything.
    #[serde(default)]
    pub scope: Scope,
    pub plan: Plan,
}

/// Why a saved plan cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error(
        "it has plan format {found}, and this rise-registry reads format {FORMAT_VERSION}\n  hint: make the plan again with this version's `plan --out`"
    )]
    Version { found: u64 },
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

impl SavedPlan {
    pub fn new(observed_fingerprint: String, scope: Scope, plan: Plan) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            observed_fingerprint,
            scope,
            plan,
        }
    }

    /// Reads a saved plan, checking its format version before its actions,
    /// so a plan from another version is named as such rather than as a
    /// field that does not parse.
    ///
    /// # Errors
    /// Not JSON, another format version, or actions this version does not
    /// know.
    pub fn parse(text: &str) -> Result<Self, SavedPlanError> {
        // Parsed once; the version is read off the tree before the rest (a
        // missing or non-numeric one is reported by the typed read).
        let value: Value = serde_json::from_str(text)?;
        if let Some(found) = value["format_version"].as_u64()
            && found != u64::from(FORMAT_VERSION)
        {
            return Err(SavedPlanError::Version { found });
        }
        Ok(serde_json::from_value(value)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_plan_round_trips_and_another_format_version_is_named() {
        let saved = SavedPlan::new("abc".into(), Scope::All, Plan::default());
        let text = serde_json::to_string(&saved).unwrap();
        let back = SavedPlan::parse(&text).unwrap();
        assert_eq!(back.observed_fingerprint, "abc");
        assert_eq!(back.format_version, FORMAT_VERSION);

        let future = text.replace("\"format_version\":1", "\"format_version\":2");
        let e = SavedPlan::parse(&future).unwrap_err().to_string();
        assert!(
            e.starts_with("it has plan format 2, and this rise-registry reads format 1"),
            "{e}"
        );
        // The version is checked before the actions, which may not parse.
        let e = SavedPlan::parse(
            r#"{"format_version": 7, "plan": {"actions": [{"action": "teleport"}]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("plan format 7"), "{e}");
        assert!(SavedPlan::parse("{}").is_err());
    }
}
