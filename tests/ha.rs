//! High availability: replicas of the Secrets exporter export the same series but for
//! `instance` and `pod`, and the shipped rules merge them, so that every certificate alert is
//! one alert whatever the number of replicas, and one replica stopping changes nothing
//! (`promtool test rules` on fixtures/prometheus/ha.test.yml, then a real Prometheus scraping
//! three exporters of the real API server's Secrets, in two clusters). A replica that starts
//! is not ready, and shows no partial view once ready, until its first list is complete.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::cluster;
use common::fake_api::{list, tls_secret, FakeApi, Reply};
use common::prometheus::{promtool, rules_firing_at_once, Prometheus};
use common::*;
use yaml_rust2::YamlLoader;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every certificate alert reads the recording rules that merge replicas, and the HA cases
/// make each of them fire through a restart and a rolling update.
#[test]
fn every_certificate_alert_reads_the_merged_series_and_passes_the_ha_cases() {
    let rules_text = std::fs::read_to_string(format!(
        "{ROOT}/manifests/prometheus/x509-certificate-exporter.rules.yml"
    ))
    .unwrap();
    let rules = &YamlLoader::load_from_str(&rules_text).unwrap()[0];
    let rules = rules["groups"][0]["rules"].as_vec().unwrap();
    // Rules of a group run in order, each seeing what the ones before it recorded: the
    // recording rules come first.
    let records: Vec<&str> = rules.iter().filter_map(|r| r["record"].as_str()).collect();
    assert!(
        rules[..records.len()]
            .iter()
            .all(|r| r["record"].as_str().is_some()),
        "an alert comes before a recording rule it reads"
    );
    for (record, rule) in records.iter().zip(rules) {
        // One pattern for all: Kubernetes objects merged across `instance`, `pod` and `shard`,
        // everything else (files) passed through with its own labels.
        let expr = rule["expr"].as_str().unwrap();
        let metric = record
            .strip_prefix("certificate:")
            .and_then(|r| r.strip_suffix(":max"))
            .unwrap();
        for part in [
            "max without (instance, pod, shard) (".to_string(),
            format!("{metric}{{secret_name!=\"\"}}"),
            format!("{metric}{{configmap_name!=\"\"}}"),
            format!("or {metric}{{secret_name=\"\", configmap_name=\"\""),
        ] {
            assert!(expr.contains(&part), "{record} has no {part}: {expr}");
        }
    }
    // What is left of an alert's expression and description once the merged series are
    // taken out names no series of the exporter's, but for the read errors, which are about
    // one exporter.
    let mut alerts = Vec::new();
    for rule in &rules[records.len()..] {
        let name = rule["alert"].as_str().unwrap();
        let mut rest = format!(
            "{}\n{}",
            rule["expr"].as_str().unwrap(),
            rule["annotations"]["description"].as_str().unwrap()
        );
        for record in &records {
            rest = rest.replace(record, "");
        }
        match name {
            "X509ExporterReadErrors" => assert!(rest.contains("x509_read_errors_total")),
            _ => assert!(!rest.contains("x509_"), "{name} reads raw series: {rest}"),
        }
        alerts.push(name);
    }
    assert_eq!(alerts.len(), 10, "{alerts:?}");

    // The HA cases make every alert fire, the certificate alerts with two or three replicas.
    let path = Path::new(ROOT).join("fixtures/prometheus/ha.test.yml");
    let cases = &YamlLoader::load_from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()[0];
    let mut fired = std::collections::BTreeSet::new();
    for group in cases["tests"].as_vec().unwrap() {
        for check in group["alert_rule_test"].as_vec().unwrap() {
            if !check["exp_alerts"].as_vec().unwrap().is_empty() {
                fired.insert(check["alertname"].as_str().unwrap().to_string());
            }
        }
    }
    for alert in &alerts {
        assert!(
            fired.contains(*alert),
            "{} never fires {alert}",
            path.display()
        );
    }
    promtool("test", "rules", &path);
}

/// One firing alert: its labels and when it became active.
#[derive(Debug, Clone, PartialEq)]
struct Firing {
    labels: BTreeMap<String, String>,
    active_at: String,
}

impl Firing {
    /// (alert, object, cluster, instance): the object is the Secret or the file name, the
    /// instance is empty when the alert has none.
    fn key(&self) -> (String, String, String, String) {
        let get = |k: &str| self.labels.get(k).cloned().unwrap_or_default();
        let object = match get("secret_name") {
            name if name.is_empty() => get("filename"),
            name => name,
        };
        (get("alertname"), object, get("cluster"), get("instance"))
    }
}

/// The firing alerts but X509ExporterReadErrors (about one exporter: whether it fires here
/// depends on whether Prometheus saw the counter rise), or None while Prometheus does not
/// answer.
fn firing(prometheus: &Prometheus) -> Option<Vec<Firing>> {
    let addr = prometheus.addr.parse().ok()?;
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    let response = request(addr, "GET", "/api/v1/alerts", &[]);
    if response.status != 200 {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&response.body).ok()?;
    let mut out: Vec<Firing> = json["data"]["alerts"]
        .as_array()?
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| Firing {
            labels: serde_json::from_value(a["labels"].clone()).unwrap(),
            active_at: a["activeAt"].as_str().unwrap().to_string(),
        })
        .filter(|f| f.labels["alertname"] != "X509ExporterReadErrors")
        .collect();
    out.sort_by_key(Firing::key);
    Some(out)
}

