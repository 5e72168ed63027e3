//! Workload rules: arbitrary issuers, claims and patterns. Nothing may
//! panic; a rule never matches a token of another issuer, whatever its
//! claims; and a pattern matches exactly what a plain dynamic-programming
//! glob matcher says it does.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rise_registry::auth::claims::{ClaimPattern, WorkloadRule};

/// `*` any run, `?` one character, anchored: the textbook table.
fn glob(p: &[char], v: &[char]) -> bool {
    let mut m = vec![vec![false; v.len() + 1]; p.len() + 1];
    m[0][0] = true;
    for i in 1..=p.len() {
        m[i][0] = m[i - 1][0] && p[i - 1] == '*';
        for j in 1..=v.len() {
            m[i][j] = match p[i - 1] {
                '*' => m[i - 1][j] || m[i][j - 1],
                '?' => m[i - 1][j - 1],
                c => m[i - 1][j - 1] && c == v[j - 1],
            };
        }
    }
    m[p.len()][v.len()]
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Fields separated by NUL: rule issuer, token issuer, claim name,
    // pattern, the token's value, an exact value.
    let mut f = text.split('\0');
    let mut next = || f.next().unwrap_or("").to_string();
    let (rule_issuer, token_issuer, name, pattern, value, exact) =
        (next(), next(), next(), next(), next(), next());
    if let Ok(p) = ClaimPattern::parse(&pattern) {
        let (pc, vc): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
        // The reference is quadratic in memory: compare on inputs it can hold.
        let expected = (pc.len() * vc.len() < 100_000).then(|| glob(&pc, &vc));
        if let Some(expected) = expected {
            assert_eq!(p.matches(&value), expected, "{pattern:?} ~ {value:?}");
        }
        // Conditions on claims verification checks (`aud`, ...) are refused.
        let Ok(rule) = WorkloadRule::new(
            rule_issuer.clone(),
            BTreeMap::from([("sub".to_string(), vec![exact.clone()])]),
            BTreeMap::from([(name.clone(), vec![p])]),
        ) else {
            return;
        };
        let claims: BTreeMap<&str, &str> =
            [("sub", exact.as_str()), (name.as_str(), value.as_str())].into();
        let lookup = |k: &str| claims.get(k).copied();
        let matched = rule.matches(&token_issuer, lookup);
        if token_issuer != rule_issuer {
            assert!(!matched, "a rule of {rule_issuer:?} matched a token of {token_issuer:?}");
        }
        // The same token from the rule's own issuer matches exactly when
        // every condition holds (`sub` equals by construction).
        if let (Some(expected), true) = (expected, name != "sub") {
            assert_eq!(rule.matches(&rule_issuer, lookup), expected);
        }
    }
});
