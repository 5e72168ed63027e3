//! apply's executor: runs a plan's actions in order and reports what
//! happened to each, as a value ([`ApplyReport`]) the command prints as text
//! or JSON.
//!
//! The order rules are a pure function of the plan ([`batches`]); talking
//! to AWS is behind [`Executor`], which [`Aws`] implements and tests replace.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::aws::Aws;
use super::plan::Action;
use crate::aws::sdk::Unreachable;

/// Actions of one batch under way at once, at most. With [`Aws`], fewer
/// send requests at a time: each takes a slot of its adaptive limit
/// (src/aws/adaptive.rs), which follows AWS's throttling.
pub(crate) const APPLY_CONCURRENCY: usize = crate::aws::adaptive::MAX as usize;

/// What carries out one action. [`Aws`] in production.
pub trait Executor: Send + Sync + 'static {
    /// Carries out `action`, with a note for the output when something
    /// happened worth telling (such as waiting for IAM); an error whose
    /// cause is an [`Unreachable`] stops apply from starting further
    /// actions.
    fn execute(&self, action: &Action) -> impl Future<Output = Result<Option<String>>> + Send;
}

impl Executor for Aws {
    fn execute(&self, action: &Action) -> impl Future<Output = Result<Option<String>>> + Send {
        Aws::execute(self, action)
    }
}

/// What apply did, in the shape of `apply --json`'s result object
/// (docs/plan-format.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Each completed action, as its [`Action`] `Display` line.
    pub applied: Vec<String>,
    pub failed: Vec<Failure>,
    /// Actions never begun: Ctrl-C, or AWS unreachable.
    pub not_started: usize,
    pub interrupted: bool,
    pub unreachable: bool,
}

/// An action AWS refused or that could not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub action: String,
    pub error: String,
}

impl ApplyReport {
    /// Everything in the plan was done.
    pub(crate) fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.not_started == 0 && !self.interrupted
    }
}

/// How one action ended, as it ends: for progress lines.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Done, with the executor's note if it had one.
    Done(&'a Action, Option<&'a str>),
    Failed(&'a Action, &'a anyhow::Error),
}

/// Whether `action` works on a repository (not a role), and so may run
/// beside other repository actions of its kind.
fn on_repository(action: &Action) -> bool {
    !matches!(
        action,
        Action::CreateRole { .. }
            | Action::UpdateTrust { .. }
            | Action::PutRolePolicy { .. }
            | Action::DeleteRolePolicy { .. }
            | Action::SetRoleTags { .. }
    )
}

/// Splits the plan's actions into batches that run one after another, in
/// the plan's order. Role actions are a batch each, in order: the push
/// role's trust names the controller role, which must exist first.
/// Consecutive repository actions of one kind touch different repositories
/// and form one batch that runs side by side.
pub(crate) fn batches(actions: Vec<Action>) -> Vec<Vec<Action>> {
    let mut out: Vec<Vec<Action>> = Vec::new();
    for action in actions {
        let joins_last = out.last().and_then(|b| b.last()).is_some_and(|last| {
            on_repository(last)
                && on_repository(&action)
                && std::mem::discriminant(last) == std::mem::discriminant(&action)
        });
        match out.last_mut() {
            Some(batch) if joins_last => batch.push(action),
            _ => out.push(vec![action]),
        }
    }
    out
}

