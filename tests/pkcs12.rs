//! PKCS#12 files made at test time by the real `openssl pkcs12 -export` (OpenSSL 3) and
//! Java's `keytool`, read back by `keystore::pkcs12::open`: every certificate byte for byte
//! (against `openssl x509 -outform DER` of the input), with its friendly name, for each
//! encryption and MAC the two tools write; wrong and missing passwords refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::TempDir;
use x509_certificate_exporter::keystore::{self, pkcs12, Entry, Format, Opened};

/// Runs `program` with `args` in `dir`; panics with its output when it fails, and with a
/// pointer to scripts/test-deps.sh when it is not installed.
fn run(dir: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program}: {e}: the PKCS#12 tests need it; run scripts/test-deps.sh")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a leaf it signed, made by `openssl` in a temporary directory, with the DER of
/// each for comparison.
struct Pki {
    dir: TempDir,
    ca: Vec<u8>,
    leaf: Vec<u8>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = TempDir::new(&format!("p12-{name}"));
        let openssl = |args: &str| run(&dir.0, "openssl", &args.split(' ').collect::<Vec<_>>());
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500";
        openssl(&format!(
            "req -x509 {ec} -keyout ca.key -out ca.pem -subj /CN=p12-CA"
        ));
        openssl(&format!(
            "req -new {ec} -keyout leaf.key -out leaf.csr -subj /CN=p12-leaf"
        ));
        openssl("x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -days 36500 -out leaf.pem");
        openssl("x509 -in ca.pem -outform DER -out ca.der");
        openssl("x509 -in leaf.pem -outform DER -out leaf.der");
        let ca = std::fs::read(dir.path("ca.der")).unwrap();
        let leaf = std::fs::read(dir.path("leaf.der")).unwrap();
        Pki { dir, ca, leaf }
    }

    /// `openssl pkcs12 -export` of the leaf (with its key unless `-nokeys` is among `args`)
    /// and `args`: the file's bytes.
    fn export(&self, args: &[&str]) -> Vec<u8> {
        let mut all = vec!["pkcs12", "-export", "-in", "leaf.pem", "-out", "out.p12"];
        if !args.contains(&"-nokeys") {
            all.extend(["-inkey", "leaf.key"]);
        }
        all.extend(args);
        run(&self.dir.0, "openssl", &all);
        let data = std::fs::read(self.dir.path("out.p12")).unwrap();
        assert_eq!(keystore::detect(&data), Some(Format::Pkcs12), "{args:?}");
        data
    }

    /// The leaf and CA entries [`CHAIN`] should give, leaf first.
    fn chain(&self) -> Vec<Entry> {
        vec![
            Entry {
                alias: "p12 leaf".into(),
                der: self.leaf.clone(),
            },
            Entry {
                alias: "p12 ca".into(),
                der: self.ca.clone(),
            },
        ]
    }
}

/// Export arguments for the leaf, its CA, their names and the password `pass`.
#[rustfmt::skip]
const CHAIN: [&str; 8] = [
    "-certfile", "ca.pem", "-name", "p12 leaf", "-caname", "p12 ca", "-passout", "pass:pass",
];

fn open(data: &[u8], passwords: &[&str]) -> Result<Opened, String> {
    let passwords: Vec<String> = passwords.iter().map(|p| p.to_string()).collect();
    pkcs12::open(data, &passwords)
}

/// Opens `data` with `passwords` and expects exactly `entries` and no error.
fn expect(data: &[u8], passwords: &[&str], entries: &[Entry], case: &str) {
    let opened = open(data, passwords).unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(opened.errors, Vec::<String>::new(), "{case}");
    assert_eq!(opened.entries, entries, "{case}");
}

#[test]
fn openssl_default_is_pbes2_aes256_with_a_sha256_mac() {
    let pki = Pki::new("default");
    let data = pki.export(&CHAIN);
    expect(&data, &["pass"], &pki.chain(), "default");
    // The right password after wrong ones.
    expect(&data, &["nope", "", "pass"], &pki.chain(), "third password");
}

/// `der` re-encoded as BER the way Windows and Java may write it: every constructed
/// element with an indefinite length, every OCTET STRING in chunks of 64 bytes, down to
/// (not into) OCTET STRINGs, so that the bytes the MAC covers do not change.
fn ber(mut der: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let [tag, first, rest @ ..] = der {
        let (len, rest) = match *first {
            n if n < 0x80 => (n as usize, rest),
            n => {
                let (bytes, rest) = rest.split_at((n & 0x7f) as usize);
                (bytes.iter().fold(0, |len, &b| len << 8 | b as usize), rest)
            }
        };
        let (content, rest) = rest.split_at(len);
        if *tag == 0x04 {
            out.extend([0x24, 0x80]);
            for chunk in content.chunks(64) {
                out.extend([0x04, chunk.len() as u8]);
                out.extend(chunk);
            }
            out.extend([0, 0]);
        } else if tag & 0x20 != 0 {
            out.extend([*tag, 0x80]);
            out.extend(ber(content));
            out.extend([0, 0]);
        } else {
            out.extend(&der[..der.len() - rest.len()]);
        }
        der = rest;
    }
    out
}

