//! How many AWS requests plan/apply keep in flight: a limit that adapts to
//! throttling as TCP's congestion window does (AIMD). Every answer that is
//! not throttling raises it by one over the current limit (about one more
//! slot per round of answers); throttling halves it, at most once per
//! [`DECREASE_EVERY`] (one burst of throttling is one signal, not dozens).
//!
//! The SDK's retries alone do not suffice under a sustained request rate
//! limit: every task keeps retrying at the same pace, so the throttled
//! share stays, and the retry quota of the SDK's standard strategy runs out
//! and actions fail. Backing the concurrency off makes the rate fit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The limit at the start: reads and writes are round trips of tens of
/// milliseconds, so more in flight is faster until AWS throttles.
pub(crate) const INITIAL: f64 = 16.0;
/// The most in flight, however long AWS does not throttle.
pub(crate) const MAX: f64 = 64.0;
const MIN: f64 = 1.0;
/// Throttling within this long after a decrease counts as the same signal.
const DECREASE_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    last_decrease: Option<Instant>,
    throttled: usize,
    lowest: f64,
}

/// The shared limit; [`AdaptiveLimit::acquire`] waits for a slot.
#[derive(Debug)]
pub(crate) struct AdaptiveLimit {
    state: Mutex<State>,
    freed: Notify,
}

/// A slot in flight, given back when dropped.
pub(crate) struct Slot(Arc<AdaptiveLimit>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight -= 1;
        drop(state);
        self.0.freed.notify_waiters();
    }
}

impl Default for AdaptiveLimit {
    fn default() -> Self {
        Self::new(INITIAL)
    }
}

impl AdaptiveLimit {
    pub(crate) fn new(initial: f64) -> Self {
        Self {
            state: Mutex::new(State {
                limit: initial,
                in_flight: 0,
                last_decrease: None,
                throttled: 0,
                lowest: initial,
            }),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it cannot leave the counts half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until fewer than the limit are in flight, and takes a slot.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a slot freed in between wakes us.
            freed.as_mut().enable();
            {
                let mut state = self.lock();
                if (state.in_flight as f64) < state.limit.floor() {
                    state.in_flight += 1;
                    return Slot(self.clone());
                }
            }
            freed.await;
        }
    }

    /// An answer that was not throttling: additive increase.
    pub(crate) fn on_answer(&self) {
        let mut state = self.lock();
        state.limit = (state.limit + 1.0 / state.limit).min(MAX);
        drop(state);
        self.freed.notify_waiters();
    }

    /// A throttling answer: multiplicative decrease, once per burst.
    pub(crate) fn on_throttled(&self) {
        self.on_throttled_at(Instant::now());
    }

    fn on_throttled_at(&self, now: Instant) {
        let mut state = self.lock();
        state.throttled += 1;
        if state
            .last_decrease
            .is_none_or(|t| now.duration_since(t) >= DECREASE_EVERY)
        {
            state.limit = (state.limit / 2.0).max(MIN);
            state.lowest = state.lowest.min(state.limit);
            state.last_decrease = Some(now);
        }
    }

    /// (throttled answers, lowest limit, current limit), for `-v`.
    pub(crate) fn summary(&self) -> (usize, usize, usize) {
        let state = self.lock();
        (
            state.throttled,
            state.lowest.floor() as usize,
            state.limit.floor() as usize,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_halves_once_per_burst_and_answers_climb_back() {
        let limit = AdaptiveLimit::new(16.0);
        let t0 = Instant::now();
        limit.on_throttled_at(t0);
        limit.on_throttled_at(t0 + Duration::from_millis(10));
        assert_eq!(limit.summary(), (2, 8, 8), "one burst, one halving");
        limit.on_throttled_at(t0 + DECREASE_EVERY);
        assert_eq!(limit.summary().2, 4);
        // 4 + 1/4 + 1/4.25 + …: one more after about a round of answers.
        for _ in 0..5 {
            limit.on_answer();
        }
        assert_eq!(limit.summary().2, 5, "about one more per round of answers");
        for _ in 0..10 {
            limit.on_throttled_at(t0 + DECREASE_EVERY * 10);
        }
        limit.on_throttled_at(t0 + DECREASE_EVERY * 100);
        limit.on_throttled_at(t0 + DECREASE_EVERY * 200);
        limit.on_throttled_at(t0 + DECREASE_EVERY * 300);
        assert_eq!(limit.summary().1, 1, "never below one");
        for _ in 0..100_000 {
            limit.on_answer();
        }
        assert_eq!(limit.summary().2, MAX as usize);
    }

    #[tokio::test]
    async fn no_more_than_the_limit_are_in_flight() {
        let limit = Arc::new(AdaptiveLimit::new(2.0));
        let a = limit.acquire().await;
        let _b = limit.acquire().await;
        let waiting = {
            let limit = limit.clone();
            tokio::spawn(async move {
                let _c = limit.acquire().await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "a third waits");
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a freed slot wakes the waiter")
            .unwrap();
    }
}
