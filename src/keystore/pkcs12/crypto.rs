//! The cryptography of PKCS#12, all of it from RustCrypto: the PKCS#12 key derivation
//! (RFC 7292 appendix B.2), PBKDF2, HMAC, and CBC decryption with PKCS#7 padding checked.
//! Callers check iteration counts against the caps before calling anything here.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipher, BlockDecryptMut, InnerIvInit, KeyInit};
use hmac::{Mac, SimpleHmac};
use sha1::Sha1;
use sha2::digest::core_api::BlockSizeUser;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// A hash function, for the MAC, its key derivation and PBKDF2's HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-1.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "SHA-1",
            Hash::Sha224 => "SHA-224",
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        }
    }

    /// The length of its output in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// What a PKCS#12 key derivation is for (RFC 7292 B.3): the "diversifier" byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A cipher key.
    Key = 1,
    /// A cipher IV.
    Iv = 2,
    /// A MAC key.
    Mac = 3,
}

/// Fills `out` by the PKCS#12 key derivation: `password` is already the BMPString form
/// (UTF-16 big-endian with two zero bytes at the end, or nothing for no password).
pub fn pkcs12_kdf(
    hash: Hash,
    purpose: Purpose,
    password: &[u8],
    salt: &[u8],
    iterations: u64,
    out: &mut [u8],
) {
    let id = purpose as u8;
    match hash {
        Hash::Sha1 => kdf::<Sha1>(id, password, salt, iterations, out),
        Hash::Sha224 => kdf::<Sha224>(id, password, salt, iterations, out),
        Hash::Sha256 => kdf::<Sha256>(id, password, salt, iterations, out),
        Hash::Sha384 => kdf::<Sha384>(id, password, salt, iterations, out),
        Hash::Sha512 => kdf::<Sha512>(id, password, salt, iterations, out),
    }
}

/// RFC 7292 B.2 for one hash: `v` is its block length, `u` its output length.
fn kdf<D: Digest + BlockSizeUser>(
    id: u8,
    password: &[u8],
    salt: &[u8],
    iterations: u64,
    out: &mut [u8],
) {
    let v = <D as BlockSizeUser>::block_size();
    let u = <D as Digest>::output_size();
    let diversifier = vec![id; v];
    // I = S || P, each its input repeated to a whole number of v-byte blocks.
    let stretch = |src: &[u8]| -> Vec<u8> {
        let len = src.len().div_ceil(v) * v;
        src.iter().copied().cycle().take(len).collect()
    };
    let mut input = stretch(salt);
    input.extend(stretch(password));
    let mut chunks = out.chunks_mut(u).peekable();
    while let Some(chunk) = chunks.next() {
        let mut a = D::new()
            .chain_update(&diversifier)
            .chain_update(&input)
            .finalize();
        for _ in 1..iterations {
            a = D::digest(&a);
        }
        chunk.copy_from_slice(&a[..chunk.len()]);
        if chunks.peek().is_none() {
            break;
        }
        // Each block of I becomes (I_j + B + 1) mod 2^(8v), B being A repeated to v bytes.
        let b: Vec<u8> = a.iter().copied().cycle().take(v).collect();
        for block in input.chunks_mut(v) {
            let mut carry = 1u16;
            for (x, y) in block.iter_mut().zip(&b).rev() {
                let sum = u16::from(*x) + u16::from(*y) + carry;
                *x = sum as u8; // the low byte; the high one carries
                carry = sum >> 8;
            }
        }
    }
}

/// True when the HMAC with `hash` of `data` under `key` is `expected` (compared in
/// constant time).
pub fn hmac_matches(hash: Hash, key: &[u8], data: &[u8], expected: &[u8]) -> bool {
    match hash {
        Hash::Sha1 => hmac_check::<Sha1>(key, data, expected),
        Hash::Sha224 => hmac_check::<Sha224>(key, data, expected),
        Hash::Sha256 => hmac_check::<Sha256>(key, data, expected),
        Hash::Sha384 => hmac_check::<Sha384>(key, data, expected),
        Hash::Sha512 => hmac_check::<Sha512>(key, data, expected),
    }
}

/// [`hmac_matches`] for one hash.
fn hmac_check<D: Digest + BlockSizeUser>(key: &[u8], data: &[u8], expected: &[u8]) -> bool {
    // HMAC takes keys of any length: new_from_slice cannot fail, but a failure would only
    // mean "does not match".
    let Ok(mut mac) = <SimpleHmac<D> as Mac>::new_from_slice(key) else {
        return false;
    };
    mac.update(data);
    mac.verify_slice(expected).is_ok()
}

/// Fills `out` by PBKDF2 with HMAC over `prf`.
pub fn pbkdf2(prf: Hash, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    match prf {
        Hash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, out),
        Hash::Sha224 => pbkdf2::pbkdf2_hmac::<Sha224>(password, salt, iterations, out),
        Hash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, out),
        Hash::Sha384 => pbkdf2::pbkdf2_hmac::<Sha384>(password, salt, iterations, out),
        Hash::Sha512 => pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, out),
    }
}

