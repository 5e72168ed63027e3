//! The project store's checks (docs/projects.md): reachable, its schema
//! this binary's, a controller leader when the controller is on, and no
//! project stuck on its way. [`gather`] reads the store (never writing);
//! [`checks`] decides, from what was read, with the time passed in.

use super::Check;
use crate::config::Config;
use crate::store::{Record, RepoState, Store, StoreError, migrations};

/// A project waiting longer than this for the controller is stuck.
pub const STUCK_AFTER_SECONDS: i64 = 300;

/// What reading the store found.
#[derive(Debug)]
pub struct Seen {
    /// What the store is (never its URL).
    pub describe: String,
    /// Opening it, or why it could not be.
    pub opened: Result<(), String>,
    /// The schema version it records.
    pub schema: Option<i64>,
    /// The controller's lease: holder and expiry (unix ms).
    pub lease: Option<(String, i64)>,
    pub controller_enabled: bool,
    pub rows: Vec<Record>,
}

/// Reads what [`checks`] needs; `None` without a store.
pub async fn gather(config: &Config) -> Option<Seen> {
    let store = config.store.as_ref()?;
    let mut seen = Seen {
        describe: store.url.describe(),
        opened: Ok(()),
        schema: None,
        lease: None,
        controller_enabled: config.controller.enabled,
        rows: Vec::new(),
    };
    let read = async {
        let Some(opened) = Store::open_existing(&store.url).await? else {
            return Ok::<_, StoreError>(None);
        };
        let schema = opened.schema_version().await?;
        let lease = opened.lease("controller").await?;
        let rows = opened.list().await?;
        Ok(Some((schema, lease, rows)))
    };
    match read.await {
        Ok(Some((schema, lease, rows))) => {
            seen.schema = schema;
            seen.lease = lease;
            seen.rows = rows;
        }
        Ok(None) => seen.schema = Some(migrations::latest()),
        Err(e) => seen.opened = Err(e.to_string()),
    }
    Some(seen)
}

