//! Any bytes as a certificate file: PEM blocks, DER, a keystore, or garbage. Never a
//! panic, and the one-pass reader never disagrees with the block-by-block one: where it
//! answers, both find the same certificates and CRLs (serial, fingerprint, dates, names)
//! and the slow one no error, so a certificate, a CRL or an error cannot vanish by taking
//! the fast path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x509_certificate_exporter::pem;

fuzz_target!(|data: &[u8]| {
    let parsed = pem::parse_certificates(data, &[], true);
    if let Some((straight, blocks)) = pem::both_paths(data, true) {
        assert_eq!(
            straight.certs, blocks.certs,
            "the two paths found different certificates"
        );
        assert_eq!(
            straight.crls, blocks.crls,
            "the two paths found different CRLs"
        );
        assert!(
            blocks.errors.is_empty(),
            "the one-pass reader answered where block by block failed: {:?}",
            blocks.errors
        );
        assert!(
            blocks.had_pem,
            "the one-pass reader answered without a PEM block"
        );
        assert_eq!(parsed.crls, straight.crls, "CRLs off the fast path");
        assert_eq!(
            parsed.certs, straight.certs,
            "parse_certificates did not take the fast path"
        );
    }
    let _ = pem::decode_base64(data);
});
