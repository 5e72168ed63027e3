//! `rise-registry plan` and `apply`: observe AWS, diff against the
//! configuration, show the plan, and (apply) carry it out.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::config::{Config, EcrConfig, RegistryConfig};
use crate::reconcile::aws::Aws;
use crate::reconcile::desired::desired_state;
use crate::reconcile::plan::{Action, Plan, plan};
use crate::reconcile::render::{SavedPlan, fingerprint, to_json, to_text};
use crate::run::Status;

/// Actions of one stage run at once, at most.
const APPLY_CONCURRENCY: usize = 4;

fn ecr(config: &Config) -> Result<&EcrConfig> {
    match &config.registry {
        RegistryConfig::Ecr(ecr) => Ok(ecr),
        other => bail!(
            "plan and apply manage AWS ECR, but registry.type is `{}`\n  hint: use a run mode whose config sets `registry.type: ecr` (e.g. --run-mode production)",
            other.type_name()
        ),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Observes AWS and plans; returns the plan and the observed fingerprint.
async fn make_plan(aws: &Aws, config: &Config, ecr: &EcrConfig) -> Result<(Plan, String)> {
    let desired = desired_state(ecr, &config.projects)?;
    let observed = aws
        .observe()
        .await
        .context("reading the current state from AWS")?;
    Ok((plan(&desired, &observed), fingerprint(&observed)))
}

/// `plan [--json] [--detailed-exitcode] [--out FILE]`.
pub fn run_plan(
    config: &Config,
    json: bool,
    detailed_exitcode: bool,
    out_file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<Status> {
    let ecr = ecr(config)?;
    let (plan, observed) = runtime()?.block_on(async {
        let aws = Aws::new(ecr).await;
        let result = make_plan(&aws, config, ecr).await;
        log_calls(&aws);
        result
    })?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&to_json(&plan))?)?;
    } else {
        write!(out, "{}", to_text(&plan, stdout_colour()))?;
    }
    if let Some(path) = out_file {
        let saved = SavedPlan {
            format_version: 1,
            observed_fingerprint: observed,
            plan: plan.clone(),
        };
        std::fs::write(path, serde_json::to_string_pretty(&saved)?)
            .with_context(|| format!("writing the plan to {}", path.display()))?;
        if !json {
            writeln!(
                out,
                "\nSaved the plan to {}; `rise-registry apply {}` applies exactly it.",
                path.display(),
                path.display()
            )?;
        }
    }
    Ok(if detailed_exitcode && !plan.is_empty() {
        Status::Changes
    } else {
        Status::Success
    })
}

/// The AWS request count, for `-v` and the benchmarks.
fn log_calls(aws: &Aws) {
    let (reads, writes) = aws.calls.counts();
    tracing::info!(reads, writes, "AWS requests");
}

fn stdout_colour() -> bool {
    crate::run::colour_enabled(&std::io::stdout())
}

/// `apply [PLANFILE] [--auto-approve] [--json]`.
pub fn run_apply(
    config: &Config,
    planfile: Option<&Path>,
    auto_approve: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<Status> {
    let ecr = ecr(config)?;
    let rt = runtime()?;
    rt.block_on(async {
        let aws = Arc::new(Aws::new(ecr).await);
        let plan = match planfile {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the plan {}", path.display()))?;
                let saved: SavedPlan = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a saved plan", path.display()))?;
                let observed = aws.observe().await.context("reading the current state from AWS")?;
                if fingerprint(&observed) != saved.observed_fingerprint {
                    bail!(
                        "the account changed since {} was made, so it may no longer be right\n  hint: run `rise-registry plan --out {}` again",
                        path.display(),
                        path.display()
                    );
                }
                saved.plan
            }
            None => make_plan(&aws, config, ecr).await?.0,
        };
        if !json {
            write!(out, "{}", to_text(&plan, stdout_colour()))?;
        }
        if plan.is_empty() {
            if json {
                writeln!(out, "{}", json!({"applied": [], "failed": [], "not_started": 0,
                                   "interrupted": false, "unreachable": false}))?;
            }
            return Ok(Status::Success);
        }
        // A saved plan was reviewed when it was made; a fresh one is shown
        // and needs a yes.
        if planfile.is_none() && !auto_approve {
            confirm(out, plan.actions.len())?;
        }
        let result = execute(aws.clone(), plan, json, out).await;
        log_calls(&aws);
        result
    })
}

fn confirm(out: &mut dyn Write, count: usize) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "apply needs confirmation and there is no terminal to ask on; nothing was changed\n  hint: review `rise-registry plan`, then run `rise-registry apply --auto-approve`"
        );
    }
    write!(
        out,
        "\nApply these {count} actions? Only `yes` is accepted: "
    )?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("apply cancelled; nothing was changed");
    }
    Ok(())
}