/// A block cipher in CBC mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// RC2 with a 40-bit key (and 40 effective bits).
    Rc2_40,
    /// RC2 with a 128-bit key.
    Rc2_128,
    /// Triple DES with two keys (K1, K2, K1).
    DesEde2,
    /// Triple DES with three keys.
    DesEde3,
    /// AES-128.
    Aes128,
    /// AES-192.
    Aes192,
    /// AES-256.
    Aes256,
}

impl Cipher {
    /// The key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Cipher::Rc2_40 => 5,
            Cipher::Rc2_128 | Cipher::DesEde2 | Cipher::Aes128 => 16,
            Cipher::DesEde3 | Cipher::Aes192 => 24,
            Cipher::Aes256 => 32,
        }
    }

    /// The block length in bytes, which is also the IV's.
    pub fn block_len(self) -> usize {
        match self {
            Cipher::Rc2_40 | Cipher::Rc2_128 | Cipher::DesEde2 | Cipher::DesEde3 => 8,
            Cipher::Aes128 | Cipher::Aes192 | Cipher::Aes256 => 16,
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Rc2_40 => "RC2-40-CBC",
            Cipher::Rc2_128 => "RC2-128-CBC",
            Cipher::DesEde2 => "2-key 3DES-CBC",
            Cipher::DesEde3 => "3DES-CBC",
            Cipher::Aes128 => "AES-128-CBC",
            Cipher::Aes192 => "AES-192-CBC",
            Cipher::Aes256 => "AES-256-CBC",
        }
    }

    /// Decrypts `data` and strips its PKCS#7 padding. A padding that does not check out is
    /// what a wrong key most often gives.
    pub fn decrypt(self, key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        if key.len() != self.key_len() || iv.len() != self.block_len() {
            return Err(format!(
                "{}: a key of {} bytes and an IV of {} where {} and {} are needed",
                self.name(),
                key.len(),
                iv.len(),
                self.key_len(),
                self.block_len()
            ));
        }
        if data.is_empty() || data.len() % self.block_len() != 0 {
            return Err(format!(
                "{}: {} bytes of ciphertext, not a whole number of {}-byte blocks",
                self.name(),
                data.len(),
                self.block_len()
            ));
        }
        let plain = match self {
            Cipher::Rc2_40 => cbc_decrypt(rc2::Rc2::new_with_eff_key_len(key, 40), iv, data),
            Cipher::Rc2_128 => cbc_decrypt(rc2::Rc2::new_with_eff_key_len(key, 128), iv, data),
            Cipher::DesEde2 => cbc_decrypt(keyed::<des::TdesEde2>(key)?, iv, data),
            Cipher::DesEde3 => cbc_decrypt(keyed::<des::TdesEde3>(key)?, iv, data),
            Cipher::Aes128 => cbc_decrypt(keyed::<aes::Aes128>(key)?, iv, data),
            Cipher::Aes192 => cbc_decrypt(keyed::<aes::Aes192>(key)?, iv, data),
            Cipher::Aes256 => cbc_decrypt(keyed::<aes::Aes256>(key)?, iv, data),
        };
        plain.ok_or_else(|| format!("{}: bad padding after decryption", self.name()))
    }
}

/// A cipher keyed with `key`, whose length was checked by the caller.
fn keyed<C: KeyInit>(key: &[u8]) -> Result<C, String> {
    C::new_from_slice(key).map_err(|_| format!("a key of {} bytes refused", key.len()))
}

