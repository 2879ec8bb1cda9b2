//! [`TxnLog`]: the transaction log as segment files in one directory: buffered appends, fsync,
//! durable truncation, reads, pruning, and recovery (cutting a torn tail, refusing corruption).
//!
//! It knows records and files, not snapshots: the zxid succession rule relative to a snapshot
//! and the choice of the recovery point belong to [`Storage`](super::Storage).
//!
//! Invariants:
//! - segments are sorted by their first zxid, which is in their name and header; zxids strictly
//!   increase within and across segments;
//! - only the last segment is ever written to; before a later segment is created, the current
//!   one is fsynced with its directory entry, so a crash can tear only the last segment's tail;
//! - `durable <= last`, and every record up to `durable` has been fsynced;
//! - after an I/O error the log is poisoned: every later call returns the error again, so an
//!   fsync is never retried and unsynced data is never reported durable;
//! - the end mark (`durable-end`, [`END_MARK`]) never names a zxid beyond the durable log,
//!   except when fsynced records were lost: it is written (without an fsync of its own) only
//!   after the log's fsync returned, and removed durably before a deliberate cut (TRUNC,
//!   SNAP). A log that ends before its mark lost a fsynced suffix cut at a record boundary,
//!   which no checksum can show (`spec/PROTOCOL.md` §7.1.1). A stale mark (lost in a power
//!   failure) only misses damage; it never invents any.

use std::{path::PathBuf, sync::Arc};

use bytes::Bytes;
use tracing::{debug, error, warn};
use zab_spec::Zxid;

use super::{
    error::{Result, StorageError, io_err},
    format::{
        HeaderState, LOG_HEADER_LEN, LOG_PREFIX, RecordPos, encode_log_header, encode_record,
        find_valid_record, log_name, parse_name, scan_segment,
    },
    fs::{FileSystem, WritableFile},
};

/// The end mark's file name, in the log directory.
pub(crate) const END_MARK: &str = "durable-end";

fn encode_end_mark(zxid: Zxid) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..8].copy_from_slice(&zxid.to_u64().to_le_bytes());
    let crc = crc32c::crc32c(&b[..8]);
    b[8..].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode_end_mark(b: &[u8]) -> Option<Zxid> {
    let (z, crc) = (b.get(..8)?, b.get(8..12)?);
    if b.len() != 12 || crc32c::crc32c(z) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    Some(Zxid::from_u64(u64::from_le_bytes(z.try_into().ok()?)))
}

/// One transaction of the log: its zxid and its opaque payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The transaction's zxid.
    pub zxid: Zxid,
    /// The serialized transaction, as appended.
    pub payload: Bytes,
}

/// Tunables of the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogConfig {
    /// A segment that reached this size is sealed; the next append starts a new one.
    pub segment_bytes: u64,
    /// The largest payload accepted (and believed when reading a length from disk).
    pub max_record_bytes: u32,
    /// Appends are written to the file once this much is buffered (and at every sync).
    pub write_buffer_bytes: usize,
}

#[derive(Debug)]
struct Segment {
    first: Zxid,
    last: Zxid,
    path: PathBuf,
    /// Bytes in the file, counting those still in the write buffer.
    len: u64,
}

/// The transaction log of one directory.
#[derive(Debug)]
pub(crate) struct TxnLog {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    cfg: LogConfig,
    segments: Vec<Segment>,
    /// Open handle on the last segment, when it is being appended to.
    active: Option<Box<dyn WritableFile>>,
    /// Encoded records (and a new segment's header) not yet written to `active`.
    buf: Vec<u8>,
    last: Zxid,
    durable: Zxid,
    /// Something was appended to `active` since its last fsync.
    dirty: bool,
    /// A segment was created since the directory's last fsync.
    dir_dirty: bool,
    failed: Option<StorageError>,
}

