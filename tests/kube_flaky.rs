//! A flaky real Kubernetes API: the kube-apiserver stopped in the middle of a paginated list
//! and started again, and etcd compacted under a paginated list (410 Expired); the API
//! server restarted and etcd compacted under a watch; and the pages of a list, and the
//! requests of a watch's steady state, counted by the API server itself. This binary has an API server of its own,
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

/// An exporter listing `ns` at every refresh (`--kube-watch=false`) in pages of one Secret
/// at `qps` requests a second.
fn slow_lister(ns: &str, qps: &str, refresh: &str) -> Exporter {
    let c = own_cluster();
    Exporter::start(&[
        "--watch-kube-secrets",
        "--kube-watch=false",
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

/// An exporter watching `ns` (the default), refreshing every `refresh`.
fn watcher(ns: &str, refresh: &str) -> Exporter {
    let c = own_cluster();
    Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_ADMIN"),
        "--include-namespace",
        ns,
        &format!("--refresh-interval={refresh}"),
    ])
}

#[test]
fn a_watched_namespace_costs_one_list_however_often_it_is_refreshed() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = own_cluster();
    let ns = c.namespace("steady", serde_json::json!({}));
    for i in 0..5 {
        c.tls_secret(&ns, &format!("s{i}"), &format!("cn-{i}"));
    }
    let before = c.list_requests("secrets");
    let exporter = watcher(&ns, "1s");
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 5);
    // Eight refreshes later: still the one list, and the change came through the watch.
    std::thread::sleep(Duration::from_secs(8));
    c.tls_secret(&ns, "s5", "cn-5");
    exporter.scrape_within(Duration::from_secs(2), "the sixth", |m| {
        m.count("x509_cert_not_after") == 6
    });
    assert_eq!(
        c.list_requests("secrets") - before,
        1,
        "one list, then the watch"
    );
    assert_eq!(exporter.metrics().value("x509_read_errors_total"), 0.0);
}

#[test]
fn the_api_server_restarted_and_etcd_compacted_under_a_watch() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = own_cluster();
    let ns = c.namespace("rewatch", serde_json::json!({}));
    for i in 0..3 {
        c.tls_secret(&ns, &format!("s{i}"), &format!("cn-{i}"));
    }
    let exporter = watcher(&ns, "5m");
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 3);
    // Compacted while the watch is open: nothing to notice, changes keep coming.
    c.tls_secret(&ns, "s3", "cn-3");
    c.compact();
    exporter.scrape_within(Duration::from_secs(2), "a change after compaction", |m| {
        m.count("x509_cert_not_after") == 4
    });

    // A write elsewhere, then a compaction: the version the watch would resume from (its
    // namespace's last change) is gone. The API server then goes away under the watch.
    c.namespace("elsewhere", serde_json::json!({}));
    c.compact();
    let (argv, _) = c.stop_apiserver("KILL");
    let m = exporter.scrape_within(Duration::from_secs(30), "the outage", |m| {
        m.value("x509_read_errors") >= 1.0
    });
    assert_eq!(
        m.count("x509_cert_not_after"),
        4,
        "the last good data is served during the outage"
    );
    c.start_apiserver(&argv);
    c.tls_secret(&ns, "s4", "cn-4");
    let m = exporter.scrape_within(Duration::from_secs(90), "recovery", |m| {
        m.value("x509_read_errors") == 0.0 && m.count("x509_cert_not_after") == 5
    });
    assert!(
        m.value("x509_read_errors_total") >= 1.0,
        "the outage was counted"
    );
    exporter.wait_log("compacted away, listing again", LOG_WAIT);
    // Watching again: the next change is as quick as ever.
    c.tls_secret(&ns, "s5", "cn-5");
    exporter.scrape_within(Duration::from_secs(2), "a change after the restart", |m| {
        m.count("x509_cert_not_after") == 6
    });
}

