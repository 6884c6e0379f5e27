//! Reading files named in a manifest (secrets, `mailboxesFrom`, manifests themselves) with
//! a bound: a regular file of at most a given size. `/dev/zero` would be read until memory
//! runs out and a FIFO would block forever; both are refused before a byte is read.

use std::io::{self, Read};
use std::path::Path;

/// The text of the regular file at `path`, if it holds at most `limit` bytes of UTF-8.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    // Symbolic links are followed (Kubernetes mounts Secrets as links to regular files).
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a device, FIFO or directory is not read)",
        ));
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    // Opened only after the check: opening a FIFO blocks until a writer appears.
    read_limited(std::fs::File::open(path)?, limit, "the file")
}

/// At most `limit` bytes of UTF-8 from `reader` (standard input, a file that grew after it
/// was checked).
pub fn read_limited(reader: impl Read, limit: u64, what: &str) -> io::Result<String> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    String::from_utf8(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} is not UTF-8 text"),
        )
    })
}

fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {} KiB", limit >> 10),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_large_files_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_text(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");

        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // Returns at once: no writer is waited for.
        let e = read_text(&fifo, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        let e = read_text(&big, 1024).unwrap_err();
        assert!(e.to_string().contains("larger than 1 KiB"), "{e}");
        assert_eq!(read_text(&big, 4096).unwrap().len(), 2048);

        let e = read_limited(&[0xff, 0xfe][..], 10, "stdin").unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
