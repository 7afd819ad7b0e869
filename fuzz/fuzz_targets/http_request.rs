//! Any bytes as what a client sends: a request head is parsed, found incomplete, or refused
//! with a status, and never read past its limit. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x509_certificate_exporter::http::request::{self, Parsed, MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    match request::parse(data) {
        Parsed::Complete(head, used) => {
            assert!(used <= data.len() && used <= MAX_HEAD);
            assert!(head.path.starts_with(['/', '*']));
            assert!(!(head.keep_alive && head.has_body));
        }
        Parsed::Bad(status) => assert!([400, 431, 505].contains(&status)),
        Parsed::Partial => assert!(data.len() < MAX_HEAD),
    }
});
