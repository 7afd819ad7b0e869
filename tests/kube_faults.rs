//! Kubernetes API faults end to end: the real binary against an in-process fake API server
//! (plain HTTP, scripted per test) — pagination, 5xx, 429, 410 Expired, dropped connections,
//! bad JSON, a rotating token file, resourceVersion caching, Secret data kept out of the
//! log, namespace plans and ConfigMaps, SIGTERM in the middle of scrapes and a list; and
//! (with a TLS variant and a CONNECT proxy) remote text cut short, redirects,
//! tls-server-name, proxies from the environment, and exec plugins' stderr and timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_api::*;
use common::*;

// ---------------------------------------------------------------------------------------
// Scraping helpers
// ---------------------------------------------------------------------------------------

/// The exporter on `api`, listing at every refresh (`--kube-watch=false`): these tests
/// script lists; `kube_watch.rs` scripts watches.
fn start(api: &FakeApi, extra: &[&str]) -> Exporter {
    let kubeconfig = api.kubeconfig();
    let mut args = vec![
        "--watch-kube-secrets",
        "--kube-watch=false",
        "--kubeconfig",
        &kubeconfig,
    ];
    args.extend_from_slice(extra);
    Exporter::start(&args)
}

/// `continue` of each request, `-` when absent.
fn continues(reqs: &[Req]) -> Vec<String> {
    reqs.iter()
        .map(|r| r.param("continue").unwrap_or("-").to_string())
        .collect()
}

/// Waits (at most LOG_WAIT) for a log line holding every needle.
fn log_has(exporter: &Exporter, needles: &[&str]) -> bool {
    exporter.try_wait_log(&needles, LOG_WAIT).is_some()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn pagination_follows_limit_and_continue() {
    let now = now();
    let cert = pem("paged", now - 10, now + 100_000);
    let secrets: Vec<String> = (0..250)
        .map(|i| tls_secret("paging", &format!("s{i:03}"), "1", &cert))
        .collect();
    let api = FakeApi::start("kf-pages", move |req, _| page("SecretList", &secrets, req));
    let exporter = start(&api, &["--kube-page-size=100"]);
    let m = exporter.metrics();

    let reqs = api.requests();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    assert_eq!(continues(&reqs), ["-", "c-100", "c-200"]);
    for r in &reqs {
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/v1/secrets");
        assert_eq!(r.param("limit"), Some("100"), "{r:?}");
        assert_eq!(r.param("fieldSelector"), Some("type=kubernetes.io/tls"));
        assert_eq!(r.auth.as_deref(), Some("Bearer token-1"));
    }

    assert_eq!(m.count("x509_cert_not_after"), 250, "{}", m.body);
    let names = m.label_values("secret_name");
    let expected: Vec<String> = (0..250).map(|i| format!("s{i:03}")).collect();
    assert_eq!(names, expected);
    let s = m.one("x509_cert_not_after", &[("secret_name", "s199")]);
    assert_eq!(s.labels["secret_namespace"], "paging");
    assert_eq!(s.labels["secret_key"], "tls.crt");
    assert_eq!(s.labels["subject_CN"], "paged");
    assert_eq!(s.value, (now + 100_000) as f64);
    assert!(!s.labels.contains_key("filepath"));
    assert_eq!(m.value("x509_read_errors"), 0.0);
    assert_eq!(m.value("x509_read_errors_total"), 0.0);
}

#[test]
fn a_failing_api_is_not_fatal_and_the_exporter_recovers() {
    let now = now();
    let cert = pem("recovered", now - 10, now + 5000);
    let healthy = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let api = FakeApi::start("kf-500", {
        let healthy = Arc::clone(&healthy);
        let failures = Arc::clone(&failures);
        move |_, _| {
            if healthy.load(Ordering::SeqCst) {
                Reply::ok(list(
                    "SecretList",
                    &[tls_secret("prod", "web-tls", "5", &cert)],
                    "",
                ))
            } else {
                failures.fetch_add(1, Ordering::SeqCst);
                Reply::status(500, "InternalError", "etcdserver: request timed out")
            }
        }
    });
    let mut exporter = start(&api, &["--refresh-interval=200ms"]);

    // The fake fails until told otherwise: at least two failed passes.
    let m = exporter.scrape_until("two failed passes", |m| {
        m.value("x509_read_errors_total") >= 2.0
    });
    assert_eq!(exporter.get("/readyz").status, 503);
    assert_eq!(m.value("x509_read_errors"), 1.0);
    assert_eq!(m.count("x509_cert_not_after"), 0);
    assert!(exporter.child.try_wait().unwrap().is_none(), "exited");
    assert_eq!(exporter.get("/healthz").status, 200);
    assert!(
        log_has(
            &exporter,
            &[
                "WARN",
                "list secrets in all namespaces",
                "500",
                "etcdserver: request timed out"
            ]
        ),
        "{:#?}",
        exporter.log_lines()
    );

    healthy.store(true, Ordering::SeqCst);
    let m = exporter.metrics_until("recovery", |m| {
        m.value("x509_read_errors") == 0.0 && m.count("x509_cert_not_after") == 1
    });
    assert_eq!(exporter.get("/readyz").status, 200);
    let s = m.one("x509_cert_not_after", &[("secret_name", "web-tls")]);
    assert_eq!(s.labels["secret_namespace"], "prod");
    assert_eq!(s.labels["secret_key"], "tls.crt");
    assert_eq!(s.labels["subject_CN"], "recovered");
    // One error per failed call, no more.
    assert_eq!(
        m.value("x509_read_errors_total"),
        failures.load(Ordering::SeqCst) as f64
    );
    assert!(
        log_has(&exporter, &["resolved", "list secrets in all namespaces"]),
        "{:#?}",
        exporter.log_lines()
    );
    assert!(exporter.child.try_wait().unwrap().is_none(), "exited");
}

#[test]
fn an_unreachable_api_at_startup_is_retried() {
    // A port nothing listens on (yet).
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = TempDir::new("kf-unreachable");
    write_kubeconfig(&dir, addr);
    let kubeconfig = dir.str("kubeconfig");
    let mut exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kube-watch=false",
        "--kubeconfig",
        &kubeconfig,
        "--refresh-interval=200ms",
    ]);
    let m = exporter.scrape_until("failed connections", |m| {
        m.value("x509_read_errors_total") >= 2.0
    });
    assert_eq!(m.value("x509_read_errors"), 1.0);
    assert_eq!(exporter.get("/readyz").status, 503);
    assert!(exporter.child.try_wait().unwrap().is_none(), "exited");
    assert!(
        log_has(&exporter, &["WARN", "list secrets in all namespaces"]),
        "{:#?}",
        exporter.log_lines()
    );

    let now = now();
    let cert = pem("late", now - 10, now + 1000);
    let api = FakeApi::start_on("kf-unreachable-api", &addr.to_string(), move |_, _| {
        Reply::ok(list(
            "SecretList",
            &[tls_secret("ns", "late", "1", &cert)],
            "",
        ))
    });
    let m = exporter.metrics_until("the API once it listens", |m| {
        m.label_values("secret_name") == ["late"]
    });
    assert_eq!(m.value("x509_read_errors"), 0.0);
    assert_eq!(exporter.get("/readyz").status, 200);
    assert!(api.count() >= 1);
}

