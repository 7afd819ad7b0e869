//! The deployment files under manifests/: they parse, the alert rules pass promtool and match
//! their PrometheusRule twin, the lifetime-relative and weak-crypto rules pass their promtool
//! cases, the dashboard's queries parse, each selects its cluster variable, and its
//! weak-certificate table lists what the alerts fire on, the systemd unit passes
//! systemd-analyze, every kustomization renders, the pods it renders are locked down, and
//! every exporter command line in them is one the binary accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::prometheus::promtool;
use common::*;
use yaml_rust2::{Yaml, YamlLoader};

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests");

fn files(ext: &[&str]) -> Vec<PathBuf> {
    fn walk(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, ext, out);
            } else if ext
                .iter()
                .any(|e| path.extension().is_some_and(|x| x == *e))
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new(MANIFESTS), ext, &mut out);
    out.sort();
    out
}

fn yaml(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn one(rel: &str) -> Yaml {
    yaml(&Path::new(MANIFESTS).join(rel)).remove(0)
}

#[test]
fn every_yaml_file_parses_and_the_dashboard_is_json() {
    let all = files(&["yaml", "yml"]);
    assert!(all.len() >= 15, "{all:?}");
    for path in &all {
        let docs = yaml(path);
        assert!(
            !docs.is_empty() && docs.iter().all(|d| d.as_hash().is_some()),
            "{}",
            path.display()
        );
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{MANIFESTS}/grafana/x509-certificate-exporter.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(dashboard["uid"], "x509-certificate-exporter");
    assert!(dashboard["panels"].as_array().unwrap().len() >= 8);
}

#[test]
fn alert_rules_pass_promtool_and_match_the_prometheus_rule() {
    let rules = format!("{MANIFESTS}/prometheus/x509-certificate-exporter.rules.yml");
    promtool("check", "rules", Path::new(&rules));
    let plain = one("prometheus/x509-certificate-exporter.rules.yml");
    let operator = one("kubernetes/prometheusrule.yaml");
    assert_eq!(operator["kind"].as_str(), Some("PrometheusRule"));
    assert_eq!(
        plain["groups"], operator["spec"]["groups"],
        "the two rule files drifted apart"
    );
    let names: Vec<&str> = plain["groups"][0]["rules"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|r| r["alert"].as_str())
        .collect();
    for wanted in [
        "X509ExporterReadErrors",
        "X509CertificateError",
        "X509CertificateRenewal",
        "X509CertificateExpiration",
        "X509CertificateExpired",
        "X509CertificateNotYetValid",
        "X509CertificateWeakKey",
        "X509CertificateWeakSignature",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
}

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/prometheus");

/// The first sample of a promtool `values` expansion such as `-55770x120`.
fn first_value(values: &str) -> i64 {
    let first = values.split_whitespace().next().unwrap();
    first.split('x').next().unwrap().parse().unwrap()
}

/// A promtool duration such as `45m` or `2h`, in minutes.
fn minutes(duration: &str) -> i64 {
    let (n, unit) = duration.split_at(duration.len() - 1);
    let n: i64 = n.parse().unwrap();
    match unit {
        "m" => n,
        "h" => n * 60,
        _ => panic!("eval_time {duration}: only m and h are read here"),
    }
}

/// For certificates of 24 hours, 47 days and 398 days, the warning and the critical alert are
/// each quiet one evaluation before their threshold (plus `for:`) and fire one after, under
/// promtool, on the shipped rules (the PrometheusRule holds the same groups, checked above).
#[test]
fn renewal_and_expiration_follow_the_lifetime_under_promtool() {
    let path = Path::new(CASES).join("lifetime.test.yml");
    let cases = yaml(&path).remove(0);
    let mut bounded: Vec<(i64, String)> = Vec::new();
    for group in cases["tests"].as_vec().unwrap() {
        let series = group["input_series"].as_vec().unwrap();
        let value = |metric: &str| -> Vec<i64> {
            series
                .iter()
                .filter(|s| s["series"].as_str().unwrap().starts_with(metric))
                .map(|s| first_value(s["values"].as_str().unwrap()))
                .collect()
        };
        let (before, after) = (
            value("x509_cert_not_before{"),
            value("x509_cert_not_after{"),
        );
        if before.len() != 1 || after.len() != 1 {
            continue; // the edge cases: several certificates, quiet all along
        }
        let lifetime = after[0] - before[0];
        let checks: Vec<(String, i64, bool)> = group["alert_rule_test"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["alertname"].as_str().unwrap().to_string(),
                    minutes(c["eval_time"].as_str().unwrap()),
                    !c["exp_alerts"].as_vec().unwrap().is_empty(),
                )
            })
            .collect();
        for (alert, at, fired) in &checks {
            if *fired && checks.contains(&(alert.clone(), at - 1, false)) {
                bounded.push((lifetime, alert.clone()));
            }
        }
    }
    for lifetime in [86_400, 47 * 86_400, 398 * 86_400] {
        for alert in ["X509CertificateRenewal", "X509CertificateExpiration"] {
            assert!(
                bounded.contains(&(lifetime, alert.to_string())),
                "{}: no case where {alert} is quiet one minute before firing on a certificate of {lifetime} s",
                path.display()
            );
        }
    }
    promtool("test", "rules", &path);
}

/// Reads the dashboard.
fn dashboard() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{MANIFESTS}/grafana/x509-certificate-exporter.json"
        ))
        .unwrap(),
    )
    .unwrap()
}

