//! Kubernetes end to end against a real kube-apiserver and etcd (../shared/tools/
//! kube-apiserver.sh): tokens, client certificates, tls-server-name, in-cluster mode, RBAC,
//! pagination, filters, ConfigMaps, and Secrets created, renewed and deleted, through the
//! watch (within 2 s) and between refreshes; a token rotated during a watch, and a watch
//! that hangs without closing (through a relay that freezes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::cluster::cluster;
use common::*;

#[test]
fn admin_token_lists_secrets_cluster_wide() {
    let c = cluster();
    let ns = c.namespace("wide", serde_json::json!({}));
    c.tls_secret(&ns, "web-tls", "web.wide.example");
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_ADMIN"),
    ]);
    let m = exporter.metrics();
    let web = m.one("x509_cert_not_after", &[("secret_namespace", &ns)]);
    assert_eq!(web.labels["secret_name"], "web-tls");
    assert_eq!(web.labels["secret_key"], "tls.crt");
    assert_eq!(web.labels["subject_CN"], "web.wide.example");
    for team in ["team-a", "team-b"] {
        assert_eq!(
            m.one("x509_cert_not_after", &[("secret_namespace", team)])
                .labels["secret_name"],
            "demo-tls"
        );
    }
    assert_eq!(m.value("x509_read_errors"), 0.0);
    assert!(!m.body.contains("filepath"));
    promtool_accepts(&m.body);
}

#[test]
fn a_loopback_api_server_is_not_proxied_and_insecure_skip_tls_verify() {
    let c = cluster();
    // The API server listens on 127.0.0.1: as with kubectl, proxy variables do not apply to a
    // loopback address (and ALL_PROXY is never read); a proxy used here would break every
    // request.
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--listen-address=127.0.0.1:0",
        "--watch-kube-secrets",
        "--include-namespace=team-a",
    ])
    .args(["--kubeconfig", c.var("KUBECONFIG_ADMIN")]);
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env(var, "http://127.0.0.1:9");
    }
    let exporter = Exporter::spawn(cmd);
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 1);
    drop(exporter);

    let dir = TempDir::new("insecure");
    let kubeconfig = dir.write(
        "kubeconfig",
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {{cluster: x, user: x}}\nclusters:\n- name: x\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\nusers:\n- name: x\n  user:\n    token: {}\n",
            c.var("KUBE_URL"),
            c.var("ADMIN_TOKEN")
        ),
    );
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--include-namespace=team-b",
    ]);
    assert_eq!(
        exporter.metrics().one("x509_cert_not_after", &[]).labels["secret_namespace"],
        "team-b"
    );
    drop(exporter);

    // Without the flag, the server's certificate is checked: no CA, no connection.
    let strict = dir.write(
        "strict",
        std::fs::read_to_string(&kubeconfig)
            .unwrap()
            .replace("    insecure-skip-tls-verify: true\n", ""),
    );
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        strict.to_str().unwrap(),
        "--include-namespace=team-b",
    ]);
    exporter.scrape_until("a TLS failure", |m| m.value("x509_read_errors") == 1.0);
    assert_eq!(exporter.get("/readyz").status, 503);
    // The failure is the certificate check, not any other: its issuer is unknown.
    exporter.wait_log(
        [
            "WARN",
            "list secrets in namespace team-b",
            "invalid peer certificate",
            "UnknownIssuer",
        ],
        LOG_WAIT,
    );
}

#[test]
fn tls_server_name_replaces_the_url_host_in_the_certificate_check() {
    let c = cluster();
    let dir = TempDir::new("tls-server-name");
    // The serving certificate names 127.0.0.1 and kubernetes.default, not wrong.example.
    let kubeconfig = |file: &str, name: &str| {
        dir.write(
            file,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {{cluster: x, user: x}}\nclusters:\n- name: x\n  cluster:\n    server: {}\n    certificate-authority: {}\n    tls-server-name: {name}\nusers:\n- name: x\n  user:\n    token: {}\n",
                c.var("KUBE_URL"),
                c.var("KUBE_CA"),
                c.var("ADMIN_TOKEN")
            ),
        )
        .display()
        .to_string()
    };
    let good = kubeconfig("good", "kubernetes.default");
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        &good,
        "--include-namespace=team-a",
    ]);
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 1);
    assert_eq!(m.value("x509_read_errors"), 0.0);
    drop(exporter);

    // 127.0.0.1 is in the certificate, but the name checked is the configured one.
    let wrong = kubeconfig("wrong", "wrong.example");
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        &wrong,
        "--include-namespace=team-a",
    ]);
    exporter.scrape_until("a TLS failure", |m| m.value("x509_read_errors") == 1.0);
    assert_eq!(exporter.get("/readyz").status, 503);
    // The failure is the name check, not any other (the CA is right).
    exporter.wait_log(
        [
            "WARN",
            "list secrets in namespace team-a",
            "invalid peer certificate: certificate not valid for name \"wrong.example\"",
        ],
        LOG_WAIT,
    );
}

