//! A real Prometheus (Debian's package) scrapes the exporter, also over TLS with basic auth;
//! the usage guide's PromQL queries return exactly the expected certificates, promtool
//! accepts the body, and the guide's Compose scenario (its prometheus.yml, our alert rules,
//! the image run as UID 65532) fires the expiration alerts; every query of the Grafana
//! dashboard is valid PromQL; the weak-crypto and short-lifetime alerts fire on what the
//! exporter writes for certificates made by OpenSSL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::prometheus::{promtool, rules_firing_at_once, Prometheus};
use common::*;

fn cns(result: &[serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> = result
        .iter()
        .map(|r| r["metric"]["subject_CN"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn prometheus_scrapes_and_the_guide_queries_return_the_expected_certificates() {
    let dir = TempDir::new("prom-certs");
    let now = now();
    let day = 86_400;
    dir.write("soon.pem", pem("soon", now - day, now + 10 * day));
    dir.write("later.pem", pem("later", now - day, now + 365 * day));
    dir.write("expired.pem", pem("expired", now - 30 * day, now - day));
    dir.write(
        "bundle.pem",
        format!(
            "{}{}",
            pem("bundle-soon", now - day, now + 20 * day),
            pem("bundle-later", now - day, now + 90 * day)
        ),
    );
    let exporter = Exporter::start(&["-d", &dir.str("")]);
    promtool_accepts(&exporter.metrics().body);

    let prometheus = Prometheus::start(&exporter.addr.to_string());
    prometheus.query_until("up{job=\"x509-exporter\"} == 1", |r| r.len() == 1);
    let expiring = prometheus.query_until("x509_cert_not_after - time() < 86400 * 30", |r| {
        !r.is_empty()
    });
    assert_eq!(cns(&expiring), ["bundle-soon", "expired", "soon"]);
    let expired = prometheus.query_until("x509_cert_expired == 1", |r| !r.is_empty());
    assert_eq!(cns(&expired), ["expired"]);
    let errors = prometheus.query_until("x509_read_errors", |r| r.len() == 1);
    assert_eq!(errors[0]["value"][1], "0");
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let dir = TempDir::new("prom-tls");
    let now = now();
    write_tls_files(&dir, "exporter");
    dir.write("certs/watched.pem", pem("watched", now - 60, now + 86_400));
    let hash = bcrypt::hash("scrape-pass", 4).unwrap();
    let web = dir.write(
        "web.yml",
        format!("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\nbasic_auth_users:\n  prometheus: '{hash}'\n"),
    );
    let exporter = Exporter::start(&[
        "-d",
        &dir.str("certs"),
        &format!("--web.config.file={}", web.display()),
    ]);
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: prometheus\n      password: {password}\n    static_configs:\n      - targets: ['{target}']\n",
            ca = dir.str("ca.pem"),
            target = exporter.addr,
        )
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{}{}",
        job("tls-auth", "scrape-pass"),
        job("wrong-password", "guess"),
    );
    let prometheus = Prometheus::with_config(&config, &[]);
    prometheus.query_until("up{job=\"tls-auth\"} == 1", |r| r.len() == 1);
    let watched = prometheus.query_until("x509_cert_not_after{job=\"tls-auth\"}", |r| r.len() == 1);
    assert_eq!(cns(&watched), ["watched"]);
    prometheus.query_until("up{job=\"wrong-password\"} == 0", |r| r.len() == 1);
    let none = prometheus
        .query("x509_cert_not_after{job=\"wrong-password\"}")
        .unwrap();
    assert!(none.is_empty(), "scraped with a wrong password: {none:?}");
}

#[test]
fn the_compose_scenario_from_the_image_fires_the_expiration_alerts() {
    let certs = TempDir::new("guide-certs");
    let now = now();
    let day = 86_400;
    // 398-day certificates: the rules also want 90 % (critical) or 2/3 (warning) of the
    // lifetime used, which 388 and 378 of 398 days are.
    certs.write("soon.pem", pem("soon", now - 388 * day, now + 10 * day));
    certs.write("renew.pem", pem("renew", now - 378 * day, now + 20 * day));
    certs.write("later.pem", pem("later", now - day, now + 365 * day));
    certs.write("expired.pem", pem("expired", now - 30 * day, now - day));
    let (cmd, _root) = in_image(
        &["--watch-dir=/certs", "--listen-address=127.0.0.1:0"],
        &[(&certs.0, "/certs")],
    );
    let exporter = Exporter::spawn(cmd);
    exporter.wait_ready();

    // The Compose scenario's prometheus.yml and rules, pointed at this exporter, evaluated
    // every second and with `for:` cut to zero so that alerts fire at once.
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests");
    let config = std::fs::read_to_string(format!("{manifests}/compose/prometheus/prometheus.yml"))
        .unwrap()
        .replace("x509-exporter:9793", &exporter.addr.to_string())
        .replace("/etc/prometheus/", "$DIR/")
        .replace("60s", "1s");
    let prometheus = Prometheus::with_config(
        &config,
        &[(
            "x509-certificate-exporter.rules.yml",
            &rules_firing_at_once(),
        )],
    );
    prometheus.query_until("up{job=\"x509-exporter\"} == 1", |r| r.len() == 1);
    let expiring = prometheus.query_until("x509_cert_not_after - time() < 86400 * 30", |r| {
        !r.is_empty()
    });
    assert_eq!(cns(&expiring), ["expired", "renew", "soon"]);
    let expired = prometheus.query_until("x509_cert_expired == 1", |r| !r.is_empty());
    assert_eq!(cns(&expired), ["expired"]);
    let firing = |name: &str| firing(&prometheus, name);
    assert_eq!(firing("X509CertificateExpiration"), ["soon"]);
    assert_eq!(firing("X509CertificateRenewal"), ["renew"]);
    assert_eq!(firing("X509CertificateExpired"), ["expired"]);

    // Every query of the Grafana dashboard is valid PromQL (an invalid one is a 400).
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{manifests}/grafana/x509-certificate-exporter.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(
                target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("${cluster_label}", "cluster")
                    .replace("$cluster", ".*")
                    .replace("$job", ".*")
                    .replace("$instance", ".*"),
            );
        }
    }
    assert!(exprs.len() >= 10);
    for expr in exprs {
        prometheus.query_until(&expr, |_| true);
    }
}