/// Each panel's queries, with the dashboard's variables set to match everything.
fn panel_queries(panel: &serde_json::Value) -> Vec<String> {
    panel["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|t| {
            t["expr"]
                .as_str()
                .unwrap()
                .replace("${cluster_label}", "cluster")
                .replace("$cluster", ".*")
                .replace("$job", ".*")
                .replace("$instance", ".*")
        })
        .collect()
}

/// The weak-crypto alerts fire on weak keys and signatures and on nothing else under
/// promtool, and the dashboard's table of weak certificates lists exactly the certificates
/// they fire on, from the same series.
#[test]
fn weak_crypto_alerts_and_the_dashboard_table_agree_under_promtool() {
    let path = Path::new(CASES).join("weak-crypto.test.yml");
    promtool("test", "rules", &path);
    let cases = yaml(&path).remove(0);
    let mut series = Vec::new();
    let mut flagged = std::collections::BTreeSet::new();
    let mut checked = std::collections::BTreeSet::new();
    for group in cases["tests"].as_vec().unwrap() {
        for s in group["input_series"].as_vec().unwrap() {
            series.push((
                s["series"].as_str().unwrap().to_string(),
                s["values"].as_str().unwrap().to_string(),
            ));
        }
        for check in group["alert_rule_test"].as_vec().unwrap() {
            let alerts = check["exp_alerts"].as_vec().unwrap();
            checked.insert((check["alertname"].as_str().unwrap(), !alerts.is_empty()));
            for alert in alerts {
                flagged.insert(alert["exp_labels"]["subject_CN"].as_str().unwrap());
            }
        }
    }
    for alert in ["X509CertificateWeakKey", "X509CertificateWeakSignature"] {
        assert!(checked.contains(&(alert, true)), "{alert} never fires");
        assert!(checked.contains(&(alert, false)), "{alert} is never quiet");
    }
    // Some of the series are of strong certificates, or the comparison proves nothing.
    assert!(flagged.len() >= 5 && series.len() >= flagged.len() + 5);

    let board = dashboard();
    let table = board["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Weak keys and signatures")
        .expect("the dashboard has a table of weak certificates");
    let query = panel_queries(table).remove(0);
    let mut test = String::from(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (s, values) in &series {
        test += &format!("      - series: '{s}'\n        values: '{values}'\n");
    }
    test += &format!(
        "    promql_expr_test:\n      - expr: 'count by (subject_CN) ({query})'\n        eval_time: 0m\n        exp_samples:\n"
    );
    for cn in &flagged {
        test += &format!("          - labels: '{{subject_CN=\"{cn}\"}}'\n            value: 1\n");
    }
    let dir = TempDir::new("weak-table");
    promtool("test", "rules", &dir.write("table.test.yml", test));
}

/// Every query of the dashboard parses (promtool checks it as a recording rule), panels do
/// not overlap, and those reading x509_cert_info say that it needs --expose-cert-info.
#[test]
fn the_dashboard_queries_parse_and_its_panels_do_not_overlap() {
    let board = dashboard();
    let panels = board["panels"].as_array().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut ids = std::collections::BTreeSet::new();
    let mut cells = std::collections::BTreeSet::new();
    for panel in panels {
        let id = panel["id"].as_i64().unwrap();
        assert!(ids.insert(id), "panel id {id} twice");
        let g = &panel["gridPos"];
        let at = |k: &str| g[k].as_i64().unwrap();
        assert!(at("x") + at("w") <= 24, "panel {id} is wider than the grid");
        for x in at("x")..at("x") + at("w") {
            for y in at("y")..at("y") + at("h") {
                assert!(
                    cells.insert((x, y)),
                    "panel {id} overlaps another at {x},{y}"
                );
            }
        }
        for (n, query) in panel_queries(panel).iter().enumerate() {
            if query.contains("x509_cert_info") {
                assert!(
                    panel["description"]
                        .as_str()
                        .unwrap()
                        .contains("--expose-cert-info"),
                    "panel {id} reads x509_cert_info without saying it needs --expose-cert-info"
                );
            }
            rules += &format!(
                "      - record: dashboard:panel_{id}_{n}\n        expr: {}\n",
                serde_json::Value::String(query.clone())
            );
        }
    }
    for title in ["Key algorithms", "Chain position"] {
        assert!(
            panels.iter().any(|p| p["title"] == title),
            "no {title} panel"
        );
    }
    let dir = TempDir::new("dashboard-rules");
    promtool("check", "rules", &dir.write("dashboard.rules.yml", rules));
}

/// The dashboard separates clusters: a `cluster` variable (All by default) on the label that
/// `cluster_label` names, which filters the job and instance lists and every selector of
/// every panel; under promtool, one cluster's certificates are counted alone, and All counts
/// series that have no such label too.
#[test]
fn the_dashboard_has_a_cluster_variable_that_every_query_uses() {
    let board = dashboard();
    let vars = board["templating"]["list"].as_array().unwrap();
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).unwrap();
    assert_eq!(var("cluster_label")["type"], "constant");
    assert_eq!(var("cluster_label")["query"], "cluster");
    let cluster = var("cluster");
    assert_eq!(
        cluster["query"]["query"],
        "label_values(x509_exporter_build_info, ${cluster_label})"
    );
    assert_eq!(cluster["includeAll"], true);
    assert_eq!(cluster["allValue"], ".*");
    assert_eq!(cluster["current"]["value"][0], "$__all");
    let filter = "${cluster_label}=~\"$cluster\"";
    for name in ["job", "instance"] {
        let query = var(name)["query"]["query"].as_str().unwrap();
        assert!(query.contains(filter), "{name}: {query}");
    }
    let mut watched = None;
    for panel in board["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            assert_eq!(
                expr.matches(filter).count(),
                expr.matches("job=~\"$job\"").count(),
                "a selector without the cluster: {expr}"
            );
            if panel["title"] == "Certificates watched" {
                watched = Some(expr.replace("${cluster_label}", "cluster"));
            }
        }
    }
    let watched = watched.expect("a Certificates watched panel");
    let mut test = String::from(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (n, cluster) in ["east", "east", "west", ""].iter().enumerate() {
        let label = match *cluster {
            "" => String::new(),
            c => format!(", cluster=\"{c}\""),
        };
        test += &format!(
            "      - series: 'x509_cert_not_after{{subject_CN=\"c{n}\", job=\"x509\", instance=\"a:9793\"{label}}}'\n        values: '1x5'\n"
        );
    }
    test += "    promql_expr_test:\n";
    for (cluster, count) in [("east", 2), ("(east|west)", 3), (".*", 4)] {
        let expr = watched
            .replace("$cluster", cluster)
            .replace("$job", ".*")
            .replace("$instance", ".*");
        test += &format!(
            "      - expr: {}\n        eval_time: 0m\n        exp_samples:\n          - labels: '{{}}'\n            value: {count}\n",
            serde_json::Value::String(expr)
        );
    }
    let dir = TempDir::new("dashboard-clusters");
    promtool("test", "rules", &dir.write("clusters.test.yml", test));
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    // Required, as promtool is: a machine without it must not pass by skipping the check.
    let version = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        version.is_ok_and(|out| out.status.success()),
        "systemd-analyze (Debian package systemd; scripts/test-deps.sh installs it) is needed by the tests"
    );
    let dir = TempDir::new("unit");
    let unit = std::fs::read_to_string(format!(
        "{MANIFESTS}/systemd/x509-certificate-exporter.service"
    ))
    .unwrap();
    for needed in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ReadOnlyPaths=",
        "MemoryMax=",
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
    // verify wants ExecStart to exist: point it at the binary under test. The socket unit
    // and the socket-activation drop-in are verified with it.
    let path = dir.write(
        "x509-certificate-exporter.service",
        unit.replace("/usr/local/bin/x509-certificate-exporter", BIN),
    );
    let socket = dir.write(
        "x509-certificate-exporter.socket",
        std::fs::read_to_string(format!(
            "{MANIFESTS}/systemd/x509-certificate-exporter.socket"
        ))
        .unwrap(),
    );
    let drop_in = std::fs::read_to_string(format!(
        "{MANIFESTS}/systemd/x509-certificate-exporter.service.d/socket-activation.conf"
    ))
    .unwrap();
    dir.write(
        "x509-certificate-exporter.service.d/socket-activation.conf",
        drop_in.replace("/usr/local/bin/x509-certificate-exporter", BIN),
    );
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .arg(&socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    accepts(
        exec.split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect(),
        &[],
    );
    let activated = drop_in
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .find(|l| !l.is_empty())
        .unwrap();
    let args: Vec<&str> = activated.split_whitespace().skip(1).collect();
    assert!(args.contains(&"--web.systemd-socket"));
    let (exporter, first) = socket_activated(&args);
    assert!(first.contains("UP"), "{first}");
    assert_eq!(exporter.get("/healthz").status, 200);
}

