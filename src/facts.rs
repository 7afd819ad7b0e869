//! What a certificate is beyond its names and dates (`--expose-cert-info`): its key, its
//! signature algorithm, whether it is a CA, its subject alternative names, and its place in
//! the chain of the file or Secret key it came from.
//!
//! Names follow one scheme: lower case, the key or hash first as Go's crypto/x509 names
//! them (`sha256-rsa`, `ecdsa-sha256`); anything without a name here is its dotted OID, so
//! that an odd certificate is still told apart rather than lumped under "unknown".

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::OnceLock;

use x509_parser::der_parser::der::{parse_der_integer, parse_der_sequence_defined_g};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::X509Certificate;
use x509_parser::public_key::PublicKey;
use x509_parser::signature_algorithm::SignatureAlgorithm;

use crate::model::{CertInfo, Facts, Position};

/// The longest `subject_alt_names` value, in bytes: one certificate with a thousand names
/// must not make a label of tens of kilobytes. Cut at a name's end, with `,+N more` after.
pub const MAX_SANS_BYTES: usize = 1024;

/// Public key algorithms by OID.
static KEY_ALGORITHMS: Table = Table::new(&[
    ("1.2.840.113549.1.1.1", "rsa"),
    // RSASSA-PSS keys are RSA keys restricted to PSS: the same weakness rules apply.
    ("1.2.840.113549.1.1.10", "rsa"),
    ("1.2.840.10045.2.1", "ecdsa"),
    ("1.2.840.10040.4.1", "dsa"),
    ("1.3.101.112", "ed25519"),
    ("1.3.101.113", "ed448"),
    ("1.3.101.110", "x25519"),
]);

/// Named elliptic curves by OID (their sizes: [`curve_bits`]).
static CURVES: Table = Table::new(&[
    ("1.2.840.10045.3.1.7", "P-256"),
    ("1.3.132.0.34", "P-384"),
    ("1.3.132.0.35", "P-521"),
    ("1.3.132.0.10", "secp256k1"),
    ("1.2.840.10045.3.1.1", "P-192"),
    ("1.3.36.3.3.2.8.1.1.7", "brainpoolP256r1"),
    ("1.3.36.3.3.2.8.1.1.11", "brainpoolP384r1"),
    ("1.3.36.3.3.2.8.1.1.13", "brainpoolP512r1"),
]);

/// Signature algorithms by OID; RSASSA-PSS (`rsapss`) is named after the hash in its
/// parameters.
static SIGNATURES: Table = Table::new(&[
    ("1.2.840.113549.1.1.10", "rsapss"),
    ("1.2.840.113549.1.1.2", "md2-rsa"),
    ("1.2.840.113549.1.1.4", "md5-rsa"),
    ("1.2.840.113549.1.1.5", "sha1-rsa"),
    ("1.2.840.113549.1.1.14", "sha224-rsa"),
    ("1.2.840.113549.1.1.11", "sha256-rsa"),
    ("1.2.840.113549.1.1.12", "sha384-rsa"),
    ("1.2.840.113549.1.1.13", "sha512-rsa"),
    ("1.2.840.10040.4.3", "dsa-sha1"),
    ("2.16.840.1.101.3.4.3.1", "dsa-sha224"),
    ("2.16.840.1.101.3.4.3.2", "dsa-sha256"),
    ("1.2.840.10045.4.1", "ecdsa-sha1"),
    ("1.2.840.10045.4.3.1", "ecdsa-sha224"),
    ("1.2.840.10045.4.3.2", "ecdsa-sha256"),
    ("1.2.840.10045.4.3.3", "ecdsa-sha384"),
    ("1.2.840.10045.4.3.4", "ecdsa-sha512"),
    ("1.3.101.112", "ed25519"),
    ("1.3.101.113", "ed448"),
]);

