//! A small blocking client for the Kubernetes REST API on ureq and rustls: TLS from the
//! cluster configuration (with `tls-server-name`), the proxy [`super::proxy`] chooses, bearer
//! tokens (re-read from their file before each request, or from an exec plugin, cached until
//! expiry), explicit timeouts, a client-side token bucket, and `Status` bodies and redirects
//! turned into errors. Text taken from a remote body is cut short before it is kept.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use ureq::http::Uri;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    ConnectProxyConnector, ConnectionDetails, Connector, RustlsConnector, TcpConnector, Transport,
};

use super::config::{Auth, ClusterConfig, ExecConfig};

/// Time allowed to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the response head, then for the whole body.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
const BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response body accepted (a page of 100 objects of at most 1 MiB each).
const MAX_BODY: u64 = 128 * 1024 * 1024;
/// Largest watch event accepted: one object of at most 1.5 MiB (etcd's default request
/// limit), base64 and JSON included.
pub const MAX_EVENT: u64 = 4 * 1024 * 1024;
/// Longest an exec credential plugin may run, until its output closes.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest ExecCredential read from a plugin.
const MAX_EXEC_OUTPUT: u64 = 1024 * 1024;
/// Longest text taken from a remote body (a `Status` message, an error body, a plugin's
/// output) that is kept whole; longer text is cut and says so.
pub const MAX_MESSAGE: usize = 512;
/// How many lines of a plugin's stderr are logged per run (each cut to [`MAX_MESSAGE`]).
const MAX_STDERR_LINES: usize = 20;

/// `text` made fit for one log line: control characters escaped, and cut to
/// [`MAX_MESSAGE`] bytes on a character boundary with the original length appended.
pub fn cut(text: &str) -> String {
    let mut end = text.len().min(MAX_MESSAGE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 32);
    for c in text[..end].chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if end < text.len() {
        out.push_str(&format!("\u{2026} (cut, {} bytes)", text.len()));
    }
    out
}

/// [`cut`] for bytes that may not be UTF-8; the length given is that of all of `bytes`.
fn cut_bytes(bytes: &[u8]) -> String {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_MESSAGE)]);
    let head = head.trim_end_matches('\u{fffd}');
    let mut text = cut(head.trim());
    if bytes.len() > MAX_MESSAGE {
        text.push_str(&format!("\u{2026} (cut, {} bytes)", bytes.len()));
    }
    text
}

/// A failed API call.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    /// `reason` of a `Status` body (`Forbidden`, `Expired`), or a short cause.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// From a `Retry-After` header.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    fn transport(message: String) -> Self {
        Self {
            status: None,
            reason: String::new(),
            message,
            retry_after: None,
        }
    }

    /// A `410 Gone` whose continue token has expired.
    pub fn is_expired(&self) -> bool {
        self.status == Some(410)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, self.reason.is_empty()) {
            (Some(code), false) => write!(f, "{code} {}: {}", self.reason, self.message),
            (Some(code), true) => write!(f, "{code}: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

/// A client for one API server. Clones share the connection pool, the exec plugin's
/// token and the rate limit: a source's threads (its lists and each watch) are one client
/// to the server.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    server: String,
    auth: Auth,
    exec_token: Arc<Mutex<Option<Token>>>,
    limiter: Option<Arc<Mutex<TokenBucket>>>,
}

/// A bearer token from an exec plugin, and when it expires.
type Token = (String, Option<Instant>);

/// The events of one watch, read one line at a time as they arrive.
pub struct Stream {
    reader: BufReader<ureq::BodyReader<'static>>,
    line: Vec<u8>,
}

impl Stream {
    /// The next event's line (without its newline), or `None` when the server ended the
    /// watch. A line longer than [`MAX_EVENT`] is an error: the watch cannot go on in step.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, ApiError> {
        self.line.clear();
        let read = (&mut self.reader)
            .take(MAX_EVENT + 1)
            .read_until(b'\n', &mut self.line)
            .map_err(|e| {
                let inner = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>());
                match inner {
                    Some(ureq::Error::Timeout(_)) => ApiError::transport(
                        "timed out: the watch stayed silent past its timeout".to_string(),
                    ),
                    _ => {
                        ApiError::transport(format!("reading the watch: {}", crate::fsio::why(&e)))
                    }
                }
            })?;
        if read == 0 {
            return Ok(None);
        }
        if self.line.len() as u64 > MAX_EVENT {
            return Err(ApiError::transport(format!(
                "a watch event longer than {MAX_EVENT} bytes"
            )));
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        } else {
            return Err(ApiError::transport(
                "the watch ended in the middle of an event".to_string(),
            ));
        }
        Ok(Some(&self.line))
    }

    /// Whether every byte received so far has been handed out: the server has sent nothing
    /// more yet, so this is a moment to act on the events read.
    pub fn drained(&self) -> bool {
        self.reader.buffer().is_empty()
    }
}

