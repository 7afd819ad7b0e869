//! Any bytes as the body of a Kubernetes LIST of Secrets or ConfigMaps, or of the objects that
//! hold caBundles: decoded as the client decodes a page, then every object filtered and read
//! as the exporter reads it.
#![no_main]

use std::ffi::OsString;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use x509_certificate_exporter::cli::{self, Command};
use x509_certificate_exporter::kube::cabundles::{Bundles, Holder};
use x509_certificate_exporter::kube::reflector::Decode;
use x509_certificate_exporter::kube::secrets::{Kind, Object, Page, Rules};
use x509_certificate_exporter::labels::LabelConfig;

fn rules() -> &'static Arc<Rules> {
    static RULES: OnceLock<Arc<Rules>> = OnceLock::new();
    RULES.get_or_init(|| {
        let args = [
            "--watch-kube-secrets",
            "--watch-kube-ca-bundles",
            "-s",
            "kubernetes.io/tls:tls.crt",
            "-s",
            "Opaque:.*\\.pem",
            "-c",
            "ca.crt",
            "--exclude-label",
            "skip",
            "--expose-secret-label=team",
        ];
        let args = args.iter().map(OsString::from).collect();
        match cli::parse(args) {
            Ok(Command::Run(config)) => {
                Arc::new(Rules::new(config.kube.expect("Kubernetes flags").source))
            }
            _ => unreachable!("the flags above are valid"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let labels = LabelConfig::default();
    if let Ok(page) = serde_json::from_slice::<Page<'_, Object<'_>>>(data) {
        for kind in [Kind::Secret, Kind::ConfigMap] {
            for object in &page.items {
                if rules().keep(kind, object) {
                    let _ = rules().items(kind, object, &labels);
                }
                let _ = rules().keep_namespace(object);
            }
        }
    }
    if let Ok(page) = serde_json::from_slice::<Page<'_, Holder<'_>>>(data) {
        let labels = Arc::new(labels);
        for kind in [
            Kind::MutatingWebhooks,
            Kind::ValidatingWebhooks,
            Kind::ApiServices,
            Kind::Crds,
        ] {
            let bundles = Bundles {
                kind,
                rules: Arc::clone(rules()),
                labels: Arc::clone(&labels),
            };
            for object in &page.items {
                let _ = bundles.key(object);
                let _ = bundles.items(object);
            }
        }
    }
});
