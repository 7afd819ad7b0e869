//! The engine that refreshes sources: schedule, run, report, stop.
//!
//! A fixed pool of worker threads (`refresh-0`…) runs the refreshes of every source that
//! reads local files; a source that waits on the network ([`Lane::Network`]) gets a thread
//! of its own (`network-N`), so that a server that never answers holds that thread and
//! nothing else. One scheduler thread hands out each source's refresh when it is due, never
//! two of the same source at once. Each refresh sends its report to the store thread, which
//! applies every report waiting, publishes one view for them, and wakes whoever waits for
//! the first pass. The thread count is the pool's size plus one per network source, plus
//! two: it does not grow with file sources.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{
    bounded, never, unbounded, Receiver, RecvTimeoutError, Sender, TryRecvError,
};

use crate::model::{Items, Report};
use crate::store::{Store, View};

/// The pool's size when `--workers` is not given: the available cores, at most this.
pub const MAX_DEFAULT_WORKERS: usize = 8;
/// Batches of reports waiting for the store thread; a worker that finds the queue full
/// waits.
const REPORT_QUEUE: usize = 64;
/// The longest a worker holds back a finished refresh while its lane has more (see
/// [`work`]).
const HOLD_FOR: Duration = Duration::from_millis(10);
/// The most finished refreshes a worker holds back at once: a refresh that hangs (a file
/// on a dead network mount) delays at most these sources' next turns, not every source
/// of the burst.
const HELD_MOST: usize = 16;
/// How long [`Engine::stop`] waits for the pool's refreshes under way.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// How long after a source asks for an early refresh ([`Wake`]) that refresh starts: what
/// else it sees meanwhile (a burst of changes on a watch) goes into the same refresh.
const WAKE_DELAY: Duration = Duration::from_millis(200);

/// The result of one refresh of a source.
#[derive(Clone)]
pub struct Pass {
    /// Every item the source holds now: the previous pass's slice itself when nothing
    /// changed, so that the pass is known unchanged without looking at each item.
    pub items: Items,
    /// Failures that belong to no item.
    pub errors: Vec<String>,
    /// The source reached everything it covers (for an API: every call succeeded).
    pub ready: bool,
    /// When to try again instead of after the refresh interval (a failed API call's backoff
    /// or the server's Retry-After), counted from the end of this refresh.
    pub retry_in: Option<Duration>,
}

impl Pass {
    /// A pass that reached everything it covers.
    pub fn complete(items: impl Into<Items>, errors: Vec<String>) -> Self {
        Self {
            items: items.into(),
            errors,
            ready: true,
            retry_in: None,
        }
    }
}

/// Where a source's refreshes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The shared pool of `--workers` threads: for sources that only read local files, whose
    /// refresh ends in bounded time.
    Pool,
    /// A thread of the source's own: for sources that wait on the network (the Kubernetes
    /// API), which a server that never answers may hold for as long as its timeouts allow.
    /// Such a refresh must never occupy a pool worker, or a hung server would starve every
    /// file source; nor share a thread with another network source, for the same reason.
    Network,
}

/// A source of certificates, refreshed on an interval by the engine.
pub trait Source: Send {
    /// How the source was asked for (`--watch-dir=/etc/ssl/certs`), for logs.
    fn describe(&self) -> String;
    /// Looks at everything the source covers and returns the whole truth about it.
    fn refresh(&mut self) -> Pass;
    /// Where its refreshes run. The default, the shared pool, is for sources that read local
    /// files; a source that waits on the network must answer [`Lane::Network`].
    fn lane(&self) -> Lane {
        Lane::Pool
    }
    /// Given once, before the first refresh: the handle a source that learns of changes
    /// between refreshes (a Kubernetes watch) uses to ask for one early. The default keeps
    /// to the interval.
    fn attach(&mut self, wake: Wake) {
        let _ = wake;
    }
}

/// Asks the engine to refresh one source soon ([`WAKE_DELAY`] from now, or that long after
/// the refresh under way ends), whatever its interval. Cheap to clone and to call often:
/// calls that arrive before the refresh starts are one refresh.
#[derive(Clone)]
pub struct Wake {
    index: usize,
    wakes: Sender<usize>,
}

impl Wake {
    /// Asks for the refresh; does nothing once the engine has stopped.
    pub fn wake(&self) {
        let _ = self.wakes.send(self.index);
    }
}

/// How the engine runs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long after a refresh is due the next one is (unless the source asks otherwise).
    pub interval: Duration,
    /// Threads in the pool (`--workers`).
    pub workers: usize,
}

/// The pool's size when none is asked for: one worker per available core, at most
/// [`MAX_DEFAULT_WORKERS`].
pub fn default_workers() -> usize {
    thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_DEFAULT_WORKERS)
}

