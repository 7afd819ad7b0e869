//! Keystores and CRLs end to end: PKCS#12 written by OpenSSL (its default PBES2 and
//! `-legacy`) and by Java, JKS and JCEKS written by `keytool`, CRLs written by `openssl ca`,
//! all made at test time, read by the real binary from a directory, a glob and a named
//! file, and from Secret keys on the real API server with their passwords where operators
//! keep them; scraped over HTTP and linted by promtool.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::cluster::cluster;
use common::*;

/// Runs a tool the tests need, in `dir`; a missing tool says how to get it.
fn run(dir: &Path, tool: &str, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}: run scripts/test-deps.sh"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a leaf it signed, and what OpenSSL and keytool make of them, in one directory.
struct Pki {
    dir: TempDir,
}

/// The serials `openssl` gives the CA and the leaf.
const CA_SERIAL: &str = "4096";
const LEAF_SERIAL: &str = "4660";

impl Pki {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(name);
        let d = dir.path("");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/O=Acme/CN=Acme Keystore CA",
            "-days",
            "3650",
            "-set_serial",
            CA_SERIAL,
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "basicConstraints=critical,CA:true",
        ]);
        run(&d, "openssl", &ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/O=Acme/CN=leaf.example",
        ]);
        run(&d, "openssl", &csr);
        run(
            &d,
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                LEAF_SERIAL,
                "-days",
                "365",
                "-out",
                "leaf.pem",
            ],
        );
        dir.write(
            "ca.cnf",
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
             default_md = sha256\ndefault_crl_days = 30\n",
        );
        dir.write("index.txt", "");
        dir.write("crlnumber", "1000\n");
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.str(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path(name)).unwrap()
    }

    /// `openssl pkcs12 -export` of the leaf, its key and the CA, with `extra` options.
    fn pkcs12(&self, out: &str, password: &str, extra: &[&str]) -> Vec<u8> {
        let pass = format!("pass:{password}");
        let mut args = vec![
            "pkcs12",
            "-export",
            "-in",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-certfile",
            "ca.pem",
            "-name",
            "leaf",
            "-caname",
            "acme-ca",
            "-passout",
            &pass,
            "-out",
            out,
        ];
        args.extend(extra);
        run(&self.dir.path(""), "openssl", &args);
        self.read(out)
    }

    /// A keytool store of `kind` (JKS, JCEKS, PKCS12) holding a key pair of its own
    /// (`server`, CN `kind.example`) and the CA as a trusted entry (`acme-ca`); JCEKS also
    /// gets a secret key between the two.
    fn keytool(&self, out: &str, kind: &str, password: &str) -> Vec<u8> {
        let d = self.dir.path("");
        let cn = format!("CN={}.example,O=Acme", kind.to_lowercase());
        let store = ["-storetype", kind, "-keystore", out, "-storepass", password];
        let mut pair = vec![
            "-genkeypair",
            "-alias",
            "server",
            "-keyalg",
            "EC",
            "-groupname",
            "secp256r1",
            "-dname",
            &cn,
            "-validity",
            "3650",
            "-keypass",
            password,
        ];
        pair.extend(store);
        run(&d, "keytool", &pair);
        if kind == "JCEKS" {
            let mut secret = vec![
                "-genseckey",
                "-alias",
                "aes",
                "-keyalg",
                "AES",
                "-keysize",
                "128",
                "-keypass",
                password,
            ];
            secret.extend(store);
            run(&d, "keytool", &secret);
        }
        let mut trusted = vec![
            "-importcert",
            "-noprompt",
            "-alias",
            "acme-ca",
            "-file",
            "ca.pem",
        ];
        trusted.extend(store);
        run(&d, "keytool", &trusted);
        self.read(out)
    }

    /// A CRL of the CA (DER), current or long stale, with the next CRL number.
    fn crl(&self, out: &str, stale: bool) -> Vec<u8> {
        let pem = format!("{out}.pem");
        let mut args = vec![
            "ca", "-config", "ca.cnf", "-gencrl", "-keyfile", "ca.key", "-cert", "ca.pem", "-out",
            &pem,
        ];
        if stale {
            args.extend([
                "-crl_lastupdate",
                "20000101000000Z",
                "-crl_nextupdate",
                "20000102000000Z",
            ]);
        }
        run(&self.dir.path(""), "openssl", &args);
        run(
            &self.dir.path(""),
            "openssl",
            &["crl", "-in", &pem, "-outform", "DER", "-out", out],
        );
        self.read(out)
    }

    /// The CRL's nextUpdate, as `openssl crl` prints it, in Unix seconds.
    fn next_update(&self, crl: &str) -> f64 {
        let out = Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-nextupdate", "-in", crl])
            .current_dir(self.dir.path(""))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let date = text.trim().strip_prefix("nextUpdate=").unwrap();
        let out = Command::new("date")
            .args(["-u", "-d", date, "+%s"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

/// (keystore_alias, subject_CN, serial_number) of every certificate series of one file.
fn series_of(m: &Metrics, filename: &str) -> Vec<(String, String, String)> {
    series_with(m, &[("filename", filename)])
}

/// (keystore_alias, subject_CN, serial_number) of every certificate series with `labels`.
fn series_with(m: &Metrics, labels: &[(&str, &str)]) -> Vec<(String, String, String)> {
    let mut found: Vec<_> = m
        .find("x509_cert_not_after", labels)
        .iter()
        .map(|s| {
            let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            (
                get("keystore_alias"),
                get("subject_CN"),
                get("serial_number"),
            )
        })
        .collect();
    found.sort();
    found
}

/// The chain OpenSSL put in a PKCS#12 file: the leaf named `leaf`, the CA `acme-ca`.
fn openssl_chain() -> Vec<(String, String, String)> {
    vec![
        (
            "acme-ca".into(),
            "Acme Keystore CA".into(),
            CA_SERIAL.into(),
        ),
        ("leaf".into(), "leaf.example".into(), LEAF_SERIAL.into()),
    ]
}

#[test]
fn every_keystore_and_crl_from_a_directory_a_glob_and_a_named_file() {
    let pki = Pki::new("keystores");
    let stores = TempDir::new("keystores-dir");
    stores.write("modern.p12", pki.pkcs12("modern.p12", "s3cret", &[]));
    stores.write(
        "legacy.pfx",
        pki.pkcs12("legacy.p12", "s3cret", &["-legacy"]),
    );
    stores.write(
        "open.p12",
        pki.pkcs12(
            "open.p12",
            "",
            &["-certpbe", "NONE", "-keypbe", "NONE", "-nomac"],
        ),
    );
    stores.write("java.p12", pki.keytool("java.p12", "PKCS12", "changeit"));
    // No extension: found by its content.
    stores.write("truststore", pki.keytool("store.jks", "JKS", "changeit"));
    stores.write(
        "store.jceks",
        pki.keytool("store.jceks", "JCEKS", "changeit"),
    );
    stores.write("ca.crl", pki.crl("ca.crl", false));
    let stale = pki.crl("stale.crl", true);
    let both = format!(
        "{}{}",
        String::from_utf8(pki.read("ca.pem")).unwrap(),
        String::from_utf8(pki.read("stale.crl.pem")).unwrap()
    );
    stores.write("ca-and-stale-crl.pem", both);
    let globbed = TempDir::new("keystores-glob");
    globbed.write("a.jks", pki.keytool("a.jks", "JKS", "changeit"));
    globbed.write("b.crl", &stale);
    globbed.write("c.p12", pki.read("modern.p12"));
    globbed.write("d.jceks", pki.keytool("d.jceks", "JCEKS", "changeit"));
    let passwords = TempDir::new("keystores-passwords");
    passwords.write("openssl", "s3cret\n");
    passwords.write("java", "changeit");

    let exporter = Exporter::start(&[
        "-d",
        &stores.str(""),
        "-f",
        &globbed.str("*"),
        "-f",
        &pki.path("legacy.p12"),
        "-f",
        &pki.path("store.jks"),
        "-f",
        &pki.path("store.jceks"),
        "-f",
        &pki.path("ca.crl"),
        "--keystore-password-file",
        &passwords.str("openssl"),
        "--keystore-password-file",
        &passwords.str("java"),
        "--expose-relative-metrics",
    ]);
    let m = exporter.metrics();
    assert_eq!(m.value("x509_read_errors"), 0.0, "{}", m.body);
    let at = |path: String| series_with(&m, &[("filepath", &path)]);
    for path in [
        stores.str("modern.p12"),
        stores.str("legacy.pfx"),
        stores.str("open.p12"),
        globbed.str("c.p12"),
        pki.path("legacy.p12"),
    ] {
        assert_eq!(at(path.clone()), openssl_chain(), "{path}");
    }
    for (path, kind) in [
        (stores.str("java.p12"), "pkcs12"),
        (stores.str("truststore"), "jks"),
        (stores.str("store.jceks"), "jceks"),
        (globbed.str("a.jks"), "jks"),
        (globbed.str("d.jceks"), "jceks"),
        (pki.path("store.jks"), "jks"),
        (pki.path("store.jceks"), "jceks"),
    ] {
        let cn = format!("{kind}.example");
        let found = at(path.clone());
        assert_eq!(found.len(), 2, "{path}: {found:?}");
        assert_eq!(found[0].0, "acme-ca", "{path}");
        assert_eq!(found[0].1, "Acme Keystore CA", "{path}");
        assert_eq!((&*found[1].0, &*found[1].1), ("server", &*cn), "{path}");
    }

    for path in [stores.str("ca.crl"), pki.path("ca.crl")] {
        let here = [("filepath", path.as_str())];
        let crl = m.one("x509_crl_next_update", &here);
        assert_eq!(crl.value, pki.next_update("ca.crl"));
        assert_eq!(crl.labels["crl_number"], "4096");
        assert_eq!(crl.labels["issuer_CN"], "Acme Keystore CA");
        assert_eq!(crl.labels["issuer_O"], "Acme");
        assert!(!crl.labels.contains_key("serial_number"));
        assert_eq!(m.one("x509_crl_stale", &here).value, 0.0);
        let left = m.one("x509_crl_stale_in_seconds", &here).value;
        assert!(
            (29.0 * 86_400.0..=30.0 * 86_400.0).contains(&left),
            "{left}"
        );
    }
    for file in ["ca-and-stale-crl.pem", "b.crl"] {
        let stale = m.one("x509_crl_stale", &[("filename", file)]);
        assert_eq!(stale.value, 1.0, "{file}");
        assert_eq!(stale.labels["crl_number"], "4097", "{file}");
        assert_eq!(
            m.one("x509_crl_this_update", &[("filename", file)]).value,
            946_684_800.0
        );
    }
    assert_eq!(
        series_of(&m, "ca-and-stale-crl.pem"),
        [(String::new(), "Acme Keystore CA".into(), CA_SERIAL.into())]
    );
    promtool_accepts(&m.body);
}

#[test]
fn a_wrong_password_is_a_read_error_naming_the_file_until_the_password_file_is_fixed() {
    let pki = Pki::new("keystores-wrong");
    let stores = TempDir::new("keystores-wrong-dir");
    stores.write("right.p12", pki.pkcs12("right.p12", "s3cret", &[]));
    stores.write("wrong.p12", pki.pkcs12("wrong.p12", "another", &[]));
    stores.write(
        "locked.p12",
        pki.pkcs12("locked.p12", "another", &["-legacy"]),
    );
    // Certificates in a JKS are read whatever the password; a wrong one fails its digest.
    stores.write("store.jks", pki.keytool("store.jks", "JKS", "another"));
    // Over the 4 MiB limit: refused before it is read, let alone decrypted.
    let mut huge = pki.read("right.p12");
    huge.resize(4 * 1024 * 1024 + 1, 0);
    stores.write("huge.p12", huge);
    // Found by its content under a name that promises nothing: its failure still counts.
    stores.write("locked-blob", pki.read("wrong.p12"));
    // Named like a keystore, opened, and holding no certificate: an error (SPEC §3).
    run(
        &pki.dir.path(""),
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-nocerts",
            "-inkey",
            "leaf.key",
            "-passout",
            "pass:s3cret",
            "-out",
            "keyonly.p12",
        ],
    );
    stores.write("keyonly.p12", pki.read("keyonly.p12"));
    let passwords = TempDir::new("keystores-wrong-passwords");
    let file = passwords.write("password", "s3cret\n");
    let exporter = Exporter::start(&[
        "-d",
        &stores.str(""),
        "--keystore-password-file",
        file.to_str().unwrap(),
        "--refresh-interval=1s",
        "--expose-per-cert-error-metrics",
    ]);
    let m = exporter.metrics();
    assert_eq!(series_of(&m, "right.p12"), openssl_chain());
    assert_eq!(m.value("x509_read_errors"), 6.0, "{}", m.body);
    exporter.wait_log(
        [
            &*format!("read {}", stores.str("keyonly.p12")),
            "no certificate found",
        ]
        .as_slice(),
        LOG_WAIT,
    );
    exporter.wait_log(
        [
            &*format!("read {}", stores.str("huge.p12")),
            "larger than the 4 MiB limit",
        ]
        .as_slice(),
        LOG_WAIT,
    );
    for name in ["wrong.p12", "locked.p12", "store.jks", "locked-blob"] {
        assert!(series_of(&m, name).is_empty(), "{name}");
        assert_eq!(
            m.one("x509_cert_error", &[("filename", name)]).value,
            1.0,
            "{name}"
        );
        let path = stores.str(name);
        exporter.wait_log(
            [&*format!("read {path}"), "wrong password"].as_slice(),
            LOG_WAIT,
        );
    }
    // The password file rotated: every keystore is read again with it.
    std::fs::write(&file, "another").unwrap();
    let m = exporter.scrape_until("the keystores to open", |m| {
        m.value("x509_read_errors") == 3.0
    });
    assert_eq!(series_of(&m, "wrong.p12"), openssl_chain());
    assert_eq!(series_of(&m, "locked.p12"), openssl_chain());
    assert_eq!(series_of(&m, "locked-blob"), openssl_chain());
    assert_eq!(series_of(&m, "store.jks").len(), 2);
    assert!(
        series_of(&m, "right.p12").is_empty(),
        "its password is gone"
    );

    // Without any password, a JKS reads (nothing to check it against); a protected
    // PKCS#12 does not, and says so.
    drop(exporter);
    let exporter = Exporter::start(&["-d", &stores.str("")]);
    let m = exporter.metrics();
    assert_eq!(series_of(&m, "store.jks").len(), 2);
    assert_eq!(m.value("x509_read_errors"), 6.0);
    exporter.wait_log(
        [
            &*format!("read {}", stores.str("right.p12")),
            "wrong password",
        ]
        .as_slice(),
        LOG_WAIT,
    );
}

#[test]
fn a_missing_password_file_stops_the_exporter_at_start() {
    let dir = TempDir::new("keystores-nofile");
    let out = Command::new(BIN)
        .args(["--keystore-password-file", &dir.str("absent")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--keystore-password-file: read ")
            && stderr.contains("absent: no such file or directory"),
        "{stderr}"
    );
}

#[test]
fn keystores_and_crls_in_secrets_with_passwords_where_operators_keep_them() {
    let c = cluster();
    let pki = Pki::new("keystores-kube");
    let ns = c.namespace("keystores", serde_json::json!({}));
    let ca = pki.read("ca.pem");
    let leaf = pki.read("leaf.pem");
    // cert-manager: keystore.p12 and truststore.jks beside tls.crt, their password in a
    // Secret of the operator's.
    let p12 = pki.pkcs12("cm.p12", "from-secret", &[]);
    let jks = pki.keytool("cm.jks", "JKS", "from-secret");
    c.secret_bytes(
        &ns,
        "web-keystores",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &leaf),
            ("tls.key", b"KEY"),
            ("keystore.p12", &p12),
            ("truststore.jks", &jks),
        ],
        serde_json::json!({}),
    );
    c.secret(
        &ns,
        "keystore-password",
        "Opaque",
        &[("password", "from-secret")],
        serde_json::json!({}),
    );
    // Strimzi: ca.p12 with its password in ca.password, in the same Secret.
    let strimzi = pki.pkcs12("strimzi.p12", "same-secret", &["-legacy"]);
    c.secret_bytes(
        &ns,
        "cluster-ca-cert",
        "Opaque",
        &[
            ("ca.crt", &ca),
            ("ca.p12", &strimzi),
            ("ca.password", b"same-secret\n"),
        ],
        serde_json::json!({}),
    );
    // A JCEKS with a secret key among its certificates.
    let jceks = pki.keytool("cm.jceks", "JCEKS", "from-secret");
    c.secret_bytes(
        &ns,
        "java-stores",
        "Opaque",
        &[("keystore.jceks", &jceks)],
        serde_json::json!({}),
    );
    // A CRL published as a Secret key, and a keystore whose password is nowhere.
    let crl = pki.crl("ca.crl", false);
    c.secret_bytes(
        &ns,
        "acme-crl",
        "Opaque",
        &[("ca.crl", &crl)],
        serde_json::json!({}),
    );
    let locked = pki.pkcs12("locked.p12", "nowhere", &[]);
    c.secret_bytes(
        &ns,
        "locked",
        "Opaque",
        &[("ca.p12", &locked)],
        serde_json::json!({}),
    );

    let exporter = Exporter::start(&[
        "--watch-kube-secrets",
        "--kubeconfig",
        c.var("KUBECONFIG_ADMIN"),
        "--include-namespace",
        &ns,
        "-s",
        r"kubernetes.io/tls:tls\.crt|keystore\.p12|truststore\.jks",
        "-s",
        r"Opaque:ca\.crt|ca\.p12|ca\.crl|keystore\.jceks",
        "--keystore-password-key=ca.password",
        "--keystore-password-secret=keystore-password:password",
    ]);
    let m = exporter.metrics();
    let of = |name: &str, key: &str| series_with(&m, &[("secret_name", name), ("secret_key", key)]);
    assert_eq!(of("web-keystores", "keystore.p12"), openssl_chain());
    let trusted = of("web-keystores", "truststore.jks");
    assert_eq!(trusted.len(), 2, "{trusted:?}");
    assert_eq!(trusted[0].0, "acme-ca");
    assert_eq!((&*trusted[1].0, &*trusted[1].1), ("server", "jks.example"));
    assert_eq!(of("cluster-ca-cert", "ca.p12"), openssl_chain());
    let jceks = of("java-stores", "keystore.jceks");
    assert_eq!(jceks.len(), 2, "{jceks:?}");
    assert_eq!((&*jceks[1].0, &*jceks[1].1), ("server", "jceks.example"));
    assert_eq!(of("cluster-ca-cert", "ca.crt").len(), 1);
    let crl = m.one("x509_crl_next_update", &[("secret_name", "acme-crl")]);
    assert_eq!(crl.labels["secret_key"], "ca.crl");
    assert_eq!(crl.labels["crl_number"], "4096");
    assert_eq!(crl.labels["secret_namespace"], ns);
    assert!(of("locked", "ca.p12").is_empty());
    assert_eq!(m.value("x509_read_errors"), 1.0, "{}", m.body);
    exporter.wait_log(
        [&*format!("secret {ns}/locked key ca.p12"), "wrong password"].as_slice(),
        LOG_WAIT,
    );
    promtool_accepts(&m.body);
}
