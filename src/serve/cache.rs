//! Credentials per project, issued once and shared until they run low.
//!
//! - Single flight: each project has one async lock; the first request
//!   issues, concurrent ones wait and then read the cache. One AssumeRole
//!   per project, however many requests arrive together.
//! - Freshness: a cached credential is handed out while it has more than
//!   `floor` left, always with its true remaining lifetime.
//! - Failure: when the provider fails and the cached credential still has
//!   at least [`STALE_MIN_REMAINING`] left, it is served (marked stale);
//!   otherwise the caller gets `Unavailable` with a retry hint. After a
//!   failure the provider is not asked again for that project for
//!   [`FAILURE_BACKOFF`], so an AWS outage is not met with a request storm.
//! - Busy: a provider that cannot take the request in time
//!   ([`ProviderError::Busy`], AWS's quota) is no failure: no back-off, the
//!   caller is told when to come back.
//! - Renewal ahead: [`CredentialCache::due`] lists credentials used lately
//!   that will soon fall below the floor, and [`CredentialCache::renew`]
//!   replaces one in the background, never behind or ahead of a request's
//!   own issuance (it skips a project whose issuance is under way).
//! - Never expired: lifetimes are kept as monotonic deadlines
//!   (`tokio::time::Instant`), so a clock step cannot resurrect a credential,
//!   and tests drive them with paused time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::auth::AccessKind;
use crate::naming::ProjectName;
use crate::registry::{ProviderError, RegistryCredentials};

/// A stale credential is served during an outage only with this much left,
/// so the client still has time to push with it.
pub(crate) const STALE_MIN_REMAINING: Duration = Duration::from_secs(60);
/// How long a failed issuance is remembered before the provider is asked again.
pub(crate) const FAILURE_BACKOFF: Duration = Duration::from_secs(5);

/// What the cache hands out.
#[derive(Debug, Clone)]
pub struct Served {
    /// Shared with the cache: a hit costs a reference count, not a copy.
    pub credentials: Arc<RegistryCredentials>,
    /// Remaining lifetime now; `None` for credentials that do not expire.
    pub remaining: Option<Duration>,
    pub cache_hit: bool,
    /// Served from cache because the provider failed.
    pub stale: bool,
}

