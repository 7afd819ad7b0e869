//! The HTTP side: routes, gzip, TLS and basic auth, limits and timeouts, graceful shutdown.
//!
//! One event-loop thread owns every connection, non-blocking (see [`conn`]): a client that
//! sends slowly, never reads, or holds connections open costs a bounded buffer and a slot,
//! never a thread, and is dropped when its deadline passes. The work that takes CPU time —
//! a gzip body, a bcrypt check — runs on [`WORKERS`] threads, and its result wakes the loop.
//! A plain exposition is rendered piece by piece as each socket drains.
//!
//! Another thread owns the [`Store`]: it applies the pollers' reports and publishes each new
//! immutable view, which the loop takes for every scrape.

mod conn;
pub mod request;
pub mod web_config;

use std::collections::{HashMap, HashSet};
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use flate2::{write::GzEncoder, Compression};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use sha2::{Digest, Sha256};

use self::conn::{Bytes, Conn, Flow, Phase, Stream};
use self::request::{Head, Method, Parsed};
use self::web_config::WebConfig;
use crate::model::Report;
use crate::render::{self, Options};
use crate::store::{Store, View};

/// Connections held at once; beyond, the one idle longest is dropped for the newcomer.
const MAX_CONNECTIONS: usize = 512;
/// Threads for CPU work: gzip bodies and password checks.
const WORKERS: usize = 2;
/// CPU work waiting for a worker; beyond this a request gets 503 at once.
const QUEUE: usize = 128;
/// To the end of a request head: from the connection's opening (a TLS handshake included),
/// or on a kept-alive connection from the request's first byte.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// An open connection with no request under way.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// An answer the client takes no byte of.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A worker's answer (a gzip body of a very large view can take a second).
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// After our side is shut, how long the client has to close its side.
const LINGER: Duration = Duration::from_secs(2);
/// How long shutdown waits for answers already under way.
const DRAIN: Duration = Duration::from_secs(4);
/// The loop's longest sleep, which is how often deadlines are checked.
const TICK: Duration = Duration::from_millis(250);
/// Estimated gzip size from which rendering and compressing run on two threads.
const PARALLEL_GZIP: usize = 1 << 20;
/// Remembered successful logins (digests of user and password), so that a scraper's every
/// request does not cost a bcrypt check.
const AUTH_CACHE: usize = 64;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

const INDEX: &str = "<!DOCTYPE html>\n<html><head><title>X.509 Certificate Exporter</title></head>\n<body><h1>X.509 Certificate Exporter</h1>\n<p><a href=\"/metrics\">Metrics</a> · <a href=\"/healthz\">Health</a> · <a href=\"/readyz\">Readiness</a></p>\n</body></html>\n";
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; charset=utf-8";
const JSON_TYPE: &str = "application/json";

/// Gzip bodies by (view generation, second): the one last made, kept only while some scrape
/// is still sending it (a weak reference: between scrapes it costs no memory), and the ones
/// being made, with the connections waiting for them. However many scrapes arrive in the
/// same second, one body is made.
/// A gzip body's identity: the view's generation and the second it is rendered at.
type GzipKey = (u64, i64);

#[derive(Default)]
struct GzipCache {
    last: Option<(GzipKey, std::sync::Weak<Vec<u8>>)>,
    making: HashMap<GzipKey, Vec<Token>>,
}

/// What a scrape asking for gzip gets from the cache.
enum Gzip {
    /// The body, made already.
    Ready(Arc<Vec<u8>>),
    /// Wait: it is being made.
    Wait,
    /// Make it (the scrape is the first to wait for it).
    Make,
}

impl GzipCache {
    fn lookup(&mut self, key: GzipKey, token: Token) -> Gzip {
        if let Some((last, body)) = &self.last {
            if *last == key {
                if let Some(body) = body.upgrade() {
                    return Gzip::Ready(body);
                }
            }
        }
        match self.making.get_mut(&key) {
            Some(waiting) => {
                waiting.push(token);
                Gzip::Wait
            }
            None => {
                self.making.insert(key, vec![token]);
                Gzip::Make
            }
        }
    }

