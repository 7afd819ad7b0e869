//! Any bytes as the body of a Kubernetes LIST of Secrets or ConfigMaps: decoded as the client
//! decodes a page, then every object filtered and read as the exporter reads it.
#![no_main]

use std::ffi::OsString;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use x509_certificate_exporter::cli::{self, Command};
use x509_certificate_exporter::kube::secrets::{Kind, Page, Rules};
use x509_certificate_exporter::labels::LabelConfig;

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let args = [
            "--watch-kube-secrets",
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
            Ok(Command::Run(config)) => Rules::new(config.kube.expect("Kubernetes flags").source),
            _ => unreachable!("the flags above are valid"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(page) = serde_json::from_slice::<Page<'_>>(data) else {
        return;
    };
    let labels = LabelConfig::default();
    for kind in [Kind::Secret, Kind::ConfigMap] {
        for object in &page.items {
            if rules().keep(kind, object) {
                let _ = rules().items(kind, object, &labels);
            }
            let _ = rules().keep_namespace(object);
        }
    }
});
