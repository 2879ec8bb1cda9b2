//! Recovery: a torn tail is cut with a warning at every cut point; damage that a crash cannot
//! explain keeps the valid prefix, drops the rest durably and sets the `recovering` flag
//! (`spec/PROTOCOL.md` §7.1), naming the file and byte offset; zxids duplicated or out of
//! order are refused; nothing on disk makes recovery panic.

use std::path::Path;

use proptest::prelude::*;
use zab_spec::Zxid;

use super::{
    config, fresh, log_dir, log_files, open, payload, records, with_file, with_warnings, write_log,
    z,
};
use crate::storage::{
    CrashMode, FileSystem, SimFs, StorageError,
    format::{LOG_HEADER_LEN, RECORD_HEADER_LEN, encode_log_header, encode_record, log_name},
};

/// Where each record of transactions 1..=n starts in a single segment.
fn record_starts(n: u32) -> Vec<usize> {
    let mut at = LOG_HEADER_LEN;
    (1..=n)
        .map(|c| {
            let start = at;
            at += RECORD_HEADER_LEN + payload(c).len();
            start
        })
        .collect()
}

/// Recovery found damage at `file:offset`, kept `kept` transactions, and the `recovering`
/// flag is durable.
fn assert_damaged_at(image: &SimFs, opened: &super::Opened, file: &Path, offset: u64, kept: u32) {
    let (storage, recovered) = opened
        .as_ref()
        .expect("damage is recovered from, not refused");
    assert!(recovered.recovering && storage.epochs().recovering());
    assert_eq!(recovered.txns, records(1..=kept), "damage at {offset}");
    let [what] = recovered.damage.as_slice() else {
        panic!("one damage report expected: {:?}", recovered.damage);
    };
    assert!(what.contains(&file.display().to_string()), "{what}");
    assert!(what.contains(&format!("byte offset {offset}")), "{what}");
    let flag = image
        .read_durable(Path::new("/data/zab-v1/recovering"))
        .expect("the recovering flag is durable");
    assert!(String::from_utf8_lossy(&flag).contains(what.as_str()));
}

fn assert_corrupt_at(err: &StorageError, file: &Path, offset: u64) {
    match err {
        StorageError::Corrupt {
            path, offset: o, ..
        } => {
            assert_eq!((path.as_path(), *o), (file, offset), "{err}");
            let msg = err.to_string();
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            assert!(msg.contains(&format!("byte offset {offset}")), "{msg}");
        }
        other => panic!(
            "expected corruption at {}:{offset}, got {other}",
            file.display()
        ),
    }
}

#[test]
fn torn_tail_is_cut_with_a_warning_at_every_cut_point_of_the_last_record() {
    let sim = SimFs::new();
    drop(write_log(&sim, 3));
    let [file] = log_files(&sim).try_into().unwrap();
    let bytes = sim.read_durable(&file).unwrap();
    let last_start = record_starts(3)[2];
    assert!(last_start < bytes.len());
    for cut in last_start..bytes.len() {
        let image = with_file(&sim, &file, &bytes[..cut]);
        let (opened, warnings) = with_warnings(|| open(&image));
        let (mut storage, recovered) = opened.unwrap();
        assert_eq!(recovered.txns, records(1..=2), "cut at {cut}");
        if cut == last_start {
            assert!(warnings.is_empty(), "a clean end is not torn: {warnings:?}");
        } else {
            assert_eq!(warnings.len(), 1, "cut at {cut}: {warnings:?}");
            assert!(warnings[0].contains("torn tail"), "{warnings:?}");
            assert!(
                warnings[0].contains(&format!("offset={last_start}")),
                "{warnings:?}"
            );
        }
        // The cut itself is durable, and the log continues after it.
        assert_eq!(image.read_durable(&file).unwrap().len(), last_start);
        storage.append(z(3), b"again").unwrap();
        storage.sync().unwrap();
        drop(storage);
        let (_, recovered) = open(&image).unwrap();
        assert_eq!(recovered.last_zxid(), z(3));
        assert_eq!(&recovered.txns[2].payload[..], b"again");
    }
}

