//! Every certificate of Debian's /etc/ssl/certs (ca-certificates) exported, with the dates,
//! serials, keys, signatures and CA flags that `openssl x509` prints for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::*;

/// `Jan  1 00:00:00 2030 GMT` to Unix seconds.
fn openssl_date(text: &str) -> i64 {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[0])
    .unwrap() as i64
        + 1;
    let day: i64 = parts[1].parse().unwrap();
    let hms: Vec<i64> = parts[2].split(':').map(|p| p.parse().unwrap()).collect();
    let year: i64 = parts[3].parse().unwrap();
    // Days from civil (proleptic Gregorian).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]
}

/// Hex serial (openssl) to decimal, for positive serials.
fn hex_to_decimal(hex: &str) -> String {
    let mut digits = vec![0u32];
    for c in hex.chars() {
        let mut carry = c.to_digit(16).unwrap();
        for d in digits.iter_mut() {
            let v = *d * 16 + carry;
            *d = v % 10;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push(carry % 10);
            carry /= 10;
        }
    }
    while digits.len() > 1 && *digits.last().unwrap() == 0 {
        digits.pop();
    }
    digits
        .iter()
        .rev()
        .map(|d| char::from_digit(*d, 10).unwrap())
        .collect()
}

#[test]
fn every_debian_ca_certificate_matches_openssl() {
    let dir = "/etc/ssl/certs";
    let exporter = Exporter::start(&["-d", dir, "--expose-cert-info"]);
    let m = exporter.metrics();
    assert_eq!(m.value("x509_read_errors"), 0.0, "{}", m.body);

    let mut by_file: HashMap<String, Vec<&Sample>> = HashMap::new();
    for s in m.named("x509_cert_not_after") {
        by_file
            .entry(s.labels["filename"].clone())
            .or_default()
            .push(s);
    }
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".pem") {
            continue;
        }
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-enddate", "-serial", "-in"])
            .arg(&path)
            .output()
            .expect("openssl is needed by the tests");
        assert!(out.status.success(), "{name}");
        let text = String::from_utf8(out.stdout).unwrap();
        let end = text
            .lines()
            .find_map(|l| l.strip_prefix("notAfter="))
            .unwrap();
        let serial = text
            .lines()
            .find_map(|l| l.strip_prefix("serial="))
            .unwrap();
        let series = by_file
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not exported"));
        assert_eq!(series.len(), 1, "{name}");
        assert_eq!(
            series[0].value as i64,
            openssl_date(end),
            "{name}: not_after"
        );
        assert_eq!(
            series[0].labels["serial_number"],
            hex_to_decimal(serial),
            "{name}: serial"
        );
        assert_facts(&m, &path, &name);
        checked += 1;
    }
    assert!(
        checked > 100,
        "only {checked} certificates found: is ca-certificates installed?"
    );

    // The bundle holds every one of them.
    let bundle = std::fs::read_to_string(format!("{dir}/ca-certificates.crt")).unwrap();
    let blocks = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert_eq!(by_file["ca-certificates.crt"].len(), blocks);
    let roots = m.find(
        "x509_cert_info",
        &[
            ("filename", "ca-certificates.crt"),
            ("chain_position", "root"),
        ],
    );
    assert_eq!(roots.len(), blocks, "a bundle of roots is roots");
}

/// What `openssl x509 -text` says of the key, signature and CA flag of the certificate at
/// `path`, in x509_cert_info's names; these are every kind Debian ships.
fn assert_facts(m: &Metrics, path: &std::path::Path, name: &str) {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
    };
    let key = match field("Public Key Algorithm:") {
        Some("rsaEncryption") => "rsa",
        Some("id-ecPublicKey") => "ecdsa",
        other => panic!("{name}: a key kind Debian did not ship before: {other:?}"),
    };
    let bits = field("Public-Key: (").unwrap().trim_end_matches(" bit)");
    let signature = match field("Signature Algorithm:") {
        Some("sha1WithRSAEncryption") => "sha1-rsa",
        Some("sha256WithRSAEncryption") => "sha256-rsa",
        Some("sha384WithRSAEncryption") => "sha384-rsa",
        Some("sha512WithRSAEncryption") => "sha512-rsa",
        Some("ecdsa-with-SHA256") => "ecdsa-sha256",
        Some("ecdsa-with-SHA384") => "ecdsa-sha384",
        other => panic!("{name}: a signature Debian did not ship before: {other:?}"),
    };
    let ca = text.contains("CA:TRUE");
    let info = m.one("x509_cert_info", &[("filename", name)]);
    let got = |label: &str| info.labels.get(label).map(String::as_str);
    assert_eq!(got("key_algorithm"), Some(key), "{name}");
    assert_eq!(got("key_size"), Some(bits), "{name}");
    assert_eq!(got("key_curve"), field("NIST CURVE:"), "{name}");
    assert_eq!(got("signature_algorithm"), Some(signature), "{name}");
    assert_eq!(got("ca"), Some(if ca { "true" } else { "false" }), "{name}");
    let position = if ca { "root" } else { "self-signed" };
    assert_eq!(
        got("chain_position"),
        Some(position),
        "{name}: alone in its file"
    );
}

#[test]
fn date_helper() {
    assert_eq!(openssl_date("Jan  1 00:00:00 1970 GMT"), 0);
    assert_eq!(openssl_date("Dec 31 23:59:59 2030 GMT"), 1_924_991_999);
    assert_eq!(hex_to_decimal("0102"), "258");
}
