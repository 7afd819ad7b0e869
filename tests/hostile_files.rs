//! Hostile files in watched places (issue 6, first part): each gives a clear read error or a
//! silent skip as SPEC §3 says, the refresh completes, and every other certificate is still
//! exported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use common::*;

/// A directory with one good certificate, `good.pem`, beside whatever the test adds.
fn with_good(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let now = now();
    dir.write("good.pem", pem("good", now, now + 1000));
    dir
}

fn good_is_exported(m: &Metrics) {
    assert_eq!(
        m.one("x509_cert_not_after", &[("filename", "good.pem")])
            .labels["subject_CN"],
        "good"
    );
}

#[test]
fn special_files_are_never_opened() {
    let dir = with_good("special");
    assert!(std::process::Command::new("mkfifo")
        .arg(dir.path("fifo.pem"))
        .status()
        .unwrap()
        .success());
    let _socket = std::os::unix::net::UnixListener::bind(dir.path("socket.crt")).unwrap();
    symlink("/dev/zero", dir.path("zero.pem")).unwrap();
    symlink("/dev/urandom", dir.path("random")).unwrap();
    let started = Instant::now();
    let exporter = Exporter::start(&["-d", &dir.str("")]);
    let m = exporter.metrics();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a FIFO or a device blocked the refresh"
    );
    good_is_exported(&m);
    // Named like certificates: errors; the unnamed device is skipped silently.
    assert_eq!(m.value("x509_read_errors"), 3.0, "{}", m.body);
    for line in [
        "fifo.pem: is a FIFO, not a regular file",
        "socket.crt: is a socket, not a regular file",
        "zero.pem: is a device, not a regular file",
    ] {
        exporter.wait_log(line, LOG_WAIT);
    }
}

#[test]
fn a_huge_sparse_file_is_refused_without_being_read() {
    let dir = with_good("sparse");
    let huge = std::fs::File::create(dir.path("huge.pem")).unwrap();
    huge.set_len(5 * 1024 * 1024 * 1024).unwrap();
    let started = Instant::now();
    let exporter = Exporter::start(&["-d", &dir.str("")]);
    let m = exporter.metrics();
    assert!(started.elapsed() < Duration::from_secs(10));
    good_is_exported(&m);
    assert_eq!(m.value("x509_read_errors"), 1.0);
    exporter.wait_log(
        "huge.pem: 5368709120 bytes, larger than the 4 MiB limit",
        LOG_WAIT,
    );
}

