//! The exposition: a store's [`View`] + the clock → Prometheus text format 0.0.4, written by
//! hand. [`Body`] produces it as a stream, a few tens of kilobytes at a time, so a scrape
//! never holds a second copy of every label. Pure: no I/O, no clock of its own.

use std::io::Read;
use std::sync::Arc;

use crate::labels::escape_into;
use crate::model::{Series, NO_NEXT_UPDATE};
use crate::store::{Cursor, View};

/// Which optional families to print.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `x509_cert_expires_in_seconds` and `x509_cert_valid_since_seconds`.
    pub relative: bool,
    /// `x509_cert_error`.
    pub per_cert_error: bool,
    /// `x509_cert_info`.
    pub cert_info: bool,
}

/// Build facts for `x509_exporter_build_info`.
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo {
    /// Crate version.
    pub version: &'static str,
    /// Source revision.
    pub revision: &'static str,
    /// Build time.
    pub built: &'static str,
    /// Compiler version.
    pub rustversion: &'static str,
}

/// This binary's build facts.
pub const BUILD: BuildInfo = BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    revision: env!("X509_BUILD_REVISION"),
    built: env!("X509_BUILD_TIME"),
    rustversion: env!("X509_BUILD_RUSTC"),
};

/// A family of certificate or CRL series: name, HELP text, value of a series at a time
/// (`None`: no sample for this series).
type Family = (&'static str, &'static str, fn(&Series, i64) -> Option<i64>);

/// The certificate families: the first three always, the next two with relative metrics,
/// the last with `--expose-cert-info`.
const FAMILIES: [Family; 6] = [
    (
        "x509_cert_not_before",
        "Start of the certificate's validity, in Unix seconds.",
        |s, _| Some(s.not_before),
    ),
    (
        "x509_cert_not_after",
        "End of the certificate's validity, in Unix seconds.",
        |s, _| Some(s.not_after),
    ),
    (
        "x509_cert_expired",
        "Whether the certificate has expired: 1 if so, else 0.",
        |s, now| Some(i64::from(now > s.not_after)),
    ),
    (
        "x509_cert_expires_in_seconds",
        "Time left before the certificate expires, in seconds (negative once expired).",
        |s, now| Some(s.not_after.saturating_sub(now)),
    ),
    (
        "x509_cert_valid_since_seconds",
        "Time since the certificate became valid, in seconds.",
        |s, now| Some(now.saturating_sub(s.not_before)),
    ),
    (
        INFO,
        "What the certificate is (key, signature, CA, place in its chain, SANs), in its labels; the value is always 1.",
        |s, _| (!s.facts.is_empty()).then_some(1),
    ),
];

/// The family whose series carry the certificates' facts.
const INFO: &str = "x509_cert_info";

/// The CRL families, as the certificate ones; a CRL without nextUpdate has no sample in
/// those that need it and never goes stale.
const CRL_FAMILIES: [Family; 5] = [
    (
        "x509_crl_this_update",
        "When the CRL was issued (its thisUpdate), in Unix seconds.",
        |s, _| Some(s.not_before),
    ),
    (
        "x509_crl_next_update",
        "When the CRL's issuer will publish the next one (its nextUpdate), in Unix seconds.",
        |s, _| (s.not_after != NO_NEXT_UPDATE).then_some(s.not_after),
    ),
    (
        "x509_crl_stale",
        "Whether the CRL's nextUpdate has passed: 1 if so, else 0.",
        |s, now| Some(i64::from(now > s.not_after)),
    ),
    (
        "x509_crl_stale_in_seconds",
        "Time left before the CRL's nextUpdate, in seconds (negative once stale).",
        |s, now| (s.not_after != NO_NEXT_UPDATE).then(|| s.not_after.saturating_sub(now)),
    ),
    (
        "x509_crl_fresh_since_seconds",
        "Time since the CRL's thisUpdate, in seconds.",
        |s, now| Some(now.saturating_sub(s.not_before)),
    ),
];

/// Stages of the body, in order: certificate families, CRL families, errors, the rest.
const CERT_FAMILIES: usize = FAMILIES.len();
const CRL_STAGES: usize = CERT_FAMILIES + CRL_FAMILIES.len();
const CERT_ERROR: usize = CRL_STAGES;
const DONE: usize = CRL_STAGES + 2;

