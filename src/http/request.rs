//! HTTP/1.x request heads: bytes → what the exporter needs of a request, never panicking and
//! never reading past [`MAX_HEAD`] bytes. Bodies are not read; a request that says it has one
//! is answered and then its connection closed.

/// The longest request head accepted; beyond it the answer is 431.
pub const MAX_HEAD: usize = 32 * 1024;

/// The methods the exporter tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: the GET answer without its body.
    Head,
    /// Anything else: 405.
    Other,
}

/// The parts of a request head the exporter uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The method.
    pub method: Method,
    /// The path, without its query.
    pub path: String,
    /// HTTP/1.1 (or a later 1.x), which has chunks and keep-alive; otherwise HTTP/1.0.
    pub http11: bool,
    /// Whether the connection may stay open after the answer.
    pub keep_alive: bool,
    /// Whether the client takes a gzip body.
    pub gzip: bool,
    /// The `Authorization` header, when given.
    pub authorization: Option<String>,
    /// Whether a body follows the head (Content-Length above 0 or Transfer-Encoding).
    pub has_body: bool,
}

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// No complete head yet.
    Partial,
    /// A head, and how many bytes of the input it took.
    Complete(Head, usize),
    /// A malformed head: the status to answer with (400, 431 or 505) before closing.
    Bad(u16),
}

/// Parses the head at the start of `input`. Empty lines before the request line are skipped;
/// lines may end in CRLF or LF.
pub fn parse(input: &[u8]) -> Parsed {
    // A first word that cannot be a method is refused at once, without waiting for a head
    // that may never come (a TLS ClientHello sent to the plain listener, say).
    let start = input
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(input.len());
    if !input[start..]
        .iter()
        .take_while(|&&b| b != b' ')
        .all(|&b| is_token(b))
    {
        return Parsed::Bad(400);
    }
    let Some(end) = head_end(input) else {
        return if input.len() >= MAX_HEAD {
            Parsed::Bad(431)
        } else {
            Parsed::Partial
        };
    };
    if end > MAX_HEAD {
        return Parsed::Bad(431);
    }
    let Ok(text) = std::str::from_utf8(&input[..end]) else {
        return Parsed::Bad(400);
    };
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());
    let Some(request_line) = lines.next() else {
        return Parsed::Bad(400);
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Bad(400);
    };
    if method.is_empty() || !method.bytes().all(is_token) || !target.starts_with(['/', '*']) {
        return Parsed::Bad(400);
    }
    let http11 = match version.strip_prefix("HTTP/1.") {
        Some("0") => false,
        Some(minor) if !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()) => true,
        _ if version.starts_with("HTTP/") => return Parsed::Bad(505),
        _ => return Parsed::Bad(400),
    };
    let mut head = Head {
        method: match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            _ => Method::Other,
        },
        path: target.split('?').next().unwrap_or("").to_string(),
        http11,
        keep_alive: http11,
        gzip: false,
        authorization: None,
        has_body: false,
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Bad(400);
        };
        // No space before the colon, no folded lines (RFC 9112 §5.1, §5.2).
        if name.is_empty() || !name.bytes().all(is_token) {
            return Parsed::Bad(400);
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                }
            }
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            head.gzip |= accepts_gzip(value);
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<u64>() {
                Ok(length) => head.has_body |= length > 0,
                Err(_) => return Parsed::Bad(400),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.has_body = true;
        }
    }
    // HTTP/1.0 connections are closed after each answer: a streamed body has no length.
    head.keep_alive &= head.http11 && !head.has_body;
    Parsed::Complete(head, end)
}

/// The offset just past the empty line ending the head (leading empty lines do not count).
fn head_end(input: &[u8]) -> Option<usize> {
    let window = &input[..input.len().min(MAX_HEAD + 4)];
    let start = window.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let mut at = start;
    while let Some(newline) = window[at..].iter().position(|&b| b == b'\n') {
        let next = at + newline + 1;
        match window.get(next) {
            Some(b'\n') => return Some(next + 1),
            Some(b'\r') if window.get(next + 1) == Some(&b'\n') => return Some(next + 2),
            _ => at = next,
        }
    }
    None
}

/// True when an Accept-Encoding value lists `gzip` (or `*`) without `q=0`.
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|part| {
        let mut fields = part.split(';').map(str::trim);
        let coding = fields.next().unwrap_or("");
        let refused = fields.any(|f| {
            let f = f.replace(' ', "");
            f.starts_with("q=0") && !f.contains(|c: char| ('1'..='9').contains(&c))
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// A `tchar` of RFC 9110 §5.6.2.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(input: &str) -> (Head, usize) {
        match parse(input.as_bytes()) {
            Parsed::Complete(head, used) => (head, used),
            other => panic!("{input:?}: {other:?}"),
        }
    }

    #[test]
    fn a_prometheus_scrape() {
        let input = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\nAuthorization: Basic eDp5\r\n\r\nGET /";
        let (head, used) = complete(input);
        assert_eq!(used, input.len() - 5, "the pipelined request stays");
        assert_eq!(
            head,
            Head {
                method: Method::Get,
                path: "/metrics".into(),
                http11: true,
                keep_alive: true,
                gzip: true,
                authorization: Some("Basic eDp5".into()),
                has_body: false,
            }
        );
    }

    #[test]
    fn versions_connections_and_bodies() {
        let (head, _) = complete("\r\nHEAD / HTTP/1.0\n\n");
        assert_eq!(
            (head.method, head.http11, head.keep_alive),
            (Method::Head, false, false)
        );
        let (head, _) = complete("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(!head.keep_alive);
        let (head, _) = complete("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(
            (head.method, head.has_body, head.keep_alive),
            (Method::Other, true, false)
        );
        let (head, _) = complete("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert!(head.keep_alive);
    }

    #[test]
    fn partial_bad_and_too_long() {
        assert_eq!(parse(b""), Parsed::Partial);
        assert_eq!(parse(b"\r\n\r\n"), Parsed::Partial);
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Parsed::Partial);
        for bad in [
            "GET /\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "GET x HTTP/1.1\r\n\r\n",
            "GET / FTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse(bad.as_bytes()), Parsed::Bad(400), "{bad:?}");
        }
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Parsed::Bad(505));
        assert_eq!(parse(b"GE"), Parsed::Partial);
        assert_eq!(
            parse(b"\x16\x03\x01\x02\x00"),
            Parsed::Bad(400),
            "TLS, at once"
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n"),
            Parsed::Bad(400)
        );
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(long.as_bytes()), Parsed::Bad(431));
        let long_complete = format!("{long}\r\n");
        assert_eq!(parse(long_complete.as_bytes()), Parsed::Bad(431));
    }

    #[test]
    fn accept_encoding() {
        for (value, wanted) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("gzip;q=0", false),
            ("gzip; q=0.000", false),
            ("*", true),
            ("br", false),
        ] {
            assert_eq!(accepts_gzip(value), wanted, "{value}");
        }
    }
}
