//! The on-disk format: log segment headers and records, snapshot files and file names. Pure
//! functions on byte slices; no I/O.
//!
//! All integers are little-endian. CRCs are CRC32C (Castagnoli).
//!
//! ```text
//! log segment `log.<first zxid, 16 hex digits>`:
//!   header (28 bytes) | record | record | ...
//!   header: magic "ZABTXLOG" (8) | format version u32 = 1 | flags u32 = 0
//!         | first zxid u64 (= the name's) | crc32c of the previous 24 bytes u32
//!   record: crc32c u32 of the rest of the record | payload length u32 | zxid u64 | payload
//!
//! snapshot `snapshot.<zxid, 16 hex digits>`:
//!   header (40 bytes) | data
//!   header: magic "ZABSNAPS" (8) | format version u32 = 1 | flags u32 = 0 | zxid u64
//!         | data length u64 | crc32c of the data u32 | crc32c of the previous 36 bytes u32
//! ```
//!
//! Torn write versus damage (`spec/PROTOCOL.md` §7.1). Records are appended and fsynced in
//! order, so a crash during a write leaves a *prefix* of what was written (or a zero-filled
//! tail where the file grew but the data blocks were not written). Recovery cuts only what
//! looks like that, at the end of the last segment ([`Damage::torn`]): a record header or a
//! record running past the end of the file, or nothing but zero bytes from the bad record to
//! the end. A record wholly inside the file whose checksum fails, a bad record followed by
//! more data that is not all zero, or a bad header of any segment is damage to data that may
//! have been fsynced and acknowledged: never cut silently. A record that runs past the end
//! only because one of its length bits flipped is told apart too: if the bytes up to the end
//! of the file check out under the length that would end the record there, the record was
//! complete, and it is damage.

use std::ops::Range;

use zab_spec::Zxid;

pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const LOG_MAGIC: &[u8; 8] = b"ZABTXLOG";
pub(crate) const SNAP_MAGIC: &[u8; 8] = b"ZABSNAPS";
pub(crate) const LOG_HEADER_LEN: usize = 28;
pub(crate) const RECORD_HEADER_LEN: usize = 16;
pub(crate) const SNAP_HEADER_LEN: usize = 40;

pub(crate) const LOG_PREFIX: &str = "log.";
pub(crate) const SNAP_PREFIX: &str = "snapshot.";
pub(crate) const TMP_SUFFIX: &str = ".tmp";
pub(crate) const CORRUPT_SUFFIX: &str = ".corrupt";

/// `log.000000010000002a` for zxid `0x10000002a`.
pub(crate) fn log_name(first: Zxid) -> String {
    format!("{LOG_PREFIX}{:016x}", first.to_u64())
}

/// `snapshot.000000010000002a` for zxid `0x10000002a`.
pub(crate) fn snap_name(zxid: Zxid) -> String {
    format!("{SNAP_PREFIX}{:016x}", zxid.to_u64())
}

/// The zxid in a name `<prefix><16 hex digits>`, or `None` if `name` is not exactly that.
pub(crate) fn parse_name(name: &str, prefix: &str) -> Option<Zxid> {
    let hex = name.strip_prefix(prefix)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(Zxid::from_u64)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_le_bytes(a))
}

pub(crate) fn encode_log_header(first: Zxid, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(LOG_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&first.to_u64().to_le_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// What a log segment's header looks like.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderState {
    Valid,
    /// Shorter than a header, or all zeros: what a crash during the segment's creation leaves.
    Torn,
    /// Anything else that is not a valid header for this segment: damage.
    Bad(String),
    /// A valid header of a format version this build does not read: not damage, refused.
    Unsupported(String),
}

pub(crate) fn check_log_header(bytes: &[u8], expected_first: Zxid) -> HeaderState {
    let Some(h) = bytes.get(..LOG_HEADER_LEN) else {
        return HeaderState::Torn;
    };
    if h.iter().all(|&b| b == 0) {
        return HeaderState::Torn;
    }
    if &h[..8] != LOG_MAGIC {
        return HeaderState::Bad("not a zab log segment (bad magic)".into());
    }
    if u32_at(h, 24) != Some(crc32c::crc32c(&h[..24])) {
        return HeaderState::Bad("header checksum mismatch".into());
    }
    match u32_at(h, 8) {
        Some(FORMAT_VERSION) => {}
        v => {
            return HeaderState::Unsupported(format!(
                "unsupported format version {v:?} (this build reads {FORMAT_VERSION})"
            ));
        }
    }
    let first = u64_at(h, 16).map(Zxid::from_u64);
    if first != Some(expected_first) {
        return HeaderState::Bad(format!(
            "header says the segment starts at {first:?}, its name says {expected_first}"
        ));
    }
    HeaderState::Valid
}

pub(crate) fn encode_record(zxid: Zxid, payload: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    // The caller checked `payload.len() <= max_record_bytes`, a u32.
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&zxid.to_u64().to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// One record found in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordPos {
    pub zxid: Zxid,
    pub start: usize,
    pub payload: Range<usize>,
}

impl RecordPos {
    pub fn end(&self) -> usize {
        self.payload.end
    }
}

/// The result of decoding the record at some offset.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecordRead {
    Valid(RecordPos),
    /// Not a valid record; the reason says why (incomplete, checksum, length).
    Invalid {
        /// Why.
        reason: String,
        /// The record's header or payload runs past the end of the file.
        incomplete: bool,
    },
}