/// One line per action as it completes.
fn describe(action: &Action) -> String {
    let v = serde_json::to_value(action).unwrap_or_default();
    let kind = v["action"].as_str().unwrap_or("action").replace('_', " ");
    let target = v["repository"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            let name = v["name"].as_str()?;
            Some(match v["policy"].as_str() {
                Some(policy) => format!("{name}/{policy}"),
                None => name.to_string(),
            })
        })
        .unwrap_or_default();
    format!("{kind} {target}")
}

/// The kind of a repository action (`None` for role actions).
fn repository_action_kind(action: &Action) -> Option<std::mem::Discriminant<Action>> {
    let on_repository = !matches!(
        action,
        Action::CreateRole { .. }
            | Action::UpdateTrust { .. }
            | Action::PutRolePolicy { .. }
            | Action::DeleteRolePolicy { .. }
    );
    on_repository.then(|| std::mem::discriminant(action))
}

/// Runs the actions stage by stage (the plan's order), the actions of one
/// stage side by side. A failed action does not stop the others, but two
/// things stop starting new ones (those under way finish): Ctrl-C, and AWS
/// becoming unreachable, where every further call would only fail the same
/// way after its retries.
async fn execute(aws: Arc<Aws>, plan: Plan, json: bool, out: &mut dyn Write) -> Result<Status> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let unreachable = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    let halted = || interrupted.load(Ordering::SeqCst) || unreachable.load(Ordering::SeqCst);
    let permits = Arc::new(Semaphore::new(APPLY_CONCURRENCY));
    let (mut applied, mut failed, mut not_started) = (Vec::new(), Vec::new(), 0usize);
    let mut remaining = plan.actions.into_iter().peekable();
    while let Some(first) = remaining.next() {
        // Role actions run one by one, in order: the push role's trust
        // names the controller role, which must exist first. Repository
        // actions of one kind touch different repositories: side by side.
        let mut batch = vec![first];
        if let Some(kind) = repository_action_kind(&batch[0]) {
            while remaining.peek().and_then(repository_action_kind) == Some(kind) {
                batch.push(remaining.next().expect("peeked"));
            }
        }
        if halted() {
            not_started += batch.len();
            continue;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for action in batch {
            let (aws, permits) = (aws.clone(), permits.clone());
            let (interrupted, unreachable) = (interrupted.clone(), unreachable.clone());
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                // Queued behind the permits: look again before starting.
                if interrupted.load(Ordering::SeqCst) || unreachable.load(Ordering::SeqCst) {
                    return (action, None);
                }
                let result = aws.execute(&action).await;
                if let Err(e) = &result
                    && e.downcast_ref::<crate::reconcile::aws::Unreachable>()
                        .is_some()
                {
                    unreachable.store(true, Ordering::SeqCst);
                }
                (action, Some(result))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (action, result) = joined.context("an action stopped unexpectedly")?;
            let line = describe(&action);
            match result {
                None => not_started += 1,
                Some(Ok(())) => {
                    if !json {
                        writeln!(out, "  done   {line}")?;
                    }
                    applied.push(line);
                }
                Some(Err(e)) => {
                    if !json {
                        writeln!(out, "  FAILED {line}: {e:#}")?;
                    }
                    failed.push(json!({"action": line, "error": format!("{e:#}")}));
                }
            }
        }
    }
    listener.abort();
    let stopped = interrupted.load(Ordering::SeqCst);
    let why = if stopped {
        "interrupted"
    } else {
        "AWS unreachable"
    };
    if json {
        writeln!(
            out,
            "{}",
            json!({"applied": applied, "failed": failed, "not_started": not_started,
                   "interrupted": stopped, "unreachable": unreachable.load(Ordering::SeqCst)})
        )?;
    } else {
        writeln!(
            out,
            "\nApply {}: {} done, {} failed{}.",
            if failed.is_empty() && not_started == 0 {
                "complete"
            } else {
                "incomplete"
            },
            applied.len(),
            failed.len(),
            if not_started > 0 {
                format!(", {not_started} not started ({why})")
            } else if stopped {
                ", interrupted".to_string()
            } else {
                String::new()
            }
        )?;
    }
    if !failed.is_empty() || not_started > 0 || stopped {
        bail!(
            "{} action(s) failed{}; run `rise-registry apply` again to converge",
            failed.len(),
            if not_started > 0 {
                format!(" and {not_started} did not start")
            } else {
                String::new()
            }
        );
    }
    Ok(Status::Success)
}
