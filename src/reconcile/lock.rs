//! The apply lock: one apply at a time per account, region and prefix, so
//! the chart's hook Job, its CronJob and an operator's run never change the
//! same repositories at once.
//!
//! It lives in AWS, beside what it guards, with only the permissions apply
//! already has under the prefix: the repository `{repo_prefix}`
//! [`LOCK_REPOSITORY`] (a name no project can have, since project names
//! hold no `/`), created once and never pushed to, whose tags are the
//! claims. ECR offers no conditional write, so the lock is a claim-then-look
//! protocol over tags:
//!
//! 1. read the claims; if another live claim exists, wait;
//! 2. add our claim `rise:apply-lock/{id}` = `{stamp_ms}:{expires}:{holder}`;
//! 3. wait [`SETTLE`], read again: the live claim with the earliest stamp
//!    wins; a loser removes its claim and waits.
//!
//! Two contenders that both pass step 1 see each other in step 3 and agree
//! on one winner. A contender whose claim reached AWS long after it was
//! stamped withdraws it (step 2 is refused when it took longer than half of
//! [`SETTLE`]), so a stalled claim can never undercut a holder that already
//! decided. A claim is renewed while apply runs and lapses [`TTL`] after
//! its holder stops renewing (a killed pod blocks others for at most that).
//! The decisions are pure functions over the tags, tested here; the calls
//! are in [`super::aws::Aws`].

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lc_rs::rand::SecureRandom;

/// The lock repository's name after `repo_prefix`.
pub const LOCK_REPOSITORY: &str = "rise-registry/apply-lock";
/// The tag every claim's key starts with.
pub const CLAIM_PREFIX: &str = "rise:apply-lock/";
/// How long a claim holds without renewal.
pub const TTL: Duration = Duration::from_secs(60);
/// How often a holder renews its claim: three tries before it lapses.
pub const RENEW_EVERY: Duration = Duration::from_secs(15);
/// How long a contender waits between claiming and looking.
pub const SETTLE: Duration = Duration::from_secs(1);
/// How often a waiting apply looks again.
pub const POLL: Duration = Duration::from_secs(5);

/// One claim read from a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The tag key's suffix: unique per contender.
    pub id: String,
    /// When it was made, Unix milliseconds (the claimer's clock).
    pub stamp_ms: i64,
    /// When it lapses, Unix seconds.
    pub expires: i64,
    /// Who made it (host and process), for the waiting message.
    pub holder: String,
}

impl Claim {
    /// The tag (key, value) that writes this claim.
    pub fn tag(&self) -> (String, String) {
        (
            format!("{CLAIM_PREFIX}{}", self.id),
            format!("{}:{}:{}", self.stamp_ms, self.expires, self.holder),
        )
    }

    /// Reads a claim from a tag; `None` for any other tag or a value that
    /// is not one (a hand-edited tag is ignored, never a panic).
    pub fn parse(key: &str, value: &str) -> Option<Self> {
        let id = key.strip_prefix(CLAIM_PREFIX)?;
        if id.is_empty() {
            return None;
        }
        let mut parts = value.splitn(3, ':');
        let stamp_ms = parts.next()?.parse().ok()?;
        let expires = parts.next()?.parse().ok()?;
        let holder = parts.next().unwrap_or("").to_string();
        Some(Self {
            id: id.to_string(),
            stamp_ms,
            expires,
            holder,
        })
    }
}

/// The claims among `tags`.
pub fn claims(tags: &BTreeMap<String, String>) -> Vec<Claim> {
    tags.iter()
        .filter_map(|(k, v)| Claim::parse(k, v))
        .collect()
}

/// What the claims say to contender `me` at `now` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `me` holds the lock.
    Held,
    /// Another live claim wins: wait for it.
    Busy(Claim),
    /// No live claim wins yet (and `me` has none): claim.
    Free,
}

/// The live claim that holds the lock: the earliest stamp (ties broken by
/// id, so every reader picks the same one).
pub fn winner(claims: &[Claim], now: i64) -> Option<&Claim> {
    claims
        .iter()
        .filter(|c| c.expires > now)
        .min_by(|a, b| (a.stamp_ms, &a.id).cmp(&(b.stamp_ms, &b.id)))
}

/// The verdict for `me` over `claims` at `now`.
pub fn verdict(claims: &[Claim], me: &str, now: i64) -> Verdict {
    match winner(claims, now) {
        Some(c) if c.id == me => Verdict::Held,
        Some(c) => Verdict::Busy(c.clone()),
        None => Verdict::Free,
    }
}

/// Whether `claim` was made in `place` (this host and process namespace,
/// [`holder`]'s first part) by a process that is gone (`alive` says
/// whether a pid runs here): an apply killed at this very terminal or in
/// this very pod, whose claim need not be waited out. Containers sharing
/// a host name but not their processes differ in `place`, so one never
/// takes another's live claim for gone.
pub fn abandoned(claim: &Claim, place: &str, alive: impl Fn(u32) -> bool) -> bool {
    claim
        .holder
        .rsplit_once(" pid ")
        .and_then(|(p, pid)| Some((p, pid.parse::<u32>().ok()?)))
        .is_some_and(|(p, pid)| {
            p == tag_safe(place, 150) && pid != std::process::id() && !alive(pid)
        })
}

/// The holder text of this process in `place`, as [`abandoned`] reads it:
/// `PLACE pid PID`.
pub fn holder(place: &str) -> String {
    format!("{} pid {}", tag_safe(place, 150), std::process::id())
}

