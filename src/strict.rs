//! What every TLS stack refuses: defects that OpenSSL, Go's crypto/x509 and Python's
//! cryptography all reject but x509-parser lets through, checked on a certificate it parsed.
//!
//! Each rule below was checked against `openssl x509` and cryptography on a certificate with
//! that one defect, and against Go's parser rules (`tests/strict_parsing.rs` keeps the table).
//! A rule refuses only what all three refuse: anything one of them accepts (a T61String read
//! as Latin-1, a BMPString surrogate pair, a negative serial, a UniversalString) still passes.
//! When the walk here cannot read a structure, it refuses nothing: x509-parser's own
//! verdict stands.

use x509_parser::prelude::X509Certificate;

/// The attribute types named in messages by their short name.
const SHORT_NAMES: [(&[u8], &str); 6] = [
    (&[0x55, 0x04, 0x03], "CN"),
    (&[0x55, 0x04, 0x06], "C"),
    (&[0x55, 0x04, 0x07], "L"),
    (&[0x55, 0x04, 0x08], "ST"),
    (&[0x55, 0x04, 0x0a], "O"),
    (&[0x55, 0x04, 0x0b], "OU"),
];

/// x500UniqueIdentifier (2.5.4.45), the one attribute cryptography reads as a BIT STRING.
const UNIQUE_IDENTIFIER: &[u8] = &[0x55, 0x04, 0x2d];

/// Refuses a certificate x509-parser accepted when OpenSSL, Go and cryptography would all
/// refuse it; the message reads "where: why".
pub fn check(cert: &X509Certificate<'_>) -> Result<(), String> {
    let unused = cert.signature_value.unused_bits;
    if unused > 7 {
        return Err(format!("signature: BIT STRING with {unused} unused bits"));
    }
    check_serial(cert.raw_serial())?;
    let Some((issuer, subject)) = names(cert.tbs_certificate.as_ref()) else {
        return Ok(());
    };
    check_name("issuer", issuer)?;
    check_name("subject", subject)
}

/// An INTEGER's content must not be empty nor start with a redundant sign octet.
fn check_serial(content: &[u8]) -> Result<(), String> {
    match content {
        [] => Err("serial number: empty INTEGER".to_string()),
        [0x00, next, ..] if next & 0x80 == 0 => {
            Err("serial number: INTEGER not minimally encoded".to_string())
        }
        [0xff, next, ..] if next & 0x80 != 0 => {
            Err("serial number: INTEGER not minimally encoded".to_string())
        }
        _ => Ok(()),
    }
}

/// The contents of the issuer and subject Names, found by walking the TBSCertificate's
/// first fields: [0] version (optional), serial, signature algorithm, issuer, validity,
/// subject.
fn names(tbs: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut input = tbs;
    let mut fields = Tlv::read(&mut input)?.content;
    let first = Tlv::read(&mut fields)?;
    if first.class == CONTEXT && first.number == 0 {
        let _serial = Tlv::read(&mut fields)?;
    }
    let _signature = Tlv::read(&mut fields)?;
    let issuer = Tlv::read(&mut fields)?;
    let _validity = Tlv::read(&mut fields)?;
    let subject = Tlv::read(&mut fields)?;
    let all_sequences = [&issuer, &subject]
        .iter()
        .all(|n| n.class == UNIVERSAL && n.constructed && n.number == 16);
    all_sequences.then_some((issuer.content, subject.content))
}

/// Walks a Name's RDNs: each a SET of SEQUENCE { OID, value }.
fn check_name(which: &str, mut rdns: &[u8]) -> Result<(), String> {
    while !rdns.is_empty() {
        let Some(rdn) = Tlv::read(&mut rdns) else {
            return Ok(());
        };
        if !(rdn.class == UNIVERSAL && rdn.constructed && rdn.number == 17) {
            return Err(format!("{which}: a relative name is not a SET"));
        }
        let mut attributes = rdn.content;
        while !attributes.is_empty() {
            let Some(attribute) = Tlv::read(&mut attributes) else {
                return Ok(());
            };
            if !(attribute.class == UNIVERSAL && attribute.constructed && attribute.number == 16) {
                return Err(format!("{which}: an attribute is not a SEQUENCE"));
            }
            let mut parts = attribute.content;
            let Some(oid) = Tlv::read(&mut parts) else {
                return Err(format!("{which}: an attribute has no type"));
            };
            if !(oid.class == UNIVERSAL && !oid.constructed && oid.number == 6) {
                return Err(format!("{which}: an attribute type is not an OID"));
            }
            if !valid_oid(oid.content) {
                return Err(format!("{which}: malformed attribute type OID"));
            }
            let Some(value) = Tlv::read(&mut parts) else {
                return Err(format!(
                    "{which}: attribute {} has no value",
                    oid_name(oid.content)
                ));
            };
            if let Err(why) = check_value(&value, oid.content) {
                return Err(format!("{which}: {why} in {}", oid_name(oid.content)));
            }
        }
    }
    Ok(())
}