fn invalid(reason: impl Into<String>, incomplete: bool) -> RecordRead {
    RecordRead::Invalid {
        reason: reason.into(),
        incomplete,
    }
}

pub(crate) fn read_record(bytes: &[u8], at: usize, max_record_bytes: u32) -> RecordRead {
    let remaining = bytes.len().saturating_sub(at);
    if remaining < RECORD_HEADER_LEN {
        return invalid(
            format!("incomplete record header ({remaining} of {RECORD_HEADER_LEN} bytes)"),
            true,
        );
    }
    let (Some(crc), Some(len), Some(zxid)) = (
        u32_at(bytes, at),
        u32_at(bytes, at + 4),
        u64_at(bytes, at + 8),
    ) else {
        return invalid("incomplete record header", true);
    };
    let end = at + RECORD_HEADER_LEN + len as usize;
    if end > bytes.len() {
        return invalid(
            format!(
                "incomplete record ({} of {} payload bytes)",
                remaining - RECORD_HEADER_LEN,
                len
            ),
            true,
        );
    }
    if len > max_record_bytes {
        return invalid(
            format!("record length {len} exceeds the maximum {max_record_bytes}"),
            false,
        );
    }
    if crc32c::crc32c(&bytes[at + 4..end]) != crc {
        return invalid("record checksum mismatch", false);
    }
    RecordRead::Valid(RecordPos {
        zxid: Zxid::from_u64(zxid),
        start: at,
        payload: at + RECORD_HEADER_LEN..end,
    })
}

/// The first offset after `from` where a valid record starts, if any: tells a torn tail
/// (nothing valid after the damage) from corruption in the middle (valid data after it).
pub(crate) fn find_valid_record(bytes: &[u8], from: usize, max_record_bytes: u32) -> Option<usize> {
    let last_start = bytes.len().checked_sub(RECORD_HEADER_LEN)?;
    (from..=last_start).find(|&at| {
        matches!(
            read_record(bytes, at, max_record_bytes),
            RecordRead::Valid(_)
        )
    })
}

/// The decoded content of a segment, up to its first invalid record.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    pub header: HeaderState,
    pub records: Vec<RecordPos>,
    /// The first invalid record, if the valid records do not reach the end of the file.
    pub damage: Option<Damage>,
}

#[derive(Debug)]
pub(crate) struct Damage {
    pub offset: usize,
    pub reason: String,
    /// Where a valid record starts after the damage, if one does.
    pub valid_after: Option<usize>,
    /// What a write that never completed leaves (never acknowledged, safe to cut when it is
    /// at the end of the last segment): see the module docs.
    pub torn: bool,
}

/// Whether a complete record whose length field was damaged ends exactly at the end of the
/// file: the checksum holds under the length that would end it there.
fn complete_with_bad_length(bytes: &[u8], at: usize) -> bool {
    let (Some(crc), Some(payload)) = (
        u32_at(bytes, at),
        bytes.len().checked_sub(at + RECORD_HEADER_LEN),
    ) else {
        return false;
    };
    let Ok(len) = u32::try_from(payload) else {
        return false;
    };
    let mut h = crc32c::crc32c(&len.to_le_bytes());
    h = crc32c::crc32c_append(h, &bytes[at + 8..]);
    h == crc
}

/// Whether the damage at `at` looks like a torn write: the record runs past the end of the
/// file (and is not a complete record with a damaged length), or only zero bytes follow.
fn looks_torn(bytes: &[u8], at: usize, incomplete: bool) -> bool {
    let zero_tail = bytes[at..].iter().all(|&b| b == 0);
    zero_tail || (incomplete && !complete_with_bad_length(bytes, at))
}

