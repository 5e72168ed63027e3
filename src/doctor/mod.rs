//! `doctor`: the operator guide's troubleshooting list as checks run
//! against the live setup (docs/troubleshooting.md maps each symptom to its
//! check).
//!
//! Split like the rest of the crate: this module is the model (a [`Check`]
//! with an [`Outcome`], a [`Report`]) and its renderers; [`ecr`], [`oci`],
//! [`serve`], [`certs`] and [`crate::docker_config`] decide outcomes from
//! values (pure, unit-tested); only [`live`] talks to AWS, registries and
//! serve, and it hands what it saw to those to decide. A check that cannot
//! run because one it needs failed is [`Outcome::Skipped`] with the
//! reason, never passed.

pub mod certs;
pub mod ecr;
pub mod live;
pub mod oci;
pub mod serve;
pub mod store;

use serde::Serialize;

/// `format_version` of `doctor --json` (docs/troubleshooting.md). Raised
/// when a field changes meaning or goes away; new fields and new check ids
/// do not raise it.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    /// Works, but will not for long or not everywhere (a certificate
    /// expiring within 30 days).
    Warn,
    Fail,
    /// Not run because a check it needs failed; `detail` says which.
    Skipped,
}

impl Outcome {
    fn symbol(self) -> &'static str {
        match self {
            Self::Pass => "✔",
            Self::Warn => "!",
            Self::Fail => "✘",
            Self::Skipped => "-",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable name for scripts, such as `ecr.push_role`.
    pub id: &'static str,
    /// The project a per-project check is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// What is checked, as a statement that holds when it passes.
    pub title: String,
    pub outcome: Outcome,
    /// What was found (for a skipped check: why it did not run).
    pub detail: String,
    /// How to fix it: a command or the config key to change. Always set
    /// for `fail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn new(id: &'static str, title: impl Into<String>, outcome: Outcome, detail: String) -> Self {
        Self {
            id,
            project: None,
            title: title.into(),
            outcome,
            detail,
            hint: None,
        }
    }

    pub fn pass(id: &'static str, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, title, Outcome::Pass, detail.into())
    }

    pub fn warn(
        id: &'static str,
        title: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::new(id, title, Outcome::Warn, detail.into()).with_hint(hint)
    }

    pub fn fail(
        id: &'static str,
        title: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::new(id, title, Outcome::Fail, detail.into()).with_hint(hint)
    }

    pub fn skipped(id: &'static str, title: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(id, title, Outcome::Skipped, reason.into())
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn for_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    pub fn ok(&self) -> bool {
        matches!(self.outcome, Outcome::Pass | Outcome::Warn)
    }
}

/// Everything `doctor` found, in the order checked.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub registry_type: &'static str,
    pub checks: Vec<Check>,
}

/// Counts per outcome, for the last line and the JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub skipped: usize,
}