#[test]
fn ber_as_windows_and_java_may_write_it() {
    let pki = Pki::new("ber");
    for legacy in [&[][..], &["-legacy"]] {
        let data = ber(&pki.export(&[&CHAIN[..], legacy].concat()));
        assert!(pkcs12::looks_like(&data));
        expect(&data, &["pass"], &pki.chain(), "BER");
        let err = open(&data, &["wrong"]).unwrap_err();
        assert!(err.contains("wrong password"), "{err}");
    }
}

#[test]
fn openssl_legacy_is_rc2_40_and_3des_with_a_sha1_mac() {
    let pki = Pki::new("legacy");
    let data = pki.export(&[&CHAIN[..], &["-legacy"]].concat());
    expect(&data, &["pass"], &pki.chain(), "legacy");
}

#[test]
fn every_certificate_encryption_openssl_writes() {
    let pki = Pki::new("certpbe");
    for pbe in [
        "PBE-SHA1-3DES",
        "PBE-SHA1-2DES",
        "PBE-SHA1-RC2-128",
        "PBE-SHA1-RC2-40",
        "AES-128-CBC",
        "AES-192-CBC",
        "AES-256-CBC",
        "DES-EDE3-CBC",
    ] {
        let data = pki.export(&[&CHAIN[..], &["-legacy", "-certpbe", pbe]].concat());
        expect(&data, &["pass"], &pki.chain(), pbe);
    }
}

#[test]
fn every_mac_openssl_writes() {
    let pki = Pki::new("macalg");
    for mac in ["sha1", "sha224", "sha256", "sha384", "sha512"] {
        let data = pki.export(&[&CHAIN[..], &["-macalg", mac]].concat());
        expect(&data, &["pass"], &pki.chain(), mac);
        let err = open(&data, &["wrong"]).unwrap_err();
        assert!(err.contains("wrong password"), "{mac}: {err}");
    }
}

#[test]
fn no_encryption_and_no_mac_reads_with_any_password_or_none() {
    let pki = Pki::new("plain");
    let data = pki.export(&[
        "-certfile",
        "ca.pem",
        "-name",
        "p12 leaf",
        "-caname",
        "p12 ca",
        "-certpbe",
        "NONE",
        "-keypbe",
        "NONE",
        "-nomac",
        "-passout",
        "pass:",
    ]);
    expect(&data, &[], &pki.chain(), "no password given");
    expect(&data, &["whatever"], &pki.chain(), "a password given");
    // -nomac alone: the certificates in the clear, the key encrypted and never decrypted.
    let data = pki.export(&[&CHAIN[..], &["-nomac"]].concat());
    expect(&data, &[], &pki.chain(), "key encrypted, no password given");
}

#[test]
fn the_empty_password() {
    let pki = Pki::new("empty");
    for legacy in [&[][..], &["-legacy"]] {
        let args = [
            "-certfile",
            "ca.pem",
            "-name",
            "p12 leaf",
            "-caname",
            "p12 ca",
        ];
        let data = pki.export(&[&args[..], &["-passout", "pass:"], legacy].concat());
        expect(&data, &[], &pki.chain(), "no password given");
        expect(
            &data,
            &["not this one"],
            &pki.chain(),
            "a wrong one, then the empty one",
        );
    }
}

#[test]
fn certificates_only() {
    let pki = Pki::new("nokeys");
    let data = pki.export(&["-nokeys", "-certfile", "ca.pem", "-passout", "pass:pass"]);
    let opened = open(&data, &["pass"]).unwrap();
    assert_eq!(opened.errors, Vec::<String>::new());
    let ders: Vec<&[u8]> = opened.entries.iter().map(|e| e.der.as_slice()).collect();
    assert_eq!(ders, [&pki.leaf[..], &pki.ca[..]]);
}

#[test]
fn no_mac_picks_the_password_that_decrypts() {
    let pki = Pki::new("nomac");
    // With -nomac, OpenSSL leaves certificates in the clear unless -certpbe is given.
    for pbe in ["AES-256-CBC", "PBE-SHA1-RC2-40"] {
        let data = pki.export(&[&CHAIN[..], &["-nomac", "-legacy", "-certpbe", pbe]].concat());
        expect(&data, &["wrong", "pass"], &pki.chain(), "second password");
        let err = open(&data, &["wrong"]).unwrap_err();
        assert!(err.contains("wrong password"), "{err}");
    }
}

#[test]
fn wrong_and_missing_passwords_are_named() {
    let pki = Pki::new("wrong");
    let data = pki.export(&CHAIN);
    assert_eq!(
        open(&data, &["nope"]).unwrap_err(),
        "PKCS#12: wrong password (tried 1 password and the empty one)"
    );
    assert_eq!(
        open(&data, &["nope", "nope either"]).unwrap_err(),
        "PKCS#12: wrong password (tried 2 passwords and the empty one)"
    );
    assert_eq!(
        open(&data, &[]).unwrap_err(),
        "PKCS#12: wrong password (no password given; the empty one does not open it)"
    );
}

