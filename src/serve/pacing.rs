//! serve's side of AWS's quotas (ECR only): each cold issuance waits for
//! its turn at the account's [`Pacer`], throttling answers slow this
//! replica down, and credentials used lately are renewed in the background
//! before they run low ([`renew`]), from spare tokens only.
//!
//! The queue's figures (`rise_registry_provider_queue_*`) are kept here and
//! printed by [`super::metrics`].

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::app::App;
use crate::auth::AccessKind;
use crate::aws::sdk::ThrottleCount;
use crate::config::{CacheConfig, EcrConfig};
use crate::naming::ProjectName;
use crate::registry::ecr::EcrProvider;
use crate::registry::pacer::{Operation, Pacer};
use crate::registry::{ProviderError, RegistryCredentials};

/// How often the renewal loop looks for credentials to renew.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// GetAuthorizationToken calls one issuance may make when AWS throttles.
const LOGIN_TRIES: u32 = 3;

/// Whether an error's text is AWS throttling (the SDK's retries spent).
fn is_throttling(text: &str) -> bool {
    ["Throttling", "TooManyRequests", "RequestLimitExceeded"]
        .iter()
        .any(|code| text.contains(code))
}

/// The pacer, the throttle counts it learns from, and the queue's figures.
pub struct Pacing {
    pacer: Pacer,
    throttled: ThrottleCount,
    /// Throttled answers seen so far, per operation, to tell new ones.
    seen: [AtomicU64; 2],
    /// Issuances waiting for their turn now.
    waiting: AtomicI64,
    /// Turns given, and refused (the wait would pass the deadline).
    queued: AtomicU64,
    refused: AtomicU64,
    /// Total wait of the turns given, in milliseconds.
    wait_ms: AtomicU64,
    renewed: AtomicU64,
}

const OPERATIONS: [(Operation, &str); 2] = [
    (Operation::AssumeRole, "AssumeRole"),
    (Operation::GetAuthorizationToken, "GetAuthorizationToken"),
];

impl Pacing {
    pub fn new(ecr: &EcrConfig, cache: &CacheConfig, throttled: ThrottleCount) -> Self {
        Self {
            pacer: Pacer::new(
                &ecr.aws_rates,
                Duration::from_secs(cache.max_wait_seconds.into()),
                Instant::now(),
            ),
            throttled,
            seen: Default::default(),
            waiting: AtomicI64::new(0),
            queued: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            wait_ms: AtomicU64::new(0),
            renewed: AtomicU64::new(0),
        }
    }

