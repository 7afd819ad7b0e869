//! `-f` and `-d` end to end: the real binary, real files, scraped over HTTP. These re-express
//! the enix v3 test suite under this exporter's fixed rules (SPEC §3, §4, §9).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use sha2::Digest as _;

const DN: [&str; 5] = ["FR", "Ile-de-France", "Paris", "Acme", "Ops"];

#[test]
fn a_fresh_and_an_expired_certificate_with_exact_values_and_every_label() {
    let dir = TempDir::new("exact");
    let now = now();
    let fresh = Spec::new("fresh.example", now - 5, now - 5 + 3600)
        .serial(&[0x01, 0x02])
        .dn(DN);
    let expired = Spec::new("old.example", now - 7200, now - 3600)
        .serial(&[0x00, 0xff])
        .dn(DN);
    dir.write("fresh.pem", Cert::self_signed(&fresh).pem());
    dir.write("expired.pem", Cert::self_signed(&expired).pem());
    let exporter = Exporter::start(&["-d", &dir.str(""), "--expose-relative-metrics"]);
    let m = exporter.metrics();

    let f = m.one("x509_cert_not_after", &[("filename", "fresh.pem")]);
    let expected: Vec<(&str, String)> = vec![
        ("filename", "fresh.pem".into()),
        ("filepath", dir.str("fresh.pem")),
        ("serial_number", "258".into()),
        ("subject_C", "FR".into()),
        ("subject_ST", "Ile-de-France".into()),
        ("subject_L", "Paris".into()),
        ("subject_O", "Acme".into()),
        ("subject_OU", "Ops".into()),
        ("subject_CN", "fresh.example".into()),
        ("issuer_C", "FR".into()),
        ("issuer_ST", "Ile-de-France".into()),
        ("issuer_L", "Paris".into()),
        ("issuer_O", "Acme".into()),
        ("issuer_OU", "Ops".into()),
        ("issuer_CN", "fresh.example".into()),
    ];
    assert_eq!(f.labels.len(), expected.len(), "{:?}", f.labels);
    for (k, v) in &expected {
        assert_eq!(f.labels.get(*k), Some(v), "label {k}");
    }
    assert_eq!(f.value, (now - 5 + 3600) as f64);
    assert_eq!(
        m.one("x509_cert_not_before", &[("filename", "fresh.pem")])
            .value,
        (now - 5) as f64
    );
    assert_eq!(
        m.one("x509_cert_expired", &[("filename", "fresh.pem")])
            .value,
        0.0
    );
    let expires_in = m
        .one("x509_cert_expires_in_seconds", &[("filename", "fresh.pem")])
        .value;
    assert!((3000.0..=3600.0).contains(&expires_in), "{expires_in}");
    let since = m
        .one(
            "x509_cert_valid_since_seconds",
            &[("filename", "fresh.pem")],
        )
        .value;
    assert!((0.0..=600.0).contains(&since), "{since}");

    let e = &[("filename", "expired.pem")];
    assert_eq!(
        m.one("x509_cert_expired", e)
            .labels
            .get("serial_number")
            .unwrap(),
        "255"
    );
    assert_eq!(m.one("x509_cert_expired", e).value, 1.0);
    assert_eq!(m.one("x509_cert_not_after", e).value, (now - 3600) as f64);
    assert!(m.one("x509_cert_expires_in_seconds", e).value <= -3600.0);
    let since = m.one("x509_cert_valid_since_seconds", e).value;
    assert!((7200.0..=7800.0).contains(&since), "{since}");
    assert_eq!(m.value("x509_read_errors"), 0.0);
    assert_eq!(m.count("x509_cert_not_after"), 2);
}

