//! A SNAP as a bounded sequence of frames (issues 11 and 12): [`crate::wire::snap_frames`] cuts a
//! serialized snapshot into SNAP (last zxid, size, CRC32C), SNAPCHUNKs of at most
//! [`crate::wire::SNAP_CHUNK`] bytes and SNAPEND; [`SnapAssembler`] checks and reassembles them on the
//! follower, refusing a chunk that is out of order, past the announced size, a sequence
//! interrupted by another frame, a size or checksum that does not match, or a SNAPEND for
//! another zxid. The network layer runs the assembler, so the core and the runtime see one
//! `QuorumMessage::Snap`, as the model does.
//!
//! In `zabd` ([`SnapAssembler::spooling_to`] the snapshot directory) the chunks go straight
//! into a temporary snapshot file ([`SnapSpool`]) as they arrive, and the `Snap` carries that
//! file: a follower never holds a received snapshot in memory, only the tree it rebuilds
//! from it. Without a directory (the simulation, tests) they are kept in memory.

use crate::storage::{SnapData, SnapSpool};
use crate::wire::Frame;
pub use crate::wire::snap_frames;
use bytes::{Bytes, BytesMut};
use std::path::PathBuf;
use zab_spec::{QuorumMessage, Zxid};

/// Why a SNAP sequence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapStreamError {
    /// A SNAPCHUNK or SNAPEND without a SNAP before it.
    #[error("{0} without a SNAP header")]
    NoHeader(&'static str),
    /// Another frame arrived in the middle of a SNAP.
    #[error("a {0} frame in the middle of a SNAP (after {1} of {2} bytes)")]
    Interrupted(&'static str, u64, u64),
    /// A chunk not at the next offset.
    #[error("chunk at offset {got}, expected {expected}")]
    OutOfOrder {
        /// The chunk's offset.
        got: u64,
        /// The bytes received so far.
        expected: u64,
    },
    /// A chunk past the announced size, or a size larger than this follower accepts.
    #[error("{got} bytes, more than the {limit} announced or accepted")]
    Oversized {
        /// Bytes the chunk would bring the snapshot to (or the announced size).
        got: u64,
        /// The limit.
        limit: u64,
    },
    /// An empty chunk (a sender that makes no progress).
    #[error("empty chunk at offset {0}")]
    EmptyChunk(u64),
    /// SNAPEND before every byte arrived.
    #[error("SNAPEND after {got} of {total} bytes")]
    Truncated {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        total: u64,
    },
    /// SNAPEND for another snapshot.
    #[error("SNAPEND for {end}, the SNAP was for {begin}")]
    WrongEnd {
        /// The SNAP's zxid.
        begin: Zxid,
        /// The SNAPEND's.
        end: Zxid,
    },
    /// The bytes do not match the announced CRC32C.
    #[error("checksum {got:#010x}, the SNAP announced {expected:#010x}")]
    Checksum {
        /// Computed.
        got: u32,
        /// Announced.
        expected: u32,
    },
    /// The temporary file the SNAP goes into could not be written (this server's disk).
    #[error("cannot write the SNAP to {path}: {error}")]
    Spool {
        /// The file.
        path: String,
        /// What failed.
        error: String,
    },
}

/// A SNAP being received.
#[derive(Debug)]
struct InProgress {
    last_zxid: Zxid,
    total: u64,
    crc: u32,
    running_crc: u32,
    sink: Sink,
    received: u64,
}

/// Where the chunks of a SNAP go.
#[derive(Debug)]
enum Sink {
    /// Kept in memory (each chunk shares the buffer it was read into: no copy until the
    /// end, and memory grows only with the bytes that arrive, never with the announcement).
    Memory(Vec<Bytes>),
    /// Written to a temporary snapshot file.
    File(SnapSpool),
}

/// Reassembles SNAP sequences on one connection; every other frame passes through.
#[derive(Debug)]
pub struct SnapAssembler {
    max_total: u64,
    current: Option<InProgress>,
    largest_chunk: usize,
    spool_dir: Option<PathBuf>,
}

impl SnapAssembler {
    /// An assembler that refuses snapshots announced larger than `max_total` bytes.
    #[must_use]
    pub fn new(max_total: u64) -> SnapAssembler {
        SnapAssembler {
            max_total,
            current: None,
            largest_chunk: 0,
            spool_dir: None,
        }
    }

    /// Writes each SNAP's chunks to a temporary file in `dir` (the snapshot directory, so
    /// that installing it is a rename) instead of keeping them in memory; `None` keeps them
    /// in memory.
    #[must_use]
    pub fn spooling_to(mut self, dir: Option<PathBuf>) -> SnapAssembler {
        self.spool_dir = dir;
        self
    }

    /// Whether a SNAP is being received.
    #[must_use]
    pub fn in_progress(&self) -> bool {
        self.current.is_some()
    }

    /// The largest chunk payload seen so far (bytes).
    #[must_use]
    pub fn largest_chunk(&self) -> usize {
        self.largest_chunk
    }

    /// Takes one frame: `Ok(Some(frame))` for a frame to hand on (a frame outside a SNAP, or
    /// the whole `QuorumMessage::Snap` once SNAPEND checked it), `Ok(None)` while a SNAP is
    /// being received. After an error the connection must be dropped.
    pub fn push<P>(&mut self, frame: Frame<P>) -> Result<Option<Frame<P>>, SnapStreamError> {
        match frame {
            Frame::SnapBegin {
                last_zxid,
                total,
                crc,
            } => {
                if let Some(c) = &self.current {
                    return Err(SnapStreamError::Interrupted("SNAP", c.received, c.total));
                }
                if total > self.max_total {
                    return Err(SnapStreamError::Oversized {
                        got: total,
                        limit: self.max_total,
                    });
                }
                let sink = match &self.spool_dir {
                    None => Sink::Memory(Vec::new()),
                    Some(dir) => {
                        Sink::File(SnapSpool::create(dir, last_zxid, total, crc).map_err(|e| {
                            SnapStreamError::Spool {
                                path: dir.display().to_string(),
                                error: e.to_string(),
                            }
                        })?)
                    }
                };
                self.current = Some(InProgress {
                    last_zxid,
                    total,
                    crc,
                    running_crc: 0,
                    sink,
                    received: 0,
                });
                Ok(None)
            }
            Frame::SnapChunk { offset, data } => {
                let Some(c) = &mut self.current else {
                    return Err(SnapStreamError::NoHeader("SNAPCHUNK"));
                };
                let have = c.received;
                if offset != have {
                    return Err(SnapStreamError::OutOfOrder {
                        got: offset,
                        expected: have,
                    });
                }
                if data.is_empty() {
                    return Err(SnapStreamError::EmptyChunk(offset));
                }
                let after = have + data.len() as u64;
                if after > c.total {
                    return Err(SnapStreamError::Oversized {
                        got: after,
                        limit: c.total,
                    });
                }
                self.largest_chunk = self.largest_chunk.max(data.len());
                c.running_crc = crc32c::crc32c_append(c.running_crc, &data);
                c.received = after;
                match &mut c.sink {
                    Sink::Memory(chunks) => chunks.push(data),
                    Sink::File(spool) => {
                        if let Err(e) = spool.write(&data) {
                            let path = spool.path().display().to_string();
                            // Dropping the spool removes its file.
                            self.current = None;
                            return Err(SnapStreamError::Spool {
                                path,
                                error: e.to_string(),
                            });
                        }
                    }
                }
                Ok(None)
            }
            Frame::SnapEnd { last_zxid } => {
                let Some(c) = self.current.take() else {
                    return Err(SnapStreamError::NoHeader("SNAPEND"));
                };
                let got = c.received;
                if got != c.total {
                    return Err(SnapStreamError::Truncated {
                        got,
                        total: c.total,
                    });
                }
                if last_zxid != c.last_zxid {
                    return Err(SnapStreamError::WrongEnd {
                        begin: c.last_zxid,
                        end: last_zxid,
                    });
                }
                if c.running_crc != c.crc {
                    return Err(SnapStreamError::Checksum {
                        got: c.running_crc,
                        expected: c.crc,
                    });
                }
                let snapshot = match c.sink {
                    Sink::Memory(chunks) => SnapData::Memory(concat(chunks, c.total)),
                    Sink::File(spool) => {
                        let path = spool.path().display().to_string();
                        spool.finish().map_err(|e| SnapStreamError::Spool {
                            path,
                            error: e.to_string(),
                        })?
                    }
                };
                Ok(Some(Frame::Zab(QuorumMessage::Snap {
                    last_zxid: c.last_zxid,
                    snapshot,
                })))
            }
            other => match &self.current {
                Some(c) => Err(SnapStreamError::Interrupted(
                    frame_name(&other),
                    c.received,
                    c.total,
                )),
                None => Ok(Some(other)),
            },
        }
    }
}

/// One copy into a buffer of the exact size; the chunks go as it fills.
fn concat(chunks: Vec<Bytes>, total: u64) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut whole = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
            for chunk in chunks {
                whole.extend_from_slice(&chunk);
            }
            whole.freeze()
        }
    }
}

