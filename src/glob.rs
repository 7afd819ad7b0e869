//! Glob patterns for `-f`, `-d` and `-k`: `*`, `?`, `[..]` and `**`, compiled once at start,
//! expanded against the filesystem on every refresh.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::fsio::why;

/// Directory depth below which `**` does not descend (a guard against pathological trees).
const MAX_DEPTH: usize = 64;

/// Components from the first wildcard on, at most: an expansion's states fit in 64 bits.
const MAX_SEGMENTS: usize = 63;

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    text: String,
    /// Leading components without wildcards.
    base: PathBuf,
    /// The remaining components; empty when the pattern is a plain path.
    segments: Vec<Segment>,
    /// Bit `i` set: segment `i` is `**`.
    any_dirs: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// `**`: zero or more directories.
    AnyDirs,
    /// One path component with wildcards.
    Name(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// What [`Pattern::expand`] found.
#[derive(Debug, Default)]
pub struct Expansion {
    /// Matching paths (files, directories, symlinks: the caller filters), sorted.
    pub paths: Vec<PathBuf>,
    /// Directories that could not be listed on the way.
    pub errors: Vec<String>,
}

impl Pattern {
    /// Compiles a pattern; an unterminated or empty `[..]` or an inverted range is an error.
    pub fn new(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("empty pattern".to_string());
        }
        let mut base = PathBuf::new();
        let mut segments = Vec::new();
        if text.starts_with('/') {
            base.push("/");
        }
        for part in text.split('/').filter(|p| !p.is_empty()) {
            let segment = if part == "**" {
                Segment::AnyDirs
            } else {
                let tokens = tokenize(part)?;
                if segments.is_empty() && tokens.iter().all(|t| matches!(t, Token::Char(_))) {
                    base.push(tokens.iter().map(literal_char).collect::<String>());
                    continue;
                }
                Segment::Name(tokens)
            };
            segments.push(segment);
        }
        if base.as_os_str().is_empty() {
            base.push(".");
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(format!(
                "more than {MAX_SEGMENTS} components after the first wildcard"
            ));
        }
        let any_dirs = segments
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Segment::AnyDirs))
            .fold(0, |mask, (i, _)| mask | 1 << i);
        Ok(Self {
            text: text.to_string(),
            base,
            segments,
            any_dirs,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has no wildcard: it names one path.
    pub fn is_literal(&self) -> bool {
        self.segments.is_empty()
    }

    /// Lists every existing path the pattern matches, sorted by component. `**` does not
    /// follow symlinked directories (no loops); named components do.
    pub fn expand(&self) -> Expansion {
        let mut paths = Vec::new();
        let errors = self.expand_each(&mut |path, _| paths.push(path.to_path_buf()));
        paths.sort_unstable();
        Expansion { paths, errors }
    }

    /// Hands every existing path the pattern matches to `visit`, each once, with its
    /// directory entry when a listing found it (`None`: the base path, not looked at): its
    /// type is known then, and its metadata is one name away. A directory's matches come in
    /// its listing's order, which holds while it is unchanged; the directories below it
    /// follow, in name order. No list of every match is built, and each directory is listed
    /// once however many segments apply to it. Returns the directories that could not be
    /// listed.
    pub fn expand_each(&self, visit: &mut dyn FnMut(&Path, Option<&fs::DirEntry>)) -> Vec<String> {
        let mut errors = Vec::new();
        let start = self.close(1);
        if self.is_literal() || start & self.done() != 0 {
            // A plain path, or `base/**` matching zero directories: the base itself.
            visit(&self.base, None);
        }
        if self.is_literal() {
            return errors;
        }
        let mut walk = Walk {
            visited: HashSet::new(),
            errors: &mut errors,
            visit,
            // Relative to the working directory: names without a leading `./`.
            path: match self.base == Path::new(".") {
                true => PathBuf::new(),
                false => self.base.clone(),
            },
            name: Vec::new(),
            lists: Vec::new(),
        };
        self.walk(&mut walk, start, 0);
        errors
    }

    /// The state "every segment consumed" in a set of states (bit `i`: segment `i` applies
    /// next).
    fn done(&self) -> u64 {
        1 << self.segments.len()
    }

    /// Adds to `states` the segments that `**` lets apply without consuming a directory.
    fn close(&self, mut states: u64) -> u64 {
        loop {
            let next = states | ((states & self.any_dirs) << 1);
            if next == states {
                return states;
            }
            states = next;
        }
    }

    /// Lists `walk.path` once and applies every segment in `states` (closed under `**`) to
    /// its entries, then descends into the directories they reach, in name order.
    fn walk(&self, walk: &mut Walk<'_>, states: u64, depth: usize) {
        let mut states = states & !self.done();
        if states == 0 || depth > MAX_DEPTH {
            return;
        }
        let dir = match walk.path.as_os_str().is_empty() {
            true => Path::new("."),
            false => walk.path.as_path(),
        };
        // Each (directory, segment) pair is visited once, whatever the route to it.
        if let Ok(meta) = fs::metadata(dir) {
            for i in 0..self.segments.len() {
                if states & (1 << i) != 0 && !walk.visited.insert((meta.dev(), meta.ino(), i)) {
                    states &= !(1 << i);
                }
            }
            if states == 0 {
                return;
            }
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                if depth > 0 || err.kind() != std::io::ErrorKind::NotFound {
                    walk.errors
                        .push(format!("list {}: {}", dir.display(), why(&err)));
                }
                return;
            }
        };
        // Matches are handed on as the listing finds them, in its order (stable while the
        // directory is unchanged), and each entry is let go at once; the directories to
        // descend into are kept and walked after, in name order, one listing open at a time.
        let mut below = walk.lists.pop().unwrap_or_default();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let file_type = entry.file_type().ok();
            // States reached through `**` (real directories only are descended) and
            // through a named component (symlinked directories too).
            let through_any = states & self.any_dirs;
            let mut through_name = 0u64;
            let mut text_ready = false;
            for (i, segment) in self.segments.iter().enumerate() {
                let Segment::Name(tokens) = segment else {
                    continue;
                };
                if states & (1 << i) == 0 {
                    continue;
                }
                if !text_ready {
                    walk.name.clear();
                    walk.name.extend(name.to_string_lossy().chars());
                    text_ready = true;
                }
                if matches(tokens, &walk.name) {
                    through_name |= 1 << (i + 1);
                }
            }
            if through_any | through_name == 0 {
                continue;
            }
            let reached = self.close(through_any | through_name);
            walk.path.push(&name);
            if reached & self.done() != 0 {
                (walk.visit)(&walk.path, Some(&entry));
            }
            let real_dir = file_type.is_some_and(|t| t.is_dir());
            let symlink = file_type.is_some_and(|t| t.is_symlink());
            let descend = if real_dir {
                reached
            } else if symlink && through_name & !self.done() != 0 && is_dir(&walk.path) {
                self.close(through_name)
            } else {
                0
            };
            walk.path.pop();
            if descend & !self.done() != 0 {
                let start = below.names.len();
                below.names.extend_from_slice(name.as_bytes());
                below.dirs.push((start..below.names.len(), descend));
            }
        }
        let Below { names, dirs } = &mut below;
        dirs.sort_unstable_by(|a, b| names[a.0.clone()].cmp(&names[b.0.clone()]));
        for (span, descend) in dirs.drain(..) {
            walk.path.push(OsStr::from_bytes(&names[span]));
            self.walk(walk, descend, depth + 1);
            walk.path.pop();
        }
        below.names.clear();
        walk.lists.push(below);
    }
}

