//! Bytes to certificates and CRLs: PEM blocks (several per file, each on its own), else a
//! keystore (PKCS#12, JKS, JCEKS) told by its content, else one DER certificate or CRL.
//! Never panics on hostile input; every failure is a message naming the block or entry.

use std::fmt::Write as _;

use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::{Any, Tag};
use x509_parser::oid_registry::{
    Oid, OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_LOCALITY_NAME,
    OID_X509_ORGANIZATIONAL_UNIT, OID_X509_ORGANIZATION_NAME, OID_X509_STATE_OR_PROVINCE_NAME,
};
use x509_parser::prelude::{CertificateRevocationList, FromDer, X509Certificate, X509Name};

use crate::facts;
use crate::keystore;
use crate::model::{CertInfo, CrlInfo, Facts, Name, NO_NEXT_UPDATE};
use crate::strict;

/// PEM labels whose block holds a certificate (for `TRUSTED CERTIFICATE`, the leading one).
const CERT_LABELS: [&str; 3] = ["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"];

/// The PEM label of a certificate revocation list.
const CRL_LABEL: &str = "X509 CRL";

/// Serials longer than this are refused rather than printed (RFC 5280 allows 20 octets).
const MAX_SERIAL_BYTES: usize = 256;

/// What was found in one buffer.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The certificates, in file order.
    pub certs: Vec<CertInfo>,
    /// The certificate revocation lists, in file order.
    pub crls: Vec<CrlInfo>,
    /// One message per bad certificate or CRL block ("PEM block 2: ..."), keystore entry,
    /// or keystore that could not be opened.
    pub errors: Vec<String>,
    /// True when the buffer held PEM blocks of any type (keys and CSRs included).
    pub had_pem: bool,
    /// The keystore format the buffer was read as, whether it opened or not.
    pub keystore: Option<keystore::Format>,
}

/// Reads every certificate and CRL in `data`: each PEM certificate or CRL block on its own,
/// other block types skipped; when there is no PEM block at all, a keystore opened with
/// `passwords` (see [`keystore::open`]), else the whole buffer as one DER certificate or
/// CRL. A buffer that is none of these yields nothing and no error; the caller decides
/// whether that is a failure. With `facts`, each certificate's [`Facts`] are read too
/// (they cost about a fifth of a parse, so only `--expose-cert-info` and `--leaf-only` pay).
pub fn parse_certificates(data: &[u8], passwords: &[String], facts: bool) -> Parsed {
    if well_formed(data) == Some(true) {
        if let Some(parsed) = parse_straight(data, facts) {
            return parsed;
        }
    }
    let parsed = parse_block_by_block(data, facts);
    if parsed.had_pem {
        return parsed;
    }
    match keystore::detect(data) {
        Some(format) => parse_keystore(format, data, passwords, facts),
        None => parse_der(data, facts),
    }
}

/// For the fuzz target (`fuzz/fuzz_targets/pem.rs`), not for callers: when the one-pass
/// reader would answer for `data`, its answer and the block-by-block one, so that the two
/// can be compared; `None` when [`parse_certificates`] would go block by block anyway.
#[doc(hidden)]
pub fn both_paths(data: &[u8], facts: bool) -> Option<(Parsed, Parsed)> {
    if well_formed(data) != Some(true) {
        return None;
    }
    let straight = parse_straight(data, facts)?;
    Some((straight, parse_block_by_block(data, facts)))
}

/// The common case in one pass of rustls-pki-types' reader: every block closed, no label
/// it does not know, nothing that fails. Anything else is left to
/// [`parse_block_by_block`], which can say which block failed.
fn parse_straight(data: &[u8], facts: bool) -> Option<Parsed> {
    let mut parsed = Parsed {
        had_pem: true,
        ..Parsed::default()
    };
    for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(data) {
        match section.ok()? {
            (SectionKind::Certificate, der) => parsed.certs.push(cert_info(&der, facts).ok()?),
            (SectionKind::Crl, der) => parsed.crls.push(crl_info(&der).ok()?),
            _ => {}
        }
    }
    Some(parsed)
}

