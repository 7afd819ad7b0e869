//! Sharding by namespace against a real kube-apiserver, with the command lines of the shipped
//! example (manifests/kubernetes/sharded): the shards together report exactly what one
//! exporter over every namespace reports for the namespaces they select, no series comes
//! from two shards, a namespace no shard selects is in none, and a namespace relabelled from
//! one shard to another moves between the running exporters. Also the example's structure:
//! disjoint selectors, one shard for the caBundles, each pod labelled with its shard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::{cluster, Cluster};
use common::*;
use yaml_rust2::{Yaml, YamlLoader};

const SHARDED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/kubernetes/sharded");
const KUBERNETES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/kubernetes");

/// The namespace label the example shards by.
const SHARD_LABEL: &str = "x509-exporter/shard";

/// The container args of the Deployment (or Deployment patch) in `path`.
fn args_of(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = YamlLoader::load_from_str(&text).unwrap().remove(0);
    doc["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_vec()
        .unwrap_or_else(|| panic!("{path}: no container args"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// A shard's command line from the example, its `--include-namespace` list replaced by
/// `names` (the test's own namespaces), pointed at the test API server.
fn shard_args(shard: &str, names: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = args_of(&format!("{SHARDED}/shard-{shard}/deployment-args.yaml"))
        .into_iter()
        .filter(|a| !a.starts_with("--include-namespace="))
        .collect();
    args.extend(names.iter().map(|n| format!("--include-namespace={n}")));
    args.extend([
        "--kubeconfig".into(),
        cluster().var("KUBECONFIG_ADMIN").into(),
    ]);
    args
}

/// The unsharded Secrets Deployment's command line, pointed at the test API server.
fn single_args() -> Vec<String> {
    let mut args = args_of(&format!("{KUBERNETES}/secrets/deployment-secrets.yaml"));
    args.extend([
        "--kubeconfig".into(),
        cluster().var("KUBECONFIG_ADMIN").into(),
    ]);
    args
}

fn start(args: &[String]) -> Exporter {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Exporter::start(&args)
}

/// One series: its name and labels.
type Series = (String, BTreeMap<String, String>);

/// The `x509_cert_*` series of `m` whose `label` is one of `values`.
fn series_where(m: &Metrics, label: &str, values: &BTreeSet<&str>) -> BTreeSet<Series> {
    m.samples
        .iter()
        .filter(|s| s.name.starts_with("x509_cert_"))
        .filter(|s| {
            s.labels
                .get(label)
                .is_some_and(|v| values.contains(v.as_str()))
        })
        .map(|s| (s.name.clone(), s.labels.clone()))
        .collect()
}

/// The namespaces of `m`'s `x509_cert_not_after` series among `ours`.
fn namespaces_in(m: &Metrics, ours: &BTreeSet<&str>) -> BTreeSet<String> {
    series_where(m, "secret_namespace", ours)
        .into_iter()
        .map(|(_, labels)| labels["secret_namespace"].clone())
        .collect()
}

/// A TLS Secret in `ns` whose certificate does not parse: an `x509_cert_error` series.
fn broken_tls_secret(c: &Cluster, ns: &str, name: &str) {
    c.secret(
        ns,
        name,
        "kubernetes.io/tls",
        &[("tls.crt", "not a certificate"), ("tls.key", "KEY")],
        serde_json::json!({}),
    );
}

/// A ValidatingWebhookConfiguration that the API server never calls (its rule matches no
/// resource that exists), holding a caBundle: a cluster-wide certificate of no namespace.
fn webhook_with_ca_bundle(c: &Cluster) -> String {
    let name = format!("sharding-{}", std::process::id());
    let now = now();
    let bundle = pem("sharding-webhook-ca", now, now + 86_400);
    c.call(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
        Some(serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "never.sharding.invalid",
                "clientConfig": {"url": "https://127.0.0.1:9/never", "caBundle": b64(bundle.as_bytes())},
                "rules": [{"operations": ["CREATE"], "apiGroups": ["sharding.invalid"],
                    "apiVersions": ["v1"], "resources": ["nothing"]}],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Ignore"
            }]
        })),
    );
    name
}