#[test]
fn a_chain_file_gives_one_series_per_certificate_with_its_issuer() {
    let dir = TempDir::new("chain");
    let now = now();
    let root = Cert::self_signed(
        &Spec::new("Root CA", now - 100, now + 900_000)
            .ca()
            .serial(&[1]),
    );
    let mid = Cert::signed(
        &Spec::new("Intermediate CA", now - 100, now + 800_000)
            .ca()
            .serial(&[2]),
        &root,
    );
    let leaf = Cert::signed(
        &Spec::new("leaf.example", now - 100, now + 700_000).serial(&[3]),
        &mid,
    );
    let path = dir.write(
        "chain.pem",
        format!("{}{}{}", leaf.pem(), mid.pem(), root.pem()),
    );
    let exporter = Exporter::start(&["-f", path.to_str().unwrap()]);
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 3);
    let issuer =
        |cn| m.one("x509_cert_not_after", &[("subject_CN", cn)]).labels["issuer_CN"].clone();
    assert_eq!(issuer("leaf.example"), "Intermediate CA");
    assert_eq!(issuer("Intermediate CA"), "Root CA");
    assert_eq!(issuer("Root CA"), "Root CA");
    assert_eq!(
        m.one("x509_cert_not_after", &[("subject_CN", "leaf.example")])
            .value,
        (now + 700_000) as f64
    );
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn der_files_are_read() {
    let dir = TempDir::new("der");
    let now = now();
    dir.write(
        "cert.der",
        Cert::self_signed(&Spec::new("der.example", now, now + 10)).der(),
    );
    dir.write(
        "noext",
        Cert::self_signed(&Spec::new("noext.example", now, now + 10)).der(),
    );
    let exporter = Exporter::start(&["-d", &dir.str("")]);
    let m = exporter.metrics();
    assert_eq!(
        m.one("x509_cert_not_after", &[("filename", "cert.der")])
            .labels["subject_CN"],
        "der.example"
    );
    assert_eq!(
        m.one("x509_cert_not_after", &[("filename", "noext")])
            .labels["subject_CN"],
        "noext.example"
    );
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn a_corrupted_block_hides_none_of_its_neighbours() {
    let dir = TempDir::new("corrupt");
    let now = now();
    let good1 = pem("good-1", now, now + 100);
    let good2 = pem("good-2", now, now + 200);
    let corrupted = "-----BEGIN CERTIFICATE-----\nMIIBnotbase64!!!\n-----END CERTIFICATE-----\n";
    let garbage_der = "-----BEGIN CERTIFICATE-----\nMIIBAgMEBQ==\n-----END CERTIFICATE-----\n";
    let path = dir.write(
        "mixed.pem",
        format!("{good1}{corrupted}{good2}{garbage_der}"),
    );
    dir.write("fine.pem", pem("fine", now, now + 300));
    let exporter = Exporter::start(&["-d", &dir.str(""), "--expose-per-cert-error-metrics"]);
    let m = exporter.metrics();
    let cns: Vec<_> = m
        .find("x509_cert_not_after", &[("filename", "mixed.pem")])
        .iter()
        .map(|s| s.labels["subject_CN"].clone())
        .collect();
    assert_eq!(cns.len(), 2);
    assert!(cns.contains(&"good-1".to_string()) && cns.contains(&"good-2".to_string()));
    assert_eq!(m.value("x509_read_errors"), 2.0, "two bad blocks");
    assert_eq!(
        m.one("x509_cert_error", &[("filename", "mixed.pem")]).value,
        1.0
    );
    assert_eq!(
        m.one("x509_cert_error", &[("filename", "fine.pem")]).value,
        0.0
    );
    exporter.wait_log(format!("read {}: PEM block 2", path.display()), LOG_WAIT);
}

#[test]
fn the_same_certificate_twice_in_a_file_is_one_series_and_no_error() {
    let dir = TempDir::new("twice");
    let now = now();
    let cert = pem("twice", now, now + 100);
    let path = dir.write("dup.pem", format!("{cert}{cert}"));
    let exporter = Exporter::start(&["-f", path.to_str().unwrap()]);
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 1);
    assert_eq!(m.value("x509_read_errors"), 0.0);
    promtool_accepts(&m.body);
}