/// Hash algorithms by OID, for RSASSA-PSS.
static HASHES: Table = Table::new(&[
    ("1.3.14.3.2.26", "sha1"),
    ("2.16.840.1.101.3.4.2.4", "sha224"),
    ("2.16.840.1.101.3.4.2.1", "sha256"),
    ("2.16.840.1.101.3.4.2.2", "sha384"),
    ("2.16.840.1.101.3.4.2.3", "sha512"),
]);

/// The DER content octets of a dotted OID of the tables here (all valid).
fn encoded(dotted: &str) -> Vec<u8> {
    Oid::from_str(dotted).map_or_else(|_| Vec::new(), |oid| oid.as_bytes().to_vec())
}

/// OIDs and their names, written dotted and compared encoded (no string is made per
/// certificate for a known OID).
struct Table {
    entries: &'static [(&'static str, &'static str)],
    encoded: OnceLock<Vec<Vec<u8>>>,
}

impl Table {
    const fn new(entries: &'static [(&'static str, &'static str)]) -> Self {
        Table {
            entries,
            encoded: OnceLock::new(),
        }
    }

    /// The name of `oid`, if the table has it.
    fn get(&self, oid: &Oid<'_>) -> Option<&'static str> {
        let encoded = self.encoded.get_or_init(|| {
            self.entries
                .iter()
                .map(|(dotted, _)| encoded(dotted))
                .collect()
        });
        let at = encoded
            .iter()
            .position(|bytes| bytes[..] == *oid.as_bytes())?;
        Some(self.entries[at].1)
    }

    /// The name of `oid`, else the OID itself, dotted.
    fn name(&self, oid: &Oid<'_>) -> Cow<'static, str> {
        match self.get(oid) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(oid.to_id_string()),
        }
    }
}

/// The facts of a parsed certificate. What cannot be read (a key x509-parser does not
/// parse, a malformed extension) is left at its default: no key size, not a CA, no names.
pub fn of(cert: &X509Certificate<'_>) -> Facts {
    let spki = cert.public_key();
    let key_algorithm = KEY_ALGORITHMS.name(&spki.algorithm.algorithm);
    let curve = match &*key_algorithm {
        "ecdsa" => spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok()),
        _ => None,
    };
    let (key_size, key_curve) = match (&*key_algorithm, curve) {
        ("ed25519" | "x25519", _) => (256, Cow::Borrowed("")),
        ("ed448", _) => (456, Cow::Borrowed("")),
        ("ecdsa", Some(curve)) => match CURVES.get(&curve) {
            Some(name) => (curve_bits(name), Cow::Borrowed(name)),
            None => (point_bits(&spki.parsed()), Cow::Owned(curve.to_id_string())),
        },
        ("rsa", _) => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => (integer_bits(rsa.modulus), Cow::Borrowed("")),
            _ => (0, Cow::Borrowed("")),
        },
        ("dsa", _) => (
            spki.algorithm
                .parameters
                .as_ref()
                .map_or(0, |p| dsa_bits(p.as_bytes())),
            Cow::Borrowed(""),
        ),
        _ => (0, Cow::Borrowed("")),
    };
    Facts {
        key_algorithm,
        key_size,
        key_curve,
        signature_algorithm: signature(cert),
        ca: cert.is_ca(),
        subject_id: name_id(cert.subject().as_raw()),
        issuer_id: name_id(cert.issuer().as_raw()),
        sans: sans(cert),
    }
}

/// The size in bits of a curve of [`CURVES`].
fn curve_bits(name: &str) -> u32 {
    match name {
        "P-192" => 192,
        "P-256" | "secp256k1" | "brainpoolP256r1" => 256,
        "P-384" | "brainpoolP384r1" => 384,
        "brainpoolP512r1" => 512,
        "P-521" => 521,
        _ => 0,
    }
}

