//! What to list and what to keep: the listing plan (namespace fast path, selectors pushed
//! to the server), client-side filters, and Secret/ConfigMap objects decoded into items.
//! Secret values are decoded, parsed and dropped here; nothing else sees them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::client::Client;
use super::passwords::{PasswordSecrets, SecretRef};
use super::reflector::Decode;
use crate::keystore;
use crate::keystore::passwords::{password_of, PasswordFiles};
use crate::labels::{LabelConfig, Pair};
use crate::model::Item;
use crate::pem;

/// One page of a LIST response, borrowing from its body.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Page<'a, T> {
    /// List metadata (the continue token, the list's version).
    #[serde(default, borrow)]
    pub metadata: ListMeta<'a>,
    /// The objects.
    #[serde(default = "Vec::new")]
    pub items: Vec<T>,
}

/// `metadata` of a list.
#[derive(Deserialize, Default)]
pub struct ListMeta<'a> {
    /// Token for the next page; empty or absent on the last.
    #[serde(rename = "continue", default, borrow)]
    pub next: Option<Cow<'a, str>>,
    /// The version of the list, where a watch may start.
    #[serde(rename = "resourceVersion", default, borrow)]
    pub resource_version: Option<Cow<'a, str>>,
}

/// A Secret, ConfigMap or Namespace: only the fields used.
#[derive(Deserialize)]
pub struct Object<'a> {
    /// Object metadata.
    #[serde(borrow)]
    pub metadata: ObjectMeta<'a>,
    /// Secret type.
    #[serde(rename = "type", default, borrow)]
    pub kind: Option<Cow<'a, str>>,
    /// Secret data (base64) or ConfigMap data (text).
    #[serde(default, borrow)]
    pub data: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
    /// ConfigMap binaryData (base64).
    #[serde(rename = "binaryData", default, borrow)]
    pub binary_data: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

/// `metadata` of an object.
#[derive(Deserialize)]
pub struct ObjectMeta<'a> {
    /// Name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Namespace (absent for namespaces).
    #[serde(default, borrow)]
    pub namespace: Option<Cow<'a, str>>,
    /// Changes whenever the object changes.
    #[serde(rename = "resourceVersion", default, borrow)]
    pub resource_version: Option<Cow<'a, str>>,
    /// Labels.
    #[serde(default, borrow)]
    pub labels: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

impl ObjectMeta<'_> {
    /// `namespace/name` (`/name` for an object of no namespace) and the resourceVersion.
    pub fn key(&self) -> (String, &str) {
        let namespace = self.namespace.as_deref().unwrap_or("");
        let key = format!("{namespace}/{}", self.name);
        (key, self.resource_version.as_deref().unwrap_or(""))
    }

    fn label_pairs(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.labels
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Whether the labels match every `include` filter and no `exclude` filter.
    fn labels_pass(&self, include: &[LabelFilter], exclude: &[LabelFilter]) -> bool {
        include.iter().all(|l| l.matches(self.label_pairs()))
            && !exclude.iter().any(|l| l.matches(self.label_pairs()))
    }
}

/// Which kind of object a list returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Secrets.
    Secret,
    /// ConfigMaps.
    ConfigMap,
    /// MutatingWebhookConfigurations (`--watch-kube-ca-bundles`).
    MutatingWebhooks,
    /// ValidatingWebhookConfigurations (`--watch-kube-ca-bundles`).
    ValidatingWebhooks,
    /// APIServices (`--watch-kube-ca-bundles`).
    ApiServices,
    /// CustomResourceDefinitions, for their conversion webhooks (`--watch-kube-ca-bundles`).
    Crds,
}