#[test]
fn different_certificates_with_the_same_labels_get_a_discriminator() {
    let dir = TempDir::new("disc");
    let now = now();
    let a = Cert::self_signed(&Spec::new("same", now, now + 100));
    let b = Cert::self_signed(&Spec::new("same", now, now + 200));
    dir.write("a.pem", a.pem());
    dir.write("b.pem", b.pem());
    let exporter = Exporter::start(&["-d", &dir.str(""), "-l", "serial_number,subject_CN"]);
    let m = exporter.metrics();
    assert_eq!(
        m.find("x509_cert_not_after", &[("subject_CN", "same")])
            .len(),
        2
    );
    // What the README documents: the first 8 hex digits of the SHA-256 of the DER, computed
    // here from the DER rcgen wrote, and tied to each certificate by its not_after.
    for (cert, not_after) in [(&a, now + 100), (&b, now + 200)] {
        let digest = sha2::Sha256::digest(cert.der());
        let expected: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let series = m.one(
            "x509_cert_not_after",
            &[("subject_CN", "same"), ("discriminator", &expected)],
        );
        assert_eq!(series.value, not_after as f64, "{}", m.body);
    }
    promtool_accepts(&m.body);
}

#[test]
fn symlinks_dangling_links_and_skip_symlinks() {
    let dir = TempDir::new("links");
    let now = now();
    dir.write("real/target.pem", pem("target", now, now + 100));
    dir.write("watched/beside.pem", pem("beside", now, now + 100));
    let watched = dir.path("watched");
    std::os::unix::fs::symlink(dir.path("real/target.pem"), watched.join("link.pem")).unwrap();
    // Dangling, but its target's base name exists beside the link: resolved there (v3).
    std::os::unix::fs::symlink(
        "/nonexistent/host/path/beside.pem",
        watched.join("hostlink.pem"),
    )
    .unwrap();
    // Dangling with nothing beside: one read error.
    std::os::unix::fs::symlink("/nonexistent/gone.pem", watched.join("broken.pem")).unwrap();
    // A symlink to a directory (like ..data in Secret volumes) is skipped silently.
    std::os::unix::fs::symlink(dir.path("real"), watched.join("..data")).unwrap();

    let exporter = Exporter::start(&["-d", watched.to_str().unwrap()]);
    let m = exporter.metrics();
    assert_eq!(
        m.one("x509_cert_not_after", &[("filename", "link.pem")])
            .labels["subject_CN"],
        "target"
    );
    let host = m.one("x509_cert_not_after", &[("filename", "hostlink.pem")]);
    assert_eq!(host.labels["subject_CN"], "beside");
    assert_eq!(
        host.labels["filepath"],
        watched.join("hostlink.pem").display().to_string()
    );
    assert_eq!(m.count("x509_cert_not_after"), 3, "link, hostlink, beside");
    assert_eq!(m.value("x509_read_errors"), 1.0, "broken.pem only");
    exporter.wait_log(
        "broken.pem: dangling symlink to /nonexistent/gone.pem",
        LOG_WAIT,
    );
    drop(exporter);

    let exporter = Exporter::start(&["-d", watched.to_str().unwrap(), "--skip-symlinks"]);
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 1, "only the regular file");
    assert_eq!(m.value("x509_read_errors"), 0.0);
    drop(exporter);

    let link = watched.join("link.pem");
    let exporter = Exporter::start(&["-f", link.to_str().unwrap(), "--skip-symlinks"]);
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 0);
}