/// The Deployments and DaemonSets of every kustomization under manifests/ (each directory
/// holding a kustomization.yaml, rendered by `kubectl kustomize`, which must succeed), as
/// `(directory: kind name, rendered object)`.
fn rendered_workloads() -> Vec<(String, Yaml)> {
    let dirs: Vec<PathBuf> = files(&["yaml"])
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "kustomization.yaml"))
        .map(|p| p.parent().unwrap().to_path_buf())
        .collect();
    assert!(dirs.len() >= 8, "{dirs:?}");
    let mut out = Vec::new();
    for dir in dirs {
        let rel = dir.strip_prefix(MANIFESTS).unwrap().display().to_string();
        let docs = YamlLoader::load_from_str(&kustomize(&dir.display().to_string()))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            if kind == "Deployment" || kind == "DaemonSet" {
                let name = doc["metadata"]["name"].as_str().unwrap().to_string();
                out.push((format!("{rel}: {kind} {name}"), doc));
            }
        }
    }
    out
}

/// Pods, as every kustomization renders them: non-root where possible (Deployments; the
/// nodes' DaemonSet reads host files), read-only root, no capabilities, RuntimeDefault
/// seccomp, probes on /healthz and /readyz, memory limits.
#[test]
fn pods_are_locked_down_and_probed() {
    let workloads = rendered_workloads();
    assert!(workloads.len() >= 8, "{}", workloads.len());
    for (rel, doc) in &workloads {
        let non_root = doc["kind"].as_str() == Some("Deployment");
        let pod = &doc["spec"]["template"]["spec"];
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault"),
            "{rel}"
        );
        if non_root {
            assert_eq!(
                pod["securityContext"]["runAsNonRoot"].as_bool(),
                Some(true),
                "{rel}"
            );
            assert_eq!(
                pod["securityContext"]["runAsUser"].as_i64(),
                Some(65532),
                "{rel}"
            );
        }
        let c = &pod["containers"][0];
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
            Some(true),
            "{rel}"
        );
        assert_eq!(
            c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{rel}"
        );
        assert_eq!(
            c["securityContext"]["capabilities"]["drop"][0].as_str(),
            Some("ALL"),
            "{rel}"
        );
        assert_eq!(
            c["livenessProbe"]["httpGet"]["path"].as_str(),
            Some("/healthz"),
            "{rel}"
        );
        assert_eq!(
            c["readinessProbe"]["httpGet"]["path"].as_str(),
            Some("/readyz"),
            "{rel}"
        );
        assert!(
            c["resources"]["limits"]["memory"].as_str().is_some(),
            "{rel}"
        );
        for mount in c["volumeMounts"]
            .as_vec()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            assert_eq!(
                mount["readOnly"].as_bool(),
                Some(true),
                "{rel}: host paths are mounted read-only"
            );
        }
    }
}

