//! Java keystores made at test time by the JDK's own keytool (JKS and JCEKS, a private key
//! with chains of one and two, trusted certificates, secret keys between them), read by
//! `keystore::jks`, each certificate compared with what `keytool -exportcert` or openssl
//! says it is. keytool is required: a machine without it fails, it does not skip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use x509_certificate_exporter::keystore::{self, Entry, Format, Opened};

const PASS: &str = "changeit";

/// A directory under the system's temporary directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("x509e-jks-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// Runs keytool in this directory with `args` (split at spaces); panics with its
    /// output when it fails.
    fn keytool(&self, args: &str) {
        let out = Command::new("keytool")
            .args(args.split_whitespace())
            .current_dir(&self.0)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "keytool (Java 17, Debian package openjdk-17-jre-headless) is needed by \
                     the tests: run scripts/test-deps.sh ({e})"
                )
            });
        assert!(
            out.status.success(),
            "keytool {args}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new EC key pair and self-signed certificate `alias` in `store`.
    fn genkeypair(&self, store: &str, storetype: &str, alias: &str, extra: &str) {
        self.keytool(&format!(
            "-genkeypair -alias {alias} -keyalg EC -groupname secp256r1 -dname CN={alias} \
             -validity 3650 -keystore {store} -storetype {storetype} -storepass {PASS} {extra}"
        ));
    }

    /// The DER `keytool -exportcert` writes for `alias` (for a key pair, its leaf).
    fn export(&self, store: &str, storetype: &str, alias: &str) -> Vec<u8> {
        let file = format!("{alias}.exported.der");
        self.keytool(&format!(
            "-exportcert -alias {alias} -keystore {store} -storetype {storetype} \
             -storepass {PASS} -file {file}"
        ));
        self.read(&file)
    }

    fn import_trusted(&self, store: &str, storetype: &str, alias: &str, file: &str) {
        self.keytool(&format!(
            "-importcert -noprompt -alias {alias} -file {file} -keystore {store} \
             -storetype {storetype} -storepass {PASS}"
        ));
    }

    /// Has `ca` (a key pair in `ca.p12`) sign the request of `alias` in `store`, imports
    /// the reply (keytool completes the chain from the store's trusted certificates) and
    /// returns the signed certificate as openssl converts keytool's PEM to DER.
    fn sign_with_ca(&self, store: &str, storetype: &str, alias: &str) -> Vec<u8> {
        let csr = format!("{alias}.csr");
        let pem = format!("{alias}.signed.pem");
        let der = format!("{alias}.signed.der");
        self.keytool(&format!(
            "-certreq -alias {alias} -keystore {store} -storetype {storetype} \
             -storepass {PASS} -file {csr}"
        ));
        self.keytool(&format!(
            "-gencert -rfc -alias ca -keystore ca.p12 -storepass {PASS} -validity 3650 \
             -infile {csr} -outfile {pem}"
        ));
        self.keytool(&format!(
            "-importcert -alias {alias} -file {pem} -keystore {store} \
             -storetype {storetype} -storepass {PASS}"
        ));
        let out = Command::new("openssl")
            .args(["x509", "-in", &pem, "-outform", "DER", "-out", &der])
            .current_dir(&self.0)
            .output()
            .expect("openssl is needed by the tests (scripts/test-deps.sh)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.read(&der)
    }

    /// A CA key pair in `ca.p12`; returns its certificate's file name.
    fn make_ca(&self) -> &'static str {
        self.genkeypair("ca.p12", "PKCS12", "ca", "-ext bc:c");
        self.export("ca.p12", "PKCS12", "ca");
        "ca.exported.der"
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn passwords(given: &[&str]) -> Vec<String> {
    given.iter().map(|p| p.to_string()).collect()
}

/// The certificates of `alias`, in keystore order.
fn of<'a>(opened: &'a Opened, alias: &str) -> Vec<&'a [u8]> {
    opened
        .entries
        .iter()
        .filter(|e| e.alias == alias)
        .map(|e| e.der.as_slice())
        .collect()
}

/// Reads `data` as `format` with no password, the right one, a wrong one first and then
/// the right one, and wrong ones only; returns the first reading.
fn read_every_way(data: &[u8], format: Format) -> Opened {
    assert_eq!(keystore::detect(data), Some(format));
    let opened = keystore::open(format, data, &[]).unwrap();
    assert!(opened.errors.is_empty(), "{:?}", opened.errors);
    for given in [&[PASS][..], &["wrong", PASS][..]] {
        let checked = keystore::open(format, data, &passwords(given)).unwrap();
        assert_eq!(checked, opened, "with {given:?}");
    }
    let err = keystore::open(format, data, &passwords(&["wrong", "Changeit"])).unwrap_err();
    assert_eq!(
        err,
        format!(
            "{}: wrong password: the integrity digest matches none of the 2 given nor the \
             empty password",
            format.name()
        )
    );
    opened
}

