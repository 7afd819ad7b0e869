//! Gzip bodies of the exposition: made on their own thread, once per view and second
//! however many scrapes wait for them.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Weak};

use flate2::{write::GzEncoder, Compression};
use mio::Token;

use crate::render::{self, Options};
use crate::store::View;

/// Estimated gzip size from which rendering and compressing run on two threads.
const PARALLEL_GZIP: usize = 1 << 20;

/// A gzip body's identity: the view's generation and the second it is rendered at.
pub type GzipKey = (u64, i64);

/// Gzip bodies by [`GzipKey`]: the one last made, kept only while some scrape is still
/// sending it (a weak reference: between scrapes it costs no memory), and the ones being
/// made, with the connections waiting for them.
#[derive(Default)]
pub struct GzipCache {
    last: Option<(GzipKey, Weak<Vec<u8>>)>,
    making: HashMap<GzipKey, Vec<Token>>,
}

/// What a scrape asking for gzip gets from the cache.
pub enum Gzip {
    /// The body, made already.
    Ready(Arc<Vec<u8>>),
    /// Wait: it is being made.
    Wait,
    /// Make it (the scrape is the first to wait for it).
    Make,
}

impl GzipCache {
    /// The body for `key`, or whether `token` should wait for it or have it made.
    pub fn lookup(&mut self, key: GzipKey, token: Token) -> Gzip {
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
    pub fn made(&mut self, key: GzipKey, body: &Arc<Vec<u8>>) -> Vec<Token> {
        self.last = Some((key, Arc::downgrade(body)));
        self.making.remove(&key).unwrap_or_default()
    }

    /// A body that could not be made (its worker is too far behind): who waited for it.
    pub fn abandon(&mut self, key: GzipKey) -> Vec<Token> {
        self.making.remove(&key).unwrap_or_default()
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
    use crate::store::Store;

    #[test]
    fn one_gzip_body_per_view_and_second_however_many_wait() {
        let mut cache = GzipCache::default();
        let key = (3, 100);
        assert!(matches!(cache.lookup(key, Token(7)), Gzip::Make));
        assert!(matches!(cache.lookup(key, Token(8)), Gzip::Wait));
        let made = Arc::new(body(Store::new(0).view(), 100, Options::default()));
        assert_eq!(cache.made(key, &made), vec![Token(7), Token(8)]);
        match cache.lookup(key, Token(9)) {
            Gzip::Ready(again) => assert!(Arc::ptr_eq(&made, &again), "shared, not made twice"),
            _ => panic!("made already"),
        }
        assert!(
            matches!(cache.lookup((3, 101), Token(9)), Gzip::Make),
            "a new second"
        );
        assert_eq!(cache.abandon((3, 101)), vec![Token(9)]);
        drop(made);
        assert!(
            matches!(cache.lookup(key, Token(10)), Gzip::Make),
            "not kept once sent"
        );
    }

    #[test]
    fn a_gzip_body_unpacks_to_the_exposition() {
        let made = body(Store::new(0).view(), 100, Options::default());
        let mut text = String::new();
        flate2::read::GzDecoder::new(&made[..])
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