#[test]
fn the_last_good_data_is_kept_while_the_api_fails() {
    let now = now();
    let a = pem("kept-a", now - 10, now + 1000);
    let b = pem("kept-b", now - 10, now + 2000);
    let api = FakeApi::start("kf-keep", move |_, n| {
        if n == 0 {
            Reply::ok(list(
                "SecretList",
                &[
                    tls_secret("ns1", "a", "1", &a),
                    tls_secret("ns2", "b", "1", &b),
                ],
                "",
            ))
        } else {
            Reply::status(503, "ServiceUnavailable", "the server is shutting down")
        }
    });
    let exporter = start(&api, &["--refresh-interval=200ms"]);
    assert_eq!(exporter.metrics().label_values("secret_name"), ["a", "b"]);

    let m = exporter.metrics_until("failed passes", |m| {
        m.value("x509_read_errors_total") >= 2.0
    });
    assert_eq!(m.label_values("subject_CN"), ["kept-a", "kept-b"]);
    assert_eq!(m.value("x509_read_errors"), 1.0);
    let first = m.value("x509_read_errors_total");
    let m = exporter.metrics_until("more failed passes", |m| {
        m.value("x509_read_errors_total") >= first + 2.0
    });
    assert_eq!(m.label_values("subject_CN"), ["kept-a", "kept-b"]);
    let a = m.one("x509_cert_not_after", &[("secret_name", "a")]);
    assert_eq!(a.labels["secret_namespace"], "ns1");
    assert_eq!(a.value, (now + 1000) as f64);
    assert_eq!(m.value("x509_read_errors"), 1.0);
    // Ready once stays ready.
    assert_eq!(exporter.get("/readyz").status, 200);
    assert!(
        log_has(
            &exporter,
            &["WARN", "list secrets in all namespaces", "503"]
        ),
        "{:#?}",
        exporter.log_lines()
    );
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Good,
    Dropped,
    Garbage,
}

#[test]
fn a_dropped_connection_and_bad_json_count_one_error_each_and_recover() {
    let now = now();
    let items = vec![
        tls_secret("ns", "one", "1", &pem("one", now - 10, now + 1000)),
        tls_secret("ns", "two", "1", &pem("two", now - 10, now + 1000)),
    ];
    let mode = Arc::new(Mutex::new(Mode::Good));
    let faults = Arc::new(AtomicUsize::new(0));
    let api = FakeApi::start("kf-drop", {
        let mode = Arc::clone(&mode);
        let faults = Arc::clone(&faults);
        move |_, _| {
            let body = list("SecretList", &items, "");
            match *mode.lock().unwrap() {
                Mode::Good => Reply::ok(body),
                Mode::Dropped => {
                    faults.fetch_add(1, Ordering::SeqCst);
                    Reply::Truncated(body[..body.len() / 2].to_string())
                }
                Mode::Garbage => {
                    faults.fetch_add(1, Ordering::SeqCst);
                    Reply::ok("<html><body>502 Bad Gateway</body></html>".to_string())
                }
            }
        }
    });
    let exporter = start(&api, &["--refresh-interval=200ms"]);
    let m = exporter.metrics();
    assert_eq!(m.label_values("subject_CN"), ["one", "two"]);
    assert_eq!(m.value("x509_read_errors"), 0.0);

    for (fault, logged) in [
        (Mode::Dropped, "reading the response"),
        (Mode::Garbage, "invalid JSON in the response"),
    ] {
        *mode.lock().unwrap() = fault;
        let m = exporter.metrics_until(&format!("{fault:?} counted"), |m| {
            m.value("x509_read_errors") == 1.0
        });
        assert_eq!(
            m.label_values("subject_CN"),
            ["one", "two"],
            "{fault:?}: the last good data is kept"
        );
        // Still failing a few passes later: still exactly one error per pass.
        let total = m.value("x509_read_errors_total");
        let m = exporter.metrics_until(&format!("{fault:?} again"), |m| {
            m.value("x509_read_errors_total") >= total + 2.0
        });
        assert_eq!(m.value("x509_read_errors"), 1.0, "{fault:?}");
        assert_eq!(m.label_values("subject_CN"), ["one", "two"]);
        assert!(
            log_has(
                &exporter,
                &["WARN", "list secrets in all namespaces", logged]
            ),
            "{fault:?}: {:#?}",
            exporter.log_lines()
        );

        *mode.lock().unwrap() = Mode::Good;
        let m = exporter.metrics_until(&format!("recovery from {fault:?}"), |m| {
            m.value("x509_read_errors") == 0.0
        });
        assert_eq!(m.label_values("subject_CN"), ["one", "two"]);
        assert_eq!(
            m.value("x509_read_errors_total"),
            faults.load(Ordering::SeqCst) as f64,
            "{fault:?}: one error per failed call"
        );
    }
}

/// The first request gets a 429 with `Retry-After: SECONDS`, later ones succeed; returns
/// the time between the first two requests.
fn throttled_once(retry_after: &str, extra: &[&str]) -> Duration {
    let now = now();
    let cert = pem("throttled", now - 10, now + 1000);
    let api = FakeApi::start("kf-429", {
        let retry_after = retry_after.to_string();
        move |_, n| {
            if n == 0 {
                Reply::status(429, "TooManyRequests", "too many requests, retry later")
                    .header("Retry-After", &retry_after)
            } else {
                Reply::ok(list(
                    "SecretList",
                    &[tls_secret("ns", "throttled", "1", &cert)],
                    "",
                ))
            }
        }
    });
    let exporter = start(&api, extra);
    let m = exporter.metrics();
    assert_eq!(m.label_values("secret_name"), ["throttled"]);
    assert_eq!(m.value("x509_read_errors"), 0.0);
    assert_eq!(m.value("x509_read_errors_total"), 1.0);
    assert!(
        log_has(
            &exporter,
            &[
                "WARN",
                "list secrets in all namespaces",
                "429 TooManyRequests"
            ]
        ),
        "{:#?}",
        exporter.log_lines()
    );
    let reqs = api.wait_requests(2);
    reqs[1].at.duration_since(reqs[0].at)
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    // Longer than the first backoff (1 s), shorter than the refresh interval (30 s).
    let gap = throttled_once("2", &[]);
    assert!(
        gap >= Duration::from_millis(1900) && gap < Duration::from_secs(10),
        "the request after a 429 with Retry-After: 2 came {gap:?} later"
    );
}

#[test]
fn retry_after_outlasts_a_shorter_refresh_interval() {
    let gap = throttled_once("1", &["--refresh-interval=200ms"]);
    assert!(
        gap >= Duration::from_millis(900),
        "the request after a 429 with Retry-After: 1 came {gap:?} later"
    );
}

#[test]
fn an_expired_continue_token_restarts_the_list() {
    let now = now();
    let cert = pem("restarted", now - 10, now + 1000);
    let secrets: Vec<String> = (0..5)
        .map(|i| tls_secret("ns", &format!("s{i}"), "1", &cert))
        .collect();
    let expired_once = AtomicBool::new(false);
    let api = FakeApi::start("kf-410", move |req, _| {
        if req.param("continue") == Some("c-2") && !expired_once.swap(true, Ordering::SeqCst) {
            return Reply::status(
                410,
                "Expired",
                "The provided continue parameter is too old to display a consistent list result.",
            );
        }
        page("SecretList", &secrets, req)
    });
    let exporter = start(&api, &["--kube-page-size=2"]);
    let m = exporter.metrics();
    let reqs = api.requests();
    assert_eq!(
        continues(&reqs),
        ["-", "c-2", "-", "c-2", "c-4"],
        "{reqs:#?}"
    );
    assert!(reqs.iter().all(|r| r.param("limit") == Some("2")));
    assert_eq!(
        m.label_values("secret_name"),
        ["s0", "s1", "s2", "s3", "s4"]
    );
    assert_eq!(m.value("x509_read_errors"), 0.0);
    assert_eq!(m.value("x509_read_errors_total"), 0.0);
    assert!(
        log_has(&exporter, &["continue token expired"]),
        "{:#?}",
        exporter.log_lines()
    );
}

