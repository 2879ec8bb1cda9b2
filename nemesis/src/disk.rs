//! The on-disk files of a stopped server, read and damaged the way the damage matrix needs:
//! the records of the transaction logs (zabd's `zab-v1/log.*` and ZooKeeper's
//! `version-2/log.*`), snapshots, and the epoch files. Record boundaries are parsed from each
//! format's framing, so a bit flip lands inside one chosen, complete record and a truncation
//! cuts at a record boundary: damage to records that were fsynced, never a torn write.
//!
//! ```text
//! zabd      log: header 28 bytes | record = crc32c u32 | length u32 | zxid u64 | payload   (LE)
//! ZooKeeper log: header 16 bytes ("ZKLG", version, dbid)
//!                | record = Adler32 u64 | length u32 | txn (header: clientId u64, cxid u32,
//!                  zxid u64, ...) | 0x42                                                (BE)
//!                zeros after the last record (preallocation)
//! ```

use crate::cluster::System;
use anyhow::{Context, Result, bail};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One complete record of a transaction log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The log file.
    pub file: PathBuf,
    /// Offset of its first byte.
    pub start: u64,
    /// Offset just past it.
    pub end: u64,
    /// Offset and length of its payload (the part a bit flip goes to).
    pub payload: (u64, u64),
    /// Its zxid.
    pub zxid: u64,
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

/// Files named `<prefix><hex zxid>` under `data`, oldest first.
#[must_use]
pub fn named_files(data: &Path, prefix: &str) -> Vec<(u64, PathBuf)> {
    let mut files = Vec::new();
    files_under(data, &mut files);
    let mut out: Vec<(u64, PathBuf)> = files
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let hex = name.strip_prefix(prefix)?;
            let z = u64::from_str_radix(hex, 16).ok()?;
            Some((z, p))
        })
        .collect();
    out.sort();
    out
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The complete records of one log file (stops at the first incomplete or zero frame).
fn records_of(system: System, file: &Path, bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let (mut at, frame) = match system {
        System::Zabd => (28usize, 16usize),
        System::Zookeeper => (16usize, 12usize),
    };
    loop {
        let parsed = match system {
            System::Zabd => le_u32(bytes, at + 4).and_then(|len| {
                let len = len as usize;
                let end = at.checked_add(frame)?.checked_add(len)?;
                let zxid = le_u64(bytes, at + 8)?;
                (end <= bytes.len() && (len > 0 || zxid > 0)).then_some((
                    end,
                    (at + frame, len),
                    zxid,
                ))
            }),
            System::Zookeeper => be_u32(bytes, at + 8).and_then(|len| {
                let len = len as usize;
                let end = at.checked_add(frame)?.checked_add(len)?.checked_add(1)?;
                // The txn header: clientId u64, cxid u32, zxid u64.
                let zxid = be_u64(bytes, at + frame + 12)?;
                (len > 0 && end <= bytes.len() && bytes[end - 1] == b'B').then_some((
                    end,
                    (at + frame, len),
                    zxid,
                ))
            }),
        };
        let Some((end, (p, plen), zxid)) = parsed else {
            break;
        };
        out.push(Record {
            file: file.to_path_buf(),
            start: at as u64,
            end: end as u64,
            payload: (p as u64, plen as u64),
            zxid,
        });
        at = end;
    }
    out
}

/// Every complete record of every log file under `data`, in log order.
#[must_use]
pub fn log_records(system: System, data: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    for (_, p) in named_files(data, "log.") {
        if let Ok(bytes) = std::fs::read(&p) {
            out.extend(records_of(system, &p, &bytes));
        }
    }
    out
}

fn name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}

/// Flips bit `bit` of the byte at `offset` in `file`, durably.
pub fn flip_bit(file: &Path, offset: u64, bit: u8) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .with_context(|| format!("open {}", file.display()))?;
    let mut b = [0u8; 1];
    use std::io::Read;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut b)?;
    b[0] ^= 1 << (bit & 7);
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&b)?;
    f.sync_all()?;
    Ok(())
}

/// Flips one bit in the middle of `r`'s payload; says what it did.
pub fn flip_in_record(r: &Record, index: usize, total: usize) -> Result<String> {
    let off = r.payload.0 + r.payload.1 / 2;
    flip_bit(&r.file, off, 3)?;
    Ok(format!(
        "flipped bit 3 of byte {off} of {} (inside record {} of {total}, zxid 0x{:x}, bytes {}..{})",
        name(&r.file),
        index + 1,
        r.zxid,
        r.start,
        r.end
    ))
}

/// Cuts every record from `records[from]` on: its file is truncated at the record's start,
/// later log files are deleted. Says what it did.
pub fn truncate_from(records: &[Record], from: usize) -> Result<String> {
    let Some(first) = records.get(from) else {
        bail!("no record {from} to cut from ({} records)", records.len());
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&first.file)
        .with_context(|| format!("open {}", first.file.display()))?;
    f.set_len(first.start)?;
    f.sync_all()?;
    let mut deleted = Vec::new();
    for r in &records[from..] {
        if r.file != first.file && r.file.exists() {
            std::fs::remove_file(&r.file)?;
            deleted.push(name(&r.file));
        }
    }
    let last = records.last().map_or(0, |r| r.zxid);
    Ok(format!(
        "cut the last {} fsynced records (zxid 0x{:x}..0x{last:x}): {} truncated to {} bytes{}",
        records.len() - from,
        first.zxid,
        name(&first.file),
        first.start,
        if deleted.is_empty() {
            String::new()
        } else {
            format!(", deleted {}", deleted.join(" "))
        }
    ))
}