#[test]
fn every_cut_point_of_a_segment_recovers_the_records_wholly_before_it() {
    let sim = SimFs::new();
    drop(write_log(&sim, 4));
    let [file] = log_files(&sim).try_into().unwrap();
    let bytes = sim.read_durable(&file).unwrap();
    let starts = record_starts(4);
    for cut in 0..=bytes.len() {
        let image = with_file(&sim, &file, &bytes[..cut]);
        let (opened, warnings) = with_warnings(|| open(&image));
        let (_, recovered) = opened.unwrap();
        let whole = (1..=4u32)
            .filter(|&c| {
                let end = starts.get(c as usize).copied().unwrap_or(bytes.len());
                end <= cut
            })
            .count() as u32;
        assert_eq!(recovered.txns, records(1..=whole), "cut at {cut}");
        // A cut between records is clean, unless it leaves no record at all.
        let clean = (cut == bytes.len() || starts.contains(&cut)) && cut > LOG_HEADER_LEN;
        assert_eq!(warnings.is_empty(), clean, "cut at {cut}: {warnings:?}");
        if cut <= LOG_HEADER_LEN {
            // A segment without a complete header or without records is removed.
            assert!(log_files(&image).is_empty(), "cut at {cut}");
        }
    }
}

#[test]
fn a_zero_filled_tail_is_a_torn_tail() {
    let sim = SimFs::new();
    drop(write_log(&sim, 3));
    let [file] = log_files(&sim).try_into().unwrap();
    let mut bytes = sim.read_durable(&file).unwrap();
    let len = bytes.len();
    bytes.extend_from_slice(&[0; 4096]);
    let image = with_file(&sim, &file, &bytes);
    let (opened, warnings) = with_warnings(|| open(&image));
    assert_eq!(opened.unwrap().1.txns, records(1..=3));
    assert_eq!(warnings.len(), 1);
    assert_eq!(image.read_durable(&file).unwrap().len(), len);
}

#[test]
fn a_flipped_bit_anywhere_keeps_the_records_before_it_and_recovers() {
    // The last record included: a bit flip in a complete, fsynced record is not a torn
    // write, whatever field it hits (its length too).
    let sim = SimFs::new();
    drop(write_log(&sim, 3));
    let [file] = log_files(&sim).try_into().unwrap();
    let bytes = sim.read_durable(&file).unwrap();
    let starts = record_starts(3);
    for i in 0..bytes.len() {
        for bit in [0, 4, 7] {
            let mut damaged = bytes.clone();
            damaged[i] ^= 1 << bit;
            let image = with_file(&sim, &file, &damaged);
            let opened = open(&image);
            let (offset, kept) = if i < LOG_HEADER_LEN {
                (0, 0)
            } else {
                let k = starts.iter().rposition(|&s| s <= i).unwrap();
                (starts[k], k as u32)
            };
            assert_damaged_at(&image, &opened, &file, offset as u64, kept);
            // The damaged part is gone durably; the log continues after the kept prefix.
            let (mut storage, _) = opened.unwrap();
            storage.append(z(kept + 1), b"again").unwrap();
            storage.sync().unwrap();
            drop(storage);
            let (_, again) = open(&image).unwrap();
            assert_eq!(again.last_zxid(), z(kept + 1), "flip of bit {bit} at {i}");
            assert!(again.recovering && again.damage.is_empty());
        }
    }
}