/// Size of each piece [`Body`] renders before handing it out, unless told otherwise.
const CHUNK: usize = 512 * 1024;

/// The exposition as a stream of bytes (`Read`).
pub struct Body {
    view: Arc<View>,
    now: i64,
    options: Options,
    build: BuildInfo,
    stage: usize,
    /// Where the current certificate family stands; `None` before its header.
    cursor: Option<Cursor>,
    buf: Vec<u8>,
    pos: usize,
    piece: usize,
}

impl Body {
    /// The exposition of `view` at Unix time `now`.
    pub fn new(view: Arc<View>, now: i64, options: Options, build: BuildInfo) -> Self {
        Self {
            view,
            now,
            options,
            build,
            stage: 0,
            cursor: None,
            buf: Vec::new(),
            pos: 0,
            piece: CHUNK,
        }
    }

    /// The same stream in pieces of about `size` bytes (a piece ends at a line's end).
    pub fn in_pieces_of(mut self, size: usize) -> Self {
        self.piece = size.max(1);
        self
    }

    /// Renders the next piece into `buf`; leaves it empty at the end.
    fn fill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.render();
    }

    /// Appends about a piece's worth of lines to `buf` (nothing at the end).
    fn render(&mut self) {
        self.buf.reserve(self.piece + 1024);
        while self.buf.len() < self.piece && self.stage < DONE {
            match self.stage {
                s if s < CERT_FAMILIES => self.family(FAMILIES[s], s, false),
                s if s < CRL_STAGES => {
                    let index = s - CERT_FAMILIES;
                    self.family(CRL_FAMILIES[index], index, true)
                }
                CERT_ERROR => self.cert_errors(),
                _ => self.tail(),
            }
        }
    }

    /// Renders the family at `index` of its table, of the CRLs' series when `crl`.
    fn family(&mut self, family: Family, index: usize, crl: bool) {
        let (name, help, value) = family;
        let enabled = match (index, name) {
            (0..3, _) => true,
            (_, INFO) => self.options.cert_info,
            _ => self.options.relative,
        };
        let count = match crl {
            true => self.view.crl_count(),
            false => self.view.cert_count(),
        };
        if !enabled || count == 0 {
            return self.next_stage();
        }
        let info = name == INFO;
        let cursor = self.cursor.get_or_insert_with(|| {
            header(&mut self.buf, name, help, "gauge");
            Cursor::default()
        });
        while self.buf.len() < self.piece {
            let next = match crl {
                true => self.view.next_crl(cursor),
                false => self.view.next_cert(cursor),
            };
            let Some((item, series, discriminate)) = next else {
                return self.next_stage();
            };
            let Some(value) = value(series, self.now) else {
                continue;
            };
            self.buf.extend_from_slice(name.as_bytes());
            let facts = if info { &*series.facts } else { "" };
            let parts = [item, &*series.labels, &*series.issuer, facts];
            labels(
                &mut self.buf,
                parts,
                discriminate.then_some(series.fingerprint),
            );
            self.buf.push(b' ');
            push_int(&mut self.buf, value);
            self.buf.push(b'\n');
        }
    }

    fn cert_errors(&mut self) {
        let view = Arc::clone(&self.view);
        let mut errors = view.error_series().peekable();
        if self.options.per_cert_error && errors.peek().is_some() {
            header(&mut self.buf, "x509_cert_error", "Whether reading this file or Secret key failed in the latest refresh: 1 if so, else 0.", "gauge");
            for (item, failing) in errors {
                self.buf.extend_from_slice(b"x509_cert_error");
                labels(&mut self.buf, [item, "", "", ""], None);
                self.buf
                    .extend_from_slice(if failing { b" 1\n" } else { b" 0\n" });
            }
        }
        self.next_stage();
    }

    fn tail(&mut self) {
        let b = &mut self.buf;
        let counts = [
            (
                "x509_read_errors",
                "Read failures in the latest refresh of every source, a count.",
                "gauge",
                self.view.read_errors,
            ),
            (
                "x509_read_errors_total",
                "Read failures since the exporter started, a count.",
                "counter",
                self.view.read_errors_total,
            ),
        ];
        for (name, help, kind, value) in counts {
            header(b, name, help, kind);
            b.extend_from_slice(name.as_bytes());
            b.push(b' ');
            push_int(b, value as i64);
            b.push(b'\n');
        }
        header(
            b,
            "x509_exporter_build_info",
            "Build facts of this exporter in its labels; the value is always 1.",
            "gauge",
        );
        let mut info = String::from("x509_exporter_build_info{");
        for (i, (name, value)) in [
            ("built", self.build.built),
            ("revision", self.build.revision),
            ("rustversion", self.build.rustversion),
            ("version", self.build.version),
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                info.push(',');
            }
            info.push_str(name);
            info.push_str("=\"");
            escape_into(&mut info, value);
            info.push('"');
        }
        info.push_str("} 1\n");
        b.extend_from_slice(info.as_bytes());
        self.stage = DONE;
    }

    fn next_stage(&mut self) {
        self.stage += 1;
        self.cursor = None;
    }
}

