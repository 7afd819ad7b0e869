//! `-k` end to end: CA and client certificates, embedded or by path, with per-entry errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn kubeconfig(cluster: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: my-cluster\n  cluster:\n    server: https://127.0.0.1:6443\n{cluster}\nusers:\n- name: my-user\n  user:\n    client-key: ./does-not-exist.key\n{user}\ncontexts: []\n"
    )
}

struct Setup {
    dir: TempDir,
    ca: String,
    client: String,
}

fn setup(name: &str) -> Setup {
    let dir = TempDir::new(name);
    let now = now();
    let ca = pem("cluster-ca", now - 10, now + 1000);
    let client = pem("client", now - 10, now + 2000);
    dir.write("certs/ca.crt", &ca);
    dir.write("certs/client.crt", &client);
    Setup { dir, ca, client }
}

fn check_both(m: &Metrics, path: &str) {
    assert_eq!(m.count("x509_cert_not_after"), 2, "{}", m.body);
    let c = m.one("x509_cert_not_after", &[("embedded_kind", "cluster")]);
    assert_eq!(c.labels["embedded_key"], "my-cluster");
    assert_eq!(c.labels["subject_CN"], "cluster-ca");
    assert_eq!(c.labels["filepath"], path);
    let u = m.one("x509_cert_not_after", &[("embedded_kind", "user")]);
    assert_eq!(u.labels["embedded_key"], "my-user");
    assert_eq!(u.labels["subject_CN"], "client");
    assert_eq!(u.labels["filename"], "kubeconfig");
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn embedded_relative_absolute_and_mixed() {
    let s = setup("kc");
    let abs_ca = s.dir.str("certs/ca.crt");
    let abs_client = s.dir.str("certs/client.crt");
    let cases = [
        (
            "embedded",
            format!("    certificate-authority-data: {}", b64(s.ca.as_bytes())),
            format!("    client-certificate-data: {}", b64(s.client.as_bytes())),
        ),
        (
            "relative",
            "    certificate-authority: ../certs/ca.crt".to_string(),
            "    client-certificate: ../certs/client.crt".to_string(),
        ),
        (
            "absolute",
            format!("    certificate-authority: {abs_ca}"),
            format!("    client-certificate: {abs_client}"),
        ),
        (
            "mixed",
            format!("    certificate-authority-data: {}", b64(s.ca.as_bytes())),
            "    client-certificate: ../certs/client.crt".to_string(),
        ),
    ];
    for (name, cluster, user) in cases {
        let path = s
            .dir
            .write(&format!("{name}/kubeconfig"), kubeconfig(&cluster, &user));
        let exporter = Exporter::start(&["-k", path.to_str().unwrap()]);
        check_both(&exporter.metrics(), path.to_str().unwrap());
    }
}

#[test]
fn several_certificates_in_one_entry_are_numbered() {
    let s = setup("kc-multi");
    let now = now();
    let second = pem("second-ca", now, now + 10);
    let cluster = format!(
        "    certificate-authority-data: {}",
        b64(format!("{}{second}", s.ca).as_bytes())
    );
    let user = format!("    client-certificate-data: {}", b64(s.client.as_bytes()));
    let path = s.dir.write("kubeconfig", kubeconfig(&cluster, &user));
    let exporter = Exporter::start(&["-k", path.to_str().unwrap()]);
    let m = exporter.metrics();
    assert_eq!(
        m.one("x509_cert_not_after", &[("embedded_key", "my-cluster(0)")])
            .labels["subject_CN"],
        "cluster-ca"
    );
    assert_eq!(
        m.one("x509_cert_not_after", &[("embedded_key", "my-cluster(1)")])
            .labels["subject_CN"],
        "second-ca"
    );
    assert_eq!(
        m.one("x509_cert_not_after", &[("embedded_key", "my-user")])
            .labels["subject_CN"],
        "client"
    );
    assert_eq!(m.value("x509_read_errors"), 0.0);
}

#[test]
fn one_bad_entry_hides_none_of_the_others() {
    let s = setup("kc-bad");
    let user = format!("    client-certificate-data: {}", b64(s.client.as_bytes()));
    // Bad base64 in the cluster entry.
    let path = s.dir.write(
        "bad64/kubeconfig",
        kubeconfig("    certificate-authority-data: '!!!not base64'", &user),
    );
    let exporter = Exporter::start(&[
        "-k",
        path.to_str().unwrap(),
        "--expose-per-cert-error-metrics",
    ]);
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 1);
    assert_eq!(
        m.one("x509_cert_not_after", &[]).labels["embedded_kind"],
        "user"
    );
    assert_eq!(m.value("x509_read_errors"), 1.0);
    assert_eq!(
        m.one("x509_cert_error", &[("filename", "kubeconfig")])
            .value,
        1.0
    );
    exporter.wait_log(
        "cluster \"my-cluster\": certificate-authority-data: invalid base64",
        LOG_WAIT,
    );
    drop(exporter);

    // A referenced file that is missing.
    let path = s.dir.write(
        "missing/kubeconfig",
        kubeconfig("    certificate-authority: ./nope.crt", &user),
    );
    let exporter = Exporter::start(&["-k", path.to_str().unwrap()]);
    let m = exporter.metrics();
    assert_eq!(m.count("x509_cert_not_after"), 1);
    assert_eq!(m.value("x509_read_errors"), 1.0);
    exporter.wait_log("nope.crt: no such file or directory", LOG_WAIT);
    drop(exporter);

    // Not YAML at all, and YAML that is not a kubeconfig: one error each.
    let not_yaml = s.dir.write("notyaml/kubeconfig", "bad: {\n");
    let not_kc = s.dir.write("notkc/kubeconfig", "- just\n- a list\n");
    let exporter = Exporter::start(&[
        "-k",
        not_yaml.to_str().unwrap(),
        "-k",
        not_kc.to_str().unwrap(),
    ]);
    let m = exporter.metrics();
    assert_eq!(m.value("x509_read_errors"), 2.0);
    assert_eq!(m.count("x509_cert_not_after"), 0);
}