/// Shards a, b (by namespace label) and system (by list) of the shipped example hold, for
/// the namespaces they select, exactly the series of the unsharded exporter; no series and
/// no namespace is in two of them; a namespace named in the list but labelled for shard b is
/// in b only; namespaces selected by none (no label, or a shard value nobody serves) are in
/// none; the caBundles come from the system shard alone.
#[test]
fn the_shards_together_hold_what_one_exporter_holds_with_no_overlap() {
    let c = cluster();
    let label = |v: &str| serde_json::json!({ SHARD_LABEL: v });
    let a1 = c.namespace("shard-a", label("a"));
    let a2 = c.namespace("shard-a", label("a"));
    let b = c.namespace("shard-b", label("b"));
    let listed = c.namespace("shard-listed", serde_json::json!({}));
    let listed_but_b = c.namespace("shard-listed-b", label("b"));
    let unselected = c.namespace("shard-none", serde_json::json!({}));
    let unknown_shard = c.namespace("shard-zz", label("zz"));
    let all = [
        &a1,
        &a2,
        &b,
        &listed,
        &listed_but_b,
        &unselected,
        &unknown_shard,
    ];
    for (i, ns) in all.into_iter().enumerate() {
        c.tls_secret(ns, "web-tls", &format!("web{i}.sharding.example"));
    }
    c.tls_secret(&a1, "api-tls", "api.sharding.example");
    broken_tls_secret(c, &b, "broken-tls");
    let webhook = webhook_with_ca_bundle(c);

    let shards = [
        ("a", start(&shard_args("a", &[]))),
        ("b", start(&shard_args("b", &[]))),
        (
            "system",
            start(&shard_args(
                "system",
                &[listed.as_str(), listed_but_b.as_str()],
            )),
        ),
    ];
    let single = start(&single_args());

    let ours: BTreeSet<&str> = all.into_iter().map(String::as_str).collect();
    let covered: BTreeSet<&str> = [&a1, &a2, &b, &listed, &listed_but_b]
        .into_iter()
        .map(String::as_str)
        .collect();
    let bundles: BTreeSet<&str> = [webhook.as_str()].into();

    // Every exporter has listed everything that existed when it started.
    let all = single.metrics();
    let expected = series_where(&all, "secret_namespace", &covered);
    assert_eq!(
        namespaces_in(&all, &ours).len(),
        ours.len(),
        "the unsharded exporter sees every namespace: {}",
        all.body
    );
    assert!(
        expected.iter().any(
            |(name, labels)| name == "x509_cert_error" && labels["secret_name"] == "broken-tls"
        ),
        "the broken Secret is reported: {}",
        all.body
    );

    let mut union = BTreeSet::new();
    let mut seen_in: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut bundle_shards = Vec::new();
    for (shard, exporter) in &shards {
        let m = exporter.metrics();
        let held = series_where(&m, "secret_namespace", &ours);
        assert!(
            !held.is_empty(),
            "shard {shard} holds none of the test's namespaces"
        );
        for ns in namespaces_in(&m, &ours) {
            seen_in.entry(ns).or_default().push(*shard);
        }
        for series in held {
            assert!(
                union.insert(series.clone()),
                "{series:?} comes from two shards"
            );
        }
        if !series_where(&m, "cabundle_resource_name", &bundles).is_empty() {
            bundle_shards.push(*shard);
        }
    }
    assert_eq!(union, expected, "the shards together against one exporter");
    for ns in &covered {
        let shards = seen_in.get(*ns).cloned().unwrap_or_default();
        assert_eq!(shards.len(), 1, "{ns} is in {shards:?}");
    }
    assert_eq!(seen_in[&a1], ["a"]);
    assert_eq!(seen_in[&a2], ["a"]);
    assert_eq!(seen_in[&b], ["b"]);
    assert_eq!(seen_in[&listed], ["system"]);
    assert_eq!(
        seen_in[&listed_but_b],
        ["b"],
        "a shard label wins over the list"
    );
    for ns in [&unselected, &unknown_shard] {
        assert!(!seen_in.contains_key(ns), "{ns} is in {:?}", seen_in[ns]);
    }
    // The caBundles belong to no namespace: exactly one shard watches them.
    let webhook_certs = series_where(&all, "cabundle_resource_name", &bundles)
        .into_iter()
        .filter(|(name, _)| name == "x509_cert_not_after")
        .count();
    assert_eq!(webhook_certs, 1, "{}", all.body);
    assert_eq!(bundle_shards, ["system"]);
    c.call(
        "DELETE",
        &format!("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{webhook}"),
        None,
    );
}