impl SegmentScan {
    /// Where the valid content ends (the offset a torn tail is cut at).
    pub fn valid_end(&self) -> usize {
        self.records.last().map_or(LOG_HEADER_LEN, RecordPos::end)
    }
}

pub(crate) fn scan_segment(bytes: &[u8], first: Zxid, max_record_bytes: u32) -> SegmentScan {
    let header = check_log_header(bytes, first);
    let mut scan = SegmentScan {
        header,
        records: Vec::new(),
        damage: None,
    };
    if scan.header != HeaderState::Valid {
        return scan;
    }
    let mut at = LOG_HEADER_LEN;
    while at < bytes.len() {
        match read_record(bytes, at, max_record_bytes) {
            RecordRead::Valid(rec) => {
                at = rec.end();
                scan.records.push(rec);
            }
            RecordRead::Invalid { reason, incomplete } => {
                let valid_after = find_valid_record(bytes, at + 1, max_record_bytes);
                scan.damage = Some(Damage {
                    offset: at,
                    reason,
                    torn: valid_after.is_none() && looks_torn(bytes, at, incomplete),
                    valid_after,
                });
                break;
            }
        }
    }
    scan
}

pub(crate) fn encode_snapshot_header(zxid: Zxid, data: &[u8]) -> Vec<u8> {
    encode_snapshot_header_for(zxid, data.len() as u64, crc32c::crc32c(data))
}

