//! Label sets: which labels a certificate gets, `-l` filtering, path trimming and escaping.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::model::{CertInfo, Name, Series};

/// One label pair before filtering.
pub type Pair = (Cow<'static, str>, String);

/// How label sets are built: the `-l` allow-list and `--trim-path-components`.
#[derive(Debug, Clone, Default)]
pub struct LabelConfig {
    /// Label names kept; `None` keeps all.
    pub allow: Option<Vec<String>>,
    /// Leading path components dropped from `filepath`.
    pub trim: usize,
}

impl LabelConfig {
    /// `filename` and `filepath` of a file origin.
    pub fn file_pairs(&self, path: &str) -> Vec<Pair> {
        let clean = clean_path(path);
        let filename = clean.rsplit('/').next().unwrap_or_default().to_string();
        vec![
            ("filename".into(), filename),
            ("filepath".into(), trim_components(&clean, self.trim)),
        ]
    }

    /// The labels of `x509_cert_error` for an item with these origin pairs.
    pub fn error_labels(&self, origin: &[Pair]) -> Box<str> {
        self.render(origin.to_vec())
    }

    /// The series of one certificate found at an origin.
    pub fn series(&self, origin: &[Pair], cert: &CertInfo) -> Series {
        let mut pairs = origin.to_vec();
        pairs.push(("serial_number".into(), cert.serial.clone()));
        name_pairs(&mut pairs, "subject", &cert.subject);
        name_pairs(&mut pairs, "issuer", &cert.issuer);
        Series {
            labels: self.render(pairs),
            not_before: cert.not_before,
            not_after: cert.not_after,
            fingerprint: cert.fingerprint,
        }
    }

    /// Filters, sorts by name, drops empty values and escapes: `a="x",b="y"`.
    fn render(&self, mut pairs: Vec<Pair>) -> Box<str> {
        pairs.retain(|(name, value)| {
            !value.is_empty()
                && self
                    .allow
                    .as_ref()
                    .is_none_or(|allow| allow.iter().any(|a| a == name))
        });
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::with_capacity(pairs.iter().map(|(n, v)| n.len() + v.len() + 4).sum());
        for (i, (name, value)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{name}=\"");
            escape_into(&mut out, value);
            out.push('"');
        }
        out.into_boxed_str()
    }
}

fn name_pairs(pairs: &mut Vec<Pair>, prefix: &'static str, name: &Name) {
    let fields: [(&'static str, &String); 6] = [
        ("C", &name.c),
        ("ST", &name.st),
        ("L", &name.l),
        ("O", &name.o),
        ("OU", &name.ou),
        ("CN", &name.cn),
    ];
    for (attr, value) in fields {
        if !value.is_empty() {
            pairs.push((format!("{prefix}_{attr}").into(), value.clone()));
        }
    }
}

/// Escapes a label value for the text format: backslash, double quote and newline.
pub fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Lexical clean of a slash-separated path, as Go's `path.Clean`.
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
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
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Drops `n` leading components as v3 does (`/tmp/test.pem` with 1 → `/test.pem`,
/// `a/b/c.pem` with 1 → `b/c.pem`), but always keeps the file name.
pub fn trim_components(path: &str, n: usize) -> String {
    if n == 0 {
        return path.to_string();
    }
    let (prefix, rest) = match path.strip_prefix('/') {
        Some(rest) => ("/", rest),
        None => ("", path),
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let keep = n.min(parts.len().saturating_sub(1));
    format!("{prefix}{}", parts[keep..].join("/"))
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
    }

    #[test]
    fn values_are_escaped_sorted_filtered_and_empty_ones_dropped() {
        let config = LabelConfig::default();
        let pairs = vec![
            ("z".into(), "a\"b\\c\nd".to_string()),
            ("a".into(), "1".to_string()),
            ("m".into(), String::new()),
        ];
        assert_eq!(
            &*config.render(pairs.clone()),
            "a=\"1\",z=\"a\\\"b\\\\c\\nd\""
        );
        let only_z = LabelConfig {
            allow: Some(vec!["z".into()]),
            trim: 0,
        };
        assert_eq!(&*only_z.render(pairs.clone()), "z=\"a\\\"b\\\\c\\nd\"");
        let none = LabelConfig {
            allow: Some(vec![]),
            trim: 0,
        };
        assert_eq!(&*none.render(pairs), "");
    }
}