#[test]
fn a_fsynced_suffix_cut_at_a_record_boundary_is_found_by_the_end_mark() {
    // No checksum can show a log cut cleanly between records; the end mark, written after
    // each fsync, says how far the log was durable.
    let sim = SimFs::new();
    drop(write_log(&sim, 4));
    let [file] = log_files(&sim).try_into().unwrap();
    let bytes = sim.read_durable(&file).unwrap();
    let mark = log_dir().join(crate::storage::log::END_MARK);
    // The mark is not fsynced: a process crash keeps it (the page cache), as here.
    let mark_bytes = sim.read(&mark).unwrap();
    for kept in 1..4u32 {
        let cut = record_starts(4)[kept as usize];
        let image = with_file(&sim, &file, &bytes[..cut]);
        image.put_file(&mark, &mark_bytes);
        let (_, r) = open(&image).unwrap();
        assert!(r.recovering, "cut after {kept} records");
        assert_eq!(r.txns, records(1..=kept));
        assert!(r.damage[0].contains("fsynced records"), "{:?}", r.damage);
        // Reported once: the mark is gone with the damage.
        let (_, again) = open(&image).unwrap();
        assert!(again.recovering && again.damage.is_empty());
    }
    // A mark lost or torn in a power failure misses damage, never invents it.
    for m in [&b""[..], &mark_bytes[..5], b"garbage-garbage"] {
        let image = with_file(&sim, &file, &bytes);
        image.put_file(&mark, m);
        let (_, r) = open(&image).unwrap();
        assert!(!r.recovering && r.damage.is_empty());
    }
    // A deliberate cut (TRUNC) is not damage.
    let image = with_file(&sim, &file, &bytes);
    image.put_file(&mark, &mark_bytes);
    let (mut s, _) = open(&image).unwrap();
    s.truncate_after(z(2)).unwrap();
    drop(s);
    let (_, r) = open(&image).unwrap();
    assert!(!r.recovering && r.damage.is_empty());
    assert_eq!(r.txns, records(1..=2));
}

#[test]
fn damage_in_a_sealed_segment_drops_it_and_every_later_segment() {
    let sim = SimFs::new();
    drop(write_log(&sim, 20));
    let files = log_files(&sim);
    assert!(files.len() >= 3, "{files:?}");
    let first = &files[0];
    let bytes = sim.read_durable(first).unwrap();
    let in_first = record_starts(20)
        .iter()
        .filter(|&&s| s < bytes.len())
        .count() as u32;
    // Cut the first segment's last record as a crash would tear a tail: in a sealed
    // segment, that is damage.
    let image = with_file(&sim, first, &bytes[..bytes.len() - 3]);
    let opened = open(&image);
    let last_start = record_starts(in_first)[in_first as usize - 1];
    assert_damaged_at(&image, &opened, first, last_start as u64, in_first - 1);
    let report = &opened.as_ref().unwrap().1.damage[0];
    assert!(report.contains("sealed segment"), "{report}");
    assert_eq!(log_files(&image), vec![first.clone()]);
}

