//! `--expose-cert-info` and `--leaf-only` end to end: certificates written by `openssl` at
//! test time (RSA 1024 to 4096, P-256, P-384, Ed25519; SHA-1, SHA-256 and SHA-384
//! signatures; a chain of three; one with a thousand names), read by the real binary from a
//! directory and scraped over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

/// The label names `x509_cert_info` adds to a certificate's own.
const FACT_LABELS: [&str; 7] = [
    "key_algorithm",
    "key_size",
    "key_curve",
    "signature_algorithm",
    "ca",
    "chain_position",
    "subject_alt_names",
];

/// Runs `openssl` in `dir`; it must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e}: run scripts/test-deps.sh"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory of keys and certificates made by `openssl`, named by their stem.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new(name: &str) -> Self {
        Self {
            dir: TempDir::new(name),
        }
    }

    /// A private key: `rsa:BITS`, `ec:CURVE` or `ed25519`.
    fn key(&self, name: &str, kind: &str) {
        let out = format!("{name}.key");
        let mut args = vec!["genpkey", "-out", &out];
        let (algorithm, option);
        match kind.split_once(':') {
            Some(("rsa", bits)) => {
                algorithm = "RSA";
                option = format!("rsa_keygen_bits:{bits}");
            }
            Some(("ec", curve)) => {
                algorithm = "EC";
                option = format!("ec_paramgen_curve:{curve}");
            }
            _ => {
                algorithm = kind;
                option = String::new();
            }
        }
        args.extend(["-algorithm", algorithm]);
        if !option.is_empty() {
            args.extend(["-pkeyopt", &option]);
        }
        openssl(self.dir.path("").as_path(), &args);
    }

    /// The certificate `name.pem` for the key `name.key`, signed by `issuer` (itself when
    /// `None`) with `digest` (empty for Ed25519), with `extensions` (config lines; none
    /// makes a version 1 certificate) and serial `serial`.
    fn cert(&self, name: &str, issuer: Option<&str>, digest: &str, extensions: &str, serial: u32) {
        let dir = self.dir.path("");
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let subject = format!("/O=Facts/CN={name}");
        openssl(
            &dir,
            &["req", "-new", "-key", &key, "-subj", &subject, "-out", &csr],
        );
        let serial = serial.to_string();
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-out",
            &pem,
            "-days",
            "3650",
            "-set_serial",
            &serial,
        ];
        let (ca, ca_key) = issuer.map_or((String::new(), String::new()), |issuer| {
            (format!("{issuer}.pem"), format!("{issuer}.key"))
        });
        match issuer {
            Some(_) => args.extend(["-CA", &ca, "-CAkey", &ca_key]),
            None => args.extend(["-signkey", &key]),
        }
        if !digest.is_empty() {
            args.push(digest);
        }
        if !extensions.is_empty() {
            self.dir.write(&ext, extensions);
            args.extend(["-extfile", &ext]);
        }
        openssl(&dir, &args);
    }

    fn pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path(&format!("{name}.pem"))).unwrap()
    }
}

const CA: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
const LEAF: &str = "basicConstraints=critical,CA:FALSE\n";

/// Every certificate of the tests, in `pki`, and the files the exporter reads in `certs/`:
/// chain.pem (leaf, intermediate, root, in server order), bundle.pem (intermediate and
/// root), leaf-2048.pem (alone, its issuer elsewhere), old-1024.pem (self-signed, version
/// 1, SHA-1), ed25519.pem (a self-signed CA) and many-sans.pem.
fn make_pki() -> Pki {
    let pki = Pki::new("cert-info");
    pki.key("root", "rsa:4096");
    pki.cert("root", None, "-sha256", CA, 1);
    pki.key("inter", "ec:P-384");
    pki.cert("inter", Some("root"), "-sha256", CA, 2);
    pki.key("leaf", "ec:P-256");
    let sans = "subjectAltName=DNS:www.example.com,IP:10.0.0.1,IP:2001:db8::1,\
                email:ops@example.com,URI:spiffe://example.com/web\n";
    pki.cert(
        "leaf",
        Some("inter"),
        "-sha384",
        &format!("{LEAF}{sans}"),
        3,
    );
    pki.key("leaf-2048", "rsa:2048");
    pki.cert("leaf-2048", Some("root"), "-sha256", LEAF, 4);
    pki.key("old-1024", "rsa:1024");
    pki.cert("old-1024", None, "-sha1", "", 5);
    pki.key("ed25519", "ed25519");
    pki.cert("ed25519", None, "", CA, 6);
    pki.key("many-sans", "ec:P-256");
    let names: Vec<String> = (0..1000)
        .map(|i| format!("DNS:host-{i:04}.example.com"))
        .collect();
    let many = format!("{LEAF}subjectAltName={}\n", names.join(","));
    pki.cert("many-sans", Some("inter"), "-sha256", &many, 7);

    let chain = [pki.pem("leaf"), pki.pem("inter"), pki.pem("root")].concat();
    pki.dir.write("certs/chain.pem", chain);
    pki.dir.write(
        "certs/bundle.pem",
        [pki.pem("inter"), pki.pem("root")].concat(),
    );
    for name in ["leaf-2048", "old-1024", "ed25519", "many-sans"] {
        pki.dir.write(&format!("certs/{name}.pem"), pki.pem(name));
    }
    pki
}

