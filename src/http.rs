//! The HTTP side, the only module that knows tiny_http: routes, gzip, writer threads so a
//! slow client never holds up another, and graceful shutdown.
//!
//! One thread owns the [`Store`]: it takes reports from the pollers and requests from the
//! listener and hands each request, with the current immutable view, to a writer thread.
//! Writers stream the plain exposition as they render it; a gzip body is rendered once per
//! view and second and shared by every scrape that asks for it meanwhile.

use std::io::Write as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, select, Receiver, Sender};
use flate2::{write::GzEncoder, Compression};
use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::model::Report;
use crate::render::{self, Options};
use crate::store::{Store, View};

/// Threads that write responses.
const WRITERS: usize = 4;
/// Responses waiting for a writer; beyond this a request gets 503 at once.
const QUEUE: usize = 64;
/// Estimated gzip size from which rendering and compressing run on two threads.
const PARALLEL_GZIP: usize = 1 << 20;
/// How long shutdown waits for responses already being written.
const DRAIN: Duration = Duration::from_secs(4);

const INDEX: &str = "<!DOCTYPE html>\n<html><head><title>X.509 Certificate Exporter</title></head>\n<body><h1>X.509 Certificate Exporter</h1>\n<p><a href=\"/metrics\">Metrics</a> · <a href=\"/healthz\">Health</a> · <a href=\"/readyz\">Readiness</a></p>\n</body></html>\n";
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The last gzip body: valid for one view and one second, and kept only while some scrape
/// is still sending it (a weak reference: between scrapes it costs no memory).
#[derive(Default)]
struct GzipCache {
    generation: u64,
    now: i64,
    body: std::sync::Weak<Vec<u8>>,
}

/// What a writer thread sends.
enum Content {
    /// A small fixed body.
    Text(u16, &'static str, &'static str),
    /// The exposition of this view.
    Metrics { view: Arc<View>, gzip: bool },
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
    let (job_tx, jobs) = bounded::<(Request, Content)>(QUEUE);
    let (done_tx, done) = bounded::<()>(WRITERS);
    let gzip_cache = Arc::new(Mutex::new(GzipCache::default()));
    for n in 0..WRITERS {
        let (jobs, done_tx, gzip_cache) = (jobs.clone(), done_tx.clone(), Arc::clone(&gzip_cache));
        thread::Builder::new()
            .name(format!("http-write-{n}"))
            .spawn(move || {
                for (request, content) in jobs.iter() {
                    write(request, content, &gzip_cache, options);
                }
                let _ = done_tx.send(());
            })?;
    }
    drop(done_tx);

    loop {
        select! {
            recv(reports) -> report => match report {
                Ok(report) => store.apply(report),
                // No poller left (or none at all): keep serving what we have.
                Err(_) => reports = crossbeam_channel::never(),
            },
            recv(requests) -> request => match request {
                Ok(request) => enqueue(&job_tx, request, &store),
                Err(_) => break,
            },
            recv(shutdown) -> _ => break,
        }
    }