#[test]
fn a_namespace_scoped_token_works_with_include_namespace_only() {
    let c = cluster();
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_NS"),
        "--include-namespace",
        "team-a",
    ]);
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 1);
    assert_eq!(
        m.one("x509_cert_not_after", &[]).labels["secret_namespace"],
        "team-a"
    );
    assert_eq!(m.value("x509_read_errors"), 0.0);
    drop(exporter);

    // Without it the cluster-wide list is forbidden: counted, logged, not fatal, not ready.
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_NS"),
        "--refresh-interval=300ms",
    ]);
    let m = exporter.scrape_until("two failed passes", |m| {
        m.value("x509_read_errors_total") >= 2.0
    });
    assert_eq!(m.value("x509_read_errors"), 1.0);
    assert_eq!(exporter.get("/readyz").status, 503);
    exporter.wait_log(
        [
            "WARN",
            "list secrets in all namespaces: 403 Forbidden",
            "User \"ns-reader\" cannot list resource \"secrets\"",
        ],
        LOG_WAIT,
    );
}

#[test]
fn client_certificate_kubeconfig() {
    let c = cluster();
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_CERT"),
        "--include-namespace=team-b",
    ]);
    let m = exporter.metrics();
    assert_eq!(
        m.one("x509_cert_not_after", &[]).labels["secret_namespace"],
        "team-b"
    );
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn kubeconfig_from_the_environment_and_a_broken_one_exits_two() {
    let c = cluster();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--listen-address=127.0.0.1:0",
        "--watch-kube-secrets",
        "--include-namespace=team-a",
    ])
    .env(
        "KUBECONFIG",
        format!("{}:/nonexistent/other", c.var("KUBECONFIG_ADMIN")),
    );
    let exporter = Exporter::spawn(cmd);
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 1);
    drop(exporter);

    let out = run(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/kubeconfig"));
    let dir = TempDir::new("badkc");
    let bad = dir.write("kubeconfig", "current-context: x\n{{{");
    let out = run(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(bad.to_str().unwrap()));
}

#[test]
fn in_cluster_service_account_in_a_private_mount_namespace() {
    let c = cluster();
    // Laid out as the kubelet projects it: token -> ..data/token, ..data -> ..v1, and a new
    // token swapped in by renaming a new ..data link over the old one.
    let sa = TempDir::new("sa");
    sa.write("..v1/token", c.var("ADMIN_TOKEN"));
    std::os::unix::fs::symlink("..v1", sa.path("..data")).unwrap();
    std::os::unix::fs::symlink("..data/token", sa.path("token")).unwrap();
    std::fs::copy(c.var("KUBE_CA"), sa.path("ca.crt")).unwrap();
    let swap = |version: &str, token: &str| {
        sa.write(&format!("{version}/token"), token);
        std::os::unix::fs::symlink(version, sa.path("..data_tmp")).unwrap();
        std::fs::rename(sa.path("..data_tmp"), sa.path("..data")).unwrap();
    };
    let url = c.var("KUBE_URL");
    let port = url.rsplit(':').next().unwrap();
    let script = format!(
        "set -e; mount -t tmpfs tmpfs /run; mkdir -p /run/secrets/kubernetes.io/serviceaccount; \
         mount --bind {sa} /run/secrets/kubernetes.io/serviceaccount; \
         exec {BIN} --listen-address=127.0.0.1:0 --watch-kube-secrets --kube-watch=false --include-namespace=team-a --refresh-interval=200ms",
        sa = sa.0.display()
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script])
        .env_remove("KUBECONFIG")
        .env_remove("HOME")
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", port);
    let exporter = Exporter::spawn(cmd);
    let m = exporter.metrics();
    assert_eq!(
        m.one("x509_cert_not_after", &[]).labels["secret_namespace"],
        "team-a"
    );
    exporter.wait_log("in-cluster service account", LOG_WAIT);
    // The token file is read before each request: a replaced token is used at once (here a
    // token without rights, then a good one again). Listing at every refresh, as a watch
    // sends a request every few minutes only (tests/kube_watch.rs has the watch's case).
    swap("..v2", c.var("NOPERM_TOKEN"));
    exporter.metrics_until("403 after the token changed", |m| {
        m.value("x509_read_errors") == 1.0
    });
    exporter.wait_log(
        [
            "WARN",
            "list secrets in namespace team-a: 403 Forbidden",
            "User \"nobody\"",
        ],
        LOG_WAIT,
    );
    swap("..v3", c.var("ADMIN_TOKEN"));
    let m = exporter.metrics_until("recovery", |m| m.value("x509_read_errors") == 0.0);
    assert_eq!(
        m.count("x509_cert_not_after"),
        1,
        "last good data was kept throughout"
    );
}

