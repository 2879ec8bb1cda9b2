//! [`SimFs`]: an in-memory [`FileSystem`] that models durability and injects faults, for tests
//! and for a deterministic cluster simulation.
//!
//! The model (POSIX, the way storage must assume the worst of it):
//! - every file (inode) has its current content and its *synced* content, the content as of its
//!   last successful [`WritableFile::sync`];
//! - every directory has its current entries and its *durable* entries, those as of its last
//!   successful [`FileSystem::sync_dir`] (a created, renamed or removed name is not durable
//!   before that);
//! - [`SimFs::crash`] keeps only the durable entries, each with its synced content; with
//!   [`CrashMode::TornTail`] a file whose unsynced change was a pure append also keeps a
//!   pseudo-random prefix of the appended bytes (a torn write);
//! - file handles opened before a crash fail afterwards (the process that held them is gone).
//!
//! Directories themselves are durable as soon as they are created (storage creates its two
//! directories once, at startup). Renames and removals are atomic per name.
//!
//! Faults: [`SimFs::fail_syncs`] / [`SimFs::fail_syncs_after`] make fsyncs (of files and
//! directories) fail with `EIO` without syncing anything; [`SimFs::fail_writes`] makes writes
//! and truncations fail; [`SimFs::pause_syncs`] blocks the fsyncs of matching files until
//! [`SimFs::resume_syncs`], to hold a thread inside an fsync deterministically. [`SimFs::stats`]
//! counts operations (e.g. fsyncs, to observe group commit).
//!
//! Its lock comes from the `sync` shim: under loom every disk operation is a loom event, so
//! loom orders it against the writer's hand-off (a `std` lock would be invisible to loom's
//! partial-order reduction, which would then skip the interleavings where someone looks at the
//! disk between a durability claim and the fsync). Under loom a `SimFs` must be created inside
//! the model.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    path::{Path, PathBuf},
    sync::PoisonError,
};

use super::{
    fs::{FileSystem, WritableFile},
    sync::{Arc, Condvar, Mutex, MutexGuard},
};

/// What a simulated crash keeps of data that was not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Everything not synced is lost.
    DropUnsynced,
    /// Like `DropUnsynced`, but a file whose only unsynced change is an append keeps a
    /// pseudo-random prefix (possibly empty, possibly all) of the appended bytes. The choice is
    /// a function of `seed` and the file, so a crash is reproducible.
    TornTail {
        /// Seeds the choice of each file's surviving prefix.
        seed: u64,
    },
}

/// Operation counters of a [`SimFs`] (successful operations only, except `failed_syncs`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SimStats {
    /// Successful file fsyncs.
    pub file_syncs: u64,
    /// Successful directory fsyncs.
    pub dir_syncs: u64,
    /// fsyncs (file or directory) that failed by injection.
    pub failed_syncs: u64,
    /// Successful `write_all` calls.
    pub writes: u64,
    /// Bytes written by them.
    pub bytes_written: u64,
}

/// The in-memory simulated filesystem. Cloning gives another handle on the same disk.
#[derive(Debug, Clone)]
pub struct SimFs {
    disk: Arc<Mutex<Disk>>,
    gate: Arc<SyncGate>,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
    /// `data[..same]` is known to equal `synced[..same]`.
    same: usize,
}

#[derive(Debug, Default, Clone)]
struct Disk {
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    boot: u64,
    /// `Some(n)`: `n` more fsyncs succeed, then every fsync fails.
    sync_budget: Option<u64>,
    fail_writes: bool,
    stats: SimStats,
}