/// The place of each certificate of one file or Secret key in its chain, in their order.
/// A certificate "issues" another when that one's issuer is its subject (by their exact
/// bytes); a self-issued certificate (subject = issuer) issues nothing but itself, which
/// does not count.
pub fn positions(certs: &[CertInfo]) -> Vec<Position> {
    let issuers: HashSet<u64> = certs
        .iter()
        .filter(|cert| !self_issued(cert))
        .map(|cert| cert.facts.issuer_id)
        .collect();
    certs
        .iter()
        .map(|cert| {
            let issuing = cert.facts.ca || issuers.contains(&cert.facts.subject_id);
            match (self_issued(cert), issuing) {
                (true, true) => Position::Root,
                (true, false) => Position::SelfSigned,
                (false, true) => Position::Intermediate,
                (false, false) => Position::Leaf,
            }
        })
        .collect()
}

fn self_issued(cert: &CertInfo) -> bool {
    cert.facts.subject_id == cert.facts.issuer_id
}

/// A name's identity for chain building: a fast 64-bit hash of its DER bytes, eight at a
/// time (SipHash cost a third of a certificate's parse). Not collision-resistant: a file
/// crafted to collide would only mislabel its own certificates' places.
fn name_id(der: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash = (der.len() as u64).wrapping_mul(K);
    for chunk in der.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(31);
    }
    hash
}

