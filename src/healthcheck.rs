//! `x509-certificate-exporter healthcheck`: probes the running exporter's `/healthz` so that
//! Docker and Compose health checks work in an image with no shell and no curl. Given the
//! exporter's `--web.config.file`, it speaks TLS when the exporter does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::DigitallySignedStruct;

use crate::http::web_config::Signatures;

/// Time allowed to connect, and then to get the answer.
const TIMEOUT: Duration = Duration::from_secs(3);

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
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| fail(crate::files::why(&e)))?;
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
            exchange(&mut rustls::Stream::new(&mut tls, &mut stream), &request)
        }
    }
    .map_err(|e| fail(crate::files::why(&e)))?;
    let status_line = String::from_utf8_lossy(&answer);
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    match status {
        "200" => Ok(()),
        "401" if !web.users.is_empty() => Ok(()),
        "" => Err(fail("no HTTP answer".to_string())),
        other => Err(fail(format!("status {other}"))),
    }
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
