//! `x509-certificate-exporter healthcheck`: probes the running exporter's `/healthz` so that
//! Docker and Compose health checks work in an image with no shell and no curl. In a
//! container the exporter is PID 1: the flags the check is not given are taken from PID 1's
//! command line, so that it probes the right port, over TLS when the exporter speaks TLS.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::DigitallySignedStruct;

use crate::cli::{self, Command, Config, HealthcheckFlags};
use crate::http::web_config::Signatures;

/// Time allowed to connect, and then to get the answer.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The command line of PID 1: in a container, the exporter's own.
pub const PID1_CMDLINE: &str = "/proc/1/cmdline";

/// PID 1's working directory, against which its relative `--web.config.file` is resolved.
const PID1_CWD: &str = "/proc/1/cwd";

/// What to probe.
#[derive(Debug, PartialEq)]
pub struct Target {
    /// The exporter's listen address, as `--listen-address` takes it.
    pub address: String,
    /// The exporter's web config, when it has one.
    pub web_config: Option<PathBuf>,
    /// Why PID 1's command line was not used, when it was needed (for stderr).
    pub note: Option<String>,
}

/// Decides what to probe: each flag given to `healthcheck` wins; a flag not given is taken
/// from PID 1's command line (`pid1`, the bytes of [`PID1_CMDLINE`]) when that parses as the
/// exporter's own, else it has its default. A socket passed by systemd
/// (`--web.systemd-socket`) has an address the check cannot know: then `--listen-address`
/// must be given to `healthcheck`.
pub fn target(flags: &HealthcheckFlags, pid1: std::io::Result<Vec<u8>>) -> Result<Target, String> {
    let needed = flags.listen_address.is_none() || flags.web_config_file.is_none();
    let (exporter, note) = match needed {
        false => (None, None),
        true => match exporter_config(pid1) {
            Ok(config) => (Some(config), None),
            Err(why) => (
                None,
                Some(format!(
                    "healthcheck: {PID1_CMDLINE}: {why}; using the defaults for the flags not given"
                )),
            ),
        },
    };
    let systemd_socket =
        flags.systemd_socket || exporter.as_ref().is_some_and(|c| c.systemd_socket);
    let address = match (&flags.listen_address, &exporter) {
        (Some(address), _) => address.clone(),
        (None, _) if systemd_socket => {
            return Err(
                "healthcheck: the exporter serves on the socket systemd passes \
                 (--web.systemd-socket), whose address the check cannot know: \
                 give healthcheck --listen-address=ADDR"
                    .to_string(),
            )
        }
        (None, Some(config)) => config.listen_address.clone(),
        (None, None) => ":9793".to_string(),
    };
    let port = address
        .rsplit_once(':')
        .map(|(_, port)| port.parse::<u16>());
    if port == Some(Ok(0)) {
        return Err(format!(
            "healthcheck: the exporter listens on {address:?}, a port picked at start: \
             give healthcheck --listen-address=ADDR with the port it logged"
        ));
    }
    let web_config = match (&flags.web_config_file, exporter) {
        (Some(path), _) => Some(path.clone()),
        // Relative to the exporter's working directory, not this process's.
        (None, Some(config)) => config
            .web_config_file
            .map(|path| Path::new(PID1_CWD).join(path)),
        (None, None) => None,
    };
    Ok(Target {
        address,
        web_config,
        note,
    })
}

/// The exporter's configuration from PID 1's command line, parsed by the exporter's own
/// parser; an error says why PID 1 is not (or cannot be seen to be) a running exporter.
fn exporter_config(pid1: std::io::Result<Vec<u8>>) -> Result<Config, String> {
    let mut bytes = pid1.map_err(|e| crate::fsio::why(&e))?;
    if bytes.last() == Some(&0) {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err("empty".to_string());
    }
    let args: Vec<OsString> = bytes
        .split(|&b| b == 0)
        .skip(1)
        .map(|arg| OsString::from_vec(arg.to_vec()))
        .collect();
    match cli::parse(args) {
        Ok(Command::Run(config)) => Ok(*config),
        Ok(_) => Err("PID 1 is not a running x509-certificate-exporter".to_string()),
        Err(why) => Err(format!(
            "not an x509-certificate-exporter command line ({why})"
        )),
    }
}