#[test]
fn an_iteration_count_over_the_cap_is_refused_before_any_work() {
    let pki = Pki::new("iter");
    let data = pki.export(&[&CHAIN[..], &["-iter", "1000001"]].concat());
    let started = Instant::now();
    let err = open(&data, &["pass"]).unwrap_err();
    assert!(err.contains("1000001") && err.contains("1000000"), "{err}");
    assert!(
        started.elapsed().as_millis() < 100,
        "{:?}",
        started.elapsed()
    );
}

/// `keytool` with the JDK's defaults and two of its system properties: a private-key entry
/// (its self-signed certificate) and a trusted-certificate entry come back with their
/// aliases, the one in Cyrillic included.
#[test]
fn keytool_stores() {
    let pki = Pki::new("keytool");
    let dir = &pki.dir.0;
    let cases: [(&str, &[&str]); 3] = [
        ("defaults", &[]),
        (
            "PBKDF2-HMAC-SHA1 and AES-128, HMAC-SHA1 MAC",
            &[
                "-J-Dkeystore.pkcs12.certProtectionAlgorithm=PBEWithHmacSHA1AndAES_128",
                "-J-Dkeystore.pkcs12.macAlgorithm=HmacPBESHA1",
            ],
        ),
        ("legacy", &["-J-Dkeystore.pkcs12.legacy"]),
    ];
    for (case, props) in cases {
        let _ = std::fs::remove_file(pki.dir.path("ks.p12"));
        let store = [
            "-storetype",
            "PKCS12",
            "-keystore",
            "ks.p12",
            "-storepass",
            "changeit",
        ];
        let keytool = |args: &[&str]| run(dir, "keytool", &[props, args, &store[..]].concat());
        keytool(&[
            "-genkeypair",
            "-alias",
            "server",
            "-keyalg",
            "EC",
            "-dname",
            "CN=server",
            "-validity",
            "36500",
        ]);
        keytool(&[
            "-importcert",
            "-noprompt",
            "-alias",
            "корень",
            "-file",
            "ca.pem",
        ]);
        keytool(&["-exportcert", "-alias", "server", "-file", "server.der"]);
        let server = std::fs::read(pki.dir.path("server.der")).unwrap();
        let data = std::fs::read(pki.dir.path("ks.p12")).unwrap();
        assert_eq!(keystore::detect(&data), Some(Format::Pkcs12), "{case}");
        let mut opened = open(&data, &["changeit"]).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(opened.errors, Vec::<String>::new(), "{case}");
        opened.entries.sort_by(|a, b| a.alias.cmp(&b.alias));
        let want = [
            Entry {
                alias: "server".into(),
                der: server,
            },
            Entry {
                alias: "корень".into(),
                der: pki.ca.clone(),
            },
        ];
        assert_eq!(opened.entries, want, "{case}");
        let err = open(&data, &[]).unwrap_err();
        assert!(err.contains("wrong password"), "{case}: {err}");
    }
}

/// Whatever the tool, only the first bytes decide: certificates, PEM text and Java
/// keystores are not PKCS#12.
#[test]
fn only_pfx_looks_like_pkcs12() {
    let pki = Pki::new("looks");
    let read = |name: &str| std::fs::read(pki.dir.path(name)).unwrap();
    let openssl = |args: &str| run(&pki.dir.0, "openssl", &args.split(' ').collect::<Vec<_>>());
    assert!(!pkcs12::looks_like(&pki.ca));
    assert!(!pkcs12::looks_like(&read("ca.pem")));
    // A CRL, DER: a SEQUENCE whose first element is a SEQUENCE too.
    let config = "[ca]\ndefault_ca = x\n[x]\ndatabase = index.txt\ndefault_md = sha256\n";
    pki.dir
        .write("ca.cnf", format!("{config}default_crl_days = 30\n"));
    pki.dir.write("index.txt", "");
    openssl("ca -gencrl -config ca.cnf -keyfile ca.key -cert ca.pem -out crl.pem");
    openssl("crl -in crl.pem -outform DER -out crl.der");
    assert!(!pkcs12::looks_like(&read("crl.der")));
    let jks = [
        "-importcert",
        "-noprompt",
        "-storetype",
        "JKS",
        "-keystore",
        "ks.jks",
        "-storepass",
        "changeit",
        "-alias",
        "ca",
        "-file",
        "ca.pem",
    ];
    run(&pki.dir.0, "keytool", &jks);
    let jks = std::fs::read(pki.dir.path("ks.jks")).unwrap();
    assert!(!pkcs12::looks_like(&jks));
    assert_eq!(keystore::detect(&jks), Some(Format::Jks));
}
