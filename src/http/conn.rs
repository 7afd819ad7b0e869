//! One client connection, non-blocking, plain or TLS: request bytes in a bounded buffer,
//! the answer written as fast as the socket takes it and no faster. Nothing here blocks, so
//! one event loop serves every connection and a client that stalls holds up no one.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::request::Head;
use crate::render;

/// Input kept while waiting for a complete head: a little over the longest head allowed,
/// so that an overlong one is seen as such.
const INPUT_LIMIT: usize = super::request::MAX_HEAD + 4096;
/// Plaintext rustls may hold for sending, before the socket takes it.
const TLS_BUFFER: usize = 64 * 1024;
/// Bytes written in one turn before other connections get theirs.
const TURN: usize = 1 << 20;
/// Size of the pieces a streamed exposition is rendered in.
const PIECE: usize = 64 * 1024;

/// Bytes queued for the client.
pub enum Bytes {
    /// A constant.
    Static(&'static [u8]),
    /// This connection's own.
    Owned(Vec<u8>),
    /// Shared with other connections (a gzip body).
    Shared(Arc<Vec<u8>>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Static(b) => b,
            Bytes::Owned(b) => b,
            Bytes::Shared(b) => b,
        }
    }
}

/// Where a connection is in its request/answer cycle.
pub enum Phase {
    /// Waiting for (the rest of) a request head.
    Reading,
    /// A request held until something it needs is ready.
    Waiting(Held),
    /// Writing an answer; the connection closes after it when `close`.
    Writing {
        /// Close after this answer.
        close: bool,
    },
    /// Answer written and our side shut: reading what the client still sends until it
    /// closes too, so that closing never resets an answer it has not read yet.
    Closing,
}

/// A request waiting in [`Phase::Waiting`].
pub struct Held {
    /// The request.
    pub head: Head,
    /// What it waits for.
    pub on: Awaiting,
}

/// What a held request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaiting {
    /// A gzip body, from the gzip worker.
    Gzip,
    /// A password check, from the auth worker.
    Login,
    /// The first pass of every source (a scrape at startup); answered with what there is
    /// when its wait is over.
    FirstPass,
    /// Nothing: a login over its rate is answered 429 after [`THROTTLE_DELAY`], so that a
    /// flood sends one request a second per connection, not thousands.
    Throttled,
}

/// To the end of a request head: from the connection's opening (a TLS handshake included),
/// or on a kept-alive connection from the request's first byte.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// An open connection with no request under way.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// An answer the client takes no byte of.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A worker's answer (a gzip body of a very large view can take a second; a password
/// check waits behind a few others).
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a scrape that arrives before every source has finished its first pass
/// (successful or not) waits for it, before it is answered with what there is.
pub const FIRST_PASS_WAIT: Duration = Duration::from_secs(5);
/// How long a login over its rate waits for its 429.
pub const THROTTLE_DELAY: Duration = Duration::from_secs(1);
/// After our side is shut, how long the client has to close its side.
pub const LINGER: Duration = Duration::from_secs(2);

/// What happens to a connection at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// It is dropped, for this reason.
    Drop(&'static str),
    /// Its request, held waiting for this, is answered with what there is.
    Answer(Awaiting),
}

/// What a connection's turn came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Everything queued is written.
    Done,
    /// The socket takes no more for now; a readiness event will follow.
    Blocked,
    /// More can be written at once, but other connections go first.
    Yield,
}

/// Room kept before each piece for its chunk's head (`ffffffff\r\n` at most).
const CHUNK_HEAD: usize = 10;

/// The plain exposition, rendered piece by piece as the socket drains, each piece into the
/// same buffer and framed in place: no allocation and no copy per piece.
pub struct Stream {
    body: render::Body,
    chunked: bool,
    /// The frame being sent: `frame[at..]` is still to go.
    frame: Vec<u8>,
    at: usize,
    ended: bool,
}