#[test]
fn a_referenced_file_that_changes_is_read_again() {
    let s = setup("kc-change");
    let path = s.dir.write(
        "kubeconfig",
        kubeconfig(
            "    certificate-authority: certs/ca.crt",
            "    client-certificate: certs/client.crt",
        ),
    );
    let exporter = Exporter::start(&["-k", path.to_str().unwrap(), "--refresh-interval=100ms"]);
    assert_eq!(exporter.metrics().count("x509_cert_not_after"), 2);
    let now = now();
    let renewed = s
        .dir
        .write("certs/ca.crt.new", pem("renewed-ca", now, now + 5000));
    std::fs::rename(renewed, s.dir.path("certs/ca.crt")).unwrap();
    exporter.metrics_until("the renewed CA", |m| {
        !m.find("x509_cert_not_after", &[("subject_CN", "renewed-ca")])
            .is_empty()
    });
}

#[test]
fn the_kubeconfig_is_one_chain_for_cert_info_and_leaf_only() {
    let dir = TempDir::new("kc-chain");
    let now = now();
    let ca = Cert::self_signed(&Spec::new("cluster-ca", now - 10, now + 1000).ca());
    let client = Cert::signed(&Spec::new("client", now - 10, now + 2000), &ca);
    let path = dir.write(
        "kubeconfig",
        kubeconfig(
            &format!(
                "    certificate-authority-data: {}",
                b64(ca.pem().as_bytes())
            ),
            &format!(
                "    client-certificate-data: {}",
                b64(client.pem().as_bytes())
            ),
        ),
    );
    let path = path.to_str().unwrap();
    let m = Exporter::start(&["-k", path, "--expose-cert-info"]).metrics();
    check_both(&m, path);
    let position = |kind: &str| {
        m.one("x509_cert_info", &[("embedded_kind", kind)]).labels["chain_position"].clone()
    };
    assert_eq!(
        position("cluster"),
        "root",
        "the CA that issued the user's certificate"
    );
    assert_eq!(position("user"), "leaf");

    let m = Exporter::start(&["-k", path, "--leaf-only"]).metrics();
    let kept: Vec<_> = m
        .named("x509_cert_not_after")
        .map(|s| s.labels["embedded_kind"].clone())
        .collect();
    assert_eq!(
        kept,
        ["user"],
        "the cluster CA is the chain behind the user's leaf"
    );
}