#[test]
fn a_continue_token_that_keeps_expiring_gives_up_after_three_restarts() {
    let now = now();
    let cert = pem("never", now - 10, now + 1000);
    let secrets: Vec<String> = (0..3)
        .map(|i| tls_secret("ns", &format!("s{i}"), "1", &cert))
        .collect();
    let api = FakeApi::start("kf-410-always", move |req, _| {
        if req.param("continue").is_some() {
            return Reply::status(410, "Expired", "too old");
        }
        page("SecretList", &secrets, req)
    });
    let exporter = start(&api, &["--kube-page-size=2"]);
    let m = exporter.scrape_until("the failed list", |m| {
        m.value("x509_read_errors_total") >= 1.0
    });
    let reqs = api.requests();
    // The first attempt and three restarts; the next pass comes after the backoff (1 s).
    assert_eq!(
        continues(&reqs[..8]),
        ["-", "c-2", "-", "c-2", "-", "c-2", "-", "c-2"],
        "{reqs:#?}"
    );
    assert!(reqs.len() < 10, "{reqs:#?}");
    assert_eq!(m.value("x509_read_errors"), 1.0);
    assert_eq!(m.count("x509_cert_not_after"), 0);
    assert_eq!(exporter.get("/readyz").status, 503);
    assert!(
        log_has(
            &exporter,
            &[
                "WARN",
                "list secrets in all namespaces",
                "410 Expired: too old"
            ]
        ),
        "{:#?}",
        exporter.log_lines()
    );
}

#[test]
fn a_forbidden_namespace_costs_one_error_and_keeps_its_last_data() {
    let now = now();
    let a = pem("ns-a", now - 10, now + 1000);
    let b = pem("ns-b", now - 10, now + 2000);
    let forbid_b = Arc::new(AtomicBool::new(false));
    let api = FakeApi::start("kf-403", {
        let forbid_b = Arc::clone(&forbid_b);
        move |req, _| {
            match req.path.as_str() {
            "/api/v1/namespaces/a/secrets" => {
                Reply::ok(list("SecretList", &[tls_secret("a", "a", "1", &a)], ""))
            }
            "/api/v1/namespaces/b/secrets" if forbid_b.load(Ordering::SeqCst) => Reply::status(
                403,
                "Forbidden",
                "secrets is forbidden: User \"system:serviceaccount:x:y\" cannot list resource \"secrets\" in API group \"\" in the namespace \"b\"",
            ),
            "/api/v1/namespaces/b/secrets" => {
                Reply::ok(list("SecretList", &[tls_secret("b", "b", "1", &b)], ""))
            }
            _ => Reply::status(404, "NotFound", "no such path"),
        }
        }
    });
    let exporter = start(
        &api,
        &[
            "--include-namespace",
            "a",
            "--include-namespace",
            "b",
            "--refresh-interval=200ms",
        ],
    );
    assert_eq!(
        exporter.metrics().label_values("subject_CN"),
        ["ns-a", "ns-b"]
    );
    forbid_b.store(true, Ordering::SeqCst);
    let m = exporter.metrics_until("the 403", |m| m.value("x509_read_errors") == 1.0);
    assert_eq!(
        m.label_values("subject_CN"),
        ["ns-a", "ns-b"],
        "b keeps its last good data"
    );
    let total = m.value("x509_read_errors_total");
    let m = exporter.metrics_until("more passes", |m| {
        m.value("x509_read_errors_total") >= total + 2.0
    });
    assert_eq!(
        m.value("x509_read_errors"),
        1.0,
        "one error per failed call"
    );
    assert_eq!(m.label_values("subject_CN"), ["ns-a", "ns-b"]);
    assert!(
        log_has(
            &exporter,
            &["WARN", "list secrets in namespace b", "403 Forbidden"]
        ),
        "{:#?}",
        exporter.log_lines()
    );
    // Namespace a is still listed on every pass.
    let before = api
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/namespaces/a/secrets")
        .count();
    api.wait_requests(api.count() + 4);
    let after = api
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/namespaces/a/secrets")
        .count();
    assert!(after > before, "{before} -> {after}");

    forbid_b.store(false, Ordering::SeqCst);
    let m = exporter.metrics_until("recovery", |m| m.value("x509_read_errors") == 0.0);
    assert_eq!(m.label_values("subject_CN"), ["ns-a", "ns-b"]);
}

