//! A fake Kubernetes API server on 127.0.0.1 (plain HTTP or TLS), scripted per test: each
//! request is recorded and answered by the test's behaviour, whole, cut short, or as a
//! watch stream fed line by line; and the JSON of Secrets, ConfigMaps, namespaces and lists.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
// ---------------------------------------------------------------------------------------
// The fake API server
// ---------------------------------------------------------------------------------------

/// One request the fake API server received.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// The `Authorization` header.
    pub auth: Option<String>,
    /// When its head was read.
    pub at: Instant,
}

impl Req {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake answers.
pub enum Reply {
    /// A whole response; the connection stays open for the next request.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// A 200 whose `Content-Length` promises more than `body`; the connection is closed
    /// after `body`.
    Truncated(String),
    /// A 200 in chunks, as a watch is sent: each line received is one chunk (a newline is
    /// added); the response ends when the sender is dropped. Nothing sent and the sender
    /// kept: a watch that hangs without closing.
    Stream(crossbeam_channel::Receiver<String>),
}

impl Reply {
    pub fn ok(body: String) -> Self {
        Reply::Full {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }

    /// A Kubernetes `Status` failure.
    pub fn status(code: u16, reason: &str, message: &str) -> Self {
        Reply::Full {
            status: code,
            headers: Vec::new(),
            body: format!(
                "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":{},\"reason\":{},\"code\":{code}}}",
                json_str(message),
                json_str(reason)
            ),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Reply::Full { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }
}

pub type Behaviour = dyn Fn(&Req, usize) -> Reply + Send + Sync;

/// A fake API server on 127.0.0.1 with a kubeconfig (token file auth) pointing at it.
pub struct FakeApi {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Req>>>,
    /// The SNI name of each TLS handshake that completed (`-` when none was sent).
    pub sni: Arc<Mutex<Vec<String>>>,
    pub stop: Arc<AtomicBool>,
    pub dir: TempDir,
}

impl FakeApi {
    /// Starts the server; `behaviour` answers request number `n` (0-based, all paths).
    pub fn start(
        name: &str,
        behaviour: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_on(name, "127.0.0.1:0", behaviour)
    }

    /// Same, on a given address.
    pub fn start_on(
        name: &str,
        addr: &str,
        behaviour: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::launch(name, addr, None, behaviour)
    }

    /// Same over TLS, with a certificate valid only for the DNS names or IPs `sans`, issued
    /// by a CA written to `ca.pem` in its directory.
    pub fn start_tls(
        name: &str,
        sans: &[&str],
        behaviour: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let now = now();
        let ca = Cert::self_signed(&Spec::new("fake API CA", now - 60, now + 86_400).ca());
        let server = Cert::signed(
            &Spec::new("fake API", now - 60, now + 86_400)
                .serial(&[2])
                .sans(sans),
            &ca,
        );
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server.key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![server.der().into()], key)
        .unwrap();
        let api = Self::launch(name, "127.0.0.1:0", Some(Arc::new(config)), behaviour);
        api.dir.write("ca.pem", ca.pem());
        api
    }

    pub fn launch(
        name: &str,
        addr: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
        behaviour: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sni = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let behaviour: Arc<Behaviour> = Arc::new(behaviour);
        {
            let requests = Arc::clone(&requests);
            let sni = Arc::clone(&sni);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let requests = Arc::clone(&requests);
                    let sni = Arc::clone(&sni);
                    let behaviour = Arc::clone(&behaviour);
                    let tls = tls.clone();
                    std::thread::spawn(move || match tls {
                        None => connection(stream, &*behaviour, &requests),
                        Some(config) => {
                            stream
                                .set_read_timeout(Some(Duration::from_secs(120)))
                                .unwrap();
                            let mut conn = rustls::ServerConnection::new(config).unwrap();
                            let mut stream = stream;
                            // A handshake the client refuses ends the connection here.
                            while conn.is_handshaking() {
                                if conn.complete_io(&mut stream).is_err() {
                                    return;
                                }
                            }
                            sni.lock()
                                .unwrap()
                                .push(conn.server_name().unwrap_or("-").to_string());
                            let tls = rustls::StreamOwned::new(conn, stream);
                            serve(tls, &*behaviour, &requests)
                        }
                    });
                }
            });
        }
        let dir = TempDir::new(name);
        write_kubeconfig(&dir, addr);
        Self {
            addr,
            requests,
            sni,
            stop,
            dir,
        }
    }

    pub fn kubeconfig(&self) -> String {
        self.dir.str("kubeconfig")
    }