impl Stream {
    /// `view` rendered at `now`, in HTTP/1.1 chunks when `chunked`.
    pub fn new(
        view: Arc<crate::store::View>,
        now: i64,
        options: render::Options,
        chunked: bool,
    ) -> Self {
        Self {
            body: render::Body::new(view, now, options, render::BUILD).in_pieces_of(PIECE),
            chunked,
            frame: Vec::new(),
            at: 0,
            ended: false,
        }
    }

    /// The bytes still to send of the current frame, rendering the next one when it is all
    /// sent; None once everything is.
    fn unsent(&mut self) -> Option<&[u8]> {
        if self.at == self.frame.len() {
            self.next_frame();
        }
        (self.at < self.frame.len()).then(|| &self.frame[self.at..])
    }

    /// `n` bytes of [`Stream::unsent`] were sent.
    fn sent(&mut self, n: usize) {
        self.at = (self.at + n).min(self.frame.len());
    }

    /// Renders the next piece into the frame, with its chunk head before it and its CRLF
    /// after it when chunked; the last chunk once the body ends; nothing after that.
    fn next_frame(&mut self) {
        self.frame.clear();
        self.at = 0;
        if self.ended {
            return;
        }
        if !self.chunked {
            self.ended = !self.body.next_into(&mut self.frame);
            return;
        }
        self.frame.resize(CHUNK_HEAD, 0);
        if !self.body.next_into(&mut self.frame) {
            self.ended = true;
            self.frame.clear();
            self.frame.extend_from_slice(b"0\r\n\r\n");
            return;
        }
        // The size in hex, right-aligned against the piece.
        let mut size = self.frame.len() - CHUNK_HEAD;
        let mut at = CHUNK_HEAD - 2;
        self.frame[at..CHUNK_HEAD].copy_from_slice(b"\r\n");
        loop {
            at -= 1;
            self.frame[at] = b"0123456789abcdef"[size & 0xf];
            size >>= 4;
            if size == 0 {
                break;
            }
        }
        self.at = at;
        self.frame.extend_from_slice(b"\r\n");
    }
}

/// A client connection.
///
/// Its deadline is not stored: [`Conn::deadline`] derives it from the phase and the times
/// below, so that no other code sets or moves it.
pub struct Conn {
    /// The socket (registered with the event loop).
    pub stream: TcpStream,
    tls: Option<Box<rustls::ServerConnection>>,
    /// Received bytes not yet taken by a request.
    pub input: Vec<u8>,
    output: VecDeque<(Bytes, usize)>,
    /// The streamed body still to render, if any.
    pub body: Option<Stream>,
    /// Where the connection is.
    pub phase: Phase,
    /// The client's address.
    pub peer: IpAddr,
    /// When it was accepted.
    opened: Instant,
    /// When the current phase began.
    since: Instant,
    /// When bytes last arrived (its opening until then).
    pub heard: Instant,
    /// When the first byte of the request head under way arrived.
    head_started: Option<Instant>,
    /// When the client last took bytes of an answer.
    sent: Instant,
    /// Requests completed on this connection.
    pub served: u32,
}

impl Conn {
    /// A connection accepted at `now`, with TLS when `tls` is given.
    pub fn new(
        stream: TcpStream,
        tls: Option<rustls::ServerConnection>,
        peer: IpAddr,
        now: Instant,
    ) -> Self {
        let tls = tls.map(|mut tls| {
            tls.set_buffer_limit(Some(TLS_BUFFER));
            Box::new(tls)
        });
        Self {
            stream,
            tls,
            input: Vec::new(),
            output: VecDeque::new(),
            body: None,
            phase: Phase::Reading,
            peer,
            opened: now,
            since: now,
            heard: now,
            head_started: None,
            sent: now,
            served: 0,
        }
    }

    /// Moves to `phase`.
    pub fn enter(&mut self, phase: Phase, now: Instant) {
        self.phase = phase;
        self.since = now;
    }

    /// A request head was taken from the input at `now`: the next one, if bytes of it are
    /// there already, started now.
    pub fn took_request(&mut self, now: Instant) {
        self.served = self.served.saturating_add(1);
        self.head_started = (!self.input.is_empty()).then_some(now);
    }

