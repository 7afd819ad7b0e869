//! Shared helpers for reading configuration and certificate files: bounded reads that never
//! block on special files, YAML documents, and the wording of an I/O error's cause.

use std::fs::{self, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

/// Files larger than this are a read error and are never read whole.
pub const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024;

/// An I/O error's cause in the "what: where: why" style (`permission denied`).
pub fn why(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Reads a regular file of at most [`MAX_FILE_SIZE`] bytes. FIFOs, sockets and devices are
/// refused without blocking: the open is non-blocking and the type is checked on the handle.
/// Errors read "read PATH: why".
pub fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    read_limited(path).map_err(|why| format!("read {}: {why}", path.display()))
}

/// [`read_capped`] with errors that give only the cause.
pub fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    let meta = fs::metadata(path).map_err(|e| why(&e))?;
    check_regular(&meta)?;
    read_found(path, Vec::new()).map(|(data, _)| data)
}

/// [`read_limited`] for a path that a directory listing or a stat has just shown to be a
/// regular file: no stat of the path before opening it (the type and size are still checked
/// on the handle). Reads into `buffer` (emptied first: a caller may hand one back to be
/// reused) and returns it with the handle's metadata. Errors give only the cause.
pub fn read_found(path: &Path, buffer: Vec<u8>) -> Result<(Vec<u8>, Metadata), String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| why(&e))?;
    let meta = file.metadata().map_err(|e| why(&e))?;
    check_regular(&meta)?;
    let mut data = buffer;
    data.clear();
    data.reserve_exact(meta.len() as usize);
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(|e| why(&e))?;
    if data.len() as u64 > MAX_FILE_SIZE {
        return Err(format!("larger than the {} MiB limit", MAX_FILE_SIZE >> 20));
    }
    Ok((data, meta))
}

fn check_regular(meta: &Metadata) -> Result<(), String> {
    let t = meta.file_type();
    if t.is_file() {
        if meta.len() > MAX_FILE_SIZE {
            return Err(format!(
                "{} bytes, larger than the {} MiB limit",
                meta.len(),
                MAX_FILE_SIZE >> 20
            ));
        }
        return Ok(());
    }
    Err(if t.is_dir() {
        "is a directory"
    } else if t.is_fifo() {
        "is a FIFO, not a regular file"
    } else if t.is_socket() {
        "is a socket, not a regular file"
    } else {
        "is a device, not a regular file"
    }
    .to_string())
}

/// Reads a YAML file (at most 4 MiB) into its first document, which must be a mapping.
/// Errors give the cause only.
pub fn load_yaml(path: &Path) -> Result<Yaml, String> {
    parse_yaml(read_limited(path)?)
}

/// The first YAML document of `data`, which must be a mapping. Errors give the cause only.
pub fn parse_yaml(data: Vec<u8>) -> Result<Yaml, String> {
    let text = String::from_utf8(data).map_err(|_| "not UTF-8 text".to_string())?;
    let mut docs = YamlLoader::load_from_str(&text).map_err(|e| format!("invalid YAML: {e}"))?;
    if docs.is_empty() {
        return Err("empty document".to_string());
    }
    let doc = docs.swap_remove(0);
    match doc.as_hash() {
        Some(_) => Ok(doc),
        None => Err("the top level is not a mapping".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_read_like_prose() {
        let err = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(why(&err), "permission denied");
        let err = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(why(&err), "no such file or directory");
    }

    #[test]
    fn special_and_large_files_are_refused_without_reading() {
        assert!(read_capped(Path::new("/dev/zero"))
            .unwrap_err()
            .contains("device"));
        assert!(read_capped(Path::new("/"))
            .unwrap_err()
            .contains("directory"));
        use std::fs::File;
        let dir = std::env::temp_dir().join(format!("fsio-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big.pem");
        File::create(&big)
            .unwrap()
            .set_len(MAX_FILE_SIZE + 1)
            .unwrap();
        assert!(read_capped(&big).unwrap_err().contains("larger than"));
        assert!(read_found(&big, Vec::new())
            .unwrap_err()
            .contains("larger than"));
        // Opened without a stat first, a FIFO is still refused on the handle, not waited on.
        let fifo = dir.join("fifo.pem");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        assert!(read_found(&fifo, Vec::new()).unwrap_err().contains("FIFO"));
        // A buffer handed back holds the file alone, whatever it held before.
        let small = dir.join("small.pem");
        fs::write(&small, b"abc").unwrap();
        let (data, meta) = read_found(&small, b"left over from a longer file".to_vec()).unwrap();
        assert_eq!((data.as_slice(), meta.len()), (&b"abc"[..], 3));
        fs::remove_dir_all(&dir).unwrap();
    }
}