impl Body {
    /// Appends the next rendered piece to `out`, after what it holds already (room for a
    /// frame's head, say), so that a caller reusing one buffer neither allocates nor copies
    /// per piece. False at the end, with nothing appended.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> bool {
        if self.pos < self.buf.len() {
            // The rest of a piece partly taken through `Read`.
            out.extend_from_slice(&self.buf[self.pos..]);
            self.pos = self.buf.len();
            return true;
        }
        let before = out.len();
        std::mem::swap(&mut self.buf, out);
        // A piece's worth after what `out` held: the loops stop at `piece` bytes of `buf`.
        let piece = self.piece;
        self.piece = piece.saturating_add(before);
        self.render();
        self.piece = piece;
        std::mem::swap(&mut self.buf, out);
        out.len() > before
    }

    /// The next rendered piece, borrowed; empty at the end.
    pub fn next_piece(&mut self) -> &[u8] {
        if self.pos == self.buf.len() {
            self.fill();
        }
        let piece = &self.buf[self.pos..];
        self.pos = self.buf.len();
        piece
    }
}

impl Read for Body {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            self.fill();
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The whole exposition in memory.
#[cfg(test)]
pub fn render(view: Arc<View>, now: i64, options: Options, build: &BuildInfo) -> String {
    let mut out = Vec::new();
    let _ = Body::new(view, now, options, *build).read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn header(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    for part in [
        "# HELP ",
        name,
        " ",
        help,
        "\n# TYPE ",
        name,
        " ",
        kind,
        "\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
}

/// `{item,series,issuer,facts,discriminator="…"}`, or nothing when all are empty.
fn labels(out: &mut Vec<u8>, parts: [&str; 4], discriminator: Option<u32>) {
    let start = out.len();
    // One reservation for the line's labels; each part goes in after a comma, and the
    // first comma becomes the brace.
    out.reserve(parts.iter().map(|p| p.len()).sum::<usize>() + 30);
    for part in parts {
        if !part.is_empty() {
            out.push(b',');
            out.extend_from_slice(part.as_bytes());
        }
    }
    if let Some(fingerprint) = discriminator {
        let mut label = *b",discriminator=\"00000000\"";
        for (digit, shift) in label[16..24].iter_mut().zip((0..8).rev()) {
            *digit = b"0123456789abcdef"[((fingerprint >> (shift * 4)) & 0xf) as usize];
        }
        out.extend_from_slice(&label);
    }
    if out.len() > start {
        out[start] = b'{';
        out.push(b'}');
    }
}

/// "00" to "99": two digits per division in [`push_int`].
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// Decimal digits of `value`, without the formatting machinery (this is the hot loop: a
/// timestamp on every line), two digits at a time.
fn push_int(out: &mut Vec<u8>, value: i64) {
    let mut digits = [0u8; 20];
    let mut n = value.unsigned_abs();
    let mut at = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// The last second at which the exposition of `view` rendered at `now` is still the same
/// text (from `now` on): with relative metrics every value moves each second; otherwise only
/// `x509_cert_expired` and `x509_crl_stale` depend on the clock, and each flips one second
/// after the earliest `not_after` (nextUpdate) that has not passed yet. `i64::MAX` when
/// nothing will ever flip.
pub fn valid_until(view: &View, now: i64, options: Options) -> i64 {
    if options.relative && view.cert_count() + view.crl_count() > 0 {
        return now;
    }
    view.certs()
        .chain(view.crls())
        .map(|(_, series, _)| series.not_after)
        .filter(|&not_after| not_after >= now)
        .min()
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Item;
    use crate::store::Store;

    const TEST_BUILD: BuildInfo = BuildInfo {
        version: "1.2.3",
        revision: "abc",
        built: "2026-01-01T00:00:00Z",
        rustversion: "rustc 1.95.0",
    };

    fn view() -> Arc<View> {
        crate::store::view_of(Item {
            labels: "filename=\"a.pem\",filepath=\"/x/a.pem\"".into(),
            series: vec![
                Series {
                    issuer: "".into(),
                    labels: "serial_number=\"1\"".into(),
                    not_before: 1000,
                    not_after: 2000,
                    fingerprint: 0xab,
                    facts: Box::default(),
                    crl: false,
                },
                Series {
                    issuer: "".into(),
                    labels: "serial_number=\"2\"".into(),
                    not_before: 1000,
                    not_after: 5000,
                    fingerprint: 0x1,
                    facts: Box::default(),
                    crl: false,
                },
                Series {
                    issuer: "".into(),
                    labels: "serial_number=\"2\"".into(),
                    not_before: 1000,
                    not_after: 6000,
                    fingerprint: 0xdeadbeef,
                    facts: Box::default(),
                    crl: false,
                },
                // A CRL gone stale, and one without nextUpdate that never does.
                Series {
                    issuer: "issuer_CN=\"CA\"".into(),
                    labels: "crl_number=\"7\"".into(),
                    not_before: 1500,
                    not_after: 2500,
                    fingerprint: 0x7,
                    facts: Box::default(),
                    crl: true,
                },
                Series {
                    issuer: "issuer_CN=\"Other CA\"".into(),
                    labels: "".into(),
                    not_before: 1600,
                    not_after: NO_NEXT_UPDATE,
                    fingerprint: 0x8,
                    facts: Box::default(),
                    crl: true,
                },
            ]
            .into(),
            errors: vec!["read /x/a.pem: PEM block 4: invalid base64".to_string()].into(),
        })
    }

    /// Compares with a committed golden file; `UPDATE_GOLDEN=1 cargo test` rewrites it.
    fn check_golden(body: &str, name: &str) {
        let path = format!("{}/fixtures/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, body).unwrap();
        }
        let golden = std::fs::read_to_string(&path).unwrap();
        assert_eq!(body, golden, "{path}");
    }

    #[test]
    fn golden_with_every_option() {
        let options = Options {
            relative: true,
            per_cert_error: true,
            cert_info: false,
        };
        check_golden(
            &render(view(), 3000, options, &TEST_BUILD),
            "render_all_options.prom",
        );
    }

    #[test]
    fn golden_default_options() {
        check_golden(
            &render(view(), 3000, Options::default(), &TEST_BUILD),
            "render_default.prom",
        );
    }

    /// Three certificates in two files and one file that fails, labelled by the real label
    /// code (escaping, omitted empty values, negative serial), every option on.
    fn hand_checked_view() -> Arc<View> {
        use crate::labels::LabelConfig;
        use crate::model::{CertInfo, Name, Position, Report};
        let config = LabelConfig::default();
        let name = |c: &str, st: &str, l: &str, o: &str, ou: &str, cn: &str| {
            Name::new([c, st, l, o, ou, cn])
        };
        let ca = name("", "", "", "Acme", "", "Acme CA");
        let odd = name("", "", "", "", "", "back\\slash\nline");
        let cert = |serial: &str, subject: &Name, issuer: &Name, dates: (i64, i64)| {
            config.series(
                &[],
                &CertInfo {
                    serial: serial.into(),
                    subject: subject.clone(),
                    issuer: issuer.clone(),
                    not_before: dates.0,
                    not_after: dates.1,
                    fingerprint: 0x1234_5678,
                    alias: "".into(),
                    facts: Default::default(),
                },
                Position::Leaf,
            )
        };
        let leaf = name(
            "FR",
            "Ile-de-France",
            "Paris",
            "Acme \"Web\"",
            "Ops",
            "www.example.com",
        );
        let item = |path: &str, series: Vec<Series>, errors: Vec<String>| {
            Arc::new(Item {
                labels: config.origin(&config.file_pairs(path)),
                series: series.into(),
                errors: errors.into(),
            })
        };
        let mut store = Store::new(1);
        store.apply(Report {
            source: 0,
            items: [
                item(
                    "/etc/ssl/web/bundle.pem",
                    vec![
                        cert("4096", &leaf, &ca, (1_700_000_000, 1_800_000_000)),
                        cert("-5", &ca, &ca, (1_600_000_000, 1_750_000_000)),
                    ],
                    vec![],
                ),
                item(
                    "/etc/ssl/odd/name.pem",
                    vec![cert("1", &odd, &odd, (1_750_000_000, 1_900_000_000))],
                    vec![],
                ),
                item(
                    "/etc/ssl/broken.pem",
                    vec![],
                    vec!["read /etc/ssl/broken.pem: no certificate found".into()],
                ),
            ]
            .into(),
            errors: vec![],
            changed: true,
            ready: true,
        });
        store.publish();
        store.view()
    }

    /// Unlike the goldens above, this file was written and checked by hand against the v3
    /// format (fixtures/README.md says what was checked); `UPDATE_GOLDEN` never rewrites it.
    #[test]
    fn golden_checked_by_hand_against_v3() {
        let path = format!(
            "{}/fixtures/golden/v3_checked_by_hand.prom",
            env!("CARGO_MANIFEST_DIR")
        );
        let options = Options {
            relative: true,
            per_cert_error: true,
            cert_info: false,
        };
        let body = render(hand_checked_view(), 1_760_000_000, options, &TEST_BUILD);
        let golden = std::fs::read_to_string(&path).unwrap();
        for (n, (got, want)) in body.lines().zip(golden.lines()).enumerate() {
            assert_eq!(got, want, "{path}:{}", n + 1);
        }
        assert_eq!(body, golden, "{path}");
    }

    #[test]
    fn empty_store_prints_only_the_exporter_families() {
        let body = render(
            Store::new(0).view(),
            0,
            Options {
                relative: true,
                per_cert_error: true,
                cert_info: false,
            },
            &TEST_BUILD,
        );
        assert!(!body.contains("x509_cert_"));
        assert!(body.contains("x509_read_errors 0\n"));
        assert!(body.contains("x509_read_errors_total 0\n"));
        assert!(body.ends_with("x509_exporter_build_info{built=\"2026-01-01T00:00:00Z\",revision=\"abc\",rustversion=\"rustc 1.95.0\",version=\"1.2.3\"} 1\n"));
    }

    #[test]
    fn a_large_view_streams_in_pieces_to_the_same_text() {
        let view = crate::store::big_view(5000, |i| (-i, i * 1000));
        let mut body = Body::new(
            Arc::clone(&view),
            10,
            Options {
                relative: true,
                per_cert_error: true,
                cert_info: false,
            },
            TEST_BUILD,
        );
        let mut pieces = 0;
        let mut text = Vec::new();
        let mut buf = [0u8; 7000];
        loop {
            let n = body.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pieces += 1;
            text.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(text).unwrap();
        assert!(pieces > 20, "{pieces}");
        assert_eq!(
            text.matches("\nx509_cert_valid_since_seconds{").count(),
            5000
        );
        assert!(text
            .contains("x509_cert_not_before{filename=\"big.pem\",serial_number=\"4999\"} -4999\n"));
        assert!(text.contains(
            "x509_cert_expires_in_seconds{filename=\"big.pem\",serial_number=\"0\"} -10\n"
        ));
        assert_eq!(
            text,
            render(
                view,
                10,
                Options {
                    relative: true,
                    per_cert_error: true,
                    cert_info: false,
                },
                &TEST_BUILD
            )
        );
    }

    #[test]
    fn a_rendering_holds_until_the_earliest_not_after_not_yet_passed() {
        // Certificates' not_after 2000, 5000, 6000; a CRL's nextUpdate 2500, and one with none.
        let plain = Options::default();
        assert_eq!(valid_until(&view(), 1500, plain), 2000);
        assert_eq!(
            valid_until(&view(), 2000, plain),
            2000,
            "still 0 at not_after"
        );
        assert_eq!(
            valid_until(&view(), 2001, plain),
            2500,
            "the CRL goes stale"
        );
        assert_eq!(valid_until(&view(), 2501, plain), 5000);
        let never = valid_until(&view(), 6001, plain);
        assert_eq!(never, NO_NEXT_UPDATE, "all expired, one CRL never stale");
        for (now, until) in [(1500, 2000), (2001, 2500), (2501, 5000)] {
            let at = |t| render(view(), t, plain, &TEST_BUILD);
            assert_eq!(at(now), at(until), "the same text through {until}");
            assert_ne!(at(until), at(until + 1), "and not after");
        }
        let relative = Options {
            relative: true,
            per_cert_error: false,
            cert_info: false,
        };
        assert_eq!(valid_until(&view(), 6001, relative), 6001);
        assert_eq!(
            valid_until(&Store::new(0).view(), 6001, relative),
            i64::MAX,
            "no certificate, no relative series"
        );
    }

    #[test]
    fn pieces_appended_after_a_prefix_are_the_same_text() {
        let view = crate::store::big_view(2000, |i| (i, i + 7));
        let options = Options::default();
        let text = render(Arc::clone(&view), 10, options, &TEST_BUILD);
        let mut body = Body::new(Arc::clone(&view), 10, options, TEST_BUILD).in_pieces_of(4096);
        // Some of the first piece through `Read`, then the rest of it and every other piece.
        let mut all = vec![0u8; 100];
        assert_eq!(body.read(&mut all).unwrap(), 100);
        // A prefix longer than a piece: each piece is still a piece's worth after it.
        let prefix = vec![b'#'; 5000];
        let mut out = Vec::new();
        let mut pieces = 0;
        loop {
            out.clear();
            out.extend_from_slice(&prefix);
            if !body.next_into(&mut out) {
                assert_eq!(out, prefix, "nothing appended at the end");
                break;
            }
            pieces += 1;
            assert!(out.starts_with(&prefix) && out.ends_with(b"\n"));
            all.extend_from_slice(&out[prefix.len()..]);
        }
        assert!(pieces > 20, "{pieces}");
        assert_eq!(String::from_utf8(all).unwrap(), text);
    }

    #[test]
    fn label_sets_join_the_parts_that_are_there() {
        let cases: [([&str; 4], Option<u32>, &str); 6] = [
            (["", "", "", ""], None, ""),
            (["", "", "", ""], Some(0xab), "{discriminator=\"000000ab\"}"),
            (["a=\"1\"", "", "c=\"3\"", ""], None, "{a=\"1\",c=\"3\"}"),
            (
                ["", "b=\"2\"", "", ""],
                Some(u32::MAX),
                "{b=\"2\",discriminator=\"ffffffff\"}",
            ),
            (
                ["a=\"1\"", "b=\"2\"", "c=\"3\"", ""],
                None,
                "{a=\"1\",b=\"2\",c=\"3\"}",
            ),
            (
                ["a=\"1\"", "", "c=\"3\"", "d=\"4\""],
                Some(1),
                "{a=\"1\",c=\"3\",d=\"4\",discriminator=\"00000001\"}",
            ),
        ];
        for (parts, discriminator, want) in cases {
            let mut out = b"x".to_vec();
            labels(&mut out, parts, discriminator);
            assert_eq!(String::from_utf8(out).unwrap(), format!("x{want}"));
        }
    }

    #[test]
    fn integers_without_format() {
        // Every digit count, both signs, each side of each power of ten.
        let powers = (0..19).map(|e| 10i64.pow(e));
        let edges = powers.flat_map(|p| [p - 1, p, p + 1, -p, 7 * p + 3]);
        let extremes = [1_767_225_600, i64::MAX, i64::MIN, i64::MIN + 1];
        for v in (-1000..=1000).chain(edges).chain(extremes) {
            let mut out = Vec::new();
            push_int(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }
}
