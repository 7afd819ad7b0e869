//! The HTTP side, the only module that knows tiny_http: routes, gzip, the response cache,
//! writer threads so a slow client never holds up another, and graceful shutdown.
//!
//! One thread owns the [`Store`]: it takes reports from the pollers and requests from the
//! listener, renders at most once per state and second, and hands each response to a
//! writer thread.

use std::io::{Cursor, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, select, Receiver, Sender};
use flate2::{write::GzEncoder, Compression};
use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::model::Report;
use crate::render::{self, Options};
use crate::store::Store;

/// Threads that write responses.
const WRITERS: usize = 4;
/// Responses waiting for a writer; beyond this a request gets 503 at once.
const QUEUE: usize = 64;
/// How long shutdown waits for responses already being written.
const DRAIN: Duration = Duration::from_secs(4);

const INDEX: &str = "<!DOCTYPE html>\n<html><head><title>X.509 Certificate Exporter</title></head>\n<body><h1>X.509 Certificate Exporter</h1>\n<p><a href=\"/metrics\">Metrics</a> · <a href=\"/healthz\">Health</a> · <a href=\"/readyz\">Readiness</a></p>\n</body></html>\n";
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A shared, immutable response body.
#[derive(Clone)]
struct Body(Arc<Vec<u8>>);

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The last rendered body: valid for one store generation and one second.
struct Cached {
    generation: u64,
    now: i64,
    plain: Body,
    gzip: Option<Body>,
}

/// A response ready to be written by a writer thread.
struct Job {
    request: Request,
    status: u16,
    content_type: &'static str,
    gzip: bool,
    body: Body,
}

/// Serves until `shutdown` fires, applying reports as they come. Returns once the
/// responses in flight are written (or [`DRAIN`] has passed).
pub fn serve(
    listener: TcpListener,
    mut store: Store,
    mut reports: Receiver<Report>,
    shutdown: Receiver<()>,
    options: Options,
) -> std::io::Result<()> {
    let server =
        Arc::new(tiny_http::Server::from_listener(listener, None).map_err(std::io::Error::other)?);
    let (request_tx, requests) = bounded::<Request>(QUEUE);
    let acceptor = {
        let server = Arc::clone(&server);
        thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || {
                while let Ok(request) = server.recv() {
                    if request_tx.send(request).is_err() {
                        break;
                    }
                }
            })?
    };
    let (job_tx, jobs) = bounded::<Job>(QUEUE);
    let (done_tx, done) = bounded::<()>(WRITERS);
    for n in 0..WRITERS {
        let jobs = jobs.clone();
        let done_tx = done_tx.clone();
        thread::Builder::new()
            .name(format!("http-write-{n}"))
            .spawn(move || {
                for job in jobs.iter() {
                    write(job);
                }
                let _ = done_tx.send(());
            })?;
    }
    drop(done_tx);

    let mut cache: Option<Cached> = None;
    loop {
        select! {
            recv(reports) -> report => match report {
                Ok(report) => store.apply(report),
                // No poller left (or none at all): keep serving what we have.
                Err(_) => reports = crossbeam_channel::never(),
            },
            recv(requests) -> request => match request {
                Ok(request) => enqueue(&job_tx, respond(request, &store, &mut cache, options)),
                Err(_) => break,
            },
            recv(shutdown) -> _ => break,
        }
    }

    // Stop accepting; answer what was already received; let the writers finish.
    server.unblock();
    for request in requests.try_iter() {
        enqueue(&job_tx, respond(request, &store, &mut cache, options));
    }
    drop(requests);
    drop(job_tx);
    let deadline = Instant::now() + DRAIN;
    for _ in 0..WRITERS {
        if done.recv_deadline(deadline).is_err() {
            log::warn!("shutdown: responses still being written after {DRAIN:?}, leaving them");
            break;
        }
    }
    let _ = acceptor.join();
    Ok(())
}

/// Hands a response to the writers; when all are busy and the queue is full, 503 at once.
fn enqueue(jobs: &Sender<Job>, job: Job) {
    if let Err(err) = jobs.try_send(job) {
        let _ = err.into_inner().request.respond(Response::empty(503));
    }
}