#[test]
fn a_rewritten_token_file_is_used_by_the_next_requests() {
    let now = now();
    let cert = pem("token", now - 10, now + 1000);
    let api = FakeApi::start("kf-token", move |_, _| {
        Reply::ok(list("SecretList", &[tls_secret("ns", "t", "1", &cert)], ""))
    });
    let exporter = start(&api, &["--refresh-interval=200ms"]);
    assert_eq!(exporter.metrics().label_values("secret_name"), ["t"]);
    let before = api.wait_requests(2);
    assert!(before
        .iter()
        .all(|r| r.auth.as_deref() == Some("Bearer token-1")));

    api.set_token("token-2\n");
    let changed_at = api.count();
    let deadline = Instant::now() + Duration::from_secs(20);
    let reqs = loop {
        let reqs = api.requests();
        if reqs[changed_at..]
            .iter()
            .filter(|r| r.auth.as_deref() == Some("Bearer token-2"))
            .count()
            >= 2
        {
            break reqs;
        }
        assert!(Instant::now() < deadline, "token-2 never sent: {reqs:#?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // At most the request in flight during the rename carries the old token.
    let after: Vec<_> = reqs[changed_at..]
        .iter()
        .map(|r| r.auth.clone().unwrap_or_default())
        .collect();
    let first_new = after.iter().position(|a| a == "Bearer token-2").unwrap();
    assert!(first_new <= 1, "{after:?}");
    assert!(
        after[first_new..].iter().all(|a| a == "Bearer token-2"),
        "{after:?}"
    );
    assert_eq!(exporter.metrics().value("x509_read_errors"), 0.0);
}

#[test]
fn an_unchanged_resource_version_is_not_decoded_again() {
    // No log line marks a decode, so the signal is the data itself: the fake changes the
    // certificate but not the resourceVersion (which a real API server never does), and the
    // exporter keeps the certificate it decoded before; a new resourceVersion shows the new
    // one.
    let now = now();
    let state = Arc::new(Mutex::new(("1".to_string(), pem("v1", now, now + 1000))));
    let api = FakeApi::start("kf-rv", {
        let state = Arc::clone(&state);
        move |_, _| {
            let (rv, cert) = state.lock().unwrap().clone();
            Reply::ok(list("SecretList", &[tls_secret("ns", "s", &rv, &cert)], ""))
        }
    });
    let exporter = start(&api, &["--refresh-interval=200ms"]);
    assert_eq!(exporter.metrics().label_values("subject_CN"), ["v1"]);

    state.lock().unwrap().1 = pem("v2-same-rv", now, now + 2000);
    let changed_at = api.count();
    // Scraped throughout several passes over the new data (a fifth request means four
    // finished and reported), the old certificate stays.
    loop {
        let done = api.count() >= changed_at + 5;
        let m = exporter.metrics();
        assert_eq!(
            m.label_values("subject_CN"),
            ["v1"],
            "re-decoded although resourceVersion is unchanged"
        );
        assert_eq!(m.value("x509_read_errors"), 0.0);
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    state.lock().unwrap().0 = "2".to_string();
    let m = exporter.metrics_until("the new resourceVersion", |m| {
        m.label_values("subject_CN") == ["v2-same-rv"]
    });
    assert_eq!(
        m.one("x509_cert_not_after", &[("secret_name", "s")]).value,
        (now + 2000) as f64
    );
}

#[test]
fn secret_data_is_never_logged() {
    let now = now();
    let key = "-----BEGIN PRIVATE KEY-----\nSECRETMATERIALxkcd936correcthorsebatterystaple\n-----END PRIVATE KEY-----\n";
    // A PEM certificate block whose body is not base64: a read error, not a log of its body.
    let bad_cert =
        "-----BEGIN CERTIFICATE-----\nTOPSECRETCERTBODY!!correcthorse\n-----END CERTIFICATE-----\n";
    // Bytes that are not a certificate at all, and a value that is not even base64.
    let garbage = "SECRETGARBAGEcorrecthorsebatterystaple\n";
    let not_base64 = "SECRETNOTBASE64!!correcthorse".to_string();
    let good = pem("good", now - 10, now + 1000);
    let items = vec![
        secret(
            "vault",
            "leaky",
            "1",
            "kubernetes.io/tls",
            &[
                ("tls.crt", bad_cert.as_bytes()),
                ("tls.key", key.as_bytes()),
            ],
        ),
        secret(
            "vault",
            "garbage",
            "1",
            "kubernetes.io/tls",
            &[("tls.crt", garbage.as_bytes()), ("tls.key", key.as_bytes())],
        ),
        secret_b64(
            "vault",
            "not-base64",
            "1",
            "kubernetes.io/tls",
            &[("tls.crt", not_base64.clone())],
        ),
        tls_secret("vault", "good", "1", &good),
    ];
    let api = FakeApi::start("kf-leak", move |_, _| {
        Reply::ok(list("SecretList", &items, ""))
    });
    // The key is read too (a second -s rule), so its value goes through the decoder.
    let exporter = start(
        &api,
        &[
            "-s",
            "kubernetes.io/tls:tls.crt",
            "-s",
            "kubernetes.io/tls:tls.key",
            "--expose-per-cert-error-metrics",
            "--refresh-interval=200ms",
        ],
    );
    let m = exporter.metrics();
    assert_eq!(m.label_values("secret_name"), ["good"]);
    // leaky: tls.crt and tls.key; garbage: tls.crt and tls.key; not-base64: tls.crt.
    assert_eq!(m.value("x509_read_errors"), 5.0, "{}", m.body);
    for (name, key) in [
        ("leaky", "tls.crt"),
        ("leaky", "tls.key"),
        ("garbage", "tls.crt"),
        ("garbage", "tls.key"),
        ("not-base64", "tls.crt"),
    ] {
        assert_eq!(
            m.one(
                "x509_cert_error",
                &[("secret_name", name), ("secret_key", key)]
            )
            .value,
            1.0
        );
    }
    // A few more passes, then look at everything logged.
    api.wait_requests(api.count() + 2);
    exporter.wait_log("secret vault/leaky key tls.crt", LOG_WAIT);
    exporter.wait_log("secret vault/not-base64 key tls.crt", LOG_WAIT);
    let log = exporter.log_lines().join("\n");
    let forbidden = [
        "SECRETMATERIAL".to_string(),
        "TOPSECRET".to_string(),
        "SECRETGARBAGE".to_string(),
        "SECRETNOTBASE64".to_string(),
        "correcthorse".to_string(),
        b64(key.as_bytes()),
        b64(key.as_bytes())[..40].to_string(),
        b64(bad_cert.as_bytes())[..40].to_string(),
        b64(garbage.as_bytes())[..40].to_string(),
        // The certificate itself is not secret, but its data has no business in a log.
        b64(good.as_bytes())[..40].to_string(),
    ];
    for f in &forbidden {
        assert!(!log.contains(f.as_str()), "the log holds {f:?}:\n{log}");
    }
}

#[test]
fn include_namespace_lists_only_that_namespace() {
    let now = now();
    let cert = pem("team-a", now - 10, now + 1000);
    let api = FakeApi::start("kf-include", move |req, _| {
        if req.path == "/api/v1/namespaces/team-a/secrets" {
            Reply::ok(list(
                "SecretList",
                &[tls_secret("team-a", "api-tls", "1", &cert)],
                "",
            ))
        } else {
            Reply::status(403, "Forbidden", "namespace-scoped RBAC only")
        }
    });
    let exporter = start(&api, &["--include-namespace", "team-a"]);
    let m = exporter.metrics();
    let reqs = api.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/api/v1/namespaces/team-a/secrets"]);
    assert_eq!(
        reqs[0].param("fieldSelector"),
        Some("type=kubernetes.io/tls")
    );
    let s = m.one("x509_cert_not_after", &[("secret_name", "api-tls")]);
    assert_eq!(s.labels["secret_namespace"], "team-a");
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn exclude_namespace_lists_namespaces_then_each_kept_one() {
    let now = now();
    let cert = pem("per-namespace", now - 10, now + 1000);
    let api = FakeApi::start("kf-exclude", move |req, _| {
        if req.path == "/api/v1/namespaces" {
            return page(
                "NamespaceList",
                &[
                    namespace("default"),
                    namespace("kube-system"),
                    namespace("team-a"),
                ],
                req,
            );
        }
        let ns = req
            .path
            .strip_prefix("/api/v1/namespaces/")
            .and_then(|p| p.strip_suffix("/secrets"));
        match ns {
            Some(ns) => Reply::ok(list(
                "SecretList",
                &[tls_secret(ns, &format!("{ns}-tls"), "1", &cert)],
                "",
            )),
            None => Reply::status(404, "NotFound", "no such path"),
        }
    });
    let exporter = start(&api, &["--exclude-namespace", "kube-system"]);
    let m = exporter.metrics();
    let reqs = api.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces",
            "/api/v1/namespaces/default/secrets",
            "/api/v1/namespaces/team-a/secrets"
        ]
    );
    assert_eq!(reqs[0].param("limit"), Some("100"));
    assert_eq!(reqs[0].param("fieldSelector"), None);
    assert_eq!(m.label_values("secret_name"), ["default-tls", "team-a-tls"]);
    assert!(m
        .find(
            "x509_cert_not_after",
            &[("secret_namespace", "kube-system")]
        )
        .is_empty());
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn configmaps_from_data_and_binary_data() {
    let now = now();
    let text_ca = pem("text-ca", now - 10, now + 1000);
    let binary_ca = Cert::self_signed(&Spec::new("binary-ca", now - 10, now + 2000)).der();
    let binary_pem_ca = pem("binary-pem-ca", now - 10, now + 3000);
    let configmaps = vec![
        configmap(
            "pki",
            "text",
            &[
                ("ca.crt", text_ca.clone()),
                ("other", "not a certificate".to_string()),
            ],
            &[],
        ),
        configmap("pki", "binary", &[], &[("ca.crt", b64(&binary_ca))]),
        configmap(
            "pki",
            "binary-pem",
            &[],
            &[("ca.crt", b64(binary_pem_ca.as_bytes()))],
        ),
    ];
    let api = FakeApi::start("kf-cm", move |req, _| match req.path.as_str() {
        "/api/v1/secrets" => Reply::ok(list("SecretList", &[], "")),
        "/api/v1/configmaps" => page("ConfigMapList", &configmaps, req),
        _ => Reply::status(404, "NotFound", "no such path"),
    });
    let exporter = start(&api, &["-c", "ca.crt"]);
    let m = exporter.metrics();
    let reqs = api.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/api/v1/secrets", "/api/v1/configmaps"]);
    let cm = &reqs[1];
    assert_eq!(cm.param("limit"), Some("100"));
    assert_eq!(
        cm.param("fieldSelector"),
        None,
        "no Secret type on ConfigMaps"
    );

    assert_eq!(m.count("x509_cert_not_after"), 3, "{}", m.body);
    for (name, cn, not_after) in [
        ("text", "text-ca", now + 1000),
        ("binary", "binary-ca", now + 2000),
        ("binary-pem", "binary-pem-ca", now + 3000),
    ] {
        let s = m.one("x509_cert_not_after", &[("configmap_name", name)]);
        assert_eq!(s.labels["configmap_namespace"], "pki");
        assert_eq!(s.labels["configmap_key"], "ca.crt");
        assert_eq!(s.labels["subject_CN"], cn);
        assert_eq!(s.value, not_after as f64);
        assert!(!s.labels.contains_key("secret_name"), "{:?}", s.labels);
    }
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn an_exec_credential_plugin_is_run_once_and_its_token_cached_until_expiry() {
    let now = now();
    let cert = pem("exec", now - 10, now + 100_000);
    let secrets = vec![tls_secret("ns", "s", "1", &cert)];
    let api = FakeApi::start("kf-exec", move |req, _| page("SecretList", &secrets, req));
    let calls = api.dir.path("calls");
    // Run N emits `exec-token-N`, valid 13 s: the client asks again 10 s before the expiry,
    // so each token is used for about 3 s, then the plugin runs again.
    use_exec_plugin(
        &api,
        &format!(
            "echo \"$KUBERNETES_EXEC_INFO\" >> {calls}\nn=$(wc -l < {calls})\nexp=$(date -u -d '+13 seconds' +%Y-%m-%dT%H:%M:%SZ)\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"exec-token-%s\",\"expirationTimestamp\":\"%s\"}}}}' \"$n\" \"$exp\"\n",
            calls = calls.display()
        ),
    );
    let exporter = start(&api, &["--refresh-interval=100ms"]);
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 1);
    // Wait for the first request carrying the second token.
    let deadline = Instant::now() + Duration::from_secs(20);
    let reqs = loop {
        let reqs = api.requests();
        if reqs
            .iter()
            .any(|r| r.auth.as_deref() == Some("Bearer exec-token-2"))
        {
            break reqs;
        }
        assert!(
            Instant::now() < deadline,
            "the plugin was not run again before its token expired: {reqs:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let invocations = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        invocations.lines().count(),
        2,
        "once per token: {invocations}"
    );
    assert!(invocations.contains("\"kind\":\"ExecCredential\""));
    let first_new = reqs
        .iter()
        .position(|r| r.auth.as_deref() == Some("Bearer exec-token-2"))
        .unwrap();
    assert!(
        reqs[..first_new]
            .iter()
            .all(|r| r.auth.as_deref() == Some("Bearer exec-token-1")),
        "{reqs:#?}"
    );
    // The first token was cached: several passes (one every 100 ms) used it, for about the
    // 3 s it had left before the 10 s margin.
    assert!(first_new >= 5, "the first token was not reused: {reqs:#?}");
    let used_for = reqs[first_new].at - reqs[0].at;
    assert!(
        used_for >= Duration::from_millis(1500),
        "the first token was replaced after {used_for:?}"
    );
    // Later requests carry the new token, not the old one.
    let later = api.wait_requests(first_new + 3);
    assert!(
        later[first_new..]
            .iter()
            .all(|r| r.auth.as_deref() == Some("Bearer exec-token-2")),
        "{later:#?}"
    );
}

#[test]
fn an_exec_plugin_of_api_version_v1beta1_is_asked_in_v1beta1() {
    let api = FakeApi::start("kf-exec-beta", one_secret("beta"));
    let calls = api.dir.path("calls");
    use_exec_plugin_version(
        &api,
        "client.authentication.k8s.io/v1beta1",
        &format!(
            "echo \"$KUBERNETES_EXEC_INFO\" >> {calls}\nprintf '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"beta-token\"}}}}'\n",
            calls = calls.display()
        ),
    );
    let exporter = start(&api, &[]);
    let m = exporter.metrics();
    assert_eq!(m.label_values("secret_name"), ["beta"]);
    assert_eq!(m.value("x509_read_errors"), 0.0);
    let reqs = api.requests();
    assert_eq!(
        reqs[0].auth.as_deref(),
        Some("Bearer beta-token"),
        "{reqs:#?}"
    );
    let info = std::fs::read_to_string(&calls).unwrap();
    assert!(
        info.contains("\"apiVersion\":\"client.authentication.k8s.io/v1beta1\""),
        "{info}"
    );
}

#[test]
fn a_response_that_never_comes_times_out_and_the_next_pass_recovers() {
    let now = now();
    let cert = pem("slow", now - 10, now + 100_000);
    let secrets = vec![tls_secret("ns", "slow", "1", &cert)];
    let api = FakeApi::start("kf-hang", move |req, n| {
        if n == 0 {
            // Longer than the client's 30 s wait for a response head.
            std::thread::sleep(Duration::from_secs(40));
        }
        page("SecretList", &secrets, req)
    });
    let exporter = start(&api, &[]);
    // The listener answers while the API call hangs.
    api.wait_requests(1);
    assert_eq!(exporter.get("/healthz").status, 200);
    assert_eq!(exporter.get("/readyz").status, 503);
    let m = exporter.scrape_within(Duration::from_secs(45), "the timeout", |m| {
        m.value("x509_read_errors_total") >= 1.0
    });
    assert_eq!(m.count("x509_cert_not_after"), 0);
    assert!(
        log_has(&exporter, &["list secrets in all namespaces", "timed out"]),
        "{:#?}",
        exporter.log_lines()
    );
    let m = exporter.metrics_until("recovery", |m| m.count("x509_cert_not_after") == 1);
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn max_cache_duration_relists_between_half_and_all_of_it() {
    let now = now();
    let cert = pem("cached", now - 10, now + 100_000);
    let secrets = vec![tls_secret("ns", "c", "1", &cert)];
    let api = FakeApi::start("kf-cache", move |req, _| page("SecretList", &secrets, req));
    let exporter = start(
        &api,
        &["--refresh-interval=100ms", "--max-cache-duration=2s"],
    );
    exporter.wait_ready();
    // The second list is timed by the fake itself: no re-list before half the cache
    // duration (1 s), none later than all of it (with some slack for a loaded machine), and
    // none in between (the 100 ms refresh passes serve the cache).
    let reqs = api.wait_requests(2);
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_millis(950) && gap <= Duration::from_millis(2300),
        "{gap:?}"
    );
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    // Between lists the data and the error count stay as they were.
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 1);
}

#[test]
fn the_client_side_rate_limit_spaces_requests() {
    let now = now();
    let cert = pem("limited", now - 10, now + 100_000);
    let secrets: Vec<String> = (0..6)
        .map(|i| tls_secret("ns", &format!("r{i}"), "1", &cert))
        .collect();
    let api = FakeApi::start("kf-rate", move |req, _| page("SecretList", &secrets, req));
    let exporter = start(
        &api,
        &[
            "--kube-page-size=1",
            "--kube-api-rate-limit-qps=10",
            "--kube-api-rate-limit-burst=1",
        ],
    );
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 6);
    let reqs = api.requests();
    assert_eq!(reqs.len(), 6);
    for pair in reqs.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(85),
            "requests {gap:?} apart at 10 qps"
        );
    }
}