fn frame_name<P>(f: &Frame<P>) -> &'static str {
    match f {
        Frame::Notification(_) => "notification",
        Frame::Zab(m) => m.name(),
        Frame::Heartbeat => "heartbeat",
        Frame::Restored => "RESTORED",
        Frame::App(..) => "application",
        Frame::SnapBegin { .. } => "SNAP",
        Frame::SnapChunk { .. } => "SNAPCHUNK",
        Frame::SnapEnd { .. } => "SNAPEND",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;
    use zab_spec::ZnodeTxn;

    type F = Frame<ZnodeTxn>;

    fn data(n: usize) -> Bytes {
        Bytes::from((0..n).map(|i| (i * 7 + i / 251) as u8).collect::<Vec<u8>>())
    }

    fn feed(a: &mut SnapAssembler, frames: Vec<F>) -> Result<Vec<F>, SnapStreamError> {
        let mut out = Vec::new();
        for f in frames {
            if let Some(f) = a.push(f)? {
                out.push(f);
            }
        }
        Ok(out)
    }

    #[test]
    fn a_snapshot_travels_in_bounded_chunks_and_comes_back_whole() {
        let z = Zxid::new(2, 9);
        let d = data(3 * wire::SNAP_CHUNK + 17);
        let frames: Vec<F> = snap_frames(z, &d);
        assert_eq!(frames.len(), 1 + 4 + 1);
        // Every frame, encoded, fits the follower's limits, and none is larger than a chunk.
        let mut buf = BytesMut::new();
        for f in &frames {
            wire::encode_frame(f, &mut buf);
        }
        let limits = wire::FrameLimits::from_leader(1 << 20);
        let mut a = SnapAssembler::new(u64::MAX);
        let mut whole = Vec::new();
        while let Some(body) = wire::take_frame(&mut buf, &limits).expect("within limits") {
            assert!(body.len() <= wire::SNAP_CHUNK + 9);
            let f: F = wire::decode_frame(&body).expect("decodable");
            whole.extend(a.push(f).expect("valid sequence"));
        }
        assert_eq!(
            whole,
            vec![Frame::Zab(QuorumMessage::Snap {
                last_zxid: z,
                snapshot: d.into()
            })]
        );
        assert_eq!(a.largest_chunk(), wire::SNAP_CHUNK);
        assert!(!a.in_progress());
        // Encoding a whole SNAP frame gives the same sequence.
        let mut one = BytesMut::new();
        wire::encode_frame::<ZnodeTxn>(&whole[0], &mut one);
        let mut again = BytesMut::new();
        for f in &frames {
            wire::encode_frame(f, &mut again);
        }
        assert_eq!(one, again);
    }

    #[test]
    fn an_empty_snapshot_is_a_header_and_an_end() {
        let frames: Vec<F> = snap_frames(Zxid::ZERO, &Bytes::new());
        assert_eq!(frames.len(), 2);
        let out = feed(&mut SnapAssembler::new(0), frames).expect("valid");
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn bad_sequences_are_refused() {
        let z = Zxid::new(1, 3);
        let d = data(2 * wire::SNAP_CHUNK + 5);
        let good: Vec<F> = snap_frames(z, &d);
        let refuse = |frames: Vec<F>| feed(&mut SnapAssembler::new(1 << 30), frames).unwrap_err();
        // A chunk without a header, an end without one.
        assert!(matches!(
            refuse(good[1..].to_vec()),
            SnapStreamError::NoHeader("SNAPCHUNK")
        ));
        assert!(matches!(
            refuse(vec![Frame::SnapEnd { last_zxid: z }]),
            SnapStreamError::NoHeader("SNAPEND")
        ));
        // Chunks swapped: out of order.
        let mut swapped = good.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            refuse(swapped),
            SnapStreamError::OutOfOrder { .. }
        ));
        // A chunk dropped: the next one is out of order; the last one dropped: truncated.
        let mut dropped = good.clone();
        dropped.remove(1);
        assert!(matches!(
            refuse(dropped),
            SnapStreamError::OutOfOrder { .. }
        ));
        let mut short = good.clone();
        short.remove(3);
        assert!(matches!(refuse(short), SnapStreamError::Truncated { .. }));
        // A chunk past the announced size.
        let mut long = good.clone();
        long.insert(
            4,
            Frame::SnapChunk {
                offset: d.len() as u64,
                data: Bytes::from_static(b"x"),
            },
        );
        assert!(matches!(refuse(long), SnapStreamError::Oversized { .. }));
        // A size beyond what this follower accepts.
        assert!(matches!(
            feed(&mut SnapAssembler::new(100), good.clone()).unwrap_err(),
            SnapStreamError::Oversized { got, limit: 100 } if got == d.len() as u64
        ));
        // A flipped byte: the checksum.
        let mut flipped = good.clone();
        if let Frame::SnapChunk { data, .. } = &mut flipped[2] {
            let mut v = data.to_vec();
            v[0] ^= 1;
            *data = Bytes::from(v);
        }
        assert!(matches!(refuse(flipped), SnapStreamError::Checksum { .. }));
        // Another frame in the middle, a second header, another zxid at the end.
        let mut interrupted = good.clone();
        interrupted.insert(2, Frame::Heartbeat);
        assert!(matches!(
            refuse(interrupted),
            SnapStreamError::Interrupted("heartbeat", ..)
        ));
        let mut twice = good.clone();
        twice.insert(2, good[0].clone());
        assert!(matches!(
            refuse(twice),
            SnapStreamError::Interrupted("SNAP", ..)
        ));
        let mut wrong_end = good.clone();
        let last = wrong_end.len() - 1;
        wrong_end[last] = Frame::SnapEnd {
            last_zxid: Zxid::new(1, 4),
        };
        assert!(matches!(
            refuse(wrong_end),
            SnapStreamError::WrongEnd { .. }
        ));
        // An empty chunk.
        let mut empty = good.clone();
        empty.insert(
            1,
            Frame::SnapChunk {
                offset: 0,
                data: Bytes::new(),
            },
        );
        assert!(matches!(refuse(empty), SnapStreamError::EmptyChunk(0)));
        // The good sequence passes, and frames outside a SNAP pass through.
        let mut a = SnapAssembler::new(1 << 30);
        assert_eq!(
            a.push::<ZnodeTxn>(Frame::Heartbeat),
            Ok(Some(Frame::Heartbeat))
        );
        assert_eq!(feed(&mut a, good).expect("valid").len(), 1);
    }

    #[test]
    fn a_spooled_snap_goes_into_a_file_and_a_refused_one_leaves_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = || std::fs::read_dir(dir.path()).map_or(0, Iterator::count);
        let spooling = || SnapAssembler::new(1 << 30).spooling_to(Some(dir.path().to_path_buf()));
        let z = Zxid::new(3, 1);
        let d = data(2 * wire::SNAP_CHUNK + 11);
        let good: Vec<F> = snap_frames(z, &d);
        let mut out = feed(&mut spooling(), good.clone()).expect("valid");
        let Some(Frame::Zab(QuorumMessage::Snap { snapshot, .. })) = out.pop() else {
            panic!("one SNAP");
        };
        assert!(matches!(snapshot, SnapData::File(_)), "{snapshot:?}");
        assert_eq!(snapshot.len(), d.len() as u64);
        assert_eq!(snapshot.to_bytes().expect("read back"), d);
        assert_eq!(files(), 1);
        // Not installed: the last handle removes it.
        drop(snapshot);
        assert_eq!(files(), 0);
        // Refused sequences leave nothing behind: a flipped byte, a truncated one, one
        // interrupted, and one whose connection is lost midway.
        let mut flipped = good.clone();
        if let Frame::SnapChunk { data, .. } = &mut flipped[1] {
            let mut v = data.to_vec();
            v[5] ^= 1;
            *data = Bytes::from(v);
        }
        assert!(matches!(
            feed(&mut spooling(), flipped),
            Err(SnapStreamError::Checksum { .. })
        ));
        let mut short = good.clone();
        short.remove(2);
        assert!(feed(&mut spooling(), short).is_err());
        let mut interrupted = good.clone();
        interrupted.insert(2, Frame::Heartbeat);
        assert!(feed(&mut spooling(), interrupted).is_err());
        let mut a = spooling();
        assert!(
            feed(&mut a, good[..2].to_vec())
                .expect("valid so far")
                .is_empty()
        );
        assert!(a.in_progress());
        assert_eq!(files(), 1);
        drop(a);
        assert_eq!(files(), 0);
        // A directory that cannot be written: the SNAP is refused, not kept in memory.
        let mut a = SnapAssembler::new(1 << 30).spooling_to(Some(dir.path().join("missing")));
        assert!(matches!(
            feed(&mut a, good),
            Err(SnapStreamError::Spool { .. })
        ));
    }
}