/// Looks only at the marker lines (base64 has no `-`, so the scan jumps from one to the
/// next): `Some(true)` when there are blocks, each END matching its BEGIN before the next
/// BEGIN, every BEGIN line well framed, and no certificate label other than `CERTIFICATE`;
/// `Some(false)` when there is no marker at all; `None` for anything else.
fn well_formed(data: &[u8]) -> Option<bool> {
    let mut open: Option<&str> = None;
    let mut blocks = 0;
    let mut pos = 0;
    while let Some(offset) = find_dash(&data[pos..]) {
        let at = pos + offset;
        let end = data[at..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
            .map_or(data.len(), |e| at + e);
        let starts_line = at == 0 || matches!(data[at - 1], b'\n' | b'\r');
        let line = &data[at..end];
        if starts_line {
            if let Some(label) = begin_label(line) {
                if open.is_some() || (label != "CERTIFICATE" && CERT_LABELS.contains(&label)) {
                    return None;
                }
                open = Some(label);
                blocks += 1;
            } else if let Some(rest) = line.strip_prefix(b"-----END ") {
                let label = open.take()?;
                if trim_end(rest).strip_suffix(b"-----") != Some(label.as_bytes()) {
                    return None;
                }
            } else if line.starts_with(b"-----BEGIN") {
                // A BEGIN line whose label is not text (or not framed): the two readers
                // disagree on where its block starts, so only the slow one may answer.
                return None;
            }
        }
        pos = end;
    }
    match open {
        Some(_) => None,
        None => Some(blocks > 0),
    }
}

/// The first `-` in `data`, looked for eight bytes at a time: PEM bodies are long runs of
/// base64, which has none.
fn find_dash(data: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const DASHES: u64 = u64::from_ne_bytes([b'-'; 8]);
    let mut words = data.chunks_exact(8);
    let mut start = 0;
    for word in words.by_ref() {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        // A byte of `x` is zero where `word` has a dash; this sees whether any is.
        let x = u64::from_ne_bytes(bytes) ^ DASHES;
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        start += 8;
    }
    data[start..]
        .iter()
        .position(|&b| b == b'-')
        .map(|at| start + at)
}

/// Every block framed on its own, so that one bad block is reported and its neighbours read.
fn parse_block_by_block(data: &[u8], facts: bool) -> Parsed {
    let mut parsed = Parsed::default();
    let mut index = 0;
    for block in Blocks::new(data) {
        parsed.had_pem = true;
        let (label, body) = match block {
            Ok(block) => block,
            Err(why) => {
                index += 1;
                parsed.errors.push(format!("PEM block {index}: {why}"));
                continue;
            }
        };
        let crl = label == CRL_LABEL;
        if !crl && !CERT_LABELS.contains(&label) {
            continue;
        }
        index += 1;
        let der = match decode_body(body) {
            Ok(der) => der,
            Err(why) => {
                parsed.errors.push(format!("PEM block {index}: {why}"));
                continue;
            }
        };
        let read = match crl {
            true => crl_info(&der).map(|info| parsed.crls.push(info)),
            false => cert_info(&der, facts).map(|info| parsed.certs.push(info)),
        };
        if let Err(why) = read {
            parsed.errors.push(format!("PEM block {index}: {why}"));
        }
    }
    parsed
}

/// The certificates of a keystore; its entries that are not certificates every stack
/// accepts are errors naming the entry.
fn parse_keystore(
    format: keystore::Format,
    data: &[u8],
    passwords: &[String],
    facts: bool,
) -> Parsed {
    let mut parsed = Parsed {
        keystore: Some(format),
        ..Parsed::default()
    };
    match keystore::open(format, data, passwords) {
        Ok(opened) => {
            for (n, entry) in opened.entries.into_iter().enumerate() {
                match cert_info(&entry.der, facts) {
                    Ok(info) => parsed.certs.push(CertInfo {
                        alias: entry.alias.into(),
                        ..info
                    }),
                    Err(why) => parsed.errors.push(format!(
                        "{} certificate {} (alias {:?}): {why}",
                        format.name(),
                        n + 1,
                        entry.alias
                    )),
                }
            }
            parsed.errors.extend(opened.errors);
        }
        Err(why) => parsed.errors.push(why),
    }
    parsed
}

/// The whole buffer as one DER certificate, else one DER CRL. Only a buffer that starts
/// with a SEQUENCE tag is worth a parse error; when neither parses, the certificate's
/// error is given (a certificate is the likelier intent).
fn parse_der(data: &[u8], facts: bool) -> Parsed {
    let mut parsed = Parsed::default();
    if data.len() <= 2 || data[0] != 0x30 {
        return parsed;
    }
    match cert_info(data, facts) {
        Ok(info) => parsed.certs.push(info),
        Err(why) => match crl_info(data) {
            Ok(info) => parsed.crls.push(info),
            Err(_) => parsed.errors.push(format!("DER: {why}")),
        },
    }
    parsed
}

/// Decodes the base64 body of one certificate block through rustls-pki-types' PEM reader,
/// after re-framing it under the plain `CERTIFICATE` label it understands.
fn decode_body(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut framed = Vec::with_capacity(body.len() + 64);
    framed.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
    framed.extend_from_slice(body);
    framed.extend_from_slice(b"\n-----END CERTIFICATE-----\n");
    CertificateDer::from_pem_slice(&framed)
        .map(|der| der.to_vec())
        .map_err(|err| match err {
            rustls_pki_types::pem::Error::Base64Decode(_) => "invalid base64".to_string(),
            other => format!("invalid PEM: {other:?}"),
        })
}

/// Decodes standard base64 (kubeconfig `*-data` fields, Secret values); white space is ignored.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, String> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Ok(Vec::new());
    }
    decode_body(&compact)
}