/// Creates a, b; renews a; deletes b, in a namespace of its own; `within` is how soon each
/// change must show on /metrics after the API call returned.
fn create_renew_delete(extra: &[&str], within: Duration) {
    let c = cluster();
    let ns = c.namespace("life", serde_json::json!({}));
    let kubeconfig = c.var("KUBECONFIG_ADMIN");
    let mut args = vec![
        "--watch-kube-secrets",
        "--kubeconfig",
        kubeconfig,
        "--include-namespace",
        &ns,
    ];
    args.extend_from_slice(extra);
    let exporter = Exporter::start(&args);
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 0);
    c.tls_secret(&ns, "a", "a-v1");
    c.tls_secret(&ns, "b", "b");
    exporter.scrape_within(within, "created", |m| {
        m.label_values("subject_CN") == ["a-v1", "b"]
    });
    let now = now();
    let renewed = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "a", "namespace": ns},
        "data": {"tls.crt": b64(pem("a-v2", now, now + 1000).as_bytes()), "tls.key": b64(b"KEY")}});
    c.call(
        "PUT",
        &format!("/api/v1/namespaces/{ns}/secrets/a"),
        Some(renewed),
    );
    exporter.scrape_within(within, "renewed", |m| {
        m.label_values("subject_CN") == ["a-v2", "b"]
    });
    c.call(
        "DELETE",
        &format!("/api/v1/namespaces/{ns}/secrets/b"),
        None,
    );
    let m = exporter.scrape_within(within, "deleted", |m| {
        m.label_values("subject_CN") == ["a-v2"]
    });
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn secrets_created_renewed_and_deleted_show_within_two_seconds_through_the_watch() {
    create_renew_delete(&["--refresh-interval=5m"], Duration::from_secs(2));
}

#[test]
fn secrets_created_renewed_and_deleted_between_refreshes_without_watching() {
    let within = Duration::from_secs(20);
    create_renew_delete(&["--kube-watch=false", "--refresh-interval=200ms"], within);
}

/// Every Secret arrives through pages; that the list was indeed cut into pages, each asked
/// for with the token of the one before, is counted by the fake in tests/kube_faults.rs
/// and by a real API server of its own in tests/kube_flaky.rs (this one is shared by tests
/// running at the same time, so its request counter is not this test's).
#[test]
fn two_hundred_fifty_secrets_in_pages_of_one_hundred() {
    let c = cluster();
    let ns = c.namespace("many", serde_json::json!({}));
    for i in 0..250 {
        c.tls_secret(&ns, &format!("s{i:03}"), &format!("cn-{i:03}"));
    }
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_ADMIN"),
        "--include-namespace",
        &ns,
        "--kube-page-size=100",
    ]);
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 250);
    assert_eq!(m.label_values("subject_CN")[249], "cn-249");
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn other_types_and_keys_are_ignored_and_secret_type_selects_them() {
    let c = cluster();
    let ns = c.namespace("types", serde_json::json!({}));
    let now = now();
    let cert = |cn: &str| pem(cn, now, now + 1000);
    c.secret(
        &ns,
        "tls",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &cert("tls")),
            ("mtls.crt.old", &cert("old")),
            ("tls.key", "KEY"),
        ],
        serde_json::json!({}),
    );
    c.secret(
        &ns,
        "opaque",
        "Opaque",
        &[
            ("tls.crt", &cert("opaque-tls")),
            ("ca.pem", &cert("opaque-ca")),
            ("empty.pem", ""),
        ],
        serde_json::json!({}),
    );
    let base = [
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_ADMIN"),
        "--include-namespace",
        &ns,
    ];
    let exporter = Exporter::start(&base);
    let m = exporter.metrics();
    assert_eq!(
        m.label_values("subject_CN"),
        ["tls"],
        "default -s kubernetes.io/tls:tls.crt, whole-key match"
    );
    drop(exporter);
    let mut args = base.to_vec();
    args.extend(["-s", "Opaque:.*\\.pem", "-s", "kubernetes.io/tls:tls\\.crt"]);
    let exporter = Exporter::start(&args);
    let m = exporter.metrics();
    assert_eq!(m.label_values("subject_CN"), ["opaque-ca", "tls"]);
    assert_eq!(
        m.one("x509_cert_not_after", &[("subject_CN", "opaque-ca")])
            .labels["secret_key"],
        "ca.pem"
    );
    assert_eq!(
        m.value("x509_read_errors"),
        0.0,
        "an empty value is skipped silently"
    );
}

