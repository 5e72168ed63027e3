//! The `oci-token` key and chain checks, built on the validity dates
//! [`crate::x509`] reads.

use super::Check;
use crate::registry::oci_token::keys::{KeyError, SigningKey};
pub use crate::x509::{Validity, validity};

/// A certificate expiring within this many seconds is a warning.
pub const EXPIRY_WARNING_SECONDS: i64 = 30 * 24 * 3600;

fn date(unix: i64) -> String {
    crate::clock::rfc3339(unix)
}

/// The chain is in date at `now`: every certificate valid now (✘
/// otherwise), and none expiring within 30 days (! then).
pub fn chain_in_date(chain: &[Vec<u8>], now: i64, chain_key: &str) -> Check {
    const ID: &str = "oci_token.chain_in_date";
    let title = "the certificate chain is in date";
    let renew = format!(
        "renew the certificates in {chain_key} (`rise-registry oci-token dev-ca --out DIR --force` for a development CA; give the registry the new root), then restart serve"
    );
    let mut soonest: Option<(usize, Validity)> = None;
    for (i, der) in chain.iter().enumerate() {
        let Some(v) = validity(der) else {
            return Check::fail(
                ID,
                title,
                format!("certificate {} of the chain cannot be read", i + 1),
                format!("{chain_key} must hold PEM certificates, leaf first"),
            );
        };
        let which = if i == 0 {
            "the leaf".to_string()
        } else {
            format!("certificate {}", i + 1)
        };
        if now < v.not_before {
            return Check::fail(
                ID,
                title,
                format!("{which} is not valid before {}", date(v.not_before)),
                "check the clock of this machine and of the registry, or issue the certificate again",
            );
        }
        if now >= v.not_after {
            return Check::fail(
                ID,
                title,
                format!("{which} expired at {}", date(v.not_after)),
                renew,
            );
        }
        if soonest.is_none_or(|(_, s)| v.not_after < s.not_after) {
            soonest = Some((i, v));
        }
    }
    match soonest {
        None => Check::fail(
            ID,
            title,
            "the chain holds no certificate",
            format!("{chain_key} must hold PEM certificates, leaf first"),
        ),
        Some((i, v)) if v.not_after - now < EXPIRY_WARNING_SECONDS => {
            let which = if i == 0 {
                "the leaf".to_string()
            } else {
                format!("certificate {}", i + 1)
            };
            let days = (v.not_after - now) / 86_400;
            Check::warn(
                ID,
                title,
                format!("{which} expires at {} (in {days} days)", date(v.not_after)),
                renew,
            )
        }
        Some((_, v)) => Check::pass(ID, title, format!("valid until {}", date(v.not_after))),
    }
}

/// The signing key matches the chain's first certificate (what serve checks
/// at start), as a check; the loaded key when it does.
pub fn key_matches_chain(
    key_pem: &[u8],
    chain_pem: &[u8],
    key_key: &str,
    chain_key: &str,
) -> (Check, Option<SigningKey>) {
    const ID: &str = "oci_token.key_matches_chain";
    let title = "the signing key matches the chain's leaf";
    match SigningKey::load(key_pem, chain_pem) {
        Ok(key) => (
            Check::pass(
                ID,
                title,
                format!("{} key certified by the leaf", key.algorithm().as_str()),
            ),
            Some(key),
        ),
        Err(e) => {
            let hint = match e {
                KeyError::NoKey | KeyError::UnsupportedKey => {
                    format!("{key_key} must name a PEM EC P-256 or RSA (2048+) private key")
                }
                KeyError::NoCertificate | KeyError::BadLeaf(_) => format!(
                    "{chain_key} must hold PEM certificates, the leaf (certifying the key) first"
                ),
                KeyError::KeyMismatch => format!(
                    "{key_key} and {chain_key} must be a pair: the leaf certifies the key (`rise-registry oci-token dev-ca --out DIR` writes one)"
                ),
            };
            (Check::fail(ID, title, e.to_string(), hint), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::time;

    fn cert(not_before: i64, not_after: i64) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["t".into()]).unwrap();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn validity_is_read_from_der_in_both_time_forms() {
        // 2001 (UTCTime) and 2051 (GeneralizedTime, from 2050 on).
        let der = cert(978_307_200, 2_556_144_000);
        assert_eq!(
            validity(&der),
            Some(Validity {
                not_before: 978_307_200,
                not_after: 2_556_144_000
            })
        );
        assert_eq!(validity(b"\x30\x03\x02\x01\x00"), None);
        assert_eq!(validity(&[]), None);
    }

    #[test]
    fn a_time_with_a_character_across_a_field_is_not_a_time() {
        // Twelve bytes as a UTCTime must have, `é` across the year's end:
        // sliced at byte 2 this panicked.
        assert_eq!(time(0x17, "0\u{e9}101000000Z".as_bytes()), None);
        assert_eq!(time(0x18, "200\u{e9}101000000Z".as_bytes()), None);
        assert_eq!(time(0x17, b"500101000000Z"), Some(-631_152_000));
        // A certificate whose validity holds one: no validity, no panic.
        let mut der = cert(978_307_200, 2_556_144_000);
        let i = der
            .windows(13)
            .position(|w| w == b"010101000000Z")
            .expect("not_before as a UTCTime");
        der[i + 1..i + 3].copy_from_slice("\u{e9}".as_bytes());
        assert_eq!(validity(&der), None);
    }

    #[test]
    fn expired_expiring_and_good_chains() {
        let now = 1_800_000_000;
        let day = 86_400;
        let good = chain_in_date(&[cert(now - day, now + 365 * day)], now, "k");
        assert_eq!(good.outcome, super::super::Outcome::Pass);
        let soon = chain_in_date(
            &[
                cert(now - day, now + 365 * day),
                cert(now - day, now + 10 * day),
            ],
            now,
            "k",
        );
        assert_eq!(soon.outcome, super::super::Outcome::Warn);
        assert!(
            soon.detail.starts_with("certificate 2 expires at"),
            "{}",
            soon.detail
        );
        assert!(soon.detail.ends_with("(in 10 days)"), "{}", soon.detail);
        let expired = chain_in_date(
            &[cert(now - 10 * day, now - day)],
            now,
            "registry.certificate_chain_file",
        );
        assert_eq!(expired.outcome, super::super::Outcome::Fail);
        assert!(
            expired.detail.starts_with("the leaf expired at"),
            "{}",
            expired.detail
        );
        assert!(
            expired
                .hint
                .unwrap()
                .starts_with("renew the certificates in registry.certificate_chain_file")
        );
        let early = chain_in_date(&[cert(now + day, now + 2 * day)], now, "k");
        assert!(early.detail.contains("not valid before"));
    }
}
