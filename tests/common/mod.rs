//! Test harness: start the real binary on 127.0.0.1:0, scrape it over HTTP, parse the
//! exposition, and generate certificates at run time (no test depends on today's date).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, SerialNumber,
};

pub mod cluster;
pub mod fake_api;
pub mod prometheus;

pub const BIN: &str = env!("CARGO_BIN_EXE_x509-certificate-exporter");

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("x509e-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    pub fn str(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, data).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a generated certificate should hold.
#[derive(Clone)]
pub struct Spec {
    pub cn: String,
    pub serial: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    /// (C, ST, L, O, OU)
    pub dn: Option<[&'static str; 5]>,
    pub ca: bool,
    /// Subject alternative names (DNS names or IP addresses).
    pub sans: Vec<String>,
}

impl Spec {
    pub fn new(cn: &str, not_before: i64, not_after: i64) -> Self {
        Self {
            cn: cn.to_string(),
            serial: vec![1],
            not_before,
            not_after,
            dn: None,
            ca: false,
            sans: Vec::new(),
        }
    }

    pub fn sans(mut self, names: &[&str]) -> Self {
        self.sans = names.iter().map(|n| n.to_string()).collect();
        self
    }

    pub fn serial(mut self, serial: &[u8]) -> Self {
        self.serial = serial.to_vec();
        self
    }

    pub fn dn(mut self, dn: [&'static str; 5]) -> Self {
        self.dn = Some(dn);
        self
    }

    pub fn ca(mut self) -> Self {
        self.ca = true;
        self
    }

    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::new(self.sans.clone()).unwrap();
        params.serial_number = Some(SerialNumber::from_slice(&self.serial));
        params.not_before = time::OffsetDateTime::from_unix_timestamp(self.not_before).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(self.not_after).unwrap();
        let mut dn = DistinguishedName::new();
        if let Some([c, st, l, o, ou]) = self.dn {
            dn.push(DnType::CountryName, c);
            dn.push(DnType::StateOrProvinceName, st);
            dn.push(DnType::LocalityName, l);
            dn.push(DnType::OrganizationName, o);
            dn.push(DnType::OrganizationalUnitName, ou);
        }
        dn.push(DnType::CommonName, self.cn.as_str());
        params.distinguished_name = dn;
        if self.ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        params
    }
}

/// A generated certificate with its key, able to sign others.
pub struct Cert {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Cert {
    pub fn self_signed(spec: &Spec) -> Self {
        let key = KeyPair::generate().unwrap();
        let cert = spec.params().self_signed(&key).unwrap();
        Self { cert, key }
    }

    pub fn signed(spec: &Spec, issuer: &Cert) -> Self {
        let key = KeyPair::generate().unwrap();
        let cert = spec
            .params()
            .signed_by(&key, &issuer.cert, &issuer.key)
            .unwrap();
        Self { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// The private key, as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, written
/// to `dir` as ca.pem, server.pem, server-key.pem, client.pem, client-key.pem.
pub fn write_tls_files(dir: &TempDir, server_cn: &str) -> Cert {
    let now = now();
    let ca = Cert::self_signed(&Spec::new("test CA", now - 60, now + 86_400).ca());
    let server = Cert::signed(
        &Spec::new(server_cn, now - 60, now + 86_400)
            .serial(&[2])
            .sans(&["127.0.0.1", "localhost"]),
        &ca,
    );
    let client = Cert::signed(
        &Spec::new("scraper", now - 60, now + 86_400).serial(&[3]),
        &ca,
    );
    dir.write("ca.pem", ca.pem());
    dir.write("server.pem", server.pem());
    dir.write("server-key.pem", server.key_pem());
    dir.write("client.pem", client.pem());
    dir.write("client-key.pem", client.key_pem());
    ca
}

/// A self-signed certificate valid from `not_before` to `not_after`, as PEM.
pub fn pem(cn: &str, not_before: i64, not_after: i64) -> String {
    Cert::self_signed(&Spec::new(cn, not_before, not_after)).pem()
}

/// Standard base64 (written here so tests do not share the exporter's decoder).
pub fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(match i <= chunk.len() {
                true => T[(n >> (18 - 6 * i)) as usize & 63] as char,
                false => '=',
            });
        }
    }
    out
}

/// One sample of the exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub body: String,
    pub samples: Vec<Sample>,
}

impl Metrics {
    pub fn parse(body: &str) -> Self {
        let samples = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(parse_sample)
            .collect();
        Self {
            body: body.to_string(),
            samples,
        }
    }

    pub fn named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Sample> + 'a {
        let name = name.to_string();
        self.samples.iter().filter(move |s| s.name == name)
    }

    pub fn count(&self, name: &str) -> usize {
        self.named(name).count()
    }

    /// The values of `label` on every `x509_cert_not_after` series, sorted.
    pub fn label_values(&self, label: &str) -> Vec<String> {
        let mut v: Vec<_> = self
            .named("x509_cert_not_after")
            .map(|s| s.labels.get(label).cloned().unwrap_or_default())
            .collect();
        v.sort();
        v
    }

    /// The value of a metric without labels (or the only sample of that name).
    pub fn value(&self, name: &str) -> f64 {
        let all: Vec<_> = self.named(name).collect();
        assert_eq!(all.len(), 1, "expected one {name} in\n{}", self.body);
        all[0].value
    }

    /// Samples of `name` whose labels include every pair given.
    pub fn find(&self, name: &str, pairs: &[(&str, &str)]) -> Vec<&Sample> {
        self.named(name)
            .filter(|s| {
                pairs
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample of `name` with these labels.
    pub fn one(&self, name: &str, pairs: &[(&str, &str)]) -> &Sample {
        let found = self.find(name, pairs);
        assert_eq!(
            found.len(),
            1,
            "expected one {name} with {pairs:?} in\n{}",
            self.body
        );
        found[0]
    }
}

fn parse_sample(line: &str) -> Sample {
    let (head, value) = line.rsplit_once(' ').unwrap();
    let value: f64 = value.parse().unwrap();
    let (name, labels) = match head.find('{') {
        None => (head.to_string(), BTreeMap::new()),
        Some(at) => {
            let inner = &head[at + 1..head.len() - 1];
            (head[..at].to_string(), parse_labels(inner))
        }
    };
    Sample {
        name,
        labels,
        value,
    }
}

fn parse_labels(mut s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    while !s.is_empty() {
        let eq = s.find("=\"").unwrap();
        let name = s[..eq].to_string();
        let mut value = String::new();
        let mut chars = s[eq + 2..].char_indices();
        let mut end = 0;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next().unwrap().1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => {
                    end = eq + 2 + i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(name, value);
        s = s[end..].trim_start_matches(',');
    }
    out
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// One request over a fresh connection (`Connection: close`).
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

/// Decodes a chunked transfer-encoded body.
pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        // No body at all (a HEAD response) is no chunk.
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            assert!(data.is_empty(), "truncated chunked body");
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 4 + size..];
    }
}

/// How long a test waits for a line of the exporter's log.
pub const LOG_WAIT: Duration = Duration::from_secs(20);

/// What a line of the log must hold: a substring, or several (all on the same line).
pub trait LogPattern {
    /// Whether `line` matches.
    fn is_in(&self, line: &str) -> bool;
    /// The pattern, for a failure message.
    fn describe(&self) -> String;
}

impl LogPattern for &str {
    fn is_in(&self, line: &str) -> bool {
        line.contains(*self)
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl LogPattern for String {
    fn is_in(&self, line: &str) -> bool {
        line.contains(self.as_str())
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl LogPattern for &String {
    fn is_in(&self, line: &str) -> bool {
        line.contains(self.as_str())
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl LogPattern for &[&str] {
    fn is_in(&self, line: &str) -> bool {
        self.iter().all(|part| line.contains(part))
    }
    fn describe(&self) -> String {
        format!("all of {self:?}")
    }
}

impl<const N: usize> LogPattern for [&str; N] {
    fn is_in(&self, line: &str) -> bool {
        self.iter().all(|part| line.contains(part))
    }
    fn describe(&self) -> String {
        format!("all of {self:?}")
    }
}

/// A running exporter, killed when dropped.
pub struct Exporter {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// Starts the binary on 127.0.0.1:0 with `args` and waits for it to listen.
    pub fn start(args: &[&str]) -> Self {
        Self::start_in(args, None)
    }

    /// Same, in working directory `dir`.
    pub fn start_in(args: &[&str], dir: Option<&Path>) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.arg("--listen-address=127.0.0.1:0").args(args);
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        Self::spawn(cmd)
    }

    /// Starts a prepared command (usually passing `--listen-address=127.0.0.1:0` to the
    /// binary) and waits for it to log the address it listens on.
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    // "listening on http://ADDR" or "listening on https://ADDR (basic auth)"
                    let addr = line
                        .split("listening on http")
                        .nth(1)
                        .and_then(|rest| rest.split("://").nth(1))
                        .and_then(|addr| addr.split_whitespace().next())
                        .map(str::to_string);
                    // Logged before the address is handed over: a test that starts then
                    // reads the log sees the line.
                    log.lock().unwrap().push(line);
                    if let Some(addr) = addr {
                        let _ = tx.send(addr);
                    }
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().unwrap(),
            Err(_) => {
                kill_tree(&mut child);
                // The log's reader ends at the pipe's end, once the process is gone.
                let deadline = Instant::now() + Duration::from_secs(5);
                while Arc::strong_count(&log) > 1 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                panic!("exporter did not start: {:?}", log.lock().unwrap());
            }
        };
        Self { child, addr, log }
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[])
    }

    /// Waits for /readyz, then scrapes /metrics.
    pub fn metrics(&self) -> Metrics {
        self.wait_ready();
        let response = self.get("/metrics");
        assert_eq!(response.status, 200);
        Metrics::parse(&response.text())
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get("/readyz").status != 200 {
            assert!(
                Instant::now() < deadline,
                "never ready: {:?}",
                self.log_lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// /metrics without waiting for /readyz.
    pub fn scrape(&self) -> Metrics {
        let response = self.get("/metrics");
        assert_eq!(response.status, 200);
        Metrics::parse(&response.text())
    }

    /// Scrapes (without waiting for /readyz) until `check` holds, or panics after 20 s.
    pub fn scrape_until(&self, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
        self.scrape_within(Duration::from_secs(20), what, check)
    }

    /// Scrapes (without waiting for /readyz) until `check` holds, or panics after `limit`.
    pub fn scrape_within(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + limit;
        loop {
            let m = self.scrape();
            if check(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last body:\n{}\nlog:\n{}",
                m.body,
                self.log_lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for /readyz, then scrapes until `check` holds, or panics after 20 s.
    pub fn metrics_until(&self, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = self.metrics();
            if check(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last body:\n{}",
                m.body
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line matches `pattern` and returns the first such line; panics with
    /// the whole log after `limit`, or as soon as the log has ended without one.
    pub fn wait_log(&self, pattern: impl LogPattern, limit: Duration) -> String {
        self.wait_log_all(pattern, limit).swap_remove(0)
    }

    /// [`Exporter::wait_log`] returning every line that matches, in order.
    pub fn wait_log_all(&self, pattern: impl LogPattern, limit: Duration) -> Vec<String> {
        match self.try_wait_log(&pattern, limit) {
            Some(lines) => lines,
            None => panic!(
                "no log line with {} within {limit:?}; the log:\n{}",
                pattern.describe(),
                self.log_lines().join("\n")
            ),
        }
    }

    /// [`Exporter::wait_log`] that answers `None` instead of panicking.
    pub fn try_wait_log(&self, pattern: &impl LogPattern, limit: Duration) -> Option<Vec<String>> {
        let deadline = Instant::now() + limit;
        loop {
            // Read before looking: a line written just before the end is still seen.
            let ended = Arc::strong_count(&self.log) == 1;
            let lines: Vec<String> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|line| pattern.is_in(line))
                .cloned()
                .collect();
            if !lines.is_empty() {
                return Some(lines);
            }
            if ended || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal and waits for the exit status (at most `limit`).
    pub fn signal(&mut self, signal: &str, limit: Duration) -> Option<ExitStatus> {
        Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Starts the binary with `args` under `systemd-socket-activate` (which passes it a
/// listening socket on 127.0.0.1, as systemd does), knocking once so that it starts; returns
/// the exporter and the answer to the knock (`GET /healthz`).
pub fn socket_activated(args: &[&str]) -> (Exporter, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.args(["-l", &format!("127.0.0.1:{port}"), BIN])
        .args(args);
    let knock = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                return answer;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        String::new()
    });
    let exporter = Exporter::spawn(cmd);
    assert_eq!(exporter.addr.port(), port, "serves on the passed socket");
    (exporter, knock.join().unwrap())
}

impl Drop for Exporter {
    fn drop(&mut self) {
        kill_tree(&mut self.child);
    }
}

/// The processes whose parent is `pid`, from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

/// Kills `child`, and when it is `unshare` every process under it (the exporter under
/// `unshare --fork` outlives a killed `unshare`), then reaps `child`. The processes an
/// exporter starts itself (exec credential plugins) are left to it: tests check that it
/// cleans up after them.
fn kill_tree(child: &mut Child) {
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default();
    let mut tree = Vec::new();
    let mut stack = match comm.trim() {
        "unshare" => vec![child.id()],
        _ => Vec::new(),
    };
    while let Some(pid) = stack.pop() {
        let under = children(pid);
        tree.extend(&under);
        stack.extend(under);
    }
    if !tree.is_empty() {
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(tree.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The runtime image's filesystem, as `make rootfs` lays it out (`make test` builds it first).
pub fn rootfs() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/rootfs");
    assert!(
        root.join("usr/local/bin/x509-certificate-exporter")
            .is_file(),
        "{} is missing: run `make rootfs` (make test does)",
        root.display()
    );
    root
}

/// A command that runs the image's binary as the image would: chrooted into a copy of the
/// rootfs, as UID and GID 65532, in a private mount namespace where each (host directory,
/// path in the image) pair is bind-mounted read-only. Keep the returned directory alive.
pub fn in_image(args: &[&str], mounts: &[(&Path, &str)]) -> (Command, TempDir) {
    let root = image_copy();
    let script = image_script(&root, mounts, "");
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script, "sh"])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    (cmd, root)
}

/// [`in_image`] as a container engine runs it: the binary is PID 1 of its own PID
/// namespace, whose /proc is mounted in the image, and has a network namespace of its own
/// with only loopback (so a fixed port such as 8080 is free, and unreachable from the
/// tests but through [`Exporter::exec_in_container`]). Keep the returned directory alive.
pub fn in_container(args: &[&str], mounts: &[(&Path, &str)]) -> (Command, TempDir) {
    let root = image_copy();
    std::fs::create_dir_all(root.path("proc")).unwrap();
    let script = image_script(&root, mounts, "ip link set lo up\n");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--net", "--pid", "--fork"])
        .arg(format!("--mount-proc={}", root.str("proc")))
        .args(["sh", "-c", &script, "sh"])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    (cmd, root)
}

/// A copy of the rootfs, which the tests may add mount points to.
fn image_copy() -> TempDir {
    let root = TempDir::new("image");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rootfs().display()))
        .arg(&root.0)
        .status()
        .unwrap();
    assert!(status.success());
    root
}

/// The shell script that mounts, runs `setup`, and execs the binary chrooted as 65532.
fn image_script(root: &TempDir, mounts: &[(&Path, &str)], setup: &str) -> String {
    let mut script = String::from("set -e\n");
    for (host, inside) in mounts {
        let target = root.0.join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(&target).unwrap();
        script.push_str(&format!(
            "mount --bind '{}' '{}'\nmount -o remount,bind,ro '{}'\n",
            host.display(),
            target.display(),
            target.display()
        ));
    }
    script.push_str(setup);
    script.push_str(&format!(
        "exec chroot --userspec=65532:65532 '{}' /usr/local/bin/x509-certificate-exporter \"$@\"\n",
        root.0.display()
    ));
    script
}

impl Exporter {
    /// The exporter's own process when it runs under [`in_container`]: the one process
    /// `unshare` forked, PID 1 of the namespace.
    pub fn container_pid1(&self) -> u32 {
        let children = children(self.child.id());
        assert_eq!(children.len(), 1, "unshare's children: {children:?}");
        children[0]
    }

    /// Runs the image's binary with `args` in the container of an exporter started by
    /// [`in_container`], as `docker exec` (and a `HEALTHCHECK`) does: in its PID, mount and
    /// network namespaces, chrooted in its root, in its working directory, as 65532.
    pub fn exec_in_container(&self, args: &[&str]) -> std::process::Output {
        let pid = self.container_pid1().to_string();
        Command::new("nsenter")
            .args([
                "--target", &pid, "--pid", "--mount", "--net", "--root", "--wd",
            ])
            .args(["--setuid", "65532", "--setgid", "65532"])
            .arg("/usr/local/bin/x509-certificate-exporter")
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap()
    }
}

/// Runs the binary to completion (for flag errors, --help, --version).
pub fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Lints an exposition with Debian's promtool.
pub fn promtool_accepts(body: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is needed by the tests");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads `stream` until the peer closes it (the end of the stream, or a reset), for at most
/// `limit`; what the peer sent before closing, or why the connection is not known closed
/// (still open at the limit, or another error). A read timeout is never taken for a close.
pub fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "still open after {limit:?} ({} bytes read)",
                got.len()
            ));
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Runs the binary with `args` to completion, as [`run`] does, but for at most 10 s: `None`
/// if it is still running then (it is killed), as it is when it took what it should refuse.
pub fn run_briefly(args: &[&str]) -> Option<std::process::Output> {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child.wait_with_output().unwrap())
}

/// Debian's kubectl, unpacked by scripts/test-deps.sh.
pub fn kubectl() -> String {
    std::env::var("X509_TEST_KUBECTL").unwrap_or_else(|_| {
        let cache = std::env::var("XDG_CACHE_HOME")
            .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap()));
        format!("{cache}/x509-exporter-tools/usr/bin/kubectl")
    })
}

/// What `kubectl kustomize DIR` renders; it must succeed.
pub fn kustomize(dir: &str) -> String {
    let out = Command::new(kubectl())
        .args(["kustomize", dir])
        .output()
        .expect("kubectl (Debian kubernetes-client; scripts/test-deps.sh unpacks it)");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