#[test]
fn ca_bundles_of_a_webhook_an_api_service_and_a_crd_are_watched() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let c = own_cluster();
    let now = now();
    let bundle = |cn: &str| b64(pem(cn, now - 10, now + 86_400).as_bytes());
    let exporter = Exporter::start(&[
        "--watch-kube-ca-bundles",
        "--kubeconfig",
        c.var("KUBECONFIG_ADMIN"),
        "--refresh-interval=5m",
    ]);
    exporter.wait_ready();
    let hooks = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
    let webhook = |cn: &str| {
        // Matches only a resource nobody has, and is ignored when it fails: harmless.
        serde_json::json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "x509e-hooks"},
            "webhooks": [{"name": "check.x509e.example.com", "sideEffects": "None",
                "admissionReviewVersions": ["v1"], "failurePolicy": "Ignore",
                "clientConfig": {"url": "https://127.0.0.1:1/check", "caBundle": bundle(cn)},
                "rules": [{"apiGroups": ["x509e.example.com"], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["nothings"]}]}]})
    };
    c.call("POST", hooks, Some(webhook("hook-ca-1")));
    let services = "/apis/apiregistration.k8s.io/v1/apiservices";
    c.call(
        "POST",
        services,
        Some(
            serde_json::json!({"apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService", "metadata": {"name": "v1.x509e.example.com"},
            "spec": {"group": "x509e.example.com", "version": "v1",
                "groupPriorityMinimum": 100, "versionPriority": 100,
                "service": {"namespace": "default", "name": "x509e-nowhere"},
                "caBundle": bundle("aggregated-ca")}}),
        ),
    );
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    c.call(
        "POST",
        crds,
        Some(serde_json::json!({"apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.x509e.example.com"},
            "spec": {"group": "x509e.example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}],
                "conversion": {"strategy": "Webhook", "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {"url": "https://127.0.0.1:1/convert",
                        "caBundle": bundle("conversion-ca")}}}}})),
    );
    let m = exporter.scrape_within(Duration::from_secs(5), "three bundles", |m| {
        m.count("x509_cert_not_after") == 3
    });
    let one = |kind: &str, cn: &str| {
        m.one(
            "x509_cert_not_after",
            &[("cabundle_resource_kind", kind), ("subject_CN", cn)],
        )
        .labels
        .clone()
    };
    let hook = one("ValidatingWebhookConfiguration", "hook-ca-1");
    assert_eq!(hook["cabundle_resource_name"], "x509e-hooks");
    assert_eq!(hook["cabundle_entry"], "check.x509e.example.com");
    let service = one("APIService", "aggregated-ca");
    assert_eq!(service["cabundle_resource_name"], "v1.x509e.example.com");
    assert!(!service.contains_key("cabundle_entry"));
    let crd = one("CustomResourceDefinition", "conversion-ca");
    assert_eq!(crd["cabundle_resource_name"], "widgets.x509e.example.com");

    // A bundle replaced: visible within 2 s.
    let mut current = c.call("GET", &format!("{hooks}/x509e-hooks"), None);
    current["webhooks"][0]["clientConfig"]["caBundle"] = bundle("hook-ca-2").into();
    c.call("PUT", &format!("{hooks}/x509e-hooks"), Some(current));
    exporter.scrape_within(Duration::from_secs(2), "the new bundle", |m| {
        m.label_values("subject_CN") == ["aggregated-ca", "conversion-ca", "hook-ca-2"]
    });
    // Gone with their objects (and the cluster left as it was).
    c.call("DELETE", &format!("{hooks}/x509e-hooks"), None);
    c.call("DELETE", &format!("{services}/v1.x509e.example.com"), None);
    c.call("DELETE", &format!("{crds}/widgets.x509e.example.com"), None);
    let m = exporter.scrape_within(Duration::from_secs(5), "all gone", |m| {
        m.count("x509_cert_not_after") == 0
    });
    assert_eq!(m.value("x509_read_errors_total"), 0.0);
}