    /// When the connection must have moved on, and what happens then. The one place that
    /// knows every timeout.
    pub fn deadline(&self) -> (Instant, Expiry) {
        match &self.phase {
            Phase::Reading if self.served == 0 => (
                self.opened + HEAD_TIMEOUT,
                Expiry::Drop("no request head within the head timeout of connecting"),
            ),
            Phase::Reading => match self.head_started {
                Some(started) => (
                    (started + HEAD_TIMEOUT).min(self.since + IDLE_TIMEOUT),
                    Expiry::Drop("request head not finished within the head timeout"),
                ),
                None => (
                    self.since + IDLE_TIMEOUT,
                    Expiry::Drop("idle for the idle timeout"),
                ),
            },
            Phase::Waiting(held) if held.on == Awaiting::FirstPass => {
                (self.since + FIRST_PASS_WAIT, Expiry::Answer(held.on))
            }
            Phase::Waiting(held) if held.on == Awaiting::Throttled => {
                (self.since + THROTTLE_DELAY, Expiry::Answer(held.on))
            }
            Phase::Waiting(_) => (
                self.since + WORKER_TIMEOUT,
                Expiry::Drop("no answer from a worker in time"),
            ),
            Phase::Writing { .. } => (
                self.sent.max(self.since) + WRITE_TIMEOUT,
                Expiry::Drop("the client took no byte of the answer for the write timeout"),
            ),
            Phase::Closing => (
                self.since + LINGER,
                Expiry::Drop("the client did not close after the answer"),
            ),
        }
    }

    /// Queues bytes to send.
    pub fn queue(&mut self, bytes: Bytes) {
        self.output.push_back((bytes, 0));
    }

    /// The bytes queued and not yet sent, in one piece.
    #[cfg(test)]
    pub fn queued(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        for (bytes, at) in self.output.drain(..) {
            all.extend_from_slice(&bytes.as_slice()[at..]);
        }
        all
    }

    /// Reads what has arrived into `input`, up to its limit. True at the end of the stream.
    pub fn read(&mut self, now: Instant) -> io::Result<bool> {
        let before = self.input.len();
        let eof = self.read_input(now);
        if before == 0 && !self.input.is_empty() && self.head_started.is_none() {
            self.head_started = Some(now);
        }
        eof
    }

    /// Reads into `input`; any byte from the socket (a TLS record too) moves `heard`.
    fn read_input(&mut self, now: Instant) -> io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        match self.tls.as_deref_mut() {
            None => loop {
                let room = INPUT_LIMIT.saturating_sub(self.input.len());
                if room == 0 {
                    return Ok(false);
                }
                let want = room.min(buf.len());
                match self.stream.read(&mut buf[..want]) {
                    Ok(0) => return Ok(true),
                    Ok(n) => {
                        self.heard = now;
                        self.input.extend_from_slice(&buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            },
            Some(tls) => {
                let mut records = false;
                let eof = read_tls(
                    tls,
                    &mut self.stream,
                    &mut self.input,
                    &mut buf,
                    &mut records,
                )?;
                if records {
                    self.heard = now;
                }
                flush_tls(tls, &mut self.stream)?;
                Ok(eof)
            }
        }
    }

    /// Writes queued bytes, rendering more of a streamed body as they go; `now` is when
    /// the client was last seen taking bytes, if the socket takes any.
    pub fn write(&mut self, now: Instant) -> io::Result<Flow> {
        let mut written = 0;
        loop {
            if let Some(tls) = self.tls.as_deref_mut() {
                let (sent, flushed) = flush_tls(tls, &mut self.stream)?;
                if sent > 0 {
                    self.sent = now;
                }
                if !flushed {
                    return Ok(Flow::Blocked);
                }
            }
            if written >= TURN {
                return Ok(Flow::Yield);
            }
            // Queued bytes first (the head), then the streamed body straight from its buffer.
            let data = match self.output.front() {
                Some((front, at)) => &front.as_slice()[*at..],
                None => match self.body.as_mut().and_then(Stream::unsent) {
                    Some(data) => data,
                    None => {
                        self.body = None;
                        return Ok(Flow::Done);
                    }
                },
            };
            let n = match self.tls.as_deref_mut() {
                Some(tls) => tls.writer().write(data)?,
                None => match self.stream.write(data) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flow::Blocked),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                    Err(e) => return Err(e),
                },
            };
            written += n;
            if n > 0 && self.tls.is_none() {
                self.sent = now;
            }
            match self.output.front_mut() {
                Some((front, at)) => {
                    *at += n;
                    if *at == front.as_slice().len() {
                        self.output.pop_front();
                    }
                }
                None => {
                    if let Some(body) = self.body.as_mut() {
                        body.sent(n);
                    }
                }
            }
        }
    }

