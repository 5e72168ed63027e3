//! `rise-registry plan` and `apply`: observe AWS, diff against the
//! configuration, show the plan, and (apply) carry it out.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

use super::progress::Progress;
use super::{Env, Status};
use crate::config::{Config, EcrConfig, Location, RegistryConfig, shell_word};
use crate::reconcile::apply::{self, ApplyReport};
use crate::reconcile::pipeline::{Planned, Recheck, Reconciler};
use crate::reconcile::plan::{Plan, Scope};
use crate::reconcile::render::{TextOptions, to_json, to_markdown, to_text};
use crate::reconcile::saved::SavedPlan;

fn ecr(config: &Config) -> Result<&EcrConfig> {
    match &config.registry {
        RegistryConfig::Ecr(ecr) => Ok(ecr),
        other => bail!(
            "plan and apply manage AWS ECR, but registry.type is `{}`\n  hint: use a run mode whose config sets `registry.type: ecr` (e.g. --run-mode production)",
            other.type_name()
        ),
    }
}

/// How `plan` prints the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    /// `--json`: docs/plan-format.md.
    Json,
    /// `--markdown`: for a pull-request comment.
    Markdown,
}

/// `plan`'s settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSettings {
    pub format: PlanFormat,
    pub detailed_exitcode: bool,
    pub out_file: Option<PathBuf>,
    /// List every repository of a group (`-v`).
    pub verbose: bool,
    /// `--scope`; `None` takes the configuration's default.
    pub scope: Option<Scope>,
}

/// A progress line counting the repositories read, when `shown`; it is
/// gone when dropped.
fn reading(shown: bool) -> Progress {
    Progress::new(shown, "reading repositories")
}

/// `plan [--json | --markdown] [--detailed-exitcode] [--out FILE] [--scope S]`.
/// `location`: where the configuration came from, for the hint after
/// `--out`.
pub(crate) fn run_plan(
    config: &Config,
    location: &Location,
    settings: &PlanSettings,
    env: &mut Env<'_>,
) -> Result<Status> {
    let PlanSettings {
        format,
        detailed_exitcode,
        ref out_file,
        verbose,
        scope,
    } = *settings;
    let out = &mut *env.stdout;
    let ecr = ecr(config)?;
    // With --json a program reads the output; nothing extra anywhere.
    let progress = env.progress && format != PlanFormat::Json;
    let (scope, Planned { plan, fingerprint }) = crate::runtime::build()?.block_on(async {
        let config = store_projects(config).await?;
        let reconciler = Reconciler::new(ecr, &config.projects).await;
        let scope = reconciler.scope(scope);
        let line = reading(progress);
        let result = reconciler
            .plan(scope, &|read, total| line.set(read, total))
            .await;
        drop(line);
        reconciler.log_calls();
        result.map(|planned| (scope, planned))
    })?;
    let text = TextOptions {
        colour: env.colour,
        verbose,
    };
    match format {
        PlanFormat::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(&to_json(&plan))?)?;
        }
        // Markdown is for a comment, not a terminal: never coloured.
        PlanFormat::Markdown => write!(out, "{}", to_markdown(&plan, text))?,
        PlanFormat::Text => write!(out, "{}", to_text(&plan, text))?,
    }
    if let Some(path) = out_file {
        let saved = SavedPlan::new(fingerprint, scope, plan.clone());
        std::fs::write(path, serde_json::to_string_pretty(&saved)?)
            .with_context(|| format!("writing the plan to {}", path.display()))?;
        if format == PlanFormat::Text {
            let file = shell_word(&path.display().to_string());
            writeln!(
                out,
                "\nSaved the plan to {}; `{}` applies exactly it.",
                path.display(),
                location.command(&format!("apply {file}"))
            )?;
        }
    }
    Ok(if detailed_exitcode && !plan.is_empty() {
        Status::Changes
    } else {
        Status::Success
    })
}

/// `apply`'s settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySettings {
    pub planfile: Option<PathBuf>,
    pub auto_approve: bool,
    /// `--allow-destroy`: lift `registry.max_deletions`.
    pub allow_destroy: bool,
    /// `--lock-wait`: how long to wait for another apply.
    pub lock_wait: std::time::Duration,
    pub json: bool,
    /// List every repository of a group (`-v`).
    pub verbose: bool,
    /// `--scope`; `None` takes the configuration's default (or, with a
    /// plan file, the plan's).
    pub scope: Option<Scope>,
}