#[test]
fn missing_file_directory_and_kubeconfig_each_count_one_read_error() {
    let dir = TempDir::new("missing");
    for args in [
        vec!["-f", "/nonexistent/x.pem"],
        vec!["-d", "/nonexistent/dir"],
        vec!["-k", "/nonexistent/kubeconfig"],
    ] {
        let exporter = Exporter::start(&args);
        let m = exporter.metrics();
        assert_eq!(m.value("x509_read_errors"), 1.0, "{args:?}");
        assert_eq!(m.count("x509_cert_not_after"), 0);
    }
    let exporter = Exporter::start(&[
        "-f",
        "/nonexistent/a.pem",
        "-f",
        "/nonexistent/b.pem",
        "-f",
        "/nonexistent/c.pem",
        "-d",
        "/nonexistent/dir",
        "-k",
        "/nonexistent/k1",
        "-k",
        "/nonexistent/k2",
        "--refresh-interval=100ms",
    ]);
    assert_eq!(
        exporter.metrics().value("x509_read_errors"),
        6.0,
        "as v3's multiple-errors case"
    );
    // The counter keeps adding the failures of every refresh.
    exporter.metrics_until("read_errors_total to grow", |m| {
        m.value("x509_read_errors_total") >= 18.0
    });
    // And each is logged once, not on every refresh.
    let warnings = exporter.wait_log_all(["WARN", "/nonexistent/a.pem"], LOG_WAIT);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    drop(dir);
}

