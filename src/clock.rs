//! Wall-clock time for what leaves the process: JWT and ticket checks,
//! response expiry fields, audit timestamps. One source, so every
//! timestamp serve and the registry providers write agrees.
//!
//! Seconds are `i64` throughout: JWT claims (`exp`, `nbf`, `iat`), tickets
//! and registry tokens are signed integers, and so is what the `time` crate
//! formats; an unsigned type would need a cast at each of those edges.
//! Lifetimes inside the process (cache entries, back-off, rate limits) are
//! not measured here but on tokio's monotonic clock, so a clock step cannot
//! stretch them and tests can pause them.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch (0 if the system clock is before
/// it): the project store's row versions and leases.
pub(crate) fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Unix seconds → `2026-01-01T12:00:00Z` (UTC, whole seconds); an empty
/// string for an instant RFC 3339 cannot write (outside years 0-9999).
///
/// Each thread remembers its last answer: a busy server formats the same
/// second thousands of times.
pub(crate) fn rfc3339(unix_secs: i64) -> String {
    thread_local! {
        static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != unix_secs {
            let text = OffsetDateTime::from_unix_timestamp(unix_secs)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default();
            *last = (unix_secs, text);
        }
        last.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_268_800), "2026-01-01T12:00:00Z");
        // The same second again comes from the thread's memory.
        assert_eq!(rfc3339(1_767_268_800), "2026-01-01T12:00:00Z");
    }

    #[test]
    fn instants_rfc3339_cannot_write_are_empty_not_a_panic() {
        assert_eq!(rfc3339(i64::MAX), "");
        assert_eq!(rfc3339(i64::MIN), "");
        assert_eq!(rfc3339(-62_167_219_201), "", "the year -1");
    }

    #[test]
    fn now_is_after_the_epoch() {
        assert!(unix_now() > 1_700_000_000);
    }
}