    // Stop accepting; answer what was already received; let the writers finish.
    server.unblock();
    for request in requests.try_iter() {
        enqueue(&job_tx, request, &store);
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

/// Routes a request and hands it to the writers; when all are busy and the queue is full,
/// 503 at once.
fn enqueue(jobs: &Sender<(Request, Content)>, request: Request, store: &Store) {
    let content = route(&request, store);
    if let Err(err) = jobs.try_send((request, content)) {
        let (request, _) = err.into_inner();
        let _ = request.respond(Response::empty(503));
    }
}

fn route(request: &Request, store: &Store) -> Content {
    let path = request.url().split('?').next().unwrap_or("");
    let known = matches!(path, "/" | "/metrics" | "/healthz" | "/readyz");
    if !known {
        return Content::Text(404, "text/plain; charset=utf-8", "404 page not found\n");
    }
    if !matches!(request.method(), Method::Get | Method::Head) {
        return Content::Text(405, "text/plain; charset=utf-8", "405 method not allowed\n");
    }
    match path {
        "/metrics" => Content::Metrics {
            view: store.view(),
            gzip: accepts_gzip(request),
        },
        "/healthz" => Content::Text(200, "application/json", "{\"status\":\"UP\"}\n"),
        "/readyz" if store.ready() => {
            Content::Text(200, "application/json", "{\"status\":\"READY\"}\n")
        }
        "/readyz" => Content::Text(503, "application/json", "{\"status\":\"STARTING\"}\n"),
        _ => Content::Text(200, "text/html; charset=utf-8", INDEX),
    }
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
                let f = f.replace(' ', "");
                f.starts_with("q=0") && !f.contains(|c: char| ('1'..='9').contains(&c))
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// Writes one response (on a writer thread).
fn write(request: Request, content: Content, gzip_cache: &Mutex<GzipCache>, options: Options) {
    let result = match content {
        Content::Text(status, content_type, body) => {
            let mut headers = vec![header("Content-Type", content_type)];
            if status == 405 {
                headers.push(header("Allow", "GET, HEAD"));
            }
            request.respond(Response::new(
                StatusCode(status),
                headers,
                body.as_bytes(),
                Some(body.len()),
                None,
            ))
        }
        Content::Metrics { view, gzip } => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            write_metrics(request, view, now, gzip, gzip_cache, options)
        }
    };
    if let Err(err) = result {
        log::debug!("write response: {err}");
    }
}

/// Writes the exposition straight to the connection: tiny_http would copy a streamed body
/// 8 KiB at a time, each piece its own chunk and system calls. The plain body goes out in
/// chunks of a hundred kilobytes as it is rendered (HTTP/1.1); the gzip body, whole, with
/// its length.
fn write_metrics(
    request: Request,
    view: Arc<View>,
    now: i64,
    gzip: bool,
    gzip_cache: &Mutex<GzipCache>,
    options: Options,
) -> std::io::Result<()> {
    let head_only = *request.method() == Method::Head;
    let http11 = request.http_version() >= &tiny_http::HTTPVersion(1, 1);
    if !http11 && !gzip {
        // HTTP/1.0 has no chunks: let tiny_http frame it (it closes the connection).
        let headers = vec![
            header("Content-Type", METRICS_TYPE),
            header("Vary", "Accept-Encoding"),
        ];
        let body = render::Body::new(view, now, options, render::BUILD);
        return request.respond(Response::new(StatusCode(200), headers, body, None, None));
    }
    let keep_alive = http11
        && !request
            .headers()
            .iter()
            .any(|h| h.field.equiv("Connection") && h.value.as_str().eq_ignore_ascii_case("close"));
    let version = if http11 { "HTTP/1.1" } else { "HTTP/1.0" };
    let connection = if keep_alive {
        ""
    } else {
        "Connection: close\r\n"
    };
    let mut out = request.into_writer();
    let head = |framing: &str| {
        format!("{version} 200 OK\r\nContent-Type: {METRICS_TYPE}\r\nVary: Accept-Encoding\r\n{framing}{connection}\r\n")
    };
    if gzip {
        let body = gzip_body(gzip_cache, view, now, options);
        out.write_all(
            head(&format!(
                "Content-Encoding: gzip\r\nContent-Length: {}\r\n",
                body.len()
            ))
            .as_bytes(),
        )?;
        if !head_only {
            out.write_all(&body)?;
        }
        return out.flush();
    }
    out.write_all(head("Transfer-Encoding: chunked\r\n").as_bytes())?;
    if !head_only {
        let mut body = render::Body::new(view, now, options, render::BUILD);
        // Each chunk goes out in one write: a separate few-byte write for its size line
        // costs a system call and a small segment of its own.
        let mut frame = Vec::new();
        loop {
            let piece = body.next_piece();
            frame.clear();
            frame.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            frame.extend_from_slice(piece);
            frame.extend_from_slice(b"\r\n");
            if piece.is_empty() {
                // The last chunk: "0\r\n\r\n".
                out.write_all(&frame)?;
                break;
            }
            out.write_all(&frame)?;
        }
    }
    out.flush()
}

/// The gzip exposition of `view` at `now`: rendered and compressed once, then shared with
/// the scrapes of the same second. Those that arrive meanwhile wait for it rather than doing
/// the work again.
fn gzip_body(
    cache: &Mutex<GzipCache>,
    view: Arc<View>,
    now: i64,
    options: Options,
) -> Arc<Vec<u8>> {
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if cache.generation == view.generation && cache.now == now {
        if let Some(body) = cache.body.upgrade() {
            return body;
        }
    }
    let generation = view.generation;
    // About 75 compressed bytes a certificate: one allocation, not a doubling series.
    let estimate = 4096 + view.cert_count() * 80;
    let mut encoder = GzEncoder::new(Vec::with_capacity(estimate), Compression::fast());
    let mut plain = render::Body::new(view, now, options, render::BUILD);
    let compressed = if estimate < PARALLEL_GZIP {
        loop {
            let piece = plain.next_piece();
            if piece.is_empty() {
                break encoder.finish().unwrap_or_default();
            }
            if encoder.write_all(piece).is_err() {
                break Vec::new();
            }
        }
    } else {
        // Large: render on a second thread while this one compresses (each takes about as
        // long as the other), two pieces in flight at most.
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
    };
    let body = Arc::new(compressed);
    *cache = GzipCache {
        generation,
        now,
        body: Arc::downgrade(&body),
    };
    body
}

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII constants of this module, which tiny_http always accepts.
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .unwrap_or_else(|()| unreachable!("ASCII header"))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn one_gzip_rendering_per_view_and_second() {
        let cache = Mutex::new(GzipCache::default());
        let view = Store::new(0).view();
        let first = gzip_body(&cache, Arc::clone(&view), 100, Options::default());
        let again = gzip_body(&cache, Arc::clone(&view), 100, Options::default());
        assert!(Arc::ptr_eq(&first, &again), "shared, not rendered twice");
        let next_second = gzip_body(&cache, view, 101, Options::default());
        assert!(!Arc::ptr_eq(&first, &next_second));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&first[..])
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
        let cache = Mutex::new(GzipCache::default());
        let body = gzip_body(&cache, Arc::clone(&view), 7, Options::default());
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
    fn accept_encoding_parsing() {
        let request = |value: &str| {
            tiny_http::TestRequest::new()
                .with_header(Header::from_bytes(&b"Accept-Encoding"[..], value.as_bytes()).unwrap())
                .into()
        };
        for (value, wanted) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("gzip;q=0", false),
            ("*", true),
            ("br", false),
        ] {
            let r: Request = request(value);
            assert_eq!(accepts_gzip(&r), wanted, "{value}");
        }
    }
}
