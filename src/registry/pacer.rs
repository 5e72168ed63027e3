//! Pacing the ECR provider's AWS calls to the account's quotas.
//!
//! Every cold credential costs one STS `AssumeRole` and one ECR
//! `GetAuthorizationToken`, and AWS throttles each per account and region
//! (`registry.aws_rates`: 20 a second with a bucket of 200 for
//! `GetAuthorizationToken`). A herd of CI jobs asking at once must not be
//! met by a herd of calls of which most are throttled: each issuance first
//! reserves one token of each bucket, in arrival order, and gets the
//! instant it may call; calls then happen at the quota's pace and none is
//! wasted (no `AssumeRole` whose `GetAuthorizationToken` cannot follow).
//!
//! - **A fair queue with a deadline.** A reservation is a place in line: the
//!   buckets run into debt, and the debt over the rate is how long the new
//!   arrival waits. An arrival whose wait would exceed `max_wait` takes no
//!   place and is told when to come back (its wait, so the answer follows
//!   the queue's length rather than a fixed number).
//! - **Several replicas share one quota** without seeing each other: a
//!   throttling answer halves the rate this replica uses (at most once a
//!   second, one burst of throttling being one signal) and empties its
//!   bucket; while answers are not throttled, the rate grows back by a
//!   twentieth of the configured one a second, up to it (AIMD, as TCP
//!   shares a link).
//! - **Background renewals come last**: they take a token only when one is
//!   there now, no one is waiting, and half the bucket stays for
//!   interactive requests.
//!
//! Pure over `tokio::time::Instant`; the provider sleeps until the instant a
//! reservation gives.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{AwsRates, Rate};

/// A throttling answer within this long of the last decrease is the same
/// signal.
const DECREASE_EVERY: Duration = Duration::from_secs(1);
/// Without throttling, the rate grows by this share of the ceiling a
/// second: from half back to all in 10 s.
const RECOVERY_PER_SECOND: f64 = 0.05;
/// The rate never falls below this share of the configured one.
const FLOOR_SHARE: f64 = 1.0 / 64.0;
/// The share of the configured rate and bucket spent: AWS's bucket starts
/// refilling when its first call arrives, a round trip after ours, and
/// other clients of the account (a `docker login` elsewhere) spend from it
/// too.
const HEADROOM: f64 = 0.95;

/// How much later than our first call AWS may see it, under load: a call
/// bucket that starts spending from full waits this long before it counts
/// refills, since AWS's own bucket starts refilling only when that first
/// call arrives.
const ARRIVAL_LAG: Duration = Duration::from_secs(1);

/// One operation's token bucket, whose tokens may run negative: the debt
/// is the queue.
#[derive(Debug, Clone)]
struct Bucket {
    configured: Rate,
    /// Whether refills start [`ARRIVAL_LAG`] after spending from full (the
    /// bucket of calls as AWS counts them).
    lagged: bool,
    /// Tokens a second now (AIMD between the floor and `configured`).
    rate: f64,
    tokens: f64,
    at: Instant,
    last_decrease: Option<Instant>,
    /// When the rate last grew (or was cut): it grows with time without
    /// throttling, not with the number of answers, so a busy replica does
    /// not climb back faster than an idle one.
    last_increase: Instant,
}

impl Bucket {
    fn new(configured: Rate, now: Instant) -> Self {
        let mut bucket = Self {
            configured,
            lagged: false,
            rate: 0.0,
            tokens: 0.0,
            at: now,
            last_decrease: None,
            last_increase: now,
        };
        bucket.rate = bucket.ceiling();
        bucket.tokens = bucket.burst();
        bucket
    }

    /// The most tokens a second this replica spends.
    fn ceiling(&self) -> f64 {
        f64::from(self.configured.per_second) * HEADROOM
    }

    /// The most tokens the bucket holds.
    fn burst(&self) -> f64 {
        (f64::from(self.configured.burst) * HEADROOM)
            .floor()
            .max(1.0)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst());
        self.at = now.max(self.at);
    }

    /// How long until one more token is there, taking nothing.
    fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            // Refills start at `at`, which the arrival lag may put ahead.
            self.at.saturating_duration_since(now)
                + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    fn take(&mut self, now: Instant) {
        if self.lagged && self.tokens >= self.burst() {
            self.at = self.at.max(now + ARRIVAL_LAG);
        }
        self.tokens -= 1.0;
    }

    fn throttled(&mut self, now: Instant) {
        if self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < DECREASE_EVERY)
        {
            return;
        }
        self.last_decrease = Some(now);
        self.last_increase = now;
        self.refill(now);
        let floor = self.ceiling() * FLOOR_SHARE;
        self.rate = (self.rate / 2.0).max(floor);
        // The burst is spent elsewhere (another replica): start from none.
        self.tokens = self.tokens.min(0.0);
    }

    fn answered(&mut self, now: Instant) {
        self.refill(now);
        let ceiling = self.ceiling();
        let grown = now
            .saturating_duration_since(self.last_increase)
            .as_secs_f64();
        self.last_increase = now.max(self.last_increase);
        self.rate = (self.rate + ceiling * RECOVERY_PER_SECOND * grown).min(ceiling);
    }
}

