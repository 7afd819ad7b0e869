//! `x509-certificate-exporter healthcheck`: probes the running exporter's `/healthz` so that
//! Docker and Compose health checks work in an image with no shell and no curl.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Time allowed to connect, and then to get the answer.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Checks `GET /healthz` on the exporter listening at `listen_address` (as given to
/// `--listen-address`; a wildcard host means this machine). Ok when it answers 200.
pub fn probe(listen_address: &str) -> Result<(), String> {
    let target = local_target(listen_address);
    let fail = |why: String| format!("healthcheck {target}: {why}");
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
    stream
        .write_all(format!("GET /healthz HTTP/1.0\r\nHost: {target}\r\n\r\n").as_bytes())
        .map_err(|e| fail(crate::files::why(&e)))?;
    let mut head = [0u8; 64];
    let n = stream
        .read(&mut head)
        .map_err(|e| fail(crate::files::why(&e)))?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("");
    match status {
        "200" => Ok(()),
        "" => Err(fail("no HTTP answer".to_string())),
        other => Err(fail(format!("status {other}"))),
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
        let err = probe(&format!("127.0.0.1:{port}")).unwrap_err();
        assert!(
            err.starts_with(&format!("healthcheck 127.0.0.1:{port}: ")),
            "{err}"
        );
    }
}