#[test]
fn label_and_namespace_filters() {
    let c = cluster();
    let ns_a = c.namespace("filt", serde_json::json!({"owner": "alpha"}));
    let ns_b = c.namespace("filt", serde_json::json!({"owner": "beta"}));
    for ns in [&ns_a, &ns_b] {
        let now = now();
        for (name, labels) in [
            ("web", serde_json::json!({"app": "web", "tier": "front"})),
            ("db", serde_json::json!({"app": "db"})),
            ("skip", serde_json::json!({"app": "web", "skip": "yes"})),
        ] {
            c.secret(
                ns,
                name,
                "kubernetes.io/tls",
                &[
                    ("tls.crt", &pem(&format!("{ns}/{name}"), now, now + 1000)),
                    ("tls.key", "KEY"),
                ],
                labels,
            );
        }
    }
    let admin = c.var("KUBECONFIG_ADMIN");
    let names = |m: &Metrics| -> Vec<String> {
        let mut v: Vec<_> = m
            .named("x509_cert_not_after")
            .filter(|s| {
                s.labels["secret_namespace"] == ns_a || s.labels["secret_namespace"] == ns_b
            })
            .map(|s| {
                format!(
                    "{}/{}",
                    s.labels["secret_namespace"], s.labels["secret_name"]
                )
            })
            .collect();
        v.sort();
        v
    };
    let cases: [(Vec<&str>, Vec<String>); 5] = [
        (
            vec![
                "--include-namespace",
                &ns_a,
                "--include-label",
                "app=web",
                "--exclude-label",
                "skip",
            ],
            vec![format!("{ns_a}/web")],
        ),
        (
            vec![
                "--include-namespace-label",
                "owner=beta",
                "--include-label",
                "app",
            ],
            vec![
                format!("{ns_b}/db"),
                format!("{ns_b}/skip"),
                format!("{ns_b}/web"),
            ],
        ),
        (
            vec![
                "--include-namespace",
                &ns_a,
                "--include-namespace",
                &ns_b,
                "--exclude-namespace",
                &ns_a,
                "--exclude-label",
                "app=web",
            ],
            vec![format!("{ns_b}/db")],
        ),
        (
            vec!["--exclude-namespace-label", "owner=alpha"],
            vec![
                format!("{ns_b}/db"),
                format!("{ns_b}/skip"),
                format!("{ns_b}/web"),
            ],
        ),
        (
            // A key alone excludes whatever its value.
            vec![
                "--include-namespace",
                &ns_a,
                "--include-namespace",
                &ns_b,
                "--exclude-namespace-label",
                "owner",
            ],
            vec![],
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["--watch-kube-secrets", "--kubeconfig", admin];
        args.extend(extra.iter().copied());
        let exporter = Exporter::start(&args);
        let m = exporter.metrics();
        assert_eq!(names(&m), expected, "{extra:?}");
        assert_eq!(m.value("x509_read_errors"), 0.0);
    }
}

#[test]
fn configmaps_and_exposed_secret_labels() {
    let c = cluster();
    let ns = c.namespace("cm", serde_json::json!({}));
    let now = now();
    c.call(
        "POST",
        &format!("/api/v1/namespaces/{ns}/configmaps"),
        Some(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bundle"},
            "data": {"ca.crt": pem("cm-text", now, now + 1000), "other": "x"}})),
    );
    let der = Cert::self_signed(&Spec::new("cm-binary", now, now + 1000)).der();
    c.call(
        "POST",
        &format!("/api/v1/namespaces/{ns}/configmaps"),
        Some(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "binary"},
            "binaryData": {"ca.crt": b64(&der)}})),
    );
    c.secret(
        &ns,
        "labelled",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &pem("labelled", now, now + 1000)),
            ("tls.key", "KEY"),
        ],
        serde_json::json!({"app.kubernetes.io/name": "shop"}),
    );
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_ADMIN"),
        "--include-namespace",
        &ns,
        "-c",
        "ca.crt",
        "--expose-secret-label",
        "app.kubernetes.io/name",
    ]);
    let m = exporter.metrics();
    let text = m.one("x509_cert_not_after", &[("configmap_name", "bundle")]);
    assert_eq!(
        (
            text.labels["configmap_namespace"].as_str(),
            text.labels["configmap_key"].as_str()
        ),
        (ns.as_str(), "ca.crt")
    );
    assert_eq!(text.labels["subject_CN"], "cm-text");
    assert_eq!(
        m.one("x509_cert_not_after", &[("configmap_name", "binary")])
            .labels["subject_CN"],
        "cm-binary"
    );
    let secret = m.one("x509_cert_not_after", &[("secret_name", "labelled")]);
    assert_eq!(secret.labels["secret_label_app_kubernetes_io_name"], "shop");
    assert_eq!(m.value("x509_read_errors"), 0.0);
    promtool_accepts(&m.body);
}

