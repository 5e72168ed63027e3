//! The AWS edge of plan/apply: reading the observed state and executing
//! actions. The only module of `reconcile` that talks to AWS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_ecr::types::Tag;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::Value;

use super::lock;
use super::plan::{
    Action, ObservedRepository, ObservedRole, ObservedState, RegistryScanning, RoleKind, Scope,
};
use super::tagging::{TaggingClient, TagsByArn, Unavailable};
use crate::aws::adaptive::AdaptiveLimit;
use crate::aws::sdk::{CallCounter, ThrottleSignal, aws_error};
use crate::config::EcrConfig;
use crate::naming::RoleArn;
use crate::repository_settings::{self, Context as SettingsContext};
use crate::tags::{TAG_MANAGED, TAG_ORPHANED, TAG_PROJECT};

/// AWS clients for plan/apply, built once from the default credential chain
/// (the operator's credentials).
pub struct Aws {
    iam: aws_sdk_iam::Client,
    ecr: aws_sdk_ecr::Client,
    ecr_config: EcrConfig,
    pub calls: CallCounter,
    /// Whether the registry's scanning configuration, as last observed,
    /// governs scanning: then repositories are created without the
    /// deprecated repository-level flag (apply always observes first).
    registry_scans: AtomicBool,
    /// The bulk tag read, or why its client could not be built (then tags
    /// are read per repository, and the plan says why).
    tagging: std::result::Result<TaggingClient, String>,
    /// Requests in flight, adapting to throttling: repository reads and
    /// every action take a slot.
    pub(crate) limit: Arc<AdaptiveLimit>,
}

/// Where this process runs, for the lock's holder: the host's name (a
/// pod's name on Kubernetes) and its process namespace (Linux's
/// `/proc/self/ns/pid`), which tells containers that share a host name
/// apart.
fn place() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown-host".to_string());
    // Empty where there is no /proc: the place then ends in a space, and
    // no claim is judged abandoned.
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|l| l.to_string_lossy().replace(['[', ']'], ""))
        .unwrap_or_default();
    format!("{host} {namespace}")
}

/// Whether process `pid` runs on this machine (Linux's /proc).
fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A held apply lock: renewed in the background until [`ApplyLock::release`];
/// dropped without release (a crash), its claim lapses after
/// [`lock::TTL`]. A claim found gone or lapsed at a renewal (AWS
/// unreachable for a minute, another apply that judged it lapsed) is never
/// written back: the lock is lost, [`ApplyLock::lost`] says so, and apply
/// starts no further action.
pub struct ApplyLock {
    aws: Arc<Aws>,
    key: String,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl ApplyLock {
    fn hold(aws: Arc<Aws>, claim: lock::Claim) -> Self {
        let key = claim.tag().0;
        let lost = Arc::new(AtomicBool::new(false));
        let (renewing, flag) = (aws.clone(), lost.clone());
        let renewer = tokio::spawn(async move {
            let mut claim = claim;
            loop {
                tokio::time::sleep(lock::RENEW_EVERY).await;
                let now = crate::clock::unix_now();
                match renewing.lock_claims().await {
                    Ok(claims) if claims.iter().any(|c| c.id == claim.id && c.expires > now) => {}
                    Ok(_) => {
                        tracing::error!(
                            "the apply lock was lost (its claim lapsed or was removed); no further action is started"
                        );
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "the apply lock could not be read to renew it; trying again");
                        if claim.expires <= now {
                            flag.store(true, Ordering::SeqCst);
                            return;
                        }
                        continue;
                    }
                }
                claim.expires = now + lock::TTL.as_secs() as i64;
                if let Err(e) = renewing.write_claim(&claim).await {
                    tracing::warn!(error = %format!("{e:#}"), "the apply lock could not be renewed; trying again");
                }
            }
        });
        Self {
            aws,
            key,
            lost,
            renewer,
        }
    }

