//! A scrape that arrives before every source has finished its first pass (a socket-activated
//! start, a restart) waits for it, up to a bound, rather than answer with an empty body that
//! would fire `absent()` alerts. The slow source is a Secrets source whose API server (a
//! fake here) holds its LIST until the test lets it go.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// An API server that answers every request with one TLS Secret, once `open` is called.
struct HeldApi {
    gate: Arc<(Mutex<bool>, Condvar)>,
    dir: TempDir,
}

impl HeldApi {
    fn start(name: &str, cert_pem: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let list = format!(
            "{{\"kind\":\"SecretList\",\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"1\"}},\"items\":[{{\"metadata\":{{\"name\":\"held\",\"namespace\":\"ns\",\"resourceVersion\":\"1\"}},\"type\":\"kubernetes.io/tls\",\"data\":{{\"tls.crt\":\"{}\"}}}}]}}",
            b64(cert_pem.as_bytes())
        );
        {
            let gate = Arc::clone(&gate);
            thread::spawn(move || {
                for stream in listener.incoming().map_while(Result::ok) {
                    let (gate, list) = (Arc::clone(&gate), list.clone());
                    thread::spawn(move || answer(stream, &gate, &list));
                }
            });
        }
        let dir = TempDir::new(name);
        dir.write(
            "kubeconfig",
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster: {{server: 'http://{addr}'}}\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nusers:\n- name: u\n  user: {{token: t}}\n"
            ),
        );
        Self { gate, dir }
    }

    fn open(&self) {
        let (open, changed) = &*self.gate;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }
}

/// Reads one request head, waits for the gate, answers with the list.
fn answer(stream: TcpStream, gate: &(Mutex<bool>, Condvar), list: &str) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        line.clear();
    }
    let (open, changed) = gate;
    let mut guard = open.lock().unwrap();
    while !*guard {
        guard = changed.wait(guard).unwrap();
    }
    drop(guard);
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{list}",
        list.len()
    );
}

fn start(api: &HeldApi, certs: &TempDir) -> Exporter {
    Exporter::start(&[
        "-d",
        &certs.str(""),
        "--watch-kube-secrets",
        &format!("--kubeconfig={}", api.dir.str("kubeconfig")),
    ])
}

#[test]
fn a_scrape_before_the_first_pass_waits_for_it() {
    let now = now();
    let certs = TempDir::new("first-pass-files");
    certs.write("file.pem", pem("from-a-file", now - 60, now + 86_400));
    let api = HeldApi::start(
        "first-pass-api",
        &pem("from-a-secret", now - 60, now + 86_400),
    );
    let exporter = start(&api, &certs);
    assert_eq!(exporter.get("/readyz").status, 503, "the list is held");
    let addr = exporter.addr;
    let scrape = thread::spawn(move || {
        let start = Instant::now();
        let response = request(addr, "GET", "/metrics", &[]);
        (start.elapsed(), response)
    });
    // The scrape is waiting (the exporter says so), then the list is let go.
    exporter.wait_log("waits for the first pass", Duration::from_secs(5));
    api.open();
    let (took, response) = scrape.join().unwrap();
    assert_eq!(response.status, 200);
    let metrics = Metrics::parse(&response.text());
    assert_eq!(
        metrics.label_values("subject_CN"),
        ["from-a-file", "from-a-secret"],
        "answered after the first pass, with every source (after {took:?})"
    );
}

#[test]
fn a_first_pass_that_does_not_end_holds_a_scrape_five_seconds_at_most() {
    let now = now();
    let certs = TempDir::new("first-pass-bound-files");
    certs.write("file.pem", pem("from-a-file", now - 60, now + 86_400));
    let api = HeldApi::start(
        "first-pass-bound-api",
        &pem("never", now - 60, now + 86_400),
    );
    let exporter = start(&api, &certs);
    // The files are read within milliseconds; the API never answers.
    for _ in 0..3 {
        let start = Instant::now();
        let response = exporter.get("/metrics");
        let took = start.elapsed();
        assert_eq!(response.status, 200);
        assert!(
            took >= Duration::from_millis(4500) && took < Duration::from_secs(8),
            "answered after {took:?}"
        );
        if Metrics::parse(&response.text()).label_values("subject_CN") == ["from-a-file"] {
            assert_eq!(exporter.get("/readyz").status, 503, "still not ready");
            api.open();
            return;
        }
    }
    panic!("the file was never read: {:#?}", exporter.log_lines());
}