impl Kind {
    /// The resource name in API paths.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::ConfigMap => "configmaps",
            Kind::MutatingWebhooks => "mutatingwebhookconfigurations",
            Kind::ValidatingWebhooks => "validatingwebhookconfigurations",
            Kind::ApiServices => "apiservices",
            Kind::Crds => "customresourcedefinitions",
        }
    }

    /// Where its API lives: `/api/v1`, or `/apis/GROUP/VERSION`.
    pub fn api(self) -> &'static str {
        match self {
            Kind::Secret | Kind::ConfigMap => "/api/v1",
            Kind::MutatingWebhooks | Kind::ValidatingWebhooks => {
                "/apis/admissionregistration.k8s.io/v1"
            }
            Kind::ApiServices => "/apis/apiregistration.k8s.io/v1",
            Kind::Crds => "/apis/apiextensions.k8s.io/v1",
        }
    }

    /// Its objects belong to no namespace: listed across the cluster whatever the
    /// namespace filters.
    pub fn cluster_scoped(self) -> bool {
        !matches!(self, Kind::Secret | Kind::ConfigMap)
    }

    /// The kind as Kubernetes names it, for `cabundle_resource_kind`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::MutatingWebhooks => "MutatingWebhookConfiguration",
            Kind::ValidatingWebhooks => "ValidatingWebhookConfiguration",
            Kind::ApiServices => "APIService",
            Kind::Crds => "CustomResourceDefinition",
        }
    }
}

/// Where the lists run.
#[derive(Debug, Clone, PartialEq)]
pub enum Namespaces {
    /// One list across the cluster.
    All,
    /// These namespaces, without listing namespaces (works with namespace-scoped RBAC).
    Named(Vec<String>),
    /// List namespaces (with this label selector), filter them, then list in each.
    Listed(String),
}

/// What the Kubernetes source lists and keeps (SPEC §6), whoever asked for it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Secret types and the data keys read in each (whole-key match).
    pub secret_types: Vec<SecretType>,
    /// ConfigMap keys read (exact names); none means ConfigMaps are not listed.
    pub configmap_keys: Vec<String>,
    /// Only these namespaces (none: all).
    pub include_namespaces: Vec<String>,
    /// Not these namespaces.
    pub exclude_namespaces: Vec<String>,
    /// Only namespaces with every one of these labels.
    pub include_namespace_labels: Vec<LabelFilter>,
    /// Not namespaces with any of these labels.
    pub exclude_namespace_labels: Vec<LabelFilter>,
    /// Only Secrets with every one of these labels.
    pub include_labels: Vec<LabelFilter>,
    /// Not Secrets with any of these labels.
    pub exclude_labels: Vec<LabelFilter>,
    /// Secret labels copied onto series as `secret_label_<key>`.
    pub expose_secret_labels: Vec<String>,
    /// Re-list at a random time between half and all of it; zero re-lists every refresh.
    pub max_cache_duration: Duration,
    /// Objects per list request.
    pub page_size: u32,
    /// `--watch-kube-secrets`: Secrets (and ConfigMaps with `-c`) are read.
    pub secrets: bool,
    /// Data keys of a Secret whose values are passwords for the keystores of the same
    /// Secret (`--keystore-password-key`).
    pub password_keys: Vec<String>,
    /// Keys of other Secrets holding keystore passwords (`--keystore-password-secret`),
    /// tried after a Secret's own keys.
    pub password_secrets: Vec<SecretRef>,
    /// Passwords from files (`--keystore-password-file`), tried last.
    pub password_files: Arc<PasswordFiles>,
    /// `--watch-kube-ca-bundles`: the caBundles of webhook configurations, APIServices and
    /// CRD conversion webhooks are read.
    pub ca_bundles: bool,
}

/// A Secret type and the data keys read in it.
#[derive(Debug, Clone)]
pub struct SecretType {
    /// The Secret `type`, matched exactly.
    pub kind: String,
    /// The key pattern as given.
    pub pattern: String,
    /// The pattern anchored to the whole key.
    pub regex: regex_lite::Regex,
}

impl PartialEq for SecretType {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.pattern == other.pattern
    }
}

/// A label filter: `key` (the label exists) or `key=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    /// Label key.
    pub key: String,
    /// Required value; `None` only asks that the key exists.
    pub value: Option<String>,
}