/// Iterates over PEM blocks as (label, body lines). A block with no END line is an error
/// and ends the iteration; text outside blocks is ignored.
struct Blocks<'a> {
    rest: &'a [u8],
}

impl<'a> Blocks<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// Next line without its line ending (LF, CRLF or CR).
    fn next_line(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self
            .rest
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .unwrap_or(self.rest.len());
        let line = &self.rest[..end];
        let mut skip = end;
        if self.rest.get(skip) == Some(&b'\r') {
            skip += 1;
        }
        if self.rest.get(skip) == Some(&b'\n') {
            skip += 1;
        }
        self.rest = &self.rest[skip.max(end)..];
        Some(line)
    }
}

impl<'a> Iterator for Blocks<'a> {
    type Item = Result<(&'a str, &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        let label = loop {
            let line = self.next_line()?;
            if let Some(label) = begin_label(line) {
                break label;
            }
        };
        let body_start = self.rest;
        let mut body_len = 0;
        loop {
            let before = self.rest.len();
            let Some(line) = self.next_line() else {
                return Some(Err(format!("no END line for {label}")));
            };
            if line.starts_with(b"-----END ") {
                return Some(Ok((label, trim_end(&body_start[..body_len]))));
            }
            if begin_label(line).is_some() {
                // A new BEGIN inside a block: report this block, resume at the new one.
                self.rest = &body_start[body_len..];
                return Some(Err(format!("no END line for {label}")));
            }
            body_len += before - self.rest.len();
        }
    }
}

/// The label of a `-----BEGIN LABEL-----` line, trailing spaces allowed.
fn begin_label(line: &[u8]) -> Option<&str> {
    let line = trim_end(line);
    let inner = line.strip_prefix(b"-----BEGIN ")?.strip_suffix(b"-----")?;
    std::str::from_utf8(inner).ok()
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Parses one DER certificate into the fields we export, its [`Facts`] too with `facts`.
/// Trailing bytes (the trust information of a `TRUSTED CERTIFICATE`) are ignored.
pub fn cert_info(der: &[u8], facts: bool) -> Result<CertInfo, String> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|err| format!("invalid certificate: {err}"))?;
    strict::check(&cert)?;
    let digest = Sha256::digest(&der[..der.len() - rest.len()]);
    let validity = cert.validity();
    Ok(CertInfo {
        serial: serial_decimal(cert.raw_serial())?,
        subject: name(cert.subject()),
        issuer: name(cert.issuer()),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        fingerprint: fingerprint(&digest),
        alias: Box::default(),
        facts: match facts {
            true => facts::of(&cert),
            false => Facts::default(),
        },
    })
}