/// The subjects `name` fires for, once it fires for any.
fn firing(prometheus: &Prometheus, name: &str) -> Vec<String> {
    let query = format!("ALERTS{{alertname=\"{name}\", alertstate=\"firing\"}}");
    cns(&prometheus.query_until(&query, |r| !r.is_empty()))
}

#[test]
fn the_shipped_rules_read_what_the_exporter_writes_for_short_lives_and_weak_crypto() {
    let certs = TempDir::new("facts-alerts");
    let dir = certs.path("");
    // Each command line is split at spaces (no argument here has one).
    let openssl = |line: &str| {
        let args: Vec<&str> = line.split(' ').collect();
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("openssl is needed by the tests");
        assert!(out.status.success(), "openssl {line}: {out:?}");
    };
    // Weak crypto, as OpenSSL writes it: a 1024-bit RSA key signed with SHA-1 by itself
    // (a version 1 certificate, no extensions), and a SHA-1 root (`req -x509` makes it a
    // CA) beside a sound leaf: the root's own signature is no weakness.
    openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out weak.key");
    openssl("req -new -key weak.key -subj /CN=weak -out weak.csr");
    openssl("x509 -req -in weak.csr -signkey weak.key -sha1 -days 3650 -out weak.pem");
    openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out root.key");
    openssl("req -x509 -key root.key -sha1 -days 3650 -subj /CN=sha1-root -out root.pem");
    openssl("genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out leaf.key");
    openssl("req -new -key leaf.key -subj /CN=sound -out leaf.csr");
    openssl("x509 -req -in leaf.csr -CA root.pem -CAkey root.key -set_serial 7 -days 3650 -sha256 -out leaf.pem");
    let chain = [certs.path("leaf.pem"), certs.path("root.pem")]
        .map(|p| std::fs::read_to_string(p).unwrap())
        .concat();
    certs.write("certs/chain.pem", chain);
    std::fs::rename(certs.path("weak.pem"), certs.path("certs/weak.pem")).unwrap();
    // Short lives: 24 hours with 4 left (83 % used), and with 1 left (96 % used); 47 days
    // with 20 left (57 % used: quiet, though under 28 days).
    let now = now();
    let hour = 3600;
    certs.write(
        "certs/day-warn.pem",
        pem("day-warn", now - 20 * hour, now + 4 * hour),
    );
    certs.write(
        "certs/day-page.pem",
        pem("day-page", now - 23 * hour, now + hour),
    );
    certs.write(
        "certs/47d.pem",
        pem("47d", now - 27 * 24 * hour, now + 20 * 24 * hour),
    );

    let exporter = Exporter::start(&["-d", &certs.str("certs"), "--expose-cert-info"]);
    exporter.wait_ready();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['$DIR/rules.yml']\nscrape_configs:\n  - job_name: x509-exporter\n    static_configs:\n      - targets: ['{}']\n",
        exporter.addr
    );
    let prometheus = Prometheus::with_config(&config, &[("rules.yml", &rules_firing_at_once())]);
    prometheus.query_until("up{job=\"x509-exporter\"} == 1", |r| r.len() == 1);
    assert_eq!(firing(&prometheus, "X509CertificateWeakKey"), ["weak"]);
    assert_eq!(
        firing(&prometheus, "X509CertificateWeakSignature"),
        ["weak"],
        "the SHA-1 root of the chain is not reported"
    );
    assert_eq!(firing(&prometheus, "X509CertificateRenewal"), ["day-warn"]);
    assert_eq!(
        firing(&prometheus, "X509CertificateExpiration"),
        ["day-page"]
    );
}