impl Client {
    /// Builds the TLS and HTTP configuration; `qps` and `burst` enable the rate limit when
    /// both are above zero.
    pub fn new(config: &ClusterConfig, qps: f64, burst: u32) -> Result<Self, String> {
        let mut tls = TlsConfig::builder().disable_verification(config.insecure);
        if !config.ca.is_empty() {
            let roots: Vec<Certificate<'static>> = config
                .ca
                .iter()
                .map(|der| Certificate::from_der(der).to_owned())
                .collect();
            tls = tls.root_certs(RootCerts::Specific(Arc::new(roots)));
        }
        if let Some((cert_pem, key_pem)) = &config.client_cert {
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(cert_pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!(
                    "{}: client certificate: no certificate found",
                    config.origin
                ));
            }
            let key = PrivateKey::from_pem(key_pem)
                .map_err(|e| format!("{}: client key: {e}", config.origin))?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&certs, key)));
        }
        let env = |name: &str| std::env::var(name).ok();
        let proxy = match super::proxy::choose(&config.server, config.proxy.as_deref(), &env)
            .map_err(|e| format!("{}: {e}", config.origin))?
        {
            Some(choice) => {
                let shown = super::proxy::redact(&choice.url);
                log::info!(
                    "Kubernetes API {} through proxy {shown} (from {})",
                    config.server,
                    choice.from
                );
                Some(
                    ureq::Proxy::new(&choice.url)
                        .map_err(|e| format!("{}: {} {shown}: {e}", config.origin, choice.from))?,
                )
            }
            None => None,
        };
        let connector = ServerNameTls::new(&config.server, config.tls_server_name.as_deref())
            .map_err(|e| format!("{}: {e}", config.origin))?;
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .proxy(proxy)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(RESPONSE_TIMEOUT))
            .timeout_recv_body(Some(BODY_TIMEOUT))
            .user_agent(concat!(
                "x509-certificate-exporter/",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        // No socks and no other TLS provider: an HTTP(S) proxy, TCP, then rustls.
        let chain =
            ().chain(ConnectProxyConnector::default())
                .chain(TcpConnector::default())
                .chain(connector);
        let agent = ureq::Agent::with_parts(agent, chain, DefaultResolver::default());
        Ok(Self {
            agent,
            server: config.server.clone(),
            auth: config.auth.clone(),
            exec_token: Arc::default(),
            limiter: (qps > 0.0 && burst > 0)
                .then(|| Arc::new(Mutex::new(TokenBucket::new(qps, burst)))),
        })
    }

    /// GETs `path` with the query pairs and returns the whole body of a 200 response.
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<u8>, ApiError> {
        let mut response = self.call(path, query, BODY_TIMEOUT)?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| ApiError::transport(format!("reading the response: {}", describe(&e))))
    }

    /// Opens a watch: GETs `path` with the query pairs (which ask for `watch=true` and a
    /// `timeoutSeconds`) and returns its events as they come. A watch still open `within`
    /// after its head came fails with a timeout: the server should have ended it by then.
    pub fn watch(
        &self,
        path: &str,
        query: &[(&str, &str)],
        within: Duration,
    ) -> Result<Stream, ApiError> {
        let response = self.call(path, query, within)?;
        let reader = response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader();
        Ok(Stream {
            reader: BufReader::with_capacity(64 * 1024, reader),
            line: Vec::new(),
        })
    }

    /// Sends a GET (after the rate limit lets it go) and returns a 200 response, its body
    /// still to read within `body_timeout`; any other answer is an error.
    fn call(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body_timeout: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, ApiError> {
        if let Some(limiter) = &self.limiter {
            lock(limiter).acquire();
        }
        let mut request = self.agent.get(format!("{}{path}", self.server));
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        if let Some(token) = self.token()? {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request
            .header("Accept", "application/json")
            .config()
            .timeout_recv_body(Some(body_timeout))
            .build()
            .call()
            .map_err(|e| ApiError::transport(describe(&e)))?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let location = response
            .headers()
            .get("location")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| ApiError::transport(format!("reading the response: {}", describe(&e))))?;
        if status == 401 {
            *lock(&self.exec_token) = None;
        }
        if (300..400).contains(&status) {
            // Redirects are not followed (the token would go along): say where it led.
            let message = match location {
                Some(to) => format!("redirected to {}, which is not followed", cut(&to)),
                None => "redirected (no Location), which is not followed".to_string(),
            };
            return Err(ApiError {
                status: Some(status),
                reason: String::new(),
                message,
                retry_after,
            });
        }
        let parsed: Option<StatusBody> = serde_json::from_slice(&body).ok();
        let (reason, message) = match parsed {
            Some(s) => (
                cut(&s.reason.unwrap_or_default()),
                cut(&s.message.unwrap_or_default()),
            ),
            None => (String::new(), cut_bytes(&body)),
        };
        Err(ApiError {
            status: Some(status),
            reason,
            message,
            retry_after,
        })
    }

    /// The bearer token for the next request, if any.
    fn token(&self) -> Result<Option<String>, ApiError> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Token(token) => Ok(Some(token.clone())),
            Auth::TokenFile(path) => std::fs::read_to_string(path)
                .map(|t| Some(t.trim().to_string()))
                .map_err(|e| {
                    ApiError::transport(format!(
                        "read token {}: {}",
                        path.display(),
                        crate::fsio::why(&e)
                    ))
                }),
            Auth::Exec(exec) => {
                // Held while the plugin runs: the source's other threads wait for its
                // token rather than run it again.
                let mut cached = lock(&self.exec_token);
                let fresh = cached
                    .as_ref()
                    .is_some_and(|(_, expiry)| expiry.is_none_or(|at| Instant::now() < at));
                if !fresh {
                    *cached = Some(run_exec(exec).map_err(ApiError::transport)?);
                }
                Ok(cached.as_ref().map(|(t, _)| t.clone()))
            }
        }
    }
}

