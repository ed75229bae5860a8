//! The subject of an X.509 certificate as a short text (`CN=mx.example.org,O=Example`),
//! for the `Received:` header and the log. A minimal DER walk, bounded by the certificate:
//! it reads only the fields it needs and gives up (returns `None`) on anything unexpected.

/// DER tag of a SEQUENCE.
const SEQUENCE: u8 = 0x30;
/// DER tag of a SET.
const SET: u8 = 0x31;
/// DER tag of an OBJECT IDENTIFIER.
const OID: u8 = 0x06;
/// DER tag of the explicit `[0]` version field of a TBSCertificate.
const VERSION: u8 = 0xa0;

/// The subject distinguished name of a DER certificate (RFC 5280 §4.1.2.6), attributes
/// in certificate order joined by commas, with the usual short names (CN, O, OU, C, L,
/// ST, emailAddress) and dotted OIDs for the others.
pub fn subject_of(cert_der: &[u8]) -> Option<String> {
    let (tag, certificate, _) = element(cert_der)?;
    expect(tag, SEQUENCE)?;
    let (tag, tbs, _) = element(certificate)?;
    expect(tag, SEQUENCE)?;
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, then the subject.
    for _ in 0..4 {
        let (_, _, after) = element(rest)?;
        rest = after;
    }
    let (tag, name, _) = element(rest)?;
    expect(tag, SEQUENCE)?;
    render_name(name)
}

/// Renders a Name: a SEQUENCE of SETs of (type, value) pairs.
fn render_name(mut name: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !name.is_empty() {
        let (tag, mut set, after) = element(name)?;
        expect(tag, SET)?;
        name = after;
        while !set.is_empty() {
            let (tag, pair, after) = element(set)?;
            expect(tag, SEQUENCE)?;
            set = after;
            let (tag, oid, value_part) = element(pair)?;
            expect(tag, OID)?;
            let (_, value, _) = element(value_part)?;
            let text = String::from_utf8_lossy(value);
            parts.push(format!("{}={}", attribute_name(oid), text));
        }
    }
    Some(parts.join(","))
}

/// The short name of a well-known attribute type, or its dotted OID.
fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        other => dotted(other),
    }
}

/// An OID in dotted notation (X.690 §8.19), for attribute types without a short name.
fn dotted(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &byte in oid {
        value = value
            .saturating_mul(128)
            .saturating_add(u64::from(byte & 0x7f));
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = value.min(80) / 40;
                arcs.push(first);
                arcs.push(value.saturating_sub(first * 40));
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    let texts: Vec<String> = arcs.iter().map(u64::to_string).collect();
    texts.join(".")
}

/// Checks a tag, so that `?` stops the walk on a mismatch.
fn expect(tag: u8, wanted: u8) -> Option<()> {
    (tag == wanted).then_some(())
}

/// Splits one DER element off the front: (tag, contents, what follows). Definite lengths
/// only (DER), at most four length bytes; `None` when the input is truncated.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = rest.get(..count)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest.get(count..)?)
    };
    let contents = rest.get(..len)?;
    Some((tag, contents, rest.get(len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_garbage_input_gives_none() {
        assert_eq!(subject_of(&[]), None);
        assert_eq!(subject_of(&[0x30, 0x82, 0xff]), None);
        assert_eq!(subject_of(b"not a certificate"), None);
    }

    #[test]
    fn unknown_attribute_types_are_dotted() {
        assert_eq!(
            dotted(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37]),
            "1.3.6.1.4.1.311"
        );
        assert_eq!(attribute_name(&[0x55, 0x04, 0x03]), "CN");
    }
}
