//! Any text as a `-f`/`-d` glob, and as a component pattern against a name (the first line
//! is the pattern, the rest the name). Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x509_certificate_exporter::glob::{component_matches, Pattern};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pattern) = Pattern::new(text) {
        if pattern.is_literal() && !text.contains('\\') {
            assert!(!text.contains(['*', '?', '[']), "a wildcard taken as a literal");
        }
    }
    let (part, name) = text.split_once('\n').unwrap_or((text, ""));
    if let Ok(matched) = component_matches(part, name) {
        if !part.contains(['*', '?', '[', '\\']) {
            assert_eq!(matched, part == name, "a literal matches only itself");
        }
    }
});