/// The two operations a credential costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    AssumeRole,
    GetAuthorizationToken,
}

/// A reserved place: call at `at`, having waited `at - now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    pub at: Instant,
}

/// Refused: the turn would come after the deadline. Come back after
/// `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub retry_after: Duration,
}

#[derive(Debug)]
struct State {
    assume: Bucket,
    login: Bucket,
    /// `GetAuthorizationToken` again, at the moment of the call: AWS's
    /// bucket counts calls when they arrive, and an `AssumeRole` slower
    /// than the others can bunch the logins of turns that were spread out.
    login_calls: Bucket,
}

/// The pacer of one account and region.
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
    max_wait: Duration,
}

impl Pacer {
    pub fn new(rates: &AwsRates, max_wait: Duration, now: Instant) -> Self {
        Self {
            state: Mutex::new(State {
                assume: Bucket::new(rates.assume_role, now),
                login: Bucket::new(rates.get_authorization_token, now),
                login_calls: Bucket {
                    lagged: true,
                    ..Bucket::new(rates.get_authorization_token, now)
                },
            }),
            max_wait,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place in line for one issuance (one of each operation).
    ///
    /// # Errors
    /// [`Full`] when the turn would come later than `max_wait` from now;
    /// nothing is reserved then.
    pub fn reserve(&self, now: Instant) -> Result<Turn, Full> {
        let mut s = self.state();
        let wait = s.assume.wait(now).max(s.login.wait(now));
        if wait > self.max_wait {
            return Err(Full {
                // Whole seconds, rounded up: what Retry-After can say.
                retry_after: Duration::from_secs(wait.as_secs() + 1),
            });
        }
        s.assume.take(now);
        s.login.take(now);
        Ok(Turn { at: now + wait })
    }

    /// How long to wait before a `GetAuthorizationToken` call made now
    /// (its turn was reserved already), taking its token: usually nothing.
    pub fn login_call(&self, now: Instant) -> Duration {
        let mut s = self.state();
        let wait = s.login_calls.wait(now);
        s.login_calls.take(now);
        wait
    }

    /// A token of each for a background renewal, only if both are there
    /// now with half of each bucket left for interactive requests.
    pub fn try_background(&self, now: Instant) -> bool {
        let mut s = self.state();
        let spare = |b: &mut Bucket| {
            b.refill(now);
            b.tokens >= 1.0 + b.burst() / 2.0
        };
        if !(spare(&mut s.assume) && spare(&mut s.login)) {
            return false;
        }
        s.assume.take(now);
        s.login.take(now);
        s.login_calls.take(now);
        true
    }

    /// AWS throttled `op`: this replica slows down.
    pub fn throttled(&self, op: Operation, now: Instant) {
        let mut s = self.state();
        match op {
            Operation::AssumeRole => s.assume.throttled(now),
            Operation::GetAuthorizationToken => {
                s.login.throttled(now);
                s.login_calls.throttled(now);
            }
        }
    }

    /// AWS answered `op` without throttling: this replica speeds up again.
    pub fn answered(&self, op: Operation, now: Instant) {
        let mut s = self.state();
        match op {
            Operation::AssumeRole => s.assume.answered(now),
            Operation::GetAuthorizationToken => {
                s.login.answered(now);
                s.login_calls.answered(now);
            }
        }
    }

    /// The rate `GetAuthorizationToken` is spent at now, for the metrics.
    pub fn login_rate(&self) -> f64 {
        self.state().login.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(per_second: u32, burst: u32) -> AwsRates {
        AwsRates {
            get_authorization_token: Rate { per_second, burst },
            assume_role: Rate {
                per_second: 600,
                burst: 600,
            },
        }
    }

    #[test]
    fn a_herd_is_served_at_the_quota_in_arrival_order() {
        let t0 = Instant::now();
        let pacer = Pacer::new(&rates(20, 200), Duration::from_secs(3600), t0);
        let turns: Vec<Duration> = (0..1000)
            .map(|_| pacer.reserve(t0).unwrap().at - t0)
            .collect();
        // 95% of the bucket at once, then 95% of the rate, in order.
        assert!(turns[..190].iter().all(|w| w.is_zero()));
        assert!(!turns[190].is_zero());
        assert!(turns.windows(2).all(|w| w[0] <= w[1]));
        let last = turns[999].as_secs_f64();
        let expected = (1000.0 - 190.0) / 19.0;
        assert!((last - expected).abs() < 0.01, "{last} vs {expected}");
        assert!(
            last < 40.0 * 1.25,
            "within the goal of the quota's limit: {last}"
        );
    }

    #[test]
    fn logins_are_paced_again_when_they_are_made() {
        let t0 = Instant::now();
        let pacer = Pacer::new(&rates(20, 200), Duration::from_secs(3600), t0);
        // Turns spread over time, whose logins all come at once (their
        // AssumeRole calls were slow): the bucket holds them back.
        for _ in 0..190 {
            assert_eq!(pacer.login_call(t0), Duration::ZERO);
        }
        // Refills count from a second after the bucket was full (AWS's
        // starts when our first call arrives, later under load).
        let wait = pacer.login_call(t0).as_secs_f64();
        assert!((wait - (1.0 + 1.0 / 19.0)).abs() < 1e-9, "{wait}");
        let wait = pacer.login_call(t0).as_secs_f64();
        assert!((wait - (1.0 + 2.0 / 19.0)).abs() < 1e-9, "{wait}");
    }

    #[test]
    fn a_turn_beyond_the_deadline_is_refused_with_when_to_come_back() {
        let t0 = Instant::now();
        let pacer = Pacer::new(&rates(20, 200), Duration::from_secs(10), t0);
        // 190 at once, then 10 s at 19 a second: 380 fit.
        for _ in 0..380 {
            pacer.reserve(t0).unwrap();
        }
        let full = pacer.reserve(t0).unwrap_err();
        assert_eq!(full.retry_after, Duration::from_secs(11));
        // Refusals reserve nothing: a second later, one more fits.
        let later = t0 + Duration::from_secs(1);
        assert!(pacer.reserve(later).is_ok());
    }

    #[test]
    fn throttling_halves_the_rate_once_per_burst_and_answers_bring_it_back() {
        let t0 = Instant::now();
        let pacer = Pacer::new(&rates(20, 200), Duration::from_secs(3600), t0);
        let login = Operation::GetAuthorizationToken;
        pacer.throttled(login, t0);
        pacer.throttled(login, t0 + Duration::from_millis(100));
        assert_eq!(
            pacer.login_rate(),
            9.5,
            "one signal per burst (of 95% of 20)"
        );
        // No tokens left after a throttle, and half the rate: 50 ms after
        // it, the next turn is (1 - 0.475) / 9.5 s away.
        let now = t0 + Duration::from_millis(50);
        let wait = (pacer.reserve(now).unwrap().at - now).as_secs_f64();
        assert!((wait - 0.525 / 9.5).abs() < 1e-6, "{wait}");
        // The rate grows with time without throttling (5% of 19 a second),
        // not with the number of answers.
        for _ in 0..50 {
            pacer.answered(login, t0 + Duration::from_millis(100));
        }
        let grown = pacer.login_rate();
        assert!((grown - (9.5 + 0.95 * 0.1)).abs() < 1e-9, "{grown}");
        pacer.answered(login, t0 + Duration::from_secs(5));
        let grown = pacer.login_rate();
        assert!((grown - (9.5 + 0.95 * 5.0)).abs() < 1e-9, "{grown}");
        pacer.answered(login, t0 + Duration::from_secs(20));
        assert_eq!(
            pacer.login_rate(),
            19.0,
            "back to 95% of the configured rate, no more"
        );
        for i in 0..20 {
            pacer.throttled(login, t0 + Duration::from_secs(10 + i));
        }
        assert_eq!(pacer.login_rate(), 19.0 / 64.0, "never below the floor");
    }

    #[test]
    fn background_renewals_take_only_spare_tokens_and_never_queue() {
        let t0 = Instant::now();
        let pacer = Pacer::new(&rates(20, 200), Duration::from_secs(60), t0);
        let mut renewed = 0;
        while pacer.try_background(t0) {
            renewed += 1;
        }
        assert_eq!(
            renewed, 95,
            "half the bucket (190) stays for interactive requests"
        );
        assert_eq!(
            pacer.reserve(t0).unwrap().at,
            t0,
            "an interactive one goes at once"
        );
        // Interactive debt: no background renewal until it is paid and
        // half the bucket is back.
        for _ in 0..200 {
            pacer.reserve(t0).unwrap();
        }
        assert!(!pacer.try_background(t0 + Duration::from_secs(5)));
        assert!(pacer.try_background(t0 + Duration::from_secs(30)));
    }
}
