//! `-f` and `-d` sources: glob expansion, the directory and symlink rules, safe reads and
//! change detection by (device, inode, size, mtime, ctime, link target).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, Metadata};
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsio::{read_capped, why};
use crate::glob::Pattern;
use crate::labels::LabelConfig;
use crate::model::Item;
use crate::pem;
use crate::poll::{Pass, Source};

/// Threads that read the files of one large refresh (a first scan) at most.
const MAX_READERS: usize = 4;

/// File names that promise a certificate: holding none is then a read error.
const CERT_SUFFIXES: [&str; 4] = [".pem", ".crt", ".cer", ".der"];

/// What identifies one version of a file: (device, inode, size, mtime, ctime, symlink
/// target), kept as a 128-bit digest (16 bytes a file instead of about 80); equal keys mean
/// the file need not be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKey(u128);

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
        Self((u128::from(digest(1)) << 64) | u128::from(digest(2)))
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

fn promise_of_name(name: &str) -> Promise {
    let lower = name.to_ascii_lowercase();
    if CERT_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
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

/// One `-f` or `-d` argument, with the last result of every file it read.
pub struct FileSource {
    pattern: Pattern,
    mode: Mode,
    skip_symlinks: bool,
    labels: Arc<LabelConfig>,
    /// By a 64-bit digest of the path (the path itself is in the item's labels already). Two
    /// paths with the same digest would only make each other be read again: the file key
    /// still tells them apart.
    cache: HashMap<u64, Cached>,
    /// Refreshes so far: cache entries not seen in the latest one are dropped.
    pass: u64,
    failed: BTreeMap<PathBuf, Arc<Item>>,
}

/// The last result for one file.
struct Cached {
    key: FileKey,
    item: Arc<Item>,
    pass: u64,
}

/// One file to read, as found by the listing.
struct Candidate {
    /// The path as found (labels use it).
    path: PathBuf,
    /// Its identity now: equal to the cached one, it need not be read again.
    key: FileKey,
    /// What to open instead of `path`: a dangling symlink's target found beside it.
    beside: Option<PathBuf>,
    promise: Promise,
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
            cache: HashMap::new(),
            pass: 0,
            failed: BTreeMap::new(),
        }
    }

    /// Lists what the pattern names now, handing each file to read to `visit` as it is found
    /// (no list of every file is built); returns the failures that belong to no file and the
    /// paths that could not be resolved.
    fn list(&self, visit: &mut dyn FnMut(Candidate)) -> (Vec<String>, Vec<(PathBuf, String)>) {
        let mut visited = 0usize;
        let mut errors = Vec::new();
        let mut failed = Vec::new();
        let pattern = self.pattern.as_str();
        let expansion = self.pattern.expand();
        errors.extend(expansion.errors);
        match self.mode {
            Mode::Files => {
                for path in expansion.paths {
                    match self.resolve(&path, None, Promise::Named) {
                        Ok(Some(c)) => {
                            visited += 1;
                            visit(c)
                        }
                        Ok(None) => {}
                        Err(e) => failed.push((path, e)),
                    }
                }
                if visited == 0 && failed.is_empty() && !self.pattern.is_literal() {
                    errors.push(format!("watch {pattern}: no files match"));
                }
            }
            Mode::Dirs => {
                let dirs: Vec<PathBuf> = expansion
                    .paths
                    .into_iter()
                    .filter(|p| {
                        self.pattern.is_literal() || fs::metadata(p).is_ok_and(|m| m.is_dir())
                    })
                    .filter(|p| !(self.skip_symlinks && is_symlink(p)))
                    .collect();
                if dirs.is_empty() {
                    errors.push(format!("watch {pattern}: no directory matches"));
                }
                for dir in dirs {
                    match fs::read_dir(&dir) {
                        Ok(entries) => {
                            // In the directory's own order, which is stable while it is
                            // unchanged: sorting would mean holding every name at once.
                            for entry in entries.flatten() {
                                let (path, known) = (entry.path(), entry.file_type().ok());
                                let name = path.file_name().unwrap_or_default().to_string_lossy();
                                let promise = promise_of_name(&name);
                                match self.resolve(&path, known, promise) {
                                    Ok(Some(c)) => visit(c),
                                    Ok(None) => {}
                                    Err(e) if promise == Promise::CertName => {
                                        failed.push((path, e))
                                    }
                                    Err(e) => {
                                        log::debug!("{e} (skipped: not named like a certificate)")
                                    }
                                }
                            }
                        }
                        Err(err) => errors.push(format!("list {}: {}", dir.display(), why(&err))),
                    }
                }
            }
        }
        (errors, failed)
    }

    /// Applies the symlink and file-type rules to one path. `Ok(None)`: skip silently.
    /// `known` is the entry's type when a directory listing already told it (no lstat then):
    /// a regular file costs one stat, a symlink a readlink and a stat.
    fn resolve(
        &self,
        path: &Path,
        known: Option<fs::FileType>,
        promise: Promise,
    ) -> Result<Option<Candidate>, String> {
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
        Ok(Some(Candidate {
            path: path.to_path_buf(),
            key: FileKey::from_meta(&meta, link),
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
        let pairs = self.labels.file_pairs(&path.to_string_lossy());
        let item = Item {
            labels: self.labels.origin(&pairs),
            series: Box::new([]),
            errors: Box::new([error]),
        };
        (path, Arc::new(item))
    }

    /// Reads the files of a refresh, on every core when there are many (a first scan):
    /// parsing is the bulk of the work, and it is independent from file to file.
    fn read_all(&self, pending: &[(usize, u64, Candidate)]) -> Vec<Arc<Item>> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_READERS);
        if pending.len() < 256 || threads < 2 {
            return pending
                .iter()
                .map(|(_, _, c)| Arc::new(self.read(c)))
                .collect();
        }
        let per_thread = pending.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let readers: Vec<_> = pending
                .chunks(per_thread)
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|(_, _, c)| Arc::new(self.read(c)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            readers
                .into_iter()
                .flat_map(|reader| {
                    reader
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    }

    /// Reads and parses one candidate into an item.
    fn read(&self, candidate: &Candidate) -> Item {
        let display = candidate.path.to_string_lossy();
        let pairs = self.labels.file_pairs(&display);
        let mut errors = Vec::new();
        let mut series = Vec::new();
        match read_capped(candidate.beside.as_ref().unwrap_or(&candidate.path)) {
            Err(e) if candidate.promise == Promise::Other => {
                log::debug!("{e} (skipped: not named like a certificate)")
            }
            Err(e) => errors.push(e),
            Ok(data) => {
                let parsed = pem::parse_certificates(&data);
                for cert in &parsed.certs {
                    // The store merges a certificate repeated in one place into one series.
                    series.push(self.labels.series(&[], cert));
                }
                errors.extend(parsed.errors.iter().map(|e| format!("read {display}: {e}")));
                if series.is_empty() && errors.is_empty() {
                    let missing = match candidate.promise {
                        Promise::Named => true,
                        Promise::CertName => !parsed.had_pem,
                        Promise::Other => false,
                    };
                    if missing {
                        errors.push(format!("read {display}: no certificate found"));
                    }
                }
                if candidate.promise == Promise::Other && series.is_empty() && !parsed.had_pem {
                    // A binary file that merely looked like DER: not a certificate file.
                    errors.clear();
                }
            }
        }
        Item {
            labels: self.labels.origin(&pairs),
            series: series.into(),
            errors: errors.into(),
        }
    }
}

/// For a dangling symlink: the target's base name in the link's own directory, if it exists
/// (host paths mounted elsewhere, as v3 resolves them).
fn beside_link(link: &Path, target: Option<&Path>) -> Option<PathBuf> {
    let candidate = link.parent()?.join(target?.file_name()?);
    (candidate != link && fs::metadata(&candidate).is_ok()).then_some(candidate)
}

/// A 64-bit digest of a path, for the file cache.
fn path_id(path: &Path) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    path.hash(&mut h);
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
        // The cache is updated in place: no second map of every file on each refresh.
        self.pass = self.pass.wrapping_add(1);
        let pass = self.pass;
        let mut cache = std::mem::take(&mut self.cache);
        let mut items: Vec<Option<Arc<Item>>> = Vec::with_capacity(cache.len());
        // Files to read, with their place among the items.
        let mut pending: Vec<(usize, u64, Candidate)> = Vec::new();
        let (errors, failed) = self.list(&mut |candidate| {
            let id = path_id(&candidate.path);
            match cache.get_mut(&id).filter(|c| c.key == candidate.key) {
                Some(cached) => {
                    cached.pass = pass;
                    items.push(Some(Arc::clone(&cached.item)));
                }
                None => {
                    pending.push((items.len(), id, candidate));
                    items.push(None);
                }
            }
        });
        for ((slot, id, candidate), item) in pending.iter().zip(self.read_all(&pending)) {
            let entry = Cached {
                key: candidate.key,
                item: Arc::clone(&item),
                pass,
            };
            cache.insert(*id, entry);
            items[*slot] = Some(item);
        }
        let mut items: Vec<Arc<Item>> = items.into_iter().flatten().collect();
        cache.retain(|_, entry| entry.pass == pass);
        self.cache = cache;
        let failed: BTreeMap<PathBuf, Arc<Item>> = failed
            .into_iter()
            .map(|(path, e)| self.failed_item(path, e))
            .collect();
        items.extend(failed.values().cloned());
        self.failed = failed;
        self.labels.prune();
        Pass::complete(items, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_promise_a_certificate() {
        assert_eq!(promise_of_name("a.PEM"), Promise::CertName);
        assert_eq!(promise_of_name("a.der"), Promise::CertName);
        assert_eq!(promise_of_name("a.key"), Promise::Other);
        assert_eq!(promise_of_name("README"), Promise::Other);
    }
}