#[test]
fn a_directory_of_keys_csrs_and_readmes_beside_certificates_has_no_error() {
    let dir = TempDir::new("mixeddir");
    let now = now();
    let cert = Cert::self_signed(&Spec::new("server", now, now + 100));
    dir.write("server.crt", cert.pem());
    dir.write("server.key", cert.key.serialize_pem());
    dir.write("privkey.pem", cert.key.serialize_pem());
    dir.write(
        "server.csr",
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
    );
    dir.write("README", "These are the certificates of this host.\n");
    dir.write("binary.bin", [0x30u8, 0x82, 0x00, 0x10, 1, 2, 3]);
    dir.write("sub/inner.pem", pem("inner", now, now + 100));
    let fifo = dir.path("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let exporter = Exporter::start(&["-d", &dir.str(""), "--expose-per-cert-error-metrics"]);
    let m = exporter.metrics();
    assert_eq!(
        m.count("x509_cert_not_after"),
        1,
        "not recursive: sub/inner.pem is not read"
    );
    assert_eq!(m.value("x509_read_errors"), 0.0, "{}", m.body);
    assert_eq!(m.count("x509_cert_error"), 1, "only the certificate file");
}

#[test]
fn files_named_like_certificates_without_one_are_errors() {
    let dir = TempDir::new("empty-named");
    dir.write("empty.pem", "");
    dir.write("text.crt", "not a certificate\n");
    // Keystore and CRL names promise as much (SPEC §3).
    for name in [
        "store.p12",
        "store.PFX",
        "trust.jks",
        "keys.jceks",
        "app.keystore",
    ] {
        dir.write(name, "not a keystore\n");
    }
    dir.write("ca.truststore", [0u8; 64]);
    dir.write("revoked.crl", [0x30u8, 0x03, 0x02, 0x01, 0x01]);
    let exporter = Exporter::start(&["-d", &dir.str(""), "--expose-per-cert-error-metrics"]);
    let m = exporter.metrics();
    assert_eq!(m.value("x509_read_errors"), 9.0, "{}", m.body);
    for name in ["trust.jks", "revoked.crl"] {
        assert_eq!(m.one("x509_cert_error", &[("filename", name)]).value, 1.0);
    }
    assert_eq!(
        m.one("x509_cert_error", &[("filename", "text.crt")]).value,
        1.0
    );
    // -f names the file: holding no certificate is an error whatever its name.
    let exporter = Exporter::start(&["-f", &dir.str("text.crt"), "-f", &dir.str("")]);
    let m = exporter.metrics();
    assert_eq!(
        m.value("x509_read_errors"),
        2.0,
        "no certificate, and a directory given as a file"
    );
}

#[test]
fn expose_labels_filters_every_cert_series() {
    let dir = TempDir::new("labels");
    let now = now();
    dir.write(
        "a.pem",
        Cert::self_signed(&Spec::new("a", now, now + 100).serial(&[7]).dn(DN)).pem(),
    );
    let exporter = Exporter::start(&[
        "-d",
        &dir.str(""),
        "-l",
        "serial_number,filename",
        "--expose-per-cert-error-metrics",
    ]);
    let m = exporter.metrics();
    let s = m.one("x509_cert_not_after", &[]);
    assert_eq!(
        s.labels.keys().collect::<Vec<_>>(),
        ["filename", "serial_number"]
    );
    assert_eq!(s.labels["serial_number"], "7");
    assert_eq!(
        m.one("x509_cert_error", &[])
            .labels
            .keys()
            .collect::<Vec<_>>(),
        ["filename"]
    );
    drop(exporter);
    let exporter = Exporter::start(&["-d", &dir.str(""), "-l", ""]);
    let m = exporter.metrics();
    assert!(m.one("x509_cert_not_after", &[]).labels.is_empty());
    assert!(m
        .body
        .contains(&format!("\nx509_cert_not_after {}\n", now + 100)));
    promtool_accepts(&m.body);
}

#[test]
fn trim_path_components() {
    let dir = TempDir::new("trim");
    let now = now();
    let path = dir.write("deep/x.pem", pem("x", now, now + 100));
    let full = path.display().to_string();
    let exporter = Exporter::start(&["-f", &full, "--trim-path-components=1"]);
    let m = exporter.metrics();
    let first = full.trim_start_matches('/').split('/').next().unwrap();
    let expected = full.strip_prefix(&format!("/{first}")).unwrap();
    assert_eq!(
        m.one("x509_cert_not_after", &[]).labels["filepath"],
        expected
    );
    drop(exporter);
    let exporter = Exporter::start(&["-f", &full, "--trim-path-components=99"]);
    let m = exporter.metrics();
    assert_eq!(
        m.one("x509_cert_not_after", &[]).labels["filepath"],
        "/x.pem",
        "v3 panicked here"
    );
    drop(exporter);
    // Relative paths: `a/b/c.pem` with 1 gives `b/c.pem`.
    dir.write("a/b/c.pem", pem("c", now, now + 100));
    let exporter = Exporter::start_in(
        &["-f", "a/b/c.pem", "--trim-path-components=1"],
        Some(&dir.0),
    );
    let m = exporter.metrics();
    let s = m.one("x509_cert_not_after", &[]);
    assert_eq!(s.labels["filepath"], "b/c.pem");
    assert_eq!(s.labels["filename"], "c.pem");
}

#[test]
fn globs_single_star_double_star_and_invalid_patterns() {
    let dir = TempDir::new("globs");
    let now = now();
    dir.write("test/basic.pem", pem("basic", now, now + 100));
    dir.write("test/foo/basic.pem", pem("basic-foo", now, now + 100));
    dir.write("test/foo/bar/deep.pem", pem("deep", now, now + 100));
    dir.write("test/foo/other.crt", pem("other", now, now + 100));
    let cases: [(&str, &str, usize, f64); 6] = [
        ("-f", "tes*/basic.pem", 1, 0.0),
        ("-f", "test/**/basic.pem", 2, 0.0),
        ("-f", "test/**/*.pem", 3, 0.0),
        ("-f", "does-not-exist/**", 0, 1.0),
        ("-d", "test/**/fo?", 2, 0.0),
        ("-d", "test/**/basic.pem", 0, 1.0),
    ];
    for (flag, pattern, series, errors) in cases {
        let exporter = Exporter::start_in(&[flag, pattern], Some(&dir.0));
        let m = exporter.metrics();
        assert_eq!(
            m.count("x509_cert_not_after"),
            series,
            "{flag} {pattern}\n{}",
            m.body
        );
        assert_eq!(m.value("x509_read_errors"), errors, "{flag} {pattern}");
    }
    let exporter = Exporter::start_in(&["-f", "test/**/basic.pem"], Some(&dir.0));
    let m = exporter.metrics();
    assert_eq!(
        m.one("x509_cert_not_after", &[("subject_CN", "basic-foo")])
            .labels["filepath"],
        "test/foo/basic.pem"
    );

    let out = run(&["-f", "toto["]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--watch-file") && err.contains("toto["),
        "{err}"
    );
}
