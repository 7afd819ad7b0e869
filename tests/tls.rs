//! `--web.config.file` (TLS, client certificates, basic auth, stalled handshakes) and
//! `--web.systemd-socket`, against the real binary with curl and openssl as the clients.
//! The stalled-handshake test loads the machine and measures against its own idle figure,
//! so it runs alone (see [`ALONE`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use common::*;

/// The tests that load the machine take it for writing, and run alone; the others take it
/// for reading, and run together.
static ALONE: RwLock<()> = RwLock::new(());

/// A share of the machine for a test that does not load it.
fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    ALONE.read().unwrap_or_else(|e| e.into_inner())
}

/// curl's answer: (exit status, HTTP status or 0, body).
fn curl<S: AsRef<std::ffi::OsStr>>(args: &[S], url: &str) -> (i32, u16, String) {
    let (code, status, body, _) = curl_said(args, url);
    (code, status, body)
}

/// curl's answer with what it wrote on stderr: (exit status, HTTP status or 0, body, stderr).
fn curl_said<S: AsRef<std::ffi::OsStr>>(args: &[S], url: &str) -> (i32, u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl is needed by the tests");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        out.status.code().unwrap_or(-1),
        code.trim().parse().unwrap_or(0),
        body.to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Asserts that curl with `args` is refused by the server with this exit code and TLS alert
/// (as OpenSSL names it in curl's message), then that `good` still gets a 200 from the same
/// exporter: the refusal cost the server nothing.
fn refused_then_served(args: &[String], good: &[String], url: &str, code: i32, alert: &str) {
    let (got, status, body, said) = curl_said(args, url);
    assert!(
        (got, status) == (code, 0) && said.contains(alert),
        "expected curl exit {code} with {alert:?}, got exit {got}, HTTP {status}: {said}{body}"
    );
    let (got, status, body) = curl(good, url);
    assert_eq!((got, status), (0, 200), "served after the refusal? {body}");
}

/// The alert a TLS 1.3 server sends when a required client certificate is missing.
const CERTIFICATE_REQUIRED: &str = "alert certificate required";
/// The alert it sends for a client certificate from an issuer it does not know.
const UNKNOWN_CA: &str = "alert unknown ca";
/// The alert it sends for a client certificate whose issuer has a trusted CA's name, but
/// whose signature that CA did not make.
const BAD_SIGNATURE: &str = "alert decrypt error";

/// An exporter of one certificate with this web config (written to `dir`/web.yml).
fn exporter(dir: &TempDir, web: &str) -> Exporter {
    let now = now();
    dir.write("certs/a.pem", pem("watched", now, now + 100));
    let config = dir.write("web.yml", web);
    Exporter::start(&[
        "-d",
        &dir.str("certs"),
        &format!("--web.config.file={}", config.display()),
    ])
}

fn url(exporter: &Exporter, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", exporter.addr.port())
}

/// The subject of the certificate the server presents now.
fn presented_subject(exporter: &Exporter, ca: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &exporter.addr.to_string(),
            "-CAfile",
            ca,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or("")
        .replace(' ', "")
}

#[test]
fn tls_with_the_right_ca_and_nothing_in_plain_text() {
    let _shared = shared();
    let dir = TempDir::new("tls");
    write_tls_files(&dir, "exporter");
    let exporter = exporter(
        &dir,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n",
    );
    exporter.wait_log("listening on https://127.0.0.1:", LOG_WAIT);
    let ca = dir.str("ca.pem");

    let (code, status, body) = curl(&["--cacert", &ca], &url(&exporter, "/metrics"));
    assert_eq!((code, status), (0, 200), "{body}");
    assert!(body.contains("x509_cert_not_after{") && body.contains("subject_CN=\"watched\""));
    let (code, status, body) = curl(
        &["--cacert", &ca, "--compressed"],
        &url(&exporter, "/metrics"),
    );
    assert_eq!((code, status), (0, 200));
    assert!(body.contains("subject_CN=\"watched\""), "gzip over TLS");

    // An unknown CA is refused by the client; TLS 1.1 by the server, with an alert (openssl
    // is told to offer it at security level 0, where curl would refuse it itself).
    let (code, _, _) = curl::<&str>(&[], &url(&exporter, "/metrics"));
    assert_eq!(code, 60, "curl: peer certificate cannot be authenticated");
    let tls11 = Command::new("openssl")
        .args(["s_client", "-connect", &exporter.addr.to_string()])
        .args(["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&tls11.stderr);
    assert!(
        !tls11.status.success() && said.contains("alert handshake failure"),
        "TLS 1.1 not refused by the server: {said}"
    );
    let (code, status, _) = curl(
        &["--cacert", &ca, "--tlsv1.2", "--tls-max", "1.2"],
        &url(&exporter, "/healthz"),
    );
    assert_eq!((code, status), (0, 200), "TLS 1.2 offered");

    // Plain HTTP gets no answer, only a closed connection.
    let mut plain = TcpStream::connect(exporter.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("x509_cert"),
        "served in plain text"
    );
    let (code, _, _) = curl::<&str>(&[], &format!("http://{}/metrics", exporter.addr));
    assert_ne!(code, 0);
    // And the exporter still serves TLS.
    let (_, status, _) = curl(&["--cacert", &ca], &url(&exporter, "/healthz"));
    assert_eq!(status, 200);
}

/// An exporter whose TLS asks for client certificates signed by `dir`/ca.pem.
fn mtls_exporter(dir: &TempDir, client_auth_type: &str) -> Exporter {
    write_tls_files(dir, "exporter");
    exporter(
        dir,
        &format!("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_auth_type: {client_auth_type}\n  client_ca_file: ca.pem\n"),
    )
}

/// curl arguments: trust `ca`, present the client certificate of `certs` (None: none).
fn client_args(ca: &str, certs: Option<&TempDir>) -> Vec<String> {
    let mut args = vec!["--cacert".to_string(), ca.to_string()];
    if let Some(certs) = certs {
        args.extend([
            "--cert".to_string(),
            certs.str("client.pem"),
            "--key".to_string(),
            certs.str("client-key.pem"),
        ]);
    }
    args
}

/// A client certificate from another CA that has the same name as the trusted one ("test
/// CA"): only the signature tells them apart.
fn stranger() -> TempDir {
    let other = TempDir::new("mtls-stranger");
    write_tls_files(&other, "stranger");
    other
}

/// A client certificate from a CA of another name (client.pem, client-key.pem).
fn foreigner() -> TempDir {
    let dir = TempDir::new("mtls-foreigner");
    let now = now();
    let ca = Cert::self_signed(&Spec::new("foreign CA", now - 60, now + 86_400).ca());
    let client = Cert::signed(
        &Spec::new("foreigner", now - 60, now + 86_400).serial(&[3]),
        &ca,
    );
    dir.write("client.pem", client.pem());
    dir.write("client-key.pem", client.key_pem());
    dir
}

#[test]
fn client_certificates_required_and_verified() {
    let _shared = shared();
    let dir = TempDir::new("mtls");
    let exporter = mtls_exporter(&dir, "RequireAndVerifyClientCert");
    let ca = dir.str("ca.pem");
    let metrics = url(&exporter, "/metrics");
    let (code, status, body) = curl(&client_args(&ca, Some(&dir)), &metrics);
    assert_eq!((code, status), (0, 200), "{body}");
    assert!(body.contains("subject_CN=\"watched\""));
    // Refused in the handshake (curl 56: the TLS 1.3 alert arrives at the first read), and
    // the server goes on serving.
    let good = client_args(&ca, Some(&dir));
    refused_then_served(
        &client_args(&ca, None),
        &good,
        &metrics,
        56,
        CERTIFICATE_REQUIRED,
    );
    refused_then_served(
        &client_args(&ca, Some(&stranger())),
        &good,
        &metrics,
        56,
        BAD_SIGNATURE,
    );
    refused_then_served(
        &client_args(&ca, Some(&foreigner())),
        &good,
        &metrics,
        56,
        UNKNOWN_CA,
    );
}

#[test]
fn the_health_check_takes_a_client_certificate_refusal_as_alive() {
    let _shared = shared();
    for auth in ["RequireAndVerifyClientCert", "RequireAnyClientCert"] {
        let dir = TempDir::new("mtls-health");
        let exporter = mtls_exporter(&dir, auth);
        let listen = format!("--listen-address={}", exporter.addr);
        let web = format!("--web.config.file={}", dir.str("web.yml"));
        let out = run(&["healthcheck", &listen, &web]);
        assert!(
            out.status.success(),
            "{auth}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Nothing listening: still a failure.
        drop(exporter);
        let out = run(&["healthcheck", &listen, &web]);
        assert_eq!(out.status.code(), Some(1), "{auth}");
    }
}

#[test]
fn client_certificates_verified_if_given() {
    let _shared = shared();
    let dir = TempDir::new("mtls-optional");
    let exporter = mtls_exporter(&dir, "VerifyClientCertIfGiven");
    let ca = dir.str("ca.pem");
    let health = url(&exporter, "/healthz");
    let (_, status, _) = curl(&client_args(&ca, None), &health);
    assert_eq!(status, 200, "no certificate is fine");
    let (_, status, _) = curl(&client_args(&ca, Some(&dir)), &health);
    assert_eq!(status, 200, "a good one too");
    refused_then_served(
        &client_args(&ca, Some(&stranger())),
        &client_args(&ca, None),
        &health,
        56,
        BAD_SIGNATURE,
    );
    refused_then_served(
        &client_args(&ca, Some(&foreigner())),
        &client_args(&ca, Some(&dir)),
        &health,
        56,
        UNKNOWN_CA,
    );
}

#[test]
fn basic_auth_with_bcrypt_hashes_over_tls() {
    let _shared = shared();
    let dir = TempDir::new("auth");
    write_tls_files(&dir, "exporter");
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let exporter = exporter(
        &dir,
        &format!("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\nbasic_auth_users:\n  prometheus: '{hash}'\n"),
    );
    let ca = dir.str("ca.pem");
    let (code, status, body) = curl(
        &["--cacert", &ca, "-u", "prometheus:s3cret"],
        &url(&exporter, "/metrics"),
    );
    assert_eq!((code, status), (0, 200));
    assert!(body.contains("subject_CN=\"watched\""));
    // Again, from the remembered login.
    let (_, status, _) = curl(
        &["--cacert", &ca, "-u", "prometheus:s3cret"],
        &url(&exporter, "/metrics"),
    );
    assert_eq!(status, 200);
    for credentials in [
        &["-u", "prometheus:wrong"][..],
        &["-u", "nobody:s3cret"],
        &["-u", "prometheus:"],
        &[],
    ] {
        let mut args = vec!["--cacert", ca.as_str(), "-i"];
        args.extend_from_slice(credentials);
        let (_, status, body) = curl(&args, &url(&exporter, "/metrics"));
        assert_eq!(status, 401, "{credentials:?}");
        assert!(body.contains("WWW-Authenticate: Basic"), "{body}");
        assert!(!body.contains("x509_cert"));
    }
    // /healthz is behind basic auth too, as exporter-toolkit puts every path.
    let (_, status, head) = curl(
        &["--cacert", ca.as_str(), "-i"],
        &url(&exporter, "/healthz"),
    );
    assert_eq!(status, 401, "{head}");
    assert!(head.contains("WWW-Authenticate: Basic"), "{head}");
    assert!(!head.contains("\"UP\""), "{head}");
    let (_, status, _) = curl(
        &["--cacert", &ca, "-u", "prometheus:s3cret"],
        &url(&exporter, "/healthz"),
    );
    assert_eq!(status, 200);
    let log = exporter.log_lines().join("\n");
    assert!(!log.contains("s3cret") && !log.contains(&hash), "{log}");

    // The healthcheck subcommand, given the same web config, speaks TLS and takes the 401
    // as alive; without it, it speaks plain HTTP to a TLS listener and fails.
    let listen = format!("--listen-address={}", exporter.addr);
    let web = format!("--web.config.file={}", dir.str("web.yml"));
    let out = run(&["healthcheck", &listen, &web]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["healthcheck", &listen]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn basic_auth_without_tls() {
    let _shared = shared();
    let dir = TempDir::new("auth-plain");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let exporter = exporter(&dir, &format!("basic_auth_users:\n  alice: {hash}\n"));
    let (_, status, _) = curl(
        &["-u", "alice:pw"],
        &format!("http://{}/metrics", exporter.addr),
    );
    assert_eq!(status, 200);
    let (_, status, _) = curl(
        &["-u", "alice:no"],
        &format!("http://{}/metrics", exporter.addr),
    );
    assert_eq!(status, 401);
}

#[test]
fn a_renewed_certificate_is_served_without_restart() {
    let _shared = shared();
    let dir = TempDir::new("tls-reload");
    write_tls_files(&dir, "first");
    let exporter = exporter(
        &dir,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n",
    );
    let ca = dir.str("ca.pem");
    assert!(presented_subject(&exporter, &ca).contains("CN=first"));

    // A half-written renewal (the key does not match yet) keeps the old pair in service.
    let renewal = TempDir::new("tls-reload-new");
    let _ = write_tls_files(&renewal, "second");
    std::fs::copy(renewal.path("server.pem"), dir.path("server.pem")).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(presented_subject(&exporter, &ca).contains("CN=first"));
    // (Both files of the renewal come from another CA: its own CA file is used to check.)
    std::fs::copy(renewal.path("server-key.pem"), dir.path("server-key.pem")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let subject = presented_subject(&exporter, &renewal.str("ca.pem"));
        if subject.contains("CN=second") {
            break;
        }
        assert!(Instant::now() < deadline, "not reloaded: {subject}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let refused = exporter.wait_log("keeping the previous settings", Duration::from_secs(5));
    assert!(
        refused.contains("server.pem") && refused.contains("server-key.pem"),
        "{refused}"
    );
    exporter.wait_log("web config reloaded", Duration::from_secs(5));
}

/// A web config with TLS that asks for client certificates signed by `dir`/ca.pem.
const MTLS: &str = "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n";

#[test]
fn a_replaced_client_ca_is_trusted_and_the_old_one_no_longer() {
    let _shared = shared();
    let dir = TempDir::new("client-ca-reload");
    let exporter = mtls_exporter(&dir, "RequireAndVerifyClientCert");
    let ca = dir.str("ca.pem");
    let health = url(&exporter, "/healthz");
    // The client certificates of the first CA, kept aside; then a new CA and client
    // certificates replace them, the server's own files staying as they are.
    let old = TempDir::new("client-ca-old");
    for file in ["ca.pem", "client.pem", "client-key.pem"] {
        std::fs::copy(dir.path(file), old.path(file)).unwrap();
    }
    assert_eq!(curl(&client_args(&ca, Some(&old)), &health).1, 200);
    let new = TempDir::new("client-ca-new");
    write_tls_files(&new, "unused");
    let server_ca = old.str("ca.pem");
    std::fs::copy(new.path("ca.pem"), dir.path("ca.pem.tmp")).unwrap();
    std::fs::rename(dir.path("ca.pem.tmp"), dir.path("ca.pem")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&client_args(&server_ca, Some(&new)), &health).1 != 200 {
        assert!(
            Instant::now() < deadline,
            "the new client CA was never trusted: {:#?}",
            exporter.log_lines()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, status, _) = curl(&client_args(&server_ca, Some(&old)), &health);
    assert!(
        code != 0 && status == 0,
        "a client of the replaced CA is still trusted"
    );
}

#[test]
fn tls_stays_as_started_whatever_the_web_config_becomes() {
    let _shared = shared();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let users = format!("basic_auth_users:\n  alice: '{hash}'\n");

    // Started with TLS: a file without it is refused, and TLS goes on.
    let dir = TempDir::new("tls-off");
    write_tls_files(&dir, "exporter");
    let with_tls = exporter(&dir, &format!("{MTLS}{users}"));
    let ca = dir.str("ca.pem");
    let https = url(&with_tls, "/metrics");
    let plain = format!("http://{}/metrics", with_tls.addr);
    let mut with_cert = client_args(&ca, Some(&dir));
    with_cert.extend(["-u".to_string(), "alice:pw".to_string()]);
    assert_eq!(curl(&with_cert, &https).1, 200);
    let replace = |dir: &TempDir, text: &str| {
        let tmp = dir.write("web.yml.tmp", text);
        std::fs::rename(tmp, dir.path("web.yml")).unwrap();
    };
    replace(&dir, &users);
    let refused = with_tls.wait_log("would turn TLS off", Duration::from_secs(5));
    assert!(refused.contains(&dir.str("web.yml")), "{refused}");
    assert!(
        refused.contains("keeping the previous settings"),
        "{refused}"
    );
    assert_eq!(curl(&with_cert, &https).1, 200, "still TLS, still mTLS");
    assert_eq!(curl(&["-u", "alice:pw"], &plain).1, 0, "no plain text");

    // Started without: a file with TLS is refused, and plain HTTP goes on.
    let dir = TempDir::new("tls-on");
    write_tls_files(&dir, "exporter");
    let without = exporter(&dir, &users);
    let plain = format!("http://{}/metrics", without.addr);
    assert_eq!(curl(&["-u", "alice:pw"], &plain).1, 200);
    replace(&dir, &format!("{MTLS}{users}"));
    without.wait_log("would turn TLS on", Duration::from_secs(5));
    assert_eq!(curl(&["-u", "alice:pw"], &plain).1, 200);
}

#[test]
fn a_reload_never_turns_basic_auth_or_required_client_certificates_off() {
    let _shared = shared();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let users = format!("basic_auth_users:\n  alice: '{hash}'\n");
    let dir = TempDir::new("web-weaker");
    write_tls_files(&dir, "exporter");
    let exporter = exporter(&dir, &format!("{MTLS}{users}"));
    let https = url(&exporter, "/metrics");
    let with_cert = client_args(&dir.str("ca.pem"), Some(&dir));
    let mut with_both = with_cert.clone();
    with_both.extend(["-u".to_string(), "alice:pw".to_string()]);
    let replace = |text: &str| {
        let tmp = dir.write("web.yml.tmp", text);
        std::fs::rename(tmp, dir.path("web.yml")).unwrap();
    };
    // A file caught half-written: valid YAML, but the users are gone.
    replace(MTLS);
    let refused = exporter.wait_log("would turn basic auth off", Duration::from_secs(5));
    assert!(refused.contains(&dir.str("web.yml")), "{refused}");
    assert_eq!(curl(&with_cert, &https).1, 401, "basic auth still on");
    assert_eq!(curl(&with_both, &https).1, 200);
    // Client certificates no longer required: refused too.
    replace(&format!(
        "{}{users}",
        MTLS.replace("RequireAndVerifyClientCert", "VerifyClientCertIfGiven")
    ));
    exporter.wait_log(
        "would stop requiring client certificates",
        Duration::from_secs(5),
    );
    let without_cert = [
        "--cacert".to_string(),
        dir.str("ca.pem"),
        "-u".to_string(),
        "alice:pw".to_string(),
    ];
    refused_then_served(
        &without_cert,
        &with_both,
        &https,
        56,
        "certificate required",
    );
    // A change that weakens nothing still takes over: a new password.
    let second = bcrypt::hash("second", 4).unwrap();
    replace(&format!("{MTLS}basic_auth_users:\n  alice: '{second}'\n"));
    exporter.wait_log("web config reloaded", Duration::from_secs(5));
    let mut new_password = with_cert.clone();
    new_password.extend(["-u".to_string(), "alice:second".to_string()]);
    assert_eq!(curl(&new_password, &https).1, 200);
    assert_eq!(curl(&with_both, &https).1, 401);
}

#[test]
fn an_empty_tls_server_config_serves_plain_http_as_exporter_toolkit_does() {
    let _shared = shared();
    let dir = TempDir::new("tls-empty");
    let hash = bcrypt::hash("pw", 4).unwrap();
    let exporter = exporter(
        &dir,
        &format!("tls_server_config: {{}}\nbasic_auth_users:\n  alice: '{hash}'\n"),
    );
    let plain = format!("http://{}/metrics", exporter.addr);
    let (_, status, body) = curl(&["-u", "alice:pw"], &plain);
    assert_eq!(status, 200);
    assert!(body.contains("subject_CN=\"watched\""));
    assert_eq!(
        curl(&[] as &[&str], &plain).1,
        401,
        "basic auth still applies"
    );
    // Versions alone do not turn TLS on either; a key without a certificate is an error.
    let out = run(&[
        "--listen-address=127.0.0.1:0",
        &format!(
            "--web.config.file={}",
            dir.write("only-key.yml", "tls_server_config:\n  key_file: k.pem\n")
                .display()
        ),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cert_file (or cert) is missing"),
        "{stderr}"
    );
}

#[test]
fn bad_web_configs_exit_two_naming_the_file_and_the_setting() {
    let _shared = shared();
    let dir = TempDir::new("web-bad");
    write_tls_files(&dir, "exporter");
    let cases = [
        ("tls_server_config:\n  cert_file: server.pem\n", "key_file (or key) is missing"),
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: nope.pem\n", "nope.pem"),
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: ca.pem\n", "not a PEM private key"),
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_auth_type: Sometimes\n", "client_auth_type"),
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file"),
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  min_version: TLS10\n", "min_version"),
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  min_version: TLS13\n  max_version: TLS12\n", "min_version is above max_version"),
        ("tls_server_config:\n  certfile: server.pem\n", "unknown setting tls_server_config.certfile"),
        ("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  client_allowed_sans: [scraper]\n", "tls_server_config.client_allowed_sans is not supported"),
        ("{ not yaml", "invalid YAML"),
    ];
    for (text, why) in cases {
        let config = dir.write("web.yml", text);
        let out = run_briefly(&[
            "--listen-address=127.0.0.1:0",
            &format!("--web.config.file={}", config.display()),
        ])
        .unwrap_or_else(|| panic!("{text}: accepted"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(&format!("web config {}", config.display())) && stderr.contains(why),
            "{text}: {stderr}"
        );
    }
}

#[test]
fn systemd_socket_activation() {
    let _shared = shared();
    let dir = TempDir::new("systemd");
    let now = now();
    dir.write("a.pem", pem("activated", now, now + 100));
    // Ignored with --web.systemd-socket: the socket comes from systemd.
    let (exporter, first) = socket_activated(&[
        "--web.systemd-socket",
        "-d",
        &dir.str(""),
        "--listen-address=127.0.0.1:0",
    ]);
    assert!(
        first.contains("{\"status\":\"UP\"}"),
        "the first connection is served: {first}"
    );
    exporter.wait_ready();
    assert!(exporter
        .get("/metrics")
        .text()
        .contains("subject_CN=\"activated\""));

    // Without a passed socket, the flag is an error that says so.
    let out = run(&["--web.systemd-socket"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LISTEN_FDS"));
}

/// The median time of `n` TLS scrapes by curl (its start and handshake included).
fn median_curl(exporter: &Exporter, ca: &str, n: usize) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            let (code, status, body) = curl(&["--cacert", ca], &url(exporter, "/metrics"));
            let elapsed = start.elapsed();
            assert_eq!((code, status), (0, 200));
            assert!(body.contains("subject_CN=\"watched\""));
            elapsed
        })
        .collect();
    times.sort();
    times[n / 2]
}

#[test]
fn stalled_tls_handshakes_hold_up_no_scrape_and_are_dropped() {
    let _alone = ALONE.write().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("tls-stall");
    write_tls_files(&dir, "exporter");
    let exporter = exporter(
        &dir,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n",
    );
    let ca = dir.str("ca.pem");
    median_curl(&exporter, &ca, 1); // warm up
    let idle = median_curl(&exporter, &ca, 5);
    // 300 connections that send the first bytes of a ClientHello, then nothing.
    let start = Instant::now();
    let stalled: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(exporter.addr).unwrap();
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
            s
        })
        .collect();
    // A scrape meanwhile takes about as long as one alone, measured in this same run.
    let loaded = median_curl(&exporter, &ca, 5);
    assert!(
        loaded <= idle * 2 + Duration::from_millis(100),
        "a scrape took {loaded:?} beside 300 stalled handshakes, {idle:?} alone"
    );
    eprintln!("TLS scrape: idle {idle:?}, beside stalled handshakes {loaded:?}");
    // Each is dropped, with nothing sent, when its head deadline (10 s) passes: every one is
    // seen closed (an end of stream or a reset, never a read timeout).
    let mut closed = 0;
    for (i, mut conn) in stalled.into_iter().enumerate() {
        let left = (start + Duration::from_secs(25)).saturating_duration_since(Instant::now());
        let got = read_until_closed(&mut conn, left)
            .unwrap_or_else(|why| panic!("stalled handshake {i}: {why}"));
        assert!(
            !String::from_utf8_lossy(&got).contains("HTTP/"),
            "stalled handshake {i} answered"
        );
        if i == 0 {
            let elapsed = start.elapsed();
            assert!(
                elapsed > Duration::from_secs(8),
                "dropped after {elapsed:?}, before its deadline"
            );
        }
        closed += 1;
    }
    assert_eq!(closed, 300);
    // And the exporter still serves.
    let (code, status, _) = curl(&["--cacert", &ca], &url(&exporter, "/healthz"));
    assert_eq!((code, status), (0, 200));
}

#[test]
fn a_changed_web_config_takes_over_without_restart() {
    let _shared = shared();
    let dir = TempDir::new("web-reload");
    let replace = |text: &str| {
        let tmp = dir.write("web.yml.tmp", text);
        std::fs::rename(tmp, dir.path("web.yml")).unwrap();
    };
    let first = bcrypt::hash("first", 4).unwrap();
    let exporter = exporter(&dir, &format!("basic_auth_users:\n  alice: '{first}'\n"));
    let plain = format!("http://{}/metrics", exporter.addr);
    let status = |args: &[&str], url: &str| curl(args, url).1;
    assert_eq!(status(&["-u", "alice:first"], &plain), 200);

    // A new password: the old one stops working, remembered login or not.
    let second = bcrypt::hash("second", 4).unwrap();
    replace(&format!("basic_auth_users:\n  alice: '{second}'\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&["-u", "alice:second"], &plain) != 200 {
        assert!(Instant::now() < deadline, "the new password never worked");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status(&["-u", "alice:first"], &plain), 401);

    // A broken file leaves the settings in force.
    replace("basic_auth_users: [");
    let refused = exporter.wait_log("keeping the previous settings", Duration::from_secs(5));
    assert!(refused.contains("web config"), "{refused}");
    assert_eq!(status(&["-u", "alice:second"], &plain), 200);

    // A broken file that is fixed later is taken then.
    replace(&format!("basic_auth_users:\n  alice: '{first}'\n"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(&["-u", "alice:first"], &plain) != 200 {
        assert!(Instant::now() < deadline, "the fixed file was never taken");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn min_version_tls13_refuses_tls12() {
    let _shared = shared();
    let dir = TempDir::new("tls13");
    write_tls_files(&dir, "exporter");
    let exporter = exporter(
        &dir,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  min_version: TLS13\n",
    );
    let ca = dir.str("ca.pem");
    let health = url(&exporter, "/healthz");
    let args = |more: &[&str]| {
        let mut args = vec!["--cacert".to_string(), ca.clone()];
        args.extend(more.iter().map(|a| a.to_string()));
        args
    };
    // Refused in the handshake (curl 35) with the server's protocol_version alert.
    refused_then_served(
        &args(&["--tlsv1.2", "--tls-max", "1.2"]),
        &args(&["--tlsv1.3"]),
        &health,
        35,
        "alert protocol version",
    );
}

/// An exporter whose TLS asks for a client certificate without verifying it (no client CA).
fn unverified_client_cert_exporter(dir: &TempDir, client_auth_type: &str) -> Exporter {
    write_tls_files(dir, "exporter");
    exporter(
        dir,
        &format!("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  client_auth_type: {client_auth_type}\n"),
    )
}

#[test]
fn request_client_cert_takes_none_and_any() {
    let _shared = shared();
    let dir = TempDir::new("mtls-request");
    let exporter = unverified_client_cert_exporter(&dir, "RequestClientCert");
    let ca = dir.str("ca.pem");
    let metrics = url(&exporter, "/metrics");
    for (what, certs) in [
        ("no certificate", None),
        ("a certificate of the CA", Some(&dir)),
        ("a stranger's certificate", Some(&stranger())),
        ("a foreign CA's certificate", Some(&foreigner())),
    ] {
        let (code, status, body) = curl(&client_args(&ca, certs), &metrics);
        assert_eq!((code, status), (0, 200), "{what}: {body}");
        assert!(body.contains("subject_CN=\"watched\""), "{what}");
    }
}

#[test]
fn require_any_client_cert_refuses_none_and_takes_a_strangers() {
    let _shared = shared();
    let dir = TempDir::new("mtls-any");
    let exporter = unverified_client_cert_exporter(&dir, "RequireAnyClientCert");
    let ca = dir.str("ca.pem");
    let metrics = url(&exporter, "/metrics");
    let foreign = foreigner();
    refused_then_served(
        &client_args(&ca, None),
        &client_args(&ca, Some(&foreign)),
        &metrics,
        56,
        CERTIFICATE_REQUIRED,
    );
    let (code, status, body) = curl(&client_args(&ca, Some(&dir)), &metrics);
    assert_eq!((code, status), (0, 200), "{body}");
    assert!(body.contains("subject_CN=\"watched\""));
}

#[test]
fn settings_rustls_cannot_honour_are_accepted_with_a_warning_naming_each() {
    let _shared = shared();
    let dir = TempDir::new("tls-ignored");
    write_tls_files(&dir, "exporter");
    let exporter = exporter(
        &dir,
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  curve_preferences: [X25519]\n  prefer_server_cipher_suites: true\n",
    );
    for setting in [
        "cipher_suites",
        "curve_preferences",
        "prefer_server_cipher_suites",
    ] {
        let line = exporter.wait_log(format!("tls_server_config.{setting} is ignored"), LOG_WAIT);
        assert!(line.contains("WARN"), "{line}");
    }
    let (code, status, _) = curl(
        &["--cacert", &dir.str("ca.pem")],
        &url(&exporter, "/healthz"),
    );
    assert_eq!((code, status), (0, 200));
}

/// The committed `$2y$` hash made by `htpasswd` (fixtures/web/, with its recipe in
/// fixtures/README.md): its path, the user and the hash.
fn htpasswd_fixture() -> (String, String, String) {
    let path = format!(
        "{}/fixtures/web/htpasswd-2y.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let (user, hash) = text.trim_end().split_once(':').unwrap();
    (path, user.to_string(), hash.to_string())
}

#[test]
fn a_bcrypt_hash_made_by_htpasswd_is_verified() {
    let _shared = shared();
    let (path, user, hash) = htpasswd_fixture();
    assert!(hash.starts_with("$2y$10$"), "{hash}");
    // htpasswd itself, the tool the README tells users to run, agrees on the password.
    let check = Command::new("htpasswd")
        .args(["-vb", &path, &user, "s3cret-fixture"])
        .output()
        .expect("htpasswd (Debian package apache2-utils) is needed by the tests");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let dir = TempDir::new("auth-htpasswd");
    let exporter = exporter(&dir, &format!("basic_auth_users:\n  {user}: '{hash}'\n"));
    let metrics = format!("http://{}/metrics", exporter.addr);
    let (_, status, body) = curl(&["-u", &format!("{user}:s3cret-fixture")], &metrics);
    assert_eq!(status, 200);
    assert!(body.contains("subject_CN=\"watched\""));
    // Each wrong password from an address of its own: four fresh bcrypt checks from one
    // address in a row can outrun that address's budget on a loaded machine (a 429, rightly).
    for (i, wrong) in ["s3cret-fixturE", "s3cret-fixture ", ""].iter().enumerate() {
        let from = format!("127.0.0.{}", i + 2);
        let login = format!("{user}:{wrong}");
        let (_, status, body) = curl(&["-i", "--interface", &from, "-u", &login], &metrics);
        assert_eq!(status, 401, "{wrong:?}");
        assert!(body.contains("WWW-Authenticate: Basic"), "{body}");
    }
}
