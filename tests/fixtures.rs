//! Odd real-world certificates committed under fixtures/certs (made by fixtures/gen.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/certs");

#[test]
fn committed_fixtures_are_read_exactly() {
    let exporter = Exporter::start(&["-d", DIR, "--expose-per-cert-error-metrics"]);
    let m = exporter.metrics();
    assert_eq!(m.value("x509_read_errors"), 0.0, "{}", m.body);
    let after = |file: &str| m.find("x509_cert_not_after", &[("filename", file)]);

    let old = after("expired-2005.pem");
    assert_eq!(old.len(), 1);
    let labels = &old[0].labels;
    for (k, v) in [
        ("serial_number", "1"),
        ("subject_C", "FR"),
        ("subject_ST", "Old State"),
        ("subject_L", "Old Town"),
        ("subject_O", "Old Org"),
        ("subject_OU", "Old Unit"),
        ("subject_CN", "expired-2005"),
        ("issuer_CN", "expired-2005"),
    ] {
        assert_eq!(labels[k], v, "{k}");
    }
    assert_eq!(old[0].value, 1_104_537_600.0);
    assert_eq!(
        m.one("x509_cert_not_before", &[("filename", "expired-2005.pem")])
            .value,
        946_684_800.0
    );
    assert_eq!(
        m.one("x509_cert_expired", &[("filename", "expired-2005.pem")])
            .value,
        1.0
    );

    let trusted = after("trusted.pem");
    assert_eq!(
        trusted.len(),
        1,
        "the leading certificate of a TRUSTED CERTIFICATE block"
    );
    assert_eq!(trusted[0].labels["subject_CN"], "expired-2005");

    let far = after("valid-until-9999.pem");
    assert_eq!(far[0].value, 253_402_300_799.0);
    assert_eq!(
        far[0].labels["serial_number"],
        "730750818665451459101842416358141509827966271487"
    );
    assert_eq!(
        m.one("x509_cert_expired", &[("filename", "valid-until-9999.pem")])
            .value,
        0.0
    );

    let negative = after("negative-serial.pem");
    assert_eq!(negative[0].labels["serial_number"], "-5");
    assert!(negative[0].value > 3_900_000_000.0, "valid past 2090");

    let bmp = &after("bmp-subject.pem")[0].labels;
    assert_eq!(
        (bmp["subject_O"].as_str(), bmp["subject_CN"].as_str()),
        ("Zürich Ünïcode", "bmp-grüße")
    );
    let t61 = &after("t61-subject.pem")[0].labels;
    assert_eq!(
        (t61["subject_O"].as_str(), t61["subject_CN"].as_str()),
        ("Café", "t61-café")
    );

    for file in ["multi-value.pem", "multi-value.der"] {
        let labels = &after(file)[0].labels;
        assert_eq!(labels["subject_OU"], "first-ou", "{file}");
        assert_eq!(labels["subject_CN"], "last-cn", "{file}");
    }

    let crlf: Vec<_> = after("crlf-bundle.pem")
        .iter()
        .map(|s| s.labels["subject_CN"].clone())
        .collect();
    assert_eq!(crlf.len(), 2);
    assert!(
        crlf.contains(&"valid-until-9999".to_string()) && crlf.contains(&"t61-café".to_string())
    );
    assert_eq!(m.count("x509_cert_error"), 9);
    promtool_accepts(&m.body);
}