#[test]
fn sigterm_during_scrapes_and_a_list_exits_zero_without_half_answers() {
    const CERTS: usize = 5_000;
    let now = now();
    let dir = TempDir::new("kf-shutdown");
    let file_cert = pem("file", now - 10, now + 100_000);
    for i in 0..CERTS {
        dir.write(&format!("c{i}.pem"), &file_cert);
    }
    let cert = pem("listed", now - 10, now + 100_000);
    let secrets: Vec<String> = (0..4)
        .map(|i| tls_secret("ns", &format!("s{i}"), "1", &cert))
        .collect();
    // The second page of the list never comes while the test runs.
    let api = FakeApi::start("kf-shutdown-api", move |req, _| {
        if req.param("continue").is_some() {
            std::thread::sleep(Duration::from_secs(60));
        }
        page("SecretList", &secrets, req)
    });
    let mut exporter = start(&api, &["-d", &dir.str(""), "--kube-page-size=2"]);
    api.wait_requests(2);
    exporter.scrape_until("the files", |m| m.count("x509_cert_not_after") >= CERTS);

    // 50 concurrent plain scrapes; each records what it received.
    let addr = exporter.addr;
    let barrier = Arc::new(std::sync::Barrier::new(51));
    let started = Arc::new(AtomicUsize::new(0));
    let scrapes: Vec<_> = (0..50)
        .map(|_| {
            let (barrier, started) = (Arc::clone(&barrier), Arc::clone(&started));
            std::thread::spawn(move || {
                barrier.wait();
                let Ok(mut s) = TcpStream::connect(addr) else {
                    return None;
                };
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .is_err()
                {
                    return None;
                }
                let mut raw = Vec::new();
                let mut buf = [0u8; 65536];
                loop {
                    match std::io::Read::read(&mut s, &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if raw.is_empty() {
                                started.fetch_add(1, Ordering::SeqCst);
                            }
                            raw.extend_from_slice(&buf[..n]);
                        }
                    }
                }
                Some(raw)
            })
        })
        .collect();
    barrier.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while started.load(Ordering::SeqCst) < 5 {
        assert!(Instant::now() < deadline, "no scrape started");
        std::thread::sleep(Duration::from_millis(1));
    }
    let sent = Instant::now();
    let status = exporter.signal("TERM", Duration::from_secs(5));
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "exit 0 within 5 s, after {:?}",
        sent.elapsed()
    );

    let mut whole = 0;
    for scrape in scrapes {
        let Some(raw) = scrape.join().unwrap() else {
            continue;
        };
        if raw.is_empty() {
            continue; // Not served: refused before any byte, which a scraper retries.
        }
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        assert!(raw.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(raw.ends_with(b"\r\n0\r\n\r\n"), "a half-written answer");
        let body = String::from_utf8(dechunk(&raw[split + 4..])).unwrap();
        assert_eq!(body.matches("x509_cert_not_after{").count(), CERTS);
        whole += 1;
    }
    eprintln!(
        "{whole} of 50 answers completed; exit {:?} after SIGTERM",
        sent.elapsed()
    );
    assert!(whole >= 5, "{whole} answers completed");
}