/// The rules for one attribute value. OpenSSL takes the string types, BIT STRING, SEQUENCE
/// and the tags it has no type for (7–9, 11, 13–15, 29), decoding UTF8String, BMPString and
/// UniversalString to check them; cryptography takes BIT STRING (in x500UniqueIdentifier)
/// and OCTET STRING, UTCTime, GeneralizedTime and VisibleString holding UTF-8; Go takes
/// only six string types. What none of them takes is refused.
fn check_value(value: &Tlv<'_>, oid: &[u8]) -> Result<(), String> {
    if value.class != UNIVERSAL {
        return Err("attribute value of a non-universal type".to_string());
    }
    if value.constructed {
        return match value.number {
            // OpenSSL reassembles these from their pieces (BER) and decodes the three
            // Unicode types; the other constructed values it refuses.
            3 | 7..=9 | 11..=16 | 18..=20 | 22 | 28..=30 => match collect(value.content, 0) {
                Some(joined) => check_unicode(value.number, &joined),
                None => Ok(()),
            },
            n => Err(format!("constructed attribute value of tag {n}")),
        };
    }
    let data = value.content;
    match value.number {
        12 | 28 | 30 => check_unicode(value.number, data),
        3 if !valid_bit_string(data) && oid != UNIQUE_IDENTIFIER => {
            Err("malformed BIT STRING".to_string())
        }
        4 | 23 | 24 | 26 if std::str::from_utf8(data).is_err() => {
            Err(format!("{} is not valid UTF-8", type_name(value.number)))
        }
        3 | 4 | 7..=9 | 11 | 13..=15 | 18..=20 | 22..=24 | 26 | 29 => Ok(()),
        n => Err(format!("attribute value of tag {n}, not a string type")),
    }
}

/// The content of a UTF8String, UniversalString or BMPString must decode (OpenSSL decodes
/// them all on reading a Name); other types pass.
fn check_unicode(number: u32, data: &[u8]) -> Result<(), String> {
    match number {
        12 if std::str::from_utf8(data).is_err() => {
            Err("UTF8String is not valid UTF-8".to_string())
        }
        28 => check_universal(data),
        30 => check_bmp(data),
        _ => Ok(()),
    }
}

/// UCS-2 in pairs of octets; a surrogate is accepted only as half of a pair (cryptography
/// decodes pairs, OpenSSL and Go refuse every surrogate).
fn check_bmp(data: &[u8]) -> Result<(), String> {
    if data.len() % 2 != 0 {
        return Err("BMPString of odd length".to_string());
    }
    let units = data
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]));
    if char::decode_utf16(units).any(|c| c.is_err()) {
        return Err("BMPString with an unpaired surrogate".to_string());
    }
    Ok(())
}

/// UCS-4 in groups of four octets, each a Unicode scalar value.
fn check_universal(data: &[u8]) -> Result<(), String> {
    if data.len() % 4 != 0 {
        return Err("UniversalString of a length not a multiple of 4".to_string());
    }
    let valid = data
        .chunks_exact(4)
        .all(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])).is_some());
    if valid {
        Ok(())
    } else {
        Err("UniversalString with an invalid code point".to_string())
    }
}

/// A BIT STRING's content: a count of unused bits (0 to 7, and 0 when there is no data
/// octet), then the data.
fn valid_bit_string(data: &[u8]) -> bool {
    match data {
        [unused] => *unused == 0,
        [unused, ..] => *unused <= 7,
        [] => false,
    }
}

/// An OID's content: at least one octet, each sub-identifier minimal and complete.
fn valid_oid(content: &[u8]) -> bool {
    let mut start = true;
    for &b in content {
        if start && b == 0x80 {
            return false;
        }
        start = b & 0x80 == 0;
    }
    !content.is_empty() && start
}

/// The content of a constructed string: its primitive pieces, in order, at any depth.
fn collect(mut content: &[u8], depth: u8) -> Option<Vec<u8>> {
    if depth > 8 {
        return None;
    }
    let mut out = Vec::new();
    while !content.is_empty() {
        let piece = Tlv::read(&mut content)?;
        if piece.constructed {
            out.extend(collect(piece.content, depth + 1)?);
        } else {
            out.extend_from_slice(piece.content);
        }
    }
    Some(out)
}

fn type_name(number: u32) -> &'static str {
    match number {
        4 => "OCTET STRING",
        23 => "UTCTime",
        24 => "GeneralizedTime",
        _ => "VisibleString",
    }
}