/// Every exporter command line in the manifests is one the binary accepts.
#[test]
fn every_command_line_in_the_manifests_is_accepted() {
    let args = |doc: &Yaml, key: &str| -> Vec<String> {
        doc[key]
            .as_vec()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    for rel in [
        "compose/single-directory/compose.yaml",
        "compose/multiple-directories/compose.yaml",
        "compose/prometheus/compose.yaml",
    ] {
        let doc = one(rel);
        let service = &doc["services"]["x509-exporter"];
        assert!(
            service["image"]
                .as_str()
                .unwrap()
                .contains("x509-certificate-exporter"),
            "{rel}"
        );
        assert_eq!(service["ports"][0].as_str(), Some("9793:9793"), "{rel}");
        let health: Vec<&str> = service["healthcheck"]["test"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            health,
            [
                "CMD",
                "/usr/local/bin/x509-certificate-exporter",
                "healthcheck"
            ],
            "{rel}"
        );
        // Every mounted directory is watched, read-only.
        let command = args(service, "command");
        for volume in service["volumes"].as_vec().unwrap() {
            let volume = volume.as_str().unwrap();
            let target = volume.split(':').nth(1).unwrap();
            assert!(volume.ends_with(":ro"), "{rel}: {volume}");
            assert!(
                command.contains(&format!("--watch-dir={target}")),
                "{rel}: {target} not watched"
            );
        }
        accepts(command, &[]);
    }
    let cluster = TempDir::new("kc");
    let kubeconfig = cluster.write(
        "config",
        "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {cluster: x, user: x}\nclusters:\n- name: x\n  cluster: {server: 'http://127.0.0.1:9'}\nusers:\n- name: x\n  user: {token: t}\n",
    );
    // Every pod of every kustomization, as rendered; each distinct command line once.
    let mut seen = std::collections::BTreeSet::new();
    for (_, doc) in rendered_workloads() {
        let c = &doc["spec"]["template"]["spec"]["containers"][0];
        let command = args(c, "args");
        if seen.insert(command.clone()) {
            accepts(command, &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
        }
    }
    assert!(seen.len() >= 5, "{seen:?}");
}

/// Starts the binary with these arguments (on 127.0.0.1:0) and checks that it serves.
fn accepts(args: Vec<String>, env: &[(&str, &str)]) {
    let mut cmd = Command::new(BIN);
    cmd.arg("--listen-address=127.0.0.1:0")
        .args(args.iter().filter(|a| !a.starts_with("--listen-address")));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let exporter = Exporter::spawn(cmd);
    assert_eq!(exporter.get("/healthz").status, 200, "{args:?}");
}