/// Deletes the named epoch files under `data`; says what it did.
pub fn delete_files(data: &Path, names: &[&str]) -> Result<String> {
    let mut files = Vec::new();
    files_under(data, &mut files);
    let mut done = Vec::new();
    for p in files {
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| names.contains(&n))
        {
            std::fs::remove_file(&p).with_context(|| format!("remove {}", p.display()))?;
            done.push(name(&p));
        }
    }
    if done.is_empty() {
        bail!("none of {names:?} under {}", data.display());
    }
    Ok(format!("deleted {}", done.join(" and ")))
}

/// Flips a bit in the middle of the newest snapshot; says what it did.
pub fn corrupt_newest_snapshot(data: &Path) -> Result<String> {
    let snaps = named_files(data, "snapshot.");
    let Some((z, p)) = snaps.last() else {
        bail!("no snapshot under {}", data.display());
    };
    let len = std::fs::metadata(p)?.len();
    if len < 2 {
        bail!("{} is empty", p.display());
    }
    let off = len / 2;
    flip_bit(p, off, 3)?;
    Ok(format!(
        "flipped bit 3 of byte {off} of the newest snapshot {} (zxid 0x{z:x}, {len} bytes; {} snapshot(s) in all)",
        name(p),
        snaps.len()
    ))
}

/// Removes everything in `data` but `myid`; says what it did.
pub fn wipe(data: &Path) -> Result<String> {
    let mut removed = 0;
    for e in std::fs::read_dir(data)?.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == "myid") {
            continue;
        }
        if p.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
        removed += 1;
    }
    Ok(format!(
        "wiped the data directory ({removed} entries; myid kept)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zabd_log(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut b = b"ZABTXLOG".to_vec();
        b.extend_from_slice(&[0u8; 20]);
        for (z, p) in records {
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&(p.len() as u32).to_le_bytes());
            b.extend_from_slice(&z.to_le_bytes());
            b.extend_from_slice(p);
        }
        b
    }

    fn zk_log(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut b = b"ZKLG".to_vec();
        b.extend_from_slice(&[0u8; 12]);
        for (z, body) in records {
            let mut txn = Vec::new();
            txn.extend_from_slice(&7u64.to_be_bytes());
            txn.extend_from_slice(&1u32.to_be_bytes());
            txn.extend_from_slice(&z.to_be_bytes());
            txn.extend_from_slice(body);
            b.extend_from_slice(&0u64.to_be_bytes());
            b.extend_from_slice(&(txn.len() as u32).to_be_bytes());
            b.extend_from_slice(&txn);
            b.push(b'B');
        }
        b.extend_from_slice(&[0u8; 64]);
        b
    }

    #[test]
    fn parses_both_formats_and_stops_at_the_tail() {
        let p = Path::new("log.1");
        let z = zabd_log(&[(1, b"abc"), (2, b"defg")]);
        let mut torn = z.clone();
        torn.extend_from_slice(&[1, 2, 3]);
        for bytes in [&z, &torn] {
            let r = records_of(System::Zabd, p, bytes);
            assert_eq!(r.len(), 2);
            assert_eq!((r[1].zxid, r[1].start, r[1].end), (2, 47, 67));
        }
        let k = zk_log(&[(0x1_0000_0001, b"xy"), (0x1_0000_0002, b"")]);
        let r = records_of(System::Zookeeper, p, &k);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].zxid, 0x1_0000_0001);
        assert_eq!((r[0].start, r[0].end), (16, 16 + 12 + 22 + 1));
        assert_eq!(r[1].payload, (r[0].end + 12, 20));
    }

    #[test]
    fn damage_lands_where_it_says() {
        let dir = std::env::temp_dir().join(format!("zab-disk-test-{}", std::process::id()));
        let v = dir.join("version-2");
        std::fs::create_dir_all(&v).unwrap();
        let body = [0u8; 40];
        let log = zk_log(&[(1, &body), (2, &body), (3, &body)]);
        std::fs::write(v.join("log.1"), &log).unwrap();
        std::fs::write(v.join("log.4"), zk_log(&[(4, &body)])).unwrap();
        std::fs::write(v.join("currentEpoch"), "1").unwrap();
        let recs = log_records(System::Zookeeper, &dir);
        assert_eq!(
            recs.iter().map(|r| r.zxid).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        flip_in_record(&recs[1], 1, 4).unwrap();
        let after = std::fs::read(v.join("log.1")).unwrap();
        let diff: Vec<usize> = (0..log.len()).filter(|&i| log[i] != after[i]).collect();
        assert_eq!(diff.len(), 1);
        assert!(
            (recs[1].payload.0..recs[1].payload.0 + recs[1].payload.1).contains(&(diff[0] as u64))
        );
        truncate_from(&recs, 2).unwrap();
        assert!(!v.join("log.4").exists());
        assert_eq!(log_records(System::Zookeeper, &dir).len(), 2);
        assert!(delete_files(&dir, &["currentEpoch"]).is_ok());
        assert!(delete_files(&dir, &["currentEpoch"]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