fn describe(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Timeout(what) => format!("timed out ({what})"),
        ureq::Error::Io(e) => crate::fsio::why(e),
        other => cut(&other.to_string()),
    }
}

/// The rustls connector of ureq, handed the `tls-server-name` in place of the API server's
/// host when one is set: the certificate is verified against that name (with the same
/// roots, client certificate and full verification) and SNI sends it, while the TCP
/// connection and any proxy `CONNECT` still go to the URL's host.
#[derive(Debug)]
struct ServerNameTls {
    /// The API server's authority, and the URL that names it by `tls-server-name`.
    rename: Option<(Uri, Uri)>,
    inner: RustlsConnector,
}

impl ServerNameTls {
    fn new(server: &str, name: Option<&str>) -> Result<Self, String> {
        let rename = match name {
            None => None,
            Some(name) => {
                let server_uri: Uri = server
                    .parse()
                    .map_err(|e| format!("server {server}: {e}"))?;
                let port = server_uri.port_u16().unwrap_or(443);
                let host = match name.parse::<std::net::Ipv6Addr>() {
                    Ok(_) => format!("[{name}]"),
                    Err(_) => name.to_string(),
                };
                let named: Uri = format!("https://{host}:{port}/")
                    .parse()
                    .map_err(|e| format!("tls-server-name {name:?}: {e}"))?;
                Some((server_uri, named))
            }
        };
        Ok(Self {
            rename,
            inner: RustlsConnector::default(),
        })
    }
}

impl<In: Transport> Connector<In> for ServerNameTls {
    type Out = <RustlsConnector as Connector<In>>::Out;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some((server, named)) = &self.rename else {
            return self.inner.connect(details, chained);
        };
        // Only the API server is renamed, not an https:// proxy on the way to it.
        if details.uri.authority() != server.authority() {
            return self.inner.connect(details, chained);
        }
        let renamed = ConnectionDetails {
            uri: named,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: Arc::clone(&details.current_time),
            run_connector: Arc::clone(&details.run_connector),
            register_shutdown: Arc::clone(&details.register_shutdown),
        };
        self.inner.connect(&renamed, chained)
    }
}