impl TxnLog {
    /// Opens the log in `dir` (which must exist), recovering it: see the module docs of
    /// `storage` for what is cut and what is refused. Returns every record, in zxid order, and
    /// a description of the damage found, if any (`spec/PROTOCOL.md` §7.1): a record that may
    /// have been fsynced is damaged, so the valid prefix is kept and everything from the
    /// damage on is dropped, after `on_damage` made the `recovering` flag durable.
    pub(crate) fn open(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        cfg: LogConfig,
        on_damage: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<(TxnLog, Vec<LogRecord>, Option<String>)> {
        let mut found = Vec::new();
        for name in fs.list(&dir).map_err(io_err("list", &dir))? {
            match parse_name(&name, LOG_PREFIX) {
                Some(first) => found.push((first, dir.join(&name))),
                None if name.starts_with(LOG_PREFIX) => {
                    return Err(StorageError::Inconsistent(format!(
                        "unexpected file {} in the log directory",
                        dir.join(&name).display()
                    )));
                }
                None => {}
            }
        }
        found.sort();
        let mut log = TxnLog {
            fs,
            dir,
            cfg,
            segments: Vec::new(),
            active: None,
            buf: Vec::new(),
            last: Zxid::ZERO,
            durable: Zxid::ZERO,
            dirty: false,
            dir_dirty: false,
            failed: None,
        };
        let mut records = Vec::new();
        let count = found.len();
        let mut damage = None;
        for (i, (first, path)) in found.iter().enumerate() {
            let Some((offset, reason, kept)) =
                log.recover_segment(*first, path.clone(), i + 1 == count, &mut records)?
            else {
                continue;
            };
            let dropped: Vec<String> = found[i + 1..]
                .iter()
                .map(|(_, p)| p.display().to_string())
                .collect();
            let desc = format!(
                "damaged log: {} at byte offset {offset}: {reason} (not a torn write: the \
                 record may have been fsynced and acknowledged); keeping the {} records before \
                 it{}",
                path.display(),
                records.len(),
                if dropped.is_empty() {
                    String::new()
                } else {
                    format!(", dropping the later segments {}", dropped.join(", "))
                }
            );
            error!(
                file = %path.display(),
                offset,
                reason = %reason,
                "{desc}; this server is recovering until a leader restores it"
            );
            on_damage(&desc)?;
            log.drop_end_mark()?;
            for (_, later) in found[i + 1..].iter().rev() {
                log.remove_durably(later)?;
            }
            match kept {
                Some(last) => {
                    let mut file = log.fs.open_append(path).map_err(io_err("open", path))?;
                    file.truncate(offset as u64)
                        .map_err(io_err("truncate", path))?;
                    file.sync().map_err(io_err("fsync", path))?;
                    log.segments.push(Segment {
                        first: *first,
                        last,
                        path: path.clone(),
                        len: offset as u64,
                    });
                    log.last = last;
                }
                None => log.remove_durably(path)?,
            }
            damage = Some(desc);
            break;
        }
        log.durable = log.last;
        if damage.is_none() {
            damage = log.check_end_mark(on_damage)?;
        }
        Ok((log, records, damage))
    }

    /// The end mark says a zxid beyond the recovered log was fsynced: a suffix of fsynced
    /// records is gone (cut at a record boundary, so no checksum shows it). An unreadable mark
    /// is ignored (it is written without an fsync, and may be torn).
    fn check_end_mark(
        &mut self,
        on_damage: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<Option<String>> {
        let path = self.dir.join(END_MARK);
        let bytes = match self.fs.read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("read", &path, e)),
        };
        let Some(mark) = decode_end_mark(&bytes) else {
            // Normal after a power failure (it is not fsynced): not worth a warning.
            debug!(file = %path.display(), "unreadable log end mark: ignored");
            return Ok(None);
        };
        if mark <= self.last {
            return Ok(None);
        }
        let desc = format!(
            "damaged log: it ends at {} but {} says {mark} was fsynced: fsynced records after \
             {} are missing (cut at a record boundary, not a torn write)",
            self.last,
            path.display(),
            self.last
        );
        error!("{desc}; this server is recovering until a leader restores it");
        on_damage(&desc)?;
        self.drop_end_mark()?;
        Ok(Some(desc))
    }

    /// Records, without an fsync, that everything up to `last` is durable.
    fn write_end_mark(&mut self) {
        let path = self.dir.join(END_MARK);
        let r = self
            .fs
            .create(&path)
            .and_then(|mut f| f.write_all(&encode_end_mark(self.last)));
        if let Err(e) = r {
            // Only damage detection depends on it, not durability.
            warn!(file = %path.display(), error = %e, "cannot write the log end mark");
        }
    }