    /// Waits for this issuance's turn.
    ///
    /// # Errors
    /// [`ProviderError::Busy`] at once when the turn would come after the
    /// deadline.
    pub async fn turn(&self) -> Result<Duration, ProviderError> {
        let now = Instant::now();
        match self.pacer.reserve(now) {
            Ok(turn) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                let wait = turn.at.saturating_duration_since(now);
                if !wait.is_zero() {
                    self.waiting.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep_until(turn.at).await;
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    self.wait_ms.fetch_add(
                        u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                }
                Ok(wait)
            }
            Err(full) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(ProviderError::Busy(full.retry_after))
            }
        }
    }

    /// One ECR issuance in its turn: one place in the queue (requests for
    /// the same project share it, the cache's single flight), AssumeRole,
    /// then GetAuthorizationToken; a throttled login is tried again with
    /// the same session in a new turn (at most [`LOGIN_TRIES`] times), so
    /// no session is wasted and no retry jumps the queue.
    ///
    /// # Errors
    /// [`ProviderError::Busy`] at once when the turn would come too late;
    /// the provider's error otherwise.
    pub async fn issue(
        &self,
        ecr: &EcrProvider,
        project: &ProjectName,
        access: AccessKind,
    ) -> Result<RegistryCredentials, ProviderError> {
        self.turn().await?;
        let session = ecr.assume_push_role(project, access).await;
        self.learn();
        let session = session?;
        let mut tries = 1;
        loop {
            let wait = self.pacer.login_call(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let login = ecr.login(project, session.clone()).await;
            self.learn();
            match login {
                Err(ProviderError::Unavailable(e)) if tries < LOGIN_TRIES && is_throttling(&e) => {
                    tries += 1;
                    self.turn().await?;
                }
                other => return other.map(|(credentials, _)| credentials),
            }
        }
    }

    /// After an issuance: throttled answers since the last look slow the
    /// operation down; none speed it up again.
    pub fn learn(&self) {
        let counts = self.throttled.counts();
        let now = Instant::now();
        for (i, (op, name)) in OPERATIONS.iter().enumerate() {
            let total = counts
                .iter()
                .find(|(o, _)| o == name)
                .map_or(0, |(_, n)| *n);
            let before = self.seen[i].swap(total, Ordering::Relaxed);
            if total > before {
                self.pacer.throttled(*op, now);
            } else {
                self.pacer.answered(*op, now);
            }
        }
    }

    /// The queue's series, in the text format.
    pub(super) fn render(&self, out: &mut String) {
        for (name, kind, help, value) in [
            (
                "rise_registry_provider_queue_waiting",
                "gauge",
                "Cold issuances waiting for their turn at AWS's request quota now.",
                self.waiting.load(Ordering::Relaxed).to_string(),
            ),
            (
                "rise_registry_provider_queue_wait_seconds_total",
                "counter",
                "Time cold issuances waited for their turn, summed.",
                format!("{}", self.wait_ms.load(Ordering::Relaxed) as f64 / 1000.0),
            ),
            (
                "rise_registry_provider_rate",
                "gauge",
                "GetAuthorizationToken calls a second this replica allows itself now (lowered by throttling, up to registry.aws_rates).",
                format!("{}", self.pacer.login_rate()),
            ),
            (
                "rise_registry_credential_renewals_total",
                "counter",
                "Credentials renewed in the background before they ran low.",
                self.renewed.load(Ordering::Relaxed).to_string(),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let name = "rise_registry_provider_queue_turns_total";
        let _ = writeln!(
            out,
            "# HELP {name} Cold issuances given a turn, or refused at once because it would come after server.credential_cache.max_wait_seconds.\n# TYPE {name} counter"
        );
        for (result, n) in [("queued", &self.queued), ("refused", &self.refused)] {
            let _ = writeln!(
                out,
                "{name}{{result=\"{result}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
}

/// Renews, every few seconds, the credentials handed out within
/// `server.credential_cache.renew_used_within_seconds` that will fall below
/// the floor within `renew_ahead_seconds`, as long as the pacer has spare
/// tokens; stops with `stopped`.
pub async fn renew(app: Arc<App>, mut stopped: watch::Receiver<bool>) {
    let Some(pacing) = app.pacing.as_ref() else {
        return;
    };
    let cache_config = app.live().base.server.credential_cache.clone();
    if cache_config.renew_ahead_seconds == 0 {
        return;
    }
    let ahead = Duration::from_secs(cache_config.renew_ahead_seconds.into());
    let used_within = Duration::from_secs(cache_config.renew_used_within_seconds.into());
    loop {
        tokio::select! {
            () = tokio::time::sleep(RENEW_EVERY) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let mut due = app.cache.due(Instant::now(), ahead, used_within);
        // Soonest first: with few spare tokens, the ones that run out first.
        due.sort_by_key(|k| app.cache.remaining(k));
        for key in due {
            if !pacing.pacer.try_background(Instant::now()) {
                break;
            }
            let (project, access) = &key;
            let live = app.live();
            // A project removed since is not renewed (nor served).
            if live.config.project(project).is_none() {
                continue;
            }
            let renewed = app
                .cache
                .renew(&key, || async {
                    let result = app.provider.renew(project, *access).await;
                    pacing.learn();
                    result
                })
                .await;
            match renewed {
                Ok(true) => {
                    pacing.renewed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(project = %project, error = %e, "renewing credentials ahead failed; the next request issues them");
                }
            }
        }
    }
}
