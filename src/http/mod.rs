//! The HTTP side: routes, gzip, TLS and basic auth, limits and timeouts, graceful shutdown.
//!
//! One event-loop thread owns every connection, non-blocking (see [`conn`]): a client that
//! sends slowly, never reads, or holds connections open costs a bounded buffer and a slot,
//! never a thread, and is dropped when its deadline passes. The work that takes CPU time
//! runs on two threads of its own, each with a bounded queue, whose results wake the loop:
//! gzip bodies ([`gzip`]) and password checks ([`auth`]), so that a flood of logins cannot
//! delay a scrape. A plain exposition is rendered piece by piece as each socket drains.
//!
//! The engine ([`crate::poll`]) publishes each new immutable view; the loop takes the
//! latest for every scrape through its [`Views`] handle.

mod auth;
mod conn;
mod gzip;
pub mod request;
pub mod web_config;

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use self::auth::{Gate, Verdict};
use self::conn::{Awaiting, Bytes, Conn, Expiry, Flow, Held, Phase, Stream, FIRST_PASS_WAIT};
use self::gzip::{Gzip, GzipCache, GzipKey, Made};
use self::request::{Head, Method, Parsed};
use self::web_config::WebConfig;
use crate::poll::{Published, Views};
use crate::render::Options;
use crate::store::View;

/// The share of the open-file limit that connections may take; the rest is for the files
/// and API connections the sources read.
const CONNECTION_SHARE: usize = 2;
/// Bounds on the connections held at once, whatever the open-file limit.
const MIN_CONNECTIONS: usize = 64;
const MAX_CONNECTIONS: usize = 16384;
/// The open-file limit assumed when it cannot be read.
const DEFAULT_OPEN_FILES: usize = 1024;
/// Connections accepted in one turn of the loop, before the ones accepted are read: a
/// burst of new connections cannot push out a scrape that connected in the same burst.
const ACCEPT_BATCH: usize = 64;
/// When the connections are at their limit, this fraction of them makes room at once, so
/// that a stream of newcomers costs one scan of the connections per batch.
const EVICT_FRACTION: usize = 16;
/// Gzip bodies waiting to be made; beyond this a scrape gets 503 at once.
const GZIP_QUEUE: usize = 4;
/// How long shutdown waits for answers already under way.
const DRAIN: Duration = Duration::from_secs(4);
/// The loop's longest sleep, which is how often deadlines and the web config are checked.
const TICK: Duration = Duration::from_millis(250);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

const INDEX: &str = "<!DOCTYPE html>\n<html><head><title>X.509 Certificate Exporter</title></head>\n<body><h1>X.509 Certificate Exporter</h1>\n<p><a href=\"/metrics\">Metrics</a> · <a href=\"/healthz\">Health</a> · <a href=\"/readyz\">Readiness</a></p>\n</body></html>\n";
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; charset=utf-8";
const JSON_TYPE: &str = "application/json";
const HTML_TYPE: &str = "text/html; charset=utf-8";

/// A gzip body to make: the view, at this second.
struct GzipJob {
    view: Arc<View>,
    now: i64,
}

/// A worker's answer.
enum Done {
    Gzip(GzipKey, Made),
    Login(auth::Checked),
}

