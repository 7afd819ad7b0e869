//! `-f` and `-d` sources: glob expansion, the directory and symlink rules, safe reads and
//! change detection by (device, inode, size, mtime, ctime, link target). A refresh with many
//! files to read (a first scan) parses them on threads lent by a budget all sources share.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, Metadata};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::fsio::{read_found, read_limited, why};
use crate::glob::Pattern;
use crate::keystore::passwords::PasswordFiles;
use crate::labels::LabelConfig;
use crate::model::{Item, Items};
use crate::pem;
use crate::poll::{Pass, Source};

/// Files a refresh must read before it parses them on more than its own thread.
const PARALLEL_FROM: usize = 256;

/// Files handed to a parsing thread at a time.
const BATCH: usize = 32;

/// A thread keeps its read buffer for the next file up to this capacity.
const KEPT_READ_BUFFER: usize = 256 * 1024;

thread_local! {
    /// The buffer the thread's last file was read into, kept for the next one.
    static READ_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// File names that promise a certificate: holding none is then a read error.
const CERT_SUFFIXES: [&str; 11] = [
    ".pem",
    ".crt",
    ".cer",
    ".der",
    ".crl",
    ".p12",
    ".pfx",
    ".jks",
    ".jceks",
    ".keystore",
    ".truststore",
];

/// What identifies one version of a file: (device, inode, size, mtime, ctime, symlink
/// target), kept as a 128-bit digest (16 bytes a file instead of about 80); equal keys mean
/// the file need not be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey(u64, u64);

impl FileKey {
    /// The key of `path` now: the followed target's identity plus the symlink's target.
    pub fn of(path: &Path) -> io::Result<Self> {
        let link = match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => fs::read_link(path).ok(),
            Ok(_) => None,
            Err(err) => return Err(err),
        };
        let meta = fs::metadata(path)?;
        Ok(Self::from_meta(&meta, link))
    }

    fn from_meta(meta: &Metadata, link: Option<PathBuf>) -> Self {
        let digest = |salt: u64| {
            let mut h = std::hash::DefaultHasher::new();
            (salt, meta.dev(), meta.ino(), meta.size()).hash(&mut h);
            (
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                &link,
            )
                .hash(&mut h);
            h.finish()
        };
        Self(digest(1), digest(2))
    }
}

/// How much a file promises to hold a certificate, which decides what is an error.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Promise {
    /// Named with `-f`: every failure and "no certificate" are errors.
    Named,
    /// In a directory with a certificate-like name: errors, except a PEM file that holds
    /// only other blocks (a `privkey.pem`).
    CertName,
    /// Any other directory entry: only a broken certificate block is an error.
    Other,
}

fn promise_of_name(name: &[u8]) -> Promise {
    let promises = |suffix: &&str| {
        name.len() >= suffix.len()
            && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    if CERT_SUFFIXES.iter().any(promises) {
        Promise::CertName
    } else {
        Promise::Other
    }
}

/// Which kind of file source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// `-f`: the pattern names files.
    Files,
    /// `-d`: the pattern names directories whose entries are read, one level.
    Dirs,
}

/// Threads that may parse files beside the threads refreshing sources, shared by every file
/// source of the process: however many sources refresh at once, at most `threads - 1` extra
/// parsing threads exist.
#[derive(Debug)]
pub struct SpareThreads {
    /// Threads that parse at once, the refreshing one included.
    threads: usize,
    /// Spare threads not lent now.
    free: AtomicUsize,
    /// Parsing threads running now, the most ever seen at once, and how many ever started.
    #[cfg(test)]
    running: (AtomicUsize, AtomicUsize, AtomicUsize),
}

impl SpareThreads {
    /// A budget of `threads` parsing threads in all (at least one), the refreshing thread
    /// included.
    pub fn new(threads: usize) -> Arc<Self> {
        let threads = threads.max(1);
        Arc::new(Self {
            threads,
            free: AtomicUsize::new(threads - 1),
            #[cfg(test)]
            running: Default::default(),
        })
    }

    /// Borrows up to `want` spare threads, as many as are free now (maybe none).
    fn lend(&self, want: usize) -> Lease<'_> {
        let mut count = 0;
        let _ = self
            .free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                count = free.min(want);
                Some(free - count)
            });
        Lease {
            budget: self,
            count,
        }
    }
}

/// Spare threads lent to one refresh, returned when dropped.
struct Lease<'a> {
    budget: &'a SpareThreads,
    count: usize,
}

impl Lease<'_> {
    /// Gives back all but `count` of the threads lent.
    fn keep(&mut self, count: usize) {
        let extra = self.count.saturating_sub(count);
        self.budget.free.fetch_add(extra, Ordering::AcqRel);
        self.count -= extra;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.budget.free.fetch_add(self.count, Ordering::AcqRel);
    }
}