/// What scrapes read, as the store thread last published it.
#[derive(Clone, Default)]
pub struct Published {
    /// The latest view.
    pub view: Arc<View>,
    /// Every source has finished a first pass that reached everything (`/readyz`).
    pub ready: bool,
    /// Every source has finished a first pass, failed or not (scrapes wait for this).
    pub first_pass_done: bool,
}

impl Published {
    fn of(store: &Store) -> Self {
        Self {
            view: store.view(),
            ready: store.ready(),
            first_pass_done: store.first_pass_done(),
        }
    }
}

/// A callback run once, when every source has finished its first pass.
type Notify = Box<dyn FnOnce() + Send>;

/// A handle on what the store thread publishes; cheap to clone. The default handle has an
/// empty view, before any first pass, that nothing will ever update.
#[derive(Clone, Default)]
pub struct Views {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Shared {
    published: Published,
    /// Callbacks waiting for the first pass.
    waiting: Vec<Notify>,
}

impl Views {
    /// What was last published.
    pub fn now(&self) -> Published {
        lock(&self.shared).published.clone()
    }

    /// Runs `notify` once every source has finished its first pass: at once if that has
    /// happened already, else on the store thread when it happens.
    pub fn on_first_pass(&self, notify: impl FnOnce() + Send + 'static) {
        let mut shared = lock(&self.shared);
        if shared.published.first_pass_done {
            drop(shared);
            notify();
        } else {
            shared.waiting.push(Box::new(notify));
        }
    }

    /// Replaces what is published; runs the waiting callbacks if the first pass is now done.
    fn set(&self, next: Published) {
        let mut shared = lock(&self.shared);
        let done = next.first_pass_done;
        shared.published = next;
        let waiting = match done {
            true => std::mem::take(&mut shared.waiting),
            false => Vec::new(),
        };
        drop(shared);
        for notify in waiting {
            notify();
        }
    }
}

/// The running engine: its pool, its scheduler and its store thread. Started by `main`;
/// the HTTP side holds only its [`Views`].
pub struct Engine {
    views: Views,
    /// Raised at shutdown: a worker runs no further refresh.
    stopping: Arc<AtomicBool>,
    /// Dropped at shutdown, which stops the scheduler.
    stop: Option<Sender<()>>,
    scheduler: Option<JoinHandle<()>>,
    /// Disconnected once every pool worker has ended.
    pool_ended: Receiver<()>,
}

impl Engine {
    /// Starts the store thread, the pool of `settings.workers` threads, a thread for each
    /// network source, and the scheduler, which hands out every source's first refresh at
    /// once, in command-line order.
    pub fn start(sources: Vec<Box<dyn Source>>, settings: Settings) -> io::Result<Engine> {
        let store = Store::new(sources.len());
        let views = Views::default();
        views.set(Published::of(&store));
        let (reports_tx, reports) = bounded::<Vec<Report>>(REPORT_QUEUE);
        {
            let views = views.clone();
            thread::Builder::new()
                .name("store".into())
                .spawn(move || run_store(store, &reports, &views))?;
        }

        let stopping = Arc::new(AtomicBool::new(false));
        let (finished_tx, finished) = unbounded::<Finished>();
        let (wakes_tx, wakes) = unbounded::<usize>();
        let (ended_tx, pool_ended) = bounded::<()>(0);
        let worker = |name: String, jobs: Receiver<Job>, ended: Option<Sender<()>>| {
            let (reports, finished) = (reports_tx.clone(), finished_tx.clone());
            let stopping = Arc::clone(&stopping);
            thread::Builder::new().name(name).spawn(move || {
                let _ended = ended; // dropped when this thread ends
                work(&jobs, &reports, &finished, &stopping, HOLD_FOR);
            })
        };
        // Lane 0 is the pool; each network source has a lane of its own after it.
        let (pool_tx, pool_jobs) = unbounded::<Job>();
        for n in 0..settings.workers.max(1) {
            worker(
                format!("refresh-{n}"),
                pool_jobs.clone(),
                Some(ended_tx.clone()),
            )?;
        }
        drop(ended_tx);
        let mut lanes = vec![pool_tx];
        let mut slots = Vec::with_capacity(sources.len());
        for (index, mut source) in sources.into_iter().enumerate() {
            source.attach(Wake {
                index,
                wakes: wakes_tx.clone(),
            });
            let lane = match source.lane() {
                Lane::Pool => 0,
                Lane::Network => {
                    let (tx, jobs) = unbounded::<Job>();
                    // Not waited for at shutdown: it may be blocked on a server that never
                    // answers, which the process's exit ends.
                    worker(format!("network-{index}"), jobs, None)?;
                    lanes.push(tx);
                    lanes.len() - 1
                }
            };
            slots.push(Some(Slot::new(index, source, lane)));
        }
        drop((reports_tx, finished_tx));
        log::info!(
            "refreshing {} sources on {} pool threads and {} network threads",
            slots.len(),
            settings.workers.max(1),
            lanes.len() - 1
        );

        let (stop, stopped) = bounded::<()>(0);
        let scheduler = Scheduler {
            next: vec![None; slots.len()],
            woken: vec![false; slots.len()],
            slots,
            lanes,
            due: BinaryHeap::new(),
            interval: settings.interval,
        };
        let scheduler = thread::Builder::new()
            .name("scheduler".into())
            .spawn(move || scheduler.run(&finished, &wakes, &stopped))?;
        Ok(Engine {
            views,
            stopping,
            stop: Some(stop),
            scheduler: Some(scheduler),
            pool_ended,
        })
    }