#[test]
fn the_kubernetes_manifests_pass_a_server_side_dry_run() {
    let c = cluster();
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/kubernetes");
    for (variant, path) in [
        ("cluster-wide", manifests.to_string()),
        ("namespaced", format!("{manifests}/namespaced")),
    ] {
        // The namespaces must exist for a dry run of the objects inside them.
        let kinds = c.dry_run(&kustomize(&path), &["monitoring", "apps"]);
        let expected: &[&str] = match variant {
            "cluster-wide" => &[
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Service",
                "Deployment",
                "DaemonSet",
            ],
            _ => &[
                "Namespace",
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "Service",
                "Deployment",
            ],
        };
        for kind in expected {
            assert!(
                kinds.iter().any(|k| k == kind),
                "{variant}: no {kind} in {kinds:?}"
            );
        }
    }
}

/// A kubeconfig for `server` with the test CA and a token file `token` in `dir`, holding
/// `token`.
fn token_file_kubeconfig(dir: &TempDir, server: &str, token: &str) -> String {
    let c = cluster();
    dir.write("token", token);
    let kubeconfig = dir.write(
        "kubeconfig",
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {{cluster: x, user: x}}\nclusters:\n- name: x\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: x\n  user:\n    tokenFile: {}\n",
            c.var("KUBE_CA"),
            dir.path("token").display()
        ),
    );
    kubeconfig.to_str().unwrap().to_string()
}

/// Replaces the token file atomically, as kubelet does.
fn rotate(dir: &TempDir, token: &str) {
    let tmp = dir.write("token.tmp", token);
    std::fs::rename(tmp, dir.path("token")).unwrap();
}

#[test]
fn a_token_rotated_during_a_watch_goes_with_the_next_request() {
    let c = cluster();
    let dir = TempDir::new("watch-token");
    let kubeconfig = token_file_kubeconfig(&dir, c.var("KUBE_URL"), c.var("NS_TOKEN"));
    // --max-cache-duration bounds each watch to a few seconds, so that renewals come soon.
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        &kubeconfig,
        "--include-namespace=team-a",
        "--refresh-interval=5m",
        "--max-cache-duration=4s",
    ]);
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 1);
    // A token without rights: the next request is refused, the data stays.
    rotate(&dir, c.var("NOPERM_TOKEN"));
    let m = exporter.scrape_within(Duration::from_secs(20), "refused", |m| {
        m.value("x509_read_errors") >= 1.0
    });
    assert_eq!(m.count("x509_cert_not_after"), 1, "the last good data");
    exporter.wait_log(["WARN", "secrets in namespace team-a", "403"], LOG_WAIT);
    // The good token back: recovered without a restart.
    rotate(&dir, c.var("NS_TOKEN"));
    let m = exporter.scrape_within(Duration::from_secs(30), "recovered", |m| {
        m.value("x509_read_errors") == 0.0
    });
    assert_eq!(m.count("x509_cert_not_after"), 1);
}

