//! Workload rules: which CI jobs (or other workloads) may use a project,
//! told by the claims of the OIDC token their platform signs for them.
//!
//! A rule names one issuer (an entry of `auth.issuers`) and conditions on
//! the token's string claims, all of which must hold:
//! - `claims`: the claim equals the value, or one of the values of a list;
//! - `claims_like`: the claim matches a pattern, or one of a list, where
//!   `*` stands for any run of characters (none included) and `?` for one.
//!
//! Matching is exact-case and anchored at both ends (`refs/heads/main`
//! does not match `refs/heads/main2`). A claim the token lacks, or that is
//! not a string, satisfies no condition. A rule never matches a token of
//! another issuer, whatever its claims: a GitLab job cannot pass as a
//! GitHub one by choosing the same repository name. A rule without any
//! condition, or whose only patterns match everything, would admit every
//! job of its issuer; [`WorkloadRule::new`] refuses it.
//!
//! This is the shape of an AWS IAM OIDC trust policy's `StringEquals` and
//! `StringLike` conditions, and of Vault JWT auth's `bound_claims` (with
//! `bound_claims_type: glob` for patterns), on any claim, `sub` included.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// Claim names and values longer than this are not a condition anyone
/// means; config refuses them, which also bounds matching work.
pub const MAX_CONDITION_BYTES: usize = 512;

/// Claims verification has already checked or that every token of the
/// issuer carries alike: a condition on them tells one job from another
/// no more than none would, so a rule may not rest on them.
pub const VERIFIED_CLAIMS: [&str; 6] = ["iss", "aud", "exp", "nbf", "iat", "jti"];

/// Claims that name whose pipeline a token is (GitHub Actions:
/// `repository`, `repository_owner`, `repository_id`; GitLab CI:
/// `project_path`, `namespace_path`; both spell the repository or project
/// into `sub`). An issuer that signs for every customer of a CI service
/// (a public issuer) admits a rule only when it pins one of them
/// ([`WorkloadRule::pins_tenant`]).
pub const TENANT_CLAIMS: [&str; 6] = [
    "repository",
    "repository_owner",
    "repository_id",
    "project_path",
    "namespace_path",
    "sub",
];

/// One `claims_like` pattern: anchored glob with `*` and `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPattern {
    text: String,
}

