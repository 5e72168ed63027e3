//! The validity dates of X.509 certificates, read from their DER (a small
//! walk to `tbsCertificate.validity`, enough for dates without an ASN.1
//! library). Doctor judges them; serve exports the soonest expiry as a
//! metric, so an alert can fire weeks ahead.

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
pub(crate) fn time(tag: u8, text: &[u8]) -> Option<i64> {
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

/// The soonest `notAfter` of the certificates in `chain` (DER), `None`
/// when there is none or one cannot be read.
pub fn soonest_expiry<'a>(chain: impl IntoIterator<Item = &'a [u8]>) -> Option<i64> {
    let mut soonest: Option<i64> = None;
    for der in chain {
        let after = validity(der)?.not_after;
        soonest = Some(soonest.map_or(after, |s| s.min(after)));
    }
    soonest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_after: i64) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(0).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_soonest_expiry_is_the_earliest_not_after_of_a_readable_chain() {
        let (a, b) = (cert(2_000_000_000), cert(1_900_000_000));
        assert_eq!(
            soonest_expiry([a.as_slice(), b.as_slice()]),
            Some(1_900_000_000)
        );
        assert_eq!(soonest_expiry([a.as_slice()]), Some(2_000_000_000));
        assert_eq!(soonest_expiry(std::iter::empty()), None);
        // One unreadable certificate: no date at all rather than a later one.
        assert_eq!(soonest_expiry([a.as_slice(), b"junk".as_slice()]), None);
    }
}
