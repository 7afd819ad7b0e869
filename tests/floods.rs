//! Floods against the real binary, as an adversarial review ran them: wrong passwords as
//! fast as 200 connections can send them, and three clients holding 1,500 connections each
//! while they churn. Real scrapes must get through; the flood must cost bounded CPU. The
//! tests here take the machine's two cores, so they run one at a time (see [`ALONE`]), and
//! print what they measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// One flood at a time: each is measured against an idle baseline.
static ALONE: Mutex<()> = Mutex::new(());

/// Certificates behind the exporter.
const CERTS: usize = 1000;

fn certs(dir: &TempDir) {
    let now = now();
    let pem = pem("flood", now - 100, now + 86_400);
    for i in 0..CERTS {
        dir.write(&format!("certs/c{i:04}.pem"), &pem);
    }
}

/// The answer to one request over a kept-alive connection: status and body, or None when
/// the connection failed, closed, or did not answer within its read timeout.
fn exchange(stream: &mut TcpStream, request: &[u8]) -> Option<(u16, Vec<u8>)> {
    stream.write_all(request).ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())?;
    while raw.len() < head_end + length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    Some((status, raw[head_end..head_end + length].to_vec()))
}

/// A plain scrape over a new connection, read whole within 5 s: its duration, or why not.
fn try_scrape(addr: SocketAddr, auth: Option<&str>) -> Result<Duration, String> {
    let start = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e} after {} bytes", raw.len()))?;
    let text = String::from_utf8_lossy(&raw);
    if !text.starts_with("HTTP/1.1 200 ") {
        return Err(format!("answer: {}", text.lines().next().unwrap_or("none")));
    }
    if !text.ends_with("\r\n0\r\n\r\n") || text.matches("x509_cert_not_after{").count() != CERTS {
        return Err(format!("a cut body of {} bytes", raw.len()));
    }
    Ok(start.elapsed())
}

/// CPU seconds the process has used (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ is 100 on Linux
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// `user:password` as a Basic Authorization value.
fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", b64(format!("{user}:{password}").as_bytes()))
}