/// The checks, from what was seen at `now_ms`.
pub fn checks(seen: &Seen, now_ms: i64) -> Vec<Check> {
    let mut out = Vec::new();
    if let Err(e) = &seen.opened {
        out.push(Check::fail(
            "store.reachable",
            "the project store can be read",
            format!("{}: {e}", seen.describe),
            "check store.url (RISE_STORE_URL) and that the database accepts this host; serve keeps serving known projects meanwhile",
        ));
        return out;
    }
    out.push(Check::pass(
        "store.reachable",
        "the project store can be read",
        format!("{}, {} projects", seen.describe, seen.rows.len()),
    ));
    out.push(Check::pass(
        "store.schema",
        "the store's schema is this release's",
        format!("version {}", seen.schema.unwrap_or(0)),
    ));
    if seen.controller_enabled {
        out.push(match &seen.lease {
            Some((holder, expires)) if *expires >= now_ms => Check::pass(
                "store.controller_leader",
                "a controller leads",
                format!("{holder}, lease for {} s more", (expires - now_ms) / 1000),
            ),
            Some((holder, expires)) => Check::fail(
                "store.controller_leader",
                "a controller leads",
                format!("the lease of {holder} ran out {} s ago", (now_ms - expires) / 1000),
                "no serve replica renews it: check that serve runs with controller.enabled and reaches the store (rise_registry_controller_leader)",
            ),
            None => Check::fail(
                "store.controller_leader",
                "a controller leads",
                "no replica has taken the lease",
                "start serve with controller.enabled (its logs say when it leads)",
            ),
        });
    }
    let now = now_ms / 1000;
    for row in &seen.rows {
        let waiting = now - row.updated_at;
        let check = match row.state {
            RepoState::Failed => Some(Check::fail(
                "store.project",
                "the project's repository is reconciled",
                format!(
                    "failed: {}",
                    row.message.as_deref().unwrap_or("no message recorded")
                ),
                "fix what the message names (often the controller role's permissions); the controller retries every pass",
            )),
            RepoState::Pending | RepoState::Deleting if waiting > STUCK_AFTER_SECONDS => {
                let what = if seen.controller_enabled {
                    "the controller has not reached it: see `rise_registry_controller_pending` and serve's logs"
                } else {
                    "controller.enabled is off: run `apply` (it reads the store), or turn the controller on"
                };
                Some(Check::warn(
                    "store.project",
                    "the project's repository is reconciled",
                    format!("{} for {waiting} s", row.state.as_str()),
                    what,
                ))
            }
            _ => None,
        };
        if let Some(check) = check {
            out.push(check.for_project(row.name.as_str()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Outcome;

    fn row(name: &str, state: RepoState, updated_at: i64, message: Option<&str>) -> Record {
        Record {
            updated_at,
            message: message.map(str::to_string),
            ..Record::for_test(name, state, "{}")
        }
    }

    fn seen(controller: bool, lease: Option<(&str, i64)>, rows: Vec<Record>) -> Seen {
        Seen {
            describe: "PostgreSQL".into(),
            opened: Ok(()),
            schema: Some(1),
            lease: lease.map(|(h, e)| (h.to_string(), e)),
            controller_enabled: controller,
            rows,
        }
    }

    fn outcomes(checks: &[Check]) -> Vec<(&str, Option<&str>, Outcome)> {
        checks
            .iter()
            .map(|c| (c.id, c.project.as_deref(), c.outcome))
            .collect()
    }

    #[test]
    fn a_store_that_cannot_be_read_is_one_failure_with_what_to_check() {
        let s = Seen {
            opened: Err("connection refused".into()),
            ..seen(true, None, vec![])
        };
        let c = checks(&s, 0);
        assert_eq!(outcomes(&c), [("store.reachable", None, Outcome::Fail)]);
        assert!(c[0].detail.contains("connection refused"));
        assert!(c[0].hint.as_deref().unwrap().contains("RISE_STORE_URL"));
    }

    #[test]
    fn a_lease_that_ran_out_means_no_leader() {
        let now = 1_000_000;
        let led = checks(&seen(true, Some(("pod-a", now + 9_000)), vec![]), now);
        assert_eq!(led[2].outcome, Outcome::Pass);
        assert!(led[2].detail.contains("pod-a, lease for 9 s"));
        let lapsed = checks(&seen(true, Some(("pod-a", now - 60_000)), vec![]), now);
        assert_eq!(lapsed[2].outcome, Outcome::Fail);
        assert!(lapsed[2].detail.contains("ran out 60 s ago"));
        let none = checks(&seen(true, None, vec![]), now);
        assert_eq!(none[2].outcome, Outcome::Fail);
        // Without the controller there is no leader to check.
        assert_eq!(checks(&seen(false, None, vec![]), now).len(), 2);
    }

    #[test]
    fn failed_and_stuck_projects_are_named_fresh_ones_are_not() {
        let now_s = 10_000;
        let rows = vec![
            row(
                "broken",
                RepoState::Failed,
                now_s,
                Some("AccessDenied: ecr:CreateRepository"),
            ),
            row("stuck", RepoState::Pending, now_s - 600, None),
            row("fresh", RepoState::Pending, now_s - 10, None),
            row("fine", RepoState::Ready, 0, None),
        ];
        let c = checks(&seen(false, None, rows), now_s * 1000);
        assert_eq!(
            outcomes(&c),
            [
                ("store.reachable", None, Outcome::Pass),
                ("store.schema", None, Outcome::Pass),
                ("store.project", Some("broken"), Outcome::Fail),
                ("store.project", Some("stuck"), Outcome::Warn),
            ]
        );
        assert!(c[2].detail.contains("AccessDenied"));
        assert!(c[3].hint.as_deref().unwrap().contains("run `apply`"));
    }
}