    /// Set once the lock is lost: apply starts no further action.
    pub fn lost(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    /// Gives the lock up at once, for the next apply.
    ///
    /// # Errors
    /// AWS's error (the claim then lapses by itself).
    pub async fn release(mut self) -> Result<()> {
        self.renewer.abort();
        // The renewer stops at its next await: wait for that before the
        // claim goes, so no renewal follows the removal.
        let _ = (&mut self.renewer).await;
        self.aws
            .untag_repository(&self.aws.lock_repository(), std::slice::from_ref(&self.key))
            .await
    }
}

impl Drop for ApplyLock {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// How long an IAM write that names a role IAM does not know yet is
/// retried: Terraform's AWS provider waits up to two minutes as well.
const PROPAGATION_WAIT: Duration = Duration::from_secs(120);
/// The first wait between those retries; it doubles up to
/// [`PROPAGATION_MAX_DELAY`].
const PROPAGATION_FIRST_DELAY: Duration = Duration::from_millis(500);
const PROPAGATION_MAX_DELAY: Duration = Duration::from_secs(10);

/// IAM's answer to a policy naming a principal it does not know: right
/// after a role is created, IAM gives it for several seconds to policies
/// that name the new role (its changes reach every endpoint eventually).
fn is_unknown_principal<E, R>(e: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    e.as_service_error().is_some_and(|s| {
        s.code() == Some("MalformedPolicyDocument")
            && s.message()
                .is_some_and(|m| m.contains("Invalid principal in policy"))
    })
}

/// Sends an IAM write, retrying exactly [`is_unknown_principal`] with
/// backoff for at most [`PROPAGATION_WAIT`]; the SDK retries the rest.
/// Returns a note for apply's output when it had to wait.
///
/// # Errors
/// Any other AWS error, or that one still after the wait.
async fn until_propagated<T, E, R, F, Fut>(what: &str, mut send: F) -> Result<Option<String>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let started = Instant::now();
    let mut delay = PROPAGATION_FIRST_DELAY;
    let mut retries = 0u32;
    loop {
        match send().await {
            Ok(_) => {
                return Ok((retries > 0).then(|| {
                    format!(
                        "IAM did not know a role the policy names yet (a new role takes a while to reach all of IAM); succeeded after {retries} retries in {} s",
                        started.elapsed().as_secs()
                    )
                }));
            }
            Err(e) if is_unknown_principal(&e) && started.elapsed() + delay <= PROPAGATION_WAIT => {
                retries += 1;
                tracing::warn!(
                    action = what,
                    retry = retries,
                    "IAM does not know a role the policy names yet (MalformedPolicyDocument: Invalid principal in policy); waiting {} ms for it to propagate",
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(PROPAGATION_MAX_DELAY);
            }
            Err(e) => {
                let waited = retries > 0;
                let e = aws_error(what, e);
                return Err(if waited {
                    e.context(format!(
                        "still refused after waiting {} s for IAM to know the new role",
                        started.elapsed().as_secs()
                    ))
                } else {
                    e
                });
            }
        }
    }
}

/// A policy document as IAM returns it: URL-encoded JSON (or plain JSON).
/// `what` names it in the error (`the trust policy of role rise-backend`).
pub fn policy_json(document: &str, what: &str) -> Result<Value> {
    let text = if document.trim_start().starts_with('{') {
        document.to_string()
    } else {
        // IAM returns policy documents URL-encoded (RFC 3986).
        percent_encoding::percent_decode_str(document)
            .decode_utf8_lossy()
            .into_owned()
    };
    serde_json::from_str(&text).with_context(|| {
        format!(
            "IAM returned {what} as a document that is not JSON\n  hint: look at it with the AWS console or CLI and write it anew (`rise-registry apply` can, once it reads as JSON)"
        )
    })
}

impl Aws {
    pub async fn new(config: &EcrConfig) -> Self {
        let sdk = crate::aws::sdk_config(
            config.region.as_str(),
            config.endpoint_url.as_deref(),
            crate::aws::Caller::Reconcile,
        )
        .await;
        let calls = CallCounter::default();
        let limit = Arc::new(AdaptiveLimit::default());
        let signal = ThrottleSignal(limit.clone());
        let iam = aws_sdk_iam::config::Builder::from(&sdk)
            .interceptor(calls.clone())
            .interceptor(signal.clone())
            .build();
        let ecr = aws_sdk_ecr::config::Builder::from(&sdk)
            .interceptor(calls.clone())
            .interceptor(signal)
            .build();
        let tagging = TaggingClient::new(
            limit.clone(),
            &sdk,
            config.endpoint_url.as_deref(),
            &config.region.to_string(),
            config.region.dns_suffix(),
        )
        .map_err(|e| format!("{e:#}"));
        Self {
            iam: aws_sdk_iam::Client::from_conf(iam),
            ecr: aws_sdk_ecr::Client::from_conf(ecr),
            ecr_config: config.clone(),
            calls,
            registry_scans: AtomicBool::new(false),
            tagging,
            limit,
        }
    }