    /// The handle the HTTP side reads published views from.
    pub fn views(&self) -> Views {
        self.views.clone()
    }

    /// Stops handing out refreshes and waits (at most [`STOP_WAIT`]) for the pool's
    /// refreshes under way to end. Network threads are not waited for.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        drop(self.stop.take());
        if let Some(scheduler) = self.scheduler.take() {
            let _ = scheduler.join();
        }
        // Nothing is ever sent: the channel disconnects when the last worker ends.
        let deadline = Instant::now() + STOP_WAIT;
        if let Err(RecvTimeoutError::Timeout) = self.pool_ended.recv_deadline(deadline) {
            log::warn!("shutdown: refreshes still running after {STOP_WAIT:?}, leaving them");
        }
    }
}

/// The store thread: applies each batch of reports and whatever else has arrived with it,
/// publishes one view for them all, and tells `views`. Returns when every sender is gone.
fn run_store(mut store: Store, reports: &Receiver<Vec<Report>>, views: &Views) {
    for batch in reports.iter() {
        for report in batch.into_iter().chain(reports.try_iter().flatten()) {
            store.apply(report);
        }
        store.publish();
        views.set(Published::of(&store));
    }
}

/// A source with the bookkeeping that travels with it from refresh to refresh, whichever
/// thread runs it.
struct Slot {
    index: usize,
    source: Box<dyn Source>,
    /// [`Source::describe`], taken once.
    name: String,
    /// The lane its refreshes are handed to.
    lane: usize,
    /// The previous pass's items and failures; `None` before the first.
    previous: Option<(Items, Vec<String>)>,
    /// The failures logged and not yet resolved.
    logged: HashSet<String>,
    /// How long the previous refresh took; `None` before the first.
    took: Option<Duration>,
}

impl Slot {
    fn new(index: usize, source: Box<dyn Source>, lane: usize) -> Self {
        Self {
            index,
            name: source.describe(),
            source,
            lane,
            previous: None,
            logged: HashSet::new(),
            took: None,
        }
    }

    /// Refreshes the source, logs what went wrong or right again, and returns the report
    /// with the wait the source asked for, if any.
    fn refresh(&mut self) -> (Report, Option<Duration>) {
        let started = Instant::now();
        // Thread CPU is read only when the line is logged.
        let timing = log::log_enabled!(log::Level::Debug).then(thread_cpu);
        let pass = self.source.refresh();
        let took = started.elapsed();
        self.took = Some(took);
        if let Some(cpu) = timing {
            // benches/support reads this line: keep its shape.
            log::debug!(
                "{}: refreshed {} items in {:.1} ms ({:.1} ms CPU)",
                self.name,
                pass.items.len(),
                took.as_secs_f64() * 1e3,
                thread_cpu().saturating_sub(cpu).as_secs_f64() * 1e3
            );
        }
        let changed = !self.previous.as_ref().is_some_and(|(items, errors)| {
            same_items(items, &pass.items) && *errors == pass.errors
        });
        // An unchanged pass has the same failures: nothing appeared or cleared.
        if changed {
            log_transitions(&self.name, &pass, &mut self.logged);
        }
        let current = self.logged.len();
        if self.previous.is_none() {
            let certs: usize = pass.items.iter().map(|i| i.series.len()).sum();
            log::info!(
                "{}: {certs} certificates from {} items, {current} read errors",
                self.name,
                pass.items.len()
            );
        }
        if changed {
            self.previous = Some((Arc::clone(&pass.items), pass.errors.clone()));
        }
        let report = Report {
            source: self.index,
            items: pass.items,
            errors: pass.errors,
            changed,
            ready: pass.ready,
        };
        (report, pass.retry_in)
    }
}

/// A refresh handed to a lane: the source, and when it was due.
struct Job {
    slot: Slot,
    due: Instant,
}

/// A refresh done, handed back to the scheduler.
struct Finished {
    slot: Slot,
    due: Instant,
    at: Instant,
    retry_in: Option<Duration>,
}