impl LabelFilter {
    /// True when `labels` satisfies the filter.
    pub fn matches<'a>(&self, mut labels: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        labels.any(|(k, v)| k == self.key && self.value.as_deref().is_none_or(|want| want == v))
    }
}

/// The plan and filters derived from the settings.
pub struct Rules {
    settings: Settings,
    /// Reads `--keystore-password-secret`, once given a client.
    password_secrets: Option<PasswordSecrets>,
}

impl Rules {
    /// Rules for these settings.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            password_secrets: None,
        }
    }

    /// Reads the password Secrets of `--keystore-password-secret` through `client`.
    pub fn with_password_client(mut self, client: &Client) -> Self {
        if !self.settings.password_secrets.is_empty() {
            let refs = self.settings.password_secrets.clone();
            self.password_secrets = Some(PasswordSecrets::new(client.clone(), refs));
        }
        self
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The kinds to list: Secrets, and ConfigMaps when `-c` names keys; the four kinds
    /// that hold caBundles with `--watch-kube-ca-bundles`.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut kinds = Vec::new();
        if self.settings.secrets {
            kinds.push(Kind::Secret);
            if !self.settings.configmap_keys.is_empty() {
                kinds.push(Kind::ConfigMap);
            }
        }
        if self.settings.ca_bundles {
            kinds.extend([
                Kind::MutatingWebhooks,
                Kind::ValidatingWebhooks,
                Kind::ApiServices,
                Kind::Crds,
            ]);
        }
        kinds
    }

    /// Where to list (SPEC §6).
    pub fn namespaces(&self) -> Namespaces {
        let f = &self.settings;
        let label_filters =
            !f.include_namespace_labels.is_empty() || !f.exclude_namespace_labels.is_empty();
        if !f.include_namespaces.is_empty() && !label_filters {
            let mut names: Vec<String> = f
                .include_namespaces
                .iter()
                .filter(|n| !f.exclude_namespaces.contains(n))
                .cloned()
                .collect();
            names.sort();
            names.dedup();
            return Namespaces::Named(names);
        }
        if f.include_namespaces.is_empty() && f.exclude_namespaces.is_empty() && !label_filters {
            return Namespaces::All;
        }
        Namespaces::Listed(selector(&f.include_namespace_labels, &[]))
    }

    /// Whether an include filter (`--include-namespace` or `--include-namespace-label`)
    /// bounds the namespaces: then those kept are few, and each is watched on its own.
    pub fn bounds_namespaces(&self) -> bool {
        let f = &self.settings;
        !f.include_namespaces.is_empty() || !f.include_namespace_labels.is_empty()
    }

    /// Whether a listed namespace is kept.
    pub fn keep_namespace(&self, namespace: &Object<'_>) -> bool {
        let f = &self.settings;
        let name = namespace.metadata.name.as_ref();
        (f.include_namespaces.is_empty() || f.include_namespaces.iter().any(|n| n == name))
            && !f.exclude_namespaces.iter().any(|n| n == name)
            && namespace
                .metadata
                .labels_pass(&f.include_namespace_labels, &f.exclude_namespace_labels)
    }

    /// Query parameters pushed to the server for a list of `kind`: the Secret type, and
    /// the label filters (which apply to Secrets and to the objects holding caBundles).
    pub fn selectors(&self, kind: Kind) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if kind == Kind::Secret {
            let types = &self.settings.secret_types;
            if types.iter().all(|t| t.kind == types[0].kind) {
                query.push(("fieldSelector", format!("type={}", types[0].kind)));
            }
        }
        if kind != Kind::ConfigMap {
            let labels = selector(&self.settings.include_labels, &self.settings.exclude_labels);
            if !labels.is_empty() {
                query.push(("labelSelector", labels));
            }
        }
        query
    }

    /// Whether an object that holds caBundles passes the label filters.
    pub fn keep_labels(&self, meta: &ObjectMeta<'_>) -> bool {
        meta.labels_pass(&self.settings.include_labels, &self.settings.exclude_labels)
    }

    /// Whether an object is kept (the same filters the selectors ask of the server).
    pub fn keep(&self, kind: Kind, object: &Object<'_>) -> bool {
        match kind {
            Kind::ConfigMap => true,
            Kind::MutatingWebhooks | Kind::ValidatingWebhooks | Kind::ApiServices | Kind::Crds => {
                self.keep_labels(&object.metadata)
            }
            Kind::Secret => {
                let f = &self.settings;
                let kind = object.kind.as_deref().unwrap_or("");
                f.secret_types.iter().any(|t| t.kind == kind)
                    && object
                        .metadata
                        .labels_pass(&f.include_labels, &f.exclude_labels)
            }
        }
    }

    /// The passwords to open the keystores of `object` with: the values of its password
    /// keys (a Secret's: a ConfigMap keeps no secrets), in flag order, then those of the
    /// password Secrets, then those of the password files; and why a password Secret could
    /// not be read.
    fn passwords_of(&self, kind: Kind, object: &Object<'_>) -> (Vec<String>, Vec<String>) {
        let mut passwords = Vec::new();
        let own_keys = match kind {
            Kind::Secret => &self.settings.password_keys[..],
            _ => &[],
        };
        for key in own_keys {
            let value = object.data.as_ref().and_then(|data| data.get(key.as_str()));
            let password = value
                .and_then(|value| pem::decode_base64(value.as_bytes()).ok())
                .and_then(password_of);
            passwords.extend(password);
        }
        let mut failures = Vec::new();
        if let Some(secrets) = &self.password_secrets {
            let namespace = object.metadata.namespace.as_deref().unwrap_or("");
            let (more, why) = secrets.passwords(namespace);
            passwords.extend(more);
            failures = why;
        }
        passwords.extend(self.settings.password_files.current().iter().cloned());
        (passwords, failures)
    }

    /// Decodes every watched key of a kept object into one item per key.
    pub fn items(&self, kind: Kind, object: &Object<'_>, labels: &LabelConfig) -> Vec<Item> {
        let namespace = object.metadata.namespace.as_deref().unwrap_or("");
        let name = object.metadata.name.as_ref();
        let mut items = Vec::new();
        let (prefix, what) = match kind {
            Kind::ConfigMap => ("configmap", "configmap"),
            _ => ("secret", "secret"),
        };
        let origin_for = |key: &str| -> Vec<Pair> {
            let mut pairs: Vec<Pair> = vec![
                (format!("{prefix}_namespace").into(), namespace.to_string()),
                (format!("{prefix}_name").into(), name.to_string()),
                (format!("{prefix}_key").into(), key.to_string()),
            ];
            if kind == Kind::Secret {
                for exposed in &self.settings.expose_secret_labels {
                    if let Some(value) = object
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(exposed.as_str()))
                    {
                        pairs.push((
                            format!("secret_label_{}", sanitize(exposed)).into(),
                            value.to_string(),
                        ));
                    }
                }
            }
            pairs
        };
        let mut add = |key: &str, bytes: Result<Vec<u8>, String>| {
            let place = format!("{what} {namespace}/{name} key {key}");
            let keystore = matches!(&bytes, Ok(data) if keystore::detect(data).is_some());
            let (passwords, failures) = match keystore {
                true => self.passwords_of(kind, object),
                false => Default::default(),
            };
            let item = item_of(&origin_for(key), &place, bytes, &passwords, labels);
            items.extend(item.map(|mut item| {
                if !failures.is_empty() {
                    let errors = item.errors.iter().cloned();
                    let more = failures.iter().map(|e| format!("{place}: {e}"));
                    item.errors = errors.chain(more).collect();
                }
                item
            }));
        };
        match kind {
            Kind::Secret => {
                let secret_kind = object.kind.as_deref().unwrap_or("");
                for (key, value) in object.data.iter().flatten() {
                    let wanted = self
                        .settings
                        .secret_types
                        .iter()
                        .any(|t| t.kind == secret_kind && t.regex.is_match(key));
                    if wanted {
                        add(key, pem::decode_base64(value.as_bytes()));
                    }
                }
            }
            Kind::MutatingWebhooks | Kind::ValidatingWebhooks | Kind::ApiServices | Kind::Crds => {}
            Kind::ConfigMap => {
                for key in &self.settings.configmap_keys {
                    if let Some(text) = object.data.as_ref().and_then(|d| d.get(key.as_str())) {
                        add(key, Ok(text.as_bytes().to_vec()));
                    }
                    if let Some(b64) = object
                        .binary_data
                        .as_ref()
                        .and_then(|d| d.get(key.as_str()))
                    {
                        add(key, pem::decode_base64(b64.as_bytes()));
                    }
                }
            }
        }
        items
    }
}

