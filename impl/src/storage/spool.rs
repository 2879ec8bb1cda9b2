//! [`SnapData`]: a serialized snapshot held in memory or left in a file (a recovered
//! snapshot, or a SNAP received from the leader), read back through [`SnapData::reader`] so
//! that whoever rebuilds the state from it never holds the serialized bytes whole; and
//! [`SnapSpool`]: a SNAP written to a temporary file in the data directory as its chunks
//! arrive (issue 12), in the snapshot file format, so that installing it is an fsync and a
//! rename.
//!
//! A spooled file is named `snapshot.<zxid>.recv-<n>.tmp`: recovery removes it as an
//! unfinished snapshot ([`super::SnapshotStore::open`]), and so does the last handle on a
//! received SNAP that was not installed (refused, or the connection lost).

use std::{
    fmt,
    fs::File,
    io::{self, Read, Write as _},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use tracing::{debug, warn};
use zab_spec::Zxid;

use super::{
    FileSystem, StdFs,
    format::{SNAP_HEADER_LEN, SNAP_PREFIX, TMP_SUFFIX, encode_snapshot_header_for},
};

/// A serialized snapshot: in memory, or in a file.
#[derive(Clone)]
pub enum SnapData {
    /// The bytes.
    Memory(Bytes),
    /// A range of a file.
    File(Arc<SnapFile>),
}

/// A snapshot's data left in a file (after a header of `offset` bytes).
pub struct SnapFile {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    offset: u64,
    len: u64,
    /// A received SNAP's temporary file: removed with the last handle unless installed.
    temp: bool,
    installed: AtomicBool,
}

impl SnapFile {
    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data's size in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there is no data.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the file is a temporary one (a SNAP received, not installed yet).
    #[must_use]
    pub fn is_temp(&self) -> bool {
        self.temp
    }

    /// The file was renamed into place: it is no longer removed with the last handle.
    pub(crate) fn mark_installed(&self) {
        self.installed.store(true, Ordering::SeqCst);
    }
}

impl Drop for SnapFile {
    fn drop(&mut self) {
        if self.temp && !self.installed.load(Ordering::SeqCst) {
            debug!(file = %self.path.display(), "removing a received SNAP that was not installed");
            if let Err(e) = self.fs.remove_file(&self.path) {
                if e.kind() != io::ErrorKind::NotFound {
                    warn!(file = %self.path.display(), "cannot remove a received SNAP: {e}");
                }
            }
        }
    }
}

impl SnapData {
    /// A snapshot whose data is the `len` bytes at `offset` of `path` (not a temporary file).
    #[must_use]
    pub fn in_file(fs: Arc<dyn FileSystem>, path: PathBuf, offset: u64, len: u64) -> SnapData {
        SnapData::File(Arc::new(SnapFile {
            fs,
            path,
            offset,
            len,
            temp: false,
            installed: AtomicBool::new(false),
        }))
    }

    /// The size of the serialized snapshot, in bytes.
    #[must_use]
    pub fn len(&self) -> u64 {
        match self {
            SnapData::Memory(b) => b.len() as u64,
            SnapData::File(f) => f.len,
        }
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the data from its start ([`SnapData::len`] bytes).
    ///
    /// # Errors
    /// The file cannot be opened or read up to the data.
    pub fn reader(&self) -> io::Result<Box<dyn Read + Send>> {
        match self {
            SnapData::Memory(b) => Ok(Box::new(io::Cursor::new(b.clone()))),
            SnapData::File(f) => {
                let mut r = f.fs.open_read(&f.path)?;
                let skipped = io::copy(&mut (&mut r).take(f.offset), &mut io::sink())?;
                if skipped != f.offset {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} is shorter than its header", f.path.display()),
                    ));
                }
                Ok(Box::new(r.take(f.len)))
            }
        }
    }

    /// The whole data in memory (a file is read).
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn to_bytes(&self) -> io::Result<Bytes> {
        match self {
            SnapData::Memory(b) => Ok(b.clone()),
            SnapData::File(f) => {
                let mut out = Vec::with_capacity(usize::try_from(f.len).unwrap_or(0));
                self.reader()?.read_to_end(&mut out)?;
                if out.len() as u64 != f.len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} ends early", f.path.display()),
                    ));
                }
                Ok(Bytes::from(out))
            }
        }
    }
}

