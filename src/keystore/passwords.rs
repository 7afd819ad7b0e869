//! Keystore passwords kept in files (`--keystore-password-file`): read at start, read again
//! when a file changes, never logged.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::files::FileKey;
use crate::fsio::read_capped;

/// A password file larger than this is refused: a password is a line, not a document.
const MAX_PASSWORD_FILE: usize = 64 * 1024;

/// The passwords of some files, each file's whole content but its trailing line ending, in
/// the order given.
#[derive(Default)]
pub struct PasswordFiles {
    paths: Vec<PathBuf>,
    state: Mutex<State>,
}

/// Shows the paths, never the passwords.
impl std::fmt::Debug for PasswordFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordFiles")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// Each file's key when it was last read.
    keys: Vec<Option<FileKey>>,
    passwords: Arc<[String]>,
}

impl PasswordFiles {
    /// Reads every file once; the first that cannot be read is an error naming it.
    pub fn load(paths: Vec<PathBuf>) -> Result<Arc<Self>, String> {
        let mut keys = Vec::with_capacity(paths.len());
        let mut passwords = Vec::with_capacity(paths.len());
        for path in &paths {
            keys.push(FileKey::of(path).ok());
            passwords.push(read_password(path)?);
        }
        Ok(Arc::new(Self {
            paths,
            state: Mutex::new(State {
                keys,
                passwords: passwords.into(),
            }),
        }))
    }

    /// The passwords now: each file whose key changed is read again. One that cannot be
    /// read any more keeps its last password, with a warning: a keystore that opened does
    /// not turn into a wrong-password error because its password file is half-written.
    /// The same `Arc` is returned while nothing changed.
    pub fn current(&self) -> Arc<[String]> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed: Option<Vec<String>> = None;
        for (i, path) in self.paths.iter().enumerate() {
            let key = FileKey::of(path).ok();
            if key.is_some() && key == state.keys[i] {
                continue;
            }
            match read_password(path) {
                // Empty: half-written (truncated, not yet filled), or emptied on purpose;
                // the empty password is tried anyway, so keeping the last one loses
                // nothing and does not fail every keystore for a refresh.
                Ok(password) if password.is_empty() && !state.passwords[i].is_empty() => {
                    log::debug!(
                        "{} is empty: keeping the password read before",
                        path.display()
                    );
                }
                Ok(password) => {
                    let passwords = changed.get_or_insert_with(|| state.passwords.to_vec());
                    if passwords[i] != password {
                        log::info!("keystore password file {} changed", path.display());
                        passwords[i] = password;
                    }
                    state.keys[i] = key;
                }
                Err(why) if state.keys[i].is_some() => {
                    log::warn!("{why}: keeping the password read before");
                    state.keys[i] = None;
                }
                // Still unreadable: warned already.
                Err(_) => {}
            }
        }
        if let Some(passwords) = changed {
            if *passwords != *state.passwords {
                state.passwords = passwords.into();
            }
        }
        Arc::clone(&state.passwords)
    }
}

/// The password a file or Secret value holds: its UTF-8 text without trailing line
/// endings (`echo` adds one); `None` when it is not UTF-8.
pub fn password_of(bytes: Vec<u8>) -> Option<String> {
    let text = String::from_utf8(bytes).ok()?;
    Some(text.trim_end_matches(['\r', '\n']).to_string())
}

/// One password file's password: its text without trailing line endings.
fn read_password(path: &std::path::Path) -> Result<String, String> {
    let data = read_capped(path)?;
    if data.len() > MAX_PASSWORD_FILE {
        return Err(format!(
            "read {}: larger than a password file may be ({} KiB)",
            path.display(),
            MAX_PASSWORD_FILE >> 10
        ));
    }
    let text =
        String::from_utf8(data).map_err(|_| format!("read {}: not UTF-8 text", path.display()))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_is_read_again_when_it_changes_and_kept_when_it_breaks() {
        let dir = std::env::temp_dir().join(format!("passwords-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let one = dir.join("one");
        let two = dir.join("two");
        std::fs::write(&one, "first\r\n").unwrap();
        std::fs::write(&two, "sec ret\n\n").unwrap();
        let files = PasswordFiles::load(vec![one.clone(), two.clone()]).unwrap();
        let before = files.current();
        assert_eq!(&*before, ["first", "sec ret"]);
        assert!(
            Arc::ptr_eq(&before, &files.current()),
            "unchanged: the same"
        );
        std::fs::write(&one, "rotated").unwrap();
        assert_eq!(&*files.current(), ["rotated", "sec ret"]);
        std::fs::write(&one, "").unwrap();
        assert_eq!(&*files.current(), ["rotated", "sec ret"], "empty: kept");
        std::fs::remove_file(&two).unwrap();
        assert_eq!(&*files.current(), ["rotated", "sec ret"], "kept");
        std::fs::write(&two, [0xff, 0xfe]).unwrap();
        assert_eq!(&*files.current(), ["rotated", "sec ret"], "kept");
        std::fs::write(&two, "fixed").unwrap();
        assert_eq!(&*files.current(), ["rotated", "fixed"]);
        let missing = PasswordFiles::load(vec![dir.join("none")]).unwrap_err();
        assert!(missing.contains("none: no such file"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