/// Secrets or ConfigMaps, kept and decoded by the rules.
pub struct Objects {
    /// Which of the two.
    pub kind: Kind,
    /// What to keep and how to read it.
    pub rules: Arc<Rules>,
    /// How items are labelled.
    pub labels: Arc<LabelConfig>,
}

impl Decode for Objects {
    type Object<'a> = Object<'a>;

    fn key<'o>(&self, object: &'o Object<'_>) -> (String, &'o str) {
        object.metadata.key()
    }

    fn items(&self, object: &Object<'_>) -> Option<Vec<Arc<Item>>> {
        if !self.rules.keep(self.kind, object) {
            return None;
        }
        let items = self.rules.items(self.kind, object, &self.labels);
        Some(items.into_iter().map(Arc::new).collect())
    }
}

/// Namespaces, kept by the namespace filters; they carry no items, only their names
/// (their keys are `/name`).
pub struct NamespaceFilter {
    /// The namespace filters.
    pub rules: Arc<Rules>,
}

impl Decode for NamespaceFilter {
    type Object<'a> = Object<'a>;

    fn key<'o>(&self, object: &'o Object<'_>) -> (String, &'o str) {
        let version = object.metadata.resource_version.as_deref().unwrap_or("");
        (object.metadata.name.to_string(), version)
    }

    fn items(&self, object: &Object<'_>) -> Option<Vec<Arc<Item>>> {
        self.rules.keep_namespace(object).then(Vec::new)
    }
}