#[derive(Deserialize)]
struct StatusBody {
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ExecCredential {
    status: Option<ExecStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecStatus {
    token: Option<String>,
    expiration_timestamp: Option<String>,
}

/// What the threads reading a plugin's pipes report.
enum PipeEvent {
    /// All of stdout (up to its end), or why it could not be used.
    Stdout(Result<Vec<u8>, String>),
    /// Stderr reached its end.
    StderrClosed,
}

/// Runs an exec credential plugin in its own process group; returns its token and when to
/// ask again. Its stderr is logged line by line. A plugin whose output is not closed within
/// [`EXEC_TIMEOUT`] (it hangs, or a process it left behind holds its pipes) is killed with
/// its whole process group.
fn run_exec(exec: &ExecConfig) -> Result<(String, Option<Instant>), String> {
    let what = format!("exec credential plugin {}", exec.command);
    let command = if exec.command.contains('/') && !exec.command.starts_with('/') {
        exec.dir.join(&exec.command).display().to_string()
    } else {
        exec.command.clone()
    };
    let info = format!(
        "{{\"apiVersion\":{},\"kind\":\"ExecCredential\",\"spec\":{{\"interactive\":false}}}}",
        serde_json::Value::from(exec.api_version.as_str())
    );
    let mut child = Command::new(&command)
        .args(&exec.args)
        .envs(exec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("KUBERNETES_EXEC_INFO", info)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{what}: {}", crate::fsio::why(&e)))?;
    let (tx, rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(PipeEvent::Stdout(read_stdout(stdout)));
        });
    }
    if let Some(stderr) = child.stderr.take() {
        let who = exec.command.clone();
        std::thread::spawn(move || {
            log_stderr(stderr, &who);
            let _ = tx.send(PipeEvent::StderrClosed);
        });
    }
    let deadline = Instant::now() + EXEC_TIMEOUT;
    let (mut output, mut stderr_closed, mut status) = (None, false, None);
    let status = loop {
        if status.is_none() {
            status = child.try_wait().ok().flatten();
        }
        if let (Some(status), Some(_), true) = (status, &output, stderr_closed) {
            break status;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            kill_group(&mut child);
            return Err(match status {
                None => format!("{what}: did not finish within {EXEC_TIMEOUT:?}; killed"),
                Some(_) => format!(
                    "{what}: exited, but a process it started kept its output open for {EXEC_TIMEOUT:?}; killed its process group"
                ),
            });
        }
        match rx.recv_timeout(left.min(Duration::from_millis(20))) {
            Ok(PipeEvent::Stdout(out)) => output = Some(out),
            Ok(PipeEvent::StderrClosed) => stderr_closed = true,
            Err(_) => {}
        }
    };
    let output = output
        .unwrap_or_else(|| Ok(Vec::new()))
        .map_err(|e| format!("{what}: {e}"))?;
    if !status.success() {
        return Err(format!("{what}: exited with {status}"));
    }
    let credential: ExecCredential = serde_json::from_slice(&output)
        .map_err(|e| format!("{what}: invalid ExecCredential: {}", cut(&e.to_string())))?;
    let status = credential
        .status
        .ok_or_else(|| format!("{what}: no status in its ExecCredential"))?;
    let token = status
        .token
        .ok_or_else(|| format!("{what}: no token in its ExecCredential"))?;
    let expiry = match status.expiration_timestamp {
        None => None,
        Some(text) => {
            let at = parse_rfc3339(&text)
                .ok_or_else(|| format!("{what}: bad expirationTimestamp {:?}", cut(&text)))?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            // Ask again a little before it expires.
            let left = (at - now - 10).max(0) as u64;
            Some(Instant::now() + Duration::from_secs(left))
        }
    };
    Ok((token, expiry))
}

/// All of a plugin's stdout; more than [`MAX_EXEC_OUTPUT`] is read to its end (so the
/// plugin is not blocked) and refused.
fn read_stdout(mut stdout: impl Read) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    (&mut stdout)
        .take(MAX_EXEC_OUTPUT + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("reading its output: {}", crate::fsio::why(&e)))?;
    if out.len() as u64 > MAX_EXEC_OUTPUT {
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        return Err(format!("output longer than {MAX_EXEC_OUTPUT} bytes"));
    }
    Ok(out)
}