/// One `-f` or `-d` argument, with the last result of every file it read.
pub struct FileSource {
    pattern: Pattern,
    mode: Mode,
    skip_symlinks: bool,
    labels: Arc<LabelConfig>,
    /// Keystore passwords (`--keystore-password-file`).
    passwords: Arc<PasswordFiles>,
    /// The passwords the latest pass read keystores with: when they change, every file is
    /// read again.
    passwords_used: Arc<[String]>,
    /// Where a large refresh borrows threads to parse on.
    spare: Arc<SpareThreads>,
    failed: BTreeMap<PathBuf, Arc<Item>>,
    /// The latest pass's items, handed on whole while nothing changes: each file listed, in
    /// the listing's order, then each path that could not be resolved.
    last: Items,
    /// Each file listed in the latest pass, at its item's place in `last`. A refresh finds
    /// them in the same order while the listing is unchanged: no lookup per file.
    known: Vec<Known>,
    /// Where each path digest is in `known`, for a file found out of that order. Two paths
    /// with the same digest would only make each other be read again: the file key still
    /// tells them apart.
    index: Index,
}

/// What [`FileSource::list`] hands each path to: `Ok(true)` for a file to read, `Ok(false)`
/// for one skipped by the rules, `Err` for one that could not be looked at.
type Visit<'a> = dyn FnMut(&Path, Option<&fs::DirEntry>, Promise) -> Result<bool, String> + 'a;

/// A place in [`FileSource::known`] by path digest.
type Index = HashMap<u64, u32, BuildHasherDefault<Digest>>;

/// One file as the latest pass listed it.
#[derive(Clone, Copy)]
struct Known {
    /// The digest of its path (the path itself is in the item's labels already).
    id: u64,
    key: FileKey,
}

/// What the listing found at one path: enough to tell whether it changed.
struct Found {
    /// Its identity now: equal to the cached one, it need not be read again. `None`: a
    /// regular file not seen before, not looked at (its handle gives the key when read).
    key: Option<FileKey>,
    /// A stat or the directory listing showed a regular file: no stat before opening it.
    regular: bool,
    /// What to open instead of the path: a dangling symlink's target found beside it.
    beside: Option<PathBuf>,
    promise: Promise,
}

/// One file to read, with its place among the items.
struct Job {
    slot: usize,
    id: u64,
    /// The path as found (labels use it).
    path: PathBuf,
    found: Found,
}

/// One file read: where its item goes.
struct Done {
    slot: usize,
    id: u64,
    key: FileKey,
    item: Arc<Item>,
}

impl FileSource {
    /// A source for one pattern.
    pub fn new(
        pattern: Pattern,
        mode: Mode,
        skip_symlinks: bool,
        labels: Arc<LabelConfig>,
    ) -> Self {
        Self {
            pattern,
            mode,
            skip_symlinks,
            labels,
            passwords: Arc::default(),
            passwords_used: Arc::default(),
            spare: SpareThreads::new(1),
            failed: BTreeMap::new(),
            last: Items::default(),
            known: Vec::new(),
            index: Index::default(),
        }
    }

    /// Parses on threads borrowed from `spare`, a budget shared with other sources; without
    /// one, a source parses on the thread that refreshes it.
    pub fn with_spare_threads(mut self, spare: Arc<SpareThreads>) -> Self {
        self.spare = spare;
        self
    }

    /// Opens keystores with these passwords.
    pub fn with_passwords(mut self, passwords: Arc<PasswordFiles>) -> Self {
        self.passwords_used = passwords.current();
        self.passwords = passwords;
        self
    }

