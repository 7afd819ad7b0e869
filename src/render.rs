//! The exposition: store + clock → Prometheus text format 0.0.4, written by hand.
//! Pure: no I/O, no clock of its own.

use std::fmt::Write as _;

use crate::model::Series;
use crate::store::Store;

/// Which optional families to print.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `x509_cert_expires_in_seconds` and `x509_cert_valid_since_seconds`.
    pub relative: bool,
    /// `x509_cert_error`.
    pub per_cert_error: bool,
}

/// Build facts for `x509_exporter_build_info`.
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo {
    /// Crate version.
    pub version: &'static str,
    /// Source revision.
    pub revision: &'static str,
    /// Build time.
    pub built: &'static str,
    /// Compiler version.
    pub rustversion: &'static str,
}

/// This binary's build facts.
pub const BUILD: BuildInfo = BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    revision: env!("X509_BUILD_REVISION"),
    built: env!("X509_BUILD_TIME"),
    rustversion: env!("X509_BUILD_RUSTC"),
};

/// A certificate family: name, HELP text, value of a series at a time, printed or not.
type Family = (&'static str, &'static str, fn(&Series, i64) -> i64, bool);

/// Renders every family for the state in `store` at Unix time `now`.
pub fn render(store: &Store, now: i64, options: Options, build: &BuildInfo) -> String {
    let certs: Vec<(&Series, bool)> = store.certs().collect();
    let mut out = String::with_capacity(
        64 + certs.len() * 3 * (certs.first().map_or(0, |c| c.0.labels.len()) + 48),
    );
    let families: [Family; 5] = [
        (
            "x509_cert_not_before",
            "Start of the certificate's validity, in Unix seconds.",
            |s, _| s.not_before,
            true,
        ),
        (
            "x509_cert_not_after",
            "End of the certificate's validity, in Unix seconds.",
            |s, _| s.not_after,
            true,
        ),
        (
            "x509_cert_expired",
            "Whether the certificate has expired: 1 if so, else 0.",
            |s, now| i64::from(now > s.not_after),
            true,
        ),
        (
            "x509_cert_expires_in_seconds",
            "Time left before the certificate expires, in seconds (negative once expired).",
            |s, now| s.not_after.saturating_sub(now),
            options.relative,
        ),
        (
            "x509_cert_valid_since_seconds",
            "Time since the certificate became valid, in seconds.",
            |s, now| now.saturating_sub(s.not_before),
            options.relative,
        ),
    ];
    for (name, help, value, enabled) in families {
        if !enabled || certs.is_empty() {
            continue;
        }
        header(&mut out, name, help, "gauge");
        for (series, discriminate) in &certs {
            out.push_str(name);
            labels(
                &mut out,
                &series.labels,
                discriminate.then_some(series.fingerprint),
            );
            let _ = writeln!(out, " {}", value(series, now));
        }
    }
    if options.per_cert_error {
        let mut errors = store.error_series().peekable();
        if errors.peek().is_some() {
            header(&mut out, "x509_cert_error", "Whether reading this file or Secret key failed in the latest refresh: 1 if so, else 0.", "gauge");
            for (error_labels, failing) in errors {
                out.push_str("x509_cert_error");
                labels(&mut out, error_labels, None);
                let _ = writeln!(out, " {}", u8::from(failing));
            }
        }
    }
    header(
        &mut out,
        "x509_read_errors",
        "Read failures in the latest refresh of every source, a count.",
        "gauge",
    );
    let _ = writeln!(out, "x509_read_errors {}", store.read_errors());
    header(
        &mut out,
        "x509_read_errors_total",
        "Read failures since the exporter started, a count.",
        "counter",
    );
    let _ = writeln!(out, "x509_read_errors_total {}", store.read_errors_total());
    header(
        &mut out,
        "x509_exporter_build_info",
        "Build facts of this exporter in its labels; the value is always 1.",
        "gauge",
    );
    out.push_str("x509_exporter_build_info{");
    for (i, (name, value)) in [
        ("built", build.built),
        ("revision", build.revision),
        ("rustversion", build.rustversion),
        ("version", build.version),
    ]
    .iter()
    .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        crate::labels::escape_into(&mut out, value);
        out.push('"');
    }
    out.push_str("} 1\n");
    out
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn labels(out: &mut String, pairs: &str, discriminator: Option<u32>) {
    match (pairs.is_empty(), discriminator) {
        (true, None) => {}
        (false, None) => {
            out.push('{');
            out.push_str(pairs);
            out.push('}');
        }
        (empty, Some(fingerprint)) => {
            out.push('{');
            out.push_str(pairs);
            let _ = write!(
                out,
                "{}discriminator=\"{fingerprint:08x}\"}}",
                if empty { "" } else { "," }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Item, Report};

    const TEST_BUILD: BuildInfo = BuildInfo {
        version: "1.2.3",
        revision: "abc",
        built: "2026-01-01T00:00:00Z",
        rustversion: "rustc 1.95.0",
    };

    fn store() -> Store {
        let mut store = Store::new(1);
        let item = Item {
            error_labels: "filename=\"a.pem\",filepath=\"/x/a.pem\"".into(),
            series: vec![
                Series {
                    labels: "filename=\"a.pem\",serial_number=\"1\"".into(),
                    not_before: 1000,
                    not_after: 2000,
                    fingerprint: 0xab,
                },
                Series {
                    labels: "filename=\"a.pem\",serial_number=\"2\"".into(),
                    not_before: 1000,
                    not_after: 5000,
                    fingerprint: 0x1,
                },
                Series {
                    labels: "filename=\"a.pem\",serial_number=\"2\"".into(),
                    not_before: 1000,
                    not_after: 6000,
                    fingerprint: 0xdeadbeef,
                },
            ]
            .into(),
            errors: vec!["read /x/a.pem: PEM block 4: invalid base64".to_string()].into(),
        };
        store.apply(Report {
            source: 0,
            items: vec![Arc::new(item)],
            errors: vec![],
            changed: true,
            ready: true,
        });
        store
    }

    /// Compares with a committed golden file; `UPDATE_GOLDEN=1 cargo test` rewrites it.
    fn check_golden(body: &str, name: &str) {
        let path = format!("{}/fixtures/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, body).unwrap();
        }
        let golden = std::fs::read_to_string(&path).unwrap();
        assert_eq!(body, golden, "{path}");
    }

    #[test]
    fn golden_with_every_option() {
        let options = Options {
            relative: true,
            per_cert_error: true,
        };
        check_golden(
            &render(&store(), 3000, options, &TEST_BUILD),
            "render_all_options.prom",
        );
    }

    #[test]
    fn golden_default_options() {
        check_golden(
            &render(&store(), 3000, Options::default(), &TEST_BUILD),
            "render_default.prom",
        );
    }

    #[test]
    fn empty_store_prints_only_the_exporter_families() {
        let body = render(
            &Store::new(0),
            0,
            Options {
                relative: true,
                per_cert_error: true,
            },
            &TEST_BUILD,
        );
        assert!(!body.contains("x509_cert_"));
        assert!(body.contains("x509_read_errors 0\n"));
        assert!(body.contains("x509_read_errors_total 0\n"));
        assert!(body.ends_with("x509_exporter_build_info{built=\"2026-01-01T00:00:00Z\",revision=\"abc\",rustversion=\"rustc 1.95.0\",version=\"1.2.3\"} 1\n"));
    }
}