    /// Keeps a made body; returns who waits for it.
    fn made(&mut self, key: GzipKey, body: &Arc<Vec<u8>>) -> Vec<Token> {
        self.last = Some((key, Arc::downgrade(body)));
        self.making.remove(&key).unwrap_or_default()
    }

    /// A body that could not be made (no worker free): who waited for it.
    fn abandon(&mut self, key: GzipKey) -> Vec<Token> {
        self.making.remove(&key).unwrap_or_default()
    }
}

/// The view scrapes are answered from, as the store thread last published it.
#[derive(Default)]
struct Published {
    view: Arc<View>,
    ready: bool,
}

/// CPU work for the workers.
enum Job {
    Gzip {
        view: Arc<View>,
        now: i64,
    },
    Auth {
        token: Token,
        hash: Option<String>,
        password: String,
    },
}

/// A worker's answer.
enum Done {
    Gzip(GzipKey, Arc<Vec<u8>>),
    Auth(Token, bool),
}

/// What a connection waits for a worker with.
pub struct Held {
    head: Head,
    /// The login to remember when the check succeeds.
    login: Option<[u8; 32]>,
}

/// Serves on `listener` until `shutdown` fires, applying reports as they come. Returns once
/// the answers under way are written (or [`DRAIN`] has passed).
pub fn serve(
    listener: std::net::TcpListener,
    store: Store,
    reports: Receiver<Report>,
    shutdown: Receiver<()>,
    options: Options,
    web: WebConfig,
) -> io::Result<()> {
    let published = spawn_store(store, reports)?;
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let stopping = Arc::new(AtomicBool::new(false));
    {
        let (waker, stopping) = (Arc::clone(&waker), Arc::clone(&stopping));
        thread::Builder::new()
            .name("http-stop".into())
            .spawn(move || {
                let _ = shutdown.recv();
                stopping.store(true, Ordering::SeqCst);
                let _ = waker.wake();
            })?;
    }
    let (job_tx, done) = spawn_workers(&waker, options)?;

    listener.set_nonblocking(true)?;
    let mut listener = Some(TcpListener::from_std(listener));
    if let Some(listener) = listener.as_mut() {
        poll.registry()
            .register(listener, LISTENER, Interest::READABLE)?;
    }
    let mut server = Server::new(published, options, web, job_tx);
    let mut events = Events::with_capacity(256);
    let mut accept_pending = false;
    let mut swept = Instant::now();
    loop {
        let timeout = if server.again.is_empty() {
            TICK
        } else {
            Duration::ZERO
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let now = Instant::now();
        let mut touched = std::mem::take(&mut server.again);
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_pending = true,
                WAKER => {}
                token => touched.push(token),
            }
        }
        for result in done.try_iter() {
            server.finish(result, now, &mut touched);
        }
        if stopping.load(Ordering::SeqCst) && server.draining.is_none() {
            // Stop accepting; drop connections with no request under way.
            if let Some(mut listener) = listener.take() {
                let _ = poll.registry().deregister(&mut listener);
            }
            server.draining = Some(now + DRAIN);
            server
                .conns
                .retain(|_, c| c.phase != Phase::Reading || !c.input.is_empty());
        }
        if let Some(listener) = listener.as_ref() {
            if accept_pending {
                accept_pending = server.accept(listener, poll.registry(), now);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for token in touched {
            server.drive(token, now);
        }
        if now.duration_since(swept) >= TICK {
            swept = now;
            server.conns.retain(|_, c| c.deadline > now);
            server.reload_web_config();
        }
        if let Some(deadline) = server.draining {
            if server.conns.is_empty() {
                break;
            }
            if now >= deadline {
                log::warn!(
                    "shutdown: {} answers still being written after {DRAIN:?}, leaving them",
                    server.conns.len()
                );
                break;
            }
        }
    }
    Ok(())
}

/// The store thread: applies each report and publishes the new view.
fn spawn_store(mut store: Store, reports: Receiver<Report>) -> io::Result<Arc<Mutex<Published>>> {
    let published = Arc::new(Mutex::new(Published {
        view: store.view(),
        ready: store.ready(),
    }));
    let shared = Arc::clone(&published);
    thread::Builder::new().name("store".into()).spawn(move || {
        for report in reports.iter() {
            store.apply(report);
            let next = Published {
                view: store.view(),
                ready: store.ready(),
            };
            *lock(&shared) = next;
        }
    })?;
    Ok(published)
}

/// The worker threads: jobs in, answers out, and the loop woken for each answer.
fn spawn_workers(
    waker: &Arc<Waker>,
    options: Options,
) -> io::Result<(Sender<Job>, Receiver<Done>)> {
    let (job_tx, jobs) = bounded::<Job>(QUEUE);
    let (done_tx, done) = crossbeam_channel::unbounded::<Done>();
    for n in 0..WORKERS {
        let (jobs, done_tx, waker) = (jobs.clone(), done_tx.clone(), Arc::clone(waker));
        thread::Builder::new()
            .name(format!("http-work-{n}"))
            .spawn(move || {
                for job in jobs.iter() {
                    let result = match job {
                        Job::Gzip { view, now } => {
                            let key = (view.generation, now);
                            Done::Gzip(key, Arc::new(gzip_body(view, now, options)))
                        }
                        Job::Auth {
                            token,
                            hash,
                            password,
                        } => Done::Auth(token, check_password(&password, hash.as_deref())),
                    };
                    if done_tx.send(result).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                }
            })?;
    }
    Ok((job_tx, done))
}

/// The event loop's state.
struct Server {
    conns: HashMap<Token, Conn>,
    next_token: usize,
    /// Connections that yielded with more to write: driven again at once.
    again: Vec<Token>,
    published: Arc<Mutex<Published>>,
    options: Options,
    web: WebConfig,
    logins: HashSet<[u8; 32]>,
    gzip: GzipCache,
    jobs: Sender<Job>,
    /// Set at shutdown: when to give up on the answers under way.
    draining: Option<Instant>,
    /// Whether accepting failed last time (the failure is logged once, not every turn).
    accept_failing: bool,
}

impl Server {
    fn new(
        published: Arc<Mutex<Published>>,
        options: Options,
        web: WebConfig,
        jobs: Sender<Job>,
    ) -> Self {
        Self {
            conns: HashMap::new(),
            next_token: 2,
            again: Vec::new(),
            published,
            options,
            web,
            logins: HashSet::new(),
            gzip: GzipCache::default(),
            jobs,
            draining: None,
            accept_failing: false,
        }
    }

    /// Accepts what is waiting. True when it had to stop before the backlog was empty (out
    /// of file descriptors): it is tried again at the next turn.
    fn accept(&mut self, listener: &TcpListener, registry: &mio::Registry, now: Instant) -> bool {
        loop {
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    if !std::mem::replace(&mut self.accept_failing, true) {
                        log::warn!("accept: {e}; closing the longest idle connection");
                    }
                    self.evict();
                    return true;
                }
            };
            self.accept_failing = false;
            if self.conns.len() >= MAX_CONNECTIONS && !self.evict() {
                continue; // Every slot waits for a worker: the newcomer is closed.
            }
            let _ = stream.set_nodelay(true);
            let tls = match &self.web.tls {
                Some(config) => match rustls::ServerConnection::new(Arc::clone(config)) {
                    Ok(tls) => Some(tls),
                    Err(e) => {
                        log::warn!("TLS: {e}");
                        continue;
                    }
                },
                None => None,
            };
            let token = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) =
                registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            {
                log::warn!("register connection: {e}");
                continue;
            }
            self.conns
                .insert(token, Conn::new(stream, tls, now + HEAD_TIMEOUT));
        }
    }

    /// Takes a changed web config file: new connections get its TLS settings, requests its
    /// users (remembered logins are forgotten).
    fn reload_web_config(&mut self) {
        match self.web.reload() {
            None => {}
            Some(Ok(())) => {
                self.logins.clear();
                log::info!("web config reloaded");
            }
            Some(Err(e)) => log::warn!("{e}; keeping the previous settings"),
        }
    }

    /// Makes room: drops the connection that has waited longest for a request, or else the
    /// answer that has stalled longest (a client that does not read). Connections waiting for
    /// a worker are kept. False when nothing could go.
    fn evict(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .filter_map(|(token, c)| match c.phase {
                Phase::Reading | Phase::Closing => Some(((0, c.since), *token)),
                // In Writing, the deadline moves with every byte taken.
                Phase::Writing { .. } => Some(((1, c.deadline), *token)),
                Phase::Waiting => None,
            })
            .min_by_key(|(key, _)| *key)
            .map(|(_, token)| token);
        match victim {
            Some(token) => {
                self.conns.remove(&token);
                true
            }
            None => false,
        }
    }

    /// Takes a worker's answer to the connections that wait for it, which are then driven.
    fn finish(&mut self, done: Done, now: Instant, touched: &mut Vec<Token>) {
        match done {
            Done::Gzip(key, body) => {
                for token in self.gzip.made(key, &body) {
                    if let Some(conn) = self.conns.get_mut(&token) {
                        if let Some(held) = conn.held.take() {
                            send_gzip(conn, &held.head, Arc::clone(&body), now);
                        }
                    }
                    touched.push(token);
                }
            }
            Done::Auth(token, ok) => {
                touched.push(token);
                let Some(conn) = self.conns.get_mut(&token) else {
                    return;
                };
                let Some(held) = conn.held.take() else {
                    return;
                };
                if !ok {
                    return unauthorized(conn, &held.head, now);
                }
                if let Some(login) = held.login {
                    if self.logins.len() >= AUTH_CACHE {
                        self.logins.clear();
                    }
                    self.logins.insert(login);
                }
                self.route(token, held.head, now);
            }
        }
    }

    /// Moves a connection on as far as it goes without blocking.
    fn drive(&mut self, token: Token, now: Instant) {
        let keep = loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return;
            };
            match conn.phase {
                Phase::Reading => {
                    let eof = match conn.read() {
                        Ok(eof) => eof,
                        Err(e) => {
                            log::debug!("read: {e}");
                            break false;
                        }
                    };
                    match request::parse(&conn.input) {
                        Parsed::Partial => {
                            if eof {
                                break false;
                            }
                            if !conn.input.is_empty() {
                                // Never later than HEAD_TIMEOUT after the first byte.
                                conn.deadline = conn.deadline.min(now + HEAD_TIMEOUT);
                            }
                            break true;
                        }
                        Parsed::Bad(status) => {
                            conn.input.clear();
                            text(conn, status, true, false, TEXT_TYPE, reason(status), now);
                        }
                        Parsed::Complete(head, used) => {
                            conn.input.drain(..used);
                            if conn.input.is_empty() && conn.input.capacity() > 4096 {
                                conn.input = Vec::new(); // An idle connection keeps no buffer.
                            }
                            self.dispatch(token, head, now);
                        }
                    }
                }
                Phase::Waiting => break true,
                Phase::Writing { close } => match conn.write(now + WRITE_TIMEOUT) {
                    Ok(Flow::Blocked) => break true,
                    Ok(Flow::Yield) => {
                        self.again.push(token);
                        break true;
                    }
                    Ok(Flow::Done) if close || self.draining.is_some() => {
                        conn.shut();
                        conn.enter(Phase::Closing, now, now + LINGER);
                    }
                    Ok(Flow::Done) => conn.enter(Phase::Reading, now, now + IDLE_TIMEOUT),
                    Err(e) => {
                        log::debug!("write: {e}");
                        break false;
                    }
                },
                Phase::Closing => break !conn.discard(),
            }
        };
        if !keep {
            self.conns.remove(&token);
        }
    }

    /// Checks the credentials when basic auth is on, then routes.
    fn dispatch(&mut self, token: Token, head: Head, now: Instant) {
        if self.web.users.is_empty() {
            return self.route(token, head, now);
        }
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let Some((user, password)) = head.authorization.as_deref().and_then(basic_credentials)
        else {
            return unauthorized(conn, &head, now);
        };
        let hash = self.web.users.get(&user).cloned();
        let login = login_digest(&user, hash.as_deref().unwrap_or(""), &password);
        if hash.is_some() && self.logins.contains(&login) {
            return self.route(token, head, now);
        }
        let job = Job::Auth {
            token,
            hash,
            password,
        };
        conn.held = Some(Held {
            head,
            login: Some(login),
        });
        if !self.submit(token, job, now) {
            self.busy(token, now);
        }
    }

    /// Answers an authorised request.
    fn route(&mut self, token: Token, head: Head, now: Instant) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let known = matches!(
            head.path.as_str(),
            "/" | "/metrics" | "/healthz" | "/readyz"
        );
        if !known {
            return answer(conn, &head, 404, TEXT_TYPE, "404 page not found\n", now);
        }
        if head.method == Method::Other {
            return answer(conn, &head, 405, TEXT_TYPE, "405 method not allowed\n", now);
        }
        let (view, ready) = {
            let published = lock(&self.published);
            (Arc::clone(&published.view), published.ready)
        };
        match head.path.as_str() {
            "/metrics" if head.gzip => {
                let key = (view.generation, unix_now());
                match self.gzip.lookup(key, token) {
                    Gzip::Ready(body) => send_gzip(conn, &head, body, now),
                    Gzip::Wait => {
                        conn.held = Some(Held { head, login: None });
                        conn.enter(Phase::Waiting, now, now + WAIT_TIMEOUT);
                    }
                    Gzip::Make => {
                        conn.held = Some(Held { head, login: None });
                        let job = Job::Gzip { view, now: key.1 };
                        if !self.submit(token, job, now) {
                            for token in self.gzip.abandon(key) {
                                self.busy(token, now);
                            }
                        }
                    }
                }
            }
            "/metrics" => {
                // HTTP/1.1 streams in chunks; HTTP/1.0 has none, so its body ends with the
                // connection.
                let close = !head.keep_alive || !head.http11;
                let mut headers = vec![("Content-Type", METRICS_TYPE), ("Vary", "Accept-Encoding")];
                if head.http11 {
                    headers.push(("Transfer-Encoding", "chunked"));
                }
                conn.queue(Bytes::Owned(response_head(200, close, &headers, None)));
                if head.method != Method::Head {
                    conn.body = Some(Stream::new(view, unix_now(), self.options, head.http11));
                }
                writing(conn, close, now);
            }
            "/healthz" => answer(conn, &head, 200, JSON_TYPE, "{\"status\":\"UP\"}\n", now),
            "/readyz" if ready => {
                answer(conn, &head, 200, JSON_TYPE, "{\"status\":\"READY\"}\n", now)
            }
            "/readyz" => answer(
                conn,
                &head,
                503,
                JSON_TYPE,
                "{\"status\":\"STARTING\"}\n",
                now,
            ),
            _ => answer(conn, &head, 200, "text/html; charset=utf-8", INDEX, now),
        }
    }

    /// Hands CPU work to the workers for a connection, which then waits. False when they
    /// are too far behind to take it.
    fn submit(&mut self, token: Token, job: Job, now: Instant) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => {
                if let Some(conn) = self.conns.get_mut(&token) {
                    conn.enter(Phase::Waiting, now, now + WAIT_TIMEOUT);
                }
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Answers 503 to a connection whose work found no worker.
    fn busy(&mut self, token: Token, now: Instant) {
        if let Some(conn) = self.conns.get_mut(&token) {
            let close = conn.held.take().is_none_or(|h| !h.head.keep_alive);
            text(conn, 503, close, false, TEXT_TYPE, "503 too busy\n", now);
        }
    }
}

