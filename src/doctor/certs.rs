//! The validity dates of X.509 certificates, read from their DER (a small
//! walk to `tbsCertificate.validity`, enough for dates without an ASN.1
//! library), and the `oci-token` key and chain checks built on them.

use super::Check;
use crate::registry::oci_token::keys::{KeyError, SigningKey};

/// A certificate expiring within this many seconds is a warning.
pub const EXPIRY_WARNING_SECONDS: i64 = 30 * 24 * 3600;

/// Not before and not after, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// One DER element: (tag, contents, rest).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `UTCTime` (tag 0x17, `YYMMDDHHMMSSZ`) or `GeneralizedTime` (0x18,
/// `YYYYMMDDHHMMSSZ`) as Unix seconds.
fn time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    // Digits only from here: the slices below are at byte offsets, which a
    // multi-byte character of a forged certificate would split.
    if !text.is_ascii() {
        return None;
    }
    let (year, rest) = match tag {
        0x17 if text.len() == 12 => {
            let yy: i32 = text[..2].parse().ok()?;
            // RFC 5280: 50–99 are 19xx, 00–49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        0x18 if text.len() == 14 => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let n = |i: usize| rest.get(i..i + 2).and_then(|s| s.parse::<u8>().ok());
    let month = time::Month::try_from(n(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, n(2)?).ok()?;
    let t = time::Time::from_hms(n(4)?, n(6)?, n(8)?).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// The validity of a DER certificate; `None` when it cannot be read.
pub fn validity(der: &[u8]) -> Option<Validity> {
    let (_, cert, _) = element(der)?; // Certificate SEQUENCE
    let (_, tbs, _) = element(cert)?; // tbsCertificate SEQUENCE
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after; // [0] version
    }
    let (_, _, rest) = element(rest)?; // serialNumber
    let (_, _, rest) = element(rest)?; // signature AlgorithmIdentifier
    let (_, _, rest) = element(rest)?; // issuer
    let (_, validity, _) = element(rest)?;
    let (t1, nb, rest) = element(validity)?;
    let (t2, na, _) = element(rest)?;
    Some(Validity {
        not_before: time(t1, nb)?,
        not_after: time(t2, na)?,
    })
}

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