/// `apply [PLANFILE] [--auto-approve] [--json] [--scope S]`.
/// `location`: where the configuration came from, for the hints on
/// failure.
pub(crate) fn run_apply(
    config: &Config,
    location: &Location,
    settings: &ApplySettings,
    env: &mut Env<'_>,
) -> Result<Status> {
    let ApplySettings {
        ref planfile,
        auto_approve,
        allow_destroy,
        lock_wait,
        json,
        verbose,
        scope,
    } = *settings;
    let ecr = ecr(config)?;
    let rt = crate::runtime::build()?;
    rt.block_on(async {
        let config = store_projects(config).await?;
        let reconciler = Reconciler::new(ecr, &config.projects).await;
        // A saved plan covers the scope it was made for.
        let saved = match planfile {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the plan {}", path.display()))?;
                let saved = SavedPlan::parse(&text)
                    .with_context(|| format!("{} is not a saved plan", path.display()))?;
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
                Some((path, saved))
            }
            None => None,
        };
        let effective = saved
            .as_ref()
            .map_or_else(|| reconciler.scope(scope), |(_, s)| s.scope);
        // One apply at a time changes repositories (the hook Job, the
        // CronJob, an operator): taken before reading, so the plan sees
        // what the apply before it did.
        let lock = if effective.repositories() {
            Some(
                reconciler
                    .lock(lock_wait, &|other| {
                        tracing::warn!(
                            holder = %other.holder,
                            since = %crate::clock::rfc3339(other.stamp_ms / 1000),
                            "waiting for another apply to finish (the apply lock)"
                        );
                    })
                    .await?,
            )
        } else {
            None
        };
        let stop = lock
            .as_ref()
            .map_or_else(|| Arc::new(AtomicBool::new(false)), |l| l.lost());
        let result = apply_locked(
            &reconciler,
            saved,
            effective,
            stop,
            ApplyRun {
                auto_approve,
                allow_destroy,
                json,
                verbose,
                max_deletions: ecr.max_deletions,
            },
            location,
            env,
        )
        .await;
        if let Some(lock) = lock
            && let Err(e) = lock.release().await
        {
            tracing::warn!(error = %format!("{e:#}"), "the apply lock could not be released; it lapses by itself");
        }
        result
    })
}

/// What an apply was asked to do, besides its plan.
struct ApplyRun {
    auto_approve: bool,
    allow_destroy: bool,
    json: bool,
    verbose: bool,
    max_deletions: u32,
}

/// The apply under its lock: plan (or re-check the saved plan), show,
/// confirm, execute.
async fn apply_locked(
    reconciler: &Reconciler<'_>,
    saved: Option<(&PathBuf, SavedPlan)>,
    scope: Scope,
    lock_lost: Arc<AtomicBool>,
    run: ApplyRun,
    location: &Location,
    env: &mut Env<'_>,
) -> Result<Status> {
    let ApplyRun {
        auto_approve,
        allow_destroy,
        json,
        verbose,
        max_deletions,
    } = run;
    let planfile = saved.as_ref().map(|(path, _)| *path);
    let line = reading(env.progress && !json);
    let on_read = |read, total| line.set(read, total);
    let plan = match saved {
        Some((path, saved)) => match reconciler.recheck(saved, &on_read).await {
            Ok(plan) => plan,
            Err(Recheck::Stale) => bail!(
                "the account changed since {} was made, so it may no longer be right\n  hint: run `{}` again",
                path.display(),
                location.command(&format!(
                    "plan --out {}",
                    shell_word(&path.display().to_string())
                ))
            ),
            Err(Recheck::Failed(e)) => return Err(e),
        },
        None => reconciler.plan(scope, &on_read).await?.plan,
    };
    drop(line);
    // A saved plan was reviewed when it was made; a fresh one is shown
    // and needs a yes. With --json, stdout is for the machine, so the
    // plan to review goes beside the question, on stderr.
    let confirming = planfile.is_none() && !auto_approve && !plan.is_empty();
    // Nobody reviews an --auto-approve run: it may delete only so much.
    if auto_approve
        && planfile.is_none()
        && !allow_destroy
        && let Err(refusal) = crate::reconcile::plan::check_unattended(&plan, max_deletions)
    {
        if !json {
            let options = TextOptions {
                colour: env.colour,
                verbose,
            };
            write!(env.stdout, "{}", to_text(&plan, options))?;
        }
        bail!(
            "{refusal}; nothing was changed\n  hint: review `{}`, then run `{}` (or raise registry.max_deletions)",
            location.command("plan"),
            location.command("apply --auto-approve --allow-destroy")
        );
    }
    if !json {
        let options = TextOptions {
            colour: env.colour,
            verbose,
        };
        write!(env.stdout, "{}", to_text(&plan, options))?;
    } else if confirming {
        let options = TextOptions {
            colour: false,
            verbose,
        };
        write!(env.stderr, "{}", to_text(&plan, options))?;
    }
    // With --json, the one object printed holds the plan it applied.
    let plan_json = json.then(|| to_json(&plan));
    let report = if plan.is_empty() {
        ApplyReport::default()
    } else {
        if confirming {
            // What an unattended run would refuse, the person asked
            // reads right above the question.
            let warning = crate::reconcile::plan::check_unattended(&plan, max_deletions).err();
            confirm(env, location, plan.actions.len(), warning.as_deref())?;
        }
        let report = execute(reconciler, plan, json, env, lock_lost.clone()).await;
        reconciler.log_calls();
        if lock_lost.load(Ordering::SeqCst) {
            let not_started = report.as_ref().map_or(0, |r| r.not_started);
            bail!(
                "the apply lock was lost while applying (its claim lapsed: AWS did not answer its renewals for a minute, or another apply judged it lapsed); {not_started} actions were not started\n  hint: run apply again: it converges"
            );
        }
        report?
    };
    finish(&report, plan_json, location, env)
}