/// The labels of a sample without the fact labels.
fn identity(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut identity = labels.clone();
    identity.retain(|name, _| !FACT_LABELS.contains(&name.as_str()));
    identity
}

fn facts<'a>(metrics: &'a Metrics, file: &str, cn: &str) -> &'a BTreeMap<String, String> {
    &metrics
        .one("x509_cert_info", &[("filename", file), ("subject_CN", cn)])
        .labels
}

fn fact<'a>(labels: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    labels.get(name).map(String::as_str)
}

#[test]
fn each_certificate_says_what_it_is_and_where_it_sits() {
    let pki = make_pki();
    let dir = pki.dir.str("certs");
    let exporter = Exporter::start(&["-d", &dir, "--expose-cert-info"]);
    let metrics = exporter.metrics();
    promtool_accepts(&metrics.body);

    // Each info series is a not_after series plus the facts: they join one to one.
    let not_after: Vec<_> = metrics
        .named("x509_cert_not_after")
        .map(|s| &s.labels)
        .collect();
    let info: Vec<_> = metrics.named("x509_cert_info").collect();
    assert_eq!(
        info.len(),
        not_after.len(),
        "one info series per certificate"
    );
    for sample in &info {
        assert_eq!(sample.value, 1.0);
        let found = not_after
            .iter()
            .filter(|l| ***l == identity(&sample.labels));
        assert_eq!(found.count(), 1, "joins one not_after: {:?}", sample.labels);
    }

    let leaf = facts(&metrics, "chain.pem", "leaf");
    let expect = |labels: &BTreeMap<String, String>, want: &[(&str, &str)]| {
        for (name, value) in want {
            assert_eq!(fact(labels, name), Some(*value), "{name} of {labels:?}");
        }
    };
    expect(
        leaf,
        &[
            ("key_algorithm", "ecdsa"),
            ("key_size", "256"),
            ("key_curve", "P-256"),
            ("signature_algorithm", "ecdsa-sha384"),
            ("ca", "false"),
            ("chain_position", "leaf"),
            (
                "subject_alt_names",
                "DNS:www.example.com,IP:10.0.0.1,IP:2001:db8::1,email:ops@example.com,URI:spiffe://example.com/web",
            ),
        ],
    );
    let inter = facts(&metrics, "chain.pem", "inter");
    expect(
        inter,
        &[
            ("key_algorithm", "ecdsa"),
            ("key_size", "384"),
            ("key_curve", "P-384"),
            ("signature_algorithm", "sha256-rsa"),
            ("ca", "true"),
            ("chain_position", "intermediate"),
        ],
    );
    assert_eq!(fact(inter, "subject_alt_names"), None, "no SAN, no label");
    let root = facts(&metrics, "chain.pem", "root");
    expect(
        root,
        &[
            ("key_algorithm", "rsa"),
            ("key_size", "4096"),
            ("signature_algorithm", "sha256-rsa"),
            ("ca", "true"),
            ("chain_position", "root"),
        ],
    );
    assert_eq!(fact(root, "key_curve"), None, "an RSA key has no curve");
    // The same certificates in a bundle without their leaf keep their places.
    expect(
        facts(&metrics, "bundle.pem", "inter"),
        &[("chain_position", "intermediate")],
    );
    expect(
        facts(&metrics, "bundle.pem", "root"),
        &[("chain_position", "root")],
    );
    expect(
        facts(&metrics, "leaf-2048.pem", "leaf-2048"),
        &[
            ("key_algorithm", "rsa"),
            ("key_size", "2048"),
            ("chain_position", "leaf"),
        ],
    );
    expect(
        facts(&metrics, "old-1024.pem", "old-1024"),
        &[
            ("key_algorithm", "rsa"),
            ("key_size", "1024"),
            ("signature_algorithm", "sha1-rsa"),
            ("ca", "false"),
            ("chain_position", "self-signed"),
        ],
    );
    expect(
        facts(&metrics, "ed25519.pem", "ed25519"),
        &[
            ("key_algorithm", "ed25519"),
            ("key_size", "256"),
            ("signature_algorithm", "ed25519"),
            ("ca", "true"),
            ("chain_position", "root"),
        ],
    );

    // A thousand names: cut to the documented length at a name's end, the rest counted.
    let sans = fact(
        facts(&metrics, "many-sans.pem", "many-sans"),
        "subject_alt_names",
    )
    .unwrap()
    .to_string();
    assert!(sans.len() <= 1024, "{} bytes", sans.len());
    let (listed, more) = sans.rsplit_once(",+").unwrap();
    let more: usize = more.strip_suffix(" more").unwrap().parse().unwrap();
    let listed: Vec<&str> = listed.split(',').collect();
    assert_eq!(listed.len() + more, 1000, "every name listed or counted");
    for (i, name) in listed.iter().enumerate() {
        assert_eq!(
            *name,
            format!("DNS:host-{i:04}.example.com"),
            "in order, whole"
        );
    }
    assert!(
        sans.len() > 1024 - 40,
        "the room is used: {} bytes",
        sans.len()
    );
}