/// Parses one DER certificate revocation list into the fields we export.
pub fn crl_info(der: &[u8]) -> Result<CrlInfo, String> {
    let (rest, crl) =
        CertificateRevocationList::from_der(der).map_err(|err| format!("invalid CRL: {err}"))?;
    let digest = Sha256::digest(&der[..der.len() - rest.len()]);
    Ok(CrlInfo {
        issuer: name(crl.issuer()),
        number: crl
            .crl_number()
            .map(ToString::to_string)
            .unwrap_or_default(),
        this_update: crl.last_update().timestamp(),
        next_update: crl
            .next_update()
            .map_or(NO_NEXT_UPDATE, |time| time.timestamp()),
        fingerprint: fingerprint(&digest),
    })
}

/// The first four bytes of a SHA-256 digest, big-endian.
fn fingerprint(digest: &[u8]) -> u32 {
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The exported attributes of a distinguished name: first value of C, ST, L, O, OU and the
/// last value of CN, as Go's `pkix.Name` keeps them.
fn name(dn: &X509Name<'_>) -> Name {
    const OIDS: [&Oid<'static>; 6] = [
        &OID_X509_COUNTRY_NAME,
        &OID_X509_STATE_OR_PROVINCE_NAME,
        &OID_X509_LOCALITY_NAME,
        &OID_X509_ORGANIZATION_NAME,
        &OID_X509_ORGANIZATIONAL_UNIT,
        &OID_X509_COMMON_NAME,
    ];
    let mut picked: [Option<&Any<'_>>; 6] = [None; 6];
    for attr in dn.iter_rdn().flat_map(|rdn| rdn.iter()) {
        let oid = attr.attr_type();
        if let Some(i) = OIDS.iter().position(|want| oid == *want) {
            // An empty value counts as absent: a later one is taken.
            if i == 5 || picked[i].is_none_or(|v| v.data.is_empty()) {
                picked[i] = Some(attr.attr_value());
            }
        }
    }
    // Room for the values as they are encoded: enough but for the few Latin-1 or UCS-2
    // characters that take more bytes once decoded.
    let mut out = Name::with_capacity(picked.iter().flatten().map(|v| v.data.len()).sum());
    for (i, value) in picked.into_iter().enumerate() {
        if let Some(value) = value {
            out.push(i, |text| decode_into(text, value));
        }
    }
    out
}

/// Decodes an ASN.1 string of any of the types found in names onto `out`. Bytes that do
/// not decode in the types read byte by byte (PrintableString, IA5String…) become U+FFFD;
/// the Unicode types were checked by [`strict::check`] and decode whole.
fn decode_into(out: &mut String, value: &Any<'_>) {
    let data = value.data;
    match value.tag() {
        Tag::T61String => out.extend(data.iter().map(|&b| char::from(b))),
        Tag::BmpString => {
            let units = data.chunks(2).map(|c| match c {
                [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                _ => 0xFFFD,
            });
            out.extend(char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)))
        }
        Tag::UniversalString => out.extend(data.chunks(4).map(|c| {
            match c {
                [a, b, c, d] => char::from_u32(u32::from_be_bytes([*a, *b, *c, *d]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER),
                _ => char::REPLACEMENT_CHARACTER,
            }
        })),
        _ => out.push_str(&String::from_utf8_lossy(data)),
    }
}

/// Formats a DER INTEGER's two's-complement content octets in decimal.
fn serial_decimal(bytes: &[u8]) -> Result<String, String> {
    if bytes.len() > MAX_SERIAL_BYTES {
        return Err(format!(
            "serial number of {} bytes is too long",
            bytes.len()
        ));
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude = [0; MAX_SERIAL_BYTES];
    let digits = &mut magnitude[..bytes.len()];
    digits.copy_from_slice(bytes);
    if negative {
        // Two's complement: invert and add one.
        for b in digits.iter_mut() {
            *b = !*b;
        }
        for b in digits.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
    }
    // Repeated division by 10^9 over big-endian base-256 digits, least significant chunk
    // first: 256 bytes make at most 617 decimal digits, 69 chunks.
    let mut chunks = [0u32; 69];
    let mut count = 0;
    while digits.iter().any(|&b| b != 0) {
        let mut rem: u64 = 0;
        for b in digits.iter_mut() {
            let cur = (rem << 8) | u64::from(*b);
            *b = (cur / 1_000_000_000) as u8;
            rem = cur % 1_000_000_000;
        }
        chunks[count] = rem as u32;
        count += 1;
    }
    let mut out = String::with_capacity(1 + 9 * count.max(1));
    if negative {
        out.push('-');
    }
    match chunks[..count].split_last() {
        None => out.push('0'),
        Some((top, rest)) => {
            let _ = write!(out, "{top}");
            for &chunk in rest.iter().rev() {
                push_nine_digits(&mut out, chunk);
            }
        }
    }
    Ok(out)
}

/// Appends `n` (below 10^9) as nine decimal digits, zeros leading.
fn push_nine_digits(out: &mut String, n: u32) {
    let mut digits = [b'0'; 9];
    let mut n = n;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend(digits.iter().map(|&d| char::from(d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_decimal_and_keep_their_sign() {
        assert_eq!(serial_decimal(&[0x00]).unwrap(), "0");
        assert_eq!(serial_decimal(&[0x01, 0x00]).unwrap(), "256");
        assert_eq!(serial_decimal(&[0xff]).unwrap(), "-1");
        assert_eq!(serial_decimal(&[0x80]).unwrap(), "-128");
        assert_eq!(serial_decimal(&[0xff, 0x7f]).unwrap(), "-129");
        assert_eq!(
            serial_decimal(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap(),
            "18446744073709551615"
        );
        // 20 octets: 2^159 - 1
        let mut max = vec![0x7f];
        max.extend([0xff; 19]);
        assert_eq!(
            serial_decimal(&max).unwrap(),
            "730750818665451459101842416358141509827966271487"
        );
        assert!(serial_decimal(&[1; 300]).is_err());
        // The longest accepted, 2^2047 - 1 and its negation -2^2047, against decimal
        // doubling.
        let mut decimal = vec![1u8]; // least significant digit first
        for _ in 0..2047 {
            let mut carry = 0;
            for d in decimal.iter_mut() {
                let twice = *d * 2 + carry;
                (*d, carry) = (twice % 10, twice / 10);
            }
            if carry > 0 {
                decimal.push(carry);
            }
        }
        let text = |digits: &[u8]| -> String {
            digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
        };
        let power = text(&decimal);
        decimal[0] -= 1; // 2^2047 ends in 8: no borrow
        let mut longest = vec![0x7f];
        longest.extend([0xff; MAX_SERIAL_BYTES - 1]);
        assert_eq!(serial_decimal(&longest).unwrap(), text(&decimal));
        let mut lowest = vec![0x80];
        lowest.extend([0x00; MAX_SERIAL_BYTES - 1]);
        assert_eq!(serial_decimal(&lowest).unwrap(), format!("-{power}"));
        assert_eq!(power.len(), 617);
    }

    #[test]
    fn blocks_accept_crlf_trailing_spaces_and_leading_text() {
        let data = b"junk before\r\n-----BEGIN CERTIFICATE-----  \r\nQUJD\r\nREVG\r\n-----END CERTIFICATE-----\r\ntrailer";
        let blocks: Vec<_> = Blocks::new(data).collect();
        assert_eq!(blocks.len(), 1);
        let (label, body) = blocks[0].clone().unwrap();
        assert_eq!(label, "CERTIFICATE");
        assert_eq!(decode_body(body).unwrap(), b"ABCDEF");
    }

    #[test]
    fn an_unterminated_block_is_reported_and_the_next_one_still_read() {
        let data = b"-----BEGIN CERTIFICATE-----\nQUJD\n-----BEGIN CERTIFICATE-----\nREVG\n-----END CERTIFICATE-----\n";
        let blocks: Vec<_> = Blocks::new(data).collect();
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].is_err());
        assert_eq!(decode_body(blocks[1].clone().unwrap().1).unwrap(), b"DEF");
    }

    #[test]
    fn base64_values_decode_and_bad_ones_are_refused() {
        assert_eq!(decode_base64(b"QUJD\nREVG").unwrap(), b"ABCDEF");
        assert_eq!(decode_base64(b"QUI=").unwrap(), b"AB");
        assert_eq!(decode_base64(b"").unwrap(), b"");
        assert!(decode_base64(b"!!!").is_err());
    }

    #[test]
    fn marker_lines_decide_the_straight_path() {
        let cert = "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n";
        assert_eq!(well_formed(cert.as_bytes()), Some(true));
        assert_eq!(well_formed(b"no markers, just-text\n"), Some(false));
        assert_eq!(
            well_formed(format!("text - with dashes\n{cert}{cert}").as_bytes()),
            Some(true)
        );
        let unterminated = "-----BEGIN CERTIFICATE-----\nQUJD\n";
        assert_eq!(
            well_formed(format!("{unterminated}{cert}").as_bytes()),
            None
        );
        assert_eq!(
            well_formed(
                b"-----BEGIN TRUSTED CERTIFICATE-----\nQUJD\n-----END TRUSTED CERTIFICATE-----\n"
            ),
            None
        );
        assert_eq!(
            well_formed(b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END PRIVATE KEY-----\n"),
            None
        );
        assert_eq!(well_formed(b"-----END CERTIFICATE-----\n"), None);
        let key = "-----BEGIN PRIVATE KEY-----\r\nQUJD\r\n-----END PRIVATE KEY-----  \r\n";
        assert_eq!(well_formed(key.as_bytes()), Some(true));
        // A BEGIN line inside a block whose label is not UTF-8 (found by the pem fuzz
        // target: the one-pass reader skipped the block the slow one reported).
        let odd = b"-----BEGIN CERTIFICATE-----\nQUJD\r-----BEGIN CERT\xb3-----\n-----END CERTIFICATE-----\n";
        assert_eq!(well_formed(odd), None);
        assert_eq!(well_formed(b"-----BEGIN CERTIFICATE\n"), None);
    }

    #[test]
    fn garbage_is_neither_pem_nor_der() {
        let parsed = parse_certificates(b"hello world\n", &[], false);
        assert!(parsed.certs.is_empty() && parsed.errors.is_empty() && !parsed.had_pem);
        let parsed = parse_certificates(&[0x30, 0x82, 0x01], &[], false);
        assert!(parsed.certs.is_empty());
        assert_eq!(parsed.errors.len(), 1);
    }

    #[test]
    fn other_block_types_are_skipped() {
        let data = b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
        let parsed = parse_certificates(data, &[], false);
        assert!(parsed.certs.is_empty() && parsed.errors.is_empty() && parsed.had_pem);
    }

    #[test]
    fn a_dash_is_found_wherever_it_is() {
        for len in 0..40 {
            let mut data = vec![b'A'; len];
            assert_eq!(find_dash(&data), None);
            for at in 0..len {
                data[at] = b'-';
                assert_eq!(find_dash(&data), Some(at), "{len} {at}");
                data[at] = 0xad; // '-' with the high bit set
                assert_eq!(find_dash(&data), None, "{len} {at}");
                data[at] = b'A';
            }
        }
    }

    #[test]
    fn strings_of_every_type_decode() {
        let decode_string = |value: &Any<'_>| {
            let mut out = String::from("x");
            decode_into(&mut out, value);
            out.split_off(1)
        };
        let any = |tag: Tag, data: &'static [u8]| Any::from_tag_and_data(tag, data);
        assert_eq!(decode_string(&any(Tag::T61String, b"caf\xe9")), "café");
        assert_eq!(
            decode_string(&any(Tag::BmpString, b"\x00c\x00a\x00f\x00\xe9")),
            "café"
        );
        assert_eq!(
            decode_string(&any(Tag::UniversalString, b"\x00\x00\x00c\x00\x01\xf6\x00")),
            "c\u{1f600}"
        );
        assert_eq!(decode_string(&any(Tag::Ia5String, b"a\xffb")), "a\u{fffd}b");
    }

    /// A certificate made by rcgen whose subject CN is a UTF8String "xyz", with those three
    /// bytes replaced by `cn` (same length).
    fn with_cn(cn: &[u8; 3]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "xyz");
        let mut der = params.self_signed(&key).unwrap().der().to_vec();
        let at = der.windows(5).rposition(|w| w == b"\x0c\x03xyz").unwrap();
        der[at + 2..at + 5].copy_from_slice(cn);
        der
    }

    /// `der` as one PEM certificate block (base64 written here, not the decoder under test).
    fn pem(der: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut text = String::new();
        for chunk in der.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    text.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
                } else {
                    text.push('=');
                }
            }
        }
        format!("-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----\n")
    }

    #[test]
    fn a_block_every_stack_refuses_is_an_error_on_both_paths() {
        let good = with_cn(b"abc");
        let bad = with_cn(b"a\xffc");
        assert_eq!(cert_info(&good, false).unwrap().subject.cn(), "abc");
        assert_eq!(
            cert_info(&bad, false).unwrap_err(),
            "subject: UTF8String is not valid UTF-8 in CN"
        );
        // Well formed, so the one-pass reader is tried first; CRLF and a TRUSTED label go
        // block by block from the start.
        let straight = format!("{}{}{}", pem(&good), pem(&bad), pem(&good));
        assert_eq!(well_formed(straight.as_bytes()), Some(true));
        let framed = straight.replace('\n', "\r\n").replacen(
            "CERTIFICATE-----",
            "TRUSTED CERTIFICATE-----",
            2,
        );
        assert_eq!(well_formed(framed.as_bytes()), None);
        for data in [straight, framed] {
            let parsed = parse_certificates(data.as_bytes(), &[], false);
            assert_eq!(parsed.certs.len(), 2, "{data}");
            assert_eq!(
                parsed.errors,
                ["PEM block 2: subject: UTF8String is not valid UTF-8 in CN"]
            );
        }
    }

    /// A CA named `cn` and a CRL it signed: (CA PEM, CRL DER, CRL PEM).
    fn ca_and_crl(cn: &str, number: &[u8]) -> (String, Vec<u8>, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = params.self_signed(&key).unwrap();
        let crl = rcgen::CertificateRevocationListParams {
            this_update: time::OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap(),
            next_update: time::OffsetDateTime::from_unix_timestamp(4_000_000_000).unwrap(),
            crl_number: rcgen::SerialNumber::from_slice(number),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&ca, &key)
        .unwrap();
        (ca.pem(), crl.der().to_vec(), crl.pem().unwrap())
    }

    #[test]
    fn crls_are_read_from_pem_blocks_and_der() {
        // 2^72 + 1: more than a u64 holds.
        let (ca, der, crl) = ca_and_crl("Acme CA", &[1, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let info = crl_info(&der).unwrap();
        assert_eq!(info.issuer.values(), ["", "", "", "Acme", "", "Acme CA"]);
        assert_eq!(info.number, "4722366482869645213697");
        assert_eq!(
            (info.this_update, info.next_update),
            (1_000_000_000, 4_000_000_000)
        );
        let bundle = format!("{ca}{crl}{ca}");
        assert_eq!(well_formed(bundle.as_bytes()), Some(true));
        let crlf = bundle.replace('\n', "\r\n");
        for data in [bundle.as_bytes(), crlf.as_bytes()] {
            let parsed = parse_certificates(data, &[], false);
            assert_eq!(parsed.certs.len(), 2);
            assert_eq!(parsed.crls, std::slice::from_ref(&info));
            assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        }
        let parsed = parse_certificates(&der, &[], false);
        assert_eq!((parsed.certs.len(), &parsed.crls[..]), (0, &[info][..]));
        // A broken CRL block is an error naming it; its neighbours are read.
        let broken = format!("{ca}{}", crl.replace("\nM", "\n!"));
        let parsed = parse_certificates(broken.as_bytes(), &[], false);
        assert_eq!((parsed.certs.len(), parsed.crls.len()), (1, 0));
        assert_eq!(parsed.errors, ["PEM block 2: invalid base64"]);
        // DER that is neither: the certificate's error.
        let mut bad = der.clone();
        bad.truncate(der.len() / 2);
        let parsed = parse_certificates(&bad, &[], false);
        assert!(parsed.errors[0].starts_with("DER: invalid certificate"));
    }
}
