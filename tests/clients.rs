//! Hostile and odd HTTP clients against the real binary: slow headers, clients that never
//! read, oversized heads, crowds of scrapes, stalled connections. While they run, a normal
//! scrape stays within twice its idle latency, and threads and memory stay bounded. Each test
//! loads the machine's two cores, and is measured against its own idle figures, so they run
//! one at a time (see [`ALONE`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// One test at a time: each loads the machine and compares with its own idle baseline.
static ALONE: Mutex<()> = Mutex::new(());

/// Certificates behind the exporter under attack.
const CERTS: usize = 10_000;

/// An exporter serving `CERTS` series: one certificate in that many files.
fn loaded_exporter() -> (Exporter, TempDir) {
    let dir = TempDir::new("clients");
    let now = now();
    let pem = pem("load", now - 100, now + 86_400);
    for i in 0..CERTS {
        dir.write(&format!("c{i:05}.pem"), &pem);
    }
    let exporter = Exporter::start(&["-d", &dir.str("")]);
    exporter.wait_ready();
    let metrics = exporter.metrics();
    assert_eq!(metrics.count("x509_cert_not_after"), CERTS);
    (exporter, dir)
}

/// One plain scrape, read whole and checked; its duration.
fn timed_scrape(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let response = request(addr, "GET", "/metrics", &[]);
    let elapsed = start.elapsed();
    assert_eq!(response.status, 200);
    let text = response.text();
    assert_eq!(text.matches("x509_cert_not_after{").count(), CERTS);
    assert!(text.ends_with("\n"), "a whole body");
    elapsed
}

/// The median of `n` scrapes.
fn median_scrape(addr: SocketAddr, n: usize) -> Duration {
    let mut times: Vec<Duration> = (0..n).map(|_| timed_scrape(addr)).collect();
    times.sort();
    times[n / 2]
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Scrapes taken under load stay within twice the idle median. A few milliseconds are
/// allowed on top for the test's own threads sharing the machine's two cores.
fn assert_unharmed(what: &str, addr: SocketAddr, idle: Duration) {
    let loaded = median_scrape(addr, 5);
    let limit = idle * 2 + Duration::from_millis(20);
    assert!(
        loaded <= limit,
        "{what}: scrape took {loaded:?} under attack, idle {idle:?}"
    );
    eprintln!("{what}: idle {idle:?}, under attack {loaded:?}");
}

#[test]
fn attacks_do_not_slow_a_normal_scrape_nor_grow_threads_or_memory() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (exporter, _dir) = loaded_exporter();
    let addr = exporter.addr;
    let pid = exporter.child.id();
    median_scrape(addr, 2); // warm up
    let idle = median_scrape(addr, 7);
    // What every gzip scrape below must unpack to: the exposition does not change while the
    // attacks run (no certificate nears its end, and no relative metric is asked for).
    let plain = request(addr, "GET", "/metrics", &[]).text();
    let base_threads = threads(pid);
    let base_rss = rss_kib(pid);

    // 500 connections sending their heads one byte a second.
    let stop = Arc::new(AtomicBool::new(false));
    let slow = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut conns: Vec<TcpStream> = (0..500)
                .map(|_| TcpStream::connect(addr).unwrap())
                .collect();
            let head = b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            let mut at = 0;
            while !stop.load(Ordering::SeqCst) {
                for conn in &mut conns {
                    let _ = conn.write_all(&head[at % head.len()..][..1]);
                }
                at += 1;
                thread::sleep(Duration::from_secs(1));
            }
            conns.len()
        })
    };
    thread::sleep(Duration::from_millis(1500));
    assert_unharmed("500 slow-header connections", addr, idle);
    assert!(
        threads(pid) <= base_threads + 1,
        "one thread per connection?"
    );

    // 50 clients that ask for the plain exposition (and pipeline more) but never read.
    let deaf: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: deaf\r\n\r\nGET /metrics HTTP/1.1\r\nHost: deaf\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    assert_unharmed("500 slow + 50 deaf clients", addr, idle);

    // A 64 KiB head: refused with 431, the connection closed.
    let mut big = TcpStream::connect(addr).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "GET /metrics HTTP/1.1\r\nHost: big\r\nX-Big: {}\r\n\r\n",
        "b".repeat(64 * 1024)
    );
    let _ = big.write_all(head.as_bytes());
    let mut answer = Vec::new();
    let _ = big.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

    // 200 concurrent gzip scrapes, as 200 Prometheus servers would make: every one whole
    // (its length as announced) and unpacking to the plain exposition. Gzip answers are
    // shared by the scrapes of one second, so the bytes differ at most from one second to
    // the next: each distinct body is unpacked.
    let crowd: Vec<_> = (0..200)
        .map(|_| {
            thread::spawn(move || {
                let response = request(addr, "GET", "/metrics", &[("Accept-Encoding", "gzip")]);
                assert_eq!(response.status, 200);
                let length: usize = response.header("content-length").unwrap().parse().unwrap();
                assert_eq!(response.body.len(), length);
                response.body
            })
        })
        .collect();
    assert_unharmed("500 slow + 50 deaf + 200 gzip scrapes", addr, idle);
    let bodies: std::collections::BTreeSet<Vec<u8>> =
        crowd.into_iter().map(|t| t.join().unwrap()).collect();
    for body in &bodies {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.matches("x509_cert_not_after{").count(), CERTS);
        assert!(text == plain, "a gzip scrape unpacks to another exposition");
    }
    eprintln!("200 gzip scrapes: {} distinct bodies", bodies.len());

    let peak_threads = threads(pid);
    let rss = rss_kib(pid);
    stop.store(true, Ordering::SeqCst);
    assert_eq!(slow.join().unwrap(), 500);
    drop(deaf);
    assert!(
        peak_threads <= base_threads + 1,
        "threads: {base_threads} idle, {peak_threads} under attack"
    );
    assert!(
        rss < base_rss + 64 * 1024,
        "memory: {base_rss} KiB idle, {rss} KiB under attack"
    );
    eprintln!("threads {base_threads} → {peak_threads}, RSS {base_rss} → {rss} KiB");
}