/// The state of one expansion: where it is, what it saw, where matches go.
struct Walk<'a> {
    visited: HashSet<(u64, u64, usize)>,
    errors: &'a mut Vec<String>,
    visit: &'a mut dyn FnMut(&Path, Option<&fs::DirEntry>),
    /// The directory being listed, as the pattern reaches it (empty: the working directory).
    path: PathBuf,
    /// An entry's name as characters, for matching (one buffer for the whole walk).
    name: Vec<char>,
    /// Emptied lists of the directories to descend into, one for each level being walked:
    /// kept rather than made again for every directory.
    lists: Vec<Below>,
}

/// The directories below one being listed that the walk descends into, with the states
/// that reach them: their names in one buffer, each at its place.
#[derive(Default)]
struct Below {
    names: Vec<u8>,
    dirs: Vec<(Range<usize>, u64)>,
}

fn is_dir(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_dir())
}

fn literal_char(token: &Token) -> char {
    match token {
        Token::Char(c) => *c,
        _ => '?',
    }
}

fn tokenize(part: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = part.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' => {
                if tokens.last() == Some(&Token::Star) {
                    continue;
                }
                Token::Star
            }
            '?' => Token::AnyChar,
            '\\' => Token::Char(chars.next().ok_or("trailing backslash")?),
            '[' => {
                let mut negated = false;
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let c = chars.next().ok_or("unterminated [")?;
                    match c {
                        '!' | '^' if first && !negated => {
                            negated = true;
                            continue;
                        }
                        ']' if !first => break,
                        _ => {}
                    }
                    first = false;
                    let lo = if c == '\\' {
                        chars.next().ok_or("unterminated [")?
                    } else {
                        c
                    };
                    let mut ahead = chars.clone();
                    if ahead.next() == Some('-') && ahead.clone().next().is_some_and(|c| c != ']') {
                        chars.next();
                        let mut hi = chars.next().ok_or("unterminated [")?;
                        if hi == '\\' {
                            hi = chars.next().ok_or("unterminated [")?;
                        }
                        if hi < lo {
                            return Err(format!("inverted range {lo}-{hi}"));
                        }
                        ranges.push((lo, hi));
                    } else {
                        ranges.push((lo, lo));
                    }
                }
                Token::Class { negated, ranges }
            }
            other => Token::Char(other),
        });
    }
    Ok(tokens)
}

