//! Gzip bodies of the exposition: made on their own thread, once per change however many
//! scrapes wait for them, and kept for as long as they stay true.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

use flate2::{write::GzEncoder, Compression};
use mio::Token;

use crate::render::{self, Options};
use crate::store::View;

/// Estimated gzip size from which rendering and compressing run on two threads.
const PARALLEL_GZIP: usize = 1 << 20;

/// A gzip body being made: the view's generation and the second it is rendered at.
pub type GzipKey = (u64, i64);

/// A gzip body and the last second it is true for ([`render::valid_until`]).
pub struct Made {
    /// The gzip bytes.
    pub body: Arc<Vec<u8>>,
    /// Through this second (included) the same view renders to the same text.
    pub valid_until: i64,
}

/// The body kept between scrapes.
struct Kept {
    generation: u64,
    /// The seconds it is true for, both included.
    from: i64,
    until: i64,
    body: Arc<Vec<u8>>,
}

/// The gzip body last made, kept (a strong reference) while its view is the published one
/// and its clock-dependent values have not moved, and the bodies being made, with the
/// connections waiting for them and the second each asked at.
#[derive(Default)]
pub struct GzipCache {
    kept: Option<Kept>,
    making: HashMap<GzipKey, Vec<(Token, i64)>>,
    /// The newest view generation asked for: a body of an older one is not kept.
    newest: u64,
    /// Values move every second (relative metrics): a body made at an earlier second is
    /// never worth waiting for.
    per_second: bool,
}

/// What a scrape asking for gzip gets from the cache.
pub enum Gzip {
    /// The body, made already.
    Ready(Arc<Vec<u8>>),
    /// Wait: it is being made.
    Wait,
    /// Make it, for the view at this second (the scrape is the first to wait for it).
    Make,
}

/// Who a made body is for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Waiters {
    /// Send them the body.
    pub ready: Vec<Token>,
    /// The body is no longer true at the second they asked at: ask the cache again.
    pub again: Vec<Token>,
}

impl GzipCache {
    /// A cache for bodies rendered with `options`.
    pub fn new(options: Options) -> Self {
        Self {
            per_second: options.relative,
            ..Self::default()
        }
    }

    /// The body of the view `generation` at Unix second `now`, or whether `token` should
    /// wait for it or have it made. A kept body that is no longer true is dropped here,
    /// before another is made, so that two are not held at once.
    pub fn lookup(&mut self, generation: u64, now: i64, token: Token) -> Gzip {
        self.newest = self.newest.max(generation);
        if let Some(kept) = &self.kept {
            if kept.generation == generation && kept.from <= now && now <= kept.until {
                return Gzip::Ready(Arc::clone(&kept.body));
            }
            self.kept = None;
        }
        // A body of this view started at an earlier second may well hold at this one.
        let per_second = self.per_second;
        let under_way = self
            .making
            .iter_mut()
            .filter(|((g, at), _)| *g == generation && *at <= now && (*at == now || !per_second))
            .max_by_key(|((_, at), _)| *at);
        if let Some((_, waiting)) = under_way {
            waiting.push((token, now));
            return Gzip::Wait;
        }
        self.making.insert((generation, now), vec![(token, now)]);
        Gzip::Make
    }

    /// Takes a made body: keeps it unless a newer view was asked for meanwhile; returns who
    /// waited for it.
    pub fn made(&mut self, key: GzipKey, made: &Made) -> Waiters {
        let (generation, from) = key;
        let newer_kept = self
            .kept
            .as_ref()
            .is_some_and(|k| (k.generation, k.from) > key);
        if generation == self.newest && !newer_kept {
            self.kept = Some(Kept {
                generation,
                from,
                until: made.valid_until,
                body: Arc::clone(&made.body),
            });
        }
        let mut waiters = Waiters::default();
        for (token, at) in self.making.remove(&key).unwrap_or_default() {
            match at <= made.valid_until {
                true => waiters.ready.push(token),
                false => waiters.again.push(token),
            }
        }
        waiters
    }

    /// A body that could not be made (its worker is too far behind): who waited for it.
    pub fn abandon(&mut self, key: GzipKey) -> Vec<Token> {
        self.making
            .remove(&key)
            .unwrap_or_default()
            .into_iter()
            .map(|(token, _)| token)
            .collect()
    }
}