impl From<Bytes> for SnapData {
    fn from(b: Bytes) -> SnapData {
        SnapData::Memory(b)
    }
}

impl From<Vec<u8>> for SnapData {
    fn from(v: Vec<u8>) -> SnapData {
        SnapData::Memory(Bytes::from(v))
    }
}

impl Default for SnapData {
    fn default() -> SnapData {
        SnapData::Memory(Bytes::new())
    }
}

impl PartialEq for SnapData {
    fn eq(&self, other: &SnapData) -> bool {
        match (self, other) {
            (SnapData::Memory(a), SnapData::Memory(b)) => a == b,
            (SnapData::File(a), SnapData::File(b)) => {
                a.path == b.path && a.offset == b.offset && a.len == b.len
            }
            _ => false,
        }
    }
}

impl Eq for SnapData {}

impl fmt::Debug for SnapData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapData::Memory(b) => write!(f, "SnapData::Memory({} bytes)", b.len()),
            SnapData::File(s) => write!(
                f,
                "SnapData::File({}, {} bytes at {})",
                s.path.display(),
                s.len,
                s.offset
            ),
        }
    }
}

/// Tells spooled files of one process apart (two SNAPs for one zxid may overlap: a refused
/// one still referenced while the next arrives).
static SPOOL_SEQ: AtomicU64 = AtomicU64::new(0);

/// A SNAP being written to a temporary file as its chunks arrive: the snapshot file's header
/// (zxid, the announced size and CRC-32C) first, then the data. Dropped unfinished, the file
/// is removed.
pub struct SnapSpool {
    file: Option<File>,
    path: PathBuf,
    len: u64,
    written: u64,
}

impl SnapSpool {
    /// Creates `<dir>/snapshot.<zxid>.recv-<n>.tmp` for a SNAP of `len` bytes whose data has
    /// the CRC-32C `crc` (what the SNAP header announced; the caller checks the bytes
    /// against it before [`SnapSpool::finish`]).
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn create(dir: &Path, zxid: Zxid, len: u64, crc: u32) -> io::Result<SnapSpool> {
        let n = SPOOL_SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{SNAP_PREFIX}{:016x}.recv-{}-{n}{TMP_SUFFIX}",
            zxid.to_u64(),
            std::process::id()
        );
        let path = dir.join(name);
        let mut file = File::create(&path)?;
        let mut spool = SnapSpool {
            file: None,
            path,
            len,
            written: 0,
        };
        file.write_all(&encode_snapshot_header_for(zxid, len, crc))?;
        spool.file = Some(file);
        Ok(spool)
    }

    /// Appends a chunk (not fsynced: installing the snapshot does that).
    ///
    /// # Errors
    /// The write failed, or the chunk goes past the announced size.
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let after = self.written + chunk.len() as u64;
        if after > self.len {
            return Err(io::Error::other("past the announced size"));
        }
        match &mut self.file {
            Some(f) => f.write_all(chunk)?,
            None => return Err(io::Error::other("spool already finished")),
        }
        self.written = after;
        Ok(())
    }

    /// The complete snapshot: a temporary file, removed with its last handle unless
    /// installed.
    ///
    /// # Errors
    /// Fewer bytes written than announced.
    pub fn finish(mut self) -> io::Result<SnapData> {
        if self.written != self.len {
            return Err(io::Error::other(format!(
                "{} of {} bytes",
                self.written, self.len
            )));
        }
        self.file = None;
        let path = std::mem::take(&mut self.path);
        Ok(SnapData::File(Arc::new(SnapFile {
            fs: Arc::new(StdFs),
            path,
            offset: SNAP_HEADER_LEN as u64,
            len: self.len,
            temp: true,
            installed: AtomicBool::new(false),
        })))
    }

    /// The file being written.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SnapSpool {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        self.file = None;
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                warn!(file = %self.path.display(), "cannot remove an unfinished SNAP: {e}");
            }
        }
    }
}

impl fmt::Debug for SnapSpool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SnapSpool({}, {} of {} bytes)",
            self.path.display(),
            self.written,
            self.len
        )
    }
}

#[cfg(all(test, not(zab_loom)))]
mod tests {
    use super::*;
    use crate::storage::{LAYOUT_DIR, Storage, StorageConfig};

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn spooled(dir: &Path, zxid: Zxid, data: &[u8]) -> SnapData {
        let mut s =
            SnapSpool::create(dir, zxid, data.len() as u64, crc32c::crc32c(data)).expect("create");
        for chunk in data.chunks(1000) {
            s.write(chunk).expect("write");
        }
        s.finish().expect("complete")
    }