/// A worker: runs the refreshes its lane hands it until the lane is closed or the engine
/// stops.
///
/// While more refreshes wait in its lane (sources falling due together), a worker holds
/// back what only bookkeeping needs (finished refreshes and unchanged reports) and hands it
/// over before it would wait, or before a refresh that would keep it more than `hold` (in
/// the engine, [`HOLD_FOR`]) after the first was held (judged by how long that source's
/// previous refresh took), and never more than [`HELD_MOST`] at once: the scheduler and the
/// store thread then wake once per few short refreshes, not once per source, and the
/// unchanged reports travel in batches. A changed report goes at once.
fn work(
    jobs: &Receiver<Job>,
    reports: &Sender<Vec<Report>>,
    finished: &Sender<Finished>,
    stopping: &AtomicBool,
    hold: Duration,
) {
    let (mut quiet, mut done) = (Vec::new(), Vec::<Finished>::new());
    let hand_over = |quiet: &mut Vec<Report>, done: &mut Vec<Finished>| {
        (quiet.is_empty() || reports.send(std::mem::take(quiet)).is_ok())
            && done.drain(..).all(|done| finished.send(done).is_ok())
    };
    loop {
        let job = match jobs.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                if !hand_over(&mut quiet, &mut done) {
                    return;
                }
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            }
        };
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Job { mut slot, due } = job;
        if let Some(first) = done.first() {
            let until = first.at + hold;
            let late = slot.took.is_none_or(|took| Instant::now() + took > until);
            if (late || done.len() >= HELD_MOST) && !hand_over(&mut quiet, &mut done) {
                return;
            }
        }
        let (report, retry_in) = slot.refresh();
        if !report.changed {
            quiet.push(report);
        } else if reports.send(vec![report]).is_err() {
            return;
        }
        done.push(Finished {
            slot,
            due,
            at: Instant::now(),
            retry_in,
        });
    }
}

/// The scheduler's state: every source not being refreshed, and when each is due.
struct Scheduler {
    /// By source index; `None` while the source is out on a lane.
    slots: Vec<Option<Slot>>,
    /// Where each lane takes its jobs.
    lanes: Vec<Sender<Job>>,
    /// (when, source index), earliest first. An entry whose time is not the source's
    /// [`Scheduler::next`] was overtaken by a wake and is skipped.
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    /// By source index: when it is next due; `None` while out on a lane.
    next: Vec<Option<Instant>>,
    /// By source index: woken while out on a lane.
    woken: Vec<bool>,
    interval: Duration,
}

impl Scheduler {
    /// Hands out refreshes as they fall due and takes them back as they finish, until
    /// `stop` is closed or every worker is gone.
    fn run(mut self, finished: &Receiver<Finished>, wakes: &Receiver<usize>, stop: &Receiver<()>) {
        // Sources that never wake drop their handles: a closed channel would be ready at
        // every turn of the loop, so it is then replaced by one that never is.
        let mut wakes = wakes.clone();
        let start = Instant::now();
        self.due = (0..self.slots.len()).map(|i| Reverse((start, i))).collect();
        self.next = vec![Some(start); self.slots.len()];
        loop {
            let now = Instant::now();
            while let Some(&Reverse((at, index))) = self.due.peek() {
                if at > now {
                    break;
                }
                self.due.pop();
                if self.next[index] != Some(at) {
                    continue;
                }
                self.next[index] = None;
                if let Some(slot) = self.slots[index].take() {
                    let lane = slot.lane;
                    if self.lanes[lane].send(Job { slot, due: at }).is_err() {
                        return;
                    }
                }
            }
            let timer = match self.due.peek() {
                Some(&Reverse((at, _))) => crossbeam_channel::at(at),
                None => never(),
            };
            crossbeam_channel::select! {
                recv(finished) -> done => match done {
                    // With whatever else has come back meanwhile (a worker hands back a
                    // burst at once): one pass of this loop, one timer, for all of them.
                    Ok(done) => {
                        self.take_back(done);
                        for done in finished.try_iter() {
                            self.take_back(done);
                        }
                    }
                    Err(_) => return,
                },
                recv(wakes) -> index => match index {
                    Ok(index) => {
                        self.wake(index);
                        for index in wakes.try_iter() {
                            self.wake(index);
                        }
                    }
                    Err(_) => wakes = never(),
                },
                recv(stop) -> _ => return,
                recv(timer) -> _ => {}
            }
        }
    }

    /// Brings a source's next refresh forward to [`WAKE_DELAY`] from now, or marks it to
    /// follow the refresh under way that closely.
    fn wake(&mut self, index: usize) {
        match self.next.get(index) {
            Some(Some(next)) => {
                let at = Instant::now() + WAKE_DELAY;
                if at < *next {
                    self.set_next(index, at);
                }
            }
            Some(None) => self.woken[index] = true,
            None => {}
        }
    }

    fn set_next(&mut self, index: usize, at: Instant) {
        self.next[index] = Some(at);
        self.due.push(Reverse((at, index)));
    }

