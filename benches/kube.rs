//! `make bench` (Kubernetes part): a full pass over 50,000 TLS Secrets in pages of 100 from a
//! real kube-apiserver, against two floors measured in the same run: curl fetching the same
//! pages, and the exporter reading the same certificates from files (for memory). Then the
//! watch: the requests the API server itself counts (`apiserver_request_total` by verb)
//! during BENCH_KUBE_STEADY_SECONDS (600) of steady state after that pass, with
//! `--refresh-interval=1s` (listing at every refresh would be 500 pages a second), and the
//! time from a Secret's creation (the API call returned) to its certificate on /metrics.
//! Prints a table and writes it to BENCHMARKS.md (between markers). Medians of 3 rounds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io::Write;

use common::cluster::Cluster;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{median, mib, write_section, Run};

const ROUNDS: usize = 3;

fn main() {
    let secrets: usize = std::env::var("BENCH_SECRETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000);
    let page = 100;
    let work = PathBuf::from("/dev/shm/x509e-bench-kube");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    let cluster = cluster(&work.join("kas"));
    let certs = certificates(secrets.min(5_000));
    eprintln!("loading {secrets} Secrets…");
    let loaded = Instant::now();
    load(&cluster, secrets, &certs);
    eprintln!("loaded in {:.1?}", loaded.elapsed());

    // Floor: curl fetching the same pages (one process, one connection, tokens gathered first).
    let mut curl = Vec::new();
    for _ in 0..ROUNDS {
        let urls = page_urls(&cluster, page);
        let config = work.join("curl.cfg");
        let mut f = std::fs::File::create(&config).unwrap();
        for url in &urls {
            writeln!(f, "url = \"{url}\"\noutput = \"/dev/null\"").unwrap();
        }
        drop(f);
        let start = Instant::now();
        let status = Command::new("curl")
            .args(["-sf", "--cacert", cluster.var("KUBE_CA"), "-H"])
            .arg(format!(
                "Authorization: Bearer {}",
                cluster.var("ADMIN_TOKEN")
            ))
            .arg("-K")
            .arg(&config)
            .status()
            .unwrap();
        assert!(status.success());
        curl.push(start.elapsed());
    }

    // The exporter: start to ready (every page fetched and decoded), and its peak RSS.
    let kubeconfig = cluster.var("KUBECONFIG_ADMIN").to_string();
    let mut pass = Vec::new();
    let mut kube_rss = Vec::new();
    for _ in 0..ROUNDS {
        let (elapsed, rss) = until_ready(&[
            "--watch-kube-secrets",
            "--kubeconfig",
            &kubeconfig,
            "--include-namespace=bench",
            &format!("--kube-page-size={page}"),
        ]);
        pass.push(elapsed);
        kube_rss.push(rss);
    }

    // Steady state and watch latency, one run (the list is the pass measured above).
    let steady_for = Duration::from_secs(
        std::env::var("BENCH_KUBE_STEADY_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    let (lists, watches, latencies) = steady(&cluster, &kubeconfig, steady_for);

    // Memory floors: idle with no source, and the same certificates read from files.
    let idle: Vec<u64> = (0..ROUNDS).map(|_| until_ready(&[]).1).collect();
    let dir = work.join("files");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..secrets {
        std::fs::write(dir.join(format!("s{i:06}.pem")), &certs[i % certs.len()]).unwrap();
    }
    let files: Vec<u64> = (0..ROUNDS)
        .map(|_| until_ready(&["-d", dir.to_str().unwrap()]).1)
        .collect();
    cluster.down();
    let _ = std::fs::remove_dir_all(&work);

    let (curl, pass) = (median(curl), median(pass));
    let (kube_rss, idle, files) = (median(kube_rss), median(idle), median(files));
    let rss_limit = 2 * files; // 2 × (idle + what the certificates cost from files)
    let minutes = steady_for.as_secs_f64() / 60.0;
    let latency = median(latencies.iter().copied());
    let worst = latencies.iter().max().copied().unwrap_or_default();
    let rows = [
        format!("| full pass, {secrets} Secrets, pages of {page} | {:.2} s | curl, same pages: {:.2} s | {:.2} × | ≤ 1.5 × |", secs(pass), secs(curl), secs(pass) / secs(curl)),
        format!("| peak RSS (VmHWM) after that pass | {} | 2 × (idle {} + files {}) = {} | {:.2} × | < 1.0 × |", mib(kube_rss), mib(idle), mib(files.saturating_sub(idle)), mib(rss_limit), kube_rss as f64 / rss_limit as f64),
        format!("| requests in {minutes:.0} min of steady state, `--refresh-interval=1s` (one scope) | {lists} LIST, {watches} WATCH | listing at every refresh: {} LIST | – | ≤ 2 |", (steady_for.as_secs() as usize) * secrets.div_ceil(page)),
        format!("| Secret created → on /metrics, median of {} (worst) | {:.2} s ({:.2} s) | – | – | ≤ 2 s |", latencies.len(), secs(latency), secs(worst)),
    ];
    let table = format!(
        "| figure | exporter | floor (same run) | ratio | target |\n|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    println!("{table}");
    write_section("kubernetes", &format!(
        "Measured by `make bench` ({}): a real kube-apiserver v1.20.2 with etcd on tmpfs, {secrets} `kubernetes.io/tls` Secrets in one namespace. Medians of {ROUNDS} rounds; the exporter's time runs from its start to `/readyz` 200 (every page fetched and decoded). The steady-state row counts the API server's own `apiserver_request_total` (LIST and WATCH of secrets) over the window after the exporter, watching and refreshing every second, was ready (a watch is counted when it ends); the last row times 5 Secrets, one after the other, from the create call's return to the first plain scrape that shows the certificate.\n\n{table}",
        "benches/kube.rs"
    ));
}

/// The exporter watching the bench namespace, refreshing every second: the LIST and WATCH
/// requests of Secrets the API server counted during `window` once it was ready, then the
/// time from each of 5 Secrets' creation to its certificate on /metrics.
fn steady(cluster: &Cluster, kubeconfig: &str, window: Duration) -> (u64, u64, Vec<Duration>) {
    let run = Run::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        kubeconfig,
        "--include-namespace=bench",
        "--refresh-interval=1s",
    ]);
    run.wait_ready();
    let (lists, watches) = (
        cluster.requests("secrets", "LIST"),
        cluster.requests("secrets", "WATCH"),
    );
    std::thread::sleep(window);
    let lists = cluster.requests("secrets", "LIST") - lists;
    let watches = cluster.requests("secrets", "WATCH") - watches;
    let late = certificates_named("late", 5);
    let latencies = late
        .iter()
        .enumerate()
        .map(|(i, cert)| {
            let body = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                "type": "kubernetes.io/tls", "metadata": {"name": format!("late{i}")},
                "data": {"tls.crt": common::b64(cert.as_bytes()),
                    "tls.key": common::b64(b"not a real key")}});
            cluster.call("POST", "/api/v1/namespaces/bench/secrets", Some(body));
            let created = Instant::now();
            let wanted = format!("subject_CN=\"late{i}.bench.example\"");
            loop {
                let (_, metrics) = run.scrape_now(false);
                if String::from_utf8_lossy(&metrics).contains(&wanted) {
                    break created.elapsed();
                }
                assert!(
                    created.elapsed() < Duration::from_secs(60),
                    "late{i} never shown"
                );
            }
        })
        .collect();
    (lists, watches, latencies)
}