/// Sets the shard label of namespace `ns` (removes it for `None`).
fn set_shard(c: &Cluster, ns: &str, shard: Option<&str>) {
    let path = format!("/api/v1/namespaces/{ns}");
    let mut object = c.call("GET", &path, None);
    if object["metadata"]["labels"].is_null() {
        object["metadata"]["labels"] = serde_json::json!({});
    }
    let labels = object["metadata"]["labels"].as_object_mut().unwrap();
    match shard {
        Some(shard) => labels.insert(SHARD_LABEL.into(), shard.into()),
        None => labels.remove(SHARD_LABEL),
    };
    c.call("PUT", &path, Some(object));
}

/// Scrapes both shards until `want` (does a hold `ns`, does b) holds, for at most 20 s;
/// returns how long both held it meanwhile, and how long neither did.
fn until_held(a: &Exporter, b: &Exporter, ns: &str, want: (bool, bool)) -> (Duration, Duration) {
    let ours: BTreeSet<&str> = [ns].into();
    let holds = |e: &Exporter| !namespaces_in(&e.scrape(), &ours).is_empty();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut both, mut neither) = (Duration::ZERO, Duration::ZERO);
    let mut last = Instant::now();
    loop {
        let now = (holds(a), holds(b));
        let step = last.elapsed();
        last = Instant::now();
        match now {
            (true, true) => both += step,
            (false, false) => neither += step,
            _ => {}
        }
        if now == want {
            return (both, neither);
        }
        assert!(
            Instant::now() < deadline,
            "{ns}: (shard a, shard b) holds {now:?}, never {want:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With shards a and b running (watching), relabelling a namespace from a to b moves its
/// certificate from one to the other within seconds, with no long moment where both or
/// neither hold it; it then stays in b alone; removing the label leaves it in neither.
#[test]
fn a_namespace_relabelled_from_a_to_b_moves_between_the_running_shards() {
    let c = cluster();
    let ns = c.namespace("shard-move", serde_json::json!({ SHARD_LABEL: "a" }));
    c.tls_secret(&ns, "web-tls", "move.sharding.example");
    let a = start(&shard_args("a", &[]));
    let b = start(&shard_args("b", &[]));
    a.wait_ready();
    b.wait_ready();
    until_held(&a, &b, &ns, (true, false));

    set_shard(c, &ns, Some("b"));
    let moved = Instant::now();
    let (both, neither) = until_held(&a, &b, &ns, (false, true));
    eprintln!(
        "moved in {:?}: both held it for {both:?}, neither for {neither:?}",
        moved.elapsed()
    );
    let bound = Duration::from_secs(3);
    assert!(both < bound, "both shards held {ns} for {both:?}");
    assert!(neither < bound, "no shard held {ns} for {neither:?}");
    // It stays where it went.
    let ours: BTreeSet<&str> = [ns.as_str()].into();
    for _ in 0..10 {
        assert!(
            namespaces_in(&a.scrape(), &ours).is_empty(),
            "back in shard a"
        );
        let m = b.scrape();
        assert_eq!(
            namespaces_in(&m, &ours).len(),
            1,
            "left shard b: {}",
            m.body
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Unlabelled, the namespace is in no shard: what the uncovered-namespace alert is for.
    set_shard(c, &ns, None);
    until_held(&a, &b, &ns, (false, false));
}

/// Renders a kustomization directory: the text and its documents.
fn kustomize_docs(dir: &str) -> (String, Vec<Yaml>) {
    let text = kustomize(dir);
    let docs = YamlLoader::load_from_str(&text).unwrap();
    (text, docs)
}

/// The rendered example: shards whose selectors cannot overlap (distinct values of one
/// namespace label, and a list that excludes every labelled namespace), each Deployment
/// owning only the pods of its shard, exactly one shard on the caBundles, one ServiceMonitor
/// copying the pod's shard onto its series, and the RBAC copies equal to the originals. The
/// API server accepts it (a server-side dry run).
#[test]
fn the_sharded_example_has_disjoint_shards_and_one_service_monitor() {
    let (rendered, docs) = kustomize_docs(SHARDED);
    cluster().dry_run(&rendered, &["monitoring"]);
    fn kind(d: &Yaml) -> &str {
        d["kind"].as_str().unwrap_or_default()
    }
    let deployments: Vec<&Yaml> = docs.iter().filter(|d| kind(d) == "Deployment").collect();
    assert!(deployments.len() >= 2, "{} Deployments", deployments.len());
    let mut values = BTreeSet::new();
    let mut lists = 0;
    let mut bundles = 0;
    let mut selectors = BTreeSet::new();
    for d in &deployments {
        let name = d["metadata"]["name"].as_str().unwrap();
        let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
        let shard = pod_labels[SHARD_LABEL]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: pods without {SHARD_LABEL}"));
        assert_eq!(
            d["spec"]["selector"]["matchLabels"][SHARD_LABEL].as_str(),
            Some(shard),
            "{name}: its selector must hold its shard, or Deployments share pods"
        );
        assert!(
            selectors.insert(shard.to_string()),
            "{name}: shard {shard} twice"
        );
        let args: Vec<&str> = d["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.contains(&"--watch-kube-secrets"), "{name}");
        bundles += usize::from(args.contains(&"--watch-kube-ca-bundles"));
        let by_label: Vec<&str> = args
            .iter()
            .filter_map(|a| a.strip_prefix("--include-namespace-label="))
            .collect();
        let by_name = args.iter().any(|a| a.starts_with("--include-namespace="));
        match (by_label.as_slice(), by_name) {
            ([selector], false) => {
                let value = selector
                    .strip_prefix(&format!("{SHARD_LABEL}="))
                    .unwrap_or_else(|| panic!("{name}: selects by {selector}"));
                assert_eq!(value, shard, "{name}: pod label and namespace label differ");
                assert!(values.insert(value.to_string()), "{name}: {value} twice");
            }
            ([], true) => {
                lists += 1;
                assert!(
                    args.contains(&format!("--exclude-namespace-label={SHARD_LABEL}").as_str()),
                    "{name}: a listed namespace labelled for a shard would be in two"
                );
            }
            _ => panic!("{name}: one namespace label or a list: {args:?}"),
        }
    }
    assert!(values.len() >= 2, "{values:?}");
    assert_eq!(lists, 1, "one shard by list");
    assert_eq!(
        bundles, 1,
        "the caBundles, of no namespace, in exactly one shard"
    );

    let monitors: Vec<&Yaml> = docs
        .iter()
        .filter(|d| kind(d) == "ServiceMonitor")
        .collect();
    assert_eq!(monitors.len(), 1);
    let relabel = &monitors[0]["spec"]["endpoints"][0]["relabelings"][0];
    assert_eq!(
        relabel["sourceLabels"][0].as_str(),
        Some("__meta_kubernetes_pod_label_x509_exporter_shard")
    );
    assert_eq!(relabel["targetLabel"].as_str(), Some("shard"));
    assert_eq!(docs.iter().filter(|d| kind(d) == "Service").count(), 1);

    let load = |path: String| {
        YamlLoader::load_from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap()
            .remove(0)
    };
    for file in ["clusterrole.yaml", "clusterrolebinding.yaml"] {
        assert_eq!(
            load(format!("{SHARDED}/{file}")),
            load(format!("{KUBERNETES}/{file}")),
            "{file}: the copy drifted"
        );
    }
    // The ServiceMonitor is the original plus the relabelling.
    let mut monitor = load(format!("{SHARDED}/servicemonitor.yaml"));
    if let Yaml::Hash(endpoint) = &mut monitor["spec"]["endpoints"][0] {
        endpoint.remove(&Yaml::String("relabelings".into()));
    }
    assert_eq!(monitor, load(format!("{KUBERNETES}/servicemonitor.yaml")));
}