    /// Ends our side: TLS close_notify, then FIN. The client may still send.
    pub fn shut(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = flush_tls(tls, &mut self.stream);
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Reads and drops what the client still sends. True once it has closed (or failed).
    pub fn discard(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }
}

/// Reads TLS records and decrypts them into `input`, up to its limit; handshake messages are
/// processed on the way; `records` is set when any arrived. True at the end of the stream
/// (close_notify or a bare close).
fn read_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    input: &mut Vec<u8>,
    buf: &mut [u8],
    records: &mut bool,
) -> io::Result<bool> {
    loop {
        loop {
            let room = INPUT_LIMIT.saturating_sub(input.len());
            if room == 0 {
                return Ok(false);
            }
            let want = room.min(buf.len());
            match tls.reader().read(&mut buf[..want]) {
                Ok(0) => return Ok(true),
                Ok(n) => input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(true),
                Err(e) => return Err(e),
            }
        }
        match tls.read_tls(stream) {
            Ok(n) => {
                *records |= n > 0;
                if let Err(e) = tls.process_new_packets() {
                    // Send the alert that says why, then give up on the connection.
                    let _ = tls.write_tls(stream);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sends what rustls has ready: the bytes the socket took, and whether nothing is left.
fn flush_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
) -> io::Result<(usize, bool)> {
    let mut sent = 0;
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((sent, false)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((sent, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends a stream as the write loop does, `step` bytes at most per write.
    fn send_all(stream: &mut Stream, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(data) = stream.unsent() {
            let n = data.len().min(step);
            out.extend_from_slice(&data[..n]);
            stream.sent(n);
        }
        out
    }

    /// The body of a chunked message, checking each chunk's framing on the way.
    fn dechunk(mut data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = data.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = std::str::from_utf8(&data[..line]).unwrap();
            assert!(size == "0" || !size.starts_with('0'), "chunk size {size:?}");
            let size = usize::from_str_radix(size, 16).unwrap();
            data = &data[line + 2..];
            if size == 0 {
                assert_eq!(data, b"\r\n", "the last chunk ends the message");
                return body;
            }
            body.extend_from_slice(&data[..size]);
            assert_eq!(&data[size..size + 2], b"\r\n");
            data = &data[size + 2..];
        }
    }

    #[test]
    fn a_streamed_body_is_the_exposition_in_chunks_or_bare() {
        let view = crate::store::big_view(3000, |i| (i, 1_000_000 - i));
        let options = render::Options {
            relative: true,
            per_cert_error: true,
            cert_info: false,
        };
        let text = render::render(Arc::clone(&view), 500_000, options, &render::BUILD);
        assert!(text.len() > 4 * PIECE, "several pieces");
        for step in [usize::MAX, 4096, 1000] {
            let mut chunked = Stream::new(Arc::clone(&view), 500_000, options, true);
            let sent = send_all(&mut chunked, step);
            assert_eq!(String::from_utf8(dechunk(&sent)).unwrap(), text, "{step}");
            assert!(chunked.unsent().is_none(), "nothing after the last chunk");
            let mut bare = Stream::new(Arc::clone(&view), 500_000, options, false);
            assert_eq!(
                String::from_utf8(send_all(&mut bare, step)).unwrap(),
                text,
                "{step}"
            );
        }
    }
}
