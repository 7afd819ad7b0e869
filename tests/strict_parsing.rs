//! Strict where every TLS stack is strict (SPEC §3): one good certificate, built here byte by
//! byte, and variants of it with one defect each. For every variant the test asks OpenSSL
//! (`openssl x509`) and Python's cryptography what they make of it, and checks that the
//! exporter refuses exactly what both refuse and Go's crypto/x509 refuses too (Go is not on
//! the machine: its verdict is written beside each variant, from its parser's rules), and
//! exports everything else. Run with `--nocapture` to see the table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::*;
use x509_certificate_exporter::pem::parse_certificates;

// ---------------------------------------------------------------------------------------
// DER by hand

/// One TLV with a definite, minimal length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_C: &[u8] = &[0x55, 0x04, 0x06];
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
const OID_UNIQUE_IDENTIFIER: &[u8] = &[0x55, 0x04, 0x2d];
const OID_SERIAL_NUMBER: &[u8] = &[0x55, 0x04, 0x05];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const OID_SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];

/// One attribute, alone in its RDN.
fn rdn(oid: &[u8], value: &[u8]) -> Vec<u8> {
    set(&[&seq(&[&tlv(0x06, oid), value])])
}

fn utf8(s: &str) -> Vec<u8> {
    tlv(0x0c, s.as_bytes())
}

fn printable(s: &str) -> Vec<u8> {
    tlv(0x13, s.as_bytes())
}

/// The parts of a certificate, each a whole DER element, so that a variant swaps one.
#[derive(Clone)]
struct Parts {
    version: Vec<u8>,
    serial: Vec<u8>,
    signature: Vec<u8>,
    issuer: Vec<Vec<u8>>,
    not_before: Vec<u8>,
    not_after: Vec<u8>,
    subject: Vec<Vec<u8>>,
    spki: Vec<u8>,
    /// Unique IDs and extensions, as they follow the key.
    tail: Vec<u8>,
    outer_signature_algorithm: Vec<u8>,
    signature_value: Vec<u8>,
    /// Bytes after the signature value, inside the outer SEQUENCE.
    outer_extra: Vec<u8>,
}

fn ext(oid: &[u8], critical: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
    seq(&[&tlv(0x06, oid), critical.unwrap_or(&[]), &tlv(0x04, value)])
}

/// A v3 certificate every stack accepts: ECDSA P-256 key (the curve's generator point, a
/// valid point), ecdsa-with-SHA256, valid 2020 to 2090, C/O/CN names, basicConstraints.
fn good() -> Parts {
    let gx = "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296";
    let gy = "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
    let mut point = vec![0x00, 0x04];
    point.extend(hex(gx));
    point.extend(hex(gy));
    let alg = seq(&[&tlv(0x06, OID_ECDSA_SHA256)]);
    Parts {
        version: tlv(0xa0, &tlv(0x02, &[2])),
        serial: tlv(0x02, &[0x10, 0x20, 0x30]),
        signature: alg.clone(),
        issuer: vec![
            rdn(OID_C, &printable("FR")),
            rdn(OID_O, &utf8("Strict Org")),
            rdn(OID_CN, &utf8("strict issuer")),
        ],
        not_before: tlv(0x17, b"200101000000Z"),
        not_after: tlv(0x18, b"20900101000000Z"),
        subject: vec![
            rdn(OID_O, &utf8("Strict Org")),
            rdn(OID_CN, &utf8("strict leaf")),
        ],
        spki: seq(&[
            &seq(&[&tlv(0x06, OID_EC_PUBLIC_KEY), &tlv(0x06, OID_P256)]),
            &tlv(0x03, &point),
        ]),
        tail: tlv(0xa3, &seq(&[&ext(OID_BASIC_CONSTRAINTS, None, &seq(&[]))])),
        outer_signature_algorithm: alg,
        signature_value: tlv(
            0x03,
            &[&[0u8][..], &seq(&[&tlv(0x02, &[1]), &tlv(0x02, &[1])])].concat(),
        ),
        outer_extra: Vec::new(),
    }
}