    /// Takes a finished refresh back and sets when the source is next due.
    fn take_back(&mut self, done: Finished) {
        let Finished {
            slot,
            due,
            at,
            retry_in,
        } = done;
        let next = next_due(due, at, self.interval, retry_in);
        if retry_in.is_none() && next > due + self.interval {
            log::debug!(
                "{}: the refresh took {:.1} s, longer than the interval ({:?}); the next one is an interval after it ended",
                slot.name,
                at.saturating_duration_since(due).as_secs_f64(),
                self.interval
            );
        }
        let index = slot.index;
        let next = match std::mem::take(&mut self.woken[index]) {
            true => next.min(at + WAKE_DELAY),
            false => next,
        };
        self.set_next(index, next);
        self.slots[index] = Some(slot);
    }
}

/// When a source whose refresh was due at `due` and ended at `ended` is due again: an
/// interval after it was due, so that a source keeps its pace while the pool keeps up; an
/// interval after it ended when its refresh overran that; `retry_in` after it ended when the
/// source asked for that.
fn next_due(
    due: Instant,
    ended: Instant,
    interval: Duration,
    retry_in: Option<Duration>,
) -> Instant {
    match retry_in {
        Some(wait) => ended + wait,
        None if due + interval > ended => due + interval,
        None => ended + interval,
    }
}

/// Whether two passes hold the very same items in the same order: the same slice (a
/// source that found nothing changed hands it on), or slices of the same items.
fn same_items(a: &Items, b: &Items) -> bool {
    Arc::ptr_eq(a, b)
        || (a.len() == b.len() && a.iter().zip(b.iter()).all(|(a, b)| Arc::ptr_eq(a, b)))
}