    /// Lists what the pattern names now, handing each file to read to `visit` as it is found
    /// (no list of every file is built); returns the failures that belong to no file and the
    /// paths that could not be resolved.
    ///
    /// `visit` gets each path with its directory entry when a listing found it and what it
    /// promises, and says whether it was a file to read (or why it failed).
    fn list(&self, visit: &mut Visit) -> (Vec<String>, Vec<(PathBuf, String)>) {
        let mut visited = 0usize;
        let mut failed = Vec::new();
        let pattern = self.pattern.as_str();
        match self.mode {
            Mode::Files => {
                let mut errors = self.pattern.expand_each(&mut |path, entry| match visit(
                    path,
                    entry,
                    Promise::Named,
                ) {
                    Ok(true) => visited += 1,
                    Ok(false) => {}
                    Err(e) => failed.push((path.to_path_buf(), e)),
                });
                if visited == 0 && failed.is_empty() && !self.pattern.is_literal() {
                    errors.push(format!("watch {pattern}: no files match"));
                }
                (errors, failed)
            }
            Mode::Dirs => {
                let mut dirs = Vec::new();
                let mut errors = self.pattern.expand_each(&mut |path, entry| {
                    let known = entry.and_then(|e| e.file_type().ok());
                    let symlink = || match known {
                        Some(t) => t.is_symlink(),
                        None => is_symlink(path),
                    };
                    let is_dir = match known {
                        Some(t) if t.is_dir() => true,
                        Some(t) if !t.is_symlink() => false,
                        _ => fs::metadata(path).is_ok_and(|m| m.is_dir()),
                    };
                    // A literal pattern's path is listed whatever it is (errors say why).
                    if (self.pattern.is_literal() || is_dir) && !(self.skip_symlinks && symlink()) {
                        dirs.push(path.to_path_buf());
                    }
                });
                if dirs.is_empty() {
                    errors.push(format!("watch {pattern}: no directory matches"));
                }
                for dir in dirs {
                    let entries = match fs::read_dir(&dir) {
                        Ok(entries) => entries,
                        Err(err) => {
                            errors.push(format!("list {}: {}", dir.display(), why(&err)));
                            continue;
                        }
                    };
                    // In the directory's own order, which is stable while it is unchanged:
                    // sorting would mean holding every name at once.
                    for entry in entries.flatten() {
                        let path = entry.path();
                        let promise = promise_of_name(entry.file_name().as_bytes());
                        match visit(&path, Some(&entry), promise) {
                            Ok(_) => {}
                            Err(e) if promise == Promise::CertName => failed.push((path, e)),
                            Err(e) => {
                                log::debug!("{e} (skipped: not named like a certificate)")
                            }
                        }
                    }
                }
                (errors, failed)
            }
        }
    }

    /// Applies the symlink and file-type rules to one path. `Ok(None)`: skip silently.
    /// `entry` is its directory entry when a listing found it, whose type is known without
    /// an lstat: a regular file costs one stat of its name in the listed directory (not a
    /// walk of its whole path), or none when no earlier result needs its key (`need_key`
    /// false: a first scan); a symlink costs a readlink and a stat.
    fn resolve(
        &self,
        path: &Path,
        entry: Option<&fs::DirEntry>,
        promise: Promise,
        need_key: bool,
    ) -> Result<Option<Found>, String> {
        let known = entry.and_then(|e| e.file_type().ok());
        if let Some(entry) = entry.filter(|_| known.is_some_and(|t| t.is_file())) {
            let regular = |key| Found {
                key,
                regular: true,
                beside: None,
                promise,
            };
            if !need_key {
                return Ok(Some(regular(None)));
            }
            // Replaced by something else since it was listed: the whole road below.
            if let Some(meta) = entry.metadata().ok().filter(|m| m.is_file()) {
                return Ok(Some(regular(Some(FileKey::from_meta(&meta, None)))));
            }
        }
        let fail = |why: String| format!("read {}: {why}", path.display());
        let is_symlink = match known {
            Some(t) => t.is_symlink(),
            None => fs::symlink_metadata(path)
                .map_err(|e| fail(why(&e)))?
                .file_type()
                .is_symlink(),
        };
        let mut beside = None;
        let (meta, link) = if is_symlink {
            if self.skip_symlinks {
                return Ok(None);
            }
            let link = fs::read_link(path).ok();
            match fs::metadata(path) {
                Ok(meta) => (meta, link),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    let found = beside_link(path, link.as_deref()).ok_or_else(|| {
                        let target = link.clone().unwrap_or_default();
                        fail(format!("dangling symlink to {}", target.display()))
                    })?;
                    let meta = fs::metadata(&found).map_err(|e| fail(why(&e)))?;
                    beside = Some(found);
                    (meta, link)
                }
                Err(err) => return Err(fail(why(&err))),
            }
        } else {
            (fs::metadata(path).map_err(|e| fail(why(&e)))?, None)
        };
        if meta.is_dir() {
            // A directory matched by a file glob, or a sub-directory: not ours.
            return match (promise, self.pattern.is_literal(), self.mode) {
                (Promise::Named, true, Mode::Files) => Err(fail("is a directory".to_string())),
                _ => Ok(None),
            };
        }
        if !meta.is_file() && promise == Promise::Other {
            return Ok(None);
        }
        Ok(Some(Found {
            key: Some(FileKey::from_meta(&meta, link)),
            regular: meta.is_file(),
            beside,
            promise,
        }))
    }

    /// The item of a path that could not be resolved; the same failure keeps the same item
    /// (so an unchanged refresh stays unchanged).
    fn failed_item(&self, path: PathBuf, error: String) -> (PathBuf, Arc<Item>) {
        if let Some(item) = self
            .failed
            .get(&path)
            .filter(|i| i.errors[..] == [error.clone()])
        {
            return (path, Arc::clone(item));
        }
        let item = Item {
            labels: self.labels.file_origin(&path.to_string_lossy()),
            series: Box::new([]),
            errors: Box::new([error]),
        };
        (path, Arc::new(item))
    }

    /// Reads and parses one file into its item.
    fn read(&self, job: &Job) -> Done {
        let mut key = job.found.key;
        let item = Arc::new(self.parse(&job.path, &job.found, &mut key));
        // Not looked at by the listing and not opened: its key from a stat now, or one that
        // matches nothing (the next refresh looks again).
        let key = key.unwrap_or_else(|| {
            fs::metadata(&job.path).map_or(FileKey(0, 0), |meta| FileKey::from_meta(&meta, None))
        });
        Done {
            slot: job.slot,
            id: job.id,
            key,
            item,
        }
    }

    /// Reads and parses the file found at `path`; sets `key` from the open handle when the
    /// listing left it unknown.
    fn parse(&self, path: &Path, found: &Found, key: &mut Option<FileKey>) -> Item {
        let display = path.to_string_lossy();
        let target = found.beside.as_deref().unwrap_or(path);
        let data = match found.regular {
            true => read_found(target, READ_BUFFER.take()).map(|(data, meta)| {
                key.get_or_insert_with(|| FileKey::from_meta(&meta, None));
                data
            }),
            false => read_limited(target),
        };
        let data = data.map_err(|why| format!("read {}: {why}", target.display()));
        let item = self.item_of(&display, found, &data);
        if let Ok(mut buffer) = data {
            if buffer.capacity() <= KEPT_READ_BUFFER {
                buffer.clear();
                READ_BUFFER.set(buffer);
            }
        }
        item
    }

    /// The item of the file at `display`, from what reading it gave.
    fn item_of(&self, display: &str, found: &Found, data: &Result<Vec<u8>, String>) -> Item {
        let mut errors = Vec::new();
        let mut series = Vec::new();
        match data {
            Err(e) if found.promise == Promise::Other => {
                log::debug!("{e} (skipped: not named like a certificate)")
            }
            Err(e) => errors.push(e.clone()),
            Ok(data) => {
                let parsed =
                    pem::parse_certificates(data, &self.passwords_used, self.labels.wants_facts());
                // At its final size: boxing it then costs no reallocation. The store merges
                // a certificate repeated in one place into one series.
                series = self.labels.all_series(&[], &parsed);
                errors.extend(parsed.errors.iter().map(|e| format!("read {display}: {e}")));
                if series.is_empty() && errors.is_empty() {
                    let missing = match found.promise {
                        Promise::Named => true,
                        // A PEM file of keys alone is no error; a keystore without a
                        // certificate is.
                        Promise::CertName => !parsed.had_pem,
                        Promise::Other => false,
                    };
                    if missing {
                        errors.push(format!("read {display}: no certificate found"));
                    }
                }
                let framed = parsed.had_pem || parsed.keystore.is_some();
                if found.promise == Promise::Other && series.is_empty() && !framed {
                    // A binary file that merely looked like DER: not a certificate file. A
                    // keystore found by its content reports its failures under any name.
                    errors.clear();
                }
            }
        }
        Item {
            labels: self.labels.file_origin(display),
            series: series.into(),
            errors: errors.into(),
        }
    }
}

