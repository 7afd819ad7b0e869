//! One poller thread per source: refresh, log what went wrong or right again, send a
//! report to the store thread, wait for the next interval or for the stop signal.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::model::{Item, Report};

/// The result of one refresh of a source.
#[derive(Clone)]
pub struct Pass {
    /// Every item the source holds now.
    pub items: Vec<Arc<Item>>,
    /// Failures that belong to no item.
    pub errors: Vec<String>,
    /// The source reached everything it covers (for an API: every call succeeded).
    pub ready: bool,
    /// When to try again instead of after the refresh interval (a failed API call's backoff
    /// or the server's Retry-After).
    pub retry_in: Option<Duration>,
}

impl Pass {
    /// A pass that reached everything it covers.
    pub fn complete(items: Vec<Arc<Item>>, errors: Vec<String>) -> Self {
        Self {
            items,
            errors,
            ready: true,
            retry_in: None,
        }
    }
}

/// A source of certificates: refreshed on an interval by its own thread.
pub trait Source: Send {
    /// How the source was asked for (`--watch-dir=/etc/ssl/certs`), for logs.
    fn describe(&self) -> String;
    /// Looks at everything the source covers and returns the whole truth about it.
    fn refresh(&mut self) -> Pass;
}

/// Starts the poller of source number `index`. It stops when `stop` is closed or the
/// report channel is gone.
pub fn spawn(
    index: usize,
    mut source: Box<dyn Source>,
    interval: Duration,
    reports: Sender<Report>,
    stop: Receiver<()>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("source-{index}"))
        .spawn(move || {
            let mut previous: Option<u64> = None;
            let mut logged: HashSet<String> = HashSet::new();
            loop {
                let (started, cpu) = (Instant::now(), thread_cpu());
                let pass = source.refresh();
                log::debug!(
                    "{}: refreshed {} items in {:.1} ms ({:.1} ms CPU)",
                    source.describe(),
                    pass.items.len(),
                    started.elapsed().as_secs_f64() * 1e3,
                    thread_cpu().saturating_sub(cpu).as_secs_f64() * 1e3
                );
                let digest = identity(&pass);
                let changed = previous != Some(digest);
                let current = log_transitions(&source.describe(), &pass, &mut logged);
                if previous.is_none() {
                    let certs: usize = pass.items.iter().map(|i| i.series.len()).sum();
                    log::info!(
                        "{}: {certs} certificates from {} items, {current} read errors",
                        source.describe(),
                        pass.items.len()
                    );
                }
                let report = Report {
                    source: index,
                    items: pass.items.clone(),
                    errors: pass.errors.clone(),
                    changed,
                    ready: pass.ready,
                };
                let wait = pass.retry_in.unwrap_or(interval);
                if reports.send(report).is_err() {
                    return;
                }
                previous = Some(digest);
                match stop.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        })
}

/// A digest of which items (by address) and which failures a pass holds: equal digests mean
/// an unchanged pass. The previous pass's items are still alive in the store or the channel
/// while this is compared, so no new item can have an old one's address.
fn identity(pass: &Pass) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for item in &pass.items {
        std::hash::Hash::hash(&Arc::as_ptr(item), &mut h);
    }
    std::hash::Hash::hash(&pass.errors, &mut h);
    std::hash::Hasher::finish(&h)
}

/// CPU time this thread has used so far (zero where /proc does not say).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Logs each failure once when it appears and once when it clears; returns how many
/// failures this pass has.
fn log_transitions(source: &str, pass: &Pass, logged: &mut HashSet<String>) -> usize {
    let now: HashSet<&String> = pass
        .errors
        .iter()
        .chain(pass.items.iter().flat_map(|i| i.errors.iter()))
        .collect();
    for message in &now {
        if !logged.contains(*message) {
            log::warn!("{message}");
        }
    }
    logged.retain(|message| {
        let keep = now.contains(message);
        if !keep {
            log::info!("{source}: resolved: {message}");
        }
        keep
    });
    let count = now.len();
    logged.extend(now.into_iter().cloned());
    count
}
