//! PKCS#12 (RFC 7292): the certificate bags of a PFX, in plain or password-encrypted safe
//! contents, the MAC verified when there is one. Key bags are skipped, never decrypted.
//!
//! The password is chosen once per file: by the MAC when there is one, otherwise by which
//! candidate decrypts the first encrypted part into something that parses. Candidates are
//! the given passwords in order, then the empty password in both of its PKCS#12 forms (the
//! empty BMPString, two zero bytes, and no password at all, zero bytes), as OpenSSL tries.
//! Every iteration count is checked against [`MAX_ITERATIONS`] before any derivation, and
//! all derivations of one file together against [`MAX_TOTAL_ITERATIONS`].

mod ber;
mod crypto;

use std::borrow::Cow;

use super::{Entry, Opened, MAX_ITERATIONS, MAX_TOTAL_ITERATIONS};
use ber::{oid_text, tag_name, Reader, Tlv};
use crypto::{Cipher, Hash, Purpose};

/// How deep safeContentsBags may nest inside one another.
const MAX_BAG_DEPTH: usize = 8;

/// The content octets of the OBJECT IDENTIFIERs read, and the names messages give them.
mod oid {
    /// PKCS#7 data, 1.2.840.113549.1.7.1.
    pub const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
    /// PKCS#7 signedData, 1.2.840.113549.1.7.2.
    pub const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    /// PKCS#7 envelopedData, 1.2.840.113549.1.7.3.
    pub const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
    /// PKCS#7 encryptedData, 1.2.840.113549.1.7.6.
    pub const ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
    /// certBag, 1.2.840.113549.1.12.10.1.3.
    pub const CERT_BAG: &[u8] = &[
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x03,
    ];
    /// safeContentsBag, 1.2.840.113549.1.12.10.1.6.
    pub const SAFE_CONTENTS_BAG: &[u8] = &[
        0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x06,
    ];
    /// x509Certificate, 1.2.840.113549.1.9.22.1.
    pub const X509_CERTIFICATE: &[u8] =
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01];
    /// sdsiCertificate, 1.2.840.113549.1.9.22.2.
    pub const SDSI_CERTIFICATE: &[u8] =
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x02];
    /// friendlyName, 1.2.840.113549.1.9.20.
    pub const FRIENDLY_NAME: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x14];
    /// pbeWithSHAAnd128BitRC2-CBC, 1.2.840.113549.1.12.1.5.
    pub const PBE_SHA1_RC2_128: &[u8] =
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x05];
    /// pbeWithSHAAnd40BitRC2-CBC, 1.2.840.113549.1.12.1.6.
    pub const PBE_SHA1_RC2_40: &[u8] =
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06];
    /// pbeWithSHAAnd3-KeyTripleDES-CBC, 1.2.840.113549.1.12.1.3.
    pub const PBE_SHA1_3DES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03];
    /// pbeWithSHAAnd2-KeyTripleDES-CBC, 1.2.840.113549.1.12.1.4.
    pub const PBE_SHA1_2DES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x04];
    /// PBES2, 1.2.840.113549.1.5.13.
    pub const PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
    /// PBKDF2, 1.2.840.113549.1.5.12.
    pub const PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
    /// PBMAC1 (RFC 9579), 1.2.840.113549.1.5.14.
    pub const PBMAC1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0e];
    /// hmacWithSHA1, 1.2.840.113549.2.7.
    pub const HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
    /// hmacWithSHA224, 1.2.840.113549.2.8.
    pub const HMAC_SHA224: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x08];
    /// hmacWithSHA256, 1.2.840.113549.2.9.
    pub const HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
    /// hmacWithSHA384, 1.2.840.113549.2.10.
    pub const HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
    /// hmacWithSHA512, 1.2.840.113549.2.11.
    pub const HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
    /// SHA-1, 1.3.14.3.2.26.
    pub const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
    /// SHA-224, 2.16.840.1.101.3.4.2.4.
    pub const SHA224: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04];
    /// SHA-256, 2.16.840.1.101.3.4.2.1.
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    /// SHA-384, 2.16.840.1.101.3.4.2.2.
    pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    /// SHA-512, 2.16.840.1.101.3.4.2.3.
    pub const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
    /// aes128-CBC, 2.16.840.1.101.3.4.1.2.
    pub const AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
    /// aes192-CBC, 2.16.840.1.101.3.4.1.22.
    pub const AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
    /// aes256-CBC, 2.16.840.1.101.3.4.1.42.
    pub const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
    /// des-ede3-cbc, 1.2.840.113549.3.7.
    pub const DES_EDE3_CBC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07];

    /// Names for messages, for the identifiers a reader may meet and refuse.
    pub const NAMES: [(&[u8], &str); 9] = [
        (DATA, "data"),
        (SIGNED_DATA, "signedData"),
        (ENVELOPED_DATA, "envelopedData"),
        (ENCRYPTED_DATA, "encryptedData"),
        (PBMAC1, "PBMAC1"),
        (PBES2, "PBES2"),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x03],
            "pbeWithMD5AndDES-CBC",
        ),
        (
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0a],
            "pbeWithSHA1AndDES-CBC",
        ),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05], "MD5"),
    ];
}

/// An OBJECT IDENTIFIER as messages give it: "name (dotted)" when known, dotted otherwise.
fn oid_name(id: &[u8]) -> String {
    match oid::NAMES.iter().find(|(known, _)| *known == id) {
        Some((_, name)) => format!("{name} ({})", oid_text(id)),
        None => oid_text(id),
    }
}

/// True when `data` starts like a PFX: a SEQUENCE holding INTEGER 3, then a ContentInfo
/// of type data or signedData. Looks at the first bytes only.
pub fn looks_like(data: &[u8]) -> bool {
    let Some(rest) = ber::skip_header(data, ber::SEQUENCE) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix(&[ber::INTEGER, 0x01, 0x03][..]) else {
        return false;
    };
    let Some(rest) = ber::skip_header(rest, ber::SEQUENCE) else {
        return false;
    };
    let Some(id) = rest.strip_prefix(&[ber::OID, 0x09][..]) else {
        return false;
    };
    id.starts_with(oid::DATA) || id.starts_with(oid::SIGNED_DATA)
}