/// The files one refresh must read: parsed on the refreshing thread alone while they are
/// few, on threads lent by the source's [`SpareThreads`] once there are [`PARALLEL_FROM`] of
/// them. Results carry their place, so the items come out in the listing's order whoever
/// parsed them; at most a few batches wait at once, so file contents are held only while
/// parsed.
struct Readers<'scope, 'env> {
    source: &'env FileSource,
    scope: &'scope Scope<'scope, 'env>,
    /// Files found but not yet handed out.
    waiting: Vec<Job>,
    /// Set once enough files wait: threads run, or none could be lent.
    started: Option<Lanes<'scope, 'env>>,
    /// Files read, to be placed by the refreshing thread.
    done: Vec<Done>,
}

/// The threads lent to one refresh and the channels between them.
struct Lanes<'scope, 'env> {
    /// Held, not read: the threads go back to the budget when the lanes are dropped, after
    /// the threads are joined.
    _lease: Lease<'env>,
    work: Option<Sender<Vec<Job>>>,
    /// The refreshing thread takes work from here too, when the threads fall behind.
    take: Receiver<Vec<Job>>,
    results: Receiver<Vec<Done>>,
    threads: Vec<ScopedJoinHandle<'scope, ()>>,
}

impl<'scope, 'env> Readers<'scope, 'env> {
    fn new(source: &'env FileSource, scope: &'scope Scope<'scope, 'env>) -> Self {
        Self {
            source,
            scope,
            waiting: Vec::new(),
            started: None,
            done: Vec::new(),
        }
    }