impl Parts {
    fn der(&self) -> Vec<u8> {
        let tbs = seq(&[
            &self.version,
            &self.serial,
            &self.signature,
            &seq(&self.issuer.iter().map(Vec::as_slice).collect::<Vec<_>>()),
            &seq(&[&self.not_before, &self.not_after]),
            &seq(&self.subject.iter().map(Vec::as_slice).collect::<Vec<_>>()),
            &self.spki,
            &self.tail,
        ]);
        seq(&[
            &tbs,
            &self.outer_signature_algorithm,
            &self.signature_value,
            &self.outer_extra,
        ])
    }

    /// The subject with its CN value replaced by `value` (a whole element).
    fn subject_cn(mut self, value: Vec<u8>) -> Self {
        self.subject[1] = rdn(OID_CN, &value);
        self
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The variants

/// What Go's crypto/x509 `ParseCertificate` does with a variant, as of Go 1.26 (parser.go:
/// parseCertificate, parseName and parseASN1String, cryptobyte's strict DER readers).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Go {
    Accepts,
    Refuses,
}

struct Variant {
    name: String,
    der: Vec<u8>,
    go: Go,
}

fn variant(name: impl Into<String>, go: Go, der: Vec<u8>) -> Variant {
    Variant {
        name: name.into(),
        der,
        go,
    }
}

/// A name value with tag `tag` and content "abc" in the subject CN.
fn cn_tagged(tag: u8) -> Vec<u8> {
    good().subject_cn(tlv(tag, b"abc")).der()
}

fn variants() -> Vec<Variant> {
    use Go::*;
    let g = good;
    let mut v = vec![variant("good", Accepts, g().der())];

    // Name strings: content that does not decode.
    let cn = |value: Vec<u8>| g().subject_cn(value).der();
    v.push(variant(
        "UTF8String: invalid UTF-8",
        Refuses,
        cn(tlv(0x0c, b"a\xffb")),
    ));
    v.push(variant(
        "UTF8String: overlong",
        Refuses,
        cn(tlv(0x0c, b"\xc0\xaf")),
    ));
    v.push(variant(
        "UTF8String: encoded surrogate",
        Refuses,
        cn(tlv(0x0c, b"\xed\xa0\x80")),
    ));
    v.push(variant(
        "UTF8String: truncated",
        Refuses,
        cn(tlv(0x0c, b"caf\xc3")),
    ));
    v.push(variant(
        "UTF8String: above U+10FFFF",
        Refuses,
        cn(tlv(0x0c, b"\xf4\x90\x80\x80")),
    ));
    v.push(variant(
        "UTF8String: U+FFFE",
        Accepts,
        cn(tlv(0x0c, b"a\xef\xbf\xbe")),
    ));
    v.push(variant(
        "UTF8String: valid non-ASCII",
        Accepts,
        cn(tlv(0x0c, "café €".as_bytes())),
    ));
    v.push(variant("UTF8String: empty", Accepts, cn(tlv(0x0c, b""))));
    v.push(variant(
        "UTF8String: NUL inside",
        Accepts,
        cn(tlv(0x0c, b"a\0b")),
    ));
    v.push(variant(
        "PrintableString: '@'",
        Refuses,
        cn(tlv(0x13, b"a@b")),
    ));
    v.push(variant(
        "PrintableString: '_'",
        Refuses,
        cn(tlv(0x13, b"a_b")),
    ));
    v.push(variant(
        "PrintableString: byte 0xff",
        Refuses,
        cn(tlv(0x13, b"a\xffb")),
    ));
    v.push(variant(
        "PrintableString: '*' and '&'",
        Accepts,
        cn(tlv(0x13, b"*.a&b")),
    ));
    v.push(variant(
        "IA5String: byte 0xff",
        Refuses,
        cn(tlv(0x16, b"a\xffb")),
    ));
    v.push(variant("IA5String: ASCII", Accepts, cn(tlv(0x16, b"a@b"))));
    v.push(variant(
        "NumericString: letters",
        Refuses,
        cn(tlv(0x12, b"12a")),
    ));
    v.push(variant(
        "NumericString: digits",
        Accepts,
        cn(tlv(0x12, b"12 3")),
    ));
    v.push(variant(
        "T61String: Latin-1 byte",
        Accepts,
        cn(tlv(0x14, b"caf\xe9")),
    ));
    v.push(variant(
        "BMPString: odd length",
        Refuses,
        cn(tlv(0x1e, b"\x00a\x00")),
    ));
    v.push(variant(
        "BMPString: lone high surrogate",
        Refuses,
        cn(tlv(0x1e, b"\x00a\xd8\x00")),
    ));
    v.push(variant(
        "BMPString: lone low surrogate",
        Refuses,
        cn(tlv(0x1e, b"\xdc\x00\x00a")),
    ));
    v.push(variant(
        "BMPString: surrogate pair",
        Refuses,
        cn(tlv(0x1e, b"\xd8\x3d\xde\x00")),
    ));
    v.push(variant(
        "BMPString: U+FFFE",
        Refuses,
        cn(tlv(0x1e, b"\x00a\xff\xfe")),
    ));
    v.push(variant(
        "BMPString: valid",
        Accepts,
        cn(tlv(0x1e, b"\x00c\x00a\x00f\x00\xe9")),
    ));
    v.push(variant(
        "UniversalString: length not 4n",
        Refuses,
        cn(tlv(0x1c, b"\x00\x00\x00a\x00")),
    ));
    v.push(variant(
        "UniversalString: above U+10FFFF",
        Refuses,
        cn(tlv(0x1c, b"\x00\x11\x00\x00")),
    ));
    v.push(variant(
        "UniversalString: surrogate",
        Refuses,
        cn(tlv(0x1c, b"\x00\x00\xd8\x00")),
    ));
    v.push(variant(
        "UniversalString: valid",
        Refuses,
        cn(tlv(0x1c, b"\x00\x00\x00a\x00\x01\xf6\x00")),
    ));
    v.push(variant(
        "VisibleString: ASCII",
        Refuses,
        cn(tlv(0x1a, b"abc")),
    ));
    v.push(variant(
        "VisibleString: byte 0xff",
        Refuses,
        cn(tlv(0x1a, b"a\xffb")),
    ));
    v.push(variant(
        "OCTET STRING: byte 0xff",
        Refuses,
        cn(tlv(0x04, b"a\xffb")),
    ));
    v.push(variant(
        "UTCTime: byte 0xff",
        Refuses,
        cn(tlv(0x17, b"a\xffb")),
    ));
    // Name strings: the same defect in other places.
    let mut p = g();
    p.issuer[2] = rdn(OID_CN, &tlv(0x0c, b"a\xffb"));
    v.push(variant(
        "issuer UTF8String: invalid UTF-8",
        Refuses,
        p.der(),
    ));
    let mut p = g();
    p.subject
        .push(rdn(OID_SERIAL_NUMBER, &tlv(0x0c, b"a\xffb")));
    v.push(variant(
        "serialNumber attribute: invalid UTF-8",
        Refuses,
        p.der(),
    ));
    let mut p = g();
    p.subject
        .push(rdn(&[0x2a, 0x03, 0x04], &tlv(0x0c, b"a\xffb")));
    v.push(variant(
        "unknown attribute: invalid UTF-8",
        Refuses,
        p.der(),
    ));
    let mut p = g();
    p.subject[1] = set(&[
        &seq(&[&tlv(0x06, OID_CN), &utf8("a")]),
        &seq(&[&tlv(0x06, OID_O), &tlv(0x0c, b"a\xffb")]),
    ]);
    v.push(variant("multi-valued RDN: invalid UTF-8", Refuses, p.der()));

    v.push(variant(
        "BIT STRING in CN: valid",
        Refuses,
        cn(tlv(0x03, b"\x00ab")),
    ));
    let mut p = g();
    p.subject
        .push(rdn(OID_UNIQUE_IDENTIFIER, &tlv(0x03, b"\x09ab")));
    v.push(variant(
        "x500UniqueIdentifier: bad BIT STRING",
        Refuses,
        p.der(),
    ));
    let mut p = g();
    p.subject
        .push(rdn(OID_UNIQUE_IDENTIFIER, &tlv(0x03, b"\x00ab")));
    v.push(variant(
        "x500UniqueIdentifier: BIT STRING",
        Refuses,
        p.der(),
    ));
    v.push(variant(
        "name value tag 16 primitive",
        Refuses,
        cn_tagged(0x10),
    ));
    v.push(variant(
        "name value tag 17 primitive",
        Refuses,
        cn_tagged(0x11),
    ));
    v.push(variant(
        "name value constructed OCTET STRING",
        Refuses,
        g().subject_cn(tlv(0x24, &tlv(0x04, b"abc"))).der(),
    ));
    v.push(variant(
        "name value constructed BMPString",
        Refuses,
        g().subject_cn(tlv(0x3e, &tlv(0x1e, b"\x00a"))).der(),
    ));
    v.push(variant(
        "name value constructed UTF8String, bad UTF-8",
        Refuses,
        g().subject_cn(tlv(0x2c, &tlv(0x0c, b"a\xff"))).der(),
    ));
    v.push(variant(
        "CN value: non-minimal length",
        Refuses,
        cn(vec![0x0c, 0x81, 0x03, b'a', b'b', b'c']),
    ));
    let mut p = g();
    p.subject[1] = set(&[&[&[0x30u8, 0x81, 0x0a][..], &tlv(0x06, OID_CN), &utf8("abc")].concat()]);
    v.push(variant("attribute: non-minimal length", Refuses, p.der()));
    let mut p = g();
    p.subject[1] = set(&[&seq(&[&tlv(0x06, &[0x55, 0x80, 0x04, 0x03]), &utf8("abc")])]);
    v.push(variant("attribute OID: non-minimal arc", Refuses, p.der()));
    let mut p = g();
    p.subject[1] = set(&[&seq(&[&tlv(0x06, &[]), &utf8("abc")])]);
    v.push(variant("attribute OID: empty", Refuses, p.der()));
    let mut p = g();
    p.subject[1] = set(&[&seq(&[&tlv(0x04, OID_CN), &utf8("abc")])]);
    v.push(variant("attribute type: not an OID", Refuses, p.der()));
    // Name value tags: every universal tag number with "abc" (the string types above).
    for tag in 0u8..=30 {
        if matches!(tag, 12 | 16 | 17 | 18 | 19 | 20 | 22 | 30) {
            continue;
        }
        v.push(variant(
            format!("name value tag {tag}"),
            Refuses,
            cn_tagged(tag),
        ));
    }
    for (name, tag) in [("SEQUENCE", 0x30u8), ("SET", 0x31)] {
        v.push(variant(
            format!("name value {name}"),
            Refuses,
            g().subject_cn(tlv(tag, &utf8("abc"))).der(),
        ));
    }
    v.push(variant(
        "name value constructed UTF8String",
        Refuses,
        g().subject_cn(tlv(0x2c, &utf8("abc"))).der(),
    ));
    v.push(variant("name value context [0]", Refuses, cn_tagged(0x80)));
    v.push(variant(
        "name value application [1]",
        Refuses,
        cn_tagged(0x41),
    ));
    v.push(variant("name value private [2]", Refuses, cn_tagged(0xc2)));
    v.push(variant(
        "name value tag 31 (long form)",
        Refuses,
        g().subject_cn([&[0x1f, 0x1f, 0x03][..], b"abc"].concat())
            .der(),
    ));

    // Name structure.
    let mut p = g();
    p.subject.push(set(&[]));
    v.push(variant("empty RDN", Accepts, p.der()));
    let mut p = g();
    p.subject[1] = set(&[&seq(&[&tlv(0x06, OID_CN)])]);
    v.push(variant("attribute without value", Refuses, p.der()));
    let mut p = g();
    p.subject[1] = set(&[&seq(&[&tlv(0x06, OID_CN), &utf8("a"), &utf8("b")])]);
    v.push(variant("attribute with two values", Accepts, p.der()));
    let mut p = g();
    p.subject = Vec::new();
    v.push(variant("empty subject", Accepts, p.der()));

    // Version.
    let mut p = g();
    p.version = tlv(0xa0, &tlv(0x02, &[0]));
    p.tail = Vec::new();
    v.push(variant("version v1 written out", Accepts, p.der()));
    let mut p = g();
    p.version = Vec::new();
    p.tail = Vec::new();
    v.push(variant("version v1 omitted", Accepts, p.der()));
    let mut p = g();
    p.version = tlv(0xa0, &tlv(0x02, &[1]));
    p.tail = Vec::new();
    v.push(variant("version v2", Accepts, p.der()));
    for n in [3u8, 4, 0x7f] {
        let mut p = g();
        p.version = tlv(0xa0, &tlv(0x02, &[n]));
        v.push(variant(format!("version value {n}"), Refuses, p.der()));
    }
    let mut p = g();
    p.version = tlv(0xa0, &tlv(0x02, &[0xff]));
    v.push(variant("version value -1", Refuses, p.der()));
    let mut p = g();
    p.version = tlv(0xa0, &tlv(0x02, &[0x00, 0x02]));
    v.push(variant("version: non-minimal INTEGER", Refuses, p.der()));
    let mut p = g();
    p.version = tlv(0xa0, &tlv(0x02, &[1, 0, 0, 0, 2]));
    v.push(variant("version value 2^32+2", Refuses, p.der()));
    let mut p = g();
    p.version = Vec::new();
    v.push(variant("v1 with extensions", Accepts, p.der()));

    // Serial.
    let serial = |bytes: &[u8]| {
        let mut p = g();
        p.serial = tlv(0x02, bytes);
        p.der()
    };
    v.push(variant("serial: empty INTEGER", Refuses, serial(&[])));
    v.push(variant(
        "serial: non-minimal 00 01",
        Refuses,
        serial(&[0x00, 0x01]),
    ));
    v.push(variant(
        "serial: non-minimal ff 80",
        Refuses,
        serial(&[0xff, 0x80]),
    ));
    v.push(variant("serial: zero", Accepts, serial(&[0x00])));
    v.push(variant("serial: negative", Refuses, serial(&[0xfb])));
    v.push(variant("serial: 21 octets", Accepts, serial(&[0x11; 21])));
    let mut p = g();
    p.serial = tlv(0x04, &[1]);
    v.push(variant("serial: OCTET STRING", Refuses, p.der()));

    // Validity.
    let after = |tag: u8, text: &[u8]| {
        let mut p = g();
        p.not_after = tlv(tag, text);
        p.der()
    };
    v.push(variant(
        "UTCTime: no seconds",
        Accepts,
        after(0x17, b"4901010000Z"),
    ));
    v.push(variant(
        "UTCTime: offset +0100",
        Accepts,
        after(0x17, b"490101000000+0100"),
    ));
    v.push(variant(
        "UTCTime: no zone",
        Refuses,
        after(0x17, b"490101000000"),
    ));
    v.push(variant(
        "UTCTime: month 13",
        Refuses,
        after(0x17, b"491301000000Z"),
    ));
    v.push(variant(
        "UTCTime: February 30",
        Refuses,
        after(0x17, b"490230000000Z"),
    ));
    v.push(variant(
        "UTCTime: hour 24",
        Refuses,
        after(0x17, b"490101240000Z"),
    ));
    v.push(variant(
        "UTCTime: second 60",
        Refuses,
        after(0x17, b"490101235960Z"),
    ));
    v.push(variant(
        "UTCTime: letters",
        Refuses,
        after(0x17, b"49o101000000Z"),
    ));
    v.push(variant(
        "UTCTime: fraction",
        Refuses,
        after(0x17, b"490101000000.5Z"),
    ));
    v.push(variant(
        "GeneralizedTime: no seconds",
        Refuses,
        after(0x18, b"209001010000Z"),
    ));
    v.push(variant(
        "GeneralizedTime: fraction",
        Accepts,
        after(0x18, b"20900101000000.5Z"),
    ));
    v.push(variant(
        "GeneralizedTime: trailing zero fraction",
        Refuses,
        after(0x18, b"20900101000000.50Z"),
    ));
    v.push(variant(
        "GeneralizedTime: offset",
        Accepts,
        after(0x18, b"20900101000000+0100"),
    ));
    v.push(variant(
        "GeneralizedTime: no zone",
        Refuses,
        after(0x18, b"20900101000000"),
    ));
    v.push(variant(
        "GeneralizedTime: month 00",
        Refuses,
        after(0x18, b"20900001000000Z"),
    ));
    v.push(variant(
        "GeneralizedTime: year 9999",
        Accepts,
        after(0x18, b"99991231235959Z"),
    ));
    v.push(variant(
        "GeneralizedTime: year 2020",
        Accepts,
        after(0x18, b"20200101000000Z"),
    ));
    v.push(variant(
        "GeneralizedTime: hours only",
        Refuses,
        after(0x18, b"2090010100Z"),
    ));
    v.push(variant(
        "GeneralizedTime: no seconds, fraction",
        Refuses,
        after(0x18, b"209001010000.5Z"),
    ));
    v.push(variant(
        "UTCTime: hours only",
        Refuses,
        after(0x17, b"49010100Z"),
    ));
    v.push(variant(
        "UTCTime: no seconds, offset",
        Accepts,
        after(0x17, b"4901010000+0100"),
    ));
    let mut p = g();
    p.not_before = tlv(0x18, b"202001010000Z");
    v.push(variant(
        "notBefore GeneralizedTime: no seconds",
        Refuses,
        p.der(),
    ));
    v.push(variant(
        "time as PrintableString",
        Refuses,
        after(0x13, b"20900101000000Z"),
    ));
    let mut p = g();
    p.not_before = tlv(0x18, b"00000101000000Z");
    v.push(variant("GeneralizedTime: year 0000", Accepts, p.der()));

    // Extensions.
    let tail = |exts: &[&[u8]]| {
        let mut p = g();
        p.tail = tlv(0xa3, &seq(exts));
        p.der()
    };
    let bc = ext(OID_BASIC_CONSTRAINTS, None, &seq(&[]));
    let skid = ext(OID_SUBJECT_KEY_ID, None, &tlv(0x04, &[1, 2, 3]));
    v.push(variant("extensions: duplicate", Refuses, tail(&[&bc, &bc])));
    v.push(variant("extensions: empty list", Accepts, tail(&[])));
    v.push(variant(
        "extensions: two kinds",
        Accepts,
        tail(&[&bc, &skid]),
    ));
    v.push(variant(
        "extension: critical FALSE written out",
        Accepts,
        tail(&[&ext(
            OID_BASIC_CONSTRAINTS,
            Some(&tlv(0x01, &[0])),
            &seq(&[]),
        )]),
    ));
    v.push(variant(
        "extension: BOOLEAN 01",
        Refuses,
        tail(&[&ext(
            OID_BASIC_CONSTRAINTS,
            Some(&tlv(0x01, &[1])),
            &seq(&[]),
        )]),
    ));
    v.push(variant(
        "extension: value not an OCTET STRING",
        Refuses,
        tail(&[&seq(&[&tlv(0x06, OID_BASIC_CONSTRAINTS), &seq(&[])])]),
    ));
    v.push(variant(
        "extension: malformed basicConstraints",
        Refuses,
        tail(&[&ext(OID_BASIC_CONSTRAINTS, None, &[0x05, 0x00])]),
    ));

    // Structure.
    let mut p = g();
    p.outer_signature_algorithm = seq(&[&tlv(0x06, OID_ECDSA_SHA256), &[0x05, 0x00]]);
    v.push(variant("signature algorithms differ", Refuses, p.der()));
    let mut p = g();
    p.signature_value = tlv(0x03, &[8, 0]);
    v.push(variant("signature: 8 unused bits", Refuses, p.der()));
    let mut p = g();
    p.signature_value = tlv(0x03, &[]);
    v.push(variant("signature: empty BIT STRING", Refuses, p.der()));
    let mut p = g();
    p.signature_value = tlv(0x03, &[1, 0xff]);
    v.push(variant("signature: padding bit set", Refuses, p.der()));
    let mut p = g();
    p.spki = seq(&[
        &seq(&[&tlv(0x06, OID_EC_PUBLIC_KEY), &tlv(0x06, OID_P256)]),
        &tlv(0x03, &[8, 4]),
    ]);
    v.push(variant("public key: 8 unused bits", Refuses, p.der()));
    let mut der = g().der();
    let body = der.split_off(4);
    let der = [&[0x30u8, 0x83, 0x00][..], &der[2..4], &body].concat();
    v.push(variant("certificate: non-minimal length", Refuses, der));
    v.push(variant("serial: 00 80", Accepts, serial(&[0x00, 0x80])));
    let mut p = g();
    p.outer_extra = tlv(0x05, &[]);
    v.push(variant("element after the signature", Accepts, p.der()));
    let mut p = g();
    p.tail.extend(tlv(0x05, &[]));
    v.push(variant("element after the extensions", Accepts, p.der()));
    let mut der = g().der();
    der.extend([0x00, 0x00]);
    v.push(variant("bytes after the certificate", Refuses, der));
    let mut p = g();
    p.spki = seq(&[
        &seq(&[&tlv(0x06, OID_EC_PUBLIC_KEY), &tlv(0x06, OID_P256)]),
        &tlv(0x03, &[0, 4, 1, 2, 3]),
    ]);
    v.push(variant("public key: not a point", Refuses, p.der()));
    let mut p = g();
    p.spki = seq(&[
        &seq(&[&tlv(0x06, &[0x2a, 0x03])]),
        &tlv(0x03, &[0, 1, 2, 3]),
    ]);
    v.push(variant("public key: unknown algorithm", Accepts, p.der()));
    v
}

// ---------------------------------------------------------------------------------------
// The oracles

/// Loads each DER file and touches what the exporter reads (cryptography parses names and
/// dates lazily); prints one line per file: "ok" or "refused: why".
const PYTHON_ORACLE: &str = r#"
import sys, warnings
warnings.simplefilter("ignore")
from cryptography import x509
for path in sys.argv[1:]:
    try:
        cert = x509.load_der_x509_certificate(open(path, "rb").read())
        for name in (cert.subject, cert.issuer):
            for attribute in name:
                attribute.value
        cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc
        print("ok")
    except Exception as error:
        print("refused:", type(error).__name__, str(error).replace("\n", " "))
"#;

struct Verdicts {
    openssl: bool,
    python: bool,
    python_why: String,
}

fn oracles(dir: &TempDir, variants: &[Variant]) -> Vec<Verdicts> {
    let paths: Vec<String> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| dir.write(&format!("{i}.der"), &v.der).display().to_string())
        .collect();
    let out = Command::new("python3")
        .args(["-c", PYTHON_ORACLE])
        .args(&paths)
        .output()
        .expect("python3 is needed by the tests");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap();
    assert!(
        !python.contains("ModuleNotFoundError"),
        "python3-cryptography is needed by the tests (scripts/test-deps.sh)"
    );
    let lines: Vec<&str> = python.lines().collect();
    assert_eq!(lines.len(), paths.len(), "{python}");
    paths
        .iter()
        .zip(lines)
        .map(|(path, line)| {
            let openssl = Command::new("openssl")
                .args(["x509", "-inform", "DER", "-noout", "-in", path])
                .output()
                .expect("openssl is needed by the tests")
                .status
                .success();
            Verdicts {
                openssl,
                python: line == "ok",
                python_why: line.to_string(),
            }
        })
        .collect()
}