impl Served {
    /// Credentials just issued, with their remaining lifetime as of now.
    pub fn issued(credentials: RegistryCredentials) -> Self {
        let remaining = credentials.expires_at.map(|at| {
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        Self {
            credentials: Arc::new(credentials),
            remaining,
            cache_hit: false,
            stale: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Unavailable {
    pub message: String,
    /// When to try again.
    pub retry_after: Duration,
}

/// One project's state. The entry sits under the map's std lock, so a
/// cache hit is one short lock and an `Arc` clone; `flight` serialises
/// issuance (single flight) and remembers failures.
#[derive(Default)]
struct Slot {
    entry: Option<Entry>,
    flight: Arc<tokio::sync::Mutex<Failure>>,
    /// When credentials were last handed out, as milliseconds since the
    /// cache's `epoch` (an atomic: a hit holds the map's lock shared in
    /// spirit, and writes it without a second lock).
    used_ms: AtomicU64,
}

/// The last failed issuance, guarded by the single-flight lock.
#[derive(Default)]
struct Failure {
    /// No new attempt before this.
    backoff_until: Option<Instant>,
    last_error: Option<String>,
}

struct Entry {
    credentials: Arc<RegistryCredentials>,
    /// `None` when the credentials do not expire.
    deadline: Option<Instant>,
}

impl Entry {
    fn remaining(&self, now: Instant) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(now))
    }
}

/// Keyed by `K`: in serve, a project and the access kind asked for, since
/// pull and push credentials differ.
pub struct CredentialCache<K = (ProjectName, AccessKind)> {
    /// One slot per key; projects are validated and authorised before
    /// they get here, so the map is bounded by the configured projects.
    /// The std lock is held only for lookups and updates, never an `.await`.
    slots: Mutex<HashMap<K, Slot>>,
    /// Slots holding credentials, for the cache-size gauge.
    entries: AtomicUsize,
    floor: Duration,
    issue_timeout: Duration,
    /// The zero of the slots' `used_ms`.
    epoch: Instant,
}

impl<K: Clone + Eq + std::hash::Hash> CredentialCache<K> {
    pub fn new(floor: Duration, issue_timeout: Duration) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            entries: AtomicUsize::new(0),
            floor,
            issue_timeout,
            epoch: Instant::now(),
        }
    }

    fn mark_used(&self, slot: &Slot, now: Instant) {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        slot.used_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Puts freshly issued credentials in `project`'s slot, issued at `now`
    /// and, when `handed_out` (not a background renewal), marked used then;
    /// keeps the entry count. `None` when the slot is gone (a reload removed
    /// the project meanwhile). Credentials that do not expire cost nothing
    /// to make and are not kept: caching them would only pin old settings.
    fn install(&self, project: &K, served: &Served, now: Instant, handed_out: bool) -> Option<()> {
        let mut slots = self.slots();
        let slot = slots.get_mut(project)?;
        let had = slot.entry.is_some();
        slot.entry = served.remaining.map(|r| Entry {
            credentials: served.credentials.clone(),
            deadline: Some(now + r),
        });
        match (had, slot.entry.is_some()) {
            (false, true) => self.entries.fetch_add(1, Ordering::Relaxed),
            (true, false) => self.entries.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        if handed_out {
            self.mark_used(slot, now);
        }
        Some(())
    }

    /// How long `project`'s cached credentials have left, if any.
    pub fn remaining(&self, project: &K) -> Option<Duration> {
        let now = Instant::now();
        self.slots().get(project)?.entry.as_ref()?.remaining(now)
    }

    /// Keys whose credentials were handed out within `used_within` and
    /// will fall below the floor within `ahead`: what to renew now.
    pub fn due(&self, now: Instant, ahead: Duration, used_within: Duration) -> Vec<K> {
        let since = now.saturating_duration_since(self.epoch);
        let slots = self.slots();
        slots
            .iter()
            .filter(|(_, slot)| {
                let used = Duration::from_millis(slot.used_ms.load(Ordering::Relaxed));
                let recent = since.saturating_sub(used) <= used_within;
                let low = slot
                    .entry
                    .as_ref()
                    .and_then(|e| e.remaining(now))
                    .is_some_and(|left| left <= self.floor + ahead);
                recent && low
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Replaces `project`'s credentials with fresh ones from `issue`, in
    /// the background: `false` (and nothing asked) when an issuance for it
    /// is under way or it was dropped meanwhile; a failure keeps what is
    /// cached and is reported.
    ///
    /// # Errors
    /// The provider's failure.
    pub async fn renew<F, Fut>(&self, project: &K, issue: F) -> Result<bool, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<RegistryCredentials, ProviderError>>,
    {
        let Some(flight) = self.slots().get(project).map(|s| s.flight.clone()) else {
            return Ok(false);
        };
        let Ok(_guard) = flight.try_lock() else {
            return Ok(false);
        };
        let credentials = match tokio::time::timeout(self.issue_timeout, issue()).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ProviderError::Unavailable(format!(
                    "no answer within {:?}",
                    self.issue_timeout
                )));
            }
        };
        let served = Served::issued(credentials);
        Ok(self
            .install(project, &served, Instant::now(), false)
            .is_some())
    }

    /// How many projects have credentials cached.
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<K, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the slots (and cached credentials) of projects `keep` refuses:
    /// after a config reload, those of removed projects. Returns how many
    /// credentials were dropped.
    pub fn retain(&self, keep: impl Fn(&K) -> bool) -> usize {
        let mut slots = self.slots();
        let mut dropped = 0;
        slots.retain(|project, slot| {
            let kept = keep(project);
            if !kept && slot.entry.is_some() {
                dropped += 1;
            }
            kept
        });
        self.entries.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }

    /// A cached credential with more than the floor left, if there is one.
    fn fresh(&self, slot: &Slot, now: Instant) -> Option<Served> {
        let entry = slot.entry.as_ref()?;
        match entry.remaining(now) {
            None => Some(hit(entry, None, false)),
            Some(left) if left > self.floor => Some(hit(entry, Some(left), false)),
            Some(_) => None,
        }
    }

    /// Cached credentials for `project`, or fresh ones from `issue`.
    ///
    /// # Errors
    /// [`Unavailable`] when nothing valid can be served.
    pub async fn get<F, Fut>(&self, project: &K, issue: F) -> Result<Served, Unavailable>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<RegistryCredentials, ProviderError>>,
    {
        let flight = {
            let mut slots = self.slots();
            if !slots.contains_key(project) {
                slots.insert(project.clone(), Slot::default());
            }
            let slot = &slots[project];
            let now = Instant::now();
            if let Some(served) = self.fresh(slot, now) {
                self.mark_used(slot, now);
                return Ok(served);
            }
            slot.flight.clone()
        };
        let mut failure = flight.lock().await;
        let now = Instant::now();
        // Whoever held the lock before us may have just refreshed. (The
        // slot may be gone: a reload removed the project meanwhile.)
        if let Some((slot, served)) = self
            .slots()
            .get(project)
            .and_then(|s| Some((s, self.fresh(s, now)?)))
        {
            self.mark_used(slot, now);
            return Ok(served);
        }
        if let Some(until) = failure.backoff_until.filter(|u| *u > now) {
            let message = failure.last_error.clone().unwrap_or_default();
            return self.stale_or_unavailable(project, now, message, until - now);
        }
        let result = match tokio::time::timeout(self.issue_timeout, issue()).await {
            Ok(Err(ProviderError::Busy(retry_after))) => {
                // Not a failure: the provider's queue is full. No
                // back-off; the caller comes back when told.
                let message = format!(
                    "AWS's request quota is spoken for, for the next {} s",
                    retry_after.as_secs()
                );
                return self.stale_or_unavailable(project, now, message, retry_after);
            }
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.issue_timeout)),
        };
        let now = Instant::now();
        match result {
            Ok(credentials) => {
                let served = Served::issued(credentials);
                // A reload removed the project while this request, which
                // began under the old config, was issuing: answer it, keep
                // nothing (`install` finds no slot).
                self.install(project, &served, now, true);
                *failure = Failure::default();
                Ok(served)
            }
            Err(message) => {
                failure.backoff_until = Some(now + FAILURE_BACKOFF);
                failure.last_error = Some(message.clone());
                self.stale_or_unavailable(project, now, message, FAILURE_BACKOFF)
            }
        }
    }

    fn stale_or_unavailable(
        &self,
        project: &K,
        now: Instant,
        message: String,
        retry_after: Duration,
    ) -> Result<Served, Unavailable> {
        let slots = self.slots();
        let entry = slots.get(project).and_then(|s| s.entry.as_ref());
        match entry.map(|e| (e, e.remaining(now))) {
            Some((entry, Some(left))) if left >= STALE_MIN_REMAINING => {
                Ok(hit(entry, Some(left), true))
            }
            _ => Err(Unavailable {
                message,
                retry_after,
            }),
        }
    }
}

fn hit(entry: &Entry, remaining: Option<Duration>, stale: bool) -> Served {
    Served {
        credentials: entry.credentials.clone(),
        remaining,
        cache_hit: true,
        stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    const HOUR: Duration = Duration::from_secs(3600);
    const FLOOR: Duration = Duration::from_secs(900);

    fn creds(lifetime: Option<Duration>, password: &str) -> RegistryCredentials {
        RegistryCredentials {
            registry_url: "r".into(),
            username: "AWS".into(),
            password: Secret::new(password.into()),
            expires_at: lifetime.map(|l| SystemTime::now() + l),
            image: "r/rise/p".into(),
        }
    }

    fn project() -> ProjectName {
        ProjectName::parse("p").unwrap()
    }

    fn cache() -> CredentialCache<ProjectName> {
        CredentialCache::new(FLOOR, Duration::from_secs(10))
    }

    async fn ok(
        cache: &CredentialCache<ProjectName>,
        calls: &AtomicUsize,
        password: &str,
    ) -> Result<Served, Unavailable> {
        cache
            .get(&project(), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(creds(Some(HOUR), password))
            })
            .await
    }

    async fn failing(
        cache: &CredentialCache<ProjectName>,
        calls: &AtomicUsize,
    ) -> Result<Served, Unavailable> {
        cache
            .get(&project(), || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ProviderError::Unavailable("AWS is down".into()))
            })
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn cached_credentials_count_down_then_refresh_at_the_floor() {
        let (cache, calls) = (cache(), AtomicUsize::new(0));
        let first = ok(&cache, &calls, "one").await.unwrap();
        assert!(!first.cache_hit);
        tokio::time::advance(Duration::from_secs(600)).await;
        let second = ok(&cache, &calls, "two").await.unwrap();
        assert!(second.cache_hit);
        assert_eq!(second.credentials.password.expose(), "one");
        let left = second.remaining.unwrap();
        assert!(
            left <= HOUR - Duration::from_secs(600) && left > HOUR - Duration::from_secs(602),
            "{left:?}"
        );
        // Just above the floor: still cached. At the floor: refreshed.
        tokio::time::advance(HOUR - FLOOR - Duration::from_secs(602)).await;
        assert!(ok(&cache, &calls, "two").await.unwrap().cache_hit);
        tokio::time::advance(Duration::from_secs(3)).await;
        let third = ok(&cache, &calls, "three").await.unwrap();
        assert!(!third.cache_hit);
        assert_eq!(third.credentials.password.expose(), "three");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_issuance() {
        let cache = Arc::new(cache());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(&project(), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok(creds(Some(HOUR), "shared"))
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut hits = 0;
        for t in tasks {
            let served = t.await.unwrap();
            assert_eq!(served.credentials.password.expose(), "shared");
            hits += usize::from(served.cache_hit);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(hits, 49);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_serves_valid_cached_credentials_and_never_expired_ones() {
        let (cache, calls) = (cache(), AtomicUsize::new(0));
        ok(&cache, &calls, "one").await.unwrap();
        tokio::time::advance(HOUR - FLOOR).await; // below the floor: wants a refresh
        let stale = failing(&cache, &calls).await.unwrap();
        assert!(stale.stale && stale.cache_hit);
        assert_eq!(stale.credentials.password.expose(), "one");
        // Within the back-off the provider is not asked again.
        let again = failing(&cache, &calls).await.unwrap();
        assert!(again.stale);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one success, one failure");
        // Near expiry nothing is served, and the retry hint is the back-off.
        tokio::time::advance(FLOOR - STALE_MIN_REMAINING + Duration::from_secs(1)).await;
        let err = failing(&cache, &calls).await.unwrap_err();
        assert_eq!(err.message, "AWS is down");
        assert_eq!(err.retry_after, FAILURE_BACKOFF);
        tokio::time::advance(HOUR).await;
        assert!(
            failing(&cache, &calls).await.is_err(),
            "expired credentials are never served"
        );
        // Recovery, once the back-off has passed.
        assert!(
            ok(&cache, &calls, "two").await.is_err(),
            "still backing off"
        );
        tokio::time::advance(FAILURE_BACKOFF).await;
        let fresh = ok(&cache, &calls, "two").await.unwrap();
        assert!(!fresh.stale && !fresh.cache_hit);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_provider_times_out() {
        let cache = CredentialCache::new(FLOOR, Duration::from_secs(2));
        let err = cache
            .get(&project(), || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(creds(Some(HOUR), "late"))
            })
            .await
            .unwrap_err();
        assert!(err.message.contains("no answer within"), "{}", err.message);
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_without_expiry_are_not_cached() {
        let (cache, calls) = (cache(), AtomicUsize::new(0));
        for _ in 0..3 {
            let served = cache
                .get(&project(), || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(creds(None, ""))
                })
                .await
                .unwrap();
            assert_eq!(served.remaining, None);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn retain_drops_removed_projects_even_while_one_is_issuing() {
        let cache = cache();
        let calls = AtomicUsize::new(0);
        ok(&cache, &calls, "one").await.unwrap();
        assert_eq!(cache.len(), 1);
        // A removal lands while an issuance for the same project is under
        // way: the request is answered, nothing is cached, nothing panics.
        let served = cache
            .get(&ProjectName::parse("q").unwrap(), || async {
                assert_eq!(cache.retain(|p| p.as_str() != "q" && p.as_str() != "p"), 1);
                Ok(creds(Some(HOUR), "two"))
            })
            .await
            .unwrap();
        assert_eq!(served.credentials.password.expose(), "two");
        assert_eq!(cache.len(), 0);
        ok(&cache, &calls, "three").await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "p was dropped: issued again"
        );
    }
}