    /// Takes one file to read; what has been read meanwhile lands in `self.done`.
    fn add(&mut self, job: Job) {
        match &mut self.started {
            None => {
                self.waiting.push(job);
                if self.waiting.len() >= PARALLEL_FROM {
                    self.start();
                }
            }
            Some(lanes) if lanes.threads.is_empty() => self.done.push(self.source.read(&job)),
            Some(lanes) => {
                self.waiting.push(job);
                if self.waiting.len() >= BATCH {
                    let batch = std::mem::take(&mut self.waiting);
                    Self::hand_out(self.source, lanes, batch, &mut self.done);
                }
                self.done.extend(lanes.results.try_iter().flatten());
            }
        }
    }

    /// Borrows spare threads and hands them what waits; with none to lend, reads it here.
    fn start(&mut self) {
        let source = self.source;
        let mut lease = source.spare.lend(source.spare.threads - 1);
        let (work, take) = crossbeam_channel::bounded::<Vec<Job>>(2 * (lease.count + 1));
        let (finished, results) = crossbeam_channel::unbounded::<Vec<Done>>();
        let threads: Vec<_> = (0..lease.count)
            .map_while(|_| {
                let (take, finished) = (take.clone(), finished.clone());
                let reader = move || {
                    #[cfg(test)]
                    let _running = Running::enter(&source.spare);
                    for batch in take {
                        let done = batch.iter().map(|job| source.read(job)).collect();
                        if finished.send(done).is_err() {
                            return;
                        }
                    }
                };
                let thread = std::thread::Builder::new().name("file-reader".into());
                match thread.spawn_scoped(self.scope, reader) {
                    Ok(thread) => Some(thread),
                    Err(err) => {
                        log::debug!("start a file reader thread: {}", why(&err));
                        None
                    }
                }
            })
            .collect();
        // Threads that could not start go back to the budget now.
        lease.keep(threads.len());
        let lanes = Lanes {
            _lease: lease,
            work: Some(work),
            take,
            results,
            threads,
        };
        let waiting = std::mem::take(&mut self.waiting);
        if lanes.threads.is_empty() {
            self.done.extend(waiting.iter().map(|job| source.read(job)));
        } else {
            let mut waiting = waiting.into_iter().peekable();
            while waiting.peek().is_some() {
                let batch: Vec<Job> = waiting.by_ref().take(BATCH).collect();
                Self::hand_out(source, &lanes, batch, &mut self.done);
            }
        }
        self.started = Some(lanes);
    }

    /// Queues a batch for the threads, or reads it here when they are all busy and the
    /// queue is full (which bounds what waits, and keeps this thread useful).
    fn hand_out(source: &FileSource, lanes: &Lanes, batch: Vec<Job>, done: &mut Vec<Done>) {
        if batch.is_empty() {
            return;
        }
        let Some(work) = &lanes.work else {
            return done.extend(batch.iter().map(|job| source.read(job)));
        };
        match work.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(batch) | TrySendError::Disconnected(batch)) => {
                done.extend(batch.iter().map(|job| source.read(job)))
            }
        }
    }

    /// Reads what is left, helping the threads until the queue is empty, waits for them and
    /// gives their spare threads back; returns every file read not yet taken from `done`.
    fn finish(mut self) -> Vec<Done> {
        let source = self.source;
        let waiting = std::mem::take(&mut self.waiting);
        let Some(mut lanes) = self.started.take() else {
            self.done.extend(waiting.iter().map(|job| source.read(job)));
            return self.done;
        };
        Self::hand_out(source, &lanes, waiting, &mut self.done);
        lanes.work = None;
        for batch in lanes.take.iter() {
            self.done.extend(batch.iter().map(|job| source.read(job)));
        }
        for thread in lanes.threads.drain(..) {
            // A reader that panicked (a bug) takes the refresh down with it, as on this thread.
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        self.done.extend(lanes.results.try_iter().flatten());
        drop(lanes);
        self.done
    }
}

/// Counts the parsing threads running at once, for the tests of the budget.
#[cfg(test)]
struct Running<'a>(&'a SpareThreads);

#[cfg(test)]
impl<'a> Running<'a> {
    fn enter(budget: &'a SpareThreads) -> Self {
        let now = budget.running.0.fetch_add(1, Ordering::SeqCst) + 1;
        budget.running.1.fetch_max(now, Ordering::SeqCst);
        budget.running.2.fetch_add(1, Ordering::SeqCst);
        Self(budget)
    }
}

#[cfg(test)]
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// For a dangling symlink: the target's base name in the link's own directory, if it exists
/// (host paths mounted elsewhere, as v3 resolves them).
fn beside_link(link: &Path, target: Option<&Path>) -> Option<PathBuf> {
    let candidate = link.parent()?.join(target?.file_name()?);
    (candidate != link && fs::metadata(&candidate).is_ok()).then_some(candidate)
}

