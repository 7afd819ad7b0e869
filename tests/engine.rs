//! The refresh engine end to end: `--workers` sizes the pool, a thousand `-d` sources share
//! it (the thread count does not follow the sources), and a Kubernetes API server that
//! never answers holds its own thread, not a pool worker, so file sources keep refreshing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// The names of the exporter's threads, from /proc.
fn thread_names(pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let comm = task.unwrap().path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm) {
            names.push(name.trim_end().to_string());
        }
    }
    names.sort();
    names
}

/// The `Threads:` line of /proc/PID/status.
fn thread_count(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

#[test]
fn workers_sets_the_size_of_the_refresh_pool() {
    let now = now();
    let dir = TempDir::new("engine-workers");
    dir.write("a.pem", pem("pooled", now - 60, now + 86_400));
    for (args, want) in [(&["--workers=3"][..], 3), (&["--workers", "1"], 1)] {
        let mut all = vec!["-d", dir.0.to_str().unwrap()];
        all.extend_from_slice(args);
        let exporter = Exporter::start(&all);
        exporter.wait_ready();
        let names = thread_names(exporter.child.id());
        let pool: Vec<_> = names.iter().filter(|n| n.starts_with("refresh-")).collect();
        assert_eq!(pool.len(), want, "{args:?}: {names:?}");
        assert!(
            !names.iter().any(|n| n.starts_with("network-")),
            "{names:?}"
        );
    }
}

#[test]
fn a_thousand_directory_sources_share_a_fixed_set_of_threads() {
    let now = now();
    let root = TempDir::new("engine-thousand");
    let pems: Vec<String> = (0..5)
        .map(|i| pem(&format!("cert-{i}"), now - 60, now + 86_400 * (i + 1)))
        .collect();
    let mut args = Vec::new();
    for d in 0..1000 {
        let name = format!("d{d:04}");
        root.write(&format!("{name}/tls.pem"), &pems[d % pems.len()]);
        args.push(format!("--watch-dir={}", root.str(&name)));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&args);
    let metrics = exporter.metrics();
    assert_eq!(
        metrics.count("x509_cert_not_after"),
        1000,
        "every certificate"
    );
    let mut paths = metrics.label_values("filepath");
    paths.dedup();
    assert_eq!(paths.len(), 1000);
    assert_eq!(metrics.value("x509_read_errors"), 0.0);
    let threads = thread_count(exporter.child.id());
    assert!(
        threads <= 16,
        "{threads} threads: {:?}",
        thread_names(exporter.child.id())
    );
}

/// An API server that accepts connections and never answers; counts those it accepted.
struct HungApi {
    accepted: Arc<AtomicUsize>,
    dir: TempDir,
}

impl HungApi {
    fn start(name: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        {
            let accepted = Arc::clone(&accepted);
            std::thread::spawn(move || {
                for stream in listener.incoming().map_while(Result::ok) {
                    // Kept open, unread and unanswered, until the test ends.
                    held.lock().unwrap().push(stream);
                    accepted.fetch_add(1, Ordering::SeqCst);
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
        Self { accepted, dir }
    }
}

#[test]
fn a_hung_api_server_does_not_starve_the_file_sources() {
    let now = now();
    let certs = TempDir::new("engine-hung-files");
    certs.write("first.pem", pem("first", now - 60, now + 86_400));
    let api = HungApi::start("engine-hung-api");
    // One pool worker: were the Kubernetes list run on it, nothing else would run.
    let exporter = Exporter::start(&[
        "-d",
        &certs.str(""),
        "--watch-kube-secrets",
        &format!("--kubeconfig={}", api.dir.str("kubeconfig")),
        "--refresh-interval=1s",
        "--workers=1",
    ]);
    let source = format!("--watch-dir={}", certs.str(""));
    exporter.wait_log(
        format!("{source}: 1 certificates from 1 items").as_str(),
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the exporter never called the API"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The list hangs; a certificate added now is seen within a few refresh intervals.
    certs.write("second.pem", pem("second", now - 60, now + 86_400));
    exporter.wait_log(
        format!("{source}: refreshed 2 items").as_str(),
        Duration::from_secs(4),
    );
    // A scrape waits for the first pass (at most 5 s), then answers with the files.
    let metrics = exporter.scrape();
    assert_eq!(metrics.label_values("subject_CN"), ["first", "second"]);
    assert_eq!(
        exporter.get("/readyz").status,
        503,
        "the API has not answered"
    );
    let names = thread_names(exporter.child.id());
    assert_eq!(
        names.iter().filter(|n| n.starts_with("network-")).count(),
        1,
        "{names:?}"
    );
}

/// The value of `name` in the exporter's environment, from /proc.
fn environment(pid: u32, name: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|b| *b == 0)
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .map(str::to_string)
}

#[test]
fn malloc_is_tuned_for_the_pool_unless_the_operator_says_otherwise() {
    let exporter = Exporter::start(&["--workers=3"]);
    let pid = exporter.child.id();
    assert_eq!(
        environment(pid, "MALLOC_ARENA_MAX").as_deref(),
        Some("6"),
        "the same process, run again with two arenas per worker"
    );
    assert_eq!(
        environment(pid, "MALLOC_MMAP_THRESHOLD_").as_deref(),
        Some("131072")
    );
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert!(
        "x509-certificate-exporter".starts_with(name.trim_end()),
        "the process keeps its name in top and ps: {name:?}"
    );
    exporter.wait_ready();

    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--listen-address=127.0.0.1:0")
        .env("MALLOC_ARENA_MAX", "1");
    let exporter = Exporter::spawn(cmd);
    let pid = exporter.child.id();
    assert_eq!(
        environment(pid, "MALLOC_ARENA_MAX").as_deref(),
        Some("1"),
        "the operator's value is kept"
    );
    assert_eq!(
        environment(pid, "MALLOC_MMAP_THRESHOLD_").as_deref(),
        Some("131072"),
        "and the other one still set"
    );

    // A run that was started for the tuning and still lacks the variables (a loader that
    // drops them) goes on untuned rather than starting itself again and again.
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("--listen-address=127.0.0.1:0")
        .env("X509_EXPORTER_MALLOC_TUNED", "1")
        .env_remove("MALLOC_ARENA_MAX")
        .env_remove("MALLOC_MMAP_THRESHOLD_");
    let exporter = Exporter::spawn(cmd);
    assert_eq!(environment(exporter.child.id(), "MALLOC_ARENA_MAX"), None);
    exporter.wait_log(
        "malloc not tuned: the environment dropped",
        Duration::from_secs(5),
    );
}
