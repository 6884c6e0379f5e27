//! The embedded store of the CLI: a directory next to the manifest (or `--state DIR`)
//! holding each migration's status and the copy engine's per-folder caches.
//!
//! Every write is crash-safe: the new content goes to a temporary file in the same
//! directory, is flushed to disk, and replaces the old file by rename, so a reader (or a
//! restart after SIGKILL) sees either the old or the new content, never a torn one (the
//! record of an append in flight skips the flush: it is written twice a batch). The
//! stored data is only a cache of what the servers say; losing it costs time, not mail.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Serialize, de::DeserializeOwned};

use crate::imap::cache::{CacheHead, FolderCache, FolderCacheKey};
pub use crate::imap::cache::{CacheStore, NoCache};
use crate::imap::in_flight::InFlight;
use crate::imap::progress::{CopyProgress, ProgressLine};
use crate::imap::uid_map::UidMap;
use crate::spec::MailMigrationStatus;

/// Where a migration's status lives between passes: a file in the state directory for the
/// CLI, the resource's status subresource for the controller (which reads it from the object
/// and writes it back with server-side apply, holding it in a [`MemoryStatus`] meanwhile).
pub trait StatusStore: Send + Sync {
    /// The stored status, or the empty status of a migration never run.
    fn load_status(&self) -> Result<MailMigrationStatus>;
    fn save_status(&self, status: &MailMigrationStatus) -> Result<()>;
}

impl StatusStore for StateDir {
    fn load_status(&self) -> Result<MailMigrationStatus> {
        StateDir::load_status(self)
    }

    fn save_status(&self, status: &MailMigrationStatus) -> Result<()> {
        StateDir::save_status(self, status)
    }
}

/// A status held in memory, starting from a given one (the controller's: the resource's
/// `.status`).
#[derive(Debug, Default)]
pub struct MemoryStatus(std::sync::Mutex<MailMigrationStatus>);

impl MemoryStatus {
    pub fn new(status: MailMigrationStatus) -> Self {
        MemoryStatus(std::sync::Mutex::new(status))
    }

    /// The status last saved (or the initial one).
    pub fn get(&self) -> MailMigrationStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl StatusStore for MemoryStatus {
    fn load_status(&self) -> Result<MailMigrationStatus> {
        Ok(self.get())
    }

    fn save_status(&self, status: &MailMigrationStatus) -> Result<()> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = status.clone();
        Ok(())
    }
}

/// The characters the destination refused in folder names, as one JSON string.
const REFUSED_CHARACTERS: &str = "destination-refuses.json";
/// The daily budgets' records (`limits.bytesPerDay`): what was read and written when.
const BUDGETS: &str = "budgets.json";

/// One migration's state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state of migration `name`: `DIR/<name>/` with `--state DIR`, else
    /// `.mailshift/<name>/` next to the manifest.
    pub fn for_migration(manifest: &Path, state: Option<&Path>, name: &str) -> Self {
        let base = match state {
            Some(dir) => dir.to_path_buf(),
            None => manifest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join(".mailshift"),
        };
        StateDir {
            root: base.join(sanitize(name)),
        }
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The stored status, or the empty status of a migration never run.
    pub fn load_status(&self) -> Result<MailMigrationStatus> {
        Ok(self.load_json("status.json")?.unwrap_or_default())
    }

    pub fn save_status(&self, status: &MailMigrationStatus) -> Result<()> {
        self.save_json("status.json", status)
    }

    /// A JSON document of this state directory, if it was ever written.
    pub fn load_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        read_json(&self.root.join(name))
    }

    /// Replace a JSON document of this state directory, crash-safely.
    pub fn save_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        write_json(&self.root.join(name), value)
    }

    fn source_uids_path(&self, key: &FolderCacheKey) -> PathBuf {
        self.folder_file("source-uids", key)
    }

    fn cache_path(&self, key: &FolderCacheKey) -> PathBuf {
        self.folder_file("cache", key)
    }

    fn in_flight_path(&self, key: &FolderCacheKey) -> PathBuf {
        self.folder_file("in-flight", key)
    }

    fn progress_path(&self, key: &FolderCacheKey) -> PathBuf {
        self.folder_file("windows", key)
    }

    /// `DIR/<kind>/<mailbox>/<folder>.json`.
    fn folder_file(&self, kind: &str, key: &FolderCacheKey) -> PathBuf {
        self.root
            .join(kind)
            .join(sanitize(&key.mailbox))
            .join(format!("{}.json", sanitize(&key.source_folder)))
    }
}

