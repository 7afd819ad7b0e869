//! Any bytes as a PKCS#12 file, opened with the password "pass" (the seeds' own): never a
//! panic, never a hang (iteration counts are capped before any work), and no certificate
//! longer than the file it came from (nothing is made up from a length field).
#![no_main]

use libfuzzer_sys::fuzz_target;
use x509_certificate_exporter::keystore::pkcs12;

fuzz_target!(|data: &[u8]| {
    let _ = pkcs12::looks_like(data);
    if let Ok(opened) = pkcs12::open(data, &["pass".to_string()]) {
        for entry in &opened.entries {
            assert!(
                entry.der.len() <= data.len(),
                "a certificate longer than the file it came from"
            );
        }
    }
});