/// See [`super::open`]. Messages start with "PKCS#12: "; a wrong password's contains
/// "wrong password".
pub fn open(data: &[u8], passwords: &[String]) -> Result<Opened, String> {
    let pfx = parse_pfx(data).map_err(|e| format!("PKCS#12: {e}"))?;
    let parts = parse_auth_safe(&pfx.auth_safe).map_err(|e| format!("PKCS#12: {e}"))?;

    // Every count checked before any work, so that a hostile count costs nothing.
    if let Some(mac) = &pfx.mac {
        check_iterations(mac.iterations, "the MAC")?;
    }
    for (i, part) in parts.iter().enumerate() {
        if let Part::Encrypted { scheme, .. } = part {
            check_iterations(scheme.iterations(), &format!("part {}", i + 1))?;
        }
    }

    let candidates = candidates(passwords);
    let mut work = Work::default();
    // The first encrypted part, when decrypting it is what chose the password.
    let mut first_decrypted: Option<Vec<u8>> = None;
    let password = match &pfx.mac {
        Some(mac) => Some(
            by_mac(mac, &pfx.auth_safe, &candidates, &mut work)?
                .ok_or_else(|| wrong_password(passwords))?,
        ),
        None => match parts.iter().find_map(Part::encrypted) {
            Some((scheme, data)) => {
                let (password, plain) = by_decryption(scheme, data, &candidates, &mut work)?
                    .ok_or_else(|| wrong_password(passwords))?;
                first_decrypted = Some(plain);
                Some(password)
            }
            None => None,
        },
    };

    let mut walk = Walk::default();
    for (i, part) in parts.into_iter().enumerate() {
        let n = i + 1;
        let contents = match part {
            Part::Plain(contents) => contents,
            Part::Unreadable(why) => {
                walk.opened.errors.push(format!("part {n}: {why}"));
                continue;
            }
            Part::Encrypted { scheme, data } => {
                // Parts are read in order, so the first encrypted one met is the one
                // `first_decrypted` holds, if any.
                let plain = match (first_decrypted.take(), password) {
                    (Some(plain), _) => Ok(plain),
                    (None, Some(password)) => {
                        work.charge(scheme.cost())?;
                        scheme.decrypt(&data, password)
                    }
                    (None, None) => Err("no password to decrypt it with".to_string()),
                };
                match plain {
                    Ok(plain) => Cow::Owned(plain),
                    Err(why) => {
                        walk.opened.errors.push(format!("part {n}: {why}"));
                        continue;
                    }
                }
            }
        };
        if let Err(why) = walk.safe_contents(&contents, 0) {
            walk.opened.errors.push(format!("part {n}: {why}"));
        }
    }
    Ok(walk.opened)
}

/// The parts of a PFX read here.
struct Pfx<'a> {
    /// The AuthenticatedSafe's DER: what the MAC covers.
    auth_safe: Cow<'a, [u8]>,
    /// The MAC, when the file has one.
    mac: Option<MacData<'a>>,
}

/// A PFX's macData.
struct MacData<'a> {
    /// The hash of the HMAC and of its key derivation.
    hash: Hash,
    /// The expected HMAC.
    digest: Cow<'a, [u8]>,
    /// The salt of the key derivation.
    salt: Cow<'a, [u8]>,
    /// The iterations of the key derivation.
    iterations: u64,
}

/// PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo, macData MacData OPTIONAL }
fn parse_pfx(data: &[u8]) -> Result<Pfx<'_>, String> {
    let mut pfx = Reader::new(data).sequence("PFX")?;
    let version = pfx.unsigned("PFX version")?;
    if version != 3 {
        return Err(format!("PFX version {version}, where 3 was expected"));
    }
    let mut info = pfx.sequence("authSafe")?;
    let kind = info.oid("authSafe content type")?;
    if kind == oid::SIGNED_DATA {
        return Err("public-key integrity mode is not supported".to_string());
    }
    if kind != oid::DATA {
        return Err(format!(
            "authSafe: content type {}, where data was expected",
            oid_name(kind)
        ));
    }
    let auth_safe = info
        .take(ber::CONTEXT_0, "authSafe content")?
        .reader()
        .octets("authSafe content")?;
    let mac = match pfx.optional(ber::SEQUENCE, "MAC data")? {
        Some(mac) => Some(parse_mac(mac).map_err(|e| format!("MAC data: {e}"))?),
        None => None,
    };
    Ok(Pfx { auth_safe, mac })
}

/// MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
fn parse_mac(mac: Tlv<'_>) -> Result<MacData<'_>, String> {
    let mut fields = mac.reader();
    let mut digest_info = fields.sequence("DigestInfo")?;
    let algorithm = digest_info.sequence("algorithm")?.oid("algorithm")?;
    let hash = match algorithm {
        oid::SHA1 => Hash::Sha1,
        oid::SHA224 => Hash::Sha224,
        oid::SHA256 => Hash::Sha256,
        oid::SHA384 => Hash::Sha384,
        oid::SHA512 => Hash::Sha512,
        oid::PBMAC1 => return Err("unsupported MAC algorithm PBMAC1 (RFC 9579)".to_string()),
        other => return Err(format!("unsupported MAC algorithm {}", oid_name(other))),
    };
    let digest = digest_info.octets("digest")?;
    if digest.len() != hash.output_len() {
        return Err(format!(
            "an HMAC-{} of {} bytes, where {} are expected",
            hash.name(),
            digest.len(),
            hash.output_len()
        ));
    }
    let salt = fields.octets("salt")?;
    let iterations = match fields.peek() {
        Some(ber::INTEGER) => fields.unsigned("iterations")?,
        _ => 1,
    };
    Ok(MacData {
        hash,
        digest,
        salt,
        iterations,
    })
}

/// One ContentInfo of the AuthenticatedSafe.
enum Part<'a> {
    /// A SafeContents in the clear.
    Plain(Cow<'a, [u8]>),
    /// A SafeContents encrypted with a password.
    Encrypted {
        /// How the key (and IV) come from the password.
        scheme: Scheme<'a>,
        /// The ciphertext, a whole number of blocks.
        data: Cow<'a, [u8]>,
    },
    /// A part that cannot be read, and why.
    Unreadable(String),
}

impl<'a> Part<'a> {
    /// The scheme and ciphertext of an encrypted part.
    fn encrypted(&self) -> Option<(&Scheme<'a>, &[u8])> {
        match self {
            Part::Encrypted { scheme, data } => Some((scheme, data)),
            _ => None,
        }
    }
}

/// AuthenticatedSafe ::= SEQUENCE OF ContentInfo. A part that cannot be read is
/// [`Part::Unreadable`]; an Err when the list itself does not parse.
fn parse_auth_safe(auth_safe: &[u8]) -> Result<Vec<Part<'_>>, String> {
    let mut list = Reader::new(auth_safe).sequence("authenticated safe")?;
    let mut parts = Vec::new();
    while !list.is_empty() {
        let info = list
            .any()
            .map_err(|e| format!("authenticated safe: part {}: {e}", parts.len() + 1))?;
        parts.push(parse_part(info).unwrap_or_else(Part::Unreadable));
    }
    Ok(parts)
}

/// ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY OPTIONAL }
fn parse_part(info: Tlv<'_>) -> Result<Part<'_>, String> {
    if info.ident != ber::SEQUENCE {
        return Err(format!(
            "{} where a ContentInfo SEQUENCE was expected",
            tag_name(info.ident)
        ));
    }
    let mut fields = info.reader();
    let kind = fields.oid("content type")?;
    match kind {
        oid::DATA => Ok(Part::Plain(
            fields
                .take(ber::CONTEXT_0, "content")?
                .reader()
                .octets("content")?,
        )),
        oid::ENCRYPTED_DATA => {
            let mut content = fields.take(ber::CONTEXT_0, "content")?.reader();
            parse_encrypted_data(content.sequence("EncryptedData")?)
        }
        oid::ENVELOPED_DATA => {
            Err("envelopedData (public-key privacy mode) is not supported".to_string())
        }
        other => Err(format!("content type {} is not supported", oid_name(other))),
    }
}

/// EncryptedData ::= SEQUENCE { version, EncryptedContentInfo ::= SEQUENCE { contentType,
/// contentEncryptionAlgorithm, encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL } }
fn parse_encrypted_data(mut fields: Reader<'_>) -> Result<Part<'_>, String> {
    fields.unsigned("EncryptedData version")?;
    let mut info = fields.sequence("EncryptedContentInfo")?;
    info.oid("encrypted content type")?;
    let scheme = parse_scheme(info.sequence("encryption algorithm")?)?;
    let data = match info.peek() {
        Some(ident @ (ber::CONTEXT_0_PRIMITIVE | ber::CONTEXT_0)) => info
            .take(ident, "encrypted content")?
            .octets()
            .map_err(|e| format!("encrypted content: {e}"))?,
        _ => return Err("no encrypted content".to_string()),
    };
    let cipher = scheme.cipher();
    if data.is_empty() || data.len() % cipher.block_len() != 0 {
        return Err(format!(
            "{}: {} bytes of ciphertext, not a whole number of {}-byte blocks",
            cipher.name(),
            data.len(),
            cipher.block_len()
        ));
    }
    Ok(Part::Encrypted { scheme, data })
}

/// How a part's key comes from the password.
enum Scheme<'a> {
    /// A PKCS#12 PBE (RFC 7292 appendix C): key and IV by the PKCS#12 derivation with SHA-1.
    Pkcs12 {
        /// The cipher.
        cipher: Cipher,
        /// The derivation's salt.
        salt: Cow<'a, [u8]>,
        /// The derivation's iterations.
        iterations: u64,
    },
    /// PBES2 (RFC 8018): the key by PBKDF2, the IV given.
    Pbes2 {
        /// PBKDF2's HMAC hash.
        prf: Hash,
        /// PBKDF2's salt.
        salt: Cow<'a, [u8]>,
        /// PBKDF2's iterations.
        iterations: u64,
        /// The cipher.
        cipher: Cipher,
        /// The IV.
        iv: Cow<'a, [u8]>,
    },
}

impl Scheme<'_> {
    /// The iterations one derivation asks for.
    fn iterations(&self) -> u64 {
        match self {
            Scheme::Pkcs12 { iterations, .. } | Scheme::Pbes2 { iterations, .. } => *iterations,
        }
    }

    /// The iterations one decryption costs: two derivations (key, IV) for a PKCS#12 PBE.
    fn cost(&self) -> u64 {
        match self {
            Scheme::Pkcs12 { iterations, .. } => iterations.saturating_mul(2),
            Scheme::Pbes2 { iterations, .. } => *iterations,
        }
    }

    /// The cipher.
    fn cipher(&self) -> Cipher {
        match self {
            Scheme::Pkcs12 { cipher, .. } | Scheme::Pbes2 { cipher, .. } => *cipher,
        }
    }

    /// The form of `password` this scheme derives from: UTF-8 for PBES2, the BMPString
    /// for the PKCS#12 PBEs.
    fn secret<'p>(&self, password: &'p Password) -> &'p [u8] {
        match self {
            Scheme::Pkcs12 { .. } => &password.bmp,
            Scheme::Pbes2 { .. } => &password.utf8,
        }
    }

    /// Derives the key (and IV) from `password` and decrypts `data`. The caller has
    /// charged [`Scheme::cost`] and checked the iteration count.
    fn decrypt(&self, data: &[u8], password: &Password) -> Result<Vec<u8>, String> {
        let secret = self.secret(password);
        match self {
            Scheme::Pkcs12 {
                cipher,
                salt,
                iterations,
            } => {
                let mut key = vec![0; cipher.key_len()];
                let mut iv = vec![0; cipher.block_len()];
                crypto::pkcs12_kdf(
                    Hash::Sha1,
                    Purpose::Key,
                    secret,
                    salt,
                    *iterations,
                    &mut key,
                );
                crypto::pkcs12_kdf(Hash::Sha1, Purpose::Iv, secret, salt, *iterations, &mut iv);
                cipher.decrypt(&key, &iv, data)
            }
            Scheme::Pbes2 {
                prf,
                salt,
                iterations,
                cipher,
                iv,
            } => {
                let rounds = u32::try_from(*iterations)
                    .map_err(|_| format!("{iterations} PBKDF2 iterations do not fit 32 bits"))?;
                let mut key = vec![0; cipher.key_len()];
                crypto::pbkdf2(*prf, secret, salt, rounds, &mut key);
                cipher.decrypt(&key, iv, data)
            }
        }
    }
}

/// AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }, for the
/// encryption of a part.
fn parse_scheme(mut algorithm: Reader<'_>) -> Result<Scheme<'_>, String> {
    let id = algorithm.oid("encryption algorithm")?;
    let cipher = match id {
        oid::PBE_SHA1_RC2_40 => Cipher::Rc2_40,
        oid::PBE_SHA1_RC2_128 => Cipher::Rc2_128,
        oid::PBE_SHA1_3DES => Cipher::DesEde3,
        oid::PBE_SHA1_2DES => Cipher::DesEde2,
        oid::PBES2 => return parse_pbes2(algorithm.sequence("PBES2 parameters")?),
        other => {
            return Err(format!(
                "encryption algorithm {} is not supported",
                oid_name(other)
            ))
        }
    };
    // pkcs-12PbeParams ::= SEQUENCE { salt OCTET STRING, iterations INTEGER }
    let mut params = algorithm.sequence("PBE parameters")?;
    Ok(Scheme::Pkcs12 {
        cipher,
        salt: params.octets("PBE salt")?,
        iterations: params.unsigned("PBE iterations")?,
    })
}

/// PBES2-params ::= SEQUENCE { keyDerivationFunc AlgorithmIdentifier (PBKDF2),
/// encryptionScheme AlgorithmIdentifier }
fn parse_pbes2(mut params: Reader<'_>) -> Result<Scheme<'_>, String> {
    let mut kdf = params.sequence("PBES2 key derivation")?;
    let kdf_id = kdf.oid("PBES2 key derivation")?;
    if kdf_id != oid::PBKDF2 {
        return Err(format!(
            "PBES2 key derivation {} is not supported",
            oid_name(kdf_id)
        ));
    }
    // PBKDF2-params ::= SEQUENCE { salt CHOICE { specified OCTET STRING, otherSource
    // AlgorithmIdentifier }, iterationCount INTEGER, keyLength INTEGER OPTIONAL,
    // prf AlgorithmIdentifier DEFAULT hmacWithSHA1 }
    let mut pbkdf2 = kdf.sequence("PBKDF2 parameters")?;
    if pbkdf2.peek() == Some(ber::SEQUENCE) {
        return Err("a PBKDF2 salt from another source is not supported".to_string());
    }
    let salt = pbkdf2.octets("PBKDF2 salt")?;
    let iterations = pbkdf2.unsigned("PBKDF2 iterations")?;
    let key_len = match pbkdf2.peek() {
        Some(ber::INTEGER) => Some(pbkdf2.unsigned("PBKDF2 key length")?),
        _ => None,
    };
    let prf = match pbkdf2.optional(ber::SEQUENCE, "PBKDF2 PRF")? {
        None => Hash::Sha1,
        Some(prf) => match prf.reader().oid("PBKDF2 PRF")? {
            oid::HMAC_SHA1 => Hash::Sha1,
            oid::HMAC_SHA224 => Hash::Sha224,
            oid::HMAC_SHA256 => Hash::Sha256,
            oid::HMAC_SHA384 => Hash::Sha384,
            oid::HMAC_SHA512 => Hash::Sha512,
            other => return Err(format!("PBKDF2 PRF {} is not supported", oid_name(other))),
        },
    };
    let mut encryption = params.sequence("PBES2 encryption scheme")?;
    let cipher = match encryption.oid("PBES2 encryption scheme")? {
        oid::AES128_CBC => Cipher::Aes128,
        oid::AES192_CBC => Cipher::Aes192,
        oid::AES256_CBC => Cipher::Aes256,
        oid::DES_EDE3_CBC => Cipher::DesEde3,
        other => {
            return Err(format!(
                "PBES2 encryption scheme {} is not supported",
                oid_name(other)
            ))
        }
    };
    let iv = encryption.octets("IV")?;
    if iv.len() != cipher.block_len() {
        return Err(format!(
            "{}: an IV of {} bytes, where {} are needed",
            cipher.name(),
            iv.len(),
            cipher.block_len()
        ));
    }
    if let Some(len) = key_len.filter(|&len| len != cipher.key_len() as u64) {
        return Err(format!(
            "{}: PBKDF2 key length {len}, where {} is needed",
            cipher.name(),
            cipher.key_len()
        ));
    }
    Ok(Scheme::Pbes2 {
        prf,
        salt,
        iterations,
        cipher,
        iv,
    })
}

/// Refuses an iteration count over [`MAX_ITERATIONS`], and 0.
fn check_iterations(iterations: u64, what: &str) -> Result<(), String> {
    if iterations > MAX_ITERATIONS {
        return Err(format!(
            "PKCS#12: {what} asks for {iterations} key-derivation iterations, more than the \
             {MAX_ITERATIONS} allowed"
        ));
    }
    if iterations == 0 {
        return Err(format!(
            "PKCS#12: {what} asks for 0 key-derivation iterations"
        ));
    }
    Ok(())
}

/// The iterations of all the derivations done so far for one file.
#[derive(Default)]
struct Work {
    /// Iterations so far.
    done: u64,
}

impl Work {
    /// Counts `iterations` more, or refuses when the total would pass
    /// [`MAX_TOTAL_ITERATIONS`].
    fn charge(&mut self, iterations: u64) -> Result<(), String> {
        let total = self.done.saturating_add(iterations);
        if total > MAX_TOTAL_ITERATIONS {
            return Err(format!(
                "PKCS#12: giving up after {} key-derivation iterations: {iterations} more would \
                 pass the {MAX_TOTAL_ITERATIONS} allowed per file, every password tried counted",
                self.done
            ));
        }
        self.done = total;
        Ok(())
    }
}

/// A password to try, in the two forms the derivations take.
#[derive(Debug, PartialEq, Eq)]
struct Password {
    /// UTF-8, for PBKDF2.
    utf8: Vec<u8>,
    /// The BMPString (UTF-16 big-endian) with two zero bytes at the end, for the PKCS#12
    /// derivation; nothing at all for "no password".
    bmp: Vec<u8>,
}

/// The given passwords in order, then the empty BMPString, then no password; each once.
fn candidates(passwords: &[String]) -> Vec<Password> {
    let given = passwords.iter().map(|p| Password {
        utf8: p.as_bytes().to_vec(),
        bmp: p
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .chain([0, 0])
            .collect(),
    });
    let empty = [
        Password {
            utf8: Vec::new(),
            bmp: vec![0, 0],
        },
        Password {
            utf8: Vec::new(),
            bmp: Vec::new(),
        },
    ];
    let mut list: Vec<Password> = Vec::new();
    for password in given.chain(empty) {
        if !list.contains(&password) {
            list.push(password);
        }
    }
    list
}

/// The message when no candidate opens the file.
fn wrong_password(passwords: &[String]) -> String {
    let mut given: Vec<&String> = passwords.iter().filter(|p| !p.is_empty()).collect();
    given.sort();
    given.dedup();
    match given.len() {
        0 => "PKCS#12: wrong password (no password given; the empty one does not open it)"
            .to_string(),
        1 => "PKCS#12: wrong password (tried 1 password and the empty one)".to_string(),
        n => format!("PKCS#12: wrong password (tried {n} passwords and the empty one)"),
    }
}

/// The candidate whose MAC key gives the file's MAC; `None` when none does.
fn by_mac<'p>(
    mac: &MacData<'_>,
    auth_safe: &[u8],
    candidates: &'p [Password],
    work: &mut Work,
) -> Result<Option<&'p Password>, String> {
    let mut key = vec![0; mac.hash.output_len()];
    for candidate in candidates {
        work.charge(mac.iterations)?;
        crypto::pkcs12_kdf(
            mac.hash,
            Purpose::Mac,
            &candidate.bmp,
            &mac.salt,
            mac.iterations,
            &mut key,
        );
        if crypto::hmac_matches(mac.hash, &key, auth_safe, &mac.digest) {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// The first candidate that decrypts `data` into one whole SEQUENCE, and that plaintext;
/// `None` when none does. Candidates the scheme cannot tell apart are tried once.
fn by_decryption<'p>(
    scheme: &Scheme<'_>,
    data: &[u8],
    candidates: &'p [Password],
    work: &mut Work,
) -> Result<Option<(&'p Password, Vec<u8>)>, String> {
    let mut tried: Vec<&[u8]> = Vec::new();
    for candidate in candidates {
        let secret = scheme.secret(candidate);
        if tried.contains(&secret) {
            continue;
        }
        tried.push(secret);
        work.charge(scheme.cost())?;
        if let Ok(plain) = scheme.decrypt(data, candidate) {
            let mut check = Reader::new(&plain);
            if check.take(ber::SEQUENCE, "").is_ok() && check.is_empty() {
                return Ok(Some((candidate, plain)));
            }
        }
    }
    Ok(None)
}

/// What reading the bags has found so far.
#[derive(Default)]
struct Walk {
    /// The certificates and the per-bag messages.
    opened: Opened,
    /// The bags met so far, nested ones included: the number of the next one is this + 1.
    bags: usize,
}

/// Why one bag could not be read, and its friendly name when that was read.
struct BagError {
    /// The bag's friendly name, if known and not empty.
    alias: Option<String>,
    /// Why.
    why: String,
}

impl From<String> for BagError {
    fn from(why: String) -> Self {
        BagError { alias: None, why }
    }
}

impl Walk {
    /// SafeContents ::= SEQUENCE OF SafeBag: reads each bag, a failure of one a message in
    /// [`Opened::errors`]; an Err when the list itself does not parse.
    fn safe_contents(&mut self, contents: &[u8], depth: usize) -> Result<(), String> {
        let mut bags = Reader::new(contents).sequence("safe contents")?;
        while !bags.is_empty() {
            self.bags += 1;
            let n = self.bags;
            let result = match bags.any() {
                Ok(bag) => self.bag(bag, depth),
                Err(why) => {
                    // The end of this bag is unknown, and so is the start of the next.
                    self.opened.errors.push(format!("bag {n}: {why}"));
                    break;
                }
            };
            match result {
                Ok(()) => {}
                Err(BagError {
                    alias: Some(alias),
                    why,
                }) => self
                    .opened
                    .errors
                    .push(format!("bag {n} (alias {alias:?}): {why}")),
                Err(BagError { alias: None, why }) => {
                    self.opened.errors.push(format!("bag {n}: {why}"))
                }
            }
        }
        Ok(())
    }

    /// SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY, bagAttributes SET OF
    /// Attribute OPTIONAL }: a certificate kept, nested bags read, other bags skipped.
    fn bag(&mut self, bag: Tlv<'_>, depth: usize) -> Result<(), BagError> {
        if bag.ident != ber::SEQUENCE {
            return Err(format!(
                "{} where a SafeBag SEQUENCE was expected",
                tag_name(bag.ident)
            )
            .into());
        }
        let mut fields = bag.reader();
        let kind = fields.oid("bag type")?;
        let value = fields.take(ber::CONTEXT_0, "bag value")?;
        match kind {
            oid::CERT_BAG => {
                let alias = match fields.optional(ber::SET, "bag attributes")? {
                    Some(attributes) => friendly_name(attributes)?,
                    None => String::new(),
                };
                match cert_bag(value) {
                    Ok(der) => self.opened.entries.push(Entry { alias, der }),
                    Err(why) => {
                        let alias = Some(alias).filter(|a| !a.is_empty());
                        return Err(BagError { alias, why });
                    }
                }
            }
            oid::SAFE_CONTENTS_BAG => {
                if depth >= MAX_BAG_DEPTH {
                    return Err(
                        format!("safe contents nested more than {MAX_BAG_DEPTH} deep").into(),
                    );
                }
                self.safe_contents(value.content, depth + 1)
                    .map_err(|e| format!("nested {e}"))?;
            }
            // Keys (never decrypted), CRLs, secrets, and bag types to come: no certificate.
            _ => {}
        }
        Ok(())
    }
}

/// CertBag ::= SEQUENCE { certId OID, certValue [0] EXPLICIT OCTET STRING }: the DER of an
/// X.509 certificate.
fn cert_bag(value: Tlv<'_>) -> Result<Vec<u8>, String> {
    let mut bag = value.reader().sequence("CertBag")?;
    match bag.oid("certificate type")? {
        oid::X509_CERTIFICATE => Ok(bag
            .take(ber::CONTEXT_0, "certificate")?
            .reader()
            .octets("certificate")?
            .into_owned()),
        oid::SDSI_CERTIFICATE => {
            Err("an SDSI certificate, not read (only X.509 ones are)".to_string())
        }
        other => Err(format!(
            "certificate type {} not read (only X.509 ones are)",
            oid_name(other)
        )),
    }
}

/// The friendlyName among a bag's attributes (Attribute ::= SEQUENCE { attrId OID,
/// attrValues SET OF ANY }), the BMPString as UTF-8; empty when there is none.
fn friendly_name(attributes: Tlv<'_>) -> Result<String, String> {
    let mut list = attributes.reader();
    while !list.is_empty() {
        let mut attribute = list.sequence("bag attribute")?;
        if attribute.oid("bag attribute type")? != oid::FRIENDLY_NAME {
            continue;
        }
        let mut values = attribute.take(ber::SET, "friendlyName values")?.reader();
        let name = values.take(ber::BMP_STRING, "friendlyName")?.content;
        let units: Vec<u16> = name
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        let mut text = String::from_utf16_lossy(&units);
        if name.len() % 2 != 0 {
            text.push(char::REPLACEMENT_CHARACTER);
        }
        return Ok(text);
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use cbc::cipher::block_padding::Pkcs7;
    use cbc::cipher::{BlockEncryptMut, KeyIvInit};
    use hmac::{Mac, SimpleHmac};

    use super::*;

    // -----------------------------------------------------------------------------------
    // DER (and BER) by hand

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(ber::SEQUENCE, &parts.concat())
    }

    fn id(oid: &[u8]) -> Vec<u8> {
        tlv(ber::OID, oid)
    }

    fn octets(data: &[u8]) -> Vec<u8> {
        tlv(ber::OCTET_STRING, data)
    }

    fn explicit(inner: &[u8]) -> Vec<u8> {
        tlv(ber::CONTEXT_0, inner)
    }

    fn int(n: u64) -> Vec<u8> {
        let mut bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        if bytes.first().is_none_or(|&b| b & 0x80 != 0) {
            bytes.insert(0, 0);
        }
        tlv(ber::INTEGER, &bytes)
    }

    fn bmp(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_be_bytes).collect()
    }

    fn pass(text: &str) -> Vec<u8> {
        let mut out = bmp(text);
        out.extend([0, 0]);
        out
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn attributes(name: &str) -> Vec<u8> {
        let friendly = seq(&[
            &id(oid::FRIENDLY_NAME),
            &tlv(ber::SET, &tlv(ber::BMP_STRING, &bmp(name))),
        ]);
        let other = seq(&[
            &id(&[0x2a, 0x03]),
            &tlv(ber::SET, &tlv(0x3f, &[0x81, 0x01, 0x00])),
        ]);
        tlv(ber::SET, &[other, friendly].concat())
    }

    fn cert_bag_of(kind: &[u8], der: &[u8], name: Option<&str>) -> Vec<u8> {
        let value = explicit(&seq(&[&id(kind), &explicit(&octets(der))]));
        let attrs = name.map(attributes).unwrap_or_default();
        seq(&[&id(oid::CERT_BAG), &value, &attrs])
    }

    fn cert_bag(der: &[u8], name: Option<&str>) -> Vec<u8> {
        cert_bag_of(oid::X509_CERTIFICATE, der, name)
    }

    fn key_bag() -> Vec<u8> {
        let shrouded = [
            0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02,
        ];
        seq(&[
            &id(&shrouded),
            &explicit(&seq(&[&octets(b"not decrypted")])),
        ])
    }

    fn nested(bags: &[&[u8]]) -> Vec<u8> {
        seq(&[&id(oid::SAFE_CONTENTS_BAG), &explicit(&seq(bags))])
    }

    fn data_part(bags: &[&[u8]]) -> Vec<u8> {
        seq(&[&id(oid::DATA), &explicit(&octets(&seq(bags)))])
    }

    fn encrypted_part(algorithm: &[u8], ciphertext: &[u8]) -> Vec<u8> {
        let info = seq(&[
            &id(oid::DATA),
            algorithm,
            &tlv(ber::CONTEXT_0_PRIMITIVE, ciphertext),
        ]);
        seq(&[&id(oid::ENCRYPTED_DATA), &explicit(&seq(&[&int(0), &info]))])
    }

    /// PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC: the AlgorithmIdentifier and the
    /// ciphertext of `plain`.
    fn pbes2(password: &str, iterations: u64, plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (salt, iv) = ([5u8; 8], [9u8; 16]);
        let prf = seq(&[&id(oid::HMAC_SHA256), &tlv(ber::NULL, &[])]);
        let kdf = seq(&[
            &id(oid::PBKDF2),
            &seq(&[&octets(&salt), &int(iterations), &prf]),
        ]);
        let enc = seq(&[&id(oid::AES256_CBC), &octets(&iv)]);
        let algorithm = seq(&[&id(oid::PBES2), &seq(&[&kdf, &enc])]);
        let mut key = [0u8; 32];
        if iterations <= MAX_ITERATIONS {
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
                password.as_bytes(),
                &salt,
                iterations as u32,
                &mut key,
            );
        }
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + 16, 0);
        let ct = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .unwrap()
            .encrypt_padded_mut::<Pkcs7>(&mut buf, plain.len())
            .unwrap()
            .to_vec();
        (algorithm, ct)
    }

    /// pbeWithSHAAnd3-KeyTripleDES-CBC: the AlgorithmIdentifier and the ciphertext.
    fn pbe_3des(password: &[u8], plain: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let salt = [3u8; 8];
        let algorithm = seq(&[&id(oid::PBE_SHA1_3DES), &seq(&[&octets(&salt), &int(2)])]);
        let (mut key, mut iv) = ([0u8; 24], [0u8; 8]);
        crypto::pkcs12_kdf(Hash::Sha1, Purpose::Key, password, &salt, 2, &mut key);
        crypto::pkcs12_kdf(Hash::Sha1, Purpose::Iv, password, &salt, 2, &mut iv);
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + 8, 0);
        let ct = cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .unwrap()
            .encrypt_padded_mut::<Pkcs7>(&mut buf, plain.len())
            .unwrap()
            .to_vec();
        (algorithm, ct)
    }

    /// MacData with HMAC-SHA256 keyed from `password` (already a BMPString or nothing).
    fn mac(password: &[u8], iterations: u64, auth_safe: &[u8]) -> Vec<u8> {
        let salt = [7u8; 8];
        let mut key = [0u8; 32];
        if iterations <= MAX_ITERATIONS {
            crypto::pkcs12_kdf(
                Hash::Sha256,
                Purpose::Mac,
                password,
                &salt,
                iterations,
                &mut key,
            );
        }
        let mut hmac = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
        hmac.update(auth_safe);
        let digest = hmac.finalize().into_bytes();
        let algorithm = seq(&[&id(oid::SHA256), &tlv(ber::NULL, &[])]);
        seq(&[
            &seq(&[&algorithm, &octets(&digest)]),
            &octets(&salt),
            &int(iterations),
        ])
    }

    fn pfx(parts: &[&[u8]], mac_password: Option<&[u8]>) -> Vec<u8> {
        let auth_safe = seq(parts);
        let mac = mac_password
            .map(|p| mac(p, 3, &auth_safe))
            .unwrap_or_default();
        seq(&[
            &int(3),
            &seq(&[&id(oid::DATA), &explicit(&octets(&auth_safe))]),
            &mac,
        ])
    }

    fn entry(alias: &str, der: &[u8]) -> Entry {
        Entry {
            alias: alias.to_string(),
            der: der.to_vec(),
        }
    }

    // -----------------------------------------------------------------------------------
    // Tests

    #[test]
    fn looks_like_only_a_pfx() {
        let plain = pfx(&[&data_part(&[&cert_bag(b"c", None)])], None);
        assert!(looks_like(&plain));
        assert!(
            looks_like(&plain[..20]),
            "a cut-short PFX still looks like one"
        );
        let signed = seq(&[&int(3), &seq(&[&id(oid::SIGNED_DATA)])]);
        assert!(looks_like(&signed));
        // A certificate and a CRL: SEQUENCE { SEQUENCE ... }.
        let cert = seq(&[&seq(&[&explicit(&int(2)), &int(1)]), &seq(&[])]);
        assert!(!looks_like(&cert));
        assert!(!looks_like(&seq(&[&seq(&[&int(1)])])));
        // PKCS#8 (version 0), PFX version 2, and a PFX whose content is not data.
        assert!(!looks_like(&seq(&[&int(0), &seq(&[&id(oid::DATA)])])));
        assert!(!looks_like(&seq(&[&int(2), &seq(&[&id(oid::DATA)])])));
        assert!(!looks_like(&seq(&[
            &int(3),
            &seq(&[&id(oid::ENVELOPED_DATA)])
        ])));
        assert!(!looks_like(b"-----BEGIN CERTIFICATE-----\nMIIB\n"));
        assert!(!looks_like(&[0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]));
        assert!(!looks_like(&[]));
        assert!(!looks_like(&[0x30]));
    }

    #[test]
    fn plain_bags_in_file_order_keys_skipped() {
        let parts = [
            data_part(&[&cert_bag(b"leaf", Some("leaf ü€😀")), &key_bag()]),
            data_part(&[
                &cert_bag(b"ca", None),
                &nested(&[&cert_bag(b"inner", Some("in"))]),
            ]),
        ];
        let data = pfx(&[&parts[0], &parts[1]], None);
        let opened = open(&data, &[]).unwrap();
        assert_eq!(opened.errors, Vec::<String>::new());
        let want = [
            entry("leaf ü€😀", b"leaf"),
            entry("", b"ca"),
            entry("in", b"inner"),
        ];
        assert_eq!(opened.entries, want);
        // A password given to a file that needs none changes nothing.
        assert_eq!(open(&data, &strings(&["x"])).unwrap(), opened);
    }

    #[test]
    fn the_mac_picks_the_password() {
        let part = data_part(&[&cert_bag(b"c", Some("a"))]);
        let want = vec![entry("a", b"c")];
        let data = pfx(&[&part], Some(&pass("right")));
        let opened = open(&data, &strings(&["wrong", "right"])).unwrap();
        assert_eq!(opened.entries, want);
        assert_eq!(
            open(&data, &strings(&["wrong", "wrong"])).unwrap_err(),
            "PKCS#12: wrong password (tried 1 password and the empty one)"
        );
        // Both forms of the empty password, with none given and after a wrong one.
        for empty in [&pass("")[..], &[]] {
            let data = pfx(&[&part], Some(empty));
            assert_eq!(open(&data, &[]).unwrap().entries, want, "{empty:?}");
            assert_eq!(
                open(&data, &strings(&["x"])).unwrap().entries,
                want,
                "{empty:?}"
            );
        }
    }

    #[test]
    fn without_a_mac_decryption_picks_the_password() {
        let bags = seq(&[&cert_bag(b"one", Some("1"))]);
        let (alg1, ct1) = pbes2("pw", 2, &bags);
        let bags2 = seq(&[&cert_bag(b"two", Some("2"))]);
        let (alg2, ct2) = pbe_3des(&pass("pw"), &bags2);
        let data = pfx(
            &[&encrypted_part(&alg1, &ct1), &encrypted_part(&alg2, &ct2)],
            None,
        );
        let opened = open(&data, &strings(&["nope", "pw"])).unwrap();
        assert_eq!(opened.errors, Vec::<String>::new());
        assert_eq!(opened.entries, [entry("1", b"one"), entry("2", b"two")]);
        let err = open(&data, &strings(&["nope"])).unwrap_err();
        assert!(err.contains("wrong password"), "{err}");
        // An empty PBES2 password: both empty forms are the same bytes, tried once.
        let (alg, ct) = pbes2("", 2, &bags);
        let data = pfx(&[&encrypted_part(&alg, &ct)], None);
        assert_eq!(open(&data, &[]).unwrap().entries, [entry("1", b"one")]);
    }

    #[test]
    fn a_part_that_does_not_decrypt_with_the_right_password_is_its_own_error() {
        let bags = seq(&[&cert_bag(b"one", None)]);
        let (alg, _) = pbes2("pw", 2, &bags);
        let (alg_ok, ct_ok) = pbes2("pw", 2, &bags);
        let parts = [
            encrypted_part(&alg, &[0u8; 32]),
            encrypted_part(&alg_ok, &ct_ok),
            seq(&[&id(oid::ENVELOPED_DATA), &explicit(&seq(&[]))]),
        ];
        let data = pfx(&[&parts[0], &parts[1], &parts[2]], Some(&pass("pw")));
        let opened = open(&data, &strings(&["pw"])).unwrap();
        assert_eq!(opened.entries, [entry("", b"one")]);
        assert_eq!(
            opened.errors,
            [
                "part 1: AES-256-CBC: bad padding after decryption",
                "part 3: envelopedData (public-key privacy mode) is not supported"
            ]
        );
    }

    #[test]
    fn bag_failures_are_per_bag() {
        let sdsi = cert_bag_of(oid::SDSI_CERTIFICATE, b"s", None);
        let unknown = cert_bag_of(&[0x2a, 0x03, 0x04], b"u", Some("odd"));
        let not_a_bag = octets(b"x");
        let bad_attrs = {
            let value = explicit(&seq(&[
                &id(oid::X509_CERTIFICATE),
                &explicit(&octets(b"a")),
            ]));
            seq(&[&id(oid::CERT_BAG), &value, &tlv(ber::SET, &octets(b"x"))])
        };
        let part = data_part(&[
            &cert_bag(b"first", None),
            &sdsi,
            &unknown,
            &not_a_bag,
            &bad_attrs,
            &cert_bag(b"last", None),
            &[0x30, 0x05, 0x06],
        ]);
        let opened = open(&pfx(&[&part], None), &[]).unwrap();
        assert_eq!(opened.entries, [entry("", b"first"), entry("", b"last")]);
        assert_eq!(
            opened.errors,
            [
                "bag 2: an SDSI certificate, not read (only X.509 ones are)",
                "bag 3 (alias \"odd\"): certificate type 1.2.3.4 not read (only X.509 ones are)",
                "bag 4: OCTET STRING where a SafeBag SEQUENCE was expected",
                "bag 5: bag attribute: OCTET STRING where SEQUENCE was expected",
                "bag 7: SEQUENCE of 5 bytes where 1 are left (truncated?)",
            ]
        );
    }

    #[test]
    fn nesting_is_capped() {
        let mut bags = cert_bag(b"deep", None);
        for _ in 0..MAX_BAG_DEPTH {
            bags = nested(&[&bags]);
        }
        let opened = open(&pfx(&[&data_part(&[&bags])], None), &[]).unwrap();
        assert_eq!(opened.entries, [entry("", b"deep")]);
        let deeper = nested(&[&bags]);
        let opened = open(
            &pfx(&[&data_part(&[&deeper, &cert_bag(b"c", None)])], None),
            &[],
        )
        .unwrap();
        assert_eq!(opened.entries, [entry("", b"c")]);
        assert_eq!(
            opened.errors,
            ["bag 9: safe contents nested more than 8 deep"]
        );
    }

    /// Windows and Java may write BER: indefinite lengths and OCTET STRINGs in chunks.
    #[test]
    fn ber_indefinite_lengths_and_chunks() {
        let indefinite =
            |tag: u8, parts: &[&[u8]]| [&[tag, 0x80][..], &parts.concat(), &[0, 0]].concat();
        let chunks = |tag: u8, data: &[u8]| {
            let pieces: Vec<Vec<u8>> = data.chunks(5).map(octets).collect();
            let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            indefinite(tag, &refs)
        };
        let bags = indefinite(ber::SEQUENCE, &[&cert_bag(b"chunky", Some("b"))]);
        let (alg, ct) = pbes2("pw", 2, &bags);
        let info = indefinite(
            ber::SEQUENCE,
            &[&id(oid::DATA), &alg, &chunks(ber::CONTEXT_0, &ct)],
        );
        let encrypted = indefinite(
            ber::SEQUENCE,
            &[
                &id(oid::ENCRYPTED_DATA),
                &indefinite(
                    ber::CONTEXT_0,
                    &[&indefinite(ber::SEQUENCE, &[&int(0), &info])],
                ),
            ],
        );
        let auth_safe = indefinite(ber::SEQUENCE, &[&encrypted]);
        let data = indefinite(
            ber::SEQUENCE,
            &[
                &int(3),
                &indefinite(
                    ber::SEQUENCE,
                    &[
                        &id(oid::DATA),
                        &indefinite(ber::CONTEXT_0, &[&chunks(0x24, &auth_safe)]),
                    ],
                ),
                &mac(&pass("pw"), 1, &auth_safe),
            ],
        );
        assert!(looks_like(&data));
        let opened = open(&data, &strings(&["pw"])).unwrap();
        assert_eq!(opened.errors, Vec::<String>::new());
        assert_eq!(opened.entries, [entry("b", b"chunky")]);
    }

    #[test]
    fn iteration_counts_over_the_cap_cost_nothing() {
        let part = data_part(&[&cert_bag(b"c", None)]);
        let auth_safe = seq(&[&part]);
        let data = seq(&[
            &int(3),
            &seq(&[&id(oid::DATA), &explicit(&octets(&auth_safe))]),
            &mac(&pass("pw"), 1_000_000_000, &auth_safe),
        ]);
        let started = Instant::now();
        let err = open(&data, &strings(&["a", "b", "c"])).unwrap_err();
        assert_eq!(
            err,
            "PKCS#12: the MAC asks for 1000000000 key-derivation iterations, more than the \
             1000000 allowed"
        );
        let (alg, ct) = pbes2("pw", 1_000_000_000, &seq(&[]));
        let data = pfx(&[&part, &encrypted_part(&alg, &ct)], None);
        let err = open(&data, &[]).unwrap_err();
        assert!(err.contains("part 2 asks for 1000000000"), "{err}");
        let (alg, ct) = pbes2("pw", 0, &seq(&[]));
        let err = open(&pfx(&[&encrypted_part(&alg, &ct)], None), &[]).unwrap_err();
        assert!(err.contains("0 key-derivation iterations"), "{err}");
        assert!(
            started.elapsed().as_millis() < 500,
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_total_work_is_capped() {
        let mut work = Work::default();
        for _ in 0..4 {
            work.charge(MAX_ITERATIONS).unwrap();
        }
        let err = work.charge(1).unwrap_err();
        assert!(
            err.contains("after 4000000 key-derivation iterations"),
            "{err}"
        );
        assert!(Work::default().charge(u64::MAX).is_err());
    }

    #[test]
    fn candidates_in_order_each_once() {
        let list = candidates(&strings(&["b", "", "a", "b"]));
        let utf8: Vec<&[u8]> = list.iter().map(|p| p.utf8.as_slice()).collect();
        assert_eq!(utf8, [&b"b"[..], b"", b"a", b""]);
        assert_eq!(list[0].bmp, [0, b'b', 0, 0]);
        assert_eq!(list[1].bmp, [0, 0]);
        assert_eq!(list[3].bmp, Vec::<u8>::new());
        // Outside the BMP: a surrogate pair, as OpenSSL encodes it.
        assert_eq!(
            candidates(&strings(&["😀"]))[0].bmp,
            [0xd8, 0x3d, 0xde, 0x00, 0, 0]
        );
        assert_eq!(
            wrong_password(&strings(&["", "x", "y"])),
            "PKCS#12: wrong password (tried 2 passwords and the empty one)"
        );
    }

    #[test]
    fn whole_file_refusals() {
        let signed = seq(&[
            &int(3),
            &seq(&[&id(oid::SIGNED_DATA), &explicit(&seq(&[]))]),
        ]);
        assert_eq!(
            open(&signed, &[]).unwrap_err(),
            "PKCS#12: public-key integrity mode is not supported"
        );
        let v2 = seq(&[
            &int(2),
            &seq(&[&id(oid::DATA), &explicit(&octets(&seq(&[])))]),
        ]);
        assert_eq!(
            open(&v2, &[]).unwrap_err(),
            "PKCS#12: PFX version 2, where 3 was expected"
        );
        let auth_safe = seq(&[]);
        let pbmac1 = seq(&[
            &seq(&[&seq(&[&id(oid::PBMAC1)]), &octets(&[0; 32])]),
            &octets(&[1]),
            &int(1),
        ]);
        let data = seq(&[
            &int(3),
            &seq(&[&id(oid::DATA), &explicit(&octets(&auth_safe))]),
            &pbmac1,
        ]);
        assert_eq!(
            open(&data, &[]).unwrap_err(),
            "PKCS#12: MAC data: unsupported MAC algorithm PBMAC1 (RFC 9579)"
        );
        let err = open(b"\xfe\xed\xfe\xed", &[]).unwrap_err();
        assert!(err.starts_with("PKCS#12: PFX: "), "{err}");
        assert!(open(&[], &[]).is_err());
    }

    /// The fuzz seeds: real files from `openssl pkcs12 -export` (fuzz/seeds/pkcs12/make.sh),
    /// and the aliases of their two certificates (leaf, CA). Without a key, OpenSSL gives
    /// the `-caname` to the first certificate and no name to the second.
    const SEEDS: [(&str, &[u8], [&str; 2]); 4] = [
        (
            "legacy",
            include_bytes!("../../fuzz/seeds/pkcs12/legacy-iter1.p12"),
            ["leaf", "ca"],
        ),
        (
            "modern",
            include_bytes!("../../fuzz/seeds/pkcs12/modern-iter1.p12"),
            ["leaf", "ca"],
        ),
        (
            "plain",
            include_bytes!("../../fuzz/seeds/pkcs12/plain-nomac.p12"),
            ["ca", ""],
        ),
        (
            "aes128",
            include_bytes!("../../fuzz/seeds/pkcs12/aes128-nomac-iter1.p12"),
            ["ca", ""],
        ),
    ];

    #[test]
    fn seeds_read_whole() {
        for (name, data, aliases) in SEEDS {
            let opened = open(data, &strings(&["pass"])).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(opened.errors, Vec::<String>::new(), "{name}");
            let found: Vec<&str> = opened.entries.iter().map(|e| e.alias.as_str()).collect();
            assert_eq!(found, aliases, "{name}");
            let (_, leaf) = x509_parser::parse_x509_certificate(&opened.entries[0].der).unwrap();
            assert_eq!(leaf.subject().to_string(), "CN=seed-leaf", "{name}");
        }
    }

    /// The hand-made inputs of fuzz/regressions/pkcs12/ (see the README there).
    #[test]
    fn fuzz_regressions() {
        let read = |data: &[u8]| open(data, &strings(&["pass"]));
        let cut = read(include_bytes!(
            "../../fuzz/regressions/pkcs12/cut-short-bag.p12"
        ));
        assert_eq!(
            cut.unwrap().errors,
            ["bag 1: SEQUENCE of 5 bytes where 1 are left (truncated?)"]
        );
        let deep = read(include_bytes!(
            "../../fuzz/regressions/pkcs12/deep-indefinite.p12"
        ));
        assert_eq!(
            deep.unwrap_err(),
            "PKCS#12: authenticated safe: indefinite lengths nested more than 32 deep"
        );
        let mac = read(include_bytes!(
            "../../fuzz/regressions/pkcs12/mac-1e9-iterations.p12"
        ));
        assert!(mac.unwrap_err().contains("asks for 1000000000"));
    }

    #[test]
    fn cut_short_at_every_length_never_panics() {
        for (name, data, _) in SEEDS {
            for len in 0..data.len() {
                let cut = &data[..len];
                assert!(
                    open(cut, &strings(&["pass"])).is_err(),
                    "{name} cut at {len}"
                );
                let _ = looks_like(cut);
            }
        }
    }

    #[test]
    fn every_byte_flipped_never_panics() {
        for (_, data, _) in SEEDS {
            let mut copy = data.to_vec();
            for i in 0..copy.len() {
                for flip in [0xff, 0x80, 0x01] {
                    copy[i] ^= flip;
                    let _ = open(&copy, &strings(&["pass"]));
                    copy[i] ^= flip;
                }
            }
        }
    }
}