// ---------------------------------------------------------------------------------------
// Hardening: remote text, redirects, TLS names, proxies, exec plugins
// ---------------------------------------------------------------------------------------

/// Writes `file` in `dir`: a kubeconfig whose cluster has `server` and the extra `cluster`
/// lines (indented by the caller's YAML flow map), and a user with `tokenFile: token`.
fn custom_kubeconfig(dir: &TempDir, file: &str, server: &str, cluster: &str) -> String {
    dir.write(
        file,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake}}\nclusters:\n- name: fake\n  cluster: {{server: '{server}'{cluster}}}\nusers:\n- name: fake\n  user: {{tokenFile: token}}\n"
        ),
    );
    dir.str(file)
}

/// Starts the exporter on `kubeconfig` with no proxy variable but those in `env`.
fn start_with_env(kubeconfig: &str, extra: &[&str], env: &[(&str, &str)]) -> Exporter {
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--listen-address=127.0.0.1:0")
        .args([
            "--watch-kube-secrets",
            "--kube-watch=false",
            "--kubeconfig",
            kubeconfig,
        ])
        .args(extra);
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied());
    Exporter::spawn(cmd)
}

fn one_secret(cn: &str) -> impl Fn(&Req, usize) -> Reply + Send + Sync + 'static {
    let now = now();
    let body = list(
        "SecretList",
        &[tls_secret("ns", cn, "1", &pem(cn, now - 10, now + 100_000))],
        "",
    );
    move |_, _| Reply::ok(body.clone())
}

#[test]
fn a_huge_status_message_or_error_body_is_cut_in_the_log() {
    let api = FakeApi::start("kf-huge", |_, n| {
        if n % 3 == 0 {
            Reply::status(500, "InternalError", &"m".repeat(5_000_000))
        } else if n % 3 == 1 {
            // JSON whose error message quotes a value of 4 MB.
            Reply::ok(format!("{{\"items\":\"{}\"}}", "j".repeat(4_000_000)))
        } else {
            Reply::Full {
                status: 502,
                headers: Vec::new(),
                body: format!("<html>{}</html>", "b".repeat(3_000_000)),
            }
        }
    });
    let exporter = start(&api, &["--refresh-interval=200ms"]);
    exporter.scrape_until("three failed passes", |m| {
        m.value("x509_read_errors_total") >= 3.0
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, json, body) = loop {
        let lines = exporter.log_lines();
        let find = |needle: &str| {
            lines
                .iter()
                .find(|l| l.contains("list secrets in all namespaces") && l.contains(needle))
                .cloned()
        };
        if let (Some(a), Some(b), Some(c)) =
            (find("500 InternalError"), find("invalid JSON"), find("502"))
        {
            break (a, b, c);
        }
        assert!(Instant::now() < deadline, "{lines:#?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.len() < 1000, "{} bytes: {status}", status.len());
    assert!(
        status.ends_with(&format!("{}\u{2026} (cut, 5000000 bytes)", "m".repeat(100))),
        "{status}"
    );
    assert!(json.len() < 1000, "{} bytes: {json}", json.len());
    assert!(json.contains("\"jjjj"), "{json}");
    assert!(json.contains("\u{2026} (cut, "), "{json}");
    assert!(body.len() < 1000, "{} bytes: {body}", body.len());
    assert!(body.contains("<html>bbbb"), "{body}");
    assert!(body.ends_with("\u{2026} (cut, 3000013 bytes)"), "{body}");
}

#[test]
fn a_redirect_is_an_error_naming_its_location_and_is_not_followed() {
    let now = now();
    let cert = pem("before-redirect", now - 10, now + 1000);
    let api = FakeApi::start("kf-302", move |_, n| {
        if n == 0 {
            Reply::ok(list(
                "SecretList",
                &[tls_secret("ns", "kept", "1", &cert)],
                "",
            ))
        } else {
            Reply::Full {
                status: 302,
                headers: vec![(
                    "Location".to_string(),
                    "http://127.0.0.1:9/elsewhere/api/v1/secrets".to_string(),
                )],
                body: String::new(),
            }
        }
    });
    let exporter = start(&api, &["--refresh-interval=200ms"]);
    assert_eq!(exporter.metrics().label_values("secret_name"), ["kept"]);
    let m = exporter.metrics_until("the redirect counted", |m| {
        m.value("x509_read_errors_total") >= 2.0
    });
    assert_eq!(m.value("x509_read_errors"), 1.0);
    assert_eq!(
        m.label_values("secret_name"),
        ["kept"],
        "the last good data"
    );
    assert!(
        log_has(
            &exporter,
            &[
                "WARN",
                "list secrets in all namespaces",
                "302",
                "redirected to http://127.0.0.1:9/elsewhere/api/v1/secrets"
            ]
        ),
        "{:#?}",
        exporter.log_lines()
    );
    // Never followed: every request came to the API server's own path.
    assert!(api.requests().iter().all(|r| r.path == "/api/v1/secrets"));
}

#[test]
fn tls_server_name_is_the_name_the_certificate_is_checked_against() {
    let api = FakeApi::start_tls("kf-sni", &["kubernetes.test"], one_secret("named"));
    let server = format!("https://127.0.0.1:{}", api.addr.port());
    let named = custom_kubeconfig(
        &api.dir,
        "named",
        &server,
        ", certificate-authority: ca.pem, tls-server-name: kubernetes.test",
    );
    let exporter = start_with_env(&named, &[], &[]);
    let m = exporter.metrics();
    assert_eq!(m.label_values("secret_name"), ["named"]);
    assert_eq!(m.value("x509_read_errors"), 0.0);
    let sni = api.sni.lock().unwrap().clone();
    assert!(
        !sni.is_empty() && sni.iter().all(|n| n == "kubernetes.test"),
        "{sni:?}"
    );
    drop(exporter);

    // Without it the certificate (valid for kubernetes.test only) is refused for 127.0.0.1.
    let served = api.count();
    let plain = custom_kubeconfig(
        &api.dir,
        "plain",
        &server,
        ", certificate-authority: ca.pem",
    );
    let exporter = start_with_env(&plain, &["--refresh-interval=200ms"], &[]);
    let m = exporter.scrape_until("TLS failures", |m| m.value("x509_read_errors_total") >= 2.0);
    assert_eq!(m.count("x509_cert_not_after"), 0);
    assert_eq!(api.count(), served, "no request got through");
    assert!(
        log_has(
            &exporter,
            &["WARN", "list secrets in all namespaces", "certificate"]
        ),
        "{:#?}",
        exporter.log_lines()
    );
}

#[test]
fn insecure_skip_tls_verify_with_a_ca_is_refused_at_startup() {
    let dir = TempDir::new("kf-insecure-ca");
    dir.write("token", "t\n");
    dir.write("ca.pem", pem("ca", now() - 10, now() + 1000));
    for ca in [
        "certificate-authority: ca.pem",
        &format!(
            "certificate-authority-data: {}",
            b64(pem("ca", now() - 10, now() + 1000).as_bytes())
        ),
    ] {
        let kubeconfig = custom_kubeconfig(
            &dir,
            "kubeconfig",
            "https://127.0.0.1:9",
            &format!(", insecure-skip-tls-verify: true, {ca}"),
        );
        let mut child = std::process::Command::new(BIN)
            .args([
                "--listen-address=127.0.0.1:0",
                "--watch-kube-secrets",
                "--kubeconfig",
                &kubeconfig,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("still running with {ca}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("kubeconfig {kubeconfig}"))
                && stderr.contains(
                    "specifying a root certificates file with the insecure flag is not allowed"
                ),
            "{stderr}"
        );
    }
}

/// A CONNECT proxy on 127.0.0.1 that records each target asked for and tunnels every one of
/// them to `to` (so that a name only the proxy "resolves" still reaches the fake).
struct ConnectProxy {
    addr: SocketAddr,
    targets: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    fn start(to: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&targets);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let recorded = Arc::clone(&recorded);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header.trim_end().is_empty() {
                            break;
                        }
                    }
                    recorded.lock().unwrap().push(line.trim_end().to_string());
                    let mut client = client;
                    let Ok(upstream) = TcpStream::connect(to) else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .unwrap();
                    let mut up_read = upstream.try_clone().unwrap();
                    let mut client_write = client.try_clone().unwrap();
                    let down = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut up_read, &mut client_write);
                        let _ = client_write.shutdown(std::net::Shutdown::Write);
                    });
                    let mut upstream = upstream;
                    let _ = std::io::copy(&mut reader, &mut upstream);
                    let _ = upstream.shutdown(std::net::Shutdown::Write);
                    let _ = down.join();
                });
            }
        });
        Self { addr, targets }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