    /// Durably removes the end mark (before a deliberate cut of the log).
    fn drop_end_mark(&mut self) -> Result<()> {
        let path = self.dir.join(END_MARK);
        match self.fs.remove_file(&path) {
            Ok(()) => self
                .fs
                .sync_dir(&self.dir)
                .map_err(io_err("fsync directory", &self.dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("remove", &path, e)),
        }
    }

    /// Recovers one segment: its valid records join `records`. A torn tail of the last
    /// segment is cut here. Damage is returned instead, as (offset, reason, the last zxid
    /// kept in this segment if any), with the records before it already in `records`; the
    /// caller makes the `recovering` flag durable, then cuts.
    fn recover_segment(
        &mut self,
        first: Zxid,
        path: PathBuf,
        is_last: bool,
        records: &mut Vec<LogRecord>,
    ) -> Result<Option<(usize, String, Option<Zxid>)>> {
        let max = self.cfg.max_record_bytes;
        let bytes = Bytes::from(self.fs.read(&path).map_err(io_err("read", &path))?);
        let scan = scan_segment(&bytes, first, max);
        match &scan.header {
            HeaderState::Valid => {}
            HeaderState::Torn if is_last && find_valid_record(&bytes, 0, max).is_none() => {
                warn!(
                    file = %path.display(),
                    len = bytes.len(),
                    "log segment with a torn header (crash while creating it): removing it"
                );
                self.remove_durably(&path)?;
                return Ok(None);
            }
            HeaderState::Torn => {
                return Ok(Some((
                    0,
                    "zeroed or truncated segment header, and the segment is not a torn tail \
                     (later segments or valid records follow)"
                        .to_owned(),
                    None,
                )));
            }
            HeaderState::Bad(reason) => return Ok(Some((0, reason.clone(), None))),
            HeaderState::Unsupported(reason) => {
                return Err(StorageError::corrupt(&path, 0, reason));
            }
        }
        let prev_last = self.segments.last().map(|s| (s.last, s.path.clone()));
        let mut prev = prev_last.as_ref().map_or(Zxid::ZERO, |(z, _)| *z);
        for (n, rec) in scan.records.iter().enumerate() {
            if n == 0 && rec.zxid != first {
                return Err(StorageError::corrupt(
                    &path,
                    rec.start as u64,
                    format!(
                        "first record is {}, the segment's name says {first}",
                        rec.zxid
                    ),
                ));
            }
            if rec.zxid <= prev {
                let where_ = match (&prev_last, n) {
                    (Some((_, p)), 0) => format!("the last zxid of {}", p.display()),
                    _ => "the previous record".to_owned(),
                };
                return Err(StorageError::Inconsistent(format!(
                    "{} at byte offset {}: zxid {} is not after {prev}, {where_} \
                     (duplicated or out-of-order zxids)",
                    path.display(),
                    rec.start,
                    rec.zxid
                )));
            }
            prev = rec.zxid;
        }
        records.extend(scan.records.iter().map(|r| LogRecord {
            zxid: r.zxid,
            payload: bytes.slice(r.payload.clone()),
        }));
        let last_kept = scan.records.last().map(|r| r.zxid);
        let mut valid_len = bytes.len() as u64;
        if let Some(damage) = &scan.damage {
            if !damage.torn || !is_last {
                let mut reason = damage.reason.clone();
                if let Some(valid) = damage.valid_after {
                    reason.push_str(&format!(
                        ", and a valid record follows at byte offset {valid}"
                    ));
                } else if !is_last {
                    reason.push_str(" in a sealed segment (later segments follow)");
                }
                return Ok(Some((damage.offset, reason, last_kept)));
            }
            warn!(
                file = %path.display(),
                offset = damage.offset,
                dropped_bytes = bytes.len() - damage.offset,
                reason = %damage.reason,
                "torn tail at the end of the log (crash during a write, never acknowledged): \
                 cutting it"
            );
            let mut file = self.fs.open_append(&path).map_err(io_err("open", &path))?;
            file.truncate(damage.offset as u64)
                .map_err(io_err("truncate", &path))?;
            file.sync().map_err(io_err("fsync", &path))?;
            valid_len = scan.valid_end() as u64;
        }
        let Some(last) = last_kept else {
            if is_last {
                warn!(file = %path.display(), "log segment without records (crash right after creating it): removing it");
                self.remove_durably(&path)?;
                return Ok(None);
            }
            return Ok(Some((
                LOG_HEADER_LEN,
                "segment without records followed by later segments".to_owned(),
                None,
            )));
        };
        self.segments.push(Segment {
            first,
            last,
            path,
            len: valid_len,
        });
        self.last = last;
        Ok(None)
    }

    /// The zxid of the last record (`Zxid::ZERO` if there is none).
    pub(crate) fn last(&self) -> Zxid {
        self.last
    }

    /// The zxid of the last record known durable.
    pub(crate) fn durable(&self) -> Zxid {
        self.durable
    }

    pub(crate) fn max_record_bytes(&self) -> u32 {
        self.cfg.max_record_bytes
    }

    /// How many segment files the log has.
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(e.poisoned()),
            None => Ok(()),
        }
    }

    fn poison_on<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if e.is_poisoning() && self.failed.is_none() {
                self.failed = Some(e.clone());
            }
        }
        r
    }

    /// Buffers a record. `zxid` must be greater than every zxid in the log.
    pub(crate) fn append(&mut self, zxid: Zxid, payload: &[u8]) -> Result<()> {
        self.check()?;
        if zxid <= self.last {
            return Err(StorageError::InvalidRequest(format!(
                "append of {zxid} after {} : zxids must increase",
                self.last
            )));
        }
        if payload.len() > self.cfg.max_record_bytes as usize {
            return Err(StorageError::InvalidRequest(format!(
                "payload of {} bytes for {zxid} exceeds the maximum of {}",
                payload.len(),
                self.cfg.max_record_bytes
            )));
        }
        let r = self.append_inner(zxid, payload);
        self.poison_on(r)
    }

    fn append_inner(&mut self, zxid: Zxid, payload: &[u8]) -> Result<()> {
        let roll = self
            .segments
            .last()
            .is_none_or(|s| s.len >= self.cfg.segment_bytes);
        if roll {
            self.seal_active()?;
            self.start_segment(zxid)?;
        } else if self.active.is_none() {
            let path = self.active_path()?;
            self.active = Some(self.fs.open_append(&path).map_err(io_err("open", &path))?);
        }
        let before = self.buf.len();
        encode_record(zxid, payload, &mut self.buf);
        let added = (self.buf.len() - before) as u64;
        if let Some(seg) = self.segments.last_mut() {
            seg.len += added;
            seg.last = zxid;
        }
        self.last = zxid;
        self.dirty = true;
        if self.buf.len() >= self.cfg.write_buffer_bytes {
            self.write_buf()?;
        }
        Ok(())
    }

    /// Makes the last segment durable, directory entry included, and closes it: from then on a
    /// crash cannot tear it, whatever happens to later segments.
    fn seal_active(&mut self) -> Result<()> {
        if self.active.is_some() {
            self.sync_inner()?;
        }
        self.active = None;
        Ok(())
    }

    fn start_segment(&mut self, first: Zxid) -> Result<()> {
        let path = self.dir.join(log_name(first));
        debug!(file = %path.display(), "new log segment");
        let file = self.fs.create(&path).map_err(io_err("create", &path))?;
        encode_log_header(first, &mut self.buf);
        self.segments.push(Segment {
            first,
            last: first,
            path,
            len: LOG_HEADER_LEN as u64,
        });
        self.active = Some(file);
        self.dir_dirty = true;
        Ok(())
    }

    fn active_path(&self) -> Result<PathBuf> {
        self.segments
            .last()
            .map(|s| s.path.clone())
            .ok_or_else(|| StorageError::Inconsistent("internal: log has no segment".into()))
    }

    fn write_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.active_path()?;
        let Some(file) = self.active.as_mut() else {
            return Err(StorageError::Inconsistent(
                "internal: buffered log data without an open segment".into(),
            ));
        };
        file.write_all(&self.buf).map_err(io_err("write", &path))?;
        self.buf.clear();
        Ok(())
    }

    /// Writes and fsyncs everything appended so far; returns the last durable zxid.
    pub(crate) fn sync(&mut self) -> Result<Zxid> {
        self.check()?;
        let r = self.sync_inner();
        self.poison_on(r)
    }

    fn sync_inner(&mut self) -> Result<Zxid> {
        self.write_buf()?;
        if self.dirty {
            let path = self.active_path()?;
            if let Some(file) = self.active.as_mut() {
                file.sync().map_err(io_err("fsync", &path))?;
            }
            self.dirty = false;
        }
        if self.dir_dirty {
            self.fs
                .sync_dir(&self.dir)
                .map_err(io_err("fsync directory", &self.dir))?;
            self.dir_dirty = false;
        }
        if self.durable != self.last {
            self.durable = self.last;
            self.write_end_mark();
        }
        Ok(self.durable)
    }

    fn remove_durably(&self, path: &std::path::Path) -> Result<()> {
        self.fs.remove_file(path).map_err(io_err("remove", path))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_err("fsync directory", &self.dir))
    }

    /// Reads and fully checks one segment (no damage tolerated: it was written by this process
    /// or recovered).
    fn read_segment(&self, seg: &Segment) -> Result<(Bytes, Vec<RecordPos>)> {
        let bytes = Bytes::from(self.fs.read(&seg.path).map_err(io_err("read", &seg.path))?);
        let scan = scan_segment(&bytes, seg.first, self.cfg.max_record_bytes);
        match &scan.header {
            HeaderState::Valid => {}
            HeaderState::Torn => {
                return Err(StorageError::corrupt(&seg.path, 0, "torn segment header"));
            }
            HeaderState::Bad(reason) | HeaderState::Unsupported(reason) => {
                return Err(StorageError::corrupt(&seg.path, 0, reason));
            }
        }
        if let Some(d) = &scan.damage {
            return Err(StorageError::corrupt(&seg.path, d.offset as u64, &d.reason));
        }
        Ok((bytes, scan.records))
    }

    /// Durably removes every record after `zxid` (after making everything before it durable):
    /// later segments are deleted newest first, each deletion made durable before the next, then
    /// the segment holding `zxid` is cut and fsynced. A crash at any point leaves a prefix of
    /// the log, never a gap.
    pub(crate) fn remove_after(&mut self, zxid: Zxid) -> Result<()> {
        self.check()?;
        let r = self.remove_after_inner(zxid);
        self.poison_on(r)
    }

    fn remove_after_inner(&mut self, zxid: Zxid) -> Result<()> {
        self.sync_inner()?;
        if zxid < self.last {
            self.drop_end_mark()?;
        }
        while self.segments.last().is_some_and(|s| s.first > zxid) {
            self.active = None;
            if let Some(seg) = self.segments.pop() {
                debug!(file = %seg.path.display(), "truncation removes log segment");
                self.remove_durably(&seg.path)?;
            }
        }
        let cut = match self.segments.last() {
            Some(seg) if seg.last > zxid => {
                let (_, recs) = self.read_segment(seg)?;
                let kept = recs.iter().take_while(|r| r.zxid <= zxid).last();
                kept.map(|r| (r.zxid, r.end() as u64, seg.path.clone()))
            }
            _ => None,
        };
        if let Some((last, end, path)) = cut {
            let mut file = match self.active.take() {
                Some(f) => f,
                None => self.fs.open_append(&path).map_err(io_err("open", &path))?,
            };
            file.truncate(end).map_err(io_err("truncate", &path))?;
            file.sync().map_err(io_err("fsync", &path))?;
            self.active = Some(file);
            if let Some(seg) = self.segments.last_mut() {
                seg.last = last;
                seg.len = end;
            }
        }
        self.last = self.segments.last().map_or(Zxid::ZERO, |s| s.last);
        self.durable = self.last;
        Ok(())
    }

    /// Durably removes every segment (SNAP replaced the history).
    pub(crate) fn remove_all(&mut self) -> Result<()> {
        self.check()?;
        let r = self.remove_all_inner();
        self.poison_on(r)
    }

    fn remove_all_inner(&mut self) -> Result<()> {
        self.drop_end_mark()?;
        self.active = None;
        self.buf.clear();
        self.dirty = false;
        for seg in std::mem::take(&mut self.segments) {
            self.fs
                .remove_file(&seg.path)
                .map_err(io_err("remove", &seg.path))?;
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(io_err("fsync directory", &self.dir))?;
        self.dir_dirty = false;
        self.last = Zxid::ZERO;
        self.durable = Zxid::ZERO;
        Ok(())
    }

    /// Every record after `zxid`, in order (written to the files first; not necessarily durable).
    pub(crate) fn read_after(&mut self, zxid: Zxid) -> Result<Vec<LogRecord>> {
        self.check()?;
        let r = self.read_after_inner(zxid);
        self.poison_on(r)
    }

    fn read_after_inner(&mut self, zxid: Zxid) -> Result<Vec<LogRecord>> {
        self.write_buf()?;
        let mut out = Vec::new();
        for seg in self.segments.iter().filter(|s| s.last > zxid) {
            let (bytes, recs) = self.read_segment(seg)?;
            out.extend(recs.iter().filter(|r| r.zxid > zxid).map(|r| LogRecord {
                zxid: r.zxid,
                payload: bytes.slice(r.payload.clone()),
            }));
        }
        Ok(out)
    }

    /// Deletes the segments (never the last one) whose records are all at or before `zxid`,
    /// oldest first. Not made durable: a resurrected old segment is harmless.
    pub(crate) fn prune_through(&mut self, zxid: Zxid) -> Result<usize> {
        self.check()?;
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[0].last <= zxid {
            let seg = self.segments.remove(0);
            debug!(file = %seg.path.display(), up_to = %zxid, "pruning log segment covered by a snapshot");
            if let Err(e) = self.fs.remove_file(&seg.path) {
                let e = StorageError::io("remove", &seg.path, e);
                return self.poison_on(Err(e));
            }
            removed += 1;
        }
        Ok(removed)
    }
}