/// Where namespaces are listed for [`Namespaces::Listed`].
pub const NAMESPACES_PATH: &str = "/api/v1/namespaces";

/// The query that selects namespaces by `selector` (from [`Namespaces::Listed`]).
pub fn namespace_selectors(selector: &str) -> Vec<(&'static str, String)> {
    match selector.is_empty() {
        true => Vec::new(),
        false => vec![("labelSelector", selector.to_string())],
    }
}

/// The item of one place that holds certificates (a Secret key, a caBundle): its series, or
/// its errors named after `place`; `None` when the place is empty.
pub fn item_of(
    origin: &[Pair],
    place: &str,
    bytes: Result<Vec<u8>, String>,
    passwords: &[String],
    labels: &LabelConfig,
) -> Option<Item> {
    let mut errors = Vec::new();
    let mut series = Vec::new();
    match bytes {
        Ok(data) if data.is_empty() => return None,
        Ok(data) => {
            let parsed = pem::parse_certificates(&data, passwords, labels.wants_facts());
            // The store merges a certificate repeated in one place into one series.
            series = labels.all_series(&[], &parsed);
            errors.extend(parsed.errors.iter().map(|e| format!("{place}: {e}")));
            if series.is_empty() && errors.is_empty() {
                errors.push(format!("{place}: no certificate found"));
            }
        }
        Err(e) => errors.push(format!("{place}: {e}")),
    }
    Some(Item {
        labels: labels.origin(origin),
        series: series.into(),
        errors: errors.into(),
    })
}