    fn repository_arn(&self, name: &str) -> String {
        let c = &self.ecr_config;
        format!(
            "arn:{}:ecr:{}:{}:repository/{name}",
            c.partition(),
            c.region,
            c.account_id
        )
    }

    /// Reads what `scope` covers: both roles (IAM only), and every
    /// repository under the prefix (ECR only), calling `on_read(read,
    /// total)` once the repositories are listed and as each has been read
    /// (for progress).
    ///
    /// # Errors
    /// Any AWS error other than "not found", with AWS's code and message.
    pub(crate) async fn observe(
        &self,
        scope: Scope,
        on_read: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<ObservedState> {
        let mut observed = ObservedState::default();
        if scope.roles() {
            observed.controller = self
                .observe_role(&self.ecr_config.role_arn, "registry.role_arn")
                .await?;
            observed.push = self
                .observe_role(&self.ecr_config.push_role_arn, "registry.push_role_arn")
                .await?;
        }
        if scope.repositories() {
            let scanning = self.observe_registry_scanning().await?;
            self.registry_scans
                .store(scanning.governs(), Ordering::Relaxed);
            observed.registry_scanning = Some(scanning);
            (observed.repositories, observed.tag_reads) =
                self.observe_repositories(on_read).await?;
        }
        Ok(observed)
    }

    /// The registry's scanning configuration, read once per plan: it may
    /// make the repositories' own scan-on-push flags meaningless.
    async fn observe_registry_scanning(&self) -> Result<RegistryScanning> {
        let out = self
            .ecr
            .get_registry_scanning_configuration()
            .send()
            .await
            .map_err(|e| aws_error("reading the registry's scanning configuration", e))?;
        let config = out.scanning_configuration;
        Ok(RegistryScanning {
            scan_type: config
                .as_ref()
                .and_then(|c| c.scan_type.as_ref())
                // AWS: "When a registry scanning configuration is not
                // defined, by default the BASIC scan type is used."
                .map_or("BASIC".to_string(), |t| t.as_str().to_string()),
            rules: config.and_then(|c| c.rules).map_or(0, |r| r.len()),
        })
    }

    /// Reads the role `arn` names. A role of that name at another path is
    /// an error: IAM cannot move a role, and every policy that names
    /// `arn` (the push role's trust, the controller's `sts:AssumeRole`)
    /// would not match it.
    async fn observe_role(&self, arn: &RoleArn, key: &str) -> Result<Option<ObservedRole>> {
        let name = arn.name();
        let role = match self.iam.get_role().role_name(name).send().await {
            Ok(out) => out.role,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => {
                // IAM says `AccessDenied`; some emulators `AccessDeniedException`.
                let denied = e
                    .as_service_error()
                    .and_then(|s| s.meta().code())
                    .is_some_and(|c| c.starts_with("AccessDenied"));
                let e = aws_error(&format!("reading role {name}"), e);
                return Err(if denied {
                    anyhow!(
                        "{e}\n  hint: with the default scope plan and apply manage the two roles too, which needs IAM permissions; to manage only the repositories (the controller role's permissions suffice), use `--scope repositories`, or set `registry.manage_roles: false` when Terraform owns the roles"
                    )
                } else {
                    e
                });
            }
        };
        if let Some(found) = &role
            && found.path != arn.path()
        {
            bail!(
                "role {name} exists at path {} ({}), but {key} is {arn} (path {})\n  hint: IAM cannot move a role to another path: set {key} to {}, or delete the role so that apply creates it at {}",
                found.path,
                found.arn,
                arn.path(),
                found.arn,
                arn.path()
            );
        }
        // GetRole returns the role's tags (at most 50), so no ListRoleTags.
        let tags = role
            .as_ref()
            .and_then(|r| r.tags.as_ref())
            .map(|tags| {
                tags.iter()
                    .map(|t| (t.key.clone(), t.value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let trust = role
            .and_then(|r| r.assume_role_policy_document)
            .map(|d| policy_json(&d, &format!("the trust policy of role {name}")))
            .transpose()?
            .unwrap_or(Value::Null);
        let mut policies = BTreeMap::new();
        let mut pages = self
            .iam
            .list_role_policies()
            .role_name(name)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| aws_error(&format!("listing inline policies of {name}"), e))?;
            for policy in page.policy_names {
                let doc = self
                    .iam
                    .get_role_policy()
                    .role_name(name)
                    .policy_name(&policy)
                    .send()
                    .await
                    .map_err(|e| aws_error(&format!("reading policy {policy} of {name}"), e))?;
                let what = format!("inline policy {policy} of role {name}");
                policies.insert(policy, policy_json(&doc.policy_document, &what)?);
            }
        }
        Ok(Some(ObservedRole {
            trust,
            policies,
            tags,
        }))
    }

    /// The tags of managed repositories in bulk, 100 a page, or why they
    /// must be read one repository at a time.
    async fn bulk_tags(&self) -> Result<std::result::Result<TagsByArn, String>> {
        match &self.tagging {
            Ok(client) => Ok(client
                .managed_repositories(&|| self.calls.count_read())
                .await?
                .map_err(|Unavailable(why)| why)),
            Err(why) => Ok(Err(why.clone())),
        }
    }

    /// Every repository under the prefix, and a note for the plan when
    /// their tags had to be read one repository at a time.
    ///
    /// Tags come from the bulk read for repositories it lists (those tagged
    /// `rise:managed`); the others (adoption candidates, repositories
    /// created or tagged since the tagging index last saw them) are read
    /// one by one, so a repository the bulk read misses is read, never
    /// assumed untagged. Lifecycle policies have no bulk read: one
    /// `GetLifecyclePolicy` each.
    async fn observe_repositories(
        &self,
        on_read: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<(BTreeMap<String, ObservedRepository>, Option<String>)> {
        let prefix = self.ecr_config.repo_prefix.as_str();
        let mut found = Vec::new();
        // The two listings are independent: one round trip per page of the
        // longer, not of both.
        let (described, bulk) = tokio::join!(
            async {
                let mut repositories = Vec::new();
                let mut pages = self.ecr.describe_repositories().into_paginator().send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| aws_error("listing repositories", e))?;
                    repositories.extend(page.repositories.unwrap_or_default());
                }
                Ok::<_, anyhow::Error>(repositories)
            },
            self.bulk_tags()
        );
        let (mut bulk, note) = match bulk? {
            Ok(tags) => (tags, None),
            Err(why) => (
                TagsByArn::new(),
                Some(format!(
                    "tags read one repository at a time: the bulk read (tag:GetResources) was refused ({why})"
                )),
            ),
        };
        for repo in described? {
            {
                let Some(name) = repo.repository_name.clone() else {
                    continue;
                };
                // The apply lock is no project's repository.
                if !name.starts_with(prefix) || name == self.lock_repository() {
                    continue;
                }
                let arn = repo
                    .repository_arn
                    .clone()
                    .unwrap_or_else(|| self.repository_arn(&name));
                let tags = bulk.remove(&arn);
                found.push((name, arn, tags, repo));
            }
        }
        // Tags and lifecycle policies, as many at a time as AWS allows.
        let total = found.len();
        on_read(0, total);
        let mut tasks = tokio::task::JoinSet::new();
        for (name, arn, bulk_tags, listed) in found {
            let (ecr, limit) = (self.ecr.clone(), self.limit.clone());
            tasks.spawn(async move {
                let _slot = limit.acquire().await;
                let tags = match bulk_tags {
                    Some(tags) => tags,
                    None => ecr
                        .list_tags_for_resource()
                        .resource_arn(&arn)
                        .send()
                        .await
                        .map_err(|e| aws_error(&format!("reading tags of {name}"), e))?
                        .tags
                        .unwrap_or_default()
                        .into_iter()
                        .map(|t| (t.key, t.value))
                        .collect(),
                };
                let settings = repository_settings::observe(&ecr, &listed).await?;
                Ok::<_, anyhow::Error>((name, ObservedRepository { tags, settings }))
            });
        }
        let mut repositories = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            let (name, repo) = joined.context("a repository read stopped")??;
            repositories.insert(name, repo);
            on_read(repositories.len(), total);
        }
        Ok((repositories, note))
    }

    /// The apply lock's repository ([`super::lock`]).
    pub(crate) fn lock_repository(&self) -> String {
        format!("{}{}", self.ecr_config.repo_prefix, lock::LOCK_REPOSITORY)
    }

    /// The lock repository's tags; `None` when it does not exist.
    async fn lock_tags(&self) -> Result<Option<BTreeMap<String, String>>> {
        let name = self.lock_repository();
        match self
            .ecr
            .list_tags_for_resource()
            .resource_arn(self.repository_arn(&name))
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.tags
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| (t.key, t.value))
                    .collect(),
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_error(&format!("reading the apply lock ({name})"), e)),
        }
    }