/// The signature algorithm's name; RSASSA-PSS with the hash its parameters name.
fn signature(cert: &X509Certificate<'_>) -> Cow<'static, str> {
    let name = SIGNATURES.name(&cert.signature_algorithm.algorithm);
    if name != "rsapss" {
        return name;
    }
    match SignatureAlgorithm::try_from(&cert.signature_algorithm) {
        Ok(SignatureAlgorithm::RSASSA_PSS(params)) => {
            match HASHES.get(params.hash_algorithm_oid()) {
                Some(hash) => Cow::Owned(format!("{hash}-rsapss")),
                None => Cow::Borrowed("rsapss"),
            }
        }
        _ => Cow::Borrowed("rsapss"),
    }
}

/// The bit length of a DER INTEGER's content taken as unsigned (an RSA modulus, a DSA p):
/// leading zero octets and the leading zero bits of the first other octet do not count.
fn integer_bits(content: &[u8]) -> u32 {
    let Some(start) = content.iter().position(|&b| b != 0) else {
        return 0;
    };
    let bits = (content.len() - start) * 8 - content[start].leading_zeros() as usize;
    u32::try_from(bits).unwrap_or(u32::MAX)
}

/// The size of a DSA key: the bit length of p, the first INTEGER of its Dss-Parms.
fn dsa_bits(params: &[u8]) -> u32 {
    let mut parsed = parse_der_sequence_defined_g(|content, _| parse_der_integer(content));
    match parsed(params) {
        Ok((_, p)) => p.as_slice().map_or(0, integer_bits),
        Err(_) => 0,
    }
}

/// The size of an EC key on a curve not in [`CURVES`], from its point.
fn point_bits<E>(key: &Result<PublicKey<'_>, E>) -> u32 {
    match key {
        Ok(PublicKey::EC(point)) => u32::try_from(point.key_size()).unwrap_or(0),
        _ => 0,
    }
}

/// The DNS names, IP addresses, e-mail addresses and URIs, in the certificate's order,
/// as `DNS:a,IP:10.0.0.1,email:b,URI:c`, at most [`MAX_SANS_BYTES`] long.
fn sans(cert: &X509Certificate<'_>) -> String {
    let Ok(Some(extension)) = cert.subject_alternative_name() else {
        return String::new();
    };
    let listed: Vec<&GeneralName<'_>> = extension
        .value
        .general_names
        .iter()
        .filter(|name| is_listed(name))
        .collect();
    let mut out = String::new();
    let mut entry = String::new();
    for (n, name) in listed.iter().enumerate() {
        entry.clear();
        let _ = match name {
            GeneralName::DNSName(dns) => write!(entry, "DNS:{dns}"),
            GeneralName::RFC822Name(email) => write!(entry, "email:{email}"),
            GeneralName::URI(uri) => write!(entry, "URI:{uri}"),
            GeneralName::IPAddress(ip) => write_ip(&mut entry, ip),
            _ => Ok(()),
        };
        // Room for this name, and for the note that would count those after it.
        let after = listed.len() - n - 1;
        let note = match after {
            0 => 0,
            _ => format!(",+{after} more").len(),
        };
        let comma = usize::from(!out.is_empty());
        if out.len() + comma + entry.len() + note > MAX_SANS_BYTES {
            // What is written left room for exactly this note.
            if comma == 1 {
                out.push(',');
            }
            let _ = write!(out, "+{} more", listed.len() - n);
            break;
        }
        if comma == 1 {
            out.push(',');
        }
        out.push_str(&entry);
    }
    out
}

/// The kinds of name [`sans`] lists.
fn is_listed(name: &GeneralName<'_>) -> bool {
    matches!(
        name,
        GeneralName::DNSName(_)
            | GeneralName::RFC822Name(_)
            | GeneralName::URI(_)
            | GeneralName::IPAddress(_)
    )
}

/// An IP address as written: dotted quad, RFC 5952 IPv6, else its octets in hex.
fn write_ip(out: &mut String, octets: &[u8]) -> std::fmt::Result {
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        return write!(out, "IP:{}", Ipv4Addr::from(v4));
    }
    if let Ok(v6) = <[u8; 16]>::try_from(octets) {
        return write!(out, "IP:{}", Ipv6Addr::from(v6));
    }
    out.push_str("IP:");
    for b in octets {
        write!(out, "{b:02x}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_oid_is_encoded_as_x509_parser_reads_it() {
        for table in [&KEY_ALGORITHMS, &CURVES, &SIGNATURES, &HASHES] {
            for (dotted, name) in table.entries {
                let oid = Oid::from_str(dotted).unwrap();
                assert_eq!(table.get(&oid), Some(*name), "{dotted}");
            }
        }
        let unknown = Oid::from_str("1.2.3.4.5").unwrap();
        assert_eq!(
            SIGNATURES.name(&unknown),
            "1.2.3.4.5",
            "unknown: the OID itself"
        );
        for (_, curve) in CURVES.entries {
            assert!(curve_bits(curve) >= 192, "{curve} has a size");
        }
    }

    #[test]
    fn integer_bits_ignore_sign_octets_and_leading_zero_bits() {
        assert_eq!(integer_bits(&[]), 0);
        assert_eq!(integer_bits(&[0, 0]), 0);
        assert_eq!(integer_bits(&[0x00, 0x80, 0, 0]), 24);
        assert_eq!(integer_bits(&[0x7f, 0xff]), 15);
        assert_eq!(integer_bits(&[0x01]), 1);
        let mut modulus = vec![0x00, 0xc3];
        modulus.extend([0xab; 255]);
        assert_eq!(integer_bits(&modulus), 2048);
    }

    fn cert(subject: u64, issuer: u64, ca: bool) -> CertInfo {
        CertInfo {
            facts: Facts {
                subject_id: subject,
                issuer_id: issuer,
                ca,
                ..Facts::default()
            },
            ..crate::model::tests::cert_info()
        }
    }

    #[test]
    fn positions_follow_issuers_within_the_item() {
        use Position::*;
        // Leaf, intermediate and root in any order, and a stray self-signed certificate.
        let certs = [
            cert(3, 3, true),
            cert(1, 2, false),
            cert(2, 3, false), // no basicConstraints, but it issued the leaf
            cert(9, 9, false),
        ];
        assert_eq!(
            positions(&certs),
            [Root, Leaf, Intermediate, SelfSigned],
            "an intermediate is told by what it issued even without basicConstraints"
        );
        // A root alone is a root when it says it is a CA, self-signed otherwise.
        assert_eq!(positions(&[cert(3, 3, true)]), [Root]);
        assert_eq!(positions(&[cert(3, 3, false)]), [SelfSigned]);
        // Two copies of one self-signed certificate do not make each other a root.
        assert_eq!(
            positions(&[cert(5, 5, false), cert(5, 5, false)]),
            [SelfSigned, SelfSigned]
        );
        // A CA certificate alone, issued elsewhere, is an intermediate.
        assert_eq!(positions(&[cert(2, 3, true)]), [Intermediate]);
    }
}