/// The hasher of the file cache, whose keys are digests already: hashing them again would
/// cost a SipHash per file on every refresh for nothing.
#[derive(Default)]
struct Digest(u64);

impl Hasher for Digest {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the keys are `u64`); any other input is folded in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A 64-bit digest of a path, for the file cache.
fn path_id(path: &Path) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    path.as_os_str().as_bytes().hash(&mut h);
    h.finish()
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

impl Source for FileSource {
    fn describe(&self) -> String {
        match self.mode {
            Mode::Files => format!("--watch-file={}", self.pattern.as_str()),
            Mode::Dirs => format!("--watch-dir={}", self.pattern.as_str()),
        }
    }

    fn refresh(&mut self) -> Pass {
        let passwords = self.passwords.current();
        if !Arc::ptr_eq(&passwords, &self.passwords_used) {
            // A keystore that failed may open now, or one that opened may not: read all.
            for known in &mut self.known {
                known.key = FileKey(0, 0);
            }
            self.passwords_used = passwords;
        }
        let previous = Arc::clone(&self.last);
        let known = std::mem::take(&mut self.known);
        let mut listing = Listing::after(&previous, &known);
        let place = |done: Done, listing: &mut Listing| {
            let known = Known {
                id: done.id,
                key: done.key,
            };
            listing.place(done.slot, done.item, known);
        };
        let this = &*self;
        let (errors, failed) = std::thread::scope(|scope| {
            let mut readers = Readers::new(this, scope);
            let listed = this.list(&mut |path, entry, promise| {
                let id = path_id(path);
                let at = listing.find(id, &this.index);
                let Some(found) = this.resolve(path, entry, promise, at.is_some())? else {
                    return Ok(false);
                };
                match at.filter(|&at| Some(known[at].key) == found.key) {
                    Some(at) => listing.keep_listed(at),
                    None => {
                        let slot = listing.reserve(id);
                        let path = path.to_path_buf();
                        readers.add(Job {
                            slot,
                            id,
                            path,
                            found,
                        });
                        for done in readers.done.drain(..) {
                            place(done, &mut listing);
                        }
                    }
                }
                Ok(true)
            });
            for done in readers.finish() {
                place(done, &mut listing);
            }
            listed
        });
        let failed: BTreeMap<PathBuf, Arc<Item>> = failed
            .into_iter()
            .map(|(path, e)| self.failed_item(path, e))
            .collect();
        for item in failed.values() {
            listing.keep_failed(item);
        }
        self.failed = failed;
        let (items, now_known) = listing.finish();
        match now_known {
            None => self.known = known,
            Some(now_known) => {
                drop(known);
                self.index.clear();
                self.index.extend(
                    now_known
                        .iter()
                        .enumerate()
                        .map(|(at, k)| (k.id, at as u32)),
                );
                self.index.shrink_to(now_known.len());
                self.known = now_known;
                self.labels.prune();
            }
        }
        self.last = Arc::clone(&items);
        Pass::complete(items, errors)
    }
}

/// A pass's items and files in listing order, built only from the first that differs from
/// the previous pass's: while each file is found where the previous pass had it, nothing is
/// looked up or cloned, and a pass that found everything as it was hands the previous
/// items on whole.
struct Listing<'a> {
    previous: &'a Items,
    /// The previous pass's files, at their items' places.
    known: &'a [Known],
    /// Where the next file is expected in `known`: after the last one found there.
    cursor: usize,
    /// How many leading items are the previous pass's, until one differs.
    same: usize,
    /// Files listed so far.
    listed: usize,
    /// Every item and file so far once one differed; `None` in a place whose file is being
    /// read.
    built: Option<Built>,
}

/// A pass's items (`None` while a file is read) and files listed, once built.
type Built = (Vec<Option<Arc<Item>>>, Vec<Known>);

impl<'a> Listing<'a> {
    fn after(previous: &'a Items, known: &'a [Known]) -> Self {
        Self {
            previous,
            known,
            cursor: 0,
            same: 0,
            listed: 0,
            built: None,
        }
    }

    /// The place of the file with path digest `id` in the previous pass, if it was listed:
    /// the one after the last found, as long as the listing goes on as it did, else where
    /// the index says.
    fn find(&mut self, id: u64, index: &Index) -> Option<usize> {
        let at = match self.known.get(self.cursor) {
            Some(known) if known.id == id => self.cursor,
            _ => *index.get(&id)? as usize,
        };
        self.cursor = at + 1;
        Some(at)
    }

    /// The next file is the previous pass's at `at`, unchanged.
    fn keep_listed(&mut self, at: usize) {
        if self.built.is_none() && at == self.same {
            self.same += 1;
        } else {
            let (item, file) = (Arc::clone(&self.previous[at]), self.known[at]);
            let (items, known) = self.built();
            items.push(Some(item));
            known.push(file);
        }
        self.listed += 1;
    }