/// Whether the one-component pattern `part` (no `/`) matches the name `name`.
pub fn component_matches(part: &str, name: &str) -> Result<bool, String> {
    let name: Vec<char> = name.chars().collect();
    Ok(matches(&tokenize(part)?, &name))
}

/// Matches one path component; `*` and `?` never match `/` (components have none).
fn matches(tokens: &[Token], name: &[char]) -> bool {
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t, n));
                t += 1;
                continue;
            }
            Some(Token::AnyChar) => true,
            Some(Token::Char(c)) => *c == name[n],
            Some(Token::Class { negated, ranges }) => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&name[n])) != *negated
            }
            None => false,
        };
        if step {
            t += 1;
            n += 1;
        } else if let Some((st, sn)) = star {
            t = st + 1;
            n = sn + 1;
            star = Some((st, sn + 1));
        } else {
            return false;
        }
    }
    tokens[t..].iter().all(|t| *t == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        component_matches(pattern, name).unwrap()
    }

    #[test]
    fn component_matching() {
        assert!(m("*.pem", "a.pem"));
        assert!(m("*.pem", ".pem"));
        assert!(!m("*.pem", "a.pem.bak"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b", "xxaxxbxc"));
        assert!(m(r"\*", "*"));
        assert!(m("[]]", "]"));
        assert!(m("é*", "été"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "toto[", "a/[b", "[z-a]", "x\\"] {
            assert!(Pattern::new(bad).is_err(), "{bad}");
        }
        // An expansion's states are 64 bits: 63 components after the first wildcard at most.
        assert!(Pattern::new(&format!("/etc{}", "/*".repeat(63))).is_ok());
        assert!(Pattern::new(&format!("/etc{}", "/*".repeat(64))).is_err());
    }

    #[test]
    fn literal_prefix_is_the_base() {
        let p = Pattern::new("/etc/ssl/*/x.pem").unwrap();
        assert_eq!(p.base, PathBuf::from("/etc/ssl"));
        assert_eq!(p.segments.len(), 2);
        assert!(Pattern::new("/etc/ssl/certs").unwrap().is_literal());
        assert_eq!(Pattern::new("*.pem").unwrap().base, PathBuf::from("."));
    }

    #[test]
    fn expansion_over_a_tree_with_a_loop() {
        let dir = std::env::temp_dir().join(format!("glob-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a/b/c")).unwrap();
        for f in ["x.pem", "a/y.pem", "a/b/c/z.pem", "a/b/n.txt"] {
            fs::write(dir.join(f), "").unwrap();
        }
        std::os::unix::fs::symlink(&dir, dir.join("a/b/loop")).unwrap();
        let root = dir.display();
        let got = Pattern::new(&format!("{root}/**/*.pem")).unwrap().expand();
        let rel: Vec<_> = got
            .paths
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(rel, ["a/b/c/z.pem", "a/y.pem", "x.pem"]);
        let dirs = Pattern::new(&format!("{root}/a/*")).unwrap().expand();
        assert_eq!(dirs.paths.len(), 2, "a/y.pem and a/b");
        let none = Pattern::new(&format!("{root}/nope/*.pem"))
            .unwrap()
            .expand();
        assert!(none.paths.is_empty() && none.errors.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn expansion_is_sorted_by_component_and_lists_each_directory_once() {
        let dir = std::env::temp_dir().join(format!("glob-order-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a/b/c")).unwrap();
        fs::create_dir_all(dir.join("a.b")).unwrap();
        for f in ["x.pem", "a/y.pem", "a/b/c/z.pem", "a/b/n.txt", "a.b/w.pem"] {
            fs::write(dir.join(f), "").unwrap();
        }
        std::os::unix::fs::symlink(&dir, dir.join("a/b/loop")).unwrap();
        let rel = |pattern: &str| -> Vec<String> {
            let got = Pattern::new(&format!("{}/{pattern}", dir.display()))
                .unwrap()
                .expand();
            assert!(got.errors.is_empty(), "{:?}", got.errors);
            got.paths
                .iter()
                .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
                .collect()
        };
        // "a/..." sorts before "a.b" by component, though '/' > '.' as bytes.
        assert_eq!(
            rel("**/*.pem"),
            ["a/b/c/z.pem", "a/y.pem", "a.b/w.pem", "x.pem"]
        );
        // `**` last: the base itself and everything below, symlinks listed, not followed.
        assert_eq!(
            rel("a/**"),
            [
                "a",
                "a/b",
                "a/b/c",
                "a/b/c/z.pem",
                "a/b/loop",
                "a/b/n.txt",
                "a/y.pem"
            ]
        );
        // A named component follows a symlinked directory; `**/**` matches each file once.
        assert_eq!(rel("a/*/loop/*.pem"), ["a/b/loop/x.pem"]);
        assert_eq!(rel("a/**/**/*.pem"), ["a/b/c/z.pem", "a/y.pem"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