    /// Replaces the token file atomically (as kubelet does).
    pub fn set_token(&self, token: &str) {
        let tmp = self.dir.write("token.tmp", token);
        std::fs::rename(tmp, self.dir.path("token")).unwrap();
    }

    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Waits (at most 20 s) until at least `n` requests were received.
    pub fn wait_requests(&self, n: usize) -> Vec<Req> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all = self.requests();
            if all.len() >= n {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} requests: {all:#?}",
                all.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `kubeconfig` (current context: `server: http://ADDR`, a user with `tokenFile: token`) and
/// `token` in `dir`.
pub fn write_kubeconfig(dir: &TempDir, addr: SocketAddr) {
    dir.write("token", "token-1\n");
    dir.write(
        "kubeconfig",
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\nusers:\n- name: fake\n  user:\n    tokenFile: token\n"
        ),
    );
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Serves the requests of one connection (keep-alive) until the client closes it.
pub fn connection(stream: TcpStream, behaviour: &Behaviour, requests: &Mutex<Vec<Req>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    serve(stream, behaviour, requests);
}

/// Serves HTTP/1.1 requests over `stream` (plain or TLS) until it closes.
pub fn serve(stream: impl Read + Write, behaviour: &Behaviour, requests: &Mutex<Vec<Req>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        let mut auth = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.trim().eq_ignore_ascii_case("authorization") {
                    auth = Some(value.trim().to_string());
                }
            }
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let req = Req {
            method,
            path: percent_decode(path),
            query: query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
            auth,
            at: Instant::now(),
        };
        let n = {
            let mut all = requests.lock().unwrap();
            all.push(req.clone());
            all.len() - 1
        };
        match behaviour(&req, n) {
            Reply::Full {
                status,
                headers,
                body,
            } => {
                let mut head = format!(
                    "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                    reason_phrase(status),
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let writer = reader.get_mut();
                if writer.write_all(head.as_bytes()).is_err()
                    || writer.write_all(body.as_bytes()).is_err()
                    || writer.flush().is_err()
                {
                    return;
                }
            }
            Reply::Stream(lines) => {
                let writer = reader.get_mut();
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if writer.write_all(head.as_bytes()).is_err() || writer.flush().is_err() {
                    return;
                }
                for line in lines.iter() {
                    let chunk = format!("{:x}\r\n{line}\n\r\n", line.len() + 1);
                    if writer.write_all(chunk.as_bytes()).is_err() || writer.flush().is_err() {
                        return;
                    }
                }
                if writer.write_all(b"0\r\n\r\n").is_err() || writer.flush().is_err() {
                    return;
                }
            }
            Reply::Truncated(body) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len() + 4096
                );
                let writer = reader.get_mut();
                let _ = writer.write_all(head.as_bytes());
                let _ = writer.write_all(body.as_bytes());
                let _ = writer.flush();
                // Dropping the stream closes the connection.
                return;
            }
        }
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Other",
    }
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

// ---------------------------------------------------------------------------------------
// Kubernetes JSON
// ---------------------------------------------------------------------------------------

pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn json_map(pairs: &[(&str, String)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A Secret; `data` values are given raw and base64-encoded here.
pub fn secret(ns: &str, name: &str, rv: &str, kind: &str, data: &[(&str, &[u8])]) -> String {
    let data: Vec<(&str, String)> = data.iter().map(|(k, v)| (*k, b64(v))).collect();
    secret_b64(ns, name, rv, kind, &data)
}

/// A Secret whose `data` values are given as they appear in the JSON.
pub fn secret_b64(ns: &str, name: &str, rv: &str, kind: &str, data: &[(&str, String)]) -> String {
    format!(
        "{{\"metadata\":{{\"name\":{},\"namespace\":{},\"resourceVersion\":{},\"labels\":{{}}}},\"type\":{},\"data\":{}}}",
        json_str(name),
        json_str(ns),
        json_str(rv),
        json_str(kind),
        json_map(data)
    )
}

pub fn tls_secret(ns: &str, name: &str, rv: &str, cert_pem: &str) -> String {
    secret(
        ns,
        name,
        rv,
        "kubernetes.io/tls",
        &[("tls.crt", cert_pem.as_bytes())],
    )
}

pub fn configmap(
    ns: &str,
    name: &str,
    data: &[(&str, String)],
    binary: &[(&str, String)],
) -> String {
    format!(
        "{{\"metadata\":{{\"name\":{},\"namespace\":{},\"resourceVersion\":\"3\"}},\"data\":{},\"binaryData\":{}}}",
        json_str(name),
        json_str(ns),
        json_map(data),
        json_map(binary)
    )
}

pub fn namespace(name: &str) -> String {
    format!(
        "{{\"metadata\":{{\"name\":{},\"resourceVersion\":\"1\",\"labels\":{{}}}}}}",
        json_str(name)
    )
}

pub fn list(kind: &str, items: &[String], next: &str) -> String {
    format!(
        "{{\"kind\":{},\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"1\",\"continue\":{}}},\"items\":[{}]}}",
        json_str(kind),
        json_str(next),
        items.join(",")
    )
}

/// One page of `items` as the API server would cut it: `limit` items from the offset in
/// the `continue` token (`c-OFFSET`), and the token of the next page.
pub fn page(kind: &str, items: &[String], req: &Req) -> Reply {
    let limit: usize = req
        .param("limit")
        .map_or(items.len(), |l| l.parse().unwrap());
    let from: usize = req
        .param("continue")
        .map_or(0, |c| c.strip_prefix("c-").unwrap().parse().unwrap());
    let to = (from + limit).min(items.len());
    let next = if to < items.len() {
        format!("c-{to}")
    } else {
        String::new()
    };
    Reply::ok(list(kind, &items[from..to], &next))
}