/// The header of a snapshot of `len` data bytes with CRC-32C `crc` (a SNAP being received
/// writes it before its data arrives).
pub(crate) fn encode_snapshot_header_for(zxid: Zxid, len: u64, crc: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(SNAP_HEADER_LEN);
    h.extend_from_slice(SNAP_MAGIC);
    h.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&zxid.to_u64().to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    h.extend_from_slice(&crc.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a snapshot file's header (the first [`SNAP_HEADER_LEN`] bytes of a file of
/// `file_len` bytes); returns the data's length and CRC-32C.
pub(crate) fn check_snapshot_header(
    h: &[u8],
    expected: Zxid,
    file_len: u64,
) -> Result<(u64, u32), String> {
    let h = h
        .get(..SNAP_HEADER_LEN)
        .ok_or_else(|| format!("shorter ({file_len} bytes) than a snapshot header"))?;
    if &h[..8] != SNAP_MAGIC {
        return Err("not a zab snapshot (bad magic)".into());
    }
    if u32_at(h, 36) != Some(crc32c::crc32c(&h[..36])) {
        return Err("header checksum mismatch".into());
    }
    if u32_at(h, 8) != Some(FORMAT_VERSION) {
        return Err(format!(
            "unsupported format version {:?} (this build reads {FORMAT_VERSION})",
            u32_at(h, 8)
        ));
    }
    let zxid = u64_at(h, 16).map(Zxid::from_u64);
    if zxid != Some(expected) {
        return Err(format!(
            "header says zxid {zxid:?}, the name says {expected}"
        ));
    }
    let len = u64_at(h, 24).unwrap_or(u64::MAX);
    let data_len = file_len.saturating_sub(SNAP_HEADER_LEN as u64);
    if len != data_len {
        return Err(format!(
            "header says {len} data bytes, the file holds {data_len}"
        ));
    }
    Ok((len, u32_at(h, 32).unwrap_or(0)))
}

/// Checks a whole snapshot file; returns where its data is, or what is wrong with it.
pub(crate) fn check_snapshot(bytes: &[u8], expected: Zxid) -> Result<Range<usize>, String> {
    let (_, crc) = check_snapshot_header(bytes, expected, bytes.len() as u64)?;
    let data = SNAP_HEADER_LEN..bytes.len();
    if crc != crc32c::crc32c(&bytes[data.clone()]) {
        return Err("data checksum mismatch".into());
    }
    Ok(data)
}

#[cfg(all(test, not(zab_loom)))]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_lookalikes() {
        let z = Zxid::new(1, 42);
        assert_eq!(log_name(z), "log.000000010000002a");
        assert_eq!(parse_name(&log_name(z), LOG_PREFIX), Some(z));
        assert_eq!(parse_name(&snap_name(z), SNAP_PREFIX), Some(z));
        for bad in [
            "log.1",
            "log.000000010000002a.tmp",
            "log.00000001000000zz",
            "x",
        ] {
            assert_eq!(parse_name(bad, LOG_PREFIX), None, "{bad}");
        }
    }

    #[test]
    fn records_round_trip_and_every_single_byte_flip_is_detected() {
        let mut bytes = Vec::new();
        encode_record(Zxid::new(2, 7), b"payload", &mut bytes);
        let RecordRead::Valid(rec) = read_record(&bytes, 0, 1024) else {
            panic!("valid record expected");
        };
        assert_eq!(rec.zxid, Zxid::new(2, 7));
        assert_eq!(&bytes[rec.payload.clone()], b"payload");
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                assert!(
                    matches!(read_record(&damaged, 0, 1024), RecordRead::Invalid { .. }),
                    "flip of bit {bit} of byte {i} undetected"
                );
            }
        }
    }

    fn segment(n: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_log_header(Zxid::new(1, 1), &mut bytes);
        for c in 1..=n {
            encode_record(Zxid::new(1, c), b"some payload bytes", &mut bytes);
        }
        bytes
    }

    #[test]
    fn every_bit_flip_in_the_last_record_is_damage_not_a_torn_write() {
        let bytes = segment(3);
        let last = scan_segment(&bytes, Zxid::new(1, 1), 1024).records[2].start;
        for i in last..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                let scan = scan_segment(&damaged, Zxid::new(1, 1), 1024);
                let d = scan.damage.expect("damage found");
                assert_eq!(d.offset, last, "byte {i} bit {bit}");
                assert!(
                    !d.torn,
                    "flip of bit {bit} of byte {i} taken for a torn write"
                );
            }
        }
    }

    #[test]
    fn every_prefix_and_zero_filled_tail_is_a_torn_write() {
        let bytes = segment(3);
        let full = scan_segment(&bytes, Zxid::new(1, 1), 1024);
        assert!(full.damage.is_none());
        let last = full.records[2].start;
        for cut in last + 1..bytes.len() {
            let scan = scan_segment(&bytes[..cut], Zxid::new(1, 1), 1024);
            let d = scan.damage.expect("damage found");
            assert!(d.torn, "a prefix of {cut} bytes is a torn write");
            assert_eq!(scan.records.len(), 2);
        }
        let mut zeroed = bytes.clone();
        zeroed[last..].fill(0);
        let d = scan_segment(&zeroed, Zxid::new(1, 1), 1024)
            .damage
            .expect("damage found");
        assert!(d.torn, "a zero-filled last record is a torn write");
        let mut grown = bytes.clone();
        grown.extend_from_slice(&[0; 100]);
        let d = scan_segment(&grown, Zxid::new(1, 1), 1024)
            .damage
            .expect("damage found");
        assert!(d.torn && d.offset == bytes.len());
    }

    #[test]
    fn snapshot_header_checks() {
        let data = b"state".to_vec();
        let mut file = encode_snapshot_header(Zxid::new(1, 3), &data);
        file.extend_from_slice(&data);
        assert_eq!(
            check_snapshot(&file, Zxid::new(1, 3)),
            Ok(SNAP_HEADER_LEN..file.len())
        );
        assert!(check_snapshot(&file, Zxid::new(1, 4)).is_err());
        assert!(check_snapshot(&file[..file.len() - 1], Zxid::new(1, 3)).is_err());
        for i in 0..file.len() {
            let mut damaged = file.clone();
            damaged[i] ^= 0x40;
            assert!(
                check_snapshot(&damaged, Zxid::new(1, 3)).is_err(),
                "byte {i}"
            );
        }
    }

    #[test]
    fn headers_tell_torn_from_bad() {
        let mut h = Vec::new();
        encode_log_header(Zxid::new(1, 1), &mut h);
        assert_eq!(check_log_header(&h, Zxid::new(1, 1)), HeaderState::Valid);
        assert_eq!(
            check_log_header(&h[..10], Zxid::new(1, 1)),
            HeaderState::Torn
        );
        assert_eq!(
            check_log_header(&[0; 40], Zxid::new(1, 1)),
            HeaderState::Torn
        );
        assert!(matches!(
            check_log_header(&h, Zxid::new(1, 2)),
            HeaderState::Bad(_)
        ));
        let mut v2 = h.clone();
        v2[8] = 2;
        assert!(matches!(
            check_log_header(&v2, Zxid::new(1, 1)),
            HeaderState::Bad(_)
        ));
        let mut v9 = Vec::new();
        v9.extend_from_slice(LOG_MAGIC);
        v9.extend_from_slice(&9u32.to_le_bytes());
        v9.extend_from_slice(&0u32.to_le_bytes());
        v9.extend_from_slice(&Zxid::new(1, 1).to_u64().to_le_bytes());
        let crc = crc32c::crc32c(&v9);
        v9.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            check_log_header(&v9, Zxid::new(1, 1)),
            HeaderState::Unsupported(_)
        ));
    }
}
