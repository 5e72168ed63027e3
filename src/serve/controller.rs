//! The controller inside serve (`controller.enabled`, docs/projects.md):
//! on one leader among the replicas, it reconciles the repositories of
//! every project, config and store, through the same pipeline as `apply
//! --scope repositories`, and writes each store project's repository state
//! back.
//!
//! - **One leader.** A lease row in the store, taken and renewed in one
//!   statement every third of its lifetime; a leader that dies is replaced
//!   once its lease runs out. A replica that cannot renew stops leading at
//!   once, before the lease could pass to another.
//! - **When.** After every change to the project snapshot (a write through
//!   any replica's API, a config reload), a short moment later so a burst
//!   is one pass; and every `interval_seconds`, which reads AWS again and
//!   repairs drift.
//! - **States.** [`outcomes`] (pure) reads the pass's plan and report: a
//!   project whose repository actions all succeeded is `ready`; one whose
//!   action failed is `failed` with AWS's message; a project being deleted
//!   whose repository was orphaned or deleted (or was never there) has its
//!   row removed. A row changed during the pass keeps its state for the
//!   next pass (the write is a compare-and-set on its revision).
//!
//! Registries other than ECR have no repositories to make (a push makes
//! them), so a pass only moves states.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::app::App;
use super::snapshot::{Rows, StoreLink};
use crate::config::{ControllerConfig, EcrConfig, RegistryConfig};
use crate::naming::ProjectName;
use crate::reconcile::apply::ApplyReport;
use crate::reconcile::aws::Aws;
use crate::reconcile::pipeline::Reconciler;
use crate::reconcile::plan::{Action, Plan, Scope};
use crate::store::{RepoState, Store};

/// The lease's name in the store.
const LEASE: &str = "controller";
/// Changes that come together are one pass: the controller waits this
/// long after the first.
const SETTLE: Duration = Duration::from_millis(200);

/// What a pass decided for one store project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The repository is as config says.
    Ready,
    /// An action on it failed: AWS's message.
    Failed(String),
    /// Being deleted, and its repository is orphaned, deleted or absent:
    /// the row may go.
    Gone,
    /// Being deleted, and orphaning or deleting failed: the row stays.
    StillDeleting(String),
}

/// Each store project's outcome, from the pass's plan and what executing
/// it reported. `repository` names a project's repository.
pub fn outcomes(
    rows: &Rows,
    plan: &Plan,
    report: &ApplyReport,
    repository: impl Fn(&ProjectName) -> String,
) -> BTreeMap<ProjectName, Outcome> {
    // An action that did not run (interrupted, AWS unreachable) is as good
    // as failed: the repository is not known to be right.
    let done: std::collections::BTreeSet<&str> =
        report.applied.iter().map(String::as_str).collect();
    let mut problems: BTreeMap<&str, String> = BTreeMap::new();
    for action in &plan.actions {
        let Some(repo) = action.repository() else {
            continue;
        };
        let line = action.to_string();
        if done.contains(line.as_str()) {
            continue;
        }
        let message = report
            .failed
            .iter()
            .find(|f| f.action == line)
            .map(|f| format!("{}: {}", f.action, f.error))
            .unwrap_or_else(|| format!("{line}: not started (AWS unreachable or stopped)"));
        problems.entry(repo).or_insert(message);
    }
    rows.values()
        .map(|row| {
            let name = row.record.name.clone();
            let problem = problems.get(repository(&name).as_str()).cloned();
            // A row whose rules cannot be read made no project, so no
            // action: it is not `ready`, whatever the plan says.
            let problem = match (&row.spec, problem) {
                (Err(e), None) if row.record.state != RepoState::Deleting => {
                    Some(format!("its rules cannot be read: {e}"))
                }
                (_, problem) => problem,
            };
            let outcome = match (row.record.state == RepoState::Deleting, problem) {
                (false, None) => Outcome::Ready,
                (false, Some(m)) => Outcome::Failed(m),
                (true, None) => Outcome::Gone,
                (true, Some(m)) => Outcome::StillDeleting(m),
            };
            (name, outcome)
        })
        .collect()
}