#[test]
fn symlink_loops_and_a_double_star_over_a_looping_tree() {
    let dir = with_good("loops");
    symlink("loop-b.pem", dir.path("loop-a.pem")).unwrap();
    symlink("loop-a.pem", dir.path("loop-b.pem")).unwrap();
    let mut deep = dir.path("tree");
    for i in 0..40 {
        deep = deep.join(format!("d{i}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    let now = now();
    std::fs::write(deep.join("deep.pem"), pem("deep", now, now + 1000)).unwrap();
    symlink(dir.path("tree"), deep.join("back-to-top")).unwrap();
    symlink(dir.path(""), dir.path("tree/d0/up")).unwrap();
    let pattern = format!("{}/**/*.pem", dir.str(""));
    let started = Instant::now();
    let exporter = Exporter::start(&["-d", &dir.str(""), "-f", &pattern]);
    let m = exporter.metrics();
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(
        m.one("x509_cert_not_after", &[("subject_CN", "deep")])
            .labels["filename"],
        "deep.pem"
    );
    // good.pem twice: through -d and through the glob, the same labels, one series.
    assert_eq!(
        m.find("x509_cert_not_after", &[("filename", "good.pem")])
            .len(),
        1
    );
    // The two looping links, each seen by -d and by the glob.
    assert_eq!(m.value("x509_read_errors"), 4.0, "{}", m.body);
}

#[test]
fn files_without_read_permission_as_a_non_root_user() {
    let dir = with_good("perm");
    let now = now();
    let secret = dir.write("secret.pem", pem("secret", now, now + 1000));
    let key = dir.write(
        "private.key",
        "-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n",
    );
    for path in [&secret, &key] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }
    let (cmd, _root) = in_image(
        &["--watch-dir=/certs", "--listen-address=127.0.0.1:0"],
        &[(&dir.0, "/certs")],
    );
    let exporter = Exporter::spawn(cmd);
    let m = exporter.metrics();
    good_is_exported(&m);
    assert_eq!(
        m.value("x509_read_errors"),
        1.0,
        "secret.pem only: private.key is skipped silently"
    );
    exporter.wait_log("read /certs/secret.pem: permission denied", LOG_WAIT);
}

#[test]
fn non_utf8_names_and_garbage_contents() {
    let dir = with_good("garbage");
    let now = now();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff.pem");
    std::fs::write(dir.0.join(name), pem("latin1-name", now, now + 1000)).unwrap();
    let mut random = vec![0u8; 4096];
    let mut x: u32 = 12345;
    for b in random.iter_mut() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    dir.write("random.bin", &random);
    dir.write("random.crt", &random);
    let der = Cert::self_signed(&Spec::new("truncated", now, now + 1000)).der();
    dir.write("truncated.der", &der[..der.len() / 2]);
    // Deeply nested ASN.1: SEQUENCE inside SEQUENCE, 10,000 deep, definite lengths.
    let mut nested = vec![0x05, 0x00];
    for _ in 0..10_000 {
        let len = nested.len();
        let mut outer = vec![0x30];
        if len < 128 {
            outer.push(len as u8);
        } else {
            let bytes = (len as u32).to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            outer.push(0x80 | (4 - skip) as u8);
            outer.extend_from_slice(&bytes[skip..]);
        }
        outer.extend_from_slice(&nested);
        nested = outer;
    }
    dir.write("nested.der", &nested);
    let exporter = Exporter::start(&["-d", &dir.str("")]);
    let m = exporter.metrics();
    good_is_exported(&m);
    let odd = m.one("x509_cert_not_after", &[("subject_CN", "latin1-name")]);
    assert_eq!(odd.labels["filename"], "caf\u{fffd}-\u{fffd}.pem");
    // random.bin: silent; random.crt, truncated.der, nested.der: named like certificates.
    assert_eq!(m.value("x509_read_errors"), 3.0, "{}", m.body);
    promtool_accepts(&m.body);
}

#[test]
fn files_that_vanish_and_come_back_between_refreshes() {
    let dir = with_good("vanish");
    let now = now();
    let exporter = Exporter::start(&["-d", &dir.str(""), "--refresh-interval=20ms"]);
    exporter.wait_ready();
    // Churn for a while: files appear and disappear while the poller lists and reads.
    let deadline = Instant::now() + Duration::from_secs(2);
    let body = pem("churn", now, now + 1000);
    let mut n = 0;
    while Instant::now() < deadline {
        let path = dir.write(&format!("churn-{}.pem", n % 10), &body);
        std::fs::remove_file(&path).unwrap();
        n += 1;
    }
    // Once the churn stops, the next refresh sees exactly what is there.
    let m = exporter.metrics_until("the churn to settle", |m| {
        m.value("x509_read_errors") == 0.0 && m.count("x509_cert_not_after") == 1
    });
    good_is_exported(&m);
    assert_eq!(exporter.get("/healthz").status, 200);
}

#[test]
fn a_bundle_of_100k_certificates_is_refused_by_size_and_hides_nothing() {
    let dir = with_good("bundle");
    let now = now();
    let one = pem("in-bundle", now, now + 1000);
    let bundle = one.repeat(100_000);
    assert!(bundle.len() > 4 << 20);
    dir.write("bundle.pem", &bundle);
    // The same certificates, under the cap, are all read.
    dir.write("small-bundle.pem", one.repeat(1000));
    let exporter = Exporter::start(&["-d", &dir.str("")]);
    let m = exporter.metrics();
    good_is_exported(&m);
    assert_eq!(m.value("x509_read_errors"), 1.0);
    assert_eq!(
        m.find("x509_cert_not_after", &[("filename", "small-bundle.pem")])
            .len(),
        1,
        "one certificate repeated is one series"
    );
    exporter.wait_log(
        format!(
            "read {}: {} bytes, larger than the 4 MiB limit",
            dir.str("bundle.pem"),
            bundle.len()
        ),
        LOG_WAIT,
    );
}

#[test]
fn extreme_dates_and_serials() {
    let dir = with_good("extremes");
    // 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the ends of GeneralizedTime.
    let (year_0, year_9999) = (-62_167_219_200, 253_402_300_799);
    let spec = |cn: &str| Spec::new(cn, year_0, year_9999);
    dir.write("ancient.pem", Cert::self_signed(&spec("ancient")).pem());
    // A 20-byte serial, the most RFC 5280 allows. (Negative serials, which rcgen does not
    // make, are in fixtures/certs/negative-serial.pem.)
    let long = [0x7f; 20];
    dir.write(
        "long-serial.pem",
        Cert::self_signed(&spec("long-serial").serial(&long)).pem(),
    );
    let exporter = Exporter::start(&["-d", &dir.str(""), "--expose-relative-metrics"]);
    let m = exporter.metrics();
    good_is_exported(&m);
    assert_eq!(m.value("x509_read_errors"), 0.0, "{}", m.body);
    let ancient = m.one("x509_cert_not_before", &[("subject_CN", "ancient")]);
    assert_eq!(ancient.value, year_0 as f64);
    let ancient = m.one("x509_cert_not_after", &[("subject_CN", "ancient")]);
    assert_eq!(ancient.value, year_9999 as f64);
    let long = m.one("x509_cert_not_after", &[("subject_CN", "long-serial")]);
    // 0x7f7f…7f (20 bytes) in decimal.
    let mut decimal = vec![0u8]; // little-endian base-10 digits
    for byte in [0x7fu32; 20] {
        let mut carry = byte;
        for d in decimal.iter_mut() {
            let v = *d as u32 * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            decimal.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    let expected: String = decimal.iter().rev().map(|d| char::from(b'0' + d)).collect();
    assert_eq!(long.labels["serial_number"], expected);
    promtool_accepts(&m.body);
}
