//! Any argument vector (NUL-separated, not necessarily UTF-8): parsed, or refused with a
//! message. Never a panic.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;
use x509_certificate_exporter::cli;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect();
    if let Err(message) = cli::parse(args) {
        assert!(!message.is_empty());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cli::parse_duration(text);
    }
});