#[test]
fn a_wrong_password_flood_delays_no_scrape_and_costs_bounded_cpu() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("auth-flood");
    certs(&dir);
    // Cost 10, as users are told to make them: a check costs tens of milliseconds.
    let alice = bcrypt::hash("right", 10).unwrap();
    let bob = bcrypt::hash("bobs", 10).unwrap();
    let config = dir.write(
        "web.yml",
        format!("basic_auth_users:\n  alice: '{alice}'\n  bob: '{bob}'\n"),
    );
    let exporter = Exporter::start(&[
        "-d",
        &dir.str("certs"),
        &format!("--web.config.file={}", config.display()),
    ]);
    let addr = exporter.addr;
    let good = basic("alice", "right");
    let deadline = Instant::now() + Duration::from_secs(20);
    while request(addr, "GET", "/readyz", &[("Authorization", &good)]).status != 200 {
        assert!(Instant::now() < deadline, "never ready");
        thread::sleep(Duration::from_millis(50));
    }
    let idle = median(
        (0..7)
            .map(|_| try_scrape(addr, Some(&good)).unwrap())
            .collect(),
    );

    // 200 keep-alive connections sending random passwords for alice as fast as they can.
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicUsize; 3]> = Arc::new(Default::default()); // 401, 429, other
    let flood: Vec<_> = (0..200)
        .map(|n| {
            let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
            thread::spawn(move || {
                let mut attempt = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut stream) = TcpStream::connect(addr) else {
                        continue;
                    };
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        attempt += 1;
                        let auth = basic("alice", &format!("guess-{n}-{attempt}"));
                        let request = format!(
                            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nAuthorization: {auth}\r\n\r\n"
                        );
                        let slot = match exchange(&mut stream, request.as_bytes()) {
                            Some((401, _)) => 0,
                            Some((429, _)) => 1,
                            Some(_) => 2,
                            None => break,
                        };
                        counts[slot].fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let pid = exporter.child.id();
    let (cpu_start, flood_start) = (cpu_seconds(pid), Instant::now());

    // The login already verified: plain and gzip scrapes as before.
    let mut loaded = Vec::new();
    while flood_start.elapsed() < Duration::from_secs(6) {
        thread::sleep(Duration::from_millis(250));
        loaded.push(try_scrape(addr, Some(&good)).expect("a verified scrape under the flood"));
        let start = Instant::now();
        let response = request(
            addr,
            "GET",
            "/metrics",
            &[("Authorization", &good), ("Accept-Encoding", "gzip")],
        );
        assert_eq!(response.status, 200, "gzip scrape under the flood");
        loaded.push(start.elapsed());
    }
    // A login never seen before, from another address: checked within the same bound.
    let start = Instant::now();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["--interface", "127.0.0.2", "-u", "bob:bobs"])
        .arg(format!("http://127.0.0.1:{}/metrics", addr.port()))
        .output()
        .unwrap();
    let fresh = start.elapsed();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");

    let elapsed = flood_start.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - cpu_start) / elapsed;
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        t.join().unwrap();
    }
    let [refused, throttled, other] = [0, 1, 2].map(|i| counts[i].load(Ordering::Relaxed));
    let worst = *loaded.iter().max().unwrap();
    eprintln!(
        "wrong-password flood: {refused} refused after a check, {throttled} throttled, {other} other, in {elapsed:.1} s; \
         exporter CPU {cpu:.2} cores; verified scrapes: idle {idle:?}, under flood median {:?}, worst {worst:?}; \
         a fresh login from another address {fresh:?}",
        median(loaded.clone())
    );
    assert_eq!(other, 0, "every flood request is refused or throttled");
    assert!(
        worst <= idle + Duration::from_secs(2),
        "worst {worst:?}, idle {idle:?}"
    );
    assert!(
        fresh <= idle + Duration::from_secs(2),
        "fresh login took {fresh:?}"
    );
    // Every password is new, so each refusal cost a bcrypt check: no more than the flooding
    // address's share of check time allows (half a second at once, then a sixteenth of a
    // core), whatever it sends. A check here costs at least what it costs this process.
    let cost = (0..3)
        .map(|_| {
            let start = Instant::now();
            let _ = bcrypt::verify("x", &alice);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    let allowed = (0.5 + (elapsed + 1.0) / 16.0) / cost + 3.0;
    assert!(
        (refused as f64) <= allowed,
        "{refused} checks of {cost:.3} s in {elapsed:.1} s"
    );
    assert!(
        throttled > refused * 10,
        "the flood went on: {throttled} throttled"
    );
    assert!(cpu < 0.5, "the flood took {cpu:.2} cores");
}

#[test]
fn a_throttled_head_answer_has_no_body_and_keeps_the_connection_in_step() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("head-429");
    certs(&dir);
    let hash = bcrypt::hash("pw", 4).unwrap();
    let config = dir.write("web.yml", format!("basic_auth_users:\n  alice: '{hash}'\n"));
    let exporter = Exporter::start(&[
        "-d",
        &dir.str("certs"),
        &format!("--web.config.file={}", config.display()),
    ]);
    // Twenty fresh wrong passwords at once spend this address's check time.
    let spenders: Vec<TcpStream> = (0..20)
        .map(|n| {
            let mut stream = TcpStream::connect(exporter.addr).unwrap();
            let auth = basic("alice", &format!("wrong{n}"));
            let get = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n");
            stream.write_all(get.as_bytes()).unwrap();
            stream
        })
        .collect();
    let mut stream = TcpStream::connect(exporter.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // A throttled HEAD, pipelined with a GET: the GET's answer must be the next thing read.
    let head = format!(
        "HEAD /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        basic("alice", "wrong-again"),
        basic("alice", "pw")
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while raw.windows(4).filter(|w| w == b"\r\n\r\n").count() < 2 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 429 "), "{text}");
    let second = text.split("\r\n\r\n").nth(1).unwrap();
    assert!(
        second.starts_with("HTTP/1.1 "),
        "the HEAD answer carried a body: {text}"
    );
    drop(spenders);
}

/// The soft open-file limit of this process, raised with `prlimit` to `want` if lower.
fn raise_own_open_files(want: usize) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft: usize = line
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    if soft >= want {
        return;
    }
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={want}:{want}"),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "this test needs {want} open files");
}

/// An exporter whose open-file limit is `files`, as `prlimit` sets it.
fn exporter_with_open_files(files: usize, dir: &TempDir) -> Exporter {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={files}:{files}"))
        .arg(BIN)
        .arg("--listen-address=127.0.0.1:0")
        .args(["-d", &dir.str("certs")]);
    let exporter = Exporter::spawn(cmd);
    exporter.wait_ready();
    exporter
}

#[test]
fn the_connection_limit_is_half_the_open_file_limit_and_the_silent_make_room() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("crowded");
    certs(&dir);
    let exporter = exporter_with_open_files(512, &dir);
    exporter.wait_log("serving at most 256 connections", Duration::from_secs(5));
    // A client that has been served, then stays idle, and 300 silent connections after it.
    let mut served = TcpStream::connect(exporter.addr).unwrap();
    served
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(exchange(&mut served, get).unwrap().0, 200);
    let silent: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(exporter.addr).unwrap())
        .collect();
    // A new scrape is served, and the oldest silent connection made room, not the client
    // that was served before them.
    try_scrape(exporter.addr, None).unwrap();
    let mut first = silent.into_iter().next().unwrap();
    let sent = read_until_closed(&mut first, Duration::from_secs(5))
        .unwrap_or_else(|why| panic!("the oldest silent connection: {why}"));
    assert!(sent.is_empty(), "closed without an answer");
    assert_eq!(
        exchange(&mut served, get).unwrap().0,
        200,
        "the served client stays"
    );
}

