//! Refreshes: files replaced the ways real tools rotate them, deletions, and errors that
//! appear and clear (logged once each way).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::symlink;

use common::*;

#[test]
fn atomic_rename_is_picked_up_and_deletion_removes_the_series() {
    let dir = TempDir::new("rename");
    let now = now();
    dir.write("certs/a.pem", pem("a-v1", now, now + 100));
    dir.write("certs/b.pem", pem("b", now, now + 100));
    let exporter = Exporter::start(&["-d", &dir.str("certs"), "--refresh-interval=100ms"]);
    assert_eq!(exporter.metrics().label_values("subject_CN"), ["a-v1", "b"]);

    let tmp = dir.write("a.pem.tmp", pem("a-v2", now, now + 200));
    std::fs::rename(tmp, dir.path("certs/a.pem")).unwrap();
    exporter.metrics_until("a-v2", |m| m.label_values("subject_CN") == ["a-v2", "b"]);

    std::fs::remove_file(dir.path("certs/b.pem")).unwrap();
    let m = exporter.metrics_until("b gone", |m| m.label_values("subject_CN") == ["a-v2"]);
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn kubelet_style_data_symlink_swap() {
    // Secret volumes: tls.crt -> ..data/tls.crt, ..data -> ..2026_01_01 (swapped atomically).
    let dir = TempDir::new("kubelet");
    let now = now();
    dir.write("vol/..v1/tls.crt", pem("kubelet-v1", now, now + 100));
    dir.write("vol/..v2/tls.crt", pem("kubelet-v2", now, now + 100));
    symlink("..v1", dir.path("vol/..data")).unwrap();
    symlink("..data/tls.crt", dir.path("vol/tls.crt")).unwrap();
    let exporter = Exporter::start(&["-d", &dir.str("vol"), "--refresh-interval=100ms"]);
    assert_eq!(
        exporter.metrics().label_values("subject_CN"),
        ["kubelet-v1"]
    );
    symlink("..v2", dir.path("vol/..data_tmp")).unwrap();
    std::fs::rename(dir.path("vol/..data_tmp"), dir.path("vol/..data")).unwrap();
    let m = exporter.metrics_until("kubelet-v2", |m| {
        m.label_values("subject_CN") == ["kubelet-v2"]
    });
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn certbot_style_live_link_swap() {
    // live/example/cert.pem -> ../../archive/example/certN.pem, relinked on renewal.
    let dir = TempDir::new("certbot");
    let now = now();
    dir.write(
        "archive/example/cert1.pem",
        pem("certbot-1", now, now + 100),
    );
    dir.write(
        "archive/example/cert2.pem",
        pem("certbot-2", now, now + 200),
    );
    std::fs::create_dir_all(dir.path("live/example")).unwrap();
    symlink(
        "../../archive/example/cert1.pem",
        dir.path("live/example/cert.pem"),
    )
    .unwrap();
    let watched = dir.str("live/example/cert.pem");
    let exporter = Exporter::start(&["-f", &watched, "--refresh-interval=100ms"]);
    assert_eq!(exporter.metrics().label_values("subject_CN"), ["certbot-1"]);
    symlink(
        "../../archive/example/cert2.pem",
        dir.path("live/example/cert.pem.new"),
    )
    .unwrap();
    std::fs::rename(
        dir.path("live/example/cert.pem.new"),
        dir.path("live/example/cert.pem"),
    )
    .unwrap();
    let m = exporter.metrics_until("certbot-2", |m| {
        m.label_values("subject_CN") == ["certbot-2"]
    });
    assert_eq!(
        m.one("x509_cert_not_after", &[]).labels["filepath"],
        watched
    );
}

#[test]
fn an_error_is_logged_when_it_appears_and_when_it_clears() {
    let dir = TempDir::new("errlog");
    let now = now();
    let path = dir.write("c.pem", "garbage\n");
    let exporter = Exporter::start(&["-f", path.to_str().unwrap(), "--refresh-interval=50ms"]);
    assert_eq!(exporter.metrics().value("x509_read_errors"), 1.0);
    // Several refreshes with the same failure.
    exporter.metrics_until("a few refreshes", |m| {
        m.value("x509_read_errors_total") >= 5.0
    });
    let tmp = dir.write("c.pem.tmp", pem("c", now, now + 100));
    std::fs::rename(tmp, &path).unwrap();
    let m = exporter.metrics_until("recovery", |m| m.value("x509_read_errors") == 0.0);
    assert_eq!(m.label_values("subject_CN"), ["c"]);
    let failure = format!("read {}: no certificate found", path.display());
    exporter.wait_log(["resolved", failure.as_str()], LOG_WAIT);
    let log = exporter.log_lines();
    let warned = log
        .iter()
        .filter(|l| l.contains("WARN") && l.contains(&failure))
        .count();
    let cleared = log
        .iter()
        .filter(|l| l.contains("resolved") && l.contains(&failure))
        .count();
    assert_eq!((warned, cleared), (1, 1), "{log:#?}");
}

#[test]
fn expired_flips_at_scrape_time_without_a_refresh() {
    // What X509CertificateExpired relies on: the flag and the time left are computed when
    // /metrics is served, so a certificate that runs out between two refreshes (an hour
    // apart here) is reported expired by the next scrape, not the next refresh.
    let dir = TempDir::new("expires-now");
    let start = now();
    let not_after = start + 8;
    dir.write("short.pem", pem("short-lived", start - 60, not_after));
    let exporter = Exporter::start(&["-d", &dir.str(""), "--refresh-interval=1h"]);
    let before = exporter.metrics();
    let scraped = now();
    assert!(
        scraped < not_after,
        "the first scrape ended at {scraped}, after not_after {not_after}: too slow to test"
    );
    assert_eq!(before.value("x509_cert_expired"), 0.0, "{}", before.body);
    // The harness runs at debug level, where each refresh logs "refreshed N items".
    let refreshes = |e: &Exporter| {
        e.log_lines()
            .iter()
            .filter(|l| l.contains("refreshed 1 items"))
            .count()
    };
    assert_eq!(refreshes(&exporter), 1, "{:?}", exporter.log_lines());

    // Wait on the wall clock (the event itself), with a deadline, then scrape once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while now() <= not_after + 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock stood still"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let after = exporter.scrape();
    assert_eq!(after.value("x509_cert_expired"), 1.0, "{}", after.body);
    assert_eq!(after.value("x509_cert_not_after"), not_after as f64);
    assert_eq!(after.value("x509_read_errors"), 0.0);
    // Nothing was read again in between.
    assert_eq!(refreshes(&exporter), 1, "{:?}", exporter.log_lines());
}