/// Queues a gzip exposition.
fn send_gzip(conn: &mut Conn, head: &Head, body: Arc<Vec<u8>>, now: Instant) {
    let close = !head.keep_alive;
    let headers = [
        ("Content-Type", METRICS_TYPE),
        ("Vary", "Accept-Encoding"),
        ("Content-Encoding", "gzip"),
    ];
    conn.queue(Bytes::Owned(response_head(
        200,
        close,
        &headers,
        Some(body.len()),
    )));
    if head.method != Method::Head {
        conn.queue(Bytes::Shared(body));
    }
    writing(conn, close, now);
}

/// Starts writing the queued answer.
fn writing(conn: &mut Conn, close: bool, now: Instant) {
    conn.enter(Phase::Writing { close }, now, now + WRITE_TIMEOUT);
}

/// Queues a small fixed answer.
fn text(
    conn: &mut Conn,
    status: u16,
    close: bool,
    head_only: bool,
    content_type: &'static str,
    body: &'static str,
    now: Instant,
) {
    let mut headers = vec![("Content-Type", content_type)];
    if status == 405 {
        headers.push(("Allow", "GET, HEAD"));
    }
    if status == 401 {
        headers.push((
            "WWW-Authenticate",
            "Basic realm=\"x509-certificate-exporter\"",
        ));
    }
    conn.queue(Bytes::Owned(response_head(
        status,
        close,
        &headers,
        Some(body.len()),
    )));
    if !head_only {
        conn.queue(Bytes::Static(body.as_bytes()));
    }
    writing(conn, close, now);
}