/// A folder's cache file: its [`CacheHead`] on the first line, the whole cache (head
/// included: one parse, not two) on the second. A file of one line is an earlier version's,
/// the whole cache only.
impl CacheStore for StateDir {
    fn load(&self, key: &FolderCacheKey) -> Result<Option<FolderCache>> {
        // A cache that cannot be read is dropped, not fatal: the next pass is a full
        // comparison, which is always correct.
        let read = || -> Result<Option<FolderCache>> {
            use std::io::{BufRead, Seek};
            let Some(file) = open_existing(&self.cache_path(key))? else {
                return Ok(None);
            };
            // Parsed as it is read: a cache of a million pairs is tens of megabytes of
            // JSON, which held whole beside the pairs parsed from it would double the peak.
            let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
            let mut head = Vec::new();
            reader.read_until(b'\n', &mut head)?;
            if !head.ends_with(b"\n") {
                // An earlier version's file: the whole cache on one line.
                reader.rewind()?;
            }
            Ok(Some(serde_json::from_reader(reader)?))
        };
        match read() {
            Ok(c) => Ok(c),
            Err(e) => {
                tracing::warn!(cache = %key, error = %e, "ignoring unreadable cache");
                Ok(None)
            }
        }
    }

    fn load_head(&self, key: &FolderCacheKey) -> Result<Option<CacheHead>> {
        use std::io::BufRead;
        let Some(file) = open_existing(&self.cache_path(key))? else {
            return Ok(None);
        };
        let mut reader = std::io::BufReader::new(file);
        let mut first = Vec::new();
        reader.read_until(b'\n', &mut first)?;
        let head = if first.ends_with(b"\n") {
            serde_json::from_slice(&first)
        } else {
            serde_json::from_slice::<FolderCache>(&first).map(|c| c.head())
        };
        match head {
            Ok(h) => Ok(Some(h)),
            Err(e) => {
                tracing::warn!(cache = %key, error = %e, "ignoring unreadable cache");
                Ok(None)
            }
        }
    }

    fn save(&self, key: &FolderCacheKey, cache: &FolderCache) -> Result<()> {
        // Streamed through a buffer: a folder's cache holds a pair per message, and its JSON
        // in memory beside the pairs would be as large again.
        write_with(&self.cache_path(key), |file| {
            let mut w = std::io::BufWriter::new(file);
            serde_json::to_writer(&mut w, &cache.head())?;
            w.write_all(b"\n")?;
            serde_json::to_writer(&mut w, cache)?;
            w.flush()?;
            Ok(())
        })
    }

    fn remembers_mailbox(&self, mailbox: &str) -> bool {
        let key = FolderCacheKey::new(mailbox, "");
        let dir = self.root.join("cache").join(sanitize(&key.mailbox));
        fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
    }

    fn load_refused_characters(&self) -> Result<Vec<char>> {
        let text: Option<String> = read_json(&self.root.join(REFUSED_CHARACTERS))?;
        Ok(text.map(|t| t.chars().collect()).unwrap_or_default())
    }

    fn save_refused_characters(&self, chars: &[char]) -> Result<()> {
        write_json(
            &self.root.join(REFUSED_CHARACTERS),
            &chars.iter().collect::<String>(),
        )
    }

    fn load_usage(&self) -> Result<Option<crate::limits::Usage>> {
        read_json(&self.root.join(BUDGETS))
    }

    fn save_usage(&self, usage: &crate::limits::Usage) -> Result<()> {
        write_json(&self.root.join(BUDGETS), usage)
    }

