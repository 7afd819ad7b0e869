//! Keystores: PKCS#12 files and Java keystores (JKS, JCEKS), told apart by their content,
//! never by their name. Only certificates are read: private keys and secret keys are
//! skipped and never decrypted. Never panics on hostile input; every failure is a message.

pub mod jks;
pub mod passwords;
pub mod pkcs12;

/// One certificate found in a keystore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The alias (JKS, JCEKS) or friendly name (PKCS#12) of the entry holding it; empty
    /// when the keystore gives none.
    pub alias: String,
    /// The certificate, DER-encoded.
    pub der: Vec<u8>,
}

/// What one keystore yielded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The certificates, in keystore order (a private-key entry's chain leaf first).
    pub entries: Vec<Entry>,
    /// One message per entry that could not be read while the others were ("entry 3
    /// (alias \"x\"): ..."). A failure of the whole keystore is an `Err` instead.
    pub errors: Vec<String>,
}

/// The keystore formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PKCS#12 (`.p12`, `.pfx`), RFC 7292.
    Pkcs12,
    /// Sun's JKS, magic `FEEDFEED`.
    Jks,
    /// Sun's JCEKS, magic `CECECECE`.
    Jceks,
}

impl Format {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pkcs12 => "PKCS#12",
            Format::Jks => "JKS",
            Format::Jceks => "JCEKS",
        }
    }
}

/// The keystore format of `data`, judged by its first bytes; `None` for anything else.
pub fn detect(data: &[u8]) -> Option<Format> {
    match data {
        [0xFE, 0xED, 0xFE, 0xED, ..] => Some(Format::Jks),
        [0xCE, 0xCE, 0xCE, 0xCE, ..] => Some(Format::Jceks),
        _ if pkcs12::looks_like(data) => Some(Format::Pkcs12),
        _ => None,
    }
}

/// Reads every certificate of a keystore of `format`. `passwords` are tried in order, then
/// the empty password; a store that needs none reads without one. A failure of the whole
/// store (a wrong password, a broken PKCS#12 structure, more key-derivation work asked for
/// than [`MAX_ITERATIONS`] allow) is an `Err` whose message says why ("wrong password"); a
/// Java keystore cut short keeps the certificates before the cut, with an error.
pub fn open(format: Format, data: &[u8], passwords: &[String]) -> Result<Opened, String> {
    match format {
        Format::Pkcs12 => pkcs12::open(data, passwords),
        Format::Jks | Format::Jceks => jks::open(data, passwords),
    }
}

/// The most iterations one key derivation may ask for: OpenSSL writes 2,048, Java 10,000
/// to 50,000 (older releases), Windows 2,000. A hostile file asking for 10⁹ is refused
/// rather than computed for minutes.
pub const MAX_ITERATIONS: u64 = 1_000_000;

/// The most iterations all the derivations of one keystore may ask for together, every
/// password tried counted: a file of many encrypted parts cannot multiply the cost.
pub const MAX_TOTAL_ITERATIONS: u64 = 4_000_000;