#[test]
fn every_shipped_alert_fires_and_stays_quiet_under_promtool() {
    use yaml_rust2::YamlLoader;
    let root = env!("CARGO_MANIFEST_DIR");
    let cases_path = format!("{root}/fixtures/prometheus/alerts.test.yml");
    let cases_text = std::fs::read_to_string(&cases_path).unwrap();
    let rules_text = std::fs::read_to_string(format!(
        "{root}/manifests/prometheus/x509-certificate-exporter.rules.yml"
    ))
    .unwrap();

    // Every alert shipped has a case where it fires and one where it does not, in one of
    // the case files of fixtures/prometheus/ (each is run here).
    let rules = &YamlLoader::load_from_str(&rules_text).unwrap()[0];
    let alerts: Vec<&str> = rules["groups"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_vec().unwrap())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert_eq!(alerts.len(), 12, "{alerts:?}");
    let mut checks: Vec<(String, bool)> = Vec::new();
    for entry in std::fs::read_dir(format!("{root}/fixtures/prometheus")).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".test.yml") {
            continue;
        }
        let cases =
            &YamlLoader::load_from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()[0];
        for case in cases["tests"]
            .as_vec()
            .unwrap()
            .iter()
            .flat_map(|t| t["alert_rule_test"].as_vec().into_iter().flatten())
        {
            let fired = !case["exp_alerts"].as_vec().unwrap().is_empty();
            checks.push((case["alertname"].as_str().unwrap().to_string(), fired));
        }
        promtool("test", "rules", &path);
    }
    for alert in &alerts {
        for fired in [true, false] {
            assert!(
                checks.contains(&(alert.to_string(), fired)),
                "fixtures/prometheus has no case where {alert} {}",
                if fired { "fires" } else { "stays quiet" }
            );
        }
    }

    // The same cases against the PrometheusRule's groups, as the Operator would load them.
    let operator =
        std::fs::read_to_string(format!("{root}/manifests/kubernetes/prometheusrule.yaml"))
            .unwrap();
    let spec = operator
        .split_once("\nspec:\n")
        .expect("prometheusrule.yaml has a spec")
        .1;
    let groups: String = spec
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    let dir = TempDir::new("operator-rules");
    dir.write("operator.rules.yml", groups);
    let pointed = cases_text.replace(
        "../../manifests/prometheus/x509-certificate-exporter.rules.yml",
        "operator.rules.yml",
    );
    assert_ne!(
        pointed, cases_text,
        "the cases no longer name the rules file"
    );
    promtool("test", "rules", &dir.write("alerts.test.yml", pointed));
}
