//! Any bytes as a kubeconfig (`-k`): YAML that may be anything, embedded base64 that may be
//! anything. Never a panic; a kubeconfig that yields nothing says why.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use x509_certificate_exporter::glob::Pattern;
use x509_certificate_exporter::kubeconfig::KubeconfigSource;
use x509_certificate_exporter::labels::LabelConfig;

fuzz_target!(|data: &[u8]| {
    let pattern = Pattern::new("/nonexistent/kubeconfig").expect("a literal pattern");
    let source = KubeconfigSource::new(pattern, Arc::new(LabelConfig::default()));
    let item = source.parse_bytes(Path::new("/nonexistent/kubeconfig"), data);
    assert!(
        !item.series.is_empty() || !item.errors.is_empty(),
        "a kubeconfig with no certificate and no error"
    );
});