/// Runs the controller until `stop`: leads when it can, and passes while
/// it leads.
pub async fn run(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let Some(link) = app.store_link() else {
        return;
    };
    let settings = app.live().base.controller.clone();
    if !settings.enabled {
        return;
    }
    app.metrics.set_controller_leader(false);
    let holder = holder_id();
    let (leading_tx, mut leading_rx) = watch::channel(false);
    // Set the moment the lease is lost: a pass under way starts nothing
    // more and writes no state, so a deposed leader never works beside
    // the new one.
    let deposed = Arc::new(AtomicBool::new(true));
    let lease = tokio::spawn(hold_lease(
        link.store.clone(),
        holder.clone(),
        settings.clone(),
        leading_tx,
        deposed.clone(),
        app.clone(),
    ));
    let mut aws: Option<Arc<Aws>> = None;
    let interval = Duration::from_secs(settings.interval_seconds.into());
    let mut next_full = tokio::time::Instant::now();
    loop {
        let leading = *leading_rx.borrow_and_update();
        if leading {
            let started = Instant::now();
            let result = pass(&app, link, &mut aws, &deposed).await;
            let pending = app
                .live()
                .rows
                .values()
                .filter(|r| r.record.state != RepoState::Ready)
                .count();
            if let Err(e) = &result {
                tracing::warn!(error = %format!("{e:#}"), "controller pass failed; the next one retries");
            }
            app.metrics
                .controller_pass(result.is_ok(), started.elapsed(), pending);
            next_full = tokio::time::Instant::now() + interval;
        }
        tokio::select! {
            () = app.changed.notified() => tokio::time::sleep(SETTLE).await,
            () = tokio::time::sleep_until(next_full) => {}
            _ = leading_rx.changed() => {}
            _ = stop.changed() => break,
        }
    }
    lease.abort();
    let _ = link.store.release_lease(LEASE, &holder).await;
}

/// This replica's name in the lease: host, process and a nonce, so a
/// restarted process is a new holder.
fn holder_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "serve".into());
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}/{}/{nonce:08x}", std::process::id())
}

/// Takes and renews the lease, telling `leading` whether this replica
/// leads.
async fn hold_lease(
    store: Store,
    holder: String,
    settings: ControllerConfig,
    leading: watch::Sender<bool>,
    deposed: Arc<AtomicBool>,
    app: Arc<App>,
) {
    let ttl = Duration::from_secs(settings.lease_seconds.into());
    let every = ttl / 3;
    loop {
        let asked = tokio::time::Instant::now();
        let held = tokio::time::timeout(
            every,
            store.acquire_lease(
                LEASE,
                &holder,
                crate::clock::unix_now_ms(),
                i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            ),
        )
        .await;
        let held = matches!(held, Ok(Ok(true)));
        deposed.store(!held, Ordering::SeqCst);
        if held != *leading.borrow() {
            if held {
                tracing::info!(holder = %holder, "this replica leads the controller");
            } else {
                tracing::info!(holder = %holder, "this replica no longer leads the controller");
            }
            leading.send_replace(held);
            app.metrics.set_controller_leader(held);
        }
        tokio::time::sleep_until(asked + every).await;
    }
}

/// One pass: reconcile, then write the states back.
async fn pass(
    app: &App,
    link: &StoreLink,
    aws: &mut Option<Arc<Aws>>,
    deposed: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let live = app.live();
    let (plan, report) = match &live.config.registry {
        RegistryConfig::Ecr(ecr) => {
            let aws = match aws {
                Some(aws) => aws.clone(),
                None => aws.insert(Arc::new(Aws::new(ecr).await)).clone(),
            };
            reconcile_ecr(ecr, &live.config.projects, aws, deposed).await?
        }
        // Nothing to make: a push makes the repository.
        _ => (Plan::default(), ApplyReport::default()),
    };
    let outcomes = outcomes(&live.rows, &plan, &report, |name| {
        live.config.registry.repository_name(name)
    });
    write_back(app, link, &live.rows, outcomes, deposed).await
}

