//! The gzip body is rendered once per change: kept across seconds while the store and the
//! clock-dependent values are unchanged, made again the second a certificate expires or a
//! file changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;

/// A gzip scrape: the compressed bytes and the text they unpack to.
fn gzip_scrape(exporter: &Exporter) -> (Vec<u8>, String) {
    let response = request(
        exporter.addr,
        "GET",
        "/metrics",
        &[("Accept-Encoding", "gzip")],
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&response.body[..])
        .read_to_string(&mut text)
        .unwrap();
    (response.body, text)
}

/// The debug lines the gzip worker logs for each body it makes.
fn bodies_made(exporter: &Exporter) -> Vec<String> {
    exporter
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("gzip body of view"))
        .collect()
}

fn sleep_until(second: i64) {
    while now() < second {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_kept_gzip_body_lasts_until_a_certificate_expires_then_is_made_again() {
    let dir = TempDir::new("render-cache-expiry");
    let start = now();
    let expiry = start + 3;
    dir.write("soon.pem", pem("soon", start - 100, expiry));
    dir.write("later.pem", pem("later", start - 100, start + 100_000));
    // No refresh during the test: the store publishes one view and keeps it.
    let exporter = Exporter::start(&["-d", &dir.str(""), "--refresh-interval=1h"]);
    exporter.wait_ready();

    // Every scrape that certainly happened at or before the expiry second.
    let mut before = Vec::new();
    let mut seconds = Vec::new();
    let mut made_before = Vec::new();
    loop {
        let asked = now();
        let scraped = gzip_scrape(&exporter);
        let answered = now();
        if answered > expiry {
            break;
        }
        seconds.push(asked);
        before.push(scraped);
        made_before = bodies_made(&exporter);
        std::thread::sleep(Duration::from_millis(200));
    }
    seconds.dedup();
    assert!(
        seconds.len() >= 2,
        "scrapes in several seconds: {seconds:?}"
    );
    let (first, text) = &before[0];
    let metrics = Metrics::parse(text);
    assert_eq!(
        metrics
            .one("x509_cert_expired", &[("filename", "soon.pem")])
            .value,
        0.0
    );
    for (bytes, _) in &before {
        assert_eq!(bytes, first, "the same bytes while nothing changes");
    }
    assert_eq!(
        made_before.len(),
        1,
        "made once for every scrape: {made_before:?}"
    );
    assert!(
        made_before[0].contains(&format!("true through {expiry}")),
        "{made_before:?}"
    );

    sleep_until(expiry + 1);
    let (after, text) = gzip_scrape(&exporter);
    assert_ne!(&after, first);
    let metrics = Metrics::parse(&text);
    assert_eq!(
        metrics
            .one("x509_cert_expired", &[("filename", "soon.pem")])
            .value,
        1.0,
        "expired at not_after + 1"
    );
    assert_eq!(
        metrics
            .one("x509_cert_expired", &[("filename", "later.pem")])
            .value,
        0.0
    );
    let made = bodies_made(&exporter);
    assert_eq!(made.len(), 2, "{made:?}");
    let view = |line: &str| {
        line.split("gzip body of view ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        view(&made[0]),
        view(&made[1]),
        "the store did not change: the clock alone made the new body"
    );
    let (again, _) = gzip_scrape(&exporter);
    assert_eq!(again, after, "and that one is kept in turn");
    assert_eq!(bodies_made(&exporter).len(), 2);
}

#[test]
fn an_unchanged_store_gets_the_same_gzip_bytes_and_a_changed_file_a_new_body() {
    let dir = TempDir::new("render-cache-change");
    let now = now();
    dir.write("a.pem", pem("a", now - 100, now + 100_000));
    let exporter = Exporter::start(&["-d", &dir.str(""), "--refresh-interval=1s"]);
    exporter.wait_ready();

    let (first, text) = gzip_scrape(&exporter);
    let asked = common::now();
    // Two refreshes that find nothing new, and a later second.
    let refreshes = || {
        exporter
            .log_lines()
            .iter()
            .filter(|l| l.contains("refreshed"))
            .count()
    };
    let seen = refreshes();
    while refreshes() < seen + 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    sleep_until(asked + 1);
    let (second, _) = gzip_scrape(&exporter);
    assert_eq!(second, first, "a later second, the same bytes");
    assert_eq!(
        bodies_made(&exporter).len(),
        1,
        "unchanged refreshes keep the view, and the body with it"
    );
    assert_eq!(Metrics::parse(&text).count("x509_cert_not_after"), 1);

    dir.write("b.pem", pem("b", now - 100, now + 200_000));
    let mut tries = 0;
    let (changed, text) = loop {
        let (bytes, text) = gzip_scrape(&exporter);
        if bytes != first {
            break (bytes, text);
        }
        tries += 1;
        assert!(tries < 200, "the new file never showed in the gzip body");
        std::thread::sleep(Duration::from_millis(50));
    };
    let metrics = Metrics::parse(&text);
    assert_eq!(metrics.count("x509_cert_not_after"), 2);
    metrics.one("x509_cert_not_after", &[("filename", "b.pem")]);
    let plain = exporter.get("/metrics").text();
    let (again, _) = gzip_scrape(&exporter);
    assert_eq!(again, changed);
    assert_eq!(plain, text, "the gzip body unpacks to the plain exposition");
}
