//! Label sets: which labels a certificate gets, `-l` filtering, path trimming and escaping.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::facts;
use crate::model::{CertInfo, CrlInfo, Name, Position, Series};

/// One label pair before filtering.
pub type Pair = (Cow<'static, str>, String);

/// How series and their label sets are built: the `-l` allow-list,
/// `--trim-path-components`, `--expose-cert-info` and `--leaf-only`.
#[derive(Debug, Default)]
pub struct LabelConfig {
    /// Label names kept; `None` keeps all.
    pub allow: Option<Vec<String>>,
    /// Leading path components dropped from `filepath`.
    pub trim: usize,
    /// Render each certificate's facts for `x509_cert_info`.
    pub facts: bool,
    /// Keep only the leaf certificates of an item that has any.
    pub leaf_only: bool,
    /// Issuer label sets, shared by every certificate of the same issuer (a few CAs sign
    /// most certificates: this saves about a hundred bytes a certificate).
    pub issuers: Mutex<HashSet<Arc<str>>>,
}

impl LabelConfig {
    /// `filename` and `filepath` of a file origin.
    pub fn file_pairs(&self, path: &str) -> Vec<Pair> {
        self.with_file_values(path, |filename, filepath| {
            vec![
                ("filename".into(), filename.to_string()),
                ("filepath".into(), filepath.to_string()),
            ]
        })
    }

    /// The labels of a file origin, as [`Self::origin`] renders [`Self::file_pairs`], without
    /// the pairs.
    pub fn file_origin(&self, path: &str) -> Box<str> {
        self.with_file_values(path, |filename, filepath| {
            in_scratch(|out| {
                self.push(out, "filename", filename);
                self.push(out, "filepath", filepath);
                Box::from(out.as_str())
            })
        })
    }

    /// Calls `f` with the `filename` and `filepath` values of a file origin.
    fn with_file_values<R>(&self, path: &str, f: impl FnOnce(&str, &str) -> R) -> R {
        let clean = clean_path(path);
        let filename = clean.rsplit('/').next().unwrap_or_default();
        f(filename, &trim_components(&clean, self.trim))
    }

    /// An origin's labels (an [`crate::model::Item`]'s), in the order given.
    pub fn origin(&self, pairs: &[Pair]) -> Box<str> {
        in_scratch(|out| {
            for (name, value) in pairs {
                self.push(out, name, value);
            }
            Box::from(out.as_str())
        })
    }

    /// Whether certificates must be parsed with their [facts](crate::model::Facts): for
    /// `x509_cert_info`, or to tell leaves for `--leaf-only`.
    pub fn wants_facts(&self) -> bool {
        self.facts || self.leaf_only
    }

    /// Which certificates of one item become series, by their index, with their place in
    /// the chain: all of them, or with `--leaf-only` those that issue nothing (leaf and
    /// self-signed) when there is any; an item without one (a CA bundle, a trust store)
    /// keeps every certificate, so that the flag never hides a file. Without either flag
    /// the certificates were read without facts: all are chosen, and their position, which
    /// nothing renders, is given as `Leaf`.
    pub fn chosen(&self, certs: &[CertInfo]) -> Vec<(usize, Position)> {
        if !self.wants_facts() {
            return (0..certs.len()).map(|i| (i, Position::Leaf)).collect();
        }
        let positions = facts::positions(certs);
        let any_leaf = positions.iter().any(|p| p.is_leaf());
        positions
            .into_iter()
            .enumerate()
            .filter(|(_, position)| !self.leaf_only || !any_leaf || position.is_leaf())
            .collect()
    }

    /// The series of one certificate: `extra` pairs (a kubeconfig entry's kind and key),
    /// its keystore alias, the serial number and the subject; the issuer's labels apart,
    /// shared; with `--expose-cert-info` its facts at `position`. Each is written in a
    /// buffer kept by the thread, then copied once at its size.
    pub fn series(&self, extra: &[Pair], cert: &CertInfo, position: Position) -> Series {
        in_scratch(|out| {
            for (name, value) in extra {
                self.push(out, name, value);
            }
            self.push(out, "keystore_alias", &cert.alias);
            self.push(out, "serial_number", &cert.serial);
            self.push_name(out, &SUBJECT, &cert.subject);
            let labels = Box::from(out.as_str());
            out.clear();
            let facts = match self.facts {
                true => {
                    push_facts(out, cert, position);
                    let facts = Box::from(out.as_str());
                    out.clear();
                    facts
                }
                false => Box::default(),
            };
            self.push_name(out, &ISSUER, &cert.issuer);
            Series {
                labels,
                issuer: self.intern(out),
                not_before: cert.not_before,
                not_after: cert.not_after,
                facts,
                fingerprint: cert.fingerprint,
                crl: false,
            }
        })
    }

    /// The series of one CRL: `extra` pairs as for [`Self::series`] and its number; its
    /// issuer's labels apart, shared with the certificates of the same issuer.
    pub fn crl_series(&self, extra: &[Pair], crl: &CrlInfo) -> Series {
        in_scratch(|out| {
            for (name, value) in extra {
                self.push(out, name, value);
            }
            self.push(out, "crl_number", &crl.number);
            let labels = Box::from(out.as_str());
            out.clear();
            self.push_name(out, &ISSUER, &crl.issuer);
            Series {
                labels,
                issuer: self.intern(out),
                not_before: crl.this_update,
                not_after: crl.next_update,
                facts: Box::default(),
                fingerprint: crl.fingerprint,
                crl: true,
            }
        })
    }

    /// Every series of what was parsed: the [chosen](Self::chosen) certificates then the
    /// CRLs, each with `extra` pairs.
    pub fn all_series(&self, extra: &[Pair], parsed: &crate::pem::Parsed) -> Vec<Series> {
        let chosen = self.chosen(&parsed.certs);
        let mut series = Vec::with_capacity(chosen.len() + parsed.crls.len());
        series.extend(
            chosen
                .into_iter()
                .map(|(i, position)| self.series(extra, &parsed.certs[i], position)),
        );
        series.extend(parsed.crls.iter().map(|crl| self.crl_series(extra, crl)));
        series
    }

    /// Forgets the issuer label sets no certificate uses any more.
    pub fn prune(&self) {
        let mut issuers = self.issuers.lock().unwrap_or_else(|p| p.into_inner());
        issuers.retain(|issuer| Arc::strong_count(issuer) > 1);
    }

    fn intern(&self, text: &str) -> Arc<str> {
        let mut issuers = self.issuers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = issuers.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = text.into();
        issuers.insert(Arc::clone(&shared));
        shared
    }

    fn push_name(&self, out: &mut String, names: &[&str; 6], dn: &Name) {
        for (name, value) in names.iter().zip(dn.values()) {
            self.push(out, name, value);
        }
    }

    /// Appends `name="value"` unless the value is empty or `-l` leaves the name out.
    fn push(&self, out: &mut String, name: &str, value: &str) {
        let allowed = self
            .allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|a| a == name));
        if allowed {
            push_pair(out, name, value);
        }
    }
}