/// Claims that lapsed: anyone may remove them.
pub fn lapsed(claims: &[Claim], now: i64) -> Vec<String> {
    claims
        .iter()
        .filter(|c| c.expires <= now)
        .map(|c| c.tag().0)
        .collect()
}

/// 64 random bits, hex: a contender's claim id.
pub fn random_id() -> String {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `text` in the characters an ECR tag value allows (letters, digits,
/// spaces and `_ . : / = + - @`), at most `max` of them.
pub fn tag_safe(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim(id: &str, stamp_ms: i64, expires: i64) -> Claim {
        Claim {
            id: id.into(),
            stamp_ms,
            expires,
            holder: format!("host-{id}"),
        }
    }

    fn tags(claims: &[Claim]) -> BTreeMap<String, String> {
        let mut tags: BTreeMap<String, String> = claims.iter().map(Claim::tag).collect();
        tags.insert("rise:managed".into(), "true".into());
        tags
    }

    #[test]
    fn the_earliest_live_claim_holds_and_lapsed_claims_count_for_nothing() {
        let now = 1_000;
        let held = [claim("a", 500_000, 1_100), claim("b", 600_000, 1_100)];
        assert_eq!(verdict(&held, "a", now), Verdict::Held);
        assert_eq!(verdict(&held, "b", now), Verdict::Busy(held[0].clone()));
        assert_eq!(verdict(&held, "c", now), Verdict::Busy(held[0].clone()));
        // `a` stopped renewing: `b` holds, and `a`'s tag may go.
        let lapsed_a = [claim("a", 500_000, 1_000), claim("b", 600_000, 1_100)];
        assert_eq!(verdict(&lapsed_a, "b", now), Verdict::Held);
        assert_eq!(
            lapsed(&lapsed_a, now),
            vec!["rise:apply-lock/a".to_string()]
        );
        assert_eq!(verdict(&[], "a", now), Verdict::Free);
        // Equal stamps: the id decides, the same for every reader.
        let tie = [claim("b", 5, 2_000), claim("a", 5, 2_000)];
        assert_eq!(verdict(&tie, "a", now), Verdict::Held);
        assert_eq!(verdict(&tie, "b", now), Verdict::Busy(tie[1].clone()));
    }

    #[test]
    fn claims_are_read_back_from_their_tags_and_other_tags_are_ignored() {
        let c = Claim {
            id: "0a1b".into(),
            stamp_ms: 1_765_000_000_123,
            expires: 1_765_000_120,
            holder: "rise-rise-registry-reconcile-29x7k pid 1".into(),
        };
        let mut t = tags(std::slice::from_ref(&c));
        t.insert("rise:apply-lock/".into(), "1:2:x".into());
        t.insert("rise:apply-lock/bad".into(), "soon:later".into());
        t.insert("rise:project".into(), "1:2:3".into());
        assert_eq!(claims(&t), vec![c]);
    }

    #[test]
    fn a_claim_of_a_gone_process_on_this_host_is_abandoned_and_no_other() {
        let mut c = claim("a", 1, 2);
        c.holder = "ci-runner-7 pid 4242".into();
        assert!(abandoned(&c, "ci-runner-7", |_| false));
        assert!(
            !abandoned(&c, "ci-runner-7", |pid| pid == 4242),
            "still running"
        );
        assert!(!abandoned(&c, "ci-runner-8", |_| false), "another host's");
        c.holder = holder("ci-runner-7");
        assert!(
            !abandoned(&c, "ci-runner-7", |_| false),
            "this process's own"
        );
        c.holder = "no pid here".into();
        assert!(!abandoned(&c, "no", |_| false));
        c.holder = "h pid -1".into();
        assert!(!abandoned(&c, "h", |_| false));
    }

    #[test]
    fn a_holder_name_becomes_a_valid_tag_value() {
        assert_eq!(tag_safe("pod#1 (ci)", 100), "pod-1 -ci-");
        assert_eq!(tag_safe(&"é".repeat(300), 200).len(), 200);
    }

    proptest! {
        /// Whatever a tag holds, reading it never panics, and a claim
        /// written reads back as itself.
        #[test]
        fn any_tag_reads_without_panic(key in ".{0,40}", value in ".{0,80}") {
            let _ = Claim::parse(&key, &value);
        }

        #[test]
        fn a_written_claim_reads_back(
            id in "[a-f0-9]{1,16}",
            stamp_ms in 0i64..=i64::MAX,
            expires in i64::MIN..=i64::MAX,
            holder in ".{0,60}",
        ) {
            let c = Claim { id, stamp_ms, expires, holder: tag_safe(&holder, 200) };
            let (k, v) = c.tag();
            prop_assert_eq!(Claim::parse(&k, &v), Some(c));
        }

        /// Every reader of one set of claims agrees on at most one holder.
        #[test]
        fn at_most_one_contender_holds(
            raw in proptest::collection::vec((0i64..5, 0i64..4), 0..6),
            now in 0i64..4,
        ) {
            let claims: Vec<Claim> = raw
                .iter()
                .enumerate()
                .map(|(i, (stamp, expires))| claim(&format!("c{i}"), *stamp, *expires))
                .collect();
            let holders = claims
                .iter()
                .filter(|c| verdict(&claims, &c.id, now) == Verdict::Held)
                .count();
            prop_assert!(holders <= 1);
            let live = claims.iter().any(|c| c.expires > now);
            prop_assert_eq!(holders == 1, live);
        }
    }
}