impl ClaimPattern {
    /// # Errors
    /// When the pattern is empty, too long, or only wildcards (`*`, `?*`:
    /// it would match every value, or every value but the shortest, and
    /// so be no condition at all).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err(
                "an empty pattern matches only an empty claim; use `claims` for exact values"
                    .into(),
            );
        }
        if text.len() > MAX_CONDITION_BYTES {
            return Err(format!(
                "the pattern is {} bytes; at most {MAX_CONDITION_BYTES}",
                text.len()
            ));
        }
        if text.chars().all(|c| c == '*' || c == '?') {
            return Err(format!(
                "`{text}` has no literal character, so it matches (nearly) every value and is no condition; name the values it should match"
            ));
        }
        Ok(Self { text: text.into() })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The literal text before the first wildcard.
    fn prefix(&self) -> &str {
        let end = self.text.find(['*', '?']).unwrap_or(self.text.len());
        &self.text[..end]
    }

    /// Whether the pattern fixes an owner: its literal beginning runs to
    /// a `/` after at least one other character (`acme/*`,
    /// `repo:acme/app-*`), so no other owner's values match.
    pub fn pins_owner(&self) -> bool {
        self.prefix().find('/').is_some_and(|i| i > 0)
    }

    /// Whether every literal character is a separator (`*/*`, `?*-*`,
    /// `*:*`): such a pattern tells almost nothing apart.
    pub fn only_separators(&self) -> bool {
        self.text
            .chars()
            .filter(|c| !matches!(c, '*' | '?'))
            .all(|c| matches!(c, '/' | '-' | '_' | '.' | ':' | ' '))
    }

    /// Whether `value` matches, whole. Greedy with one backtrack point (the
    /// last `*`): linear in practice, at worst pattern × value steps, both
    /// bounded by [`MAX_CONDITION_BYTES`] and the token size.
    pub fn matches(&self, value: &str) -> bool {
        let p: Vec<char> = self.text.chars().collect();
        let v: Vec<char> = value.chars().collect();
        let (mut pi, mut vi) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while vi < v.len() {
            if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == v[vi])) {
                pi += 1;
                vi += 1;
            } else if pi < p.len() && p[pi] == '*' {
                star = Some((pi, vi));
                pi += 1;
            } else if let Some((sp, sv)) = star {
                // Let the last `*` take one more character and retry.
                pi = sp + 1;
                vi = sv + 1;
                star = Some((sp, sv + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

impl fmt::Display for ClaimPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for ClaimPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// A workload rule of a project's `access` or `pull_access`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkloadRule {
    /// The name of the `auth.issuers` entry whose tokens it matches.
    pub issuer: String,
    /// Claim → accepted values (any of).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Vec<String>>,
    /// Claim → accepted patterns (any of).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims_like: BTreeMap<String, Vec<ClaimPattern>>,
}

impl WorkloadRule {
    /// # Errors
    /// When the rule has no condition, or a condition with no value to
    /// match (an empty list): either would admit every job of the issuer,
    /// or none.
    pub fn new(
        issuer: impl Into<String>,
        claims: BTreeMap<String, Vec<String>>,
        claims_like: BTreeMap<String, Vec<ClaimPattern>>,
    ) -> Result<Self, String> {
        if claims.is_empty() && claims_like.is_empty() {
            return Err("a workload rule needs at least one condition in `claims` or `claims_like`: without one it would admit every token of its issuer".into());
        }
        if let Some(name) = claims
            .keys()
            .chain(claims_like.keys())
            .find(|k| VERIFIED_CLAIMS.contains(&k.as_str()))
        {
            return Err(format!(
                "`{name}` cannot be a condition: verification checks it (or every token has its own), so it tells no job from another; condition on claims such as `repository`, `ref` or `project_path`"
            ));
        }
        if let Some(name) = claims
            .iter()
            .filter(|(_, v)| v.is_empty())
            .map(|(k, _)| k)
            .chain(
                claims_like
                    .iter()
                    .filter(|(_, v)| v.is_empty())
                    .map(|(k, _)| k),
            )
            .next()
        {
            return Err(format!(
                "the condition on `{name}` lists no value, so it can never hold"
            ));
        }
        Ok(Self {
            issuer: issuer.into(),
            claims,
            claims_like,
        })
    }

    /// Whether the rule names whose pipelines it admits: an exact value of
    /// one of the [`TENANT_CLAIMS`], or a pattern on one that fixes the
    /// owner ([`ClaimPattern::pins_owner`]).
    pub fn pins_tenant(&self) -> bool {
        let tenant = |name: &String| TENANT_CLAIMS.contains(&name.as_str());
        self.claims.keys().any(tenant)
            || self.claims_like.iter().any(|(name, patterns)| {
                tenant(name) && patterns.iter().all(ClaimPattern::pins_owner)
            })
    }

    /// Whether a token verified by issuer `issuer`, whose string claims
    /// `claim` looks up, satisfies this rule.
    pub fn matches<'c>(&self, issuer: &str, claim: impl Fn(&str) -> Option<&'c str>) -> bool {
        // Checked here too, not only in `new`: a rule built any other way
        // must still never match everything.
        if issuer != self.issuer || (self.claims.is_empty() && self.claims_like.is_empty()) {
            return false;
        }
        let exact = self
            .claims
            .iter()
            .all(|(name, values)| claim(name).is_some_and(|v| values.iter().any(|want| want == v)));
        exact
            && self.claims_like.iter().all(|(name, patterns)| {
                claim(name).is_some_and(|v| patterns.iter().any(|p| p.matches(v)))
            })
    }

    /// The claims the rule looks at: what a ticket must carry to apply it
    /// again later.
    pub fn claim_names(&self) -> impl Iterator<Item = &str> {
        self.claims
            .keys()
            .chain(self.claims_like.keys())
            .map(String::as_str)
    }
}

/// `workload:github{ref=refs/heads/main,repository=acme/app}`: how a rule
/// appears in the audit line's grant and in messages.
impl fmt::Display for WorkloadRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "workload:{}{{", self.issuer)?;
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { "," };
            first = false;
            f.write_str(s)
        };
        for (name, values) in &self.claims {
            sep(f)?;
            write!(f, "{name}={}", values.join("|"))?;
        }
        for (name, patterns) in &self.claims_like {
            sep(f)?;
            let p: Vec<&str> = patterns.iter().map(ClaimPattern::as_str).collect();
            write!(f, "{name}~{}", p.join("|"))?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> ClaimPattern {
        ClaimPattern::parse(p).unwrap()
    }

    #[test]
    fn patterns_are_anchored_globs() {
        let cases = [
            ("refs/heads/*", "refs/heads/main", true),
            ("refs/heads/*", "refs/heads/", true),
            ("refs/heads/*", "refs/tags/v1", false),
            ("refs/heads/*", "xrefs/heads/main", false),
            ("release/v?", "release/v1", true),
            ("release/v?", "release/v10", false),
            ("*-prod", "eu-prod", true),
            ("*-prod", "eu-prod-2", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "aXbYcZ", false),
            ("Main", "main", false),
            ("main", "main", true),
            ("main", "main ", false),
            ("ü*", "über", true),
        ];
        for (p, v, want) in cases {
            assert_eq!(pattern(p).matches(v), want, "{p} ~ {v}");
        }
    }

    #[test]
    fn patterns_that_match_everything_are_refused() {
        for bad in ["", "*", "***", "?", "?*", "*?*", "??"] {
            assert!(ClaimPattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ClaimPattern::parse(&"a".repeat(MAX_CONDITION_BYTES + 1)).is_err());
    }

    fn rule() -> WorkloadRule {
        WorkloadRule::new(
            "github",
            BTreeMap::from([
                ("repository".into(), vec!["acme/app".into()]),
                (
                    "event_name".into(),
                    vec!["push".into(), "workflow_dispatch".into()],
                ),
            ]),
            BTreeMap::from([("ref".into(), vec![pattern("refs/heads/*")])]),
        )
        .unwrap()
    }

    fn lookup<'a>(claims: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        |name| claims.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn every_condition_must_hold_for_the_named_issuer_only() {
        let r = rule();
        let good = [
            ("repository", "acme/app"),
            ("event_name", "push"),
            ("ref", "refs/heads/main"),
        ];
        assert!(r.matches("github", lookup(&good)));
        assert!(!r.matches("gitlab", lookup(&good)), "another issuer");
        let pr = [
            ("repository", "acme/app"),
            ("event_name", "pull_request"),
            ("ref", "refs/pull/1/merge"),
        ];
        assert!(!r.matches("github", lookup(&pr)));
        let other_repo = [
            ("repository", "acme/app2"),
            ("event_name", "push"),
            ("ref", "refs/heads/main"),
        ];
        assert!(!r.matches("github", lookup(&other_repo)));
        let missing = [("repository", "acme/app"), ("event_name", "push")];
        assert!(!r.matches("github", lookup(&missing)), "a missing claim");
    }

    #[test]
    fn rules_without_conditions_are_refused_and_never_match() {
        assert!(WorkloadRule::new("github", BTreeMap::new(), BTreeMap::new()).is_err());
        assert!(
            WorkloadRule::new(
                "github",
                BTreeMap::from([("sub".into(), vec![])]),
                BTreeMap::new()
            )
            .is_err()
        );
        for verified in VERIFIED_CLAIMS {
            assert!(
                WorkloadRule::new(
                    "github",
                    BTreeMap::from([(verified.to_string(), vec!["rise".into()])]),
                    BTreeMap::new()
                )
                .is_err(),
                "{verified}"
            );
        }
        let hollow = WorkloadRule {
            issuer: "github".into(),
            claims: BTreeMap::new(),
            claims_like: BTreeMap::new(),
        };
        assert!(!hollow.matches("github", |_| Some("x")));
    }

    #[test]
    fn rules_display_for_the_audit_line() {
        assert_eq!(
            rule().to_string(),
            "workload:github{event_name=push|workflow_dispatch,repository=acme/app,ref~refs/heads/*}"
        );
    }
}