async fn reconcile_ecr(
    ecr: &EcrConfig,
    projects: &[crate::config::Project],
    aws: Arc<Aws>,
    deposed: &Arc<AtomicBool>,
) -> anyhow::Result<(Plan, ApplyReport)> {
    let reconciler = Reconciler::with_aws(aws, ecr, projects);
    let planned = reconciler.plan(Scope::Repositories, &|_, _| {}).await?;
    let plan = planned.plan;
    for action in &plan.actions {
        tracing::info!(action = %action, "controller");
    }
    // Nobody reviews a controller's pass: beyond `max_deletions`, the
    // deletions are held back (their projects stay `deleting`, saying why),
    // and so are lifecycle changes that expire images; everything else
    // goes ahead.
    let held = crate::reconcile::plan::check_deletions(&plan, ecr.max_deletions).err();
    let expiring: Vec<String> = crate::reconcile::plan::expiring(&plan)
        .into_iter()
        .map(|(repository, _)| repository.to_string())
        .collect();
    let mut runnable = plan.clone();
    if let Some(why) = &held {
        tracing::error!(refusal = %why, "controller: deletions held back; raise registry.max_deletions or run `apply --allow-destroy` after review");
        runnable
            .actions
            .retain(|a| !matches!(a, Action::DeleteRepository { .. }));
    }
    let mut held_lifecycle = Vec::new();
    if !expiring.is_empty() {
        tracing::error!(repositories = ?expiring, "controller: lifecycle changes that expire images held back; run `apply --allow-destroy` after review");
        // Only the change that expires images waits; the repository's
        // other changes go ahead.
        for action in &mut runnable.actions {
            if let Action::UpdateRepository {
                repository,
                changes,
            } = action
                && expiring.contains(repository)
            {
                // Held-back repositories are expiring ones: a change that
                // expires images there, adopted or not, waits.
                changes.retain(|c| !crate::reconcile::plan::change_expires(c, true));
                held_lifecycle.push(repository.clone());
            }
        }
        runnable.actions.retain(
            |a| !matches!(a, Action::UpdateRepository { changes, .. } if changes.is_empty()),
        );
    }
    let mut report = if runnable.is_empty() {
        ApplyReport::default()
    } else {
        reconciler
            .execute(runnable, deposed.clone(), |_| Ok(()))
            .await?
    };
    if let Some(why) = held {
        for action in &plan.actions {
            if matches!(action, Action::DeleteRepository { .. }) {
                report.failed.push(crate::reconcile::apply::Failure {
                    action: action.to_string(),
                    error: format!("held back: {why}"),
                });
            }
        }
    }
    for repository in held_lifecycle {
        report.failed.push(crate::reconcile::apply::Failure {
            action: format!("update repository {repository}"),
            error: "held back: its lifecycle change would expire images; run `apply --allow-destroy` after review".to_string(),
        });
    }
    for failure in &report.failed {
        tracing::warn!(action = %failure.action, error = %failure.error, "controller action failed");
    }
    Ok((plan, report))
}