    #[test]
    fn a_received_snap_is_installed_by_renaming_its_file_and_recovered_from_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = StorageConfig::new(dir.path(), dir.path());
        let snaps = dir.path().join(LAYOUT_DIR);
        let (mut storage, _) = Storage::open(Arc::new(StdFs), &cfg).expect("open");
        storage.append(Zxid::new(1, 1), b"old").expect("append");
        let z = Zxid::new(2, 7);
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let snap = spooled(&snaps, z, &data);
        assert_eq!(snap.to_bytes().expect("read back"), data);
        assert!(
            names(&snaps)
                .iter()
                .any(|n| n.starts_with("snapshot.0000000200000007.recv-") && n.ends_with(".tmp")),
            "{:?}",
            names(&snaps)
        );
        storage.install_snapshot_data(z, &snap).expect("install");
        drop(snap);
        // Renamed into place, not removed with its last handle.
        assert!(names(&snaps).contains(&"snapshot.0000000200000007".to_owned()));
        assert!(!names(&snaps).iter().any(|n| n.ends_with(".tmp")));
        drop(storage);
        let (_, recovered) = Storage::open(Arc::new(StdFs), &cfg).expect("reopen");
        let s = recovered.snapshot.expect("a snapshot");
        assert_eq!(s.zxid, z);
        assert!(matches!(s.data, SnapData::File(_)), "left in its file");
        assert_eq!(s.data.to_bytes().expect("read"), data);
        assert!(recovered.txns.is_empty(), "the old log is gone");
    }

    #[test]
    fn an_unused_or_unfinished_spool_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = StorageConfig::new(dir.path(), dir.path());
        let snaps = dir.path().join(LAYOUT_DIR);
        drop(Storage::open(Arc::new(StdFs), &cfg).expect("open"));
        let before = names(&snaps);
        // A complete SNAP that was not installed (refused, or the core did not adopt it).
        drop(spooled(&snaps, Zxid::new(1, 2), b"state"));
        assert_eq!(names(&snaps), before);
        // A SNAP cut off midway.
        let mut s = SnapSpool::create(&snaps, Zxid::new(1, 3), 10, 0).expect("create");
        s.write(b"12345").expect("write");
        assert!(s.write(b"123456").is_err(), "past the announced size");
        drop(s);
        assert_eq!(names(&snaps), before);
        // Fewer bytes than announced do not finish.
        let mut s = SnapSpool::create(&snaps, Zxid::new(1, 4), 10, 0).expect("create");
        s.write(b"12345").expect("write");
        assert!(s.finish().is_err());
        assert_eq!(names(&snaps), before);
        // A crash while receiving: the partial file is removed at the next start.
        let mut s = SnapSpool::create(&snaps, Zxid::new(1, 5), 10, 0).expect("create");
        s.write(b"123").expect("write");
        std::mem::forget(s);
        assert_ne!(names(&snaps), before);
        let (_, recovered) = Storage::open(Arc::new(StdFs), &cfg).expect("reopen");
        assert!(recovered.snapshot.is_none());
        assert_eq!(names(&snaps), before);
    }

    #[test]
    fn a_corrupt_snapshot_file_is_found_by_the_streaming_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = StorageConfig::new(dir.path(), dir.path());
        let (storage, _) = Storage::open(Arc::new(StdFs), &cfg).expect("open");
        let ticket = storage.snapshot_ticket();
        storage
            .snapshots()
            .save(ticket, Zxid::new(1, 1), &[7u8; 3000])
            .expect("save");
        drop(storage);
        let path = dir
            .path()
            .join(LAYOUT_DIR)
            .join("snapshot.0000000100000001");
        let mut bytes = std::fs::read(&path).expect("read");
        let n = bytes.len();
        bytes[n - 10] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        let store =
            crate::storage::SnapshotStore::open(Arc::new(StdFs), dir.path().join(LAYOUT_DIR), 3)
                .expect("open");
        assert_eq!(
            store.open_checked(Zxid::new(1, 1)).expect("no I/O error"),
            Err("data checksum mismatch".to_owned())
        );
    }
}
