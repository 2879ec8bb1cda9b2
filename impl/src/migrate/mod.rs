//! Moving a deployment between Apache ZooKeeper 3.8 and zabd: `zabd import --from-zookeeper`
//! reads ZooKeeper's `version-2/snapshot.*` and `log.*` files and writes a zabd data directory
//! holding the same tree; `zabd export --to-zookeeper` writes a ZooKeeper 3.8 snapshot (and
//! `acceptedEpoch` / `currentEpoch`) from a zabd data directory.
//!
//! | module | owns |
//! |---|---|
//! | [`zk_snapshot`] | ZooKeeper's snapshot format (`FileSnap`, `SerializeUtils`, `DataTree.serialize`, `ReferenceCountedACLCache`): parse and write |
//! | [`zk_log`] | ZooKeeper's transaction log format (`FileTxnLog`, `Util.readTxnBytes`, `SerializeUtils.deserializeTxn`, `zookeeper.jute`'s txn records): parse, and the conversion of each txn to zabd's [`zab_zk::Txn`] |
//! | [`import`] | choosing the snapshot and logs ZooKeeper's restore would choose, replaying them, writing the zabd data directory atomically |
//! | [`export`] | recovering a zabd data directory and writing it as a ZooKeeper data directory, atomically |
//! | [`cli`] | the `zabd import` / `zabd export` / `zabd inspect` command lines |
//!
//! Nothing read is trusted: every length is bounded by the bytes present, every checksum is
//! checked (Adler-32, as ZooKeeper computes it), and every refusal is a [`MigrateError`] naming
//! the file and the byte offset. Neither direction ever leaves a half-written result: the
//! output is written under a temporary name, fsynced, verified by reading it back, and renamed
//! into place.

pub mod cli;
pub mod export;
pub mod import;
pub mod zk_log;
pub mod zk_snapshot;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use thiserror::Error;
use zab_spec::Zxid;
use zab_zk::jute::JuteError;

/// Why a migration refused or failed.
#[derive(Debug, Error)]
pub enum MigrateError {
    /// A file is corrupt, truncated where that is not a torn tail, or of an unknown format.
    #[error("{}: at byte offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Where in it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The input is readable but cannot be migrated safely (missing transactions, an existing
    /// destination, no data at all, ...).
    #[error("{0}")]
    Refused(String),
}

/// Result with [`MigrateError`].
pub type Result<T> = std::result::Result<T, MigrateError>;

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MigrateError {
    let path = path.to_path_buf();
    move |source| MigrateError::Io { op, path, source }
}

pub(crate) fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> MigrateError {
    MigrateError::Corrupt {
        file: file.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// A jute decoding error at `base` + the reader's offset, as a [`MigrateError::Corrupt`].
pub(crate) fn jute_err(file: &Path, base: u64, at: usize, e: &JuteError) -> MigrateError {
    let offset = match e {
        JuteError::Truncated { offset, .. } => *offset,
        _ => at,
    };
    corrupt(file, base + offset as u64, e.to_string())
}

/// Adler-32 (RFC 1950), the checksum `java.util.zip.Adler32` computes for ZooKeeper's
/// snapshots and log records.
#[must_use]
pub fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    // 5552 is the largest n with 255n(n+1)/2 + (n+1)(MOD-1) < 2^32 (zlib's NMAX).
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in bytes.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// ZooKeeper's file name zxid (`Util.getZxidFromName`): `prefix.<hex>`, any further
/// `.suffix` (a compressed snapshot) returned separately.
pub(crate) fn zxid_from_name<'a>(name: &'a str, prefix: &str) -> Option<(Zxid, Option<&'a str>)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
    let (hex, suffix) = match rest.split_once('.') {
        Some((h, s)) => (h, Some(s)),
        None => (rest, None),
    };
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16)
        .ok()
        .map(|z| (Zxid::from_u64(z), suffix))
}

/// The `version-2` directory ZooKeeper keeps its files in, under `dir` (or `dir` itself when
/// it is one).
pub(crate) fn version2_dir(dir: &Path) -> PathBuf {
    let v2 = dir.join("version-2");
    if v2.is_dir() || dir.file_name().is_none_or(|n| n != "version-2") {
        v2
    } else {
        dir.to_path_buf()
    }
}

/// Writes `bytes` to `path` and fsyncs it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(io_err("create", path))?;
    f.write_all(bytes).map_err(io_err("write", path))?;
    f.sync_all().map_err(io_err("fsync", path))
}

/// Fsyncs a directory (so that renames and creations in it are durable).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Reads an epoch file (decimal text, as ZooKeeper's `writeLongToFile` and zabd write it).
pub(crate) fn read_epoch_file(path: &Path) -> Result<Option<u32>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse::<u32>().map(Some).map_err(|_| {
            corrupt(
                path,
                0,
                format!("not an epoch (a decimal number): {:?}", text.trim()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_matches_known_values() {
        // zlib's and java.util.zip.Adler32's values.
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"a"), 0x0062_0062);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        let big = vec![0xffu8; 100_000];
        // Reference computed without the chunking.
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &big {
            a = (a + u64::from(x)) % 65_521;
            b = (b + a) % 65_521;
        }
        assert_eq!(u64::from(adler32(&big)), (b << 16) | a);
    }

    #[test]
    fn file_names_parse_like_zookeeper() {
        assert_eq!(
            zxid_from_name("snapshot.100000005", "snapshot"),
            Some((Zxid::new(1, 5), None))
        );
        assert_eq!(
            zxid_from_name("snapshot.0.gz", "snapshot"),
            Some((Zxid::ZERO, Some("gz")))
        );
        assert_eq!(zxid_from_name("log.x1", "log"), None);
        assert_eq!(zxid_from_name("logs.1", "log"), None);
        assert_eq!(zxid_from_name("log.", "log"), None);
    }
}

#[cfg(test)]
mod roundtrip_tests;