#[test]
fn without_the_flag_there_is_no_info_and_nothing_else_changes() {
    let pki = make_pki();
    let dir = pki.dir.str("certs");
    let plain = Exporter::start(&["-d", &dir]).metrics();
    assert_eq!(plain.count("x509_cert_info"), 0);
    let with = Exporter::start(&["-d", &dir, "--expose-cert-info"]).metrics();
    for family in [
        "x509_cert_not_after",
        "x509_cert_not_before",
        "x509_cert_expired",
    ] {
        let labels = |m: &Metrics| {
            let mut all: Vec<_> = m.named(family).map(|s| s.labels.clone()).collect();
            all.sort();
            all
        };
        assert_eq!(labels(&plain), labels(&with), "{family} is unchanged");
    }
    // -l narrows the identifying labels of x509_cert_info as everywhere, not its facts.
    let narrow = Exporter::start(&[
        "-d",
        &dir,
        "--expose-cert-info",
        "-l",
        "subject_CN,serial_number",
    ])
    .metrics();
    let sample = narrow.one("x509_cert_info", &[("subject_CN", "old-1024")]);
    assert_eq!(fact(&sample.labels, "key_size"), Some("1024"));
    assert_eq!(
        fact(&sample.labels, "subject_O"),
        None,
        "-l applies to the rest"
    );
}

#[test]
fn leaf_only_keeps_the_leaves_and_whole_bundles_without_one() {
    let pki = make_pki();
    let dir = pki.dir.str("certs");
    let metrics = Exporter::start(&["-d", &dir, "--leaf-only"]).metrics();
    let subjects = |file: &str| {
        let mut cns: Vec<String> = metrics
            .find("x509_cert_not_after", &[("filename", file)])
            .iter()
            .map(|s| s.labels["subject_CN"].clone())
            .collect();
        cns.sort();
        cns
    };
    assert_eq!(
        subjects("chain.pem"),
        ["leaf"],
        "the chain behind a leaf is dropped"
    );
    assert_eq!(
        subjects("bundle.pem"),
        ["inter", "root"],
        "a file of CAs alone keeps them all"
    );
    assert_eq!(subjects("ed25519.pem"), ["ed25519"], "a root alone is kept");
    assert_eq!(
        subjects("old-1024.pem"),
        ["old-1024"],
        "self-signed counts as a leaf"
    );
    assert_eq!(subjects("leaf-2048.pem"), ["leaf-2048"]);
    assert_eq!(metrics.count("x509_cert_not_after"), 7);

    // The same on a chain written root first.
    pki.dir.write(
        "certs/reversed.pem",
        [pki.pem("root"), pki.pem("inter"), pki.pem("leaf")].concat(),
    );
    let metrics = Exporter::start(&["-d", &dir, "--leaf-only"]).metrics();
    let reversed: Vec<_> = metrics
        .find("x509_cert_not_after", &[("filename", "reversed.pem")])
        .iter()
        .map(|s| s.labels["subject_CN"].clone())
        .collect();
    assert_eq!(reversed, ["leaf"], "order does not matter");
}