#[test]
fn https_proxy_from_the_environment_carries_the_api_calls() {
    // The exporter cannot resolve kubernetes.test: only the proxy (which tunnels it to the
    // fake) can, as a corporate proxy would for a remote cluster.
    let api = FakeApi::start_tls("kf-proxy", &["kubernetes.test"], one_secret("proxied"));
    let (right, wrong) = (ConnectProxy::start(api.addr), ConnectProxy::start(api.addr));
    let server = format!("https://kubernetes.test:{}", api.addr.port());
    let kubeconfig = custom_kubeconfig(
        &api.dir,
        "proxied",
        &server,
        ", certificate-authority: ca.pem",
    );
    let exporter = start_with_env(
        &kubeconfig,
        &[],
        &[
            ("HTTPS_PROXY", &right.url()),
            // Upper case wins; HTTP_PROXY is for http:// servers only.
            ("https_proxy", &wrong.url()),
            ("HTTP_PROXY", &wrong.url()),
            ("NO_PROXY", "example.com,10.0.0.0/8"),
        ],
    );
    let m = exporter.metrics();
    assert_eq!(m.label_values("secret_name"), ["proxied"]);
    let targets = right.targets();
    assert!(!targets.is_empty(), "nothing went through the proxy");
    assert!(
        targets
            .iter()
            .all(|t| t.starts_with(&format!("CONNECT kubernetes.test:{} ", api.addr.port()))),
        "{targets:?}"
    );
    assert_eq!(wrong.targets(), Vec::<String>::new());
    assert!(
        log_has(&exporter, &["through proxy", &right.url(), "HTTPS_PROXY"]),
        "{:#?}",
        exporter.log_lines()
    );
}

#[test]
fn no_proxy_cidrs_and_loopback_servers_go_direct() {
    let api = FakeApi::start("kf-no-proxy", one_secret("direct"));
    let proxy = ConnectProxy::start(api.addr);
    let port = api.addr.port();
    // Linux delivers a connection to 0.0.0.0 to the loopback interface (the fake on
    // 127.0.0.1 answers it), yet 0.0.0.0 is no loopback address to the proxy rules: it
    // shows a CIDR entry at work.
    let any = custom_kubeconfig(&api.dir, "any", &format!("http://0.0.0.0:{port}"), "");
    let exporter = start_with_env(
        &any,
        &[],
        &[
            ("HTTP_PROXY", &proxy.url()),
            ("NO_PROXY", "10.0.0.0/8, 0.0.0.0/8"),
        ],
    );
    assert_eq!(exporter.metrics().label_values("secret_name"), ["direct"]);
    assert_eq!(proxy.targets(), Vec::<String>::new());
    drop(exporter);

    // Without the CIDR the same server is reached through the proxy.
    let exporter = start_with_env(&any, &[], &[("http_proxy", &proxy.url())]);
    assert_eq!(exporter.metrics().label_values("secret_name"), ["direct"]);
    let targets = proxy.targets();
    assert!(
        !targets.is_empty() && targets[0].starts_with(&format!("CONNECT 0.0.0.0:{port} ")),
        "{targets:?}"
    );
    drop(exporter);

    // A loopback server is never proxied (as kubectl), NO_PROXY or not.
    let before = proxy.targets().len();
    for no_proxy in ["127.0.0.0/8", ""] {
        let exporter = start_with_env(
            &api.kubeconfig(),
            &[],
            &[("HTTP_PROXY", &proxy.url()), ("NO_PROXY", no_proxy)],
        );
        assert_eq!(exporter.metrics().label_values("secret_name"), ["direct"]);
    }
    assert_eq!(proxy.targets().len(), before);
}

#[test]
fn a_kubeconfig_proxy_url_wins_over_the_environment() {
    let api = FakeApi::start("kf-proxy-url", one_secret("via-kubeconfig"));
    let (configured, env) = (ConnectProxy::start(api.addr), ConnectProxy::start(api.addr));
    let port = api.addr.port();
    let kubeconfig = custom_kubeconfig(
        &api.dir,
        "proxy-url",
        &format!("http://api.kube.test:{port}"),
        &format!(", proxy-url: '{}'", configured.url()),
    );
    let exporter = start_with_env(
        &kubeconfig,
        &[],
        &[("HTTP_PROXY", &env.url()), ("NO_PROXY", "kube.test")],
    );
    assert_eq!(
        exporter.metrics().label_values("secret_name"),
        ["via-kubeconfig"]
    );
    let targets = configured.targets();
    assert!(
        !targets.is_empty() && targets[0].starts_with(&format!("CONNECT api.kube.test:{port} ")),
        "{targets:?}"
    );
    assert_eq!(env.targets(), Vec::<String>::new());
    drop(exporter);

    // Alone, with no proxy variable at all, proxy-url is used too: the name api.kube.test
    // resolves nowhere, so the answer can only have come through the proxy.
    let before = configured.targets().len();
    let exporter = start_with_env(&kubeconfig, &[], &[]);
    assert_eq!(
        exporter.metrics().label_values("secret_name"),
        ["via-kubeconfig"]
    );
    let targets = configured.targets();
    assert!(
        targets.len() > before
            && targets[before].starts_with(&format!("CONNECT api.kube.test:{port} ")),
        "{targets:?}"
    );
    assert_eq!(env.targets(), Vec::<String>::new());
}

/// Points the fake's kubeconfig at an exec plugin `plugin.sh` with this shell `body`.
fn use_exec_plugin(api: &FakeApi, body: &str) {
    use_exec_plugin_version(api, "client.authentication.k8s.io/v1", body);
}

/// [`use_exec_plugin`] with the kubeconfig's `apiVersion` for the plugin.
fn use_exec_plugin_version(api: &FakeApi, version: &str, body: &str) {
    let plugin = api.dir.write("plugin.sh", format!("#!/bin/sh\n{body}"));
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&plugin)
        .status()
        .unwrap();
    let kubeconfig = std::fs::read_to_string(api.kubeconfig()).unwrap().replace(
        "    tokenFile: token\n",
        &format!("    exec:\n      apiVersion: {version}\n      command: ./plugin.sh\n"),
    );
    std::fs::write(api.kubeconfig(), kubeconfig).unwrap();
}