/// CBC decryption with PKCS#7 padding; `None` when the IV length or the padding is wrong.
fn cbc_decrypt<C: BlockCipher + BlockDecryptMut>(
    cipher: C,
    iv: &[u8],
    data: &[u8],
) -> Option<Vec<u8>> {
    let decryptor = cbc::Decryptor::<C>::inner_iv_slice_init(cipher, iv).ok()?;
    let mut buf = data.to_vec();
    let len = decryptor.decrypt_padded_mut::<Pkcs7>(&mut buf).ok()?.len();
    buf.truncate(len);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn derive(
        hash: Hash,
        purpose: Purpose,
        pass: &str,
        salt: &str,
        iter: u64,
        n: usize,
    ) -> Vec<u8> {
        let mut out = vec![0; n];
        pkcs12_kdf(hash, purpose, &hex(pass), &hex(salt), iter, &mut out);
        out
    }

    /// Expected values from OpenSSL 3.0: `openssl kdf -keylen N -kdfopt digest:SHA1
    /// -kdfopt hexpass:PASS -kdfopt hexsalt:SALT -kdfopt iter:ITER -kdfopt id:ID PKCS12KDF`.
    #[test]
    fn pkcs12_kdf_matches_openssl() {
        // "sesame" as a BMPString.
        let sesame = "0073006500730061006d00650000";
        let salt = "0a58cf64530d823f";
        let cases = [
            (
                Purpose::Key,
                "ADABD656FDF48F697D004BAB67F65555673852608F477F71",
            ),
            (
                Purpose::Iv,
                "A2276083A799D85E7C61BB6283F46DCABD83634B70DD1C70",
            ),
            (
                Purpose::Mac,
                "4DC2E1BF010065E90934EBC19BE8773DC78492EA4424BC65",
            ),
        ];
        for (purpose, want) in cases {
            assert_eq!(
                derive(Hash::Sha1, purpose, sesame, salt, 1, 24),
                hex(want),
                "{purpose:?}"
            );
        }
        assert_eq!(
            derive(Hash::Sha1, Purpose::Key, sesame, salt, 1000, 48),
            hex(
                "21C58C406E8F4FFD23DE1CE3467A1086B53F550E7001700F39C3ED040DCB225A\
                 8B1A088E61A5C9980F5459C25926AFC2"
            )
        );
        // "pass", SHA-256, 2048 iterations: what `openssl pkcs12 -export` uses for its MAC.
        assert_eq!(
            derive(
                Hash::Sha256,
                Purpose::Mac,
                "0070006100730073",
                "0102030405060708",
                2048,
                32
            ),
            hex("14899F5A33924BED47CAC4ED8521E6740594B4C2C56B851EF3355F0B5BEAB6EE")
        );
        // SHA-512 (128-byte blocks), the empty BMPString, a salt that is not a whole block.
        assert_eq!(
            derive(
                Hash::Sha512,
                Purpose::Key,
                "0000",
                "01020304050607080910",
                3,
                64
            ),
            hex(
                "2AE177241B9614B1BBF718476B12494211C51EAF0222CE3E0F0269005BB8C425\
                 395444C4D0F8607FCCCBAE86ABCFABCE1C6B9F5600DE00AFDEDF98BF3569BCA8"
            )
        );
        // No password at all: zero bytes of password, not the empty BMPString.
        assert_eq!(
            derive(Hash::Sha1, Purpose::Mac, "", "0102030405060708", 5, 20),
            hex("CAAB4E3B7DEFDE3E4D2BDABF5B50FAB1AA0EF076")
        );
    }

    #[test]
    fn decryption_checks_lengths_and_padding() {
        let key = [7u8; 32];
        let iv = [1u8; 16];
        let err = Cipher::Aes256.decrypt(&key, &iv, &[0; 15]).unwrap_err();
        assert!(err.contains("15 bytes of ciphertext"), "{err}");
        let err = Cipher::Aes256.decrypt(&key, &iv, &[]).unwrap_err();
        assert!(err.contains("0 bytes"), "{err}");
        let err = Cipher::Aes256
            .decrypt(&key[..16], &iv, &[0; 16])
            .unwrap_err();
        assert!(err.contains("key of 16 bytes"), "{err}");
        // Random-looking plaintext almost never ends in valid padding; this one does not.
        let err = Cipher::Aes256.decrypt(&key, &iv, &[0; 32]).unwrap_err();
        assert!(err.contains("bad padding"), "{err}");
        for cipher in [
            Cipher::Rc2_40,
            Cipher::Rc2_128,
            Cipher::DesEde2,
            Cipher::DesEde3,
        ] {
            let key = vec![3u8; cipher.key_len()];
            assert!(cipher.decrypt(&key, &[0; 8], &[0; 16]).is_err());
        }
    }

    /// Known answers from OpenSSL: `printf 'hello, pkcs12' | openssl enc -provider legacy
    /// -provider default -CIPHER -K KEY -iv IV | xxd -p`.
    #[test]
    fn cbc_known_answers() {
        let cases = [
            (
                Cipher::Aes128,
                "aes-128-cbc",
                "000102030405060708090a0b0c0d0e0f",
                "0f0e0d0c0b0a09080706050403020100",
                "c6921b6aeaf0e9f8a9464020293095d2",
            ),
            (
                Cipher::Rc2_40,
                "rc2-40-cbc",
                "0102030405",
                "0001020304050607",
                "d5ffe003680cd56365dbd5453e0be2bd",
            ),
            (
                Cipher::Rc2_128,
                "rc2-cbc",
                "000102030405060708090a0b0c0d0e0f",
                "0001020304050607",
                "29d97a63ae1d1d33d97095aed8858e7e",
            ),
            (
                Cipher::DesEde3,
                "des-ede3-cbc",
                "000102030405060708090a0b0c0d0e0f1011121314151617",
                "0001020304050607",
                "25b2749191fa8ce12c881c8c07586735",
            ),
            (
                Cipher::DesEde2,
                "des-ede-cbc",
                "000102030405060708090a0b0c0d0e0f",
                "0001020304050607",
                "b300e506cc50e435487b20fe4a65d600",
            ),
        ];
        for (cipher, name, key, iv, ct) in cases {
            let plain = cipher.decrypt(&hex(key), &hex(iv), &hex(ct));
            assert_eq!(plain.as_deref(), Ok(&b"hello, pkcs12"[..]), "{name}");
        }
    }
}