/// Polls the firing alerts until their keys are `want`; each poll first passes `always`.
fn firing_until(
    prometheus: &Prometheus,
    want: &[(String, String, String, String)],
    always: impl Fn(&[Firing]),
) -> Vec<Firing> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(now) = firing(prometheus) {
            always(&now);
            if now.iter().map(Firing::key).collect::<Vec<_>>() == want {
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "timed out; firing: {:#?}\nwanted: {want:#?}",
                now.iter().map(Firing::key).collect::<Vec<_>>()
            );
        }
        assert!(Instant::now() < deadline, "Prometheus never answered");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An exporter of the namespace's Secrets and of `dir`, on `listen` (e.g. `127.0.0.1:0`).
fn replica(ns: &str, dir: &TempDir, listen: &str) -> Exporter {
    let c = cluster();
    let mut cmd = Command::new(BIN);
    cmd.arg(format!("--listen-address={listen}")).args([
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_ADMIN"),
        "--include-namespace",
        ns,
        "--expose-per-cert-error-metrics",
        "-d",
        &dir.str(""),
    ]);
    let exporter = Exporter::spawn(cmd);
    exporter.wait_ready();
    exporter
}

/// Secrets on the real API server rather than files: the rules merge the series of
/// Kubernetes objects only (a file lives on its host, so two exporters reading the same
/// path are two certificates); the shared directory here shows that side too.
#[test]
fn replicas_fire_one_alert_per_certificate_and_one_stopping_changes_nothing() {
    let c = cluster();
    let ns = c.namespace("ha", serde_json::json!({}));
    let now = now();
    let day = 86_400;
    // 398-day certificates with 10 and 20 days left (90 % and 2/3 used: critical, warning).
    for (name, cn, not_before, not_after) in [
        ("soon-tls", "soon", now - 388 * day, now + 10 * day),
        ("renew-tls", "renew", now - 378 * day, now + 20 * day),
        ("expired-tls", "expired", now - 30 * day, now - day),
    ] {
        c.secret(
            &ns,
            name,
            "kubernetes.io/tls",
            &[
                ("tls.crt", pem(cn, not_before, not_after).as_str()),
                ("tls.key", "KEY"),
            ],
            serde_json::json!({}),
        );
    }
    c.secret(
        &ns,
        "broken-tls",
        "kubernetes.io/tls",
        &[("tls.crt", "not a certificate"), ("tls.key", "KEY")],
        serde_json::json!({}),
    );
    let dir = TempDir::new("ha-files");
    dir.write("host.pem", pem("host", now - 30 * day, now - day));

    // East runs two replicas of one configuration, west one: the same Secrets, as two
    // clusters with the same names would have them.
    let east_1 = replica(&ns, &dir, "127.0.0.1:0");
    let east_2 = replica(&ns, &dir, "127.0.0.1:0");
    let west = replica(&ns, &dir, "127.0.0.1:0");
    let (east_1_addr, east_2_addr, west_addr) = (
        east_1.addr.to_string(),
        east_2.addr.to_string(),
        west.addr.to_string(),
    );
    let m = east_1.metrics();
    assert_eq!(
        m.one("x509_cert_error", &[("secret_name", "broken-tls")])
            .value,
        1.0
    );
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['$DIR/rules.yml']\nscrape_configs:\n  - job_name: x509\n    static_configs:\n      - targets: ['{east_1_addr}', '{east_2_addr}']\n        labels: {{cluster: east}}\n      - targets: ['{west_addr}']\n        labels: {{cluster: west}}\n"
    );
    let prometheus = Prometheus::with_config(&config, &[("rules.yml", &rules_firing_at_once())]);

    let key = |alert: &str,
               object: &str,
               cluster: &str,
               instance: &str|
     -> (String, String, String, String) {
        (alert.into(), object.into(), cluster.into(), instance.into())
    };
    let mut all = Vec::new();
    for cluster in ["east", "west"] {
        all.push(key("X509CertificateError", "broken-tls", cluster, ""));
        all.push(key("X509CertificateExpiration", "soon-tls", cluster, ""));
        all.push(key("X509CertificateExpired", "expired-tls", cluster, ""));
        all.push(key("X509CertificateRenewal", "renew-tls", cluster, ""));
    }
    for (cluster, instance) in [
        ("east", &east_1_addr),
        ("east", &east_2_addr),
        ("west", &west_addr),
    ] {
        all.push(key("X509CertificateExpired", "host.pem", cluster, instance));
    }
    all.sort();
    let before = firing_until(&prometheus, &all, |_| {});
    // Three exporters export each Secret; the rules keep one per cluster.
    let raw = prometheus.query_until(
        "count(x509_cert_not_after{secret_name=\"soon-tls\"})",
        |r| !r.is_empty(),
    );
    assert_eq!(raw[0]["value"][1], "3");
    let merged = prometheus.query("certificate:x509_cert_not_after:max{secret_name=\"soon-tls\"}");
    assert_eq!(merged.unwrap().len(), 2);
    for alert in before
        .iter()
        .filter(|f| f.labels.contains_key("secret_name"))
    {
        assert!(!alert.labels.contains_key("instance"), "{alert:?}");
        assert_eq!(alert.labels["job"], "x509");
    }
    let objects = |alerts: &[Firing]| -> Vec<Firing> {
        alerts
            .iter()
            .filter(|f| f.labels.contains_key("secret_name"))
            .cloned()
            .collect()
    };
    let kept = objects(&before);
    let unchanged = |now: &[Firing]| {
        assert_eq!(
            objects(now),
            kept,
            "the alerts of Secrets changed (a gap would give a new activeAt)"
        )
    };

    // A crash: SIGKILL, the scrape fails, its series go stale. The alerts of Secrets stay as
    // they were (same labels, same activeAt), on every evaluation; the file of that host
    // has no exporter any more, and its alert goes.
    let mut east_1 = east_1;
    east_1.child.kill().unwrap();
    east_1.child.wait().unwrap();
    let without_east_1: Vec<_> = all.iter().filter(|k| k.3 != east_1_addr).cloned().collect();
    firing_until(&prometheus, &without_east_1, unchanged);
    prometheus.query_until(&format!("up{{instance=\"{east_1_addr}\"}} == 0"), |r| {
        r.len() == 1
    });
    assert_eq!(
        prometheus
            .query(&format!(
                "x509_cert_not_after{{instance=\"{east_1_addr}\"}}"
            ))
            .unwrap(),
        Vec::<serde_json::Value>::new(),
        "the stopped replica's series are stale"
    );
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let now = firing(&prometheus).unwrap();
        unchanged(&now);
        assert_eq!(
            now.iter().map(Firing::key).collect::<Vec<_>>(),
            without_east_1
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // It comes back on the same address (a restarted container keeps its pod's address):
    // its file's alert is back, the alerts of Secrets are still the same ones.
    let east_1 = replica(&ns, &dir, &east_1_addr);
    let after = firing_until(&prometheus, &all, unchanged);
    assert_eq!(objects(&after), kept);
    drop((east_1, east_2, west));
}