/// Logs a plugin's stderr, one warning per line (each cut to [`MAX_MESSAGE`]), at most
/// [`MAX_STDERR_LINES`] lines; the rest is read and counted, not logged.
fn log_stderr(stderr: impl Read, who: &str) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let (mut logged, mut dropped) = (0, 0u64);
    loop {
        line.clear();
        // Read one line, keeping at most MAX_MESSAGE bytes of it.
        let mut total = 0u64;
        let mut ended = false;
        loop {
            let buf = match reader.fill_buf() {
                Ok([]) | Err(_) => {
                    ended = true;
                    break;
                }
                Ok(buf) => buf,
            };
            let (chunk, newline) = match buf.iter().position(|&b| b == b'\n') {
                Some(at) => (&buf[..at], true),
                None => (buf, false),
            };
            let room = MAX_MESSAGE.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            total += chunk.len() as u64;
            let used = chunk.len() + usize::from(newline);
            reader.consume(used);
            if newline {
                break;
            }
        }
        if ended && total == 0 {
            break;
        }
        if logged < MAX_STDERR_LINES {
            let mut text = cut_bytes(&line);
            if total > line.len() as u64 {
                text.push_str(&format!("\u{2026} (cut, {total} bytes)"));
            }
            log::warn!("exec credential plugin {who}: {text}");
            logged += 1;
        } else {
            dropped += 1;
        }
        if ended {
            break;
        }
    }
    if dropped > 0 {
        log::warn!("exec credential plugin {who}: {dropped} more lines of stderr not logged");
    }
}

/// Kills a plugin and every process of its group (it was started as the group's leader,
/// so the group's ID is its PID), then reaps it.
fn kill_group(child: &mut Child) {
    let group = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.kill();
    let _ = child.wait();
}

/// `2026-01-02T03:04:05Z` or with a fraction and a `±HH:MM` offset, to Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':' =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (num(text.len() - 5, 2)? * 3600 + num(text.len() - 2, 2)? * 60)
        }
        _ => return None,
    };
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A client-side token bucket: `burst` requests at once, then `qps` per second.
struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(qps: f64, burst: u32) -> Self {
        Self {
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    /// Waits until a request may go.
    fn acquire(&mut self) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(self.burst);
        self.last = now;
        if self.tokens < 1.0 {
            let wait = (1.0 - self.tokens) / self.qps;
            std::thread::sleep(Duration::from_secs_f64(wait));
            self.tokens = 1.0;
            self.last = Instant::now();
        }
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2030-12-31T23:59:59Z"), Some(1_924_991_999));
        assert_eq!(
            parse_rfc3339("2030-12-31T23:59:59.123456Z"),
            Some(1_924_991_999)
        );
        assert_eq!(
            parse_rfc3339("2031-01-01T01:59:59+02:00"),
            Some(1_924_991_999)
        );
        assert_eq!(
            parse_rfc3339("2030-12-31T22:59:59-01:00"),
            Some(1_924_991_999)
        );
        for bad in [
            "",
            "2030-12-31",
            "2030-13-01T00:00:00Z",
            "2030-12-31T23:59:59",
            "x030-12-31T23:59:59Z",
            // An offset of six bytes that are not six characters: no slicing inside one.
            "2030-12-31T23:59:59+\u{e9}\u{e9}0",
            "2030-12-31T23:59:59.\u{e9}",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn token_bucket_spaces_requests_after_the_burst() {
        let mut bucket = TokenBucket::new(50.0, 2);
        let start = Instant::now();
        for _ in 0..4 {
            bucket.acquire();
        }
        // Two free, then two at 50/s: at least ~40 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(35),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn remote_text_is_cut_on_a_char_boundary_and_says_so() {
        assert_eq!(cut("short"), "short");
        assert_eq!(cut("two\nlines\x1b[31m"), "two\\nlines\\u{1b}[31m");
        // 'é' is two bytes: the cut falls inside one and moves back.
        let long = format!("a{}", "é".repeat(1000));
        let text = cut(&long);
        assert!(text.starts_with(&format!("a{}", "é".repeat(255))), "{text}");
        assert!(text.ends_with("é\u{2026} (cut, 2001 bytes)"), "{text}");
        assert!(text.len() <= MAX_MESSAGE + 30);
        let body = vec![b'x'; 5_000_000];
        let text = cut_bytes(&body);
        assert_eq!(
            text,
            format!("{}\u{2026} (cut, 5000000 bytes)", "x".repeat(MAX_MESSAGE))
        );
        // Invalid UTF-8 cut in the middle of a sequence loses the partial character only.
        let mut bytes = vec![b'y'; MAX_MESSAGE - 1];
        bytes.extend_from_slice("é".as_bytes());
        assert!(cut_bytes(&bytes).starts_with(&"y".repeat(MAX_MESSAGE - 1)));
        assert!(!cut_bytes(&bytes).contains('\u{fffd}'));
    }

    #[test]
    fn errors_read_with_status_and_reason() {
        let err = ApiError {
            status: Some(403),
            reason: "Forbidden".into(),
            message: "secrets is forbidden".into(),
            retry_after: None,
        };
        assert_eq!(err.to_string(), "403 Forbidden: secrets is forbidden");
        assert!(!err.is_expired());
    }
}
