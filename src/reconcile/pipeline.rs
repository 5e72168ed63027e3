//! The reconcile pipeline, one for every caller: observe what a scope
//! covers, compute the desired state, plan, re-check a saved plan against
//! the account, and execute. `plan`, `apply` and `doctor` (and a
//! controller inside serve) drive it; they only prompt and print.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};

use super::apply::{self, ApplyReport, Progress};
use super::aws::Aws;
use super::desired::desired_state;
use super::plan::{ObservedState, Plan, Scope, plan_scope};
use super::saved::{SavedPlan, fingerprint};
use crate::config::{EcrConfig, Project};

/// A plan and the fingerprint of the state it was made against.
#[derive(Debug, Clone)]
pub struct Planned {
    pub plan: Plan,
    pub fingerprint: String,
}

/// Why a saved plan was not taken up.
#[derive(Debug, thiserror::Error)]
pub enum Recheck {
    /// The account no longer looks as it did when the plan was made.
    #[error("the account changed since the plan was made")]
    Stale,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The pipeline for one ECR registry and its projects.
pub struct Reconciler<'a> {
    aws: Arc<Aws>,
    ecr: &'a EcrConfig,
    projects: &'a [Project],
}

impl<'a> Reconciler<'a> {
    /// AWS clients from the default credential chain, for `ecr`.
    pub async fn new(ecr: &'a EcrConfig, projects: &'a [Project]) -> Self {
        Self {
            aws: Arc::new(Aws::new(ecr).await),
            ecr,
            projects,
        }
    }

    /// The pipeline on AWS clients made before (a controller keeps one set
    /// for all its passes).
    pub fn with_aws(aws: Arc<Aws>, ecr: &'a EcrConfig, projects: &'a [Project]) -> Self {
        Self { aws, ecr, projects }
    }

    /// Takes the apply lock ([`crate::reconcile::lock`]), waiting up to
    /// `wait` for another apply.
    ///
    /// # Errors
    /// AWS's error, or whom it waited for in vain.
    pub async fn lock(
        &self,
        wait: std::time::Duration,
        on_wait: &(dyn Fn(&crate::reconcile::lock::Claim) + Sync),
    ) -> Result<crate::reconcile::aws::ApplyLock> {
        self.aws.lock(wait, on_wait).await
    }

    /// `--scope` as given, or the configuration's default.
    pub fn scope(&self, asked: Option<Scope>) -> Scope {
        asked.unwrap_or_else(|| Scope::default_for(self.ecr.manage_roles))
    }

    /// Reads what `scope` covers; `on_read(read, total)` counts the
    /// repositories read meanwhile. The error is AWS's, as it is (doctor
    /// shows it as a check's detail); [`Self::plan`] and
    /// [`Self::recheck`] say it happened while reading the account.
    ///
    /// # Errors
    /// AWS refused a read or could not be reached, or answered with a
    /// document that does not parse (named in the error).
    pub async fn observe(
        &self,
        scope: Scope,
        on_read: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<ObservedState> {
        self.aws.observe(scope, on_read).await
    }

    async fn read_account(
        &self,
        scope: Scope,
        on_read: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<ObservedState> {
        self.observe(scope, on_read)
            .await
            .context("reading the current state from AWS")
    }

    /// The plan for `scope` from a state already observed (which must
    /// cover it).
    ///
    /// # Errors
    /// The role documents could not be rendered from the configuration.
    pub fn plan_observed(&self, observed: &ObservedState, scope: Scope) -> Result<Plan> {
        let desired = desired_state(self.ecr, self.projects)?;
        Ok(plan_scope(&desired, observed, scope))
    }

    /// Observes `scope` and plans it.
    ///
    /// # Errors
    /// As [`Self::observe`] and [`Self::plan_observed`].
    pub async fn plan(
        &self,
        scope: Scope,
        on_read: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Planned> {
        // Rendered first: a configuration this build cannot render costs
        // no AWS call.
        let desired = desired_state(self.ecr, self.projects)?;
        let observed = self.read_account(scope, on_read).await?;
        Ok(Planned {
            plan: plan_scope(&desired, &observed, scope),
            fingerprint: fingerprint(&observed),
        })
    }

    /// The actions of `saved` when the account still looks as it did when
    /// it was made (observed again over the plan's scope).
    ///
    /// # Errors
    /// [`Recheck::Stale`] when it does not; [`Recheck::Failed`] as
    /// [`Self::observe`].
    pub async fn recheck(
        &self,
        saved: SavedPlan,
        on_read: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Plan, Recheck> {
        let observed = self.read_account(saved.scope, on_read).await?;
        if fingerprint(&observed) != saved.observed_fingerprint {
            return Err(Recheck::Stale);
        }
        Ok(saved.plan)
    }

    /// Carries out `plan`, stopping new actions once `interrupted` is set
    /// or AWS cannot be reached; `progress` hears of each action as it
    /// ends.
    ///
    /// # Errors
    /// Only what `progress` returns; failed actions are in the report.
    pub async fn execute(
        &self,
        plan: Plan,
        interrupted: Arc<AtomicBool>,
        progress: impl FnMut(Progress<'_>) -> Result<()>,
    ) -> Result<ApplyReport> {
        apply::execute(self.aws.clone(), plan.actions, interrupted, progress).await
    }

    /// Logs the AWS requests sent so far (for `-v` and the benchmarks).
    pub fn log_calls(&self) {
        let (reads, writes) = self.aws.calls.counts();
        let (throttled, lowest_limit, limit) = self.aws.limit.summary();
        tracing::info!(
            reads,
            writes,
            throttled,
            lowest_limit,
            limit,
            "AWS requests"
        );
    }
}