    /// The lock's claims, creating its repository the first time (another
    /// apply creating it at the same moment is as good).
    async fn lock_claims(&self) -> Result<Vec<lock::Claim>> {
        if let Some(tags) = self.lock_tags().await? {
            return Ok(lock::claims(&tags));
        }
        let name = self.lock_repository();
        let made = self
            .ecr
            .create_repository()
            .repository_name(&name)
            .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Immutable)
            .tags(Self::tag(
                "rise:purpose",
                "the apply lock of rise-registry - no images, its tags are the claims",
            )?)
            .send()
            .await;
        match made {
            Ok(_) => Ok(Vec::new()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_already_exists_exception()) =>
            {
                Ok(self
                    .lock_tags()
                    .await?
                    .map(|t| lock::claims(&t))
                    .unwrap_or_default())
            }
            Err(e) => Err(aws_error(&format!("creating the apply lock ({name})"), e)),
        }
    }

    async fn write_claim(&self, claim: &lock::Claim) -> Result<()> {
        let (key, value) = claim.tag();
        self.tag_repository(&self.lock_repository(), &BTreeMap::from([(key, value)]))
            .await
    }

    /// Takes the apply lock, waiting up to `wait` for another apply to
    /// finish; `on_wait` is told whom it waits for, once per holder.
    ///
    /// # Errors
    /// AWS's error, or the holder's name when `wait` ran out.
    pub(crate) async fn lock(
        self: &Arc<Self>,
        wait: Duration,
        on_wait: &(dyn Fn(&lock::Claim) + Sync),
    ) -> Result<ApplyLock> {
        let id = lock::random_id();
        let place = place();
        // A claim is judged abandoned only where processes can be seen:
        // without this process's namespace, no pid can be trusted gone.
        let judge = !place.ends_with(' ');
        let holder = lock::holder(&place);
        let deadline = tokio::time::Instant::now() + wait;
        let mut told: Option<String> = None;
        let mut rounds: u32 = 0;
        loop {
            rounds += 1;
            let now = crate::clock::unix_now();
            let mut claims = self.lock_claims().await?;
            let mut lapsed = lock::lapsed(&claims, now);
            // An apply killed here (this terminal, this pod) is not waited
            // out: its process is gone.
            claims.retain(|c| {
                let gone = judge && lock::abandoned(c, &place, pid_alive);
                if gone {
                    lapsed.push(c.tag().0);
                }
                !gone
            });
            if !lapsed.is_empty() {
                self.untag_repository(&self.lock_repository(), &lapsed)
                    .await?;
            }
            let busy = match lock::verdict(&claims, &id, now) {
                lock::Verdict::Busy(other) => Some(other),
                lock::Verdict::Held | lock::Verdict::Free => {
                    let stamp_ms = crate::clock::unix_now_ms();
                    let claim = lock::Claim {
                        id: id.clone(),
                        stamp_ms,
                        expires: now + lock::TTL.as_secs() as i64,
                        holder: holder.clone(),
                    };
                    let written = self.write_claim(&claim).await;
                    let took = crate::clock::unix_now_ms() - stamp_ms;
                    if written.is_err() || took > (lock::SETTLE.as_millis() / 2) as i64 {
                        // A failed write may have landed; a slow one
                        // carries a stamp that could undercut a holder that
                        // has decided already: withdraw it either way.
                        let _ = self
                            .untag_repository(&self.lock_repository(), &[claim.tag().0])
                            .await;
                        written?;
                        None
                    } else {
                        tokio::time::sleep(lock::SETTLE).await;
                        let claims = self.lock_claims().await?;
                        match lock::verdict(&claims, &id, crate::clock::unix_now()) {
                            lock::Verdict::Held => {
                                return Ok(ApplyLock::hold(self.clone(), claim));
                            }
                            lock::Verdict::Busy(other) => {
                                self.untag_repository(&self.lock_repository(), &[claim.tag().0])
                                    .await?;
                                Some(other)
                            }
                            // Our own claim vanished (removed by hand, or
                            // judged lapsed by a clock far ahead): again.
                            lock::Verdict::Free => None,
                        }
                    }
                }
            };
            // Every way round the loop waits and keeps to the deadline.
            let pause = match &busy {
                Some(_) => lock::POLL,
                None => Duration::from_millis(200 * u64::from(rounds.min(10))),
            };
            if tokio::time::Instant::now() + pause > deadline {
                let Some(other) = busy else {
                    bail!(
                        "the apply lock could not be taken within --lock-wait ({} s): claims kept disappearing or took too long to write; nothing was changed\n  hint: check this machine's clock and the latency to AWS, and run again",
                        wait.as_secs()
                    );
                };
                bail!(
                    "another apply holds the apply lock ({}, since {}, until {} unless renewed); nothing was changed\n  hint: wait for it to finish and run again, or raise --lock-wait; a claim whose holder was killed lapses by itself within {} s",
                    if other.holder.is_empty() {
                        other.id.as_str()
                    } else {
                        other.holder.as_str()
                    },
                    crate::clock::rfc3339(other.stamp_ms / 1000),
                    crate::clock::rfc3339(other.expires),
                    lock::TTL.as_secs()
                );
            }
            if let Some(other) = busy
                && told.as_deref() != Some(other.id.as_str())
            {
                on_wait(&other);
                told = Some(other.id.clone());
            }
            tokio::time::sleep(pause).await;
        }
    }

    fn role_arn(&self, role: RoleKind) -> &RoleArn {
        match role {
            RoleKind::Controller => &self.ecr_config.role_arn,
            RoleKind::Push => &self.ecr_config.push_role_arn,
        }
    }

    fn role_name(&self, role: RoleKind) -> &str {
        self.role_arn(role).name()
    }

    fn tag(key: &str, value: &str) -> Result<Tag> {
        Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(|e| anyhow!("{e}"))
    }

    async fn tag_repository(&self, name: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let tags = tags
            .iter()
            .map(|(k, v)| Self::tag(k, v))
            .collect::<Result<Vec<_>>>()?;
        self.ecr
            .tag_resource()
            .resource_arn(self.repository_arn(name))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| aws_error(&format!("tagging {name}"), e))?;
        Ok(())
    }

    async fn untag_repository(&self, name: &str, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.ecr
            .untag_resource()
            .resource_arn(self.repository_arn(name))
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| aws_error(&format!("untagging {name}"), e))?;
        Ok(())
    }

    /// Executes one action; `Some` note when it took something worth
    /// telling (waiting for IAM to know a new role).
    ///
    /// # Errors
    /// AWS's error, naming the action.
    pub(crate) async fn execute(&self, action: &Action) -> Result<Option<String>> {
        let _slot = self.limit.acquire().await;
        self.execute_now(action).await
    }

    async fn execute_now(&self, action: &Action) -> Result<Option<String>> {
        match action {
            Action::CreateRole {
                role, trust, tags, ..
            } => {
                let name = self.role_name(*role);
                let tags = tags
                    .iter()
                    .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| anyhow!("{e}"))?;
                let request = self
                    .iam
                    .create_role()
                    .role_name(name)
                    // The path of the configured ARN, so the role's real
                    // ARN is the one the policies name.
                    .path(self.role_arn(*role).path())
                    .assume_role_policy_document(trust.to_string())
                    .set_tags(Some(tags));
                let what = format!("creating role {name}");
                return until_propagated(&what, || request.clone().send()).await;
            }
            Action::UpdateTrust { role, after, .. } => {
                let name = self.role_name(*role);
                let request = self
                    .iam
                    .update_assume_role_policy()
                    .role_name(name)
                    .policy_document(after.to_string());
                let what = format!("updating the trust policy of {name}");
                return until_propagated(&what, || request.clone().send()).await;
            }
            Action::PutRolePolicy {
                role,
                policy,
                after,
                ..
            } => {
                let name = self.role_name(*role);
                let request = self
                    .iam
                    .put_role_policy()
                    .role_name(name)
                    .policy_name(policy)
                    .policy_document(after.to_string());
                let what = format!("putting policy {policy} on {name}");
                return until_propagated(&what, || request.clone().send()).await;
            }
            Action::DeleteRolePolicy { role, policy, .. } => {
                let name = self.role_name(*role);
                self.iam
                    .delete_role_policy()
                    .role_name(name)
                    .policy_name(policy)
                    .send()
                    .await
                    .map_err(|e| aws_error(&format!("deleting policy {policy} of {name}"), e))?;
            }
            Action::SetRoleTags {
                role, set, remove, ..
            } => {
                let name = self.role_name(*role);
                if !set.is_empty() {
                    let tags = set
                        .iter()
                        .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| anyhow!("{e}"))?;
                    self.iam
                        .tag_role()
                        .role_name(name)
                        .set_tags(Some(tags))
                        .send()
                        .await
                        .map_err(|e| aws_error(&format!("tagging role {name}"), e))?;
                }
                if !remove.is_empty() {
                    self.iam
                        .untag_role()
                        .role_name(name)
                        .set_tag_keys(Some(remove.clone()))
                        .send()
                        .await
                        .map_err(|e| aws_error(&format!("untagging role {name}"), e))?;
                }
            }
            Action::CreateRepository {
                repository,
                tags,
                settings,
            } => {
                let tag_list = tags
                    .iter()
                    .map(|(k, v)| Self::tag(k, v))
                    .collect::<Result<Vec<_>>>()?;
                let context = SettingsContext {
                    registry_scans: self.registry_scans.load(Ordering::Relaxed),
                };
                let mut create = self
                    .ecr
                    .create_repository()
                    .repository_name(repository)
                    .set_tags(Some(tag_list));
                let mut after_create = Vec::new();
                for (setting, want) in settings.iter().filter(|(s, _)| s.applies(&context)) {
                    let taken;
                    (create, taken) = setting.on_create(create, want);
                    if !taken {
                        after_create.push((setting, want));
                    }
                }
                create
                    .send()
                    .await
                    .map_err(|e| aws_error(&format!("creating repository {repository}"), e))?;
                for (setting, want) in after_create {
                    setting.put(&self.ecr, repository, want).await?;
                }
            }
            Action::Adopt {
                repository,
                project,
            } => {
                let tags = BTreeMap::from([
                    (TAG_MANAGED.to_string(), "true".to_string()),
                    (TAG_PROJECT.to_string(), project.clone()),
                ]);
                self.tag_repository(repository, &tags).await?;
            }
            Action::Unorphan { repository } => {
                self.untag_repository(repository, &[TAG_ORPHANED.to_string()])
                    .await?;
            }
            Action::UpdateRepository {
                repository,
                changes,
            } => {
                for change in changes {
                    change
                        .setting
                        .put(&self.ecr, repository, &change.after)
                        .await?;
                }
            }
            Action::SetTags {
                repository,
                set,
                remove,
            } => {
                self.tag_repository(repository, set).await?;
                self.untag_repository(repository, remove).await?;
            }
            Action::Orphan { repository } => {
                let tags = BTreeMap::from([(TAG_ORPHANED.to_string(), "true".to_string())]);
                self.tag_repository(repository, &tags).await?;
            }
            Action::DeleteRepository { repository } => {
                // auto_remove is on: the config says images go with it.
                self.ecr
                    .delete_repository()
                    .repository_name(repository)
                    .force(true)
                    .send()
                    .await
                    .map_err(|e| aws_error(&format!("deleting repository {repository}"), e))?;
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_documents_decode() {
        let what = "the trust policy of role rise-backend";
        let doc = policy_json(
            "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D",
            what,
        )
        .unwrap();
        assert_eq!(doc["Version"], "2012-10-17");
        assert_eq!(policy_json(r#"{"a": 1}"#, what).unwrap()["a"], 1);
        // Malformed escapes stay as written, `%+7` included.
        let doc = policy_json("%7B%22a%22%3A%22%2Fb%zz%4%2B7%+7%22%7D", what).unwrap();
        assert_eq!(doc["a"], "/b%zz%4+7%+7");
        // A document that is not JSON (only a broken endpoint hands one
        // out: IAM refuses to store it) is an error naming the role.
        for broken in ["%7B%22Statement%22%3A", "not a policy", "", "\u{202e}{"] {
            let e = format!("{:#}", policy_json(broken, what).unwrap_err());
            assert!(e.starts_with("IAM returned the trust policy of role rise-backend as a document that is not JSON"), "{e}");
        }
    }
}