impl Report {
    pub fn new(registry_type: &'static str, checks: Vec<Check>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            registry_type,
            checks,
        }
    }

    /// True when every check passed (warnings included): exit code 0.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(Check::ok)
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for check in &self.checks {
            match check.outcome {
                Outcome::Pass => c.pass += 1,
                Outcome::Warn => c.warn += 1,
                Outcome::Fail => c.fail += 1,
                Outcome::Skipped => c.skipped += 1,
            }
        }
        c
    }

    /// The JSON `doctor --json` prints (docs/troubleshooting.md).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "format_version": self.format_version,
            "registry_type": self.registry_type,
            "ok": self.ok(),
            "counts": self.counts(),
            "checks": self.checks,
        })
    }

    /// One line per check (`✔`, `!`, `✘`, `-` for skipped), the fix under
    /// every failure and warning, and a closing count.
    pub fn to_text(&self, colour: bool) -> String {
        let paint = |code: &str, s: &str| {
            if colour {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        let mut out = format!("registry type: {}\n", self.registry_type);
        for check in &self.checks {
            let symbol = check.outcome.symbol();
            let symbol = match check.outcome {
                Outcome::Pass => paint("32", symbol),
                Outcome::Warn => paint("33", symbol),
                Outcome::Fail => paint("31", symbol),
                Outcome::Skipped => paint("2", symbol),
            };
            let project = check
                .project
                .as_deref()
                .map(|p| format!("[{p}] "))
                .unwrap_or_default();
            let detail = match check.outcome {
                Outcome::Skipped => format!("skipped: {}", check.detail),
                _ => check.detail.clone(),
            };
            out.push_str(&format!("{symbol} {project}{}: {detail}\n", check.title));
            if let Some(hint) = &check.hint {
                out.push_str(&format!("    fix: {hint}\n"));
            }
        }
        let c = self.counts();
        let mut parts = vec![format!("{} passed", c.pass)];
        for (n, what) in [
            (c.warn, "warned"),
            (c.fail, "failed"),
            (c.skipped, "skipped"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        out.push_str(&parts.join(", "));
        out.push('\n');
        out
    }
}

/// Runs checks one after another, each given what the ones before it
/// found; a check whose prerequisite failed is recorded as skipped with
/// the reason. The helper keeps that rule in one place.
#[derive(Debug, Default)]
pub struct Checks {
    list: Vec<Check>,
}

impl Checks {
    /// Records `check`; returns whether it passed (or only warned).
    pub fn push(&mut self, check: Check) -> bool {
        let ok = check.ok();
        self.list.push(check);
        ok
    }

    pub fn extend(&mut self, checks: impl IntoIterator<Item = Check>) -> bool {
        let mut ok = true;
        for c in checks {
            ok &= self.push(c);
        }
        ok
    }

    pub fn into_vec(self) -> Vec<Check> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report::new(
            "ecr",
            vec![
                Check::pass("a.one", "caller identity", "arn:aws:iam::1:root"),
                Check::fail("a.two", "push role", "AccessDenied", "rise-registry apply")
                    .for_project("my-app"),
                Check::skipped("a.three", "ECR login", "the push role could not be assumed")
                    .for_project("my-app"),
                Check::warn("a.four", "chain in date", "expires in 3 days", "renew it"),
            ],
        )
    }

    #[test]
    fn text_has_one_line_per_check_and_the_fix_under_failures() {
        assert_eq!(
            report().to_text(false),
            "registry type: ecr\n\
             ✔ caller identity: arn:aws:iam::1:root\n\
             ✘ [my-app] push role: AccessDenied\n    fix: rise-registry apply\n\
             - [my-app] ECR login: skipped: the push role could not be assumed\n\
             ! chain in date: expires in 3 days\n    fix: renew it\n\
             1 passed, 1 warned, 1 failed, 1 skipped\n"
        );
    }

    #[test]
    fn skipped_and_failed_checks_are_not_ok_warnings_are() {
        assert!(!report().ok());
        let warned = Report::new("ecr", vec![Check::warn("x", "t", "d", "h")]);
        assert!(warned.ok());
        let skipped = Report::new("ecr", vec![Check::skipped("x", "t", "r")]);
        assert!(!skipped.ok(), "a skipped check is never a pass");
    }

    #[test]
    fn json_is_versioned_with_counts_and_stable_ids() {
        let json = report().to_json();
        assert_eq!(json["format_version"], 1);
        assert_eq!(json["ok"], false);
        assert_eq!(
            json["counts"],
            serde_json::json!({"pass": 1, "warn": 1, "fail": 1, "skipped": 1})
        );
        assert_eq!(json["checks"][1]["id"], "a.two");
        assert_eq!(json["checks"][1]["outcome"], "fail");
        assert_eq!(json["checks"][1]["project"], "my-app");
        assert_eq!(json["checks"][1]["hint"], "rise-registry apply");
        assert!(json["checks"][0].get("hint").is_none());
        assert!(json["checks"][0].get("project").is_none());
    }
}
