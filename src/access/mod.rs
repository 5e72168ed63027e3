//! Who may have credentials, as plain values: [`AccessKind`] (push or
//! pull), [`AccessRule`] (an entry of a project's `access` or
//! `pull_access`) and, in [`claims`], the workload rules on a token's
//! claims.
//!
//! Config reads these rules and auth applies them, so they sit below
//! both: this module uses nothing of the crate but [`crate::naming`], and
//! neither config nor auth has to import the other for them.

pub mod claims;

use std::fmt;

use serde::Serialize;

use crate::naming::Principal;

pub use claims::WorkloadRule;

/// What credentials are asked for: `push` (which includes pull) or `pull`
/// only (`access=` on the credential request, `login --access`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum AccessKind {
    /// Push and pull.
    #[default]
    Push,
    /// Pull only.
    Pull,
}

impl AccessKind {
    pub const ALL: [Self; 2] = [Self::Push, Self::Pull];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Pull => "pull",
        }
    }

    /// # Errors
    /// Anything but `push` or `pull`, exactly.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "push" => Ok(Self::Push),
            "pull" => Ok(Self::Pull),
            _ => Err("`access` is `push` or `pull`".into()),
        }
    }

    pub fn is_push(self) -> bool {
        self == Self::Push
    }
}

impl fmt::Display for AccessKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry of a project's `access` or `pull_access`: a person or group
/// (`user:`, `group:`), or a workload by its token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AccessRule {
    Principal(Principal),
    Workload(WorkloadRule),
}

impl fmt::Display for AccessRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Principal(p) => p.fmt(f),
            Self::Workload(w) => w.fmt(f),
        }
    }
}