/// Routes one request and prepares its response.
fn respond(request: Request, store: &Store, cache: &mut Option<Cached>, options: Options) -> Job {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let method_ok = matches!(request.method(), Method::Get | Method::Head);
    let text = |request, status, content_type, body: &str| Job {
        request,
        status,
        content_type,
        gzip: false,
        body: Body(Arc::new(body.as_bytes().to_vec())),
    };
    let known = matches!(path.as_str(), "/" | "/metrics" | "/healthz" | "/readyz");
    if !known {
        return text(
            request,
            404,
            "text/plain; charset=utf-8",
            "404 page not found\n",
        );
    }
    if !method_ok {
        return text(
            request,
            405,
            "text/plain; charset=utf-8",
            "405 method not allowed\n",
        );
    }
    match path.as_str() {
        "/metrics" => {
            let gzip = accepts_gzip(&request);
            let body = metrics_body(store, cache, options, gzip);
            Job {
                request,
                status: 200,
                content_type: METRICS_TYPE,
                gzip,
                body,
            }
        }
        "/healthz" => text(request, 200, "application/json", "{\"status\":\"UP\"}\n"),
        "/readyz" if store.ready() => {
            text(request, 200, "application/json", "{\"status\":\"READY\"}\n")
        }
        "/readyz" => text(
            request,
            503,
            "application/json",
            "{\"status\":\"STARTING\"}\n",
        ),
        _ => text(request, 200, "text/html; charset=utf-8", INDEX),
    }
}

/// The metrics body for now, rendered at most once per store generation and second.
fn metrics_body(store: &Store, cache: &mut Option<Cached>, options: Options, gzip: bool) -> Body {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let fresh = cache
        .as_ref()
        .is_some_and(|c| c.generation == store.generation() && c.now == now);
    if !fresh {
        let text = render::render(store, now, options, &render::BUILD);
        *cache = Some(Cached {
            generation: store.generation(),
            now,
            plain: Body(Arc::new(text.into_bytes())),
            gzip: None,
        });
    }
    let Some(cached) = cache.as_mut() else {
        unreachable!("filled above");
    };
    if !gzip {
        return cached.plain.clone();
    }
    cached
        .gzip
        .get_or_insert_with(|| {
            let mut encoder = GzEncoder::new(
                Vec::with_capacity(cached.plain.0.len() / 6),
                Compression::fast(),
            );
            let compressed = encoder
                .write_all(&cached.plain.0)
                .and_then(|()| encoder.finish())
                .unwrap_or_default();
            Body(Arc::new(compressed))
        })
        .clone()
}

/// True when the client lists `gzip` (or `*`) in Accept-Encoding without `q=0`.
fn accepts_gzip(request: &Request) -> bool {
    request
        .headers()
        .iter()
        .filter(|h| h.field.equiv("Accept-Encoding"))
        .flat_map(|h| h.value.as_str().split(','))
        .any(|part| {
            let mut fields = part.split(';').map(str::trim);
            let coding = fields.next().unwrap_or("");
            let refused = fields.any(|f| {
                f.replace(' ', "").starts_with("q=0")
                    && !f.contains(|c: char| ('1'..='9').contains(&c))
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

fn write(job: Job) {
    let mut headers = vec![header("Content-Type", job.content_type)];
    if job.gzip {
        headers.push(header("Content-Encoding", "gzip"));
    }
    if job.content_type == METRICS_TYPE {
        headers.push(header("Vary", "Accept-Encoding"));
    }
    if job.status == 405 {
        headers.push(header("Allow", "GET, HEAD"));
    }
    let len = job.body.0.len();
    let response = Response::new(
        StatusCode(job.status),
        headers,
        Cursor::new(job.body),
        Some(len),
        None,
    );
    if let Err(err) = job.request.respond(response) {
        log::debug!("write response: {err}");
    }
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII constants of this module, which tiny_http always accepts.
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|()| unreachable!("ASCII header"))
}