/// Appends `name="value"`, after a comma if `out` has pairs already, unless the value is
/// empty.
fn push_pair(out: &mut String, name: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    escape_into(out, value);
    out.push('"');
}

/// The fact labels of a certificate, in a fixed order; `-l` does not apply (they are what
/// `x509_cert_info` is for). Empty values are left out, as everywhere.
fn push_facts(out: &mut String, cert: &CertInfo, position: Position) {
    let facts = &cert.facts;
    let size = match facts.key_size {
        0 => String::new(),
        bits => bits.to_string(),
    };
    let pairs = [
        ("key_algorithm", &*facts.key_algorithm),
        ("key_size", &size),
        ("key_curve", &facts.key_curve),
        ("signature_algorithm", &facts.signature_algorithm),
        ("ca", if facts.ca { "true" } else { "false" }),
        ("chain_position", position.name()),
        ("subject_alt_names", &facts.sans),
    ];
    for (name, value) in pairs {
        push_pair(out, name, value);
    }
}

thread_local! {
    /// Where label sets are written before they are copied out at their size.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A thread keeps its label buffer up to this capacity: one certificate with a name of
/// megabytes does not leave each parsing thread holding megabytes.
const KEPT_SCRATCH: usize = 64 * 1024;

/// Runs `f` on the thread's label buffer, emptied, and gives back what it returns.
fn in_scratch<R>(f: impl FnOnce(&mut String) -> R) -> R {
    SCRATCH.with_borrow_mut(|out| {
        out.clear();
        let result = f(out);
        if out.capacity() > KEPT_SCRATCH {
            *out = String::new();
        }
        result
    })
}

const ISSUER: [&str; 6] = [
    "issuer_C",
    "issuer_ST",
    "issuer_L",
    "issuer_O",
    "issuer_OU",
    "issuer_CN",
];
const SUBJECT: [&str; 6] = [
    "subject_C",
    "subject_ST",
    "subject_L",
    "subject_O",
    "subject_OU",
    "subject_CN",
];

/// Escapes a label value for the text format: backslash, double quote and newline.
pub fn escape_into(out: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Splits label pairs rendered as [`LabelConfig`] writes them (`a="x",b="y\\"z"`, without
/// braces) back into names and unescaped values, in order; `None` when the text is not in
/// that form. The inverse of [`escape_into`] over a joined label set.
pub fn parse_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"")?;
        if name.is_empty() || name.contains([',', '"', '\\']) {
            return None;
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    _ => return None,
                },
                (_, c) => value.push(c),
            }
        };
        pairs.push((name.to_string(), value));
        rest = &after[end + 1..];
        if !rest.is_empty() {
            rest = rest.strip_prefix(',').filter(|r| !r.is_empty())?;
        }
    }
    Some(pairs)
}