/// The exporter's parser on the DER alone and as a PEM block between two good ones; both
/// must agree. `Ok` is the exported CN, `Err` the error.
fn ours(der: &[u8]) -> Result<String, String> {
    let parsed = parse_certificates(der, &[], true);
    let alone = match (parsed.certs.as_slice(), parsed.errors.as_slice()) {
        ([cert], []) => Ok(cert.subject.cn().to_string()),
        ([], [error]) => Err(error.clone()),
        other => panic!("neither one certificate nor one error: {other:?}"),
    };
    let good = good().der();
    let bundle = [pem_block(&good), pem_block(der), pem_block(&good)].concat();
    let parsed = parse_certificates(bundle.as_bytes(), &[], true);
    match &alone {
        Ok(_) => {
            assert_eq!(parsed.certs.len(), 3, "{:?}", parsed.errors);
            assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        }
        Err(_) => {
            assert_eq!(parsed.certs.len(), 2, "the neighbours are still read");
            assert_eq!(parsed.errors.len(), 1);
            assert!(
                parsed.errors[0].starts_with("PEM block 2: "),
                "{:?}",
                parsed.errors
            );
        }
    }
    alone
}

fn pem_block(der: &[u8]) -> String {
    let text = b64(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

// ---------------------------------------------------------------------------------------
// The tests

#[test]
fn refused_exactly_when_openssl_go_and_cryptography_all_refuse() {
    let variants = variants();
    let dir = TempDir::new("strict");
    let verdicts = oracles(&dir, &variants);
    let word = |accepts: bool| if accepts { "accepts" } else { "REFUSES" };
    let mut wrong = Vec::new();
    println!(
        "{:<44} {:<8} {:<8} {:<8} {:<8} cryptography's reason / ours",
        "variant", "openssl", "crypto", "go", "ours"
    );
    for (v, o) in variants.iter().zip(&verdicts) {
        let go = v.go == Go::Accepts;
        let ours = ours(&v.der);
        let all_refuse = !o.openssl && !o.python && !go;
        println!(
            "{:<44} {:<8} {:<8} {:<8} {:<8} {} / {}",
            v.name,
            word(o.openssl),
            word(o.python),
            word(go),
            word(ours.is_ok()),
            o.python_why,
            match &ours {
                Ok(cn) => format!("CN {cn:?}"),
                Err(e) => e.clone(),
            }
        );
        // x509-parser's own refusals ("invalid certificate: ...") of things OpenSSL or Go
        // accept are left alone; the rules added on top must refuse nothing one stack takes.
        let refused_by_rule = matches!(&ours, Err(e) if !e.contains("invalid certificate: "));
        let both_accept = o.openssl && o.python;
        if (all_refuse && ours.is_ok()) || (both_accept && ours.is_err()) {
            wrong.push(v.name.clone());
        }
        if refused_by_rule && !all_refuse {
            wrong.push(format!("{} (refused by a rule)", v.name));
        }
    }
    assert!(
        wrong.is_empty(),
        "the exporter disagrees with the rule on: {wrong:?}"
    );
}

#[test]
fn every_debian_ca_certificate_passes_the_rules() {
    let bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt")
        .expect("ca-certificates is needed by the tests");
    let blocks = String::from_utf8_lossy(&bundle)
        .matches("-----BEGIN CERTIFICATE-----")
        .count();
    assert!(blocks > 100, "only {blocks} certificates in the bundle");
    let parsed = parse_certificates(&bundle, &[], true);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.certs.len(), blocks);
}

/// The good certificate with another serial, so that two of them are two series.
fn good_serial(serial: u8) -> Vec<u8> {
    let mut p = good();
    p.serial = tlv(0x02, &[serial]);
    p.subject = vec![rdn(OID_CN, &utf8(&format!("good {serial}")))];
    p.der()
}

#[test]
fn a_refused_block_is_one_read_error_naming_it_and_its_neighbours_are_exported() {
    let dir = TempDir::new("strict-binary");
    let bad_name = good().subject_cn(tlv(0x0c, b"a\xffb")).der();
    let mut bad_serial = good();
    bad_serial.serial = tlv(0x02, &[0x00, 0x01]);
    let bundle = dir.write(
        "bundle.pem",
        [
            pem_block(&good_serial(1)),
            pem_block(&bad_name),
            pem_block(&good_serial(2)),
        ]
        .concat(),
    );
    let der = dir.write("serial.der", bad_serial.der());
    dir.write("fine.der", good_serial(3));
    let exporter = Exporter::start(&["-d", &dir.str(""), "--expose-per-cert-error-metrics"]);
    let m = exporter.metrics();

    let mut cns = m.label_values("subject_CN");
    cns.sort();
    assert_eq!(cns, ["good 1", "good 2", "good 3"], "{}", m.body);
    assert_eq!(
        m.find("x509_cert_not_after", &[("filename", "bundle.pem")])
            .len(),
        2
    );
    assert_eq!(m.value("x509_read_errors"), 2.0, "{}", m.body);
    for (file, error) in [("bundle.pem", 1.0), ("serial.der", 1.0), ("fine.der", 0.0)] {
        assert_eq!(
            m.one("x509_cert_error", &[("filename", file)]).value,
            error,
            "{file}"
        );
    }
    let log = exporter.log_lines().join("\n");
    assert!(
        log.contains(&format!(
            "read {}: PEM block 2: subject: UTF8String is not valid UTF-8 in CN",
            bundle.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "read {}: DER: serial number: INTEGER not minimally encoded",
            der.display()
        )),
        "{log}"
    );
}

#[test]
fn every_one_byte_change_gives_the_same_verdict_alone_and_between_two_good_blocks() {
    let good = good().der();
    let mut refused = 0;
    for at in 1..good.len() {
        for flip in [0x01, 0x20, 0x80, 0xff] {
            let mut der = good.clone();
            der[at] ^= flip;
            // `ours` checks both readings of the bundle and that they agree with the DER.
            if ours(&der).is_err() {
                refused += 1;
            }
        }
    }
    assert!(refused > 0);
}