/// A TCP relay to the API server that can be frozen: while frozen it keeps every
/// connection open and accepts new ones, but passes no byte either way (a proxy or a
/// network that dropped the watch without closing it).
struct Relay {
    addr: std::net::SocketAddr,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn start(to: &str) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let to = to.trim_start_matches("https://").to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&frozen);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(&to) else {
                    continue;
                };
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flag = std::sync::Arc::clone(&flag);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            while flag.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            if into.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = into.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Self { addr, frozen }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_watch_that_hangs_without_closing_is_counted_and_replaced() {
    let c = cluster();
    let relay = Relay::start(c.var("KUBE_URL"));
    let dir = TempDir::new("watch-hang");
    let server = format!("https://{}", relay.addr);
    let kubeconfig = token_file_kubeconfig(&dir, &server, c.var("ADMIN_TOKEN"));
    let ns = c.namespace("hang", serde_json::json!({}));
    c.tls_secret(&ns, "a", "a");
    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        &kubeconfig,
        "--include-namespace",
        &ns,
        "--refresh-interval=5m",
        "--max-cache-duration=4s",
    ]);
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 1);
    // Frozen: the open watch goes silent, and so does every new request.
    relay.freeze(true);
    let m = exporter.scrape_within(Duration::from_secs(30), "the hang counted", |m| {
        m.value("x509_read_errors_total") >= 1.0
    });
    assert_eq!(m.count("x509_cert_not_after"), 1, "the last good data");
    exporter.wait_log(
        ["WARN", &format!("secrets in namespace {ns}"), "timed out"],
        LOG_WAIT,
    );
    // Thawed: a change made meanwhile shows once the client's timeouts let go.
    c.tls_secret(&ns, "b", "b");
    relay.freeze(false);
    let m = exporter.scrape_within(Duration::from_secs(120), "recovered", |m| {
        m.count("x509_cert_not_after") == 2 && m.value("x509_read_errors") == 0.0
    });
    assert!(m.value("x509_read_errors_total") >= 1.0);
}

#[test]
fn a_tls_secret_with_its_chain_exports_its_leaf_alone_with_leaf_only() {
    let c = cluster();
    let ns = c.namespace("chain", serde_json::json!({}));
    let now = now();
    let root = Cert::self_signed(&Spec::new("chain-root", now - 10, now + 3000).ca());
    let inter = Cert::signed(&Spec::new("chain-inter", now - 10, now + 2000).ca(), &root);
    let leaf = Cert::signed(&Spec::new("chain-leaf", now - 10, now + 1000), &inter);
    let chain = [leaf.pem(), inter.pem()].concat();
    c.secret(
        &ns,
        "web-tls",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &chain),
            ("ca.crt", &root.pem()),
            ("tls.key", "KEY"),
        ],
        serde_json::json!({}),
    );
    let start = |extra: &str| {
        Exporter::start(&[
            "--watch-kube-secrets",
            "--kubeconfig",
            c.var("KUBECONFIG_ADMIN"),
            &format!("--include-namespace={ns}"),
            "--secret-type=kubernetes.io/tls:tls.crt|ca.crt",
            extra,
        ])
        .metrics()
    };
    let m = start("--expose-cert-info");
    let position = |key: &str, cn: &str| {
        m.one("x509_cert_info", &[("secret_key", key), ("subject_CN", cn)])
            .labels["chain_position"]
            .clone()
    };
    assert_eq!(position("tls.crt", "chain-leaf"), "leaf");
    assert_eq!(position("tls.crt", "chain-inter"), "intermediate");
    assert_eq!(position("ca.crt", "chain-root"), "root");

    let m = start("--leaf-only");
    let mut kept: Vec<_> = m
        .named("x509_cert_not_after")
        .map(|s| {
            (
                s.labels["secret_key"].clone(),
                s.labels["subject_CN"].clone(),
            )
        })
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            ("ca.crt".to_string(), "chain-root".to_string()),
            ("tls.crt".to_string(), "chain-leaf".to_string())
        ],
        "the intermediate behind the leaf goes; ca.crt, a CA alone, stays"
    );
}