/// Serves on `listener` the views the engine publishes, until `shutdown` fires. Returns once
/// the answers under way are written (or [`DRAIN`] has passed).
pub fn serve(
    listener: std::net::TcpListener,
    published: Views,
    shutdown: Receiver<()>,
    options: Options,
    web: WebConfig,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    // Scrapes may be waiting for the first pass: the loop is woken when it is done.
    let wake = Arc::clone(&waker);
    published.on_first_pass(move || {
        let _ = wake.wake();
    });
    let stopping = spawn_stop(shutdown, &waker)?;
    let (done_tx, done) = unbounded::<Done>();
    let gzip_jobs = spawn_gzip(&waker, done_tx.clone(), options)?;
    let checks = auth::spawn(&waker, done_tx, Done::Login)?;

    listener.set_nonblocking(true)?;
    let mut listener = Some(TcpListener::from_std(listener));
    if let Some(listener) = listener.as_mut() {
        poll.registry()
            .register(listener, LISTENER, Interest::READABLE)?;
    }
    let (limit, open_files) = connection_limit();
    log::info!("serving at most {limit} connections at once (the open-file limit is {open_files})");
    let now = Instant::now();
    let lanes = Lanes {
        gzip: gzip_jobs,
        gate: Gate::new(checks, now),
    };
    let mut server = Server::new(published, options, web, lanes, limit);
    let mut events = Events::with_capacity(256);
    let mut accept_pending = false;
    let mut swept = now;
    loop {
        // Out of file descriptors, accepting is retried at the next tick, not in a spin.
        let busy = (accept_pending && !server.accept_failing) || !server.more.is_empty();
        let timeout = if busy { Duration::ZERO } else { TICK };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let now = Instant::now();
        // This turn drives the connections that yielded last turn, those with events, and
        // those that a worker's answer, an accept or a deadline moved.
        let mut due = std::mem::take(&mut server.more);
        for event in events.iter() {
            match event.token() {
                LISTENER => accept_pending = true,
                WAKER => {}
                token => due.push(token),
            }
        }
        for result in done.try_iter() {
            server.finish(result, now, &mut due);
        }
        if stopping.load(Ordering::SeqCst) && server.draining.is_none() {
            if let Some(mut listener) = listener.take() {
                let _ = poll.registry().deregister(&mut listener);
            }
            accept_pending = false;
            server.drain(now, &mut due);
        }
        if let Some(listener) = listener.as_ref() {
            if accept_pending {
                accept_pending = server.accept(listener, poll.registry(), now, &mut due);
            }
        }
        server.first_pass_over(now, &mut due);
        if now.duration_since(swept) >= TICK {
            swept = now;
            server.sweep(now, &mut due);
            server.reload_web_config();
        }
        due.sort_unstable();
        due.dedup();
        for token in due {
            server.drive(token, now);
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

/// How many connections may be held at once: a share of the process's open-file limit
/// (`RLIMIT_NOFILE`, read from `/proc/self/limits`), within fixed bounds. Also returns the
/// limit it was taken from.
fn connection_limit() -> (usize, usize) {
    let open_files = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| soft_open_files(&limits))
        .unwrap_or(DEFAULT_OPEN_FILES);
    let limit = (open_files / CONNECTION_SHARE).clamp(MIN_CONNECTIONS, MAX_CONNECTIONS);
    (limit, open_files)
}

/// The soft limit on open files in the text of `/proc/self/limits` ("unlimited" is taken
/// as the largest bound).
fn soft_open_files(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(usize::MAX),
        n => n.parse().ok(),
    }
}

/// A thread that waits for `shutdown`, then raises the flag it returns and wakes the loop.
fn spawn_stop(shutdown: Receiver<()>, waker: &Arc<Waker>) -> io::Result<Arc<AtomicBool>> {
    let stopping = Arc::new(AtomicBool::new(false));
    let (flag, waker) = (Arc::clone(&stopping), Arc::clone(waker));
    thread::Builder::new()
        .name("http-stop".into())
        .spawn(move || {
            let _ = shutdown.recv();
            flag.store(true, Ordering::SeqCst);
            let _ = waker.wake();
        })?;
    Ok(stopping)
}

/// The gzip thread: views in, gzip bodies (with how long each stays true) out through
/// `done`, the loop woken for each.
fn spawn_gzip(
    waker: &Arc<Waker>,
    done: Sender<Done>,
    options: Options,
) -> io::Result<Sender<GzipJob>> {
    let (jobs, queue) = bounded::<GzipJob>(GZIP_QUEUE);
    let waker = Arc::clone(waker);
    thread::Builder::new()
        .name("http-gzip".into())
        .spawn(move || {
            for GzipJob { view, now } in queue.iter() {
                let (key, started) = ((view.generation, now), Instant::now());
                let made = gzip::make(view, now, options);
                log::debug!(
                    "gzip body of view {} at {now}: {} bytes in {:.1} ms, true through {}",
                    key.0,
                    made.body.len(),
                    started.elapsed().as_secs_f64() * 1e3,
                    match made.valid_until {
                        i64::MAX => "the view's end".to_string(),
                        until => until.to_string(),
                    }
                );
                if done.send(Done::Gzip(key, made)).is_err() {
                    return;
                }
                let _ = waker.wake();
            }
        })?;
    Ok(jobs)
}

/// Where the loop hands CPU work.
struct Lanes {
    gzip: Sender<GzipJob>,
    gate: Gate,
}

/// How far one step moved a connection.
enum Step {
    /// It can go on at once.
    Again,
    /// It waits: for the socket, a worker, or its deadline.
    Park,
    /// It has more to write, after the other connections' turn.
    Yield,
    /// It is done with: drop it.
    Drop,
}

/// The event loop's state.
struct Server {
    conns: HashMap<Token, Conn>,
    limit: usize,
    next_token: usize,
    /// Connections that yielded with more to write: driven next turn without waiting.
    more: Vec<Token>,
    /// Scrapes waiting for the first pass of every source.
    first_pass: Vec<Token>,
    published: Views,
    options: Options,
    web: WebConfig,
    lanes: Lanes,
    gzip: GzipCache,
    /// Set at shutdown: when to give up on the answers under way.
    draining: Option<Instant>,
    /// Whether accepting failed last time (the failure is logged once, not every turn).
    accept_failing: bool,
}

impl Server {
    fn new(published: Views, options: Options, web: WebConfig, lanes: Lanes, limit: usize) -> Self {
        Self {
            conns: HashMap::new(),
            limit,
            next_token: 2,
            more: Vec::new(),
            first_pass: Vec::new(),
            published,
            options,
            web,
            lanes,
            gzip: GzipCache::new(options),
            draining: None,
            accept_failing: false,
        }
    }

    /// Accepts up to [`ACCEPT_BATCH`] waiting connections, adding them to `due` so that
    /// they are read in this turn. True when more may be waiting.
    fn accept(
        &mut self,
        listener: &TcpListener,
        registry: &mio::Registry,
        now: Instant,
        due: &mut Vec<Token>,
    ) -> bool {
        for _ in 0..ACCEPT_BATCH {
            let (mut stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    if !std::mem::replace(&mut self.accept_failing, true) {
                        log::warn!("accept: {e}; closing the connections that sent least");
                    }
                    self.evict();
                    return true;
                }
            };
            self.accept_failing = false;
            if self.conns.len() >= self.limit && !self.evict() {
                continue; // Every slot is in use by a request: the newcomer is closed.
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
                .insert(token, Conn::new(stream, tls, peer.ip(), now));
            due.push(token);
        }
        true
    }

    /// Makes room for newcomers: drops a batch of the connections that have sent least
    /// for longest. First those whose answer is written and that we are closing (and
    /// throttled logins waiting for their 429), then
    /// those that have not completed a request yet, then idle kept-alive ones — each by
    /// how long since they last sent a byte — then answers the client has stalled longest.
    /// A connection whose request is being served is never dropped. False when none could go.
    fn evict(&mut self) -> bool {
        let mut candidates: Vec<((u8, Instant), Token)> = self
            .conns
            .iter()
            .filter_map(|(token, c)| {
                let rank = match &c.phase {
                    Phase::Closing => (0, c.heard),
                    Phase::Waiting(held) if held.on == Awaiting::Throttled => (0, c.heard),
                    Phase::Reading if c.served == 0 => (1, c.heard),
                    Phase::Reading => (2, c.heard),
                    Phase::Writing { .. } => (3, c.deadline().0),
                    Phase::Waiting(_) => return None,
                };
                Some((rank, *token))
            })
            .collect();
        if candidates.is_empty() {
            return false;
        }
        let batch = (self.limit / EVICT_FRACTION).clamp(1, candidates.len());
        if batch < candidates.len() {
            candidates.select_nth_unstable(batch - 1);
        }
        for (_, token) in &candidates[..batch] {
            self.conns.remove(token);
        }
        log::debug!(
            "connection limit {} reached: closed {batch} that sent least",
            self.limit
        );
        true
    }

    /// Drops connections past their deadline, and answers the requests held until then
    /// (scrapes that have waited long enough for the first pass, throttled logins), adding
    /// those to `due`.
    fn sweep(&mut self, now: Instant, due: &mut Vec<Token>) {
        let mut answer = Vec::new();
        self.conns.retain(|token, conn| {
            let (deadline, expiry) = conn.deadline();
            if deadline > now {
                return true;
            }
            match expiry {
                Expiry::Answer(on) => {
                    answer.push((*token, on));
                    true
                }
                Expiry::Drop(why) => {
                    log::debug!("connection from {} closed: {why}", conn.peer);
                    false
                }
            }
        });
        for (token, on) in answer {
            let Some(head) = self.release(token, on) else {
                continue;
            };
            match on {
                Awaiting::Throttled => {
                    if let Some(conn) = self.conns.get_mut(&token) {
                        let body = "429 too many login attempts, retry later\n";
                        reply(conn, Some(&head), 429, TEXT_TYPE, body, now);
                    }
                }
                _ => self.route(token, head, now, false),
            }
            due.push(token);
        }
    }

    /// At shutdown: connections with no request under way go; scrapes waiting for the
    /// first pass are answered with what there is.
    fn drain(&mut self, now: Instant, due: &mut Vec<Token>) {
        self.draining = Some(now + DRAIN);
        self.conns
            .retain(|_, c| !matches!(c.phase, Phase::Reading) || !c.input.is_empty());
        self.answer_first_pass_waiters(now, due);
    }

    /// Once every source has finished its first pass, answers the scrapes waiting for it.
    fn first_pass_over(&mut self, now: Instant, due: &mut Vec<Token>) {
        if !self.first_pass.is_empty() && self.published.now().first_pass_done {
            self.answer_first_pass_waiters(now, due);
        }
    }

    /// Answers, with what there is, every scrape still waiting for the first pass.
    fn answer_first_pass_waiters(&mut self, now: Instant, due: &mut Vec<Token>) {
        for token in std::mem::take(&mut self.first_pass) {
            if let Some(head) = self.release(token, Awaiting::FirstPass) {
                self.route(token, head, now, false);
                due.push(token);
            }
        }
    }

    /// Takes a changed web config: new connections get its TLS settings, requests its
    /// users. Logins known good or bad stay known: they are keyed by the user's hash.
    fn reload_web_config(&mut self) {
        match self.web.reload() {
            None => {}
            Some(Ok(())) => log::info!("web config reloaded"),
            Some(Err(e)) => log::warn!("{e}; keeping the previous settings"),
        }
    }

    /// Takes a worker's answer to the connections that wait for it, adding them to `due`.
    fn finish(&mut self, done: Done, now: Instant, due: &mut Vec<Token>) {
        match done {
            Done::Gzip(key, made) => {
                let waiters = self.gzip.made(key, &made);
                for token in waiters.ready {
                    if let Some(head) = self.release(token, Awaiting::Gzip) {
                        if let Some(conn) = self.conns.get_mut(&token) {
                            send_gzip(conn, &head, Arc::clone(&made.body), now);
                        }
                    }
                    due.push(token);
                }
                // Scrapes that waited for a body started at an earlier second, which no
                // longer holds at theirs: asked again (a new body is made at most once).
                for token in waiters.again {
                    if let Some(head) = self.release(token, Awaiting::Gzip) {
                        self.route(token, head, now, false);
                    }
                    due.push(token);
                }
            }
            Done::Login(checked) => {
                let (ok, waiting) = self.lanes.gate.checked(checked, now);
                for token in waiting {
                    let Some(head) = self.release(token, Awaiting::Login) else {
                        continue;
                    };
                    if ok {
                        self.route(token, head, now, true);
                    } else if let Some(conn) = self.conns.get_mut(&token) {
                        reply(conn, Some(&head), 401, TEXT_TYPE, "401 Unauthorized\n", now);
                    }
                    due.push(token);
                }
            }
        }
    }

    /// Moves a connection on as far as it goes without blocking.
    fn drive(&mut self, token: Token, now: Instant) {
        loop {
            match self.step(token, now) {
                Step::Again => {}
                Step::Park => return,
                Step::Yield => return self.more.push(token),
                Step::Drop => {
                    self.conns.remove(&token);
                    return;
                }
            }
        }
    }

    /// One move of a connection's state machine.
    fn step(&mut self, token: Token, now: Instant) -> Step {
        let draining = self.draining.is_some();
        let Some(conn) = self.conns.get_mut(&token) else {
            return Step::Drop;
        };
        match conn.phase {
            Phase::Reading => {
                let eof = match conn.read(now) {
                    Ok(eof) => eof,
                    Err(e) => {
                        log::debug!("read from {}: {e}", conn.peer);
                        return Step::Drop;
                    }
                };
                match request::parse(&conn.input) {
                    Parsed::Partial if eof => Step::Drop,
                    Parsed::Partial => Step::Park,
                    Parsed::Bad(status) => {
                        conn.input.clear();
                        reply(conn, None, status, TEXT_TYPE, reason(status), now);
                        Step::Again
                    }
                    Parsed::Complete(head, used) => {
                        conn.input.drain(..used);
                        if conn.input.is_empty() && conn.input.capacity() > 4096 {
                            conn.input = Vec::new(); // An idle connection keeps no buffer.
                        }
                        conn.took_request(now);
                        self.dispatch(token, head, now);
                        Step::Again
                    }
                }
            }
            Phase::Waiting(_) => Step::Park,
            Phase::Writing { close } => match conn.write(now) {
                Ok(Flow::Blocked) => Step::Park,
                Ok(Flow::Yield) => Step::Yield,
                Ok(Flow::Done) if close || draining => {
                    conn.shut();
                    conn.enter(Phase::Closing, now);
                    Step::Again
                }
                Ok(Flow::Done) => {
                    conn.enter(Phase::Reading, now);
                    Step::Again
                }
                Err(e) => {
                    log::debug!("write to {}: {e}", conn.peer);
                    Step::Drop
                }
            },
            Phase::Closing => match conn.discard() {
                true => Step::Drop,
                false => Step::Park,
            },
        }
    }

    /// Checks the credentials when basic auth is on, then routes.
    fn dispatch(&mut self, token: Token, head: Head, now: Instant) {
        if self.web.users.is_empty() {
            return self.route(token, head, now, true);
        }
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let verdict = self.lanes.gate.check(
            &self.web.users,
            head.authorization.as_deref(),
            conn.peer,
            token,
            now,
        );
        match verdict {
            Verdict::Pass => self.route(token, head, now, true),
            Verdict::Refuse => reply(conn, Some(&head), 401, TEXT_TYPE, "401 Unauthorized\n", now),
            Verdict::Throttle => hold(conn, head, Awaiting::Throttled, now),
            Verdict::Wait => hold(conn, head, Awaiting::Login, now),
        }
    }

    /// Answers an authorised request. A scrape that arrives before every source has
    /// finished its first pass waits for it when `patient`.
    fn route(&mut self, token: Token, head: Head, now: Instant, patient: bool) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let known = matches!(
            head.path.as_str(),
            "/" | "/metrics" | "/healthz" | "/readyz"
        );
        if !known {
            return reply(
                conn,
                Some(&head),
                404,
                TEXT_TYPE,
                "404 page not found\n",
                now,
            );
        }
        if head.method == Method::Other {
            let body = "405 method not allowed\n";
            return reply(conn, Some(&head), 405, TEXT_TYPE, body, now);
        }
        let Published {
            view,
            ready,
            first_pass_done,
        } = self.published.now();
        match head.path.as_str() {
            "/metrics" if !first_pass_done && patient && self.draining.is_none() => {
                log::debug!(
                    "a scrape from {} waits for the first pass of every source (at most {FIRST_PASS_WAIT:?})",
                    conn.peer
                );
                hold(conn, head, Awaiting::FirstPass, now);
                self.first_pass.push(token);
            }
            "/metrics" if head.gzip => {
                let key = (view.generation, unix_now());
                match self.gzip.lookup(key.0, key.1, token) {
                    Gzip::Ready(body) => send_gzip(conn, &head, body, now),
                    Gzip::Wait => hold(conn, head, Awaiting::Gzip, now),
                    Gzip::Make => {
                        hold(conn, head, Awaiting::Gzip, now);
                        let job = GzipJob { view, now: key.1 };
                        if self.lanes.gzip.try_send(job).is_err() {
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
                conn.enter(Phase::Writing { close }, now);
            }
            "/healthz" => reply(
                conn,
                Some(&head),
                200,
                JSON_TYPE,
                "{\"status\":\"UP\"}\n",
                now,
            ),
            "/readyz" if ready => {
                let body = "{\"status\":\"READY\"}\n";
                reply(conn, Some(&head), 200, JSON_TYPE, body, now)
            }
            "/readyz" => {
                let body = "{\"status\":\"STARTING\"}\n";
                reply(conn, Some(&head), 503, JSON_TYPE, body, now)
            }
            _ => reply(conn, Some(&head), 200, HTML_TYPE, INDEX, now),
        }
    }

    /// The request a connection holds while it waits `on` something, taken back to be
    /// answered; None if the connection is gone or waits for something else.
    fn release(&mut self, token: Token, on: Awaiting) -> Option<Head> {
        let conn = self.conns.get_mut(&token)?;
        match &conn.phase {
            Phase::Waiting(held) if held.on == on => {}
            _ => return None,
        }
        match std::mem::replace(&mut conn.phase, Phase::Reading) {
            Phase::Waiting(held) => Some(held.head),
            _ => None,
        }
    }

    /// Answers 503 to a connection whose gzip body found its worker too far behind.
    fn busy(&mut self, token: Token, now: Instant) {
        if let Some(head) = self.release(token, Awaiting::Gzip) {
            if let Some(conn) = self.conns.get_mut(&token) {
                reply(conn, Some(&head), 503, TEXT_TYPE, "503 too busy\n", now);
            }
        }
    }
}

/// Holds a connection's request until what it needs is ready.
fn hold(conn: &mut Conn, head: Head, on: Awaiting, now: Instant) {
    conn.enter(Phase::Waiting(Held { head, on }), now);
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
    conn.enter(Phase::Writing { close }, now);
}

/// Queues a small fixed answer to `head`, or, with no head (bytes that were not a
/// request), an answer after which the connection closes. An answer to HEAD has no body.
fn reply(
    conn: &mut Conn,
    head: Option<&Head>,
    status: u16,
    content_type: &'static str,
    body: &'static str,
    now: Instant,
) {
    let close = head.is_none_or(|h| !h.keep_alive);
    let mut headers = vec![("Content-Type", content_type)];
    match status {
        401 => headers.push((
            "WWW-Authenticate",
            "Basic realm=\"x509-certificate-exporter\"",
        )),
        405 => headers.push(("Allow", "GET, HEAD")),
        429 | 503 => headers.push(("Retry-After", "1")),
        _ => {}
    }
    conn.queue(Bytes::Owned(response_head(
        status,
        close,
        &headers,
        Some(body.len()),
    )));
    if head.is_none_or(|h| h.method != Method::Head) {
        conn.queue(Bytes::Static(body.as_bytes()));
    }
    conn.enter(Phase::Writing { close }, now);
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
        429 => "Too Many Requests\n",
        431 => "Request Header Fields Too Large\n",
        503 => "Service Unavailable\n",
        505 => "HTTP Version Not Supported\n",
        _ => "Error\n",
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn server(limit: usize) -> Server {
        let (gzip, _) = bounded(1);
        let (checks, _) = bounded(1);
        let lanes = Lanes {
            gzip,
            gate: Gate::new(checks, Instant::now()),
        };
        Server::new(
            Views::default(),
            Options::default(),
            WebConfig::default(),
            lanes,
            limit,
        )
    }

    fn head() -> Head {
        match request::parse(b"GET /metrics HTTP/1.1\r\n\r\n") {
            Parsed::Complete(head, _) => head,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn eviction_takes_those_that_sent_least_for_longest() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // A limit of 16 evicts one connection at a time.
        let mut server = server(EVICT_FRACTION);
        let start = Instant::now();
        let mut clients = Vec::new();
        let mut add = |server: &mut Server, at: u64, setup: &dyn Fn(&mut Conn, Instant)| {
            clients.push(std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap());
            let (stream, peer) = listener.accept().unwrap();
            let at = start + Duration::from_secs(at);
            let mut conn = Conn::new(mio::net::TcpStream::from_std(stream), None, peer.ip(), at);
            setup(&mut conn, at);
            let token = Token(server.next_token);
            server.next_token += 1;
            server.conns.insert(token, conn);
            token
        };
        let waiting = add(&mut server, 0, &|c, at| hold(c, head(), Awaiting::Gzip, at));
        let stalled = add(&mut server, 1, &|c, at| {
            c.enter(Phase::Writing { close: false }, at)
        });
        let writing = add(&mut server, 5, &|c, at| {
            c.enter(Phase::Writing { close: false }, at)
        });
        let kept_alive = add(&mut server, 2, &|c, at| {
            c.took_request(at);
            c.enter(Phase::Reading, at)
        });
        let silent_new = add(&mut server, 4, &|_, _| {});
        let silent_old = add(&mut server, 3, &|_, _| {});
        let closing = add(&mut server, 6, &|c, at| c.enter(Phase::Closing, at));
        let throttled = add(&mut server, 7, &|c, at| {
            hold(c, head(), Awaiting::Throttled, at)
        });
        let gone = |server: &mut Server| {
            let before: HashSet<Token> = server.conns.keys().copied().collect();
            assert!(server.evict());
            let after: HashSet<Token> = server.conns.keys().copied().collect();
            before.difference(&after).copied().collect::<Vec<_>>()
        };
        assert_eq!(gone(&mut server), [closing]);
        assert_eq!(
            gone(&mut server),
            [throttled],
            "a throttled login goes as early"
        );
        assert_eq!(
            gone(&mut server),
            [silent_old],
            "no request, heard from longest ago"
        );
        assert_eq!(gone(&mut server), [silent_new]);
        assert_eq!(
            gone(&mut server),
            [kept_alive],
            "a served client goes after them"
        );
        assert_eq!(gone(&mut server), [stalled], "the answer stalled longest");
        assert_eq!(gone(&mut server), [writing]);
        assert!(!server.evict(), "a request being served stays");
        assert!(server.conns.contains_key(&waiting));
    }

    #[test]
    fn eviction_at_a_large_limit_makes_room_for_many() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut server = server(64);
        let now = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..64 {
            clients.push(std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap());
            let (stream, peer) = listener.accept().unwrap();
            let conn = Conn::new(mio::net::TcpStream::from_std(stream), None, peer.ip(), now);
            let token = Token(server.next_token);
            server.next_token += 1;
            server.conns.insert(token, conn);
        }
        assert!(server.evict());
        assert_eq!(server.conns.len(), 64 - 64 / EVICT_FRACTION);
    }

    #[test]
    fn the_soft_open_file_limit_is_read_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax cpu time              unlimited            unlimited            seconds   \nMax open files            1024                 524288               files     \n";
        assert_eq!(soft_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(soft_open_files(unlimited), Some(usize::MAX));
        assert_eq!(soft_open_files("Max processes 5 5\n"), None);
        // The share itself is pinned against the binary under `prlimit` (tests/floods.rs).
    }

    #[test]
    fn an_answer_to_head_has_no_body_whatever_its_status() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        let now = Instant::now();
        let mut conn = Conn::new(mio::net::TcpStream::from_std(stream), None, peer.ip(), now);
        let head = match request::parse(b"HEAD /metrics HTTP/1.1\r\n\r\n") {
            Parsed::Complete(head, _) => head,
            other => panic!("{other:?}"),
        };
        for status in [200, 401, 404, 405, 429, 503] {
            reply(&mut conn, Some(&head), status, TEXT_TYPE, "a body\n", now);
            let queued = conn.queued();
            let text = String::from_utf8_lossy(&queued);
            assert!(text.ends_with("\r\n\r\n"), "{status}: {text}");
            assert!(text.contains("Content-Length: 7\r\n"), "{status}: {text}");
        }
    }
}
