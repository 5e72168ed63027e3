//! A token bucket per caller for the credential endpoint.
//!
//! Each caller (token subject) may make `burst` requests at once, refilled
//! at `per_minute`. Buckets that have refilled completely carry no state
//! worth keeping and are dropped when the table grows, so a stream of
//! distinct callers cannot grow memory without bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Above this many tracked callers, full buckets are swept out.
const SWEEP_ABOVE: usize = 10_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    /// Never held across an `.await`.
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            capacity: f64::from(burst),
            per_second: f64::from(per_minute) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `caller`.
    ///
    /// # Errors
    /// How long until a token is available.
    pub fn check(&self, caller: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > SWEEP_ABOVE {
            let (capacity, rate) = (self.capacity, self.per_second);
            buckets.retain(|_, b| b.tokens + rate * (now - b.updated).as_secs_f64() < capacity);
        }
        // Look up by `&str` first: only a new caller costs an allocation.
        if !buckets.contains_key(caller) {
            buckets.insert(
                caller.to_string(),
                Bucket {
                    tokens: self.capacity,
                    updated: now,
                },
            );
        }
        let bucket = buckets.get_mut(caller).expect("inserted above");
        let refill = self.per_second * (now - bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + refill).min(self.capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(Duration::from_secs_f64(wait))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_refills_per_caller() {
        let limiter = RateLimiter::new(60, 3);
        for _ in 0..3 {
            assert!(limiter.check("alice").is_ok());
        }
        let wait = limiter.check("alice").unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(limiter.check("bob").is_ok(), "callers are independent");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limiter.check("alice").is_ok());
        assert!(limiter.check("alice").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn full_buckets_are_swept_when_the_table_grows() {
        let limiter = RateLimiter::new(60, 1);
        for i in 0..=SWEEP_ABOVE {
            limiter.check(&format!("c{i}")).unwrap();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        limiter.check("late").unwrap();
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