#[test]
fn a_torn_last_segment_of_several_is_cut() {
    let sim = SimFs::new();
    drop(write_log(&sim, 20));
    let files = log_files(&sim);
    let last = files.last().unwrap();
    let bytes = sim.read_durable(last).unwrap();
    let image = with_file(&sim, last, &bytes[..bytes.len() - 1]);
    let (opened, warnings) = with_warnings(|| open(&image));
    assert_eq!(opened.unwrap().1.txns, records(1..=19));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

/// A segment named after its first zxid holding exactly `zxids`.
fn segment(first: Zxid, zxids: &[Zxid]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_log_header(first, &mut out);
    for &zx in zxids {
        encode_record(zx, b"p", &mut out);
    }
    out
}

/// Segment files as (first zxid, content).
type Segments = Vec<(Zxid, Vec<u8>)>;

fn crafted(segments: &[(Zxid, Vec<u8>)]) -> SimFs {
    let sim = SimFs::new();
    drop(fresh(&sim));
    for (first, bytes) in segments {
        sim.put_file(&log_dir().join(log_name(*first)), bytes);
    }
    sim
}

#[test]
fn crafted_segments_are_accepted_when_well_formed() {
    let sim = crafted(&[
        (z(1), segment(z(1), &[z(1), z(2)])),
        (z(3), segment(z(3), &[z(3), Zxid::new(2, 1)])),
    ]);
    let (_, recovered) = open(&sim).unwrap();
    let zxids: Vec<Zxid> = recovered.txns.iter().map(|t| t.zxid).collect();
    assert_eq!(zxids, [z(1), z(2), z(3), Zxid::new(2, 1)]);
}

#[test]
fn zxids_duplicated_out_of_order_or_missing_across_segments_are_refused() {
    let cases: Vec<(&str, Segments, &str)> = vec![
        (
            "duplicate across segments",
            vec![
                (z(1), segment(z(1), &[z(1), z(2)])),
                (z(2), segment(z(2), &[z(2), z(3)])),
            ],
            "log.0000000100000001",
        ),
        (
            "out of order across segments",
            vec![
                (z(1), segment(z(1), &[z(1), z(5)])),
                (z(3), segment(z(3), &[z(3)])),
            ],
            "log.0000000100000001",
        ),
        (
            "out of order within a segment",
            vec![(z(2), segment(z(2), &[z(2), z(1)]))],
            "previous record",
        ),
    ];
    for (what, segments, needle) in cases {
        let err = open(&crafted(&segments)).unwrap_err();
        assert!(
            matches!(err, StorageError::Inconsistent(_)),
            "{what}: {err}"
        );
        assert!(err.to_string().contains(needle), "{what}: {err}");
    }
    // A lost segment (a gap) is lost durable state: keep what chains, recover.
    for (segments, kept) in [
        (
            vec![
                (z(1), segment(z(1), &[z(1), z(2)])),
                (z(4), segment(z(4), &[z(4)])),
            ],
            vec![z(1), z(2)],
        ),
        (vec![(z(2), segment(z(2), &[z(2), z(3)]))], vec![]),
    ] {
        let sim = crafted(&segments);
        let (_, r) = open(&sim).unwrap();
        assert!(r.recovering);
        assert_eq!(r.txns.iter().map(|t| t.zxid).collect::<Vec<_>>(), kept);
        assert!(
            r.damage[0].contains("transactions are missing"),
            "{:?}",
            r.damage
        );
        let (_, again) = open(&sim).unwrap();
        assert_eq!(again.txns.iter().map(|t| t.zxid).collect::<Vec<_>>(), kept);
    }
}

#[test]
fn headers_and_names_must_agree() {
    let seg_dir = log_dir();
    let name = seg_dir.join(log_name(z(1)));
    // The header names another first zxid: a damaged header.
    let (_, r) = open(&crafted(&[(z(1), segment(z(2), &[z(1)]))])).unwrap();
    assert!(r.recovering && r.txns.is_empty());
    assert!(r.damage[0].contains("byte offset 0"), "{:?}", r.damage);
    // The first record is not the one the name says.
    let err = open(&crafted(&[
        (z(1), segment(z(1), &[z(2)])),
        (z(3), segment(z(3), &[z(3)])),
    ]))
    .unwrap_err();
    assert_corrupt_at(&err, &name, LOG_HEADER_LEN as u64);
    // Another format version (with a valid header checksum).
    let mut v2 = segment(z(1), &[z(1)]);
    v2[8] = 2;
    let crc = crc32c::crc32c(&v2[..24]);
    v2[24..28].copy_from_slice(&crc.to_le_bytes());
    let err = open(&crafted(&[(z(1), v2)])).unwrap_err();
    assert_corrupt_at(&err, &name, 0);
    assert!(
        err.to_string().contains("unsupported format version"),
        "{err}"
    );
    // A zeroed header with valid records after it is not a torn creation: damage.
    let mut zeroed = segment(z(1), &[z(1), z(2)]);
    zeroed[..LOG_HEADER_LEN].fill(0);
    let (_, r) = open(&crafted(&[(z(1), zeroed)])).unwrap();
    assert!(r.recovering && r.txns.is_empty());
    // An unexpected file name in the log directory.
    let sim = crafted(&[(z(1), segment(z(1), &[z(1)]))]);
    sim.put_file(&seg_dir.join("log.12"), b"");
    assert!(matches!(
        open(&sim).unwrap_err(),
        StorageError::Inconsistent(_)
    ));
}

#[test]
fn a_torn_header_or_an_empty_last_segment_is_removed() {
    let full = segment(z(1), &[z(1), z(2)]);
    for last in [Vec::new(), vec![0; 10], vec![0; 100], segment(z(3), &[])] {
        let sim = crafted(&[(z(1), full.clone()), (z(3), last.clone())]);
        let (opened, warnings) = with_warnings(|| open(&sim));
        assert_eq!(opened.unwrap().1.last_zxid(), z(2), "{last:?}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(log_files(&sim).len(), 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever bytes are damaged, recovery returns an error or a prefix of what was
    /// written: it never panics and never invents or reorders transactions.
    #[test]
    fn random_damage_never_panics_and_never_invents_records(
        n in 1u32..30,
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let sim = SimFs::new();
        drop(write_log(&sim, n));
        let files = log_files(&sim);
        let mut image = sim.durable_image(CrashMode::DropUnsynced);
        for (at, xor) in flips {
            let file = at.get(&files);
            let mut bytes = image.read_durable(file).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
            image = with_file(&image, file, &bytes);
        }
        if let Some(at) = cut {
            let file = files.last().unwrap();
            let bytes = image.read_durable(file).unwrap();
            image = with_file(&image, file, &bytes[..at.index(bytes.len() + 1)]);
        }
        if let Ok((_, recovered)) = open(&image) {
            let k = recovered.txns.len() as u32;
            prop_assert!(k <= n);
            prop_assert_eq!(recovered.txns, records(1..=k));
        }
    }

    /// Garbage in any file storage reads (log segment, snapshot, epoch file) is an error or
    /// ignored, never a panic.
    #[test]
    fn garbage_files_never_panic(
        garbage in prop::collection::vec(any::<u8>(), 0..300),
        which in 0usize..4,
    ) {
        let sim = SimFs::new();
        drop(write_log(&sim, 3));
        let path = match which {
            0 => log_dir().join(log_name(z(1))),
            1 => log_dir().join(log_name(z(4))),
            2 => Path::new("/data/zab-v1/snapshot.0000000100000002").to_path_buf(),
            _ => Path::new("/data/zab-v1/currentEpoch").to_path_buf(),
        };
        sim.put_file(&path, &garbage);
        let _ = open(&sim);
    }

    /// A crash that tears the unsynced tail at a random point recovers a prefix holding at
    /// least everything synced.
    #[test]
    fn a_torn_crash_recovers_a_prefix_with_everything_synced(
        synced in 0u32..15,
        unsynced in 0u32..15,
        seed in any::<u64>(),
    ) {
        let sim = SimFs::new();
        let mut storage = write_log(&sim, synced);
        for c in synced + 1..=synced + unsynced {
            storage.append(z(c), &payload(c)).unwrap();
        }
        // Buffered appends reach the file (not the disk) before the crash.
        let _ = storage.read_after(Zxid::ZERO);
        sim.crash(CrashMode::TornTail { seed });
        drop(storage);
        let (_, recovered) = open(&sim).unwrap();
        let k = recovered.txns.len() as u32;
        prop_assert!(k >= synced && k <= synced + unsynced, "{} of {}+{}", k, synced, unsynced);
        prop_assert_eq!(recovered.txns, records(1..=k));
    }
}

#[test]
fn config_keeps_segments_small_in_these_tests() {
    assert_eq!(config().segment_bytes, 200);
}