/// A rolling update starts a replica while the API server is slow to answer its first list:
/// the replica stays unready all that time, past the bound a scrape waits for the first pass
/// (Kubernetes keeps the old pod meanwhile), and the moment it is ready its /metrics holds
/// the Secrets. Prometheus scrapes a pod that is not ready too: what it gets then is the
/// exporter's own series and no certificate, which the merged series of the other replicas
/// cover.
#[test]
fn a_new_replica_is_ready_only_with_its_first_list_complete() {
    let now = now();
    let cert = pem("rolled", now - 60, now + 86_400);
    let open = Arc::new(AtomicBool::new(false));
    // Watches hang open, as a quiet watch does: their senders are kept.
    let watches = Arc::new(Mutex::new(Vec::new()));
    let api = FakeApi::start("ha-rolling", {
        let open = Arc::clone(&open);
        let watches = Arc::clone(&watches);
        move |req, _| {
            if req.param("watch") == Some("true") {
                let (tx, rx) = crossbeam_channel::unbounded::<String>();
                watches.lock().unwrap().push(tx);
                return Reply::Stream(rx);
            }
            while !open.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            Reply::ok(list(
                "SecretList",
                &[tls_secret("apps", "rolled-tls", "7", &cert)],
                "",
            ))
        }
    });
    let exporter = Exporter::start(&["--watch-kube-secrets", "--kubeconfig", &api.kubeconfig()]);
    api.wait_requests(1);

    // Held for 7 s: longer than the 5 s a scrape waits for the first pass.
    let held = Instant::now();
    let scrape = exporter.get("/metrics");
    let waited = held.elapsed();
    assert_eq!(scrape.status, 200);
    assert!(
        waited >= Duration::from_millis(4500),
        "answered after {waited:?}"
    );
    let body = Metrics::parse(&scrape.text());
    assert_eq!(body.count("x509_exporter_build_info"), 1, "{}", body.body);
    assert_eq!(body.count("x509_cert_not_after"), 0, "{}", body.body);
    while held.elapsed() < Duration::from_secs(7) {
        assert_eq!(
            exporter.get("/readyz").status,
            503,
            "ready with the list held"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    open.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(20);
    while exporter.get("/readyz").status != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Ready and the view are published together: the first scrape after holds the Secret.
    let m = exporter.scrape();
    let s = m.one("x509_cert_not_after", &[("secret_name", "rolled-tls")]);
    assert_eq!(s.labels["secret_namespace"], "apps");
    assert_eq!(s.labels["subject_CN"], "rolled");
    drop(watches);
}
