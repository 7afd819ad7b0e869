//! A flaky real Kubernetes API: the kube-apiserver stopped in the middle of a paginated list
//! and started again, and etcd compacted under a paginated list (410 Expired); and the pages
//! of a list counted by the API server itself. This binary has an API server of its own,
//! since it stops it; its tests take turns, so the server's request counters are theirs.
//! (A replaced service-account token is in tests/kube.rs; 429, hanging responses and
//! bodies cut mid-JSON in tests/kube_faults.rs, against the in-process fake.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Waits until the API server has answered between `from` and `to` (inclusive) of the
/// `pages` requests of the pass under way (`before` is its count of Secret lists before
/// the exporter started); returns when it saw that.
fn wait_mid_list(before: u64, pages: u64, from: u64, to: u64) -> Instant {
    let c = own_cluster();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = Instant::now();
        let done = (c.list_requests("secrets") - before) % pages;
        if (from..=to).contains(&done) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no list was seen between its pages {from} and {to}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_api_server_stopped_mid_list_and_started_again() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = own_cluster();
    let ns = c.namespace("outage", serde_json::json!({}));
    for i in 0..10 {
        c.tls_secret(&ns, &format!("s{i}"), &format!("cn-{i}"));
    }
    // A pass is 10 pages at 2 a second (about 4.5 s); one starts every second after the last.
    let before = c.list_requests("secrets");
    let exporter = slow_lister(&ns, "2", "1s");
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 10);
    // The first pass was 10 requests (the next starts a second after it, and would take
    // seconds to add as many).
    let deadline = Instant::now() + Duration::from_secs(2);
    while c.list_requests("secrets") - before < 10 {
        assert!(Instant::now() < deadline, "the first pass was not 10 pages");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Cut a list in its middle: once the server has answered 1 to 5 of a pass's pages, the
    // pass needs at least 4 more requests (1.5 s at 2 a second, one of them perhaps already
    // answered but not yet counted); the server is killed well within that.
    let seen = wait_mid_list(before, 10, 1, 5);
    let (argv, killed) = c.stop_apiserver("KILL");
    let took = killed - seen;
    assert!(
        took < Duration::from_millis(1000),
        "the API server was killed {took:?} after a page was counted: the list may have \
         ended first"
    );
    let m = exporter.scrape_within(Duration::from_secs(30), "the outage", |m| {
        m.value("x509_read_errors") >= 1.0
    });
    assert_eq!(
        m.count("x509_cert_not_after"),
        10,
        "the last good data is served during the outage, not the cut list's first pages"
    );
    assert_eq!(exporter.get("/healthz").status, 200);
    // The failure names the namespace and the cause.
    exporter.wait_log([format!("namespace {ns}").as_str(), "connect"], LOG_WAIT);
    c.start_apiserver(&argv);

    // Back: a Secret created since shows, and the error clears by itself.
    c.tls_secret(&ns, "s10", "cn-10");
    let m = exporter.scrape_within(Duration::from_secs(60), "recovery", |m| {
        m.value("x509_read_errors") == 0.0 && m.count("x509_cert_not_after") == 11
    });
    assert!(
        m.value("x509_read_errors_total") >= 1.0,
        "the outage was counted"
    );
}

#[test]
fn etcd_compacted_under_a_paginated_list_restarts_it() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = own_cluster();
    let ns = c.namespace("compacted", serde_json::json!({}));
    for i in 0..10 {
        c.tls_secret(&ns, &format!("s{i}"), &format!("cn-{i}"));
    }
    // The first pass takes about 5 s (10 pages at 2 a second). Once 2 to 5 pages are
    // answered, the exporter holds a continue token and at least 5 pages (2.5 s) remain.
    let before = c.list_requests("secrets");
    let exporter = slow_lister(&ns, "2", "10m");
    wait_mid_list(before, 10, 2, 5);
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
    // The compaction did cut the list: the server refused its continue token.
    exporter.wait_log("continue token expired, restarting the list", LOG_WAIT);
}

#[test]
fn a_paginated_list_asks_the_server_once_per_page() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = own_cluster();
    let ns = c.namespace("pages", serde_json::json!({}));
    for i in 0..25 {
        c.tls_secret(&ns, &format!("s{i:02}"), &format!("cn-{i:02}"));
    }
    let before = c.list_requests("secrets");
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_ADMIN"),
        "--include-namespace",
        &ns,
        "--kube-page-size=10",
        "--refresh-interval=10m",
    ]);
    let m = exporter.metrics();
    let expected: Vec<String> = (0..25).map(|i| format!("cn-{i:02}")).collect();
    assert_eq!(m.label_values("subject_CN"), expected);
    assert_eq!(m.value("x509_read_errors"), 0.0);
    // The server counts a request once it has answered it: wait for the third, then check
    // that there was no fourth. Pages of 10, 10 and 5, each after the continue token of
    // the one before (the second and third pages hold Secrets the first did not).
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.list_requests("secrets") - before < 3 {
        assert!(
            Instant::now() < deadline,
            "{} list requests for 25 Secrets in pages of 10",
            c.list_requests("secrets") - before
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.list_requests("secrets") - before, 3);
}
