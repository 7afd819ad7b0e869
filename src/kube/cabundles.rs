//! `--watch-kube-ca-bundles`: the CA bundles Kubernetes keeps outside Secrets, whose expiry
//! silently breaks admission and aggregated APIs: `webhooks[].clientConfig.caBundle` of
//! Mutating- and ValidatingWebhookConfigurations, `spec.caBundle` of APIServices, and
//! `spec.conversion.webhook.clientConfig.caBundle` of CustomResourceDefinitions whose
//! conversion strategy is `Webhook`. Each bundle is one item labelled
//! `cabundle_resource_kind`, `cabundle_resource_name` and, for a webhook configuration,
//! `cabundle_entry` (the webhook's name), as the Go exporter v4.2 labels them. An empty or
//! absent bundle is no item (the API server then uses its own roots).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use super::reflector::Decode;
use super::secrets::{item_of, Kind, ObjectMeta, Rules};
use crate::labels::{LabelConfig, Pair};
use crate::model::Item;
use crate::pem;

/// An object that may hold caBundles: only the fields used, for all four kinds.
#[derive(Deserialize)]
pub struct Holder<'a> {
    /// Object metadata.
    #[serde(borrow)]
    pub metadata: ObjectMeta<'a>,
    /// A webhook configuration's webhooks.
    #[serde(default, borrow)]
    pub webhooks: Vec<Webhook<'a>>,
    /// An APIService's or a CRD's spec.
    #[serde(default, borrow)]
    pub spec: Option<Spec<'a>>,
}

/// One webhook of a configuration.
#[derive(Deserialize)]
pub struct Webhook<'a> {
    /// Its name, unique in the configuration.
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    /// How the API server calls it.
    #[serde(rename = "clientConfig", default, borrow)]
    pub client_config: Option<ClientConfig<'a>>,
}

/// How the API server reaches a webhook: only the bundle it trusts.
#[derive(Deserialize)]
pub struct ClientConfig<'a> {
    /// PEM certificates, base64-encoded in the JSON.
    #[serde(rename = "caBundle", default, borrow)]
    pub ca_bundle: Option<Cow<'a, str>>,
}

/// An APIService's or a CRD's spec.
#[derive(Deserialize)]
pub struct Spec<'a> {
    /// An APIService's bundle.
    #[serde(rename = "caBundle", default, borrow)]
    pub ca_bundle: Option<Cow<'a, str>>,
    /// A CRD's conversion.
    #[serde(default, borrow)]
    pub conversion: Option<Conversion<'a>>,
}

/// A CRD's conversion settings.
#[derive(Deserialize)]
pub struct Conversion<'a> {
    /// `None` or `Webhook`.
    #[serde(default, borrow)]
    pub strategy: Option<Cow<'a, str>>,
    /// The conversion webhook.
    #[serde(default, borrow)]
    pub webhook: Option<ConversionWebhook<'a>>,
}

/// A CRD's conversion webhook.
#[derive(Deserialize)]
pub struct ConversionWebhook<'a> {
    /// How the API server calls it.
    #[serde(rename = "clientConfig", default, borrow)]
    pub client_config: Option<ClientConfig<'a>>,
}

/// The objects of one of the four kinds, decoded into one item per bundle.
pub struct Bundles {
    /// Which kind.
    pub kind: Kind,
    /// The label filters.
    pub rules: Arc<Rules>,
    /// How items are labelled.
    pub labels: Arc<LabelConfig>,
}

impl Bundles {
    /// The bundles of `object`: (entry, base64 bundle), the entry empty where the kind has
    /// none.
    fn bundles<'o>(&self, object: &'o Holder<'_>) -> Vec<(&'o str, &'o str)> {
        let bundle = |c: &'o Option<ClientConfig<'_>>| c.as_ref()?.ca_bundle.as_deref();
        match self.kind {
            Kind::MutatingWebhooks | Kind::ValidatingWebhooks => object
                .webhooks
                .iter()
                .filter_map(|w| Some((w.name.as_ref(), bundle(&w.client_config)?)))
                .collect(),
            Kind::ApiServices => object
                .spec
                .as_ref()
                .and_then(|s| s.ca_bundle.as_deref())
                .map(|b| ("", b))
                .into_iter()
                .collect(),
            Kind::Crds => object
                .spec
                .as_ref()
                .and_then(|s| s.conversion.as_ref())
                .filter(|c| c.strategy.as_deref() == Some("Webhook"))
                .and_then(|c| bundle(&c.webhook.as_ref()?.client_config))
                .map(|b| ("", b))
                .into_iter()
                .collect(),
            Kind::Secret | Kind::ConfigMap => Vec::new(),
        }
    }
}

impl Decode for Bundles {
    type Object<'a> = Holder<'a>;