/// Asks on the terminal (stderr, so stdout stays data) for a literal `yes`.
fn confirm(
    env: &mut Env<'_>,
    location: &Location,
    count: usize,
    warning: Option<&str>,
) -> Result<()> {
    let Some(terminal) = env.terminal.as_mut() else {
        bail!(
            "apply needs confirmation and there is no terminal to ask on; nothing was changed\n  hint: review `{}`, then run `{}`",
            location.command("plan"),
            location.command("apply --auto-approve")
        );
    };
    if let Some(warning) = warning {
        for line in warning.lines() {
            write!(env.stderr, "\nWarning: {line}")?;
        }
        writeln!(env.stderr)?;
    }
    write!(env.stderr, "\n{}", question(count))?;
    env.stderr.flush()?;
    let mut answer = String::new();
    terminal.read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("apply cancelled; nothing was changed");
    }
    Ok(())
}

/// The confirmation question for `count` actions.
fn question(count: usize) -> String {
    let these = if count == 1 {
        "this 1 action".to_string()
    } else {
        format!("these {count} actions")
    };
    format!("Apply {these}? Only `yes` is accepted: ")
}

/// Runs the plan with Ctrl-C wired to stop new actions, printing one line
/// per action as it ends (text mode).
async fn execute(
    reconciler: &Reconciler<'_>,
    plan: Plan,
    json: bool,
    env: &mut Env<'_>,
    // Set by the apply lock when it is lost: like Ctrl-C, no further
    // action starts.
    lock_lost: Arc<AtomicBool>,
) -> Result<ApplyReport> {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let listener = tokio::spawn(async move {
        let lost = async {
            while !lock_lost.load(Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                if signal.is_ok() {
                    flag.store(true, Ordering::SeqCst);
                }
            }
            () = lost => flag.store(true, Ordering::SeqCst),
        }
    });
    let out = &mut *env.stdout;
    let line = Progress::new(env.progress && !json, "applying");
    line.set(0, plan.actions.len());
    let report = reconciler
        .execute(plan, interrupted, |progress| {
            line.inc();
            if !json {
                // Above the progress line, not through it.
                line.suspend(|| match progress {
                    apply::Progress::Done(action, None) => writeln!(out, "  done   {action}"),
                    apply::Progress::Done(action, Some(note)) => {
                        writeln!(out, "  done   {action} ({note})")
                    }
                    apply::Progress::Failed(action, e) => writeln!(out, "  FAILED {action}: {e:#}"),
                })?;
            }
            Ok(())
        })
        .await;
    drop(line);
    listener.abort();
    report
}

/// Prints the report (a summary line, or with `--json` one object: the
/// plan applied, then the result fields) and turns an incomplete apply into
/// an error that says how to converge.
fn finish(
    report: &ApplyReport,
    plan_json: Option<serde_json::Value>,
    location: &Location,
    env: &mut Env<'_>,
) -> Result<Status> {
    let not_started = report.not_started;
    if let Some(plan) = plan_json {
        #[derive(serde::Serialize)]
        struct ApplyJson<'a> {
            plan: serde_json::Value,
            #[serde(flatten)]
            result: &'a ApplyReport,
        }
        let object = ApplyJson {
            plan,
            result: report,
        };
        writeln!(env.stdout, "{}", serde_json::to_string(&object)?)?;
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
            "{} action(s) failed{}; run `{}` again to converge",
            report.failed.len(),
            if not_started > 0 {
                format!(" and {not_started} did not start")
            } else {
                String::new()
            },
            location.command("apply")
        );
    }
    Ok(Status::Success)
}

/// The config's projects and, with a `store`, the store's (read only).
async fn store_projects(config: &Config) -> Result<Config> {
    crate::store::view::with_store_projects(config)
        .await
        .context("reading the projects of the project store (store.url)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_counts_in_words_that_read_right() {
        assert_eq!(question(1), "Apply this 1 action? Only `yes` is accepted: ");
        assert_eq!(
            question(5),
            "Apply these 5 actions? Only `yes` is accepted: "
        );
    }
}