#[test]
fn stalled_connections_are_dropped_at_their_deadlines() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (exporter, _dir) = loaded_exporter();
    let start = Instant::now();
    // Sends nothing at all.
    let silent = TcpStream::connect(exporter.addr).unwrap();
    // Starts a head and never finishes it.
    let mut half = TcpStream::connect(exporter.addr).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: h").unwrap();
    // Asks for a body far larger than the socket buffers and does not read it.
    let mut deaf = TcpStream::connect(exporter.addr).unwrap();
    deaf.write_all(b"GET /metrics HTTP/1.1\r\nHost: d\r\n\r\n")
        .unwrap();

    // The silent and half-head connections are closed (an end of stream or a reset, not a
    // read timeout), without an answer, when the head deadline (10 s) passes.
    let closed = |mut s: TcpStream| {
        thread::spawn(move || {
            let got = read_until_closed(&mut s, Duration::from_secs(30));
            (got, start.elapsed())
        })
    };
    let mut dropped = 0;
    for (what, handle) in [("silent", closed(silent)), ("half head", closed(half))] {
        let (got, elapsed) = handle.join().unwrap();
        let got = got.unwrap_or_else(|why| panic!("{what} connection: {why}"));
        assert!(got.is_empty(), "{what}: answered {got:?}");
        assert!(
            (Duration::from_secs(9)..Duration::from_secs(20)).contains(&elapsed),
            "{what} connection closed after {elapsed:?}"
        );
        dropped += 1;
    }
    // The deaf client's connection is dropped at its write deadline (30 s without taking a
    // byte): the exporter says so, then reading gets what was already sent, then the end,
    // never the last chunk. (Reading earlier would be taking bytes, which moves the deadline.)
    // (The log names the peer's address without its port; this is the only connection
    // that stops taking its answer.)
    exporter.wait_log(
        "closed: the client took no byte of the answer",
        Duration::from_secs(60),
    );
    let elapsed = start.elapsed();
    assert!(
        (Duration::from_secs(29)..Duration::from_secs(50)).contains(&elapsed),
        "deaf connection dropped after {elapsed:?}"
    );
    let got = read_until_closed(&mut deaf, Duration::from_secs(10))
        .unwrap_or_else(|why| panic!("deaf connection: {why}"));
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(
        !got.ends_with(b"\r\n0\r\n\r\n"),
        "the body was cut, not finished"
    );
    dropped += 1;
    assert_eq!(dropped, 3, "every stalled connection was closed");
    // Meanwhile the exporter served everyone else.
    assert_eq!(exporter.get("/healthz").status, 200);
}

#[test]
fn odd_but_valid_requests() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("odd");
    let now = now();
    dir.write("a.pem", pem("a", now, now + 100));
    let exporter = Exporter::start(&["-d", &dir.str("")]);
    exporter.wait_ready();
    let exchange = |raw: &[u8]| {
        let mut s = TcpStream::connect(exporter.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).to_string()
    };
    // Bare LF line ends, a body on a POST, an absolute-form-less garbage line, HTTP/2 text.
    assert!(
        exchange(b"GET /healthz HTTP/1.1\nConnection: close\n\n").contains("{\"status\":\"UP\"}")
    );
    let post = exchange(b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert!(
        post.starts_with("HTTP/1.1 405 ") && post.contains("Connection: close"),
        "{post}"
    );
    assert!(exchange(b"\x16\x03\x01\x00garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
    assert!(exchange(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").starts_with("HTTP/1.1 505 "));
    let many = exchange(
        &b"GET /healthz HTTP/1.1\r\nHost: p\r\n\r\n"
            .repeat(100)
            .into_iter()
            .chain(
                b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n"
                    .iter()
                    .copied(),
            )
            .collect::<Vec<u8>>(),
    );
    assert_eq!(
        many.matches("HTTP/1.1 200 OK").count(),
        100,
        "pipelined in order"
    );
    assert!(many.ends_with("404 page not found\n"));
    // An HTTP/1.0 keep-alive request is answered and closed (a streamed body has no length).
    let old = exchange(b"GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(
        old.contains("x509_cert_not_after{") && old.ends_with("1\n"),
        "{old}"
    );
}
