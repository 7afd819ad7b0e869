//! One client connection, non-blocking, plain or TLS: request bytes in a bounded buffer,
//! the answer written as fast as the socket takes it and no faster. Nothing here blocks, so
//! one event loop serves every connection and a client that stalls holds up no one.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (the rest of) a request head.
    Reading,
    /// Waiting for a worker: a gzip body or a password check.
    Waiting,
    /// Writing an answer; the connection closes after it when `close`.
    Writing {
        /// Close after this answer.
        close: bool,
    },
    /// Answer written and our side shut: reading what the client still sends until it
    /// closes too, so that closing never resets an answer it has not read yet.
    Closing,
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

/// The plain exposition, rendered piece by piece as the socket drains.
pub struct Stream {
    body: render::Body,
    chunked: bool,
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
            ended: false,
        }
    }

    fn next(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        match self.body.next_owned() {
            Some(piece) if self.chunked => {
                let mut frame = Vec::with_capacity(piece.len() + 12);
                frame.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                frame.extend_from_slice(&piece);
                frame.extend_from_slice(b"\r\n");
                Some(Bytes::Owned(frame))
            }
            Some(piece) => Some(Bytes::Owned(piece)),
            None => {
                self.ended = true;
                self.chunked.then_some(Bytes::Static(b"0\r\n\r\n"))
            }
        }
    }
}

/// A client connection.
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
    /// When the connection is dropped unless something moves it on.
    pub deadline: Instant,
    /// When the current phase began (the oldest idle connection is the first evicted).
    pub since: Instant,
    /// The request waiting for a worker's answer.
    pub held: Option<super::Held>,
}

impl Conn {
    /// A new connection, with TLS when `tls` is given.
    pub fn new(
        stream: TcpStream,
        tls: Option<rustls::ServerConnection>,
        deadline: Instant,
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
            deadline,
            since: Instant::now(),
            held: None,
        }
    }

    /// Moves to `phase`, to be left by `deadline`.
    pub fn enter(&mut self, phase: Phase, now: Instant, deadline: Instant) {
        self.phase = phase;
        self.since = now;
        self.deadline = deadline;
    }

    /// Queues bytes to send.
    pub fn queue(&mut self, bytes: Bytes) {
        self.output.push_back((bytes, 0));
    }

    /// Reads what has arrived into `input`, up to its limit. True at the end of the stream.
    pub fn read(&mut self) -> io::Result<bool> {
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
                    Ok(n) => self.input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            },
            Some(tls) => {
                let eof = read_tls(tls, &mut self.stream, &mut self.input, &mut buf)?;
                flush_tls(tls, &mut self.stream)?;
                Ok(eof)
            }
        }
    }

    /// Writes queued bytes, rendering more of a streamed body as they go. Whenever the
    /// socket takes bytes, the deadline moves to `extend_to`.
    pub fn write(&mut self, extend_to: Instant) -> io::Result<Flow> {
        let mut written = 0;
        loop {
            if let Some(tls) = self.tls.as_deref_mut() {
                let (sent, flushed) = flush_tls(tls, &mut self.stream)?;
                if sent > 0 {
                    self.deadline = extend_to;
                }
                if !flushed {
                    return Ok(Flow::Blocked);
                }
            }
            if written >= TURN {
                return Ok(Flow::Yield);
            }
            let Some((front, at)) = self.output.front_mut() else {
                match self.body.as_mut().and_then(Stream::next) {
                    Some(piece) => {
                        self.queue(piece);
                        continue;
                    }
                    None => {
                        self.body = None;
                        return Ok(Flow::Done);
                    }
                }
            };
            let data = &front.as_slice()[*at..];
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
                self.deadline = extend_to;
            }
            *at += n;
            if *at == front.as_slice().len() {
                self.output.pop_front();
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
/// processed on the way. True at the end of the stream (close_notify or a bare close).
fn read_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    input: &mut Vec<u8>,
    buf: &mut [u8],
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
            Ok(_) => {
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
