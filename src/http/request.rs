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
    if method.is_empty() || !method.bytes().all(is_token) {
        return Parsed::Bad(400);
    }
    let Some(path) = path_of(target) else {
        return Parsed::Bad(400);
    };
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
        path: path.to_string(),
        http11,
        keep_alive: http11,
        gzip: false,
        authorization: None,
        has_body: false,
    };
    let mut encodings = Encodings::default();
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
            encodings.add(value);
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
    head.gzip = encodings.gzip();
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

/// The path of a request target, without its query: origin form (`/metrics?x`), absolute
/// form (`http://host:9793/metrics`, RFC 9112 §3.2.2, which a server must accept), or `*`.
/// None for anything else.
fn path_of(target: &str) -> Option<&str> {
    let target = target.split(['?', '#']).next().unwrap_or("");
    if target.starts_with('/') || target == "*" {
        return Some(target);
    }
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    match rest.find('/') {
        Some(at) if at > 0 => Some(&rest[at..]),
        None if !rest.is_empty() => Some("/"),
        _ => None,
    }
}

/// The codings an `Accept-Encoding` field list allows (RFC 9110 §12.5.3): the weight given
/// to gzip and to `*`, in thousandths. A member whose weight does not parse is ignored.
#[derive(Default)]
struct Encodings {
    gzip: Option<u16>,
    any: Option<u16>,
}

impl Encodings {
    /// Takes one field value; repeated fields add up, as one comma-separated list.
    fn add(&mut self, value: &str) {
        for member in value.split(',') {
            let mut params = member.split(';');
            let coding = params.next().unwrap_or("").trim_matches([' ', '\t']);
            let mut weight = Some(1000);
            for param in params {
                let Some((name, q)) = param.split_once('=') else {
                    weight = None;
                    continue;
                };
                if name.trim_matches([' ', '\t']).eq_ignore_ascii_case("q") {
                    weight = weight.and(qvalue(q.trim_matches([' ', '\t'])));
                }
            }
            let Some(weight) = weight else { continue };
            // "x-gzip" is the same coding (RFC 9110 §8.4.1.3).
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                self.gzip = Some(self.gzip.map_or(weight, |w| w.max(weight)));
            } else if coding == "*" {
                self.any = Some(self.any.map_or(weight, |w| w.max(weight)));
            }
        }
    }

    /// Whether a gzip body is acceptable: named with a weight above 0, or, when not named,
    /// covered by `*` with a weight above 0.
    fn gzip(&self) -> bool {
        self.gzip.or(self.any).is_some_and(|w| w > 0)
    }
}

/// A `qvalue` (RFC 9110 §12.4.2) in thousandths: `0`, `0.5`, `1.000`; None if malformed.
fn qvalue(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac.bytes().chain(std::iter::repeat(b'0')).take(3);
    let frac = thousandths.fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match int {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
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
    fn accept_encoding_weights() {
        let gzip = |values: &[&str]| {
            let mut encodings = Encodings::default();
            for value in values {
                encodings.add(value);
            }
            encodings.gzip()
        };
        for (value, wanted) in [
            ("gzip", true),
            ("GZip", true),
            ("x-gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("gzip;q=0", false),
            ("gzip; q=0.000", false),
            ("gzip;Q=0.001", true),
            ("gzip;q=1.0", true),
            ("gzip;q=1.001", false),
            ("gzip;q=2", false),
            ("gzip;q=0.0001", false),
            ("gzip;q=", false),
            ("gzip;q=.5", false),
            ("*", true),
            ("*;q=0", false),
            ("*, gzip;q=0", false),
            ("gzip;q=0, *", false),
            ("br;q=1, *;q=0.1", true),
            ("identity", false),
            ("br", false),
            ("", false),
            ("gzipx", false),
        ] {
            assert_eq!(gzip(&[value]), wanted, "{value:?}");
        }
        assert!(gzip(&["br", "gzip"]), "two fields make one list");
        assert!(!gzip(&["*", "gzip;q=0"]));
    }

    #[test]
    fn absolute_form_targets() {
        for (target, path) in [
            ("http://localhost:9793/metrics", "/metrics"),
            ("HTTP://[::1]:9793/healthz?x=1", "/healthz"),
            ("https://h/", "/"),
            ("http://h", "/"),
            ("/metrics#frag", "/metrics"),
        ] {
            let (head, _) = complete(&format!("GET {target} HTTP/1.1\r\n\r\n"));
            assert_eq!(head.path, path, "{target}");
        }
        for bad in ["ftp://h/metrics", "http:///metrics", "http://", "h:9793"] {
            let input = format!("GET {bad} HTTP/1.1\r\n\r\n");
            assert_eq!(parse(input.as_bytes()), Parsed::Bad(400), "{bad}");
        }
    }
}
