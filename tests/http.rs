//! The HTTP surface, the process contract (flags, exit statuses, signals) and logging.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn endpoints_methods_and_content_types() {
    let dir = TempDir::new("http");
    let now = now();
    dir.write("a.pem", pem("a", now, now + 100));
    let exporter = Exporter::start(&["-d", &dir.str("")]);
    exporter.wait_ready();

    let health = exporter.get("/healthz");
    assert_eq!(
        (health.status, health.text().trim()),
        (200, "{\"status\":\"UP\"}")
    );
    assert_eq!(exporter.get("/readyz").status, 200);
    let index = exporter.get("/");
    assert_eq!(index.status, 200);
    assert!(index.text().contains("href=\"/metrics\""));
    assert!(index
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));

    let metrics = exporter.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(metrics.header("content-encoding"), None);
    let plain = metrics.text();
    assert!(plain.contains("x509_cert_not_after{"));
    assert!(plain.contains("x509_exporter_build_info{built="));

    let with_query = exporter.get("/metrics?foo=bar");
    assert_eq!(with_query.status, 200);

    let gz = request(
        exporter.addr,
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip, deflate")],
    );
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain, "same second, same state: the same body");
    let refused = request(
        exporter.addr,
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip;q=0")],
    );
    assert_eq!(refused.header("content-encoding"), None);

    let head = request(exporter.addr, "HEAD", "/metrics", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let head = request(
        exporter.addr,
        "HEAD",
        "/metrics",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(
        (head.status, head.header("content-encoding")),
        (200, Some("gzip"))
    );
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(gz.body.len().to_string().as_str()),
        "the length of the body a GET gets"
    );
    assert_eq!(request(exporter.addr, "HEAD", "/healthz", &[]).status, 200);

    assert_eq!(exporter.get("/nope").status, 404);
    assert_eq!(exporter.get("/metrics/extra").status, 404);
    let post = request(exporter.addr, "POST", "/metrics", &[]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(
        request(exporter.addr, "DELETE", "/healthz", &[]).status,
        405
    );
    assert_eq!(request(exporter.addr, "FOO", "/", &[]).status, 405);

    // The absolute form a proxy sends (RFC 9112 §3.2.2), and Accept-Encoding weights as
    // RFC 9110 §12.5.3 has them.
    let absolute = format!("http://{}/healthz", exporter.addr);
    assert_eq!(request(exporter.addr, "GET", &absolute, &[]).status, 200);
    let absolute = format!("HTTP://{}/metrics?x=1", exporter.addr);
    assert_eq!(request(exporter.addr, "GET", &absolute, &[]).text(), plain);
    for (accept, gzip) in [
        ("x-gzip", true),
        ("br, *;q=0.5", true),
        ("*, gzip;q=0", false),
        ("gzip;q=0.000, *", false),
        ("gzip;q=1.5", false),
    ] {
        let response = request(
            exporter.addr,
            "GET",
            "/metrics",
            &[("Accept-Encoding", accept)],
        );
        assert_eq!(
            response.header("content-encoding") == Some("gzip"),
            gzip,
            "{accept}"
        );
    }
}

/// Readiness before the first pass is covered by the store's unit tests (a first pass here
/// is too quick to catch); this checks that failing sources still count as done.
#[test]
fn readyz_is_200_once_every_source_has_reported_even_failing_ones() {
    let dir = TempDir::new("ready");
    let exporter = Exporter::start(&["-d", &dir.str(""), "-f", "/nonexistent.pem"]);
    exporter.wait_ready();
    let m = exporter.metrics();
    assert_eq!(m.value("x509_read_errors"), 1.0);
}

#[test]
fn no_source_serves_own_metrics_and_warns() {
    let exporter = Exporter::start(&[]);
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 0);
    assert_eq!(m.value("x509_read_errors"), 0.0);
    assert_eq!(m.value("x509_exporter_build_info"), 1.0);
    exporter.wait_log(["WARN", "no source given"], LOG_WAIT);
}

#[test]
fn sigterm_and_sigint_exit_zero_quickly() {
    for signal in ["TERM", "INT"] {
        let mut exporter = Exporter::start(&["-d", "/etc/ssl/certs"]);
        exporter.wait_ready();
        let started = Instant::now();
        let status = exporter
            .signal(signal, Duration::from_secs(5))
            .expect("exited within 5 s");
        assert_eq!(status.code(), Some(0), "SIG{signal}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn a_port_in_use_exits_one_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(&["--listen-address", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("listen {addr}")) && err.contains("in use"),
        "{err}"
    );
}

#[test]
fn bad_flags_exit_two_with_one_line_naming_the_flag() {
    for (args, name) in [
        (vec!["--no-such-flag"], "--no-such-flag"),
        (vec!["--refresh-interval=soon"], "--refresh-interval"),
        (
            vec!["--trim-path-components", "x"],
            "--trim-path-components",
        ),
        (vec!["--listen-address", "nowhere"], "--listen-address"),
        (vec!["-d"], "--watch-dir"),
        (vec!["leftover"], "leftover"),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(name), "{args:?}: {err}");
    }
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--watch-dir",
        "--listen-address",
        "default :9793",
        "default 30s",
    ] {
        assert!(help.contains(flag), "{flag}");
    }
    let out = run(&["-v"]);
    assert_eq!(out.status.code(), Some(0));
    let version = String::from_utf8(out.stdout).unwrap();
    assert!(
        version.starts_with(&format!(
            "x509-certificate-exporter {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
}

#[test]
fn profile_is_accepted_and_says_so() {
    let exporter = Exporter::start(&["--profile"]);
    exporter.wait_ready();
    exporter.wait_log("--profile: profiling is not available", LOG_WAIT);
}

#[test]
fn http_1_0_keep_alive_and_pipelining() {
    use std::io::Write;
    let dir = TempDir::new("http10");
    let now = now();
    dir.write("a.pem", pem("a", now, now + 100));
    let exporter = Exporter::start(&["-d", &dir.str("")]);
    exporter.wait_ready();

    // HTTP/1.0: the body ends with the connection.
    let mut s = std::net::TcpStream::connect(exporter.addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.") && raw.contains(" 200 "), "{raw}");
    assert!(
        raw.contains("x509_cert_not_after{") && raw.ends_with("} 1\n"),
        "{raw}"
    );

    // Keep-alive with pipelining: three requests written at once, three answers in order.
    let mut s = std::net::TcpStream::connect(exporter.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 3, "{text}");
    assert!(text.contains("Content-Encoding: gzip"));
    assert!(text.contains("Transfer-Encoding: chunked"));
    assert!(text.ends_with("{\"status\":\"UP\"}\n"), "{text}");
}
