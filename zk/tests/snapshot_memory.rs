//! A snapshot is decoded straight into the tree (issue 12): rebuilding a tree from a snapshot
//! file never holds the serialized snapshot, nor a list of decoded records, beside the tree.
//! Measured as this process's resident set: the peak (`VmHWM`) while
//! `DataTree::read_snapshot` reads a ~55 MB snapshot file, against what the finished tree
//! holds. The file is written record by record, so no tree exists in this process before the
//! one being measured. Bytes, never timings; one test function (the resident set is
//! process-wide).

#![allow(clippy::print_stderr)]

use std::io::{BufReader, BufWriter, Write as _};
use zab_zk::DataTree;
use zab_zk::jute::Writer;
use zab_zk::proto::ids;
use zab_zk::tree::StatPersisted;
use zab_zk::tree::snapshot::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION};

fn status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    assert!(kb.is_some(), "no {key} in /proc/self/status");
    kb.unwrap_or(0)
}

/// Writes a snapshot of `/`, `parents` nodes under it and `children` nodes of `data` bytes
/// under each, in path order, without building a tree; returns the file's size.
fn write_snapshot(path: &std::path::Path, parents: usize, children: usize, data: usize) -> u64 {
    let file = std::fs::File::create(path).expect("create the snapshot file");
    let mut out = BufWriter::new(file);
    let mut crc = 0u32;
    let mut size = 0u64;
    let mut put = |w: Writer, out: &mut BufWriter<std::fs::File>| {
        let b = w.into_vec();
        crc = crc32c::crc32c_append(crc, &b);
        size += b.len() as u64;
        out.write_all(&b).expect("write");
    };
    let mut w = Writer::new();
    w.write_raw(&SNAPSHOT_MAGIC.to_be_bytes());
    w.write_raw(&SNAPSHOT_VERSION.to_be_bytes());
    w.write_i64(0); // sessions
    w.write_i64(0); // imported sessions
    w.write_i64(0); // passwords
    w.write_i64((1 + parents + parents * children) as i64);
    put(w, &mut out);
    let acl = ids::open_acl_unsafe();
    let value = vec![b'v'; data];
    let node = |path: &str, data: Option<&[u8]>| {
        let mut w = Writer::new();
        w.write_str(path);
        w.write_buffer(data);
        w.write_vec(&acl, |w, a| {
            w.write_i32(a.perms);
            w.write_str(&a.id.scheme);
            w.write_str(&a.id.id);
        });
        StatPersisted::default().write(&mut w);
        w
    };
    put(node("/", None), &mut out);
    for p in 0..parents {
        put(node(&format!("/p{p:03}"), None), &mut out);
        for c in 0..children {
            put(node(&format!("/p{p:03}/c{c:05}"), Some(&value)), &mut out);
        }
    }
    let crc = crc;
    out.write_all(&crc.to_be_bytes()).expect("write");
    out.flush().expect("flush");
    size + 4
}

#[test]
fn decoding_a_snapshot_peaks_at_about_the_trees_size() {
    const PARENTS: usize = 50;
    const CHILDREN: usize = 1_000;
    const DATA: usize = 1_000;
    let path = std::env::temp_dir().join(format!("zab-snapshot-memory-{}", std::process::id()));
    let len = write_snapshot(&path, PARENTS, CHILDREN, DATA);
    let before = status_kb("VmRSS:");
    let peak_before = status_kb("VmHWM:");
    let file = std::fs::File::open(&path).expect("open");
    let tree = DataTree::read_snapshot(BufReader::new(file), len);
    let _ = std::fs::remove_file(&path);
    let tree = tree.expect("the snapshot decodes");
    assert_eq!(tree.node_count(), 1 + PARENTS + PARENTS * CHILDREN);
    let held = status_kb("VmRSS:").saturating_sub(before) as f64 * 1024.0;
    let peak = status_kb("VmHWM:").saturating_sub(before.max(peak_before)) as f64 * 1024.0;
    let peak = peak.max(held);
    eprintln!(
        "snapshot {:.1} MB: the tree holds {:.1} MB, the decoding peaked {:.1} MB above the start",
        len as f64 / 1e6,
        held / 1e6,
        peak / 1e6
    );
    assert!(
        held >= 0.8 * (PARENTS * CHILDREN * DATA) as f64,
        "the tree holds its data ({:.1} MB)",
        held / 1e6
    );
    // Decoding into a list of records first, or holding the file's bytes, would peak at
    // about twice the tree; building the tree as the records arrive peaks at the tree plus
    // a read buffer.
    assert!(
        peak <= 1.15 * held + 8e6,
        "decoding peaked {:.1} MB above the start for a tree of {:.1} MB",
        peak / 1e6,
        held / 1e6
    );
    drop(tree);
}