/// The gzip exposition of `view` at `now`, with the last second it is true for.
pub fn make(view: Arc<View>, now: i64, options: Options) -> Made {
    let valid_until = render::valid_until(&view, now, options);
    Made {
        body: Arc::new(body(view, now, options)),
        valid_until,
    }
}

/// The gzip exposition of `view` at `now`.
pub fn body(view: Arc<View>, now: i64, options: Options) -> Vec<u8> {
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
    // as the other), two pieces in flight at most. The buffers go back and forth: pieces of
    // half a megabyte are mapped and unmapped at each allocation (the malloc tuning in
    // main.rs), which cost a page fault per 4 KiB rendered.
    let (pieces, rendered) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let (emptied, empty) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        scope.spawn(move || loop {
            let mut piece = empty.try_recv().unwrap_or_default();
            piece.clear();
            if !plain.next_into(&mut piece) || pieces.send(piece).is_err() {
                return;
            }
        });
        for piece in rendered.iter() {
            if encoder.write_all(&piece).is_err() {
                return Vec::new();
            }
            let _ = emptied.send(piece);
        }
        encoder.finish().unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::store::Store;

    fn unzip(body: &[u8]) -> String {
        let mut text = String::new();
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    /// Asks `cache` for generation `g` at `now` as the loop does, making the body (as the
    /// worker would) when told to; returns the body and whether it was made anew.
    fn scrape(
        cache: &mut GzipCache,
        view: &Arc<View>,
        g: u64,
        now: i64,
        options: Options,
    ) -> (Arc<Vec<u8>>, bool) {
        match cache.lookup(g, now, Token(99)) {
            Gzip::Ready(body) => (body, false),
            Gzip::Make => {
                let made = make(Arc::clone(view), now, options);
                let waiters = cache.made((g, now), &made);
                assert_eq!(waiters.ready, [Token(99)]);
                (made.body, true)
            }
            Gzip::Wait => panic!("nothing else is being made"),
        }
    }

    #[test]
    fn one_gzip_body_per_view_however_many_wait() {
        let mut cache = GzipCache::default();
        assert!(matches!(cache.lookup(3, 100, Token(7)), Gzip::Make));
        assert!(matches!(cache.lookup(3, 100, Token(8)), Gzip::Wait));
        let made = make(Store::new(0).view(), 100, Options::default());
        assert_eq!(made.valid_until, i64::MAX, "no certificate: true for ever");
        let waiters = cache.made((3, 100), &made);
        assert_eq!(waiters.ready, vec![Token(7), Token(8)]);
        assert!(waiters.again.is_empty());
        match cache.lookup(3, 100, Token(9)) {
            Gzip::Ready(again) => {
                assert!(Arc::ptr_eq(&made.body, &again), "shared, not made twice")
            }
            _ => panic!("made already"),
        }
        drop(made);
        assert!(
            matches!(cache.lookup(3, 5000, Token(10)), Gzip::Ready(_)),
            "kept between scrapes, however long after"
        );
        assert!(matches!(cache.lookup(4, 5000, Token(11)), Gzip::Make));
        assert_eq!(cache.abandon((4, 5000)), vec![Token(11)]);
    }

    #[test]
    fn a_kept_body_serves_every_second_until_the_next_expiry_and_is_remade_after_it() {
        const T: i64 = 1_000_000;
        // Serial 0 expired long ago, 1 expires at T, 2 much later.
        let view = crate::store::big_view(3, |i| (0, [T - 100, T, T + 1000][i as usize]));
        let options = Options::default();
        let mut cache = GzipCache::new(options);
        let (first, made) = scrape(&mut cache, &view, 1, T - 5, options);
        assert!(made);
        let text = unzip(&first);
        assert!(text.contains("x509_cert_expired{filename=\"big.pem\",serial_number=\"0\"} 1\n"));
        assert!(text.contains("x509_cert_expired{filename=\"big.pem\",serial_number=\"1\"} 0\n"));
        for now in T - 5..=T {
            let (body, made) = scrape(&mut cache, &view, 1, now, options);
            assert!(!made && Arc::ptr_eq(&body, &first), "made again at {now}");
            assert_eq!(
                unzip(&body),
                render::render(Arc::clone(&view), now, options, &render::BUILD)
            );
        }
        let (after, made) = scrape(&mut cache, &view, 1, T + 1, options);
        assert!(made, "the instant serial 1 expires");
        let text = unzip(&after);
        assert!(text.contains("x509_cert_expired{filename=\"big.pem\",serial_number=\"1\"} 1\n"));
        assert!(text.contains("x509_cert_expired{filename=\"big.pem\",serial_number=\"2\"} 0\n"));
        assert_eq!(Arc::strong_count(&first), 1, "the stale body is not kept");
        let (later, made) = scrape(&mut cache, &view, 1, T + 1000, options);
        assert!(!made && Arc::ptr_eq(&later, &after));
        assert!(scrape(&mut cache, &view, 1, T + 1001, options).1);
    }

    #[test]
    fn with_relative_metrics_a_body_holds_for_its_second_only() {
        let view = crate::store::big_view(2, |i| (0, 1_000_000 + i));
        let options = Options {
            relative: true,
            per_cert_error: false,
            cert_info: false,
        };
        let mut cache = GzipCache::new(options);
        let (first, made) = scrape(&mut cache, &view, 1, 500, options);
        assert!(made);
        let (again, made) = scrape(&mut cache, &view, 1, 500, options);
        assert!(!made && Arc::ptr_eq(&first, &again), "the same second");
        let (next, made) = scrape(&mut cache, &view, 1, 501, options);
        assert!(made, "the next second");
        assert!(unzip(&next).contains(
            "x509_cert_expires_in_seconds{filename=\"big.pem\",serial_number=\"0\"} 999499\n"
        ));
        // A scrape in the next second does not wait for a body started in this one.
        assert!(matches!(cache.lookup(1, 502, Token(1)), Gzip::Make));
        assert!(matches!(cache.lookup(1, 503, Token(2)), Gzip::Make));
    }

    #[test]
    fn a_new_view_replaces_the_kept_body_which_is_let_go_first() {
        let view = crate::store::big_view(2, |i| (0, 1_000_000 + i));
        let options = Options::default();
        let mut cache = GzipCache::new(options);
        let (first, _) = scrape(&mut cache, &view, 1, 10, options);
        assert!(matches!(cache.lookup(2, 10, Token(1)), Gzip::Make));
        assert_eq!(
            Arc::strong_count(&first),
            1,
            "dropped before the new view's body is made"
        );
        // A body of the old view that finishes late is handed out but not kept.
        assert!(matches!(cache.lookup(1, 10, Token(2)), Gzip::Make));
        let late = make(Arc::clone(&view), 10, options);
        assert_eq!(cache.made((1, 10), &late).ready, [Token(2)]);
        assert_eq!(
            Arc::strong_count(&late.body),
            1,
            "the older view's body is not kept"
        );
        let new = make(Arc::clone(&view), 10, options);
        assert_eq!(cache.made((2, 10), &new).ready, [Token(1)]);
        match cache.lookup(2, 11, Token(3)) {
            Gzip::Ready(body) => assert!(Arc::ptr_eq(&body, &new.body)),
            _ => panic!("the new view's body is kept"),
        }
    }

    #[test]
    fn a_scrape_in_a_later_second_waits_for_the_body_under_way_and_asks_again_if_it_lapsed() {
        const T: i64 = 1_000_000;
        let view = crate::store::big_view(1, |_| (0, T));
        let options = Options::default();
        let mut cache = GzipCache::new(options);
        assert!(matches!(cache.lookup(1, T - 1, Token(1)), Gzip::Make));
        assert!(matches!(cache.lookup(1, T, Token(2)), Gzip::Wait));
        assert!(matches!(cache.lookup(1, T + 1, Token(3)), Gzip::Wait));
        let made = make(Arc::clone(&view), T - 1, options);
        assert_eq!(
            cache.made((1, T - 1), &made),
            Waiters {
                ready: vec![Token(1), Token(2)],
                again: vec![Token(3)],
            }
        );
        assert!(matches!(cache.lookup(1, T + 1, Token(3)), Gzip::Make));
    }

    #[test]
    fn a_gzip_body_unpacks_to_the_exposition() {
        let made = body(Store::new(0).view(), 100, Options::default());
        assert!(unzip(&made).contains("x509_read_errors 0\n"));
    }

    #[test]
    fn a_large_gzip_body_rendered_on_two_threads_is_the_same_text() {
        let view = crate::store::big_view(20_000, |i| (i, i + 1));
        assert!(
            4096 + view.cert_count() * 80 >= PARALLEL_GZIP,
            "exercises the two-thread path"
        );
        let made = body(Arc::clone(&view), 7, Options::default());
        let mut text = String::new();
        flate2::read::GzDecoder::new(&made[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(
            text,
            render::render(view, 7, Options::default(), &render::BUILD)
        );
    }
}