const EXEC_CREDENTIAL: &str = r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"exec-token"}}"#;

#[test]
fn an_exec_plugins_stderr_is_logged_line_by_line_within_bounds() {
    let api = FakeApi::start("kf-exec-stderr", one_secret("exec"));
    use_exec_plugin(
        &api,
        &format!(
            "echo 'refreshing the token' >&2\nhead -c 100000 /dev/zero | tr '\\0' L >&2\necho >&2\nfor i in $(seq 1 500); do echo \"noise $i\" >&2; done\necho '{EXEC_CREDENTIAL}'\n"
        ),
    );
    let exporter = start(&api, &[]);
    assert_eq!(exporter.metrics().label_values("secret_name"), ["exec"]);
    assert!(api
        .requests()
        .iter()
        .all(|r| r.auth.as_deref() == Some("Bearer exec-token")));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log_has(&exporter, &["more lines of stderr not logged"]) {
        assert!(Instant::now() < deadline, "{:#?}", exporter.log_lines());
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines: Vec<String> = exporter
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("exec credential plugin ./plugin.sh: "))
        .collect();
    assert!(
        lines[0].contains("WARN")
            && lines[0].ends_with("exec credential plugin ./plugin.sh: refreshing the token"),
        "{lines:#?}"
    );
    assert!(lines[1].len() < 1000, "{}", lines[1].len());
    assert!(
        lines[1].ends_with("LLLL\u{2026} (cut, 100000 bytes)"),
        "{}",
        lines[1]
    );
    assert!(lines[2].ends_with("noise 1"), "{lines:#?}");
    // 20 lines, then one line for the other 482.
    assert_eq!(lines.len(), 21, "{lines:#?}");
    assert!(lines[19].ends_with("noise 18"), "{lines:#?}");
    assert!(
        lines[20]
            .ends_with("exec credential plugin ./plugin.sh: 482 more lines of stderr not logged"),
        "{lines:#?}"
    );
}

#[test]
fn an_exec_plugins_bad_output_is_cut_in_the_log() {
    let api = FakeApi::start("kf-exec-bad", one_secret("never"));
    // An ExecCredential whose status is a string of 600 000 bytes: serde quotes it.
    use_exec_plugin(
        &api,
        "printf '{\"status\":\"'\nhead -c 600000 /dev/zero | tr '\\0' Q\nprintf '\"}'\n",
    );
    let exporter = start(&api, &[]);
    exporter.scrape_until("the failed plugin", |m| {
        m.value("x509_read_errors_total") >= 1.0
    });
    let lines = exporter.log_lines();
    let line = lines
        .iter()
        .find(|l| l.contains("invalid ExecCredential"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(line.len() < 1000, "{} bytes", line.len());
    assert!(
        line.contains("exec credential plugin ./plugin.sh: invalid ExecCredential: invalid type: string \"QQQQ"),
        "{line}"
    );
    assert!(line.contains("\u{2026} (cut, "), "{line}");
    assert_eq!(api.count(), 0);
}

/// Whether process `pid` is gone (a zombie left for init to reap counts as gone).
fn process_gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Runs the exporter with a plugin whose body writes the PIDs to keep an eye on to `pids`;
/// waits for the failure naming `why`, then checks that those processes are gone.
fn exec_plugin_is_stopped(name: &str, body: &str, why: &str) {
    let api = FakeApi::start(name, one_secret("never"));
    let pids = api.dir.path("pids");
    use_exec_plugin(&api, &body.replace("PIDS", &pids.display().to_string()));
    let started = Instant::now();
    let exporter = start(&api, &[]);
    let m = exporter.scrape_within(Duration::from_secs(60), "the plugin's timeout", |m| {
        m.value("x509_read_errors_total") >= 1.0
    });
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(29), "stopped after {took:?}");
    assert_eq!(m.value("x509_read_errors"), 1.0);
    assert_eq!(api.count(), 0, "no request without a token");
    assert!(
        log_has(
            &exporter,
            &[
                "WARN",
                "list secrets in all namespaces",
                "exec credential plugin ./plugin.sh",
                why
            ]
        ),
        "{:#?}",
        exporter.log_lines()
    );
    let pids = std::fs::read_to_string(&pids).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for pid in pids.split_whitespace() {
        while !process_gone(pid) {
            assert!(
                Instant::now() < deadline,
                "process {pid} of the plugin lives on"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(exporter.get("/healthz").status == 200);
}

#[test]
fn an_exec_plugin_that_never_finishes_is_killed_with_its_group() {
    exec_plugin_is_stopped(
        "kf-exec-hang",
        "sleep 1000 &\necho $$ $! > PIDS\nwait\n",
        "did not finish within 30s; killed",
    );
}

#[test]
fn an_exec_plugin_whose_child_holds_its_output_open_is_stopped() {
    exec_plugin_is_stopped(
        "kf-exec-orphan",
        &format!("sleep 1000 &\necho $! > PIDS\necho '{EXEC_CREDENTIAL}'\nexit 0\n"),
        "exited, but a process it started kept its output open for 30s; killed its process group",
    );
}

/// A fake answering every request with this `Status` failure; returns the exporter after
/// two failed passes, with the number of requests the fake had answered by then.
fn failing_with(name: &str, code: u16, reason: &str, extra: &[&str]) -> (FakeApi, Exporter) {
    let reason = reason.to_string();
    let api = FakeApi::start(name, move |_, _| {
        Reply::status(code, &reason, "the fake says no")
    });
    let mut args = vec!["--refresh-interval=200ms"];
    args.extend_from_slice(extra);
    let exporter = start(&api, &args);
    exporter.scrape_until("two failed passes", |m| {
        m.value("x509_read_errors_total") >= 2.0
    });
    (api, exporter)
}

#[test]
fn unauthorized_and_not_found_each_count_one_read_error() {
    for (code, reason, extra, scope) in [
        (
            401,
            "Unauthorized",
            &[][..],
            "list secrets in all namespaces",
        ),
        (
            404,
            "NotFound",
            &["--include-namespace=gone"][..],
            "list secrets in namespace gone",
        ),
    ] {
        let (api, exporter) = failing_with(&format!("kf-{code}"), code, reason, extra);
        let m = exporter.scrape();
        assert_eq!(m.value("x509_read_errors"), 1.0, "{code}: {}", m.body);
        assert_eq!(m.count("x509_cert_not_after"), 0, "{code}");
        assert_eq!(exporter.get("/readyz").status, 503, "{code}");
        // One error per failed request, no more: the fake's count is read after the
        // scrape, and a pass may have started (and failed) in between.
        let total = m.value("x509_read_errors_total");
        assert!(
            total >= 2.0 && total <= api.count() as f64,
            "{code}: {total} errors for {} requests",
            api.count()
        );
        exporter.wait_log(
            [
                "WARN",
                &format!("{scope}: {code} {reason}: the fake says no")[..],
            ],
            LOG_WAIT,
        );
    }
}

#[test]
fn without_flag_variable_or_pod_the_kubeconfig_in_home_is_used() {
    let api = FakeApi::start("kf-home", one_secret("from-home"));
    let home = TempDir::new("kf-home-dir");
    home.write(".kube/token", "token-1\n");
    custom_kubeconfig(&home, ".kube/config", &format!("http://{}", api.addr), "");
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["--listen-address=127.0.0.1:0", "--watch-kube-secrets"])
        .env("HOME", &home.0)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT");
    let exporter = Exporter::spawn(cmd);
    let m = exporter.metrics();
    assert_eq!(m.label_values("secret_name"), ["from-home"]);
    assert_eq!(m.value("x509_read_errors"), 0.0);
    let reqs = api.requests();
    assert_eq!(reqs[0].auth.as_deref(), Some("Bearer token-1"), "{reqs:#?}");
}