    fn load_source_uids(&self, key: &FolderCacheKey) -> Result<Option<UidMap>> {
        // A map that cannot be read is replaced by a new one under a new UIDVALIDITY,
        // which the engine meets with a full comparison: time, never mail.
        match read_json(&self.source_uids_path(key)) {
            Ok(m) => Ok(m),
            Err(e) => {
                tracing::warn!(folder = %key, error = %e, "ignoring unreadable source UIDs");
                Ok(None)
            }
        }
    }

    fn save_source_uids(&self, key: &FolderCacheKey, map: &UidMap) -> Result<()> {
        write_json(&self.source_uids_path(key), map)
    }

    fn load_progress(&self, key: &FolderCacheKey) -> Result<Option<CopyProgress>> {
        use std::io::BufRead;
        let path = self.progress_path(key);
        let Some(file) = open_existing(&path)? else {
            return Ok(None);
        };
        // A line per window, each flushed before the next: a crash can tear only the last
        // one, which is left out (its window's copies are found on the destination
        // instead) and cut off, so that the next line is not written after it. A line
        // that cannot be read before others is damage: no record, a full comparison.
        let mut lines = Vec::new();
        let mut good_end = 0u64;
        let mut torn = None;
        let mut reader = std::io::BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            if torn.is_some() {
                tracing::warn!(file = %path.display(), "a damaged record of an interrupted copy; comparing in full");
                return Ok(None);
            }
            match serde_json::from_slice::<ProgressLine>(&line) {
                Ok(l) if line.ends_with(b"\n") => {
                    lines.push(l);
                    good_end += n as u64;
                }
                _ => torn = Some(good_end),
            }
        }
        if let Some(end) = torn {
            fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(end))
                .with_context(|| format!("cutting the torn end off {}", path.display()))?;
        }
        Ok(CopyProgress::of(lines))
    }

    fn save_progress(&self, key: &FolderCacheKey, line: Option<&ProgressLine>) -> Result<()> {
        let path = self.progress_path(key);
        match line {
            Some(l @ ProgressLine::Started(_)) => {
                let mut text = serde_json::to_vec(l)?;
                text.push(b'\n');
                write_file(&path, &text)
            }
            Some(l) => {
                let mut file = fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("adding to {}", path.display()))?;
                let mut w = std::io::BufWriter::new(&mut file);
                serde_json::to_writer(&mut w, l)?;
                w.write_all(b"\n")?;
                w.flush()?;
                drop(w);
                file.sync_data()
                    .with_context(|| format!("adding to {}", path.display()))
            }
            None => remove(&path),
        }
    }

    fn load_in_flight(&self, key: &FolderCacheKey) -> Result<Option<InFlight>> {
        // Only a crash of the machine tears one (it is not flushed), and that ended the
        // connection too: as good as none.
        match read_json(&self.in_flight_path(key)) {
            Ok(r) => Ok(r),
            Err(e) => {
                tracing::warn!(folder = %key, error = %e, "unreadable record of an append in flight; dropped");
                Ok(None)
            }
        }
    }

    fn save_in_flight(&self, key: &FolderCacheKey, batch: Option<&InFlight>) -> Result<()> {
        let path = self.in_flight_path(key);
        match batch {
            // Not flushed to disk: twice a batch, and what it guards against (a killed
            // process, a cut connection) leaves the page cache alone.
            Some(b) => write_unsynced(&path, &serde_json::to_vec(b)?),
            None => remove(&path),
        }
    }
}

/// A file name for any string: safe characters kept, the rest %-escaped, so that distinct
/// folder names never share a file.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'@' | b'+' | b'=') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match read_file(path)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        None => Ok(None),
    }
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Creates `dir` (and missing parents) readable by its owner only: state files name every
/// mailbox and folder of a migration. A directory left open by an earlier version is
/// closed too.
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let meta = fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("closing {} to other users", dir.display()))?;
    }
    Ok(())
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    // One write: serde_json writes token by token, and an unbuffered file turns that into
    // a syscall per token (measured: 73,000 writes for one 147 KB cache).
    write_file(path, &serde_json::to_vec(value)?)
}