#[derive(Debug)]
struct SyncGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    paused: Option<String>,
    waiting: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "simulated fs: no such file or directory: {}",
            path.display()
        ),
    )
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("simulated fs: injected {what} failure (EIO)"))
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl Disk {
    fn check_parent(&self, path: &Path) -> io::Result<()> {
        if self.dirs.contains(&parent(path)) {
            Ok(())
        } else {
            Err(not_found(&parent(path)))
        }
    }

    fn take_sync_budget(&mut self) -> io::Result<()> {
        match self.sync_budget {
            Some(0) => {
                self.stats.failed_syncs += 1;
                Err(eio("fsync"))
            }
            Some(n) => {
                self.sync_budget = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn new_inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.inodes.insert(self.next_inode, Inode::default());
        self.next_inode
    }

    /// The disk as it is after a crash now.
    fn after_crash(&self, mode: CrashMode) -> Disk {
        let mut disk = Disk {
            dirs: self.dirs.clone(),
            next_inode: self.next_inode,
            boot: self.boot + 1,
            ..Disk::default()
        };
        for (path, &ino) in &self.durable_names {
            let Some(inode) = self.inodes.get(&ino) else {
                continue;
            };
            let mut data = inode.synced.clone();
            if let CrashMode::TornTail { seed } = mode {
                let pure_append = inode.same == inode.synced.len() && inode.data.len() > inode.same;
                if pure_append {
                    let unsynced = (inode.data.len() - inode.same) as u64;
                    let keep = splitmix(seed ^ ino.wrapping_mul(0x9e37_79b9)) % (unsynced + 1);
                    data.extend_from_slice(&inode.data[inode.same..inode.same + keep as usize]);
                }
            }
            disk.names.insert(path.clone(), ino);
            disk.durable_names.insert(path.clone(), ino);
            disk.inodes.insert(
                ino,
                Inode {
                    synced: data.clone(),
                    same: data.len(),
                    data,
                },
            );
        }
        disk
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Default for SimFs {
    fn default() -> SimFs {
        SimFs::new()
    }
}

impl SimFs {
    /// An empty disk with only the root directory `/`.
    #[must_use]
    pub fn new() -> SimFs {
        let mut disk = Disk::default();
        disk.dirs.insert(PathBuf::from("/"));
        SimFs::from_disk(disk)
    }

    fn from_disk(disk: Disk) -> SimFs {
        SimFs {
            disk: Arc::new(Mutex::new(disk)),
            gate: Arc::new(SyncGate {
                state: Mutex::new(GateState::default()),
                changed: Condvar::new(),
            }),
        }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        lock(&self.disk)
    }

    /// Simulates a power loss and restart: see the module docs for what survives.
    pub fn crash(&self, mode: CrashMode) {
        let mut disk = self.disk();
        let mut crashed = disk.after_crash(mode);
        crashed.sync_budget = disk.sync_budget;
        crashed.fail_writes = disk.fail_writes;
        crashed.stats = disk.stats;
        *disk = crashed;
    }

    /// A new, independent disk holding what would survive a crash right now; this one is left
    /// untouched (its stats and faults are not copied).
    #[must_use]
    pub fn durable_image(&self, mode: CrashMode) -> SimFs {
        SimFs::from_disk(self.disk().after_crash(mode))
    }

    /// The content `path` would have after a crash now (`None`: it would not exist).
    #[must_use]
    pub fn read_durable(&self, path: &Path) -> Option<Vec<u8>> {
        let disk = self.disk();
        let ino = disk.durable_names.get(path)?;
        disk.inodes.get(ino).map(|i| i.synced.clone())
    }

    /// Writes `data` to `path` durably (name and content), creating its parent directories:
    /// for tests that craft or damage files.
    pub fn put_file(&self, path: &Path, data: &[u8]) {
        let mut disk = self.disk();
        for dir in path.ancestors().skip(1) {
            disk.dirs.insert(dir.to_path_buf());
        }
        let ino = disk.new_inode();
        disk.inodes.insert(
            ino,
            Inode {
                data: data.to_vec(),
                synced: data.to_vec(),
                same: data.len(),
            },
        );
        disk.names.insert(path.to_path_buf(), ino);
        disk.durable_names.insert(path.to_path_buf(), ino);
    }

    /// Every file name on the disk now (full paths), sorted.
    #[must_use]
    pub fn files(&self) -> Vec<PathBuf> {
        self.disk().names.keys().cloned().collect()
    }

    /// `true`: every later fsync fails; `false`: fsyncs succeed again.
    pub fn fail_syncs(&self, fail: bool) {
        self.disk().sync_budget = if fail { Some(0) } else { None };
    }

    /// The next `n` fsyncs (files or directories) succeed, every later one fails.
    pub fn fail_syncs_after(&self, n: u64) {
        self.disk().sync_budget = Some(n);
    }

    /// `true`: every later write or truncation fails.
    pub fn fail_writes(&self, fail: bool) {
        self.disk().fail_writes = fail;
    }

    /// Blocks every later fsync of a file whose path contains `path_contains` until
    /// [`SimFs::resume_syncs`].
    pub fn pause_syncs(&self, path_contains: &str) {
        lock(&self.gate.state).paused = Some(path_contains.to_owned());
    }

    /// Releases the fsyncs blocked by [`SimFs::pause_syncs`].
    pub fn resume_syncs(&self) {
        lock(&self.gate.state).paused = None;
        self.gate.changed.notify_all();
    }

    /// How many fsyncs are blocked by [`SimFs::pause_syncs`] right now.
    #[must_use]
    pub fn paused_syncs(&self) -> usize {
        lock(&self.gate.state).waiting
    }

    /// The operation counters so far.
    #[must_use]
    pub fn stats(&self) -> SimStats {
        self.disk().stats
    }

    fn wait_gate(&self, path: &Path) {
        let mut gate = lock(&self.gate.state);
        let blocked = |g: &GateState| {
            g.paused
                .as_deref()
                .is_some_and(|p| path.to_string_lossy().contains(p))
        };
        if !blocked(&gate) {
            return;
        }
        gate.waiting += 1;
        while blocked(&gate) {
            gate = self
                .gate
                .changed
                .wait(gate)
                .unwrap_or_else(PoisonError::into_inner);
        }
        gate.waiting -= 1;
    }
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    path: PathBuf,
    ino: u64,
    boot: u64,
}

impl SimFile {
    fn with_inode<T>(&self, f: impl FnOnce(&mut Disk, u64) -> io::Result<T>) -> io::Result<T> {
        let mut disk = self.fs.disk();
        if disk.boot != self.boot || !disk.inodes.contains_key(&self.ino) {
            return Err(io::Error::other(
                "simulated fs: file handle from before a simulated crash",
            ));
        }
        f(&mut disk, self.ino)
    }
}

impl WritableFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.with_inode(|disk, ino| {
            if disk.fail_writes {
                return Err(eio("write"));
            }
            if let Some(inode) = disk.inodes.get_mut(&ino) {
                inode.data.extend_from_slice(buf);
            }
            disk.stats.writes += 1;
            disk.stats.bytes_written += buf.len() as u64;
            Ok(())
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        self.fs.wait_gate(&self.path);
        self.with_inode(|disk, ino| {
            disk.take_sync_budget()?;
            if let Some(inode) = disk.inodes.get_mut(&ino) {
                let same = inode.same.min(inode.synced.len());
                inode.synced.truncate(same);
                inode.synced.extend_from_slice(&inode.data[same..]);
                inode.same = inode.data.len();
            }
            disk.stats.file_syncs += 1;
            Ok(())
        })
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.with_inode(|disk, ino| {
            if disk.fail_writes {
                return Err(eio("truncate"));
            }
            let len = usize::try_from(len).map_err(io::Error::other)?;
            if let Some(inode) = disk.inodes.get_mut(&ino) {
                inode.data.resize(len, 0);
                inode.same = inode.same.min(len);
            }
            Ok(())
        })
    }
}

impl FileSystem for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        for d in dir.ancestors() {
            if !d.as_os_str().is_empty() {
                disk.dirs.insert(d.to_path_buf());
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let disk = self.disk();
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(disk
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let disk = self.disk();
        let ino = disk.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(disk
            .inodes
            .get(ino)
            .map(|i| i.data.clone())
            .unwrap_or_default())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut disk = self.disk();
        disk.check_parent(path)?;
        let ino = match disk.names.get(path) {
            Some(&ino) => {
                if let Some(inode) = disk.inodes.get_mut(&ino) {
                    inode.data.clear();
                    inode.same = 0;
                }
                ino
            }
            None => {
                let ino = disk.new_inode();
                disk.names.insert(path.to_path_buf(), ino);
                ino
            }
        };
        Ok(Box::new(SimFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            ino,
            boot: disk.boot,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let disk = self.disk();
        let &ino = disk.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(SimFile {
            fs: self.clone(),
            path: path.to_path_buf(),
            ino,
            boot: disk.boot,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        disk.check_parent(to)?;
        let ino = disk.names.remove(from).ok_or_else(|| not_found(from))?;
        disk.names.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut disk = self.disk();
        disk.names.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.wait_gate(dir);
        let mut disk = self.disk();
        if !disk.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        disk.take_sync_budget()?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        disk.durable_names.retain(|p, _| !in_dir(p));
        let current: Vec<_> = disk
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        disk.durable_names.extend(current);
        disk.stats.dir_syncs += 1;
        Ok(())
    }
}

#[cfg(all(test, not(zab_loom)))]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn unsynced_data_and_names_are_lost_in_a_crash() {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/d")).unwrap();
        let mut f = fs.create(&p("/d/a")).unwrap();
        f.write_all(b"hello").unwrap();
        f.sync().unwrap();
        // The name is not durable yet: a crash loses the file.
        assert_eq!(fs.read_durable(&p("/d/a")), None);
        fs.sync_dir(&p("/d")).unwrap();
        f.write_all(b" world").unwrap();
        assert_eq!(fs.read_durable(&p("/d/a")).unwrap(), b"hello");
        fs.crash(CrashMode::DropUnsynced);
        assert_eq!(fs.read(&p("/d/a")).unwrap(), b"hello");
        // The old handle is dead.
        assert!(f.write_all(b"x").is_err());
    }

    #[test]
    fn torn_tail_keeps_a_prefix_of_the_unsynced_append() {
        for seed in 0..50 {
            let fs = SimFs::new();
            fs.put_file(&p("/d/a"), b"base");
            let mut f = fs.open_append(&p("/d/a")).unwrap();
            f.write_all(b"0123456789").unwrap();
            fs.crash(CrashMode::TornTail { seed });
            let data = fs.read(&p("/d/a")).unwrap();
            assert!(data.len() >= 4 && data.len() <= 14);
            assert_eq!(&data[..], &b"base0123456789"[..data.len()]);
        }
    }

    #[test]
    fn rename_is_durable_only_after_the_directory_sync() {
        let fs = SimFs::new();
        fs.put_file(&p("/d/x"), b"old");
        let mut f = fs.create(&p("/d/x.tmp")).unwrap();
        f.write_all(b"new").unwrap();
        f.sync().unwrap();
        fs.rename(&p("/d/x.tmp"), &p("/d/x")).unwrap();
        assert_eq!(
            fs.durable_image(CrashMode::DropUnsynced)
                .read(&p("/d/x"))
                .unwrap(),
            b"old"
        );
        fs.sync_dir(&p("/d")).unwrap();
        let image = fs.durable_image(CrashMode::DropUnsynced);
        assert_eq!(image.read(&p("/d/x")).unwrap(), b"new");
        assert!(image.read(&p("/d/x.tmp")).is_err());
    }

    #[test]
    fn injected_sync_failures_sync_nothing() {
        let fs = SimFs::new();
        fs.put_file(&p("/d/a"), b"");
        let mut f = fs.open_append(&p("/d/a")).unwrap();
        f.write_all(b"abc").unwrap();
        fs.fail_syncs_after(1);
        f.sync().unwrap();
        f.write_all(b"def").unwrap();
        assert!(f.sync().is_err());
        assert_eq!(fs.read_durable(&p("/d/a")).unwrap(), b"abc");
        assert_eq!(fs.stats().file_syncs, 1);
        assert_eq!(fs.stats().failed_syncs, 1);
    }

    #[test]
    fn truncation_is_durable_only_after_sync() {
        let fs = SimFs::new();
        fs.put_file(&p("/d/a"), b"abcdef");
        let mut f = fs.open_append(&p("/d/a")).unwrap();
        f.truncate(2).unwrap();
        f.write_all(b"XY").unwrap();
        assert_eq!(fs.read(&p("/d/a")).unwrap(), b"abXY");
        assert_eq!(fs.read_durable(&p("/d/a")).unwrap(), b"abcdef");
        f.sync().unwrap();
        assert_eq!(fs.read_durable(&p("/d/a")).unwrap(), b"abXY");
    }
}