/// CPU time this thread has used so far: one cheap system call, where reading
/// `/proc/thread-self/schedstat` cost an open, a read and a close per refresh.
fn thread_cpu() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// Logs each failure once when it appears and once when it clears; `logged` ends as the
/// pass's failures.
fn log_transitions(source: &str, pass: &Pass, logged: &mut HashSet<String>) {
    let now: HashSet<&String> = pass
        .errors
        .iter()
        .chain(pass.items.iter().flat_map(|i| i.errors.iter()))
        .collect();
    logged.retain(|message| {
        let keep = now.contains(message);
        if !keep {
            log::info!("{source}: resolved: {message}");
        }
        keep
    });
    for message in now {
        if !logged.contains(message) {
            log::warn!("{message}");
            logged.insert(message.clone());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A source that records each refresh: which thread ran it, when it started and ended.
    struct Fake {
        name: &'static str,
        lane: Lane,
        /// How long a refresh takes.
        takes: Duration,
        /// When set, a refresh waits here until the sender is dropped (a hung server).
        gate: Option<Receiver<()>>,
        runs: Arc<Mutex<Vec<Run>>>,
        /// The engine's wake handle, once attached.
        wake: Arc<Mutex<Option<Wake>>>,
    }

    #[derive(Clone, Debug)]
    struct Run {
        thread: String,
        started: Instant,
        ended: Instant,
    }

    impl Fake {
        fn new(name: &'static str, lane: Lane, takes: Duration) -> (Self, Arc<Mutex<Vec<Run>>>) {
            let runs = Arc::new(Mutex::new(Vec::new()));
            let fake = Fake {
                name,
                lane,
                takes,
                gate: None,
                runs: Arc::clone(&runs),
                wake: Arc::default(),
            };
            (fake, runs)
        }
    }

    impl Source for Fake {
        fn describe(&self) -> String {
            self.name.to_string()
        }

        fn refresh(&mut self) -> Pass {
            let started = Instant::now();
            if let Some(gate) = &self.gate {
                let _ = gate.recv();
            }
            thread::sleep(self.takes);
            let thread = thread::current().name().unwrap_or("").to_string();
            let ended = Instant::now();
            lock(&self.runs).push(Run {
                thread,
                started,
                ended,
            });
            Pass::complete(Vec::new(), Vec::new())
        }

        fn lane(&self) -> Lane {
            self.lane
        }

        fn attach(&mut self, wake: Wake) {
            *lock(&self.wake) = Some(wake);
        }
    }

    fn report(source: usize) -> Report {
        Report {
            source,
            items: Items::default(),
            errors: Vec::new(),
            changed: true,
            ready: true,
        }
    }

    fn runs(runs: &Arc<Mutex<Vec<Run>>>) -> Vec<Run> {
        lock(runs).clone()
    }

    #[test]
    fn a_worker_hands_back_a_burst_of_short_refreshes_at_its_end_and_never_holds_past_a_long_one() {
        // A slot that has refreshed once: the next pass is unchanged, its duration known.
        let primed = |index: usize, fake: Fake| {
            let mut slot = Slot::new(index, Box::new(fake), 0);
            assert!(slot.refresh().0.changed);
            slot
        };
        let short = |index| primed(index, Fake::new("short", Lane::Pool, Duration::ZERO).0);
        let job = |slot| Job {
            slot,
            due: Instant::now(),
        };
        static STOPPING: AtomicBool = AtomicBool::new(false);
        // The worker over `queued`, held for `hold`; its channels.
        let start = |queued: Vec<Slot>, hold: Duration| {
            let (jobs_in, jobs) = unbounded();
            queued
                .into_iter()
                .for_each(|slot| jobs_in.send(job(slot)).unwrap());
            let (reports_out, reports) = unbounded();
            let (finished_out, finished) = unbounded::<Finished>();
            let worker = thread::spawn(move || {
                work(&jobs, &reports_out, &finished_out, &STOPPING, hold);
            });
            (jobs_in, reports, finished, worker)
        };
        let next =
            |finished: &Receiver<Finished>| finished.recv_timeout(Duration::from_secs(5)).unwrap();

        // Three short refreshes queued together, held for as long as it takes: nothing
        // comes back before the last has run.
        let (last, last_runs) = Fake::new("last", Lane::Pool, Duration::from_millis(20));
        let last = primed(2, last);
        lock(&last_runs).clear();
        let (jobs_in, reports, finished, worker) =
            start(vec![short(0), short(1), last], Duration::from_secs(60));
        let first = next(&finished);
        let last_ended = runs(&last_runs).first().map(|run| run.ended);
        assert!(
            last_ended.is_some_and(|ended| ended <= Instant::now()),
            "the first came back before the last had run"
        );
        let returned: Vec<usize> = [first, next(&finished), next(&finished)]
            .iter()
            .map(|done| done.slot.index)
            .collect();
        assert_eq!(returned, [0, 1, 2]);
        let quiet: Vec<Vec<Report>> = reports.try_iter().collect();
        assert_eq!(quiet.len(), 1, "one batch");
        let quiet = &quiet[0];
        assert_eq!(quiet.len(), 3);
        assert!(quiet.iter().all(|report| !report.changed));
        drop(jobs_in);
        worker.join().unwrap();

        // A short refresh, then one whose last run took longer than the hold: the short
        // one comes back before the long one starts, however long that one hangs.
        let (long, long_runs) = Fake::new("long", Lane::Pool, Duration::from_millis(50));
        let (open, gate) = unbounded();
        open.send(()).unwrap();
        let long = primed(
            1,
            Fake {
                gate: Some(gate),
                ..long
            },
        );
        assert!(long.took.unwrap() >= Duration::from_millis(50));
        let (jobs_in, _reports, finished, worker) =
            start(vec![short(0), long], Duration::from_millis(10));
        assert_eq!(next(&finished).slot.index, 0);
        assert_eq!(runs(&long_runs).len(), 1, "the long one still hangs");
        drop(open);
        assert_eq!(next(&finished).slot.index, 1);
        drop(jobs_in);
        worker.join().unwrap();

        // Quick refreshes, then one as quick last time that now hangs: those before it come
        // back while it hangs, as many as may be held.
        let (open, gate) = unbounded();
        open.send(()).unwrap();
        let (stuck, stuck_runs) = Fake::new("stuck", Lane::Pool, Duration::ZERO);
        let stuck = primed(
            HELD_MOST,
            Fake {
                gate: Some(gate),
                ..stuck
            },
        );
        let mut queued: Vec<Slot> = (0..HELD_MOST).map(short).collect();
        queued.push(stuck);
        let (jobs_in, _reports, finished, worker) = start(queued, Duration::from_secs(60));
        let back: Vec<usize> = (0..HELD_MOST).map(|_| next(&finished).slot.index).collect();
        assert_eq!(back, (0..HELD_MOST).collect::<Vec<_>>());
        assert_eq!(runs(&stuck_runs).len(), 1, "the last one still hangs");
        drop(open);
        assert_eq!(next(&finished).slot.index, HELD_MOST);
        drop(jobs_in);
        worker.join().unwrap();
    }

    #[test]
    fn reports_waiting_together_publish_one_view() {
        let views = Views::default();
        let notified = Arc::new(AtomicUsize::new(0));
        let n = Arc::clone(&notified);
        views.on_first_pass(move || {
            n.fetch_add(1, Ordering::SeqCst);
        });
        // Thirty reports of three sources, all queued before the store thread looks, some
        // alone and some in batches.
        let (tx, rx) = unbounded();
        for i in 0..10 {
            tx.send(vec![report(i % 3)]).unwrap();
        }
        for i in 0..5 {
            tx.send((0..4).map(|j| report((i + j) % 3)).collect())
                .unwrap();
        }
        drop(tx);
        run_store(Store::new(3), &rx, &views);
        let published = views.now();
        assert_eq!(
            published.view.generation, 1,
            "one publication for 30 reports"
        );
        assert!(published.ready && published.first_pass_done);
        assert_eq!(notified.load(Ordering::SeqCst), 1);

        // Reports that arrive one at a time publish one view each.
        let views = Views::default();
        let (tx, rx) = unbounded();
        let store = {
            let views = views.clone();
            thread::spawn(move || run_store(Store::new(2), &rx, &views))
        };
        let wait_for = |generation: u64| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while views.now().view.generation < generation {
                assert!(Instant::now() < deadline, "generation {generation}");
                thread::sleep(Duration::from_millis(1));
            }
        };
        tx.send(vec![report(0)]).unwrap();
        wait_for(1);
        assert!(!views.now().first_pass_done);
        tx.send(vec![report(1)]).unwrap();
        wait_for(2);
        assert!(views.now().first_pass_done);
        drop(tx);
        store.join().unwrap();
        assert_eq!(views.now().view.generation, 2);
        // Asked after the first pass, the callback runs at once.
        let late = Arc::new(AtomicBool::new(false));
        let l = Arc::clone(&late);
        views.on_first_pass(move || l.store(true, Ordering::SeqCst));
        assert!(late.load(Ordering::SeqCst));
    }

    #[test]
    fn a_refresh_that_overruns_its_interval_is_never_doubled_and_waits_an_interval() {
        let interval = Duration::from_millis(10);
        let (slow, slow_runs) = Fake::new("slow", Lane::Pool, Duration::from_millis(60));
        let (quick, quick_runs) = Fake::new("quick", Lane::Pool, Duration::ZERO);
        let settings = Settings {
            interval,
            workers: 4,
        };
        let engine = Engine::start(vec![Box::new(slow), Box::new(quick)], settings).unwrap();
        thread::sleep(Duration::from_millis(500));
        engine.stop();
        let slow = runs(&slow_runs);
        assert!(slow.len() >= 3, "{slow:?}");
        for pair in slow.windows(2) {
            let gap = pair[1].started.saturating_duration_since(pair[0].ended);
            assert!(
                pair[1].started >= pair[0].ended && gap >= interval - Duration::from_millis(1),
                "the next refresh starts an interval after the previous one ended: {pair:?}"
            );
        }
        // The quick source keeps its pace meanwhile: about 50 refreshes in 500 ms.
        let quick = runs(&quick_runs);
        assert!(quick.len() >= 20, "{} refreshes", quick.len());
        assert!(quick
            .iter()
            .chain(&slow)
            .all(|r| r.thread.starts_with("refresh-")));
    }

    #[test]
    fn a_network_source_that_hangs_holds_its_own_thread_only() {
        let interval = Duration::from_millis(10);
        let (files, file_runs) = Fake::new("files", Lane::Pool, Duration::ZERO);
        let (mut api, api_runs) = Fake::new("api", Lane::Network, Duration::ZERO);
        let (release, gate) = bounded::<()>(0);
        api.gate = Some(gate);
        let settings = Settings {
            interval,
            workers: 1,
        };
        let engine = Engine::start(vec![Box::new(files), Box::new(api)], settings).unwrap();
        let views = engine.views();
        thread::sleep(Duration::from_millis(300));
        // The one pool worker kept refreshing the files while the API hung.
        let files = runs(&file_runs);
        assert!(files.len() >= 10, "{} refreshes", files.len());
        assert!(files.iter().all(|r| r.thread == "refresh-0"), "{files:?}");
        assert!(runs(&api_runs).is_empty());
        assert!(!views.now().first_pass_done, "the API's first pass hangs");
        // Stopping does not wait for the hung thread.
        let stopping = Instant::now();
        engine.stop();
        assert!(stopping.elapsed() < Duration::from_secs(1));
        drop(release);
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs(&api_runs).is_empty() {
            assert!(Instant::now() < deadline);
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(runs(&api_runs)[0].thread, "network-1");
    }

    #[test]
    fn a_wake_brings_the_next_refresh_forward_and_many_wakes_make_one_refresh() {
        let (api, api_runs) = Fake::new("api", Lane::Network, Duration::ZERO);
        let (files, file_runs) = Fake::new("files", Lane::Pool, Duration::ZERO);
        let handle = Arc::clone(&api.wake);
        let settings = Settings {
            interval: Duration::from_secs(3600),
            workers: 1,
        };
        let engine = Engine::start(vec![Box::new(files), Box::new(api)], settings).unwrap();
        let wait_for = |of: &Arc<Mutex<Vec<Run>>>, count: usize| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while runs(of).len() < count {
                assert!(
                    Instant::now() < deadline,
                    "{count} refreshes: {:?}",
                    runs(of)
                );
                thread::sleep(Duration::from_millis(2));
            }
        };
        wait_for(&api_runs, 1);
        let wake = lock(&handle)
            .clone()
            .expect("attached before the first refresh");
        // A burst of wakes: one refresh, about WAKE_DELAY later, not an hour.
        let woken = Instant::now();
        for _ in 0..50 {
            wake.wake();
        }
        wait_for(&api_runs, 2);
        let second = runs(&api_runs)[1].started;
        assert!(second >= woken + WAKE_DELAY - Duration::from_millis(5));
        assert!(second < woken + WAKE_DELAY + Duration::from_millis(500));
        thread::sleep(WAKE_DELAY * 3);
        assert_eq!(runs(&api_runs).len(), 2, "fifty wakes, one refresh");
        // The interval's own turn was overtaken, not added to: nothing more comes.
        assert_eq!(runs(&file_runs).len(), 1, "the other source keeps its hour");
        engine.stop();
    }

    /// CPU used so far by this process's threads named `scheduler`.
    fn schedulers_cpu() -> Duration {
        let mut ticks = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim() != "scheduler" {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after `) `.
            ticks += fields
                .get(11)
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0);
            ticks += fields
                .get(12)
                .and_then(|t| t.parse::<u64>().ok())
                .unwrap_or(0);
        }
        Duration::from_millis(ticks * 10)
    }

    #[test]
    fn an_engine_whose_sources_never_wake_it_sleeps() {
        // The file sources drop the wake handle they are given: the scheduler must not take
        // the closed channel for a stream of wakes.
        let (files, file_runs) = Fake::new("files", Lane::Pool, Duration::ZERO);
        struct Deaf(Fake);
        impl Source for Deaf {
            fn describe(&self) -> String {
                self.0.describe()
            }
            fn refresh(&mut self) -> Pass {
                self.0.refresh()
            }
        }
        let settings = Settings {
            interval: Duration::from_secs(3600),
            workers: 1,
        };
        let engine = Engine::start(vec![Box::new(Deaf(files))], settings).unwrap();
        thread::sleep(Duration::from_millis(100));
        let before = schedulers_cpu();
        thread::sleep(Duration::from_millis(600));
        let used = schedulers_cpu().saturating_sub(before);
        engine.stop();
        assert_eq!(runs(&file_runs).len(), 1);
        // A spinning scheduler burns the whole 600 ms; an idle one, nothing measurable
        // (others running in parallel tests included).
        assert!(used < Duration::from_millis(200), "{used:?}");
    }

    #[test]
    fn a_wake_during_a_refresh_is_one_more_refresh_after_it() {
        let (mut api, api_runs) = Fake::new("api", Lane::Network, Duration::ZERO);
        let handle = Arc::clone(&api.wake);
        let (release, gate) = bounded::<()>(0);
        api.gate = Some(gate);
        let settings = Settings {
            interval: Duration::from_secs(3600),
            workers: 1,
        };
        let engine = Engine::start(vec![Box::new(api)], settings).unwrap();
        // The first refresh waits at its gate: wake it meanwhile, twice.
        thread::sleep(Duration::from_millis(50));
        let wake = lock(&handle).clone().unwrap();
        wake.wake();
        wake.wake();
        release.send(()).unwrap();
        // The gate is passed once; later refreshes find it closed and go straight on.
        drop(release);
        let deadline = Instant::now() + Duration::from_secs(5);
        while runs(&api_runs).len() < 2 {
            assert!(Instant::now() < deadline, "{:?}", runs(&api_runs));
            thread::sleep(Duration::from_millis(2));
        }
        let runs_now = runs(&api_runs);
        let gap = runs_now[1]
            .started
            .saturating_duration_since(runs_now[0].ended);
        assert!(gap >= WAKE_DELAY - Duration::from_millis(5), "{gap:?}");
        thread::sleep(Duration::from_millis(800));
        assert_eq!(
            runs(&api_runs).len(),
            2,
            "two wakes during it, one refresh after"
        );
        engine.stop();
    }

    #[test]
    fn stop_waits_for_the_refreshes_under_way() {
        let (slow, slow_runs) = Fake::new("slow", Lane::Pool, Duration::from_millis(300));
        let settings = Settings {
            interval: Duration::from_millis(10),
            workers: 2,
        };
        let engine = Engine::start(vec![Box::new(slow)], settings).unwrap();
        thread::sleep(Duration::from_millis(100));
        engine.stop();
        assert_eq!(runs(&slow_runs).len(), 1, "the refresh under way ended");
        thread::sleep(Duration::from_millis(100));
        assert_eq!(runs(&slow_runs).len(), 1, "and no other began");
    }

    #[test]
    fn the_next_refresh_keeps_the_pace_unless_overrun_or_asked_otherwise() {
        let t = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(
            next_due(t, t + s(1), s(30), None),
            t + s(30),
            "keeps its pace"
        );
        assert_eq!(next_due(t, t + s(40), s(30), None), t + s(70), "overran");
        assert_eq!(next_due(t, t + s(1), s(30), Some(s(2))), t + s(3), "retry");
    }
}