    fn key<'o>(&self, object: &'o Holder<'_>) -> (String, &'o str) {
        object.metadata.key()
    }

    fn items(&self, object: &Holder<'_>) -> Option<Vec<Arc<Item>>> {
        if !self.rules.keep_labels(&object.metadata) {
            return None;
        }
        let (kind, name) = (self.kind.name(), object.metadata.name.as_ref());
        let mut items = Vec::new();
        for (entry, bundle) in self.bundles(object) {
            let mut origin: Vec<Pair> = vec![
                ("cabundle_resource_kind".into(), kind.to_string()),
                ("cabundle_resource_name".into(), name.to_string()),
            ];
            let place = match entry.is_empty() {
                true => format!("{kind} {name} caBundle"),
                false => {
                    origin.push(("cabundle_entry".into(), entry.to_string()));
                    format!("{kind} {name} webhook {entry} caBundle")
                }
            };
            let bytes = pem::decode_base64(bundle.as_bytes());
            items.extend(item_of(&origin, &place, bytes, &[], &self.labels).map(Arc::new));
        }
        Some(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::secrets::Settings;

    fn bundles(kind: Kind, include: &[(&str, &str)]) -> Bundles {
        let settings = Settings {
            secret_types: Vec::new(),
            configmap_keys: Vec::new(),
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            include_namespace_labels: Vec::new(),
            exclude_namespace_labels: Vec::new(),
            include_labels: include
                .iter()
                .map(|(k, v)| crate::kube::secrets::LabelFilter {
                    key: k.to_string(),
                    value: Some(v.to_string()),
                })
                .collect(),
            exclude_labels: Vec::new(),
            expose_secret_labels: Vec::new(),
            max_cache_duration: std::time::Duration::ZERO,
            page_size: 100,
            secrets: false,
            ca_bundles: true,
            password_keys: Vec::new(),
            password_secrets: Vec::new(),
            password_files: Default::default(),
        };
        Bundles {
            kind,
            rules: Arc::new(Rules::new(settings)),
            labels: Arc::new(LabelConfig::default()),
        }
    }

    #[test]
    fn every_kind_finds_its_bundles_and_only_where_they_are_used() {
        let webhooks = r#"{"metadata":{"name":"hooks","resourceVersion":"7"},"webhooks":[
            {"name":"a.example.com","clientConfig":{"caBundle":"QUJD"}},
            {"name":"b.example.com","clientConfig":{"url":"https://x"}},
            {"name":"c.example.com","clientConfig":{"caBundle":""}}]}"#;
        let holder: Holder<'_> = serde_json::from_str(webhooks).unwrap();
        let found = bundles(Kind::ValidatingWebhooks, &[]).bundles(&holder);
        assert_eq!(found, [("a.example.com", "QUJD"), ("c.example.com", "")]);

        let api_service = r#"{"metadata":{"name":"v1beta1.metrics.k8s.io"},"spec":{"caBundle":"QUJD","group":"metrics.k8s.io"}}"#;
        let holder: Holder<'_> = serde_json::from_str(api_service).unwrap();
        assert_eq!(
            bundles(Kind::ApiServices, &[]).bundles(&holder),
            [("", "QUJD")]
        );

        let crd = |strategy: &str| {
            format!(
                r#"{{"metadata":{{"name":"things.example.com"}},"spec":{{"group":"example.com","versions":[{{"name":"v1","schema":{{"openAPIV3Schema":{{"type":"object"}}}}}}],
                "conversion":{{"strategy":{strategy:?},"webhook":{{"clientConfig":{{"caBundle":"QUJD"}},"conversionReviewVersions":["v1"]}}}}}}}}"#
            )
        };
        let with = crd("Webhook");
        let holder: Holder<'_> = serde_json::from_str(&with).unwrap();
        assert_eq!(bundles(Kind::Crds, &[]).bundles(&holder), [("", "QUJD")]);
        let without = crd("None");
        let holder: Holder<'_> = serde_json::from_str(&without).unwrap();
        assert!(bundles(Kind::Crds, &[]).bundles(&holder).is_empty());
    }

    #[test]
    fn a_bad_bundle_is_an_error_naming_the_webhook_and_the_label_filters_apply() {
        let json = r#"{"metadata":{"name":"hooks","labels":{"team":"x"}},"webhooks":[
            {"name":"a.example.com","clientConfig":{"caBundle":"bm90IGEgY2VydA=="}}]}"#;
        let holder: Holder<'_> = serde_json::from_str(json).unwrap();
        let items = bundles(Kind::MutatingWebhooks, &[]).items(&holder).unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0].series.is_empty());
        assert_eq!(
            items[0].errors[0].as_str(),
            "MutatingWebhookConfiguration hooks webhook a.example.com caBundle: no certificate found"
        );
        assert!(items[0].labels.contains("cabundle_entry=\"a.example.com\""));
        assert!(items[0]
            .labels
            .contains("cabundle_resource_kind=\"MutatingWebhookConfiguration\""));
        let filtered = bundles(Kind::MutatingWebhooks, &[("team", "y")]);
        assert!(filtered.items(&holder).is_none());
        let kept = bundles(Kind::MutatingWebhooks, &[("team", "x")]);
        assert!(kept.items(&holder).is_some());
    }
}