/// Write-to-temporary, fsync, rename, fsync the directory.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |file| Ok(file.write_all(bytes)?))
}

/// Removes `path`, if it is there.
fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Write-to-temporary and rename, without waiting for the disk: never torn by a killed
/// process, cheap enough to do per batch.
fn write_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    replace(path, false, |file| Ok(file.write_all(bytes)?))
}

/// [`write_file`] of what `write` writes to the temporary file.
fn write_with(path: &Path, write: impl FnOnce(&mut fs::File) -> Result<()>) -> Result<()> {
    replace(path, true, write)
}

/// Writes `path` anew through a temporary file renamed over it; `durable`: flushed to disk
/// first, and the directory after.
fn replace(
    path: &Path,
    durable: bool,
    write: impl FnOnce(&mut fs::File) -> Result<()>,
) -> Result<()> {
    let dir = path.parent().context("a state file has a directory")?;
    private_dir(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    write(tmp.as_file_mut())?;
    tmp.flush()?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    if durable && let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The file at `path` opened for reading, `None` if there is none.
fn open_existing(path: &Path) -> Result<Option<fs::File>> {
    match fs::File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::at(dir.path().join("base").join("m"));
        s.save_status(&MailMigrationStatus::default()).unwrap();
        for d in [dir.path().join("base"), dir.path().join("base/m")] {
            let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        // One an older version left open is closed at the next write.
        fs::set_permissions(s.root(), fs::Permissions::from_mode(0o755)).unwrap();
        s.save_status(&MailMigrationStatus::default()).unwrap();
        let mode = fs::metadata(s.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let file = fs::metadata(s.root().join("status.json")).unwrap();
        assert_eq!(file.permissions().mode() & 0o077, 0);
    }

    #[test]
    fn names_map_to_distinct_safe_file_names() {
        assert_eq!(
            sanitize("alice@example.com"),
            "alice@example.com".replace('.', "%2E")
        );
        assert_ne!(sanitize("a/b"), sanitize("a.b"));
        assert_ne!(sanitize("Sent"), sanitize("sent"));
        assert!(!sanitize("../../etc").contains('/'));
        assert_eq!(sanitize("Hộp"), "H%E1%BB%99p");
    }

    #[test]
    fn status_round_trips_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::at(dir.path().join("m"));
        assert_eq!(s.load_status().unwrap(), MailMigrationStatus::default());
        let st = MailMigrationStatus {
            next_step: Some("copy".into()),
            ..Default::default()
        };
        s.save_status(&st).unwrap();
        assert_eq!(s.load_status().unwrap(), st);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(s.root()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    fn a_cache(pairs: u32) -> FolderCache {
        use crate::imap::cache::{CACHE_VERSION, FolderStatus};
        use crate::imap::diff::{Flag, FlagSet, KnownPair};
        let st = |uidnext| FolderStatus {
            uidvalidity: 7,
            uidnext,
            messages: pairs,
            highestmodseq: Some(40),
        };
        FolderCache {
            version: CACHE_VERSION,
            dest_folder: "Archive".into(),
            source: st(pairs + 1),
            dest: st(pairs + 5),
            pairs: (1..=pairs)
                .map(|u| {
                    let flags: FlagSet = [Flag::Seen].into_iter().collect();
                    KnownPair {
                        source_uid: u,
                        dest_uid: u + 4,
                        flags,
                    }
                })
                .collect(),
            unpaired_dest: Vec::new(),
            refused: Default::default(),
            pending: Vec::new(),
            source_tally: Default::default(),
            dest_tally: Default::default(),
        }
    }

    #[test]
    fn a_cache_head_is_read_without_the_pairs_and_both_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::at(dir.path().join("m"));
        let key = FolderCacheKey::new("alice@example.com", "INBOX");
        assert_eq!(s.load_head(&key).unwrap(), None);
        assert!(!s.remembers_mailbox("alice@example.com"));
        let cache = a_cache(3000);
        s.save(&key, &cache).unwrap();
        assert!(s.remembers_mailbox("Alice@Example.com"));
        assert!(!s.remembers_mailbox("bob@example.com"));
        let head = s.load_head(&key).unwrap().unwrap();
        assert_eq!(head, cache.head());
        assert_eq!(head.pairs, 3000);
        assert_eq!(s.load(&key).unwrap(), Some(cache));
        // The head is the first line, a small one.
        let bytes = fs::read(s.cache_path(&key)).unwrap();
        let first = bytes.iter().position(|&b| b == b'\n').unwrap();
        assert!(first < 400, "{first} bytes");
    }

    #[test]
    fn a_cache_written_before_heads_existed_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::at(dir.path().join("m"));
        let key = FolderCacheKey::new("alice@example.com", "INBOX");
        let cache = a_cache(10);
        write_json(&s.cache_path(&key), &cache).unwrap();
        assert_eq!(s.load_head(&key).unwrap(), Some(cache.head()));
        assert_eq!(s.load(&key).unwrap(), Some(cache));
        // Unreadable: no cache (a full comparison), not an error.
        fs::write(s.cache_path(&key), b"{\"version\":1,\n{{").unwrap();
        assert_eq!(s.load_head(&key).unwrap(), None);
        assert_eq!(s.load(&key).unwrap(), None);
    }

    #[test]
    fn state_lives_next_to_the_manifest_by_default() {
        let s = StateDir::for_migration(Path::new("migrations/example.yaml"), None, "example-com");
        assert_eq!(s.root(), Path::new("migrations/.mailshift/example-com"));
        let s = StateDir::for_migration(Path::new("m.yaml"), Some(Path::new("/var/lib/ms")), "x");
        assert_eq!(s.root(), Path::new("/var/lib/ms/x"));
    }

    #[test]
    fn a_copy_record_is_read_back_its_torn_end_cut_off_and_a_damaged_one_dropped() {
        use crate::imap::cache::FolderStatus;
        use crate::imap::diff::Tally;
        use crate::imap::progress::{Started, WindowDone};
        let dir = tempfile::tempdir().unwrap();
        let store = StateDir::at(dir.path());
        let key = FolderCacheKey::new("a@example.com", "INBOX");
        let status = |uidnext| FolderStatus::new(5, uidnext, uidnext - 1);
        let window = |next, dest_next| {
            ProgressLine::Window(WindowDone {
                next,
                dest_next,
                copied: Default::default(),
                source: Tally::default(),
                dest: Tally::default(),
                refused: Vec::new(),
                missing: Vec::new(),
            })
        };
        assert_eq!(store.load_progress(&key).unwrap(), None);
        let started = ProgressLine::Started(Started {
            dest_folder: "INBOX".into(),
            source: status(301),
            dest: status(1),
            span: 100,
            last: 300,
        });
        store.save_progress(&key, Some(&started)).unwrap();
        store
            .save_progress(&key, Some(&window(Some(101), 101)))
            .unwrap();
        store
            .save_progress(&key, Some(&window(Some(201), 201)))
            .unwrap();
        let p = store.load_progress(&key).unwrap().unwrap();
        assert_eq!((p.next, p.dest_next), (Some(201), 201));

        // A crash halfway through the next line: read up to it, and the next line written
        // after the cut is read too.
        let path = store.progress_path(&key);
        let mut text = fs::read(&path).unwrap();
        text.extend_from_slice(br#"{"window":{"next":30"#);
        fs::write(&path, &text).unwrap();
        assert_eq!(store.load_progress(&key).unwrap().unwrap().next, Some(201));
        store.save_progress(&key, Some(&window(None, 290))).unwrap();
        let p = store.load_progress(&key).unwrap().unwrap();
        assert_eq!((p.next, p.dest_next), (None, 290));

        // Damage before the end: no record at all (a full comparison).
        let text = fs::read_to_string(&path).unwrap();
        let damaged = text.replacen("\"window\"", "\"wind", 1);
        fs::write(&path, damaged).unwrap();
        assert_eq!(store.load_progress(&key).unwrap(), None);

        store.save_progress(&key, None).unwrap();
        assert!(!path.exists());
        store.save_progress(&key, None).unwrap();
    }
}
