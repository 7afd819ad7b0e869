//! Shared vocabulary: the types every module passes around. No logic lives here beyond
//! their own accessors.

use std::borrow::Cow;
use std::sync::Arc;

/// The fields of one parsed certificate that become labels and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number in decimal, with a leading `-` for negative serials.
    pub serial: String,
    /// Subject distinguished name.
    pub subject: Name,
    /// Issuer distinguished name.
    pub issuer: Name,
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
    /// First four bytes of the SHA-256 of the DER, used as a `discriminator`.
    pub fingerprint: u32,
    /// The alias of the keystore entry it came from; empty when it came from no keystore
    /// or the entry has none.
    pub alias: Box<str>,
    /// What it is: key, signature, CA, names (see [`crate::facts`]).
    pub facts: Facts,
}

/// What a certificate is beyond its names and dates, for `x509_cert_info`. Empty strings
/// and zeros mean unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `rsa`, `ecdsa`, `ed25519`, … or the dotted OID.
    pub key_algorithm: Cow<'static, str>,
    /// Key size in bits; 0 when unknown.
    pub key_size: u32,
    /// The named curve of an EC key (`P-256`, or its OID); empty for other keys.
    pub key_curve: Cow<'static, str>,
    /// `sha256-rsa`, `ecdsa-sha384`, `ed25519`, … or the dotted OID.
    pub signature_algorithm: Cow<'static, str>,
    /// basicConstraints says it is a CA.
    pub ca: bool,
    /// A hash of the subject's DER, to find who issued whom in one file.
    pub subject_id: u64,
    /// A hash of the issuer's DER, the same way.
    pub issuer_id: u64,
    /// The subject alternative names, `DNS:a,IP:10.0.0.1,…`, capped
    /// ([`crate::facts::MAX_SANS_BYTES`]).
    pub sans: String,
}

/// Where a certificate sits in the chain of its file or Secret key (see
/// [`crate::facts::positions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Issues nothing: an end-entity certificate.
    Leaf,
    /// Not self-issued, and a CA or the issuer of another certificate beside it.
    Intermediate,
    /// Self-issued, and a CA or the issuer of another certificate beside it.
    Root,
    /// Self-issued and issuing nothing.
    SelfSigned,
}

impl Position {
    /// The `chain_position` label value.
    pub fn name(self) -> &'static str {
        match self {
            Position::Leaf => "leaf",
            Position::Intermediate => "intermediate",
            Position::Root => "root",
            Position::SelfSigned => "self-signed",
        }
    }

    /// What `--leaf-only` keeps: the certificates that issue nothing.
    pub fn is_leaf(self) -> bool {
        matches!(self, Position::Leaf | Position::SelfSigned)
    }
}

/// The fields of one parsed certificate revocation list that become labels and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// Issuer distinguished name.
    pub issuer: Name,
    /// The cRLNumber extension in decimal; empty when absent.
    pub number: String,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds; [`NO_NEXT_UPDATE`] when the CRL gives none.
    pub next_update: i64,
    /// As [`CertInfo::fingerprint`].
    pub fingerprint: u32,
}

/// The `next_update` of a CRL that gives none: it never goes stale.
pub const NO_NEXT_UPDATE: i64 = i64::MAX;

/// The distinguished-name attributes exported as labels, in label order: C, ST, L, O, OU
/// (each its first value) and CN (its last value, as Go's `pkix.Name` keeps them). An empty
/// value means absent. The six values share one string: a certificate's names cost two
/// allocations, not twelve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Name {
    /// The values one after another.
    text: String,
    /// Where each value ends in `text`.
    ends: [u32; 6],
}

impl Name {
    /// A name of these six values, in label order.
    pub fn new(values: [&str; 6]) -> Self {
        let mut name = Name::default();
        for (i, value) in values.into_iter().enumerate() {
            name.push(i, |text| text.push_str(value));
        }
        name
    }

    /// An empty name with room for `bytes` of values.
    pub fn with_capacity(bytes: usize) -> Self {
        Name {
            text: String::with_capacity(bytes),
            ends: [0; 6],
        }
    }

    /// Appends the value at `index` (0 to 5, each once and in order) by `write`, which
    /// appends it to the string it is given.
    pub fn push(&mut self, index: usize, write: impl FnOnce(&mut String)) {
        write(&mut self.text);
        let end = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        self.ends[index..].fill(end);
    }

    /// The six values, in label order.
    pub fn values(&self) -> [&str; 6] {
        let mut start = 0;
        self.ends.map(|end| {
            let end = end as usize;
            let value = self.text.get(start..end).unwrap_or_default();
            start = end;
            value
        })
    }

    /// The common name.
    pub fn cn(&self) -> &str {
        self.values()[5]
    }
}

/// One exported certificate, or CRL: its own labels and its two dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// The certificate's label pairs (for kubeconfigs the embedded kind and key, then the
    /// serial and the subject), escaped and joined (`a="x",b="y"`), without braces. The
    /// origin's labels are its item's.
    pub labels: Box<str>,
    /// The issuer's label pairs, rendered the same way and shared by every certificate of
    /// the same issuer.
    pub issuer: Arc<str>,
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
    /// The fact labels of `x509_cert_info`, rendered like `labels`; empty unless
    /// `--expose-cert-info`, and for CRLs.
    pub facts: Box<str>,
    /// See [`CertInfo::fingerprint`].
    pub fingerprint: u32,
    /// A CRL (`x509_crl_*`): `not_before` is its thisUpdate, `not_after` its nextUpdate
    /// ([`NO_NEXT_UPDATE`] when none), and its labels its number.
    pub crl: bool,
}

/// One thing a source reads (a file, a kubeconfig, a Secret key) and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The origin's label pairs (`filename`, `filepath`; `secret_namespace`, …), rendered
    /// like [`Series::labels`]: every series of the item starts with them, and they alone
    /// label its `x509_cert_error`.
    pub labels: Box<str>,
    /// The certificates found.
    pub series: Box<[Series]>,
    /// One message per read failure, each reading "what: where: why".
    pub errors: Box<[String]>,
}

/// Every item of a source after one refresh, shared whole: a pass that changed nothing hands
/// on the previous pass's slice, so that it costs nothing per item to send, compare or drop.
pub type Items = Arc<[Arc<Item>]>;

/// The whole truth of one source after one refresh.
#[derive(Debug, Clone)]
pub struct Report {
    /// Index of the source, in command-line order.
    pub source: usize,
    /// Every item the source holds now; what is absent has gone.
    pub items: Items,
    /// Failures that belong to no item (a glob that matched nothing, an unreadable directory).
    pub errors: Vec<String>,
    /// False when the items are exactly those of the previous report.
    pub changed: bool,
    /// The source reached everything it covers; `/readyz` waits for one such report.
    pub ready: bool,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A certificate's fields with dull values, for tests to override.
    pub(crate) fn cert_info() -> CertInfo {
        CertInfo {
            serial: "1".to_string(),
            subject: Name::new(["", "", "", "", "", "subject"]),
            issuer: Name::new(["", "", "", "", "", "issuer"]),
            not_before: 0,
            not_after: 1,
            fingerprint: 0,
            alias: Box::default(),
            facts: Facts::default(),
        }
    }
}
