//! Glob patterns for `-f`, `-d` and `-k`: `*`, `?`, `[..]` and `**`, compiled once at start,
//! expanded against the filesystem on every refresh.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::fsio::why;

/// Directory depth below which `**` does not descend (a guard against pathological trees).
const MAX_DEPTH: usize = 64;

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    text: String,
    /// Leading components without wildcards.
    base: PathBuf,
    /// The remaining components; empty when the pattern is a plain path.
    segments: Vec<Segment>,
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
        Ok(Self {
            text: text.to_string(),
            base,
            segments,
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

    /// Lists every existing path the pattern matches. `**` does not follow symlinked
    /// directories (no loops); named components do.
    pub fn expand(&self) -> Expansion {
        let mut out = Expansion::default();
        if self.is_literal() {
            out.paths.push(self.base.clone());
            return out;
        }
        let mut visited = HashSet::new();
        self.walk(&self.base, 0, 0, &mut visited, &mut out);
        out.paths.sort();
        out.paths.dedup();
        out
    }

    fn walk(
        &self,
        dir: &Path,
        index: usize,
        depth: usize,
        visited: &mut HashSet<(u64, u64, usize)>,
        out: &mut Expansion,
    ) {
        let Some(segment) = self.segments.get(index) else {
            out.paths.push(dir.to_path_buf());
            return;
        };
        if depth > MAX_DEPTH {
            return;
        }
        // Each (directory, segment) pair is visited once, whatever the route to it.
        if let Ok(meta) = fs::metadata(dir) {
            if !visited.insert((meta.dev(), meta.ino(), index)) {
                return;
            }
        }
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                if index > 0 || depth > 0 || err.kind() != std::io::ErrorKind::NotFound {
                    out.errors
                        .push(format!("list {}: {}", dir.display(), why(&err)));
                }
                return;
            }
        };
        let mut children: Vec<(String, PathBuf, bool, bool)> = Vec::new();
        for entry in entries.flatten() {
            let path = join(dir, &entry.file_name());
            let file_type = entry.file_type().ok();
            let real_dir = file_type.is_some_and(|t| t.is_dir());
            let any_dir = real_dir
                || (file_type.is_some_and(|t| t.is_symlink())
                    && fs::metadata(&path).is_ok_and(|m| m.is_dir()));
            let name = entry.file_name().to_string_lossy().into_owned();
            children.push((name, path, real_dir, any_dir));
        }
        let last = index + 1 == self.segments.len();
        match segment {
            Segment::AnyDirs => {
                // Zero directories: the rest of the pattern applies here.
                self.walk(dir, index + 1, depth, visited, out);
                for (_, path, real_dir, _) in &children {
                    if last {
                        out.paths.push(path.clone());
                    }
                    if *real_dir {
                        self.walk(path, index, depth + 1, visited, out);
                    }
                }
            }
            Segment::Name(tokens) => {
                for (name, path, _, any_dir) in &children {
                    if !matches(tokens, name) {
                        continue;
                    }
                    if last {
                        out.paths.push(path.clone());
                    } else if *any_dir {
                        self.walk(path, index + 1, depth + 1, visited, out);
                    }
                }
            }
        }
    }
}

/// `dir/name`, without a leading `./` when the pattern was relative to the working directory.
fn join(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    if dir == Path::new(".") {
        PathBuf::from(name)
    } else {
        dir.join(name)
    }
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
    Ok(matches(&tokenize(part)?, name))
}

/// Matches one path component; `*` and `?` never match `/` (components have none).
fn matches(tokens: &[Token], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
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
}
