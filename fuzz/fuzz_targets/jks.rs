//! Any bytes as a Java keystore (JKS, JCEKS): never a panic, with or without a password,
//! and a password never changes which certificates are read, only whether the store is
//! accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x509_certificate_exporter::keystore::jks;

fuzz_target!(|data: &[u8]| {
    let unchecked = jks::open(data, &[]);
    let checked = jks::open(data, &["changeit".to_string()]);
    match (&unchecked, &checked) {
        (Ok(read), Ok(verified)) => assert_eq!(
            read.entries, verified.entries,
            "the password changed the certificates read"
        ),
        (Ok(_), Err(why)) => assert!(why.contains("wrong password"), "{why}"),
        (Err(a), Err(b)) => assert_eq!(a, b, "the password changed why the header failed"),
        (Err(why), Ok(_)) => panic!("read with a password only: {why}"),
    }
});