/// Writes each outcome that changes a row: a pass that finds nothing new
/// writes nothing, so it wakes nobody (every write is announced, and
/// would start another pass). A repository that was `ready` and whose
/// repair failed stays `ready`, with the message: its credentials still
/// work, and holding them back would only stop pushes that succeed.
async fn write_back(
    app: &App,
    link: &StoreLink,
    rows: &Rows,
    outcomes: BTreeMap<ProjectName, Outcome>,
    deposed: &AtomicBool,
) -> anyhow::Result<()> {
    let now = crate::clock::unix_now();
    let _sync = app.store_sync().await;
    let mut changed = Vec::new();
    for (name, outcome) in outcomes {
        let Some(row) = rows.get(&name) else { continue };
        if deposed.load(Ordering::SeqCst) {
            // Another replica leads now; it writes what it finds.
            break;
        }
        let record = &row.record;
        let (state, message) = match &outcome {
            Outcome::Gone => {
                if link.store.remove_deleted(record).await? {
                    tracing::info!(project = %name, "controller: deleted project's row removed");
                    changed.push(name);
                }
                continue;
            }
            Outcome::Ready => (RepoState::Ready, None),
            Outcome::Failed(m) if record.state == RepoState::Ready => {
                (RepoState::Ready, Some(m.as_str()))
            }
            Outcome::Failed(m) => (RepoState::Failed, Some(m.as_str())),
            Outcome::StillDeleting(m) => (RepoState::Deleting, Some(m.as_str())),
        };
        if record.state == state && record.message.as_deref() == message {
            continue;
        }
        if link.store.set_state(record, state, message, now).await? {
            tracing::info!(project = %name, state = state.as_str(), message = ?message, "controller");
            changed.push(name);
        }
    }
    // This replica sees its own writes at once; the others by notification.
    let mut fresh = Vec::with_capacity(changed.len());
    for name in changed {
        let record = link.store.get(&name).await?;
        fresh.push((name, record));
    }
    app.patch_rows(fresh);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::apply::Failure;
    use crate::serve::snapshot::StoredProject;
    use crate::store::Record;

    fn row(name: &str, state: RepoState) -> (ProjectName, Arc<StoredProject>) {
        let record = Record::for_test(name, state, r#"{"access":[],"pull_access":[]}"#);
        (record.name.clone(), Arc::new(StoredProject::new(record)))
    }

    fn repo(name: &ProjectName) -> String {
        format!("rise/{name}")
    }

    #[test]
    fn states_follow_what_the_pass_did_to_each_repository() {
        let rows: Rows = [
            row("made", RepoState::Pending),
            row("refused", RepoState::Pending),
            row("untouched", RepoState::Ready),
            row("orphaned", RepoState::Deleting),
            row("stuck", RepoState::Deleting),
            row("never-made", RepoState::Deleting),
            row("cut-short", RepoState::Pending),
        ]
        .into_iter()
        .collect();
        let create = |n: &str| Action::CreateRepository {
            repository: format!("rise/{n}"),
            tags: BTreeMap::new(),
            settings: crate::repository_settings::Values::defaults(),
        };
        let plan = Plan {
            actions: vec![
                create("made"),
                create("refused"),
                Action::Orphan {
                    repository: "rise/orphaned".into(),
                },
                Action::Orphan {
                    repository: "rise/stuck".into(),
                },
                create("cut-short"),
            ],
            ..Plan::default()
        };
        let report = ApplyReport {
            applied: vec![
                "create repository rise/made".into(),
                "orphan rise/orphaned".into(),
            ],
            failed: vec![
                Failure {
                    action: "create repository rise/refused".into(),
                    error: "AccessDenied".into(),
                },
                Failure {
                    action: "orphan rise/stuck".into(),
                    error: "Throttled".into(),
                },
            ],
            not_started: 1,
            unreachable: true,
            ..ApplyReport::default()
        };
        let got = outcomes(&rows, &plan, &report, repo);
        let of = |n: &str| got[&ProjectName::parse(n).unwrap()].clone();
        assert_eq!(of("made"), Outcome::Ready);
        assert_eq!(of("untouched"), Outcome::Ready);
        assert_eq!(
            of("refused"),
            Outcome::Failed("create repository rise/refused: AccessDenied".into())
        );
        assert_eq!(of("orphaned"), Outcome::Gone);
        assert_eq!(of("never-made"), Outcome::Gone);
        assert_eq!(
            of("stuck"),
            Outcome::StillDeleting("orphan rise/stuck: Throttled".into())
        );
        assert!(
            matches!(of("cut-short"), Outcome::Failed(m) if m.contains("not started")),
            "{:?}",
            of("cut-short")
        );
    }

    #[test]
    fn without_repositories_to_make_every_project_is_ready_or_gone() {
        let rows: Rows = [row("a", RepoState::Pending), row("b", RepoState::Deleting)]
            .into_iter()
            .collect();
        let got = outcomes(&rows, &Plan::default(), &ApplyReport::default(), repo);
        assert_eq!(got[&ProjectName::parse("a").unwrap()], Outcome::Ready);
        assert_eq!(got[&ProjectName::parse("b").unwrap()], Outcome::Gone);
    }
}
