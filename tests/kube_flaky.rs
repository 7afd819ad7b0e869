//! A flaky real Kubernetes API: the kube-apiserver stopped in the middle of a paginated list
//! and started again, and etcd compacted under a paginated list (410 Expired). This binary
//! has an API server of its own, since it stops it; its tests take turns.
//! (A replaced service-account token is in tests/kube.rs; 429, hanging responses and
//! bodies cut mid-JSON in tests/kube_faults.rs, against the in-process fake.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::cluster::own_cluster;
use common::*;

/// The tests share one API server that some of them stop: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// An exporter listing `ns` in pages of one Secret at `qps` requests a second.
fn slow_lister(ns: &str, qps: &str, refresh: &str) -> Exporter {
    let c = own_cluster();
    Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_ADMIN"),
        "--include-namespace",
        ns,
        "--kube-page-size=1",
        &format!("--kube-api-rate-limit-qps={qps}"),
        "--kube-api-rate-limit-burst=1",
        &format!("--refresh-interval={refresh}"),
    ])
}

#[test]
fn the_api_server_stopped_mid_list_and_started_again() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = own_cluster();
    let ns = c.namespace("outage", serde_json::json!({}));
    for i in 0..10 {
        c.tls_secret(&ns, &format!("s{i}"), &format!("cn-{i}"));
    }
    // A pass takes about 2.5 s (10 pages at 4 a second), one starts every second after the
    // last: most of the time a list is under way.
    let exporter = slow_lister(&ns, "4", "1s");
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 10);
    std::thread::sleep(Duration::from_millis(1500));

    let restart = std::thread::spawn(|| own_cluster().restart_apiserver(Duration::from_secs(3)));
    let m = exporter.scrape_within(Duration::from_secs(30), "the outage", |m| {
        m.value("x509_read_errors") >= 1.0
    });
    assert_eq!(
        m.count("x509_cert_not_after"),
        10,
        "the last good data is served during the outage"
    );
    assert_eq!(exporter.get("/healthz").status, 200);
    restart.join().unwrap();

    // Back: a Secret created since shows, and the error clears by itself.
    c.tls_secret(&ns, "s10", "cn-10");
    let m = exporter.scrape_within(Duration::from_secs(60), "recovery", |m| {
        m.value("x509_read_errors") == 0.0 && m.count("x509_cert_not_after") == 11
    });
    assert!(
        m.value("x509_read_errors_total") >= 1.0,
        "the outage was counted"
    );
    // The failure names the namespace and the cause.
    exporter.wait_log([format!("namespace {ns}").as_str(), "connect"], LOG_WAIT);
}

#[test]
fn etcd_compacted_under_a_paginated_list_restarts_it() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = own_cluster();
    let ns = c.namespace("compacted", serde_json::json!({}));
    for i in 0..10 {
        c.tls_secret(&ns, &format!("s{i}"), &format!("cn-{i}"));
    }
    // The first pass takes about 5 s (10 pages at 2 a second).
    let exporter = slow_lister(&ns, "2", "10m");
    std::thread::sleep(Duration::from_secs(2));
    // A write, then a compaction at the newest revision: the continue token of the list
    // under way now names a compacted revision.
    c.tls_secret(&ns, "late", "cn-late");
    c.compact();
    let m = exporter.metrics();
    assert_eq!(
        m.count("x509_cert_not_after"),
        11,
        "the restarted list sees the Secret written meanwhile"
    );
    assert_eq!(m.value("x509_read_errors"), 0.0);
    exporter.wait_log("continue token expired, restarting the list", LOG_WAIT);
}