/// "CN" for the usual attributes, dotted decimal for the others.
fn oid_name(content: &[u8]) -> String {
    if let Some((_, short)) = SHORT_NAMES.iter().find(|(oid, _)| *oid == content) {
        return (*short).to_string();
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in content {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    let text: Vec<String> = arcs.iter().map(u64::to_string).collect();
    text.join(".")
}

const UNIVERSAL: u8 = 0;
const CONTEXT: u8 = 2;

/// One BER element: identifier and content (definite lengths only).
struct Tlv<'a> {
    class: u8,
    constructed: bool,
    number: u32,
    content: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Reads one element off the front of `input`; `None` when it does not parse.
    fn read(input: &mut &'a [u8]) -> Option<Self> {
        let (&first, mut rest) = input.split_first()?;
        let mut number = u32::from(first & 0x1f);
        if number == 0x1f {
            number = 0;
            loop {
                let (&b, tail) = rest.split_first()?;
                rest = tail;
                number = number.checked_mul(128)? | u32::from(b & 0x7f);
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        let (&len0, tail) = rest.split_first()?;
        rest = tail;
        let len = if len0 < 0x80 {
            usize::from(len0)
        } else {
            let count = usize::from(len0 & 0x7f);
            if count == 0 || count > 4 || rest.len() < count {
                return None;
            }
            let (bytes, tail) = rest.split_at(count);
            rest = tail;
            bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
        };
        if rest.len() < len {
            return None;
        }
        let (content, tail) = rest.split_at(len);
        *input = tail;
        Some(Tlv {
            class: first >> 6,
            constructed: first & 0x20 != 0,
            number,
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(tag: u8, data: &[u8]) -> Result<(), String> {
        let mut der = vec![tag, data.len() as u8];
        der.extend_from_slice(data);
        let mut input = &der[..];
        let tlv = Tlv::read(&mut input).unwrap();
        check_value(&tlv, &[0x55, 0x04, 0x03])
    }

    #[test]
    fn strings_every_stack_refuses_are_refused() {
        assert!(value(0x0c, b"a\xffb").is_err());
        assert!(value(0x1e, b"\x00a\x00").is_err());
        assert!(value(0x1e, b"\xd8\x00\x00a").is_err());
        assert!(value(0x1c, b"\x00\x11\x00\x00").is_err());
        assert!(value(0x1c, b"\x00\x00\xd8\x00").is_err());
        assert!(value(0x1a, b"\xff").is_err());
        assert!(value(0x1b, b"abc").is_err());
        assert!(value(0x80, b"abc").is_err());
        assert!(value(0x03, b"\x09").is_err());
    }

    #[test]
    fn strings_one_stack_accepts_pass() {
        assert!(value(0x0c, "café".as_bytes()).is_ok());
        assert!(value(0x14, b"caf\xe9").is_ok());
        assert!(value(0x13, b"a@b").is_ok());
        assert!(value(0x1e, b"\xd8\x3d\xde\x00").is_ok());
        assert!(value(0x1c, b"\x00\x01\xf6\x00").is_ok());
        assert!(value(0x1a, b"abc").is_ok());
        assert!(value(0x04, b"abc").is_ok());
        assert!(value(0x07, b"\xff").is_ok());
        assert!(value(0x03, b"\x00ab").is_ok());
        assert!(value(0x2c, b"\x0c\x01a\x0c\x01b").is_ok());
        assert!(value(0x2c, b"\x0c\x01a\x0c\x01\xff").is_err());
    }

    #[test]
    fn serials_must_be_minimal() {
        assert!(check_serial(&[]).is_err());
        assert!(check_serial(&[0x00, 0x01]).is_err());
        assert!(check_serial(&[0xff, 0x80]).is_err());
        assert!(check_serial(&[0x00]).is_ok());
        assert!(check_serial(&[0x00, 0x80]).is_ok());
        assert!(check_serial(&[0xff, 0x7f]).is_ok());
        assert!(check_serial(&[0x80]).is_ok());
    }

    #[test]
    fn oids_and_their_names() {
        assert!(valid_oid(&[0x55, 0x04, 0x03]));
        assert!(!valid_oid(&[]));
        assert!(!valid_oid(&[0x55, 0x80, 0x04]));
        assert!(!valid_oid(&[0x55, 0x84]));
        assert_eq!(oid_name(&[0x55, 0x04, 0x03]), "CN");
        assert_eq!(oid_name(&[0x55, 0x04, 0x05]), "2.5.4.5");
        assert_eq!(
            oid_name(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
    }

    #[test]
    fn the_reader_never_panics_on_truncated_input() {
        for der in [
            &b""[..],
            b"\x30",
            b"\x30\x05ab",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x1f\xff\xff\xff\xff\xff\x01",
            b"\x30\x80\x00\x00",
        ] {
            let mut input = der;
            assert!(Tlv::read(&mut input).is_none());
        }
    }
}