#[test]
fn jks_with_a_private_key_and_a_trusted_certificate() {
    let dir = Dir::new("simple");
    dir.genkeypair("simple.jks", "JKS", "server", "");
    dir.genkeypair("other.p12", "PKCS12", "other", "");
    let other = dir.export("other.p12", "PKCS12", "other");
    dir.import_trusted("simple.jks", "JKS", "trusted-other", "other.exported.der");
    let server = dir.export("simple.jks", "JKS", "server");

    let data = dir.read("simple.jks");
    assert_eq!(
        data[..8],
        [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2],
        "JKS version 2"
    );
    let opened = read_every_way(&data, Format::Jks);
    assert_eq!(opened.entries.len(), 2, "{:?}", opened.entries);
    assert_eq!(of(&opened, "server"), [&server[..]]);
    assert_eq!(of(&opened, "trusted-other"), [&other[..]]);
}

#[test]
fn jks_with_a_chain_of_two() {
    let dir = Dir::new("chain");
    let ca_file = dir.make_ca();
    let ca = dir.read(ca_file);
    dir.import_trusted("chain.jks", "JKS", "root", ca_file);
    dir.genkeypair("chain.jks", "JKS", "leaf", "");
    let signed = dir.sign_with_ca("chain.jks", "JKS", "leaf");
    assert_eq!(dir.export("chain.jks", "JKS", "leaf"), signed);

    let opened = read_every_way(&dir.read("chain.jks"), Format::Jks);
    assert_eq!(opened.entries.len(), 3, "{:?}", opened.entries);
    assert_eq!(
        of(&opened, "leaf"),
        [&signed[..], &ca[..]],
        "leaf first, then its CA"
    );
    assert_eq!(of(&opened, "root"), [&ca[..]]);
}

#[test]
fn jceks_with_secret_keys_between_certificates() {
    let dir = Dir::new("jceks");
    let store = "mixed.jceks";
    let ca_file = dir.make_ca();
    let ca = dir.read(ca_file);
    dir.import_trusted(store, "JCEKS", "root", ca_file);
    dir.genkeypair(store, "JCEKS", "leaf", "");
    let signed = dir.sign_with_ca(store, "JCEKS", "leaf");
    dir.genkeypair(store, "JCEKS", "alone", "");
    for (alias, alg, size) in [("aes", "AES", "128"), ("hmac", "HmacSHA256", "256")] {
        dir.keytool(&format!(
            "-genseckey -alias {alias} -keyalg {alg} -keysize {size} -keystore {store} \
             -storetype JCEKS -storepass {PASS}"
        ));
    }
    let alone = dir.export(store, "JCEKS", "alone");
    let data = dir.read(store);

    // keytool writes entries in its hash table's order: the test needs a certificate after
    // a secret key, found by where the bytes are.
    let first_secret = data
        .windows(4)
        .position(|w| w == [0xAC, 0xED, 0x00, 0x05])
        .expect("a serialized secret key");
    let after = [&signed, &ca, &alone].into_iter().any(|der| {
        data[first_secret..]
            .windows(der.len())
            .any(|w| w == &der[..])
    });
    assert!(
        after,
        "keytool wrote no certificate after a secret key: pick other aliases"
    );

    let opened = read_every_way(&data, Format::Jceks);
    assert_eq!(opened.entries.len(), 4, "{:?}", opened.entries);
    assert_eq!(of(&opened, "leaf"), [&signed[..], &ca[..]]);
    assert_eq!(of(&opened, "root"), [&ca[..]]);
    assert_eq!(of(&opened, "alone"), [&alone[..]]);
    assert!(opened
        .entries
        .iter()
        .all(|Entry { alias, .. }| alias != "aes" && alias != "hmac"));
}

#[test]
fn a_keytool_store_cut_short_keeps_the_certificates_before_the_cut() {
    let dir = Dir::new("cut");
    dir.genkeypair("cut.jks", "JKS", "first", "");
    dir.genkeypair("cut.jks", "JKS", "second", "");
    let data = dir.read("cut.jks");
    let whole = keystore::open(Format::Jks, &data, &[]).unwrap();
    assert_eq!(whole.entries.len(), 2);
    let last = &whole.entries[1].der;
    let cut = data
        .windows(last.len())
        .position(|w| w == &last[..])
        .unwrap()
        + 10;
    let opened = keystore::open(Format::Jks, &data[..cut], &passwords(&[PASS])).unwrap();
    assert_eq!(opened.entries, whole.entries[..1]);
    assert!(
        opened.errors[0].starts_with(&format!(
            "JKS: the rest of the keystore could not be read after entry 1 (alias {:?}): \
             entry 2 (alias {:?}): certificate 1 of 1 in the chain: truncated at byte",
            whole.entries[0].alias, whole.entries[1].alias
        )),
        "{:?}",
        opened.errors
    );
}