/// Starts the exporter and waits for /readyz: the time since start and VmHWM then.
fn until_ready(args: &[&str]) -> (Duration, u64) {
    let run = Run::start(args);
    (run.wait_ready(), run.hwm())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Distinct P-256 certificates (PEM), valid for a year from now.
fn certificates(n: usize) -> Vec<String> {
    certificates_named("s", n)
}

/// Distinct P-256 certificates for `PREFIXi.bench.example`, valid for a year from now.
fn certificates_named(prefix: &str, n: usize) -> Vec<String> {
    let now = time::OffsetDateTime::now_utc();
    (0..n)
        .map(|i| {
            let name = format!("{prefix}{i}.bench.example");
            let mut params = rcgen::CertificateParams::new(vec![name.clone()]).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, "Bench");
            params.not_before = now - time::Duration::days(1);
            params.not_after = now + time::Duration::days(365);
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().pem()
        })
        .collect()
}

/// A real API server (`tests/common/cluster.rs`) with the bench namespace.
fn cluster(dir: &Path) -> Cluster {
    let cluster = Cluster::up(dir);
    cluster.call(
        "POST",
        "/api/v1/namespaces",
        Some(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})),
    );
    cluster
}

/// Creates `n` TLS Secrets over 4 connections.
fn load(cluster: &Cluster, n: usize, certs: &[String]) {
    let encode = |s: &str| common::b64(s.as_bytes());
    let key = encode("not a real key");
    std::thread::scope(|scope| {
        for t in 0..4 {
            let key = &key;
            scope.spawn(move || {
                for i in (t..n).step_by(4) {
                    let body = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
                        "type": "kubernetes.io/tls", "metadata": {"name": format!("s{i:06}")},
                        "data": {"tls.crt": encode(&certs[i % certs.len()]), "tls.key": key}});
                    cluster.call("POST", "/api/v1/namespaces/bench/secrets", Some(body));
                }
            });
        }
    });
}

/// The URLs of every page of the bench namespace's Secrets, continue tokens included.
fn page_urls(cluster: &Cluster, limit: usize) -> Vec<String> {
    let base = format!(
        "{}/api/v1/namespaces/bench/secrets?limit={limit}&fieldSelector=type%3Dkubernetes.io%2Ftls",
        cluster.var("KUBE_URL")
    );
    let mut urls = vec![base.clone()];
    loop {
        let mut response = cluster
            .agent
            .get(urls.last().unwrap())
            .header(
                "Authorization",
                format!("Bearer {}", cluster.var("ADMIN_TOKEN")),
            )
            .call()
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_reader(response.body_mut().as_reader()).unwrap();
        match body["metadata"]["continue"].as_str() {
            Some(token) if !token.is_empty() => {
                let encoded: String = token
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                urls.push(format!("{base}&continue={encoded}"));
            }
            _ => return urls,
        }
    }
}