/// Queues a small fixed answer to `head`.
fn answer(
    conn: &mut Conn,
    head: &Head,
    status: u16,
    content_type: &'static str,
    body: &'static str,
    now: Instant,
) {
    let head_only = head.method == Method::Head;
    text(
        conn,
        status,
        !head.keep_alive,
        head_only,
        content_type,
        body,
        now,
    );
}

fn unauthorized(conn: &mut Conn, head: &Head, now: Instant) {
    answer(conn, head, 401, TEXT_TYPE, "401 Unauthorized\n", now);
}

/// A status line and headers, with Content-Length when `length` is known.
fn response_head(
    status: u16,
    close: bool,
    headers: &[(&str, &str)],
    length: Option<usize>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status).trim_end());
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if let Some(length) = length {
        let _ = write!(out, "Content-Length: {length}\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The reason phrase of a status this server sends, as a body line.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK\n",
        400 => "Bad Request\n",
        401 => "Unauthorized\n",
        404 => "Not Found\n",
        405 => "Method Not Allowed\n",
        431 => "Request Header Fields Too Large\n",
        503 => "Service Unavailable\n",
        505 => "HTTP Version Not Supported\n",
        _ => "Error\n",
    }
}

/// User and password of a `Basic` Authorization value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = crate::pem::decode_base64(encoded.trim().as_bytes()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// What a successful login is remembered by: never the password itself.
fn login_digest(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut digest = Sha256::new();
    for part in [user, hash, password] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize().into()
}