#[test]
fn a_churning_connection_flood_resets_no_scrape() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    raise_own_open_files(8192);
    let dir = TempDir::new("conn-flood");
    certs(&dir);
    // The review's setting: an open-file limit of 1024, so 512 connections.
    let exporter = exporter_with_open_files(1024, &dir);
    exporter.wait_log("serving at most 512 connections", Duration::from_secs(5));
    let addr = exporter.addr;
    let idle = median((0..5).map(|_| try_scrape(addr, None).unwrap()).collect());

    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
            thread::spawn(move || {
                let mut held = std::collections::VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    if held.len() >= 1500 {
                        held.pop_front(); // churn: the oldest goes, a new one comes
                    }
                    if let Ok(conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                        held.push_back(conn);
                        opened.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    while opened.load(Ordering::Relaxed) < 4500 {
        thread::sleep(Duration::from_millis(50));
    }
    let mut results = Vec::new();
    for _ in 0..15 {
        results.push(try_scrape(addr, None));
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let ok: Vec<Duration> = results.iter().filter_map(|r| r.clone().ok()).collect();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    eprintln!(
        "connection flood: {} connections opened by 3 clients; {} of 15 scrapes whole, idle {idle:?}, under flood median {:?}, worst {:?}; failures {failed:?}",
        opened.load(Ordering::Relaxed),
        ok.len(),
        (!ok.is_empty()).then(|| median(ok.clone())),
        ok.iter().max(),
    );
    assert!(ok.len() >= 14, "{} of 15 scrapes: {failed:?}", ok.len());
}

#[test]
fn out_of_file_descriptors_the_silent_make_room_without_a_spin() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("no-fds");
    certs(&dir);
    // 48 open files: fewer than the smallest connection limit (64), so accepting fails with
    // EMFILE before the limit is reached.
    let exporter = exporter_with_open_files(48, &dir);
    let silent: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect_timeout(&exporter.addr, Duration::from_secs(2)).ok())
        .collect();
    exporter.wait_log(
        "closing the connections that sent least",
        Duration::from_secs(10),
    );
    let pid = exporter.child.id();
    let (cpu_start, start) = (cpu_seconds(pid), Instant::now());
    for _ in 0..5 {
        let took = try_scrape(exporter.addr, None).expect("a scrape while out of descriptors");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    thread::sleep(Duration::from_secs(1));
    let cpu = (cpu_seconds(pid) - cpu_start) / start.elapsed().as_secs_f64();
    eprintln!(
        "out of descriptors: {} silent connections held, exporter CPU {cpu:.2} cores",
        silent.len()
    );
    assert!(cpu < 0.5, "spinning: {cpu:.2} cores");
}
