//! `rise-registry plan` and `apply`: observe AWS, diff against the
//! configuration, show the plan, and (apply) carry it out.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

use super::{Env, Status};
use crate::config::{Config, EcrConfig, RegistryConfig};
use crate::reconcile::apply::{self, ApplyReport, Progress};
use crate::reconcile::aws::Aws;
use crate::reconcile::desired::desired_state;
use crate::reconcile::plan::{Plan, Scope, plan_scope};
use crate::reconcile::render::{SavedPlan, fingerprint, to_json, to_text};

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
async fn make_plan(
    aws: &Aws,
    config: &Config,
    ecr: &EcrConfig,
    scope: Scope,
) -> Result<(Plan, String)> {
    let desired = desired_state(ecr, &config.projects)?;
    let observed = aws
        .observe(scope)
        .await
        .context("reading the current state from AWS")?;
    Ok((
        plan_scope(&desired, &observed, scope),
        fingerprint(&observed),
    ))
}

/// `--scope` as given, or the configuration's default.
fn scope_of(ecr: &EcrConfig, scope: Option<Scope>) -> Scope {
    scope.unwrap_or_else(|| Scope::default_for(ecr.manage_roles))
}

/// `plan [--json] [--detailed-exitcode] [--out FILE] [--scope S]`.
pub(crate) fn run_plan(
    config: &Config,
    json: bool,
    detailed_exitcode: bool,
    out_file: Option<&Path>,
    scope: Option<Scope>,
    env: &mut Env<'_>,
) -> Result<Status> {
    let out = &mut *env.stdout;
    let ecr = ecr(config)?;
    let scope = scope_of(ecr, scope);
    let (plan, observed) = runtime()?.block_on(async {
        let aws = Aws::new(ecr).await;
        let result = make_plan(&aws, config, ecr, scope).await;
        log_calls(&aws);
        result
    })?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&to_json(&plan))?)?;
    } else {
        write!(out, "{}", to_text(&plan, env.colour))?;
    }
    if let Some(path) = out_file {
        let saved = SavedPlan::new(observed, scope, plan.clone());
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

/// `apply [PLANFILE] [--auto-approve] [--json] [--scope S]`.
pub(crate) fn run_apply(
    config: &Config,
    planfile: Option<&Path>,
    auto_approve: bool,
    json: bool,
    scope: Option<Scope>,
    env: &mut Env<'_>,
) -> Result<Status> {
    let ecr = ecr(config)?;
    let rt = runtime()?;
    rt.block_on(async {
        let aws = Arc::new(Aws::new(ecr).await);
        let plan = match planfile {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the plan {}", path.display()))?;
                let saved = SavedPlan::parse(&text)
                    .with_context(|| format!("{} is not a saved plan", path.display()))?;
                // A saved plan covers the scope it was made for.
                if let Some(asked) = scope
                    && asked != saved.scope
                {
                    bail!(
                        "{} was made with --scope {}, not {}\n  hint: apply it without --scope, or make a plan with the scope you want",
                        path.display(),
                        saved.scope.as_str(),
                        asked.as_str()
                    );
                }
                let observed = aws
                    .observe(saved.scope)
                    .await
                    .context("reading the current state from AWS")?;
                if fingerprint(&observed) != saved.observed_fingerprint {
                    bail!(
                        "the account changed since {} was made, so it may no longer be right\n  hint: run `rise-registry plan --out {}` again",
                        path.display(),
                        path.display()
                    );
                }
                saved.plan
            }
            None => make_plan(&aws, config, ecr, scope_of(ecr, scope)).await?.0,
        };
        // A saved plan was reviewed when it was made; a fresh one is shown
        // and needs a yes. With --json, stdout is for the machine, so the
        // plan to review goes beside the question, on stderr.
        let confirming = planfile.is_none() && !auto_approve && !plan.is_empty();
        if !json {
            write!(env.stdout, "{}", to_text(&plan, env.colour))?;
        } else if confirming {
            write!(env.stderr, "{}", to_text(&plan, false))?;
        }
        let report = if plan.is_empty() {
            ApplyReport::default()
        } else {
            if confirming {
                confirm(env, plan.actions.len())?;
            }
            let report = execute(aws.clone(), plan, json, env).await;
            log_calls(&aws);
            report?
        };
        finish(&report, json, env)
    })
}

/// Asks on the terminal (stderr, so stdout stays data) for a literal `yes`.
fn confirm(env: &mut Env<'_>, count: usize) -> Result<()> {
    let Some(terminal) = env.terminal.as_mut() else {
        bail!(
            "apply needs confirmation and there is no terminal to ask on; nothing was changed\n  hint: review `rise-registry plan`, then run `rise-registry apply --auto-approve`"
        );
    };
    write!(
        env.stderr,
        "\nApply these {count} actions? Only `yes` is accepted: "
    )?;
    env.stderr.flush()?;
    let mut answer = String::new();
    terminal.read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("apply cancelled; nothing was changed");
    }
    Ok(())
}

/// Runs the plan with Ctrl-C wired to stop new actions, printing one line
/// per action as it ends (text mode).
async fn execute(aws: Arc<Aws>, plan: Plan, json: bool, env: &mut Env<'_>) -> Result<ApplyReport> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    let out = &mut *env.stdout;
    let report = apply::execute(aws, plan.actions, interrupted, |progress| {
        if !json {
            match progress {
                Progress::Done(action, None) => writeln!(out, "  done   {action}")?,
                Progress::Done(action, Some(note)) => {
                    writeln!(out, "  done   {action} ({note})")?;
                }
                Progress::Failed(action, e) => writeln!(out, "  FAILED {action}: {e:#}")?,
            }
        }
        Ok(())
    })
    .await;
    listener.abort();
    report
}

/// Prints the report (a summary line, or the JSON result object) and turns
/// an incomplete apply into an error that says how to converge.
fn finish(report: &ApplyReport, json: bool, env: &mut Env<'_>) -> Result<Status> {
    let not_started = report.not_started;
    if json {
        writeln!(env.stdout, "{}", serde_json::to_string(report)?)?;
    } else if !report.applied.is_empty() || !report.failed.is_empty() || not_started > 0 {
        let why = if report.interrupted {
            "interrupted"
        } else {
            "AWS unreachable"
        };
        writeln!(
            env.stdout,
            "\nApply {}: {} done, {} failed{}.",
            if report.failed.is_empty() && not_started == 0 {
                "complete"
            } else {
                "incomplete"
            },
            report.applied.len(),
            report.failed.len(),
            if not_started > 0 {
                format!(", {not_started} not started ({why})")
            } else if report.interrupted {
                ", interrupted".to_string()
            } else {
                String::new()
            }
        )?;
    }
    if !report.is_complete() {
        bail!(
            "{} action(s) failed{}; run `rise-registry apply` again to converge",
            report.failed.len(),
            if not_started > 0 {
                format!(" and {not_started} did not start")
            } else {
                String::new()
            }
        );
    }
    Ok(Status::Success)
}