/// A bcrypt hash (cost 10, like the hashes users are told to make) that an unknown user's
/// password is checked against, so that the check costs the same.
const DECOY: &str = "$2y$10$GhhUj1hl7sXD0rJ7SyG9LeQ28P9vxSpsvlqAWbeX5E4dSHdN61gH.";

/// Checks `password` against a bcrypt `hash`; an unknown user (no hash) costs a check all the
/// same, so that timing does not tell which users exist.
fn check_password(password: &str, hash: Option<&str>) -> bool {
    match hash {
        Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        None => {
            let _ = bcrypt::verify(password, DECOY);
            false
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The gzip exposition of `view` at `now`.
fn gzip_body(view: Arc<View>, now: i64, options: Options) -> Vec<u8> {
    // About 75 compressed bytes a certificate: one allocation, not a doubling series.
    let estimate = 4096 + view.cert_count() * 80;
    let mut encoder = GzEncoder::new(Vec::with_capacity(estimate), Compression::fast());
    let mut plain = render::Body::new(view, now, options, render::BUILD);
    if estimate < PARALLEL_GZIP {
        loop {
            let piece = plain.next_piece();
            if piece.is_empty() {
                return encoder.finish().unwrap_or_default();
            }
            if encoder.write_all(piece).is_err() {
                return Vec::new();
            }
        }
    }
    // Large: render on a second thread while this one compresses (each takes about as long
    // as the other), two pieces in flight at most.
    let (pieces, rendered) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Some(piece) = plain.next_owned() {
                if pieces.send(piece).is_err() {
                    return;
                }
            }
        });
        for piece in rendered.iter() {
            if encoder.write_all(&piece).is_err() {
                return Vec::new();
            }
        }
        encoder.finish().unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn one_gzip_body_per_view_and_second_however_many_wait() {
        let mut cache = GzipCache::default();
        let key = (3, 100);
        assert!(matches!(cache.lookup(key, Token(7)), Gzip::Make));
        assert!(matches!(cache.lookup(key, Token(8)), Gzip::Wait));
        let body = Arc::new(gzip_body(Store::new(0).view(), 100, Options::default()));
        assert_eq!(cache.made(key, &body), vec![Token(7), Token(8)]);
        match cache.lookup(key, Token(9)) {
            Gzip::Ready(again) => assert!(Arc::ptr_eq(&body, &again), "shared, not made twice"),
            _ => panic!("made already"),
        }
        assert!(
            matches!(cache.lookup((3, 101), Token(9)), Gzip::Make),
            "a new second"
        );
        assert_eq!(cache.abandon((3, 101)), vec![Token(9)]);
        drop(body);
        assert!(
            matches!(cache.lookup(key, Token(10)), Gzip::Make),
            "not kept once sent"
        );
    }

    #[test]
    fn a_gzip_body_unpacks_to_the_exposition() {
        let body = gzip_body(Store::new(0).view(), 100, Options::default());
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.contains("x509_read_errors 0\n"));
    }

    #[test]
    fn a_large_gzip_body_rendered_on_two_threads_is_the_same_text() {
        let view = crate::store::big_view(20_000, |i| (i, i + 1));
        assert!(
            4096 + view.cert_count() * 80 >= PARALLEL_GZIP,
            "exercises the two-thread path"
        );
        let body = gzip_body(Arc::clone(&view), 7, Options::default());
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(
            text,
            render::render(view, 7, Options::default(), &render::BUILD)
        );
    }

    #[test]
    fn eviction_takes_the_longest_idle_then_the_longest_stalled() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (jobs, _) = bounded(1);
        let mut server = Server::new(
            Arc::default(),
            Options::default(),
            WebConfig::default(),
            jobs,
        );
        let start = Instant::now();
        let mut clients = Vec::new();
        let mut add = |server: &mut Server, phase: Phase, at: u64| {
            clients.push(std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap());
            let (stream, _) = listener.accept().unwrap();
            let at = start + Duration::from_secs(at);
            let mut conn = Conn::new(mio::net::TcpStream::from_std(stream), None, at);
            conn.enter(phase, at, at + Duration::from_secs(30));
            let token = Token(server.next_token);
            server.next_token += 1;
            server.conns.insert(token, conn);
            token
        };
        let waiting = add(&mut server, Phase::Waiting, 0);
        let slow = add(&mut server, Phase::Writing { close: false }, 1);
        let busy = add(&mut server, Phase::Writing { close: false }, 5);
        let idle_new = add(&mut server, Phase::Reading, 4);
        let idle_old = add(&mut server, Phase::Reading, 3);
        let gone = |server: &mut Server| {
            let before: HashSet<Token> = server.conns.keys().copied().collect();
            assert!(server.evict());
            let after: HashSet<Token> = server.conns.keys().copied().collect();
            before.difference(&after).copied().collect::<Vec<_>>()
        };
        assert_eq!(gone(&mut server), [idle_old]);
        assert_eq!(gone(&mut server), [idle_new]);
        assert_eq!(gone(&mut server), [slow], "the answer stalled longest");
        assert_eq!(gone(&mut server), [busy]);
        assert!(!server.evict(), "a connection waiting for a worker stays");
        assert!(server.conns.contains_key(&waiting));
    }

    #[test]
    fn basic_credentials_and_passwords() {
        // "alice:secret:with:colons"
        assert_eq!(
            basic_credentials("Basic YWxpY2U6c2VjcmV0OndpdGg6Y29sb25z"),
            Some(("alice".into(), "secret:with:colons".into()))
        );
        assert_eq!(basic_credentials("Bearer YWxpY2U6eA=="), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        let hash = bcrypt::hash("secret", 4).unwrap();
        assert!(check_password("secret", Some(&hash)));
        assert!(!check_password("wrong", Some(&hash)));
        assert!(!check_password("secret", None));
        let decoy: bcrypt::HashParts = DECOY.parse().expect("a well-formed hash");
        assert_eq!(decoy.get_cost(), 10, "costs what a real check costs");
        assert_ne!(login_digest("a", "h", "bc"), login_digest("ab", "h", "c"));
    }
}