/// Checks `GET /healthz` on the exporter listening at `listen_address` (as given to
/// `--listen-address`; a wildcard host means this machine). Ok when it answers 200 — or 401
/// when the web config sets basic auth users: the probe has no password, and the answer shows
/// the exporter is up.
pub fn probe(listen_address: &str, web_config: Option<&Path>) -> Result<(), String> {
    let target = local_target(listen_address);
    let fail = |why: String| format!("healthcheck {target}: {why}");
    let web = match web_config {
        Some(path) => crate::http::web_config::load(path)?,
        None => crate::http::web_config::WebConfig::default(),
    };
    let addr: SocketAddr = target
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".to_string()))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| fail(crate::fsio::why(&e)))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| fail(e.to_string()))?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| fail(e.to_string()))?;
    let request = format!("GET /healthz HTTP/1.0\r\nHost: {target}\r\n\r\n");
    let answer = match web.tls {
        None => exchange(&mut stream, &request),
        Some(_) => {
            let mut tls = tls_client(addr)?;
            let answer = exchange(&mut rustls::Stream::new(&mut tls, &mut stream), &request);
            // The probe has no client certificate: a server that requires one and says so
            // in its alert is up, as a 401 shows it is.
            if web.client_cert_required && answer.as_ref().is_err_and(refused_without_cert) {
                return Ok(());
            }
            answer
        }
    }
    .map_err(|e| fail(crate::fsio::why(&e)))?;
    let status_line = String::from_utf8_lossy(&answer);
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    match status {
        "200" => Ok(()),
        "401" if !web.users.is_empty() => Ok(()),
        "" => Err(fail("no HTTP answer".to_string())),
        other => Err(fail(format!("status {other}"))),
    }
}

/// Whether a TLS error is the server's alert refusing a client without a certificate.
fn refused_without_cert(error: &std::io::Error) -> bool {
    use rustls::AlertDescription::{BadCertificate, CertificateRequired, HandshakeFailure};
    let alert = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    matches!(
        alert,
        Some(rustls::Error::AlertReceived(
            CertificateRequired | HandshakeFailure | BadCertificate
        ))
    )
}

/// Sends the request; returns the start of the answer.
fn exchange(stream: &mut impl ReadWrite, request: &str) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    Ok(head[..n].to_vec())
}

/// A byte stream both ways.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A TLS client for the exporter's own listener. Its certificate is not checked against any
/// CA (it is this machine's own process, and the probe sends nothing secret), only the
/// handshake's signatures.
fn tls_client(addr: SocketAddr) -> Result<rustls::ClientConnection, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("healthcheck: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert(Signatures(provider))))
        .with_no_client_auth();
    rustls::ClientConnection::new(Arc::new(config), ServerName::IpAddress(addr.ip().into()))
        .map_err(|e| format!("healthcheck: {e}"))
}

/// Accepts the server's certificate; checks the handshake signatures made with it.
#[derive(Debug)]
struct AnyServerCert(Signatures);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.schemes()
    }
}

