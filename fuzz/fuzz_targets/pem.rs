//! Any bytes as a certificate file: PEM blocks, DER, or garbage. Never a panic; every
//! certificate found has been fully decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x509_certificate_exporter::pem;

fuzz_target!(|data: &[u8]| {
    let parsed = pem::parse_certificates(data);
    for cert in &parsed.certs {
        assert!(!cert.serial.is_empty(), "a certificate without a serial");
    }
    // Whatever is found in a buffer is found again in the same buffer.
    assert_eq!(pem::parse_certificates(data).certs.len(), parsed.certs.len());
    let _ = pem::decode_base64(data);
});