    /// A place for the next file, filled by [`Listing::place`] once it is read.
    fn reserve(&mut self, id: u64) -> usize {
        let (items, known) = self.built();
        items.push(None);
        known.push(Known {
            id,
            key: FileKey(0, 0),
        });
        let slot = items.len() - 1;
        self.listed += 1;
        slot
    }

    fn place(&mut self, slot: usize, item: Arc<Item>, file: Known) {
        if let Some((items, known)) = &mut self.built {
            items[slot] = Some(item);
            known[slot] = file;
        }
    }

    /// The next item, after every file listed: a path that could not be resolved.
    fn keep_failed(&mut self, item: &Arc<Item>) {
        if self.built.is_none()
            && self
                .previous
                .get(self.same)
                .is_some_and(|p| Arc::ptr_eq(p, item))
        {
            self.same += 1;
        } else {
            self.built().0.push(Some(Arc::clone(item)));
        }
    }

    fn built(&mut self) -> (&mut Vec<Option<Arc<Item>>>, &mut Vec<Known>) {
        let (previous, known, same, listed) = (self.previous, self.known, self.same, self.listed);
        let (items, known) = self.built.get_or_insert_with(|| {
            let mut items = Vec::with_capacity(previous.len());
            items.extend(previous[..same].iter().map(|item| Some(Arc::clone(item))));
            // The files listed so far are the previous pass's at the same places.
            let mut now = Vec::with_capacity(known.len());
            now.extend_from_slice(&known[..listed]);
            (items, now)
        });
        (items, known)
    }