/// A label name from a Secret label key: every character outside `[A-Za-z0-9_]` becomes `_`.
pub fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A label selector: `k`, `k=v` for includes; `!k`, `k!=v` for excludes.
fn selector(include: &[LabelFilter], exclude: &[LabelFilter]) -> String {
    let mut parts: Vec<String> = include
        .iter()
        .map(|l| match &l.value {
            Some(v) => format!("{}={v}", l.key),
            None => l.key.clone(),
        })
        .collect();
    parts.extend(exclude.iter().map(|l| match &l.value {
        Some(v) => format!("{}!={v}", l.key),
        None => format!("!{}", l.key),
    }));
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Command};

    fn rules(args: &[&str]) -> Rules {
        let mut all = vec!["--watch-kube-secrets"];
        all.extend_from_slice(args);
        match parse(all.iter().map(Into::into).collect()).unwrap() {
            Command::Run(config) => Rules::new(config.kube.unwrap().source),
            _ => unreachable!(),
        }
    }

    #[test]
    fn namespace_plans() {
        assert_eq!(rules(&[]).namespaces(), Namespaces::All);
        assert_eq!(
            rules(&[
                "--include-namespace",
                "b",
                "--include-namespace",
                "a",
                "--exclude-namespace",
                "b"
            ])
            .namespaces(),
            Namespaces::Named(vec!["a".into()])
        );
        assert_eq!(
            rules(&["--exclude-namespace", "kube-system"]).namespaces(),
            Namespaces::Listed(String::new())
        );
        assert_eq!(
            rules(&[
                "--include-namespace",
                "a",
                "--include-namespace-label",
                "team=x"
            ])
            .namespaces(),
            Namespaces::Listed("team=x".into())
        );
    }

    #[test]
    fn selectors_are_pushed_to_the_server() {
        let r = rules(&[
            "--include-label",
            "app=web",
            "--include-label",
            "tier",
            "--exclude-label",
            "skip",
            "--exclude-label",
            "env=dev",
        ]);
        assert_eq!(
            r.selectors(Kind::Secret),
            [
                ("fieldSelector", "type=kubernetes.io/tls".to_string()),
                ("labelSelector", "app=web,tier,!skip,env!=dev".to_string())
            ]
        );
        let mixed = rules(&["-s", "kubernetes.io/tls:tls.crt", "-s", "Opaque:.*\\.pem"]);
        assert!(
            mixed.selectors(Kind::Secret).is_empty(),
            "two types: filtered client-side"
        );
        assert!(r.selectors(Kind::ConfigMap).is_empty());
    }

    #[test]
    fn keys_match_whole_and_values_decode() {
        let r = rules(&[
            "-s",
            "kubernetes.io/tls:tls.crt",
            "--expose-secret-label",
            "app.kubernetes.io/name",
        ]);
        let json = r#"{"metadata":{"name":"s","namespace":"ns","resourceVersion":"1","labels":{"app.kubernetes.io/name":"web"}},
            "type":"kubernetes.io/tls","data":{"tls.crt":"!!!","mtls.crt.old":"x","tls.key":"c2VjcmV0","ca.crt":""}}"#;
        let object: Object<'_> = serde_json::from_str(json).unwrap();
        assert!(r.keep(Kind::Secret, &object));
        let items = r.items(Kind::Secret, &object, &LabelConfig::default());
        assert_eq!(
            items.len(),
            1,
            "only tls.crt: not mtls.crt.old, not tls.key"
        );
        assert_eq!(
            &*items[0].errors[0],
            "secret ns/s key tls.crt: invalid base64"
        );
        assert_eq!(
            &*items[0].labels,
            "secret_namespace=\"ns\",secret_name=\"s\",secret_key=\"tls.crt\",secret_label_app_kubernetes_io_name=\"web\""
        );
        assert_eq!(sanitize("app.kubernetes.io/name"), "app_kubernetes_io_name");
    }
}
