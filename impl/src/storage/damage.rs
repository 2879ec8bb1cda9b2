//! Storage faults for tests and the deterministic simulation (`spec/PROTOCOL.md` §7.1): damage
//! a crashed server's [`SimFs`] disk the way a bad disk or an operator's bad day would, after
//! [`SimFs::crash`] and before the server restarts. Nothing here runs in `zabd`.

use std::path::Path;

use zab_spec::Zxid;

use super::{
    ACCEPTED_EPOCH_FILE, CURRENT_EPOCH_FILE, FileSystem, LAYOUT_DIR, SimFs,
    format::{LOG_PREFIX, parse_name, scan_segment},
};

/// Flips one bit (chosen by `pick`) of the durable log record of `zxid` under
/// `<data_log_dir>/zab-v1/`: a bit flip in a fsynced record. Returns whether the record was
/// found. `max_record_bytes` is the storage's limit.
pub fn flip_bit_in_log_record(
    fs: &SimFs,
    data_log_dir: &Path,
    zxid: Zxid,
    pick: u64,
    max_record_bytes: u32,
) -> bool {
    let dir = data_log_dir.join(LAYOUT_DIR);
    let Ok(names) = fs.list(&dir) else {
        return false;
    };
    for name in names {
        let Some(first) = parse_name(&name, LOG_PREFIX) else {
            continue;
        };
        let path = dir.join(&name);
        let Some(mut bytes) = fs.read_durable(&path) else {
            continue;
        };
        let scan = scan_segment(&bytes, first, max_record_bytes);
        let Some(rec) = scan.records.iter().find(|r| r.zxid == zxid) else {
            continue;
        };
        let span = (rec.end() - rec.start) as u64;
        let bit = pick % (span * 8);
        let at = rec.start + (bit / 8) as usize;
        bytes[at] ^= 1 << (bit % 8);
        fs.put_file(&path, &bytes);
        return true;
    }
    false
}

/// Deletes `acceptedEpoch` and `currentEpoch` under `<data_dir>/zab-v1/`, durably.
pub fn lose_epoch_files(fs: &SimFs, data_dir: &Path) {
    let dir = data_dir.join(LAYOUT_DIR);
    for name in [ACCEPTED_EPOCH_FILE, CURRENT_EPOCH_FILE] {
        let _ = fs.remove_file(&dir.join(name));
    }
    let _ = fs.sync_dir(&dir);
}

/// Deletes every file under each of `dirs` (a wiped data directory), durably.
pub fn wipe(fs: &SimFs, dirs: &[&Path]) {
    for file in fs.files() {
        if dirs.iter().any(|d| file.starts_with(d)) {
            let _ = fs.remove_file(&file);
            if let Some(parent) = file.parent() {
                let _ = fs.sync_dir(parent);
            }
        }
    }
}