/// Lexical clean of a slash-separated path, as Go's `path.Clean`; a clean path (the usual
/// case) is handed back as it is.
pub fn clean_path(path: &str) -> Cow<'_, str> {
    let relative = path.strip_prefix('/').unwrap_or(path);
    if !relative.is_empty()
        && relative
            .split('/')
            .all(|part| !matches!(part, "" | "." | ".."))
    {
        return Cow::Borrowed(path);
    }
    if path.is_empty() {
        return Cow::Borrowed(".");
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    Cow::Owned(match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    })
}

/// Drops `n` leading components as v3 does (`/tmp/test.pem` with 1 → `/test.pem`,
/// `a/b/c.pem` with 1 → `b/c.pem`), but always keeps the file name.
pub fn trim_components(path: &str, n: usize) -> Cow<'_, str> {
    if n == 0 {
        return Cow::Borrowed(path);
    }
    let (prefix, rest) = match path.strip_prefix('/') {
        Some(rest) => ("/", rest),
        None => ("", path),
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let keep = n.min(parts.len().saturating_sub(1));
    Cow::Owned(format!("{prefix}{}", parts[keep..].join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_matches_v3_and_never_loses_the_file_name() {
        assert_eq!(trim_components("/tmp/test.pem", 1), "/test.pem");
        assert_eq!(trim_components("a/b/c.pem", 1), "b/c.pem");
        assert_eq!(trim_components("/a/b/c.pem", 0), "/a/b/c.pem");
        assert_eq!(trim_components("/a/b/c.pem", 2), "/c.pem");
        assert_eq!(trim_components("/a/b/c.pem", 99), "/c.pem");
        assert_eq!(trim_components("c.pem", 5), "c.pem");
    }

    #[test]
    fn paths_are_cleaned_like_go() {
        assert_eq!(clean_path("/a//b/./c.pem"), "/a/b/c.pem");
        assert_eq!(clean_path("../test/x/../basic.pem"), "../test/basic.pem");
        assert_eq!(clean_path("/../x"), "/x");
        assert_eq!(clean_path("./x"), "x");
        assert_eq!(clean_path("/a/b/"), "/a/b");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path(""), ".");
        assert_eq!(clean_path("a/.hidden/..b"), "a/.hidden/..b");
        assert!(matches!(clean_path("/a/b.pem"), Cow::Borrowed(_)));
    }

    #[test]
    fn values_are_escaped_filtered_and_empty_ones_dropped() {
        let config = LabelConfig::default();
        let pairs: Vec<Pair> = vec![
            ("z".into(), "a\"b\\c\nd".to_string()),
            ("a".into(), "1".to_string()),
            ("m".into(), String::new()),
        ];
        assert_eq!(&*config.origin(&pairs), "z=\"a\\\"b\\\\c\\nd\",a=\"1\"");
        let trimmed = LabelConfig {
            trim: 1,
            ..Default::default()
        };
        for path in ["/a//b/c \"x\".pem", "rel/./d.pem", "e.pem"] {
            for config in [&config, &trimmed] {
                assert_eq!(
                    config.file_origin(path),
                    config.origin(&config.file_pairs(path)),
                    "{path}"
                );
            }
        }
        let only_z = LabelConfig {
            allow: Some(vec!["z".into()]),
            trim: 0,
            ..Default::default()
        };
        assert_eq!(&*only_z.origin(&pairs), "z=\"a\\\"b\\\\c\\nd\"");
        let none = LabelConfig {
            allow: Some(vec![]),
            trim: 0,
            ..Default::default()
        };
        assert_eq!(&*none.origin(&pairs), "");
    }

    #[test]
    fn rendered_pairs_parse_back_to_their_values() {
        let config = LabelConfig::default();
        let pairs: Vec<Pair> = vec![
            ("z".into(), "a\"b\\c\nd,e=\"f".to_string()),
            ("a".into(), "1".to_string()),
            ("u".into(), "été \\n".to_string()),
        ];
        let parsed = parse_pairs(&config.origin(&pairs)).unwrap();
        let want: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        assert_eq!(parsed, want);
        assert_eq!(parse_pairs(""), Some(vec![]));
        for bad in [
            "a",
            "a=\"x",
            "a=\"x\",",
            "a=\"x\"b=\"y\"",
            "=\"x\"",
            "a=\"\\t\"",
            "a=\"x\\\"",
        ] {
            assert_eq!(parse_pairs(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_huge_label_set_is_not_kept_by_the_thread() {
        let config = LabelConfig::default();
        let huge = "x".repeat(4 * KEPT_SCRATCH);
        let labels = config.origin(&[("a".into(), huge.clone())]);
        assert_eq!(labels.len(), huge.len() + 4);
        assert!(SCRATCH.with_borrow(|out| out.capacity()) <= KEPT_SCRATCH);
        config.origin(&[("a".into(), "small".into())]);
        assert!(
            SCRATCH.with_borrow(|out| out.capacity()) > 0,
            "a small one is kept"
        );
    }

    #[test]
    fn certificate_labels_in_a_fixed_order() {
        let mut cert = CertInfo {
            serial: "-5".into(),
            subject: Name::new(["", "", "", "Org", "", "leaf"]),
            issuer: Name::new(["FR", "", "", "", "", "CA"]),
            not_before: 1,
            not_after: 2,
            fingerprint: 3,
            alias: "".into(),
            facts: Default::default(),
        };
        let config = LabelConfig::default();
        let s = config.series(
            &[("embedded_kind".into(), "user".into())],
            &cert,
            Position::Leaf,
        );
        assert_eq!(&*s.issuer, "issuer_C=\"FR\",issuer_CN=\"CA\"");
        let again = config.series(&[], &cert, Position::Leaf);
        assert!(
            Arc::ptr_eq(&s.issuer, &again.issuer),
            "one issuer string, shared"
        );
        drop(again);
        config.prune();
        assert_eq!(config.issuers.lock().unwrap().len(), 1, "still used by s");
        assert_eq!(
            &*s.labels,
            "embedded_kind=\"user\",serial_number=\"-5\",subject_O=\"Org\",subject_CN=\"leaf\""
        );
        cert.serial.clear();
        let only = LabelConfig {
            allow: Some(vec!["subject_CN".into()]),
            trim: 0,
            ..Default::default()
        };
        assert_eq!(
            &*only.series(&[], &cert, Position::Leaf).labels,
            "subject_CN=\"leaf\""
        );
    }
}