/// Runs the actions batch by batch, those of one batch side by side (at
/// most [`APPLY_CONCURRENCY`]), calling `progress` as each ends. A failed
/// action does not stop the others, but two things stop starting new ones
/// (those under way finish): `interrupted` becoming true (Ctrl-C), and AWS
/// becoming unreachable, where every further call would only fail the same
/// way after its retries.
///
/// # Errors
/// Only when an action's task itself stopped (a panic); AWS errors are
/// [`Failure`]s in the report.
pub(crate) async fn execute<E: Executor>(
    executor: Arc<E>,
    actions: Vec<Action>,
    interrupted: Arc<AtomicBool>,
    mut progress: impl FnMut(Progress<'_>) -> Result<()>,
) -> Result<ApplyReport> {
    let unreachable = Arc::new(AtomicBool::new(false));
    let halted = {
        let (interrupted, unreachable) = (interrupted.clone(), unreachable.clone());
        move || interrupted.load(Ordering::SeqCst) || unreachable.load(Ordering::SeqCst)
    };
    let permits = Arc::new(Semaphore::new(APPLY_CONCURRENCY));
    let mut report = ApplyReport::default();
    for batch in batches(actions) {
        if halted() {
            report.not_started += batch.len();
            continue;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for action in batch {
            let (executor, permits) = (executor.clone(), permits.clone());
            let (halted, unreachable) = (halted.clone(), unreachable.clone());
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                // Queued behind the permits: look again before starting.
                if halted() {
                    return (action, None);
                }
                let result = executor.execute(&action).await;
                if let Err(e) = &result
                    && e.downcast_ref::<Unreachable>().is_some()
                {
                    unreachable.store(true, Ordering::SeqCst);
                }
                (action, Some(result))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (action, result) = joined.context("an action stopped unexpectedly")?;
            match result {
                None => report.not_started += 1,
                Some(Ok(note)) => {
                    progress(Progress::Done(&action, note.as_deref()))?;
                    report.applied.push(action.to_string());
                }
                Some(Err(e)) => {
                    progress(Progress::Failed(&action, &e))?;
                    report.failed.push(Failure {
                        action: action.to_string(),
                        error: format!("{e:#}"),
                    });
                }
            }
        }
    }
    report.interrupted = interrupted.load(Ordering::SeqCst);
    report.unreachable = unreachable.load(Ordering::SeqCst);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::reconcile::plan::RoleKind;

    fn repo(kind: &str, name: &str) -> Action {
        let repository = name.to_string();
        match kind {
            "orphan" => Action::Orphan { repository },
            "unorphan" => Action::Unorphan { repository },
            "delete" => Action::DeleteRepository { repository },
            _ => Action::SetTags {
                repository,
                set: BTreeMap::new(),
                remove: vec![],
            },
        }
    }

    fn role(name: &str) -> Action {
        Action::UpdateTrust {
            role: RoleKind::Controller,
            name: name.into(),
            before: json!({}),
            after: json!({}),
        }
    }

    fn names(batches: &[Vec<Action>]) -> Vec<Vec<String>> {
        batches
            .iter()
            .map(|b| b.iter().map(ToString::to_string).collect())
            .collect()
    }

    #[test]
    fn role_actions_run_alone_and_repository_actions_of_one_kind_together() {
        let actions = vec![
            role("a"),
            role("b"),
            repo("unorphan", "r/1"),
            repo("unorphan", "r/2"),
            repo("tags", "r/1"),
            repo("orphan", "r/3"),
            repo("orphan", "r/4"),
            repo("delete", "r/5"),
        ];
        assert_eq!(
            names(&batches(actions)),
            vec![
                vec!["update trust a"],
                vec!["update trust b"],
                vec!["unorphan r/1", "unorphan r/2"],
                vec!["set tags r/1"],
                vec!["orphan r/3", "orphan r/4"],
                vec!["delete repository r/5"],
            ]
        );
        assert!(batches(vec![]).is_empty());
    }

    #[test]
    fn a_kind_that_comes_back_later_starts_a_new_batch() {
        let actions = vec![
            repo("orphan", "r/1"),
            repo("delete", "r/2"),
            repo("orphan", "r/3"),
        ];
        assert_eq!(batches(actions).len(), 3);
    }

    /// Fails the actions named in `fail`; an `unreachable` one fails as
    /// AWS being out of reach.
    struct Scripted {
        fail: Vec<&'static str>,
        unreachable: Vec<&'static str>,
        started: Mutex<Vec<String>>,
    }

    impl Executor for Scripted {
        fn execute(&self, action: &Action) -> impl Future<Output = Result<Option<String>>> + Send {
            let line = action.to_string();
            self.started.lock().unwrap().push(line.clone());
            let result = if self.unreachable.iter().any(|n| line.ends_with(n)) {
                Err(Unreachable::for_test("reading").into())
            } else if self.fail.iter().any(|n| line.ends_with(n)) {
                Err(anyhow::anyhow!("AccessDenied: no"))
            } else {
                Ok(None)
            };
            std::future::ready(result)
        }
    }

    fn scripted(fail: Vec<&'static str>, unreachable: Vec<&'static str>) -> Arc<Scripted> {
        Arc::new(Scripted {
            fail,
            unreachable,
            started: Mutex::new(Vec::new()),
        })
    }

    #[tokio::test]
    async fn a_failure_is_reported_and_the_rest_still_run() {
        let exec = scripted(vec!["r/2"], vec![]);
        let mut lines = Vec::new();
        let report = execute(
            exec.clone(),
            vec![
                role("a"),
                repo("orphan", "r/1"),
                repo("orphan", "r/2"),
                repo("delete", "r/3"),
            ],
            Arc::new(AtomicBool::new(false)),
            |p| {
                lines.push(match p {
                    Progress::Done(a, _) => format!("done {a}"),
                    Progress::Failed(a, e) => format!("failed {a}: {e}"),
                });
                Ok(())
            },
        )
        .await
        .unwrap();
        assert_eq!(
            report.failed,
            vec![Failure {
                action: "orphan r/2".into(),
                error: "AccessDenied: no".into(),
            }]
        );
        let mut applied = report.applied.clone();
        applied.sort();
        assert_eq!(
            applied,
            ["delete repository r/3", "orphan r/1", "update trust a"]
        );
        assert_eq!(report.not_started, 0);
        assert!(!report.is_complete());
        assert_eq!(lines.len(), 4);
        assert!(lines.contains(&"failed orphan r/2: AccessDenied: no".to_string()));
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            json!({"applied": report.applied, "failed": [{"action": "orphan r/2", "error": "AccessDenied: no"}],
                   "not_started": 0, "interrupted": false, "unreachable": false})
        );
    }

    #[tokio::test]
    async fn unreachable_aws_stops_new_actions_and_counts_them() {
        let exec = scripted(vec![], vec!["trust a"]);
        let report = execute(
            exec.clone(),
            vec![
                role("a"),
                role("b"),
                repo("orphan", "r/1"),
                repo("orphan", "r/2"),
            ],
            Arc::new(AtomicBool::new(false)),
            |_| Ok(()),
        )
        .await
        .unwrap();
        assert!(report.unreachable && !report.interrupted);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.not_started, 3);
        assert_eq!(*exec.started.lock().unwrap(), ["update trust a"]);
    }

    #[tokio::test]
    async fn an_interrupt_before_the_start_runs_nothing() {
        let exec = scripted(vec![], vec![]);
        let report = execute(
            exec.clone(),
            vec![role("a"), repo("orphan", "r/1")],
            Arc::new(AtomicBool::new(true)),
            |_| Ok(()),
        )
        .await
        .unwrap();
        assert!(report.interrupted);
        assert_eq!(report.not_started, 2);
        assert!(exec.started.lock().unwrap().is_empty());
        assert!(!report.is_complete());
    }

    #[tokio::test]
    async fn an_empty_plan_reports_nothing_done() {
        let report = execute(
            scripted(vec![], vec![]),
            vec![],
            Arc::new(AtomicBool::new(false)),
            |_| Ok(()),
        )
        .await
        .unwrap();
        assert_eq!(report, ApplyReport::default());
        assert!(report.is_complete());
    }
}