/// Where to connect for a listen address: wildcard hosts become loopback.
fn local_target(listen_address: &str) -> String {
    let (host, port) = listen_address
        .rsplit_once(':')
        .unwrap_or(("", listen_address));
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" => "[::1]",
        other => other,
    };
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_loopback() {
        assert_eq!(local_target(":9793"), "127.0.0.1:9793");
        assert_eq!(local_target("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(local_target("[::]:8080"), "[::1]:8080");
        assert_eq!(local_target("10.1.2.3:9793"), "10.1.2.3:9793");
    }

    fn flags(listen: Option<&str>, web: Option<&str>, systemd: bool) -> HealthcheckFlags {
        HealthcheckFlags {
            listen_address: listen.map(str::to_string),
            web_config_file: web.map(PathBuf::from),
            systemd_socket: systemd,
        }
    }

    fn cmdline(args: &[&str]) -> std::io::Result<Vec<u8>> {
        Ok(args
            .iter()
            .flat_map(|a| [a.as_bytes(), b"\0"].concat())
            .collect())
    }

    fn found(address: &str, web: Option<&str>) -> Target {
        Target {
            address: address.to_string(),
            web_config: web.map(PathBuf::from),
            note: None,
        }
    }

    const BIN: &str = "/usr/local/bin/x509-certificate-exporter";

    #[test]
    fn the_flags_not_given_come_from_the_exporter_as_pid_1() {
        let pid1 = || {
            cmdline(&[
                BIN,
                "--watch-dir=/certs",
                "-b",
                ":8080",
                "--web.config.file",
                "/etc/x509/web.yml",
            ])
        };
        let none = flags(None, None, false);
        assert_eq!(
            target(&none, pid1()),
            Ok(found(":8080", Some("/etc/x509/web.yml")))
        );
        // Each flag given wins over PID 1's.
        assert_eq!(
            target(&flags(Some("127.0.0.1:9"), None, false), pid1()),
            Ok(found("127.0.0.1:9", Some("/etc/x509/web.yml")))
        );
        assert_eq!(
            target(&flags(None, Some("other.yml"), false), pid1()),
            Ok(found(":8080", Some("other.yml")))
        );
        // Both given: PID 1 is not even read.
        let unreadable = || Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(
            target(&flags(Some(":1"), Some("w.yml"), false), unreadable()),
            Ok(found(":1", Some("w.yml")))
        );
        // A relative web config is the exporter's, relative to its working directory.
        assert_eq!(
            target(&none, cmdline(&["x", "--web.config.file=web.yml"])),
            Ok(found(":9793", Some("/proc/1/cwd/web.yml")))
        );
        // An exporter with every default.
        assert_eq!(target(&none, cmdline(&[BIN])), Ok(found(":9793", None)));
    }

    #[test]
    fn another_pid_1_means_the_defaults_with_a_note() {
        let none = flags(None, None, false);
        for (pid1, why) in [
            (
                cmdline(&["/sbin/init", "--system"]),
                "unknown flag: --system",
            ),
            (
                cmdline(&["sleep", "infinity"]),
                "unexpected argument: infinity",
            ),
            (
                cmdline(&["/bin/sh", "-c", "exec x"]),
                "only meaningful with --watch-kube-secrets",
            ),
            (
                cmdline(&[BIN, "healthcheck", "-b", ":1"]),
                "is not a running",
            ),
            (cmdline(&[BIN, "--help"]), "is not a running"),
            (Ok(Vec::new()), "/proc/1/cmdline: empty"),
            (
                Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
                "/proc/1/cmdline: ",
            ),
        ] {
            let t = target(&none, pid1).unwrap();
            assert_eq!((t.address.as_str(), t.web_config), (":9793", None));
            let note = t.note.unwrap();
            assert!(note.starts_with("healthcheck: /proc/1/cmdline: "), "{note}");
            assert!(note.contains(why), "{note}");
        }
        // The flags given still count.
        let t = target(&flags(Some(":8080"), None, false), cmdline(&["sleep", "1"])).unwrap();
        assert_eq!(t.address, ":8080");
    }

    #[test]
    fn a_systemd_socket_or_a_picked_port_needs_the_address_given() {
        let pid1 = || cmdline(&[BIN, "--web.systemd-socket", "-b", ":9793"]);
        let err = target(&flags(None, None, false), pid1()).unwrap_err();
        assert!(
            err.contains("--web.systemd-socket") && err.contains("--listen-address=ADDR"),
            "{err}"
        );
        let err = target(&flags(None, None, true), cmdline(&["sleep", "1"])).unwrap_err();
        assert!(err.contains("--web.systemd-socket"), "{err}");
        assert_eq!(
            target(&flags(Some("127.0.0.1:9793"), None, false), pid1()),
            Ok(found("127.0.0.1:9793", None))
        );
        let err = target(
            &flags(None, None, false),
            cmdline(&[BIN, "-b", "127.0.0.1:0"]),
        )
        .unwrap_err();
        assert!(err.contains("a port picked at start"), "{err}");
    }

    #[test]
    fn nothing_listening_is_a_failure_naming_the_address() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = probe(&format!("127.0.0.1:{port}"), None).unwrap_err();
        assert!(
            err.starts_with(&format!("healthcheck 127.0.0.1:{port}: ")),
            "{err}"
        );
    }
}