    /// The items, and the files listed unless they are the previous pass's.
    fn finish(self) -> (Items, Option<Vec<Known>>) {
        match self.built {
            None if self.same == self.previous.len() && self.listed == self.known.len() => {
                (Arc::clone(self.previous), None)
            }
            None => (
                self.previous[..self.same].into(),
                Some(self.known[..self.listed].to_vec()),
            ),
            Some((items, mut known)) => {
                // Every reserved place is filled: each file handed to the readers comes back.
                let mut at = 0;
                known.retain(|_| {
                    at += 1;
                    items[at - 1].is_some()
                });
                (items.into_iter().flatten().collect(), Some(known))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_that_promise_a_certificate() {
        assert_eq!(promise_of_name(b"a.PEM"), Promise::CertName);
        assert_eq!(promise_of_name(b"a.der"), Promise::CertName);
        assert_eq!(promise_of_name(b".Crt"), Promise::CertName);
        for keystore in [
            "a.p12",
            "b.PFX",
            "c.jks",
            "d.jceks",
            "e.keystore",
            "f.truststore",
        ] {
            assert_eq!(promise_of_name(keystore.as_bytes()), Promise::CertName);
        }
        assert_eq!(promise_of_name(b"revoked.crl"), Promise::CertName);
        assert_eq!(promise_of_name(b"a.key"), Promise::Other);
        assert_eq!(promise_of_name(b"pem"), Promise::Other);
        assert_eq!(promise_of_name(b"README"), Promise::Other);
    }

    /// A fresh directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("files-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `n` files in `dir`: good certificates and chains, files without a certificate, broken
    /// blocks, oversized files, dangling symlinks, key files and other names, a directory.
    fn populate(dir: &Path, n: usize) {
        let certs: Vec<String> = (0..3)
            .map(|i| {
                let key = rcgen::KeyPair::generate().unwrap();
                let mut params = rcgen::CertificateParams::new(vec![format!("h{i}.test")]).unwrap();
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, format!("cert {i}"));
                params.self_signed(&key).unwrap().pem()
            })
            .collect();
        for i in 0..n {
            let path = |ext: &str| dir.join(format!("f{i:04}.{ext}"));
            match i % 9 {
                0..=2 => fs::write(path("pem"), &certs[i % 3]).unwrap(),
                3 => fs::write(path("crt"), format!("{}{}", certs[0], certs[1])).unwrap(),
                4 => fs::write(path("pem"), "no certificate here\n").unwrap(),
                5 => fs::write(
                    path("cer"),
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                )
                .unwrap(),
                6 => fs::File::create(path("pem"))
                    .unwrap()
                    .set_len(crate::fsio::MAX_FILE_SIZE + 1)
                    .unwrap(),
                7 => std::os::unix::fs::symlink(dir.join("gone"), path("der")).unwrap(),
                _ => fs::write(path("key"), "-----BEGIN PRIVATE KEY-----\n").unwrap(),
            }
        }
        fs::create_dir(dir.join("sub.pem")).unwrap();
    }

    fn source(dir: &Path, spare: &Arc<SpareThreads>) -> FileSource {
        let pattern = Pattern::new(&dir.display().to_string()).unwrap();
        let labels = Arc::new(LabelConfig::default());
        FileSource::new(pattern, Mode::Dirs, false, labels).with_spare_threads(Arc::clone(spare))
    }

    #[test]
    fn a_parallel_refresh_yields_the_items_of_a_serial_one() {
        let dir = scratch("parallel");
        populate(&dir, 3 * PARALLEL_FROM);
        let one = SpareThreads::new(1);
        let four = SpareThreads::new(4);
        let serial = source(&dir, &one).refresh();
        let mut source = source(&dir, &four);
        let parallel = source.refresh();
        // Three readers were lent and started; how many overlapped is up to the machine.
        assert_eq!(
            four.running.2.load(Ordering::SeqCst),
            3,
            "three readers ran"
        );
        assert_eq!(one.running.2.load(Ordering::SeqCst), 0, "no reader ran");
        let errors = |pass: &Pass| -> usize { pass.items.iter().map(|i| i.errors.len()).sum() };
        let certs = |pass: &Pass| -> usize { pass.items.iter().map(|i| i.series.len()).sum() };
        assert_eq!(serial.items.len(), 3 * PARALLEL_FROM, "one item a file");
        assert!(
            errors(&serial) >= 4 * PARALLEL_FROM / 9,
            "{}",
            errors(&serial)
        );
        assert!(
            certs(&serial) >= 5 * PARALLEL_FROM / 9,
            "{}",
            certs(&serial)
        );
        // Same items, same order, same labels, certificates and errors.
        assert_eq!(parallel.items.len(), serial.items.len());
        let items = |pass: &Pass| pass.items.iter().map(|i| (**i).clone()).collect::<Vec<_>>();
        assert_eq!(items(&parallel), items(&serial));
        assert_eq!(parallel.errors, serial.errors);
        // What the readers parsed is cached: an unchanged refresh reads nothing again, and
        // hands on the very same items.
        let again = source.refresh();
        assert!(Arc::ptr_eq(&again.items, &parallel.items));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sources_refreshing_at_once_share_the_spare_threads() {
        let dir = scratch("budget");
        populate(&dir, 2 * PARALLEL_FROM);
        let budget = SpareThreads::new(3);
        let mut sources: Vec<FileSource> = (0..6).map(|_| source(&dir, &budget)).collect();
        std::thread::scope(|scope| {
            for source in &mut sources {
                scope.spawn(|| source.refresh());
            }
        });
        let (running, peak) = (&budget.running.0, &budget.running.1);
        assert!(peak.load(Ordering::SeqCst) >= 1, "readers ran");
        assert!(peak.load(Ordering::SeqCst) <= 2, "{peak:?} readers at once");
        assert_eq!(running.load(Ordering::SeqCst), 0);
        assert_eq!(
            budget.free.load(Ordering::SeqCst),
            2,
            "every thread given back"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_refresh_hands_on_the_same_items_and_rebuilds_only_what_changed() {
        let dir = scratch("listing");
        populate(&dir, 27);
        let spare = SpareThreads::new(1);
        let mut watched = source(&dir, &spare);
        let values = |pass: &Pass| pass.items.iter().map(|i| (**i).clone()).collect::<Vec<_>>();
        let new_items = |pass: &Pass, before: &Pass| {
            let old: HashSet<*const Item> = before.items.iter().map(Arc::as_ptr).collect();
            pass.items
                .iter()
                .filter(|i| !old.contains(&Arc::as_ptr(i)))
                .count()
        };
        let first = watched.refresh();
        assert!(
            first.items.iter().any(|i| !i.errors.is_empty()),
            "failed items too"
        );
        assert!(Arc::ptr_eq(&watched.refresh().items, &first.items));
        let mut before = first;
        // Each change in turn, against what a source reading everything afresh finds.
        // (what, files read again, the change)
        type Change = (&'static str, usize, fn(&Path));
        let changes: [Change; 4] = [
            ("a file removed", 0, |d| {
                fs::remove_file(d.join("f0001.pem")).unwrap()
            }),
            ("a file rewritten", 1, |d| {
                fs::write(d.join("f0002.pem"), "none\n").unwrap()
            }),
            ("a file added", 1, |d| {
                fs::copy(d.join("f0000.pem"), d.join("new.pem"))
                    .map(drop)
                    .unwrap()
            }),
            ("the last failure gone", 0, |d| {
                fs::remove_file(d.join("f0025.der")).unwrap()
            }),
        ];
        for (change, read, apply) in changes {
            apply(&dir);
            let pass = watched.refresh();
            assert_eq!(
                values(&pass),
                values(&source(&dir, &spare).refresh()),
                "{change}"
            );
            assert_eq!(
                new_items(&pass, &before),
                read,
                "{change}: items read again"
            );
            assert!(
                Arc::ptr_eq(&watched.refresh().items, &pass.items),
                "{change}: then unchanged"
            );
            before = pass;
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
