//! The server-to-server wire format: a versioned handshake, then length-prefixed frames
//! carrying election notifications, Zab messages, heartbeats and opaque application frames.
//!
//! This is zab's own format (ZooKeeper's quorum protocol is not wire-compatible with it and
//! need not be: clients only see the client protocol). Every decoding error is a value, never a
//! panic: a peer that sends garbage gets its connection closed, nothing else.
//!
//! Handshake (both directions): `"ZABP"`, version `u16`, then the initiator sends its purpose
//! (`u8`: 1 election, 2 quorum), its server id (`u64`) and the ensemble fingerprint (`u64`);
//! the acceptor answers with a status (`u8`, [`HandshakeStatus`]) and its own id. Frames:
//! `u32` length of what follows, `u8` frame type, body. Integers are big-endian.
//!
//! A SNAP is never one frame: it travels as SNAP (its last zxid, total size and CRC32C),
//! SNAPCHUNKs of at most [`SNAP_CHUNK`] bytes each carrying its offset, and SNAPEND
//! ([`snap_frames`] produces the sequence, the `snap_stream` module reassembles it), so that no frame is larger
//! than what a chunk or a proposal can be ([`MAX_FRAME`]).

use crate::core::Message;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use zab_spec::message::Notification;
use zab_spec::{Epoch, QuorumMessage, ServerId, ServerState, Txn, Vote, Zxid};

/// The magic that opens every handshake.
pub const MAGIC: &[u8; 4] = b"ZABP";
/// The version of this format. A peer speaking another version is refused with a clear error.
///
/// Version 2 (zab 0.2, storage recovery, `spec/PROTOCOL.md` §7.1): a notification ends with a
/// flags byte (bit 0 `recovering`, bit 1 `empty`), FOLLOWERINFO with a `recovering` byte, and
/// a RESTORED frame exists.
///
/// Version 3 (issues 11 and 12): a SNAP is streamed as SNAP, SNAPCHUNK..., SNAPEND instead of
/// one frame, and the largest frame went down from 1 GiB to [`MAX_FRAME`].
pub const VERSION: u16 = 3;
/// The largest SNAPCHUNK payload: the unit in which a snapshot travels.
pub const SNAP_CHUNK: usize = 1 << 20;
/// The largest frame accepted on any connection: a proposal from the leader (which may be
/// larger than `jute.maxbuffer`: a `closeSession` lists every ephemeral of its session) or a
/// SNAPCHUNK; a SNAP travels in chunks, never as one frame.
pub const MAX_FRAME: usize = 64 << 20;

/// What a connection accepts, by frame type: every frame is bounded by what its message can
/// be, checked on the length prefix and the type byte before any of the body is buffered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// The largest SNAPCHUNK payload (0: a SNAP is never accepted on this connection).
    pub snapshot: usize,
    /// The largest PROPOSAL payload or application frame body.
    pub payload: usize,
}

impl FrameLimits {
    /// An election connection: notifications only, every other frame at its smallest.
    pub const ELECTION: FrameLimits = FrameLimits {
        snapshot: 0,
        payload: 0,
    };

    /// What a leader accepts from a learner: no SNAP (learners never send one); forwarded
    /// requests and session traffic derived from client frames of at most `jute_max_buffer`.
    #[must_use]
    pub fn from_learner(jute_max_buffer: usize) -> FrameLimits {
        FrameLimits {
            snapshot: 0,
            payload: payload_bound(jute_max_buffer),
        }
    }

    /// What a follower accepts from the leader it chose: SNAP chunks of [`SNAP_CHUNK`], and
    /// proposals up to [`MAX_FRAME`]. A proposal is not bounded by `jute.maxbuffer`: the
    /// leader builds some transactions itself (a `closeSession` lists every ephemeral of the
    /// session), and refusing one would cut the follower off its leader for good. The buffer
    /// still grows only with the bytes that arrive.
    #[must_use]
    pub fn from_leader(jute_max_buffer: usize) -> FrameLimits {
        FrameLimits {
            snapshot: SNAP_CHUNK,
            payload: (MAX_FRAME - 9).max(payload_bound(jute_max_buffer)),
        }
    }

    /// The largest body (type byte included) a frame of type `t` may have here, or `None` for
    /// an unknown type.
    fn max_body(&self, t: u8) -> Option<usize> {
        Some(match t {
            tag::NOTIFICATION => 31,
            tag::HEARTBEAT | tag::UPTODATE | tag::RESTORED => 1,
            tag::FOLLOWERINFO => 6,
            tag::LEADERINFO | tag::OBSERVERINFO => 5,
            tag::ACKEPOCH => 14,
            tag::DIFF | tag::TRUNC | tag::COMMIT | tag::NEWLEADER | tag::ACKLD | tag::ACK => 9,
            tag::SNAP => 21,
            tag::SNAPCHUNK => 9 + self.snapshot,
            tag::SNAPEND => 9,
            tag::PROPOSAL | tag::INFORM => 9 + self.payload,
            tag::APP => 2 + self.payload,
            _ => return None,
        })
    }
}

/// A transaction or an application frame is derived from one client frame of at most
/// `jute.maxbuffer` bytes; its encoding adds headers (paths, ACLs, session ids) but never
/// doubles it. The 64 KiB keep the bound sane for a tiny `jute.maxbuffer`.
fn payload_bound(jute_max_buffer: usize) -> usize {
    jute_max_buffer.saturating_mul(2).saturating_add(64 * 1024)
}

/// Why a frame or handshake could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The buffer ended inside a field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Not a zab peer (wrong magic).
    #[error("not a zab peer (bad magic {0:02x?})")]
    BadMagic([u8; 4]),
    /// A zab peer of another format version.
    #[error("peer speaks wire version {theirs}, this server speaks {ours}")]
    Version {
        /// The peer's version.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// An unknown frame type or enum value.
    #[error("unknown {what} {value}")]
    Unknown {
        /// Which field.
        what: &'static str,
        /// The value.
        value: u8,
    },
    /// A frame longer than its type allows on this connection ([`FrameLimits`]).
    #[error("frame of {0} bytes exceeds the limit for its type")]
    TooLarge(usize),
    /// Bytes left over after a frame's body.
    #[error("{0} trailing bytes after frame")]
    Trailing(usize),
    /// A payload the payload codec refused.
    #[error("bad payload: {0}")]
    Payload(String),
}

/// Encoding of transaction payloads on the wire (and in the log).
pub trait PayloadCodec: Sized {
    /// Appends the encoding of `self`.
    fn encode(&self, out: &mut BytesMut);
    /// Decodes a whole payload.
    fn decode(bytes: &[u8]) -> Result<Self, WireError>;
}

/// What a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Leader-election notifications.
    Election = 1,
    /// Zab: a follower's connection to its leader.
    Quorum = 2,
}

/// The acceptor's answer to a handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// Connection accepted.
    Accepted = 0,
    /// The acceptor speaks another version (the version field says which).
    VersionMismatch = 1,
    /// The acceptor does not lead (a quorum connection) or does not want the connection.
    Refused = 2,
    /// The initiator is not a member of the acceptor's ensemble.
    UnknownServer = 3,
    /// The initiator's ensemble configuration differs.
    WrongEnsemble = 4,
}

/// The initiator's half of the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// What the connection is for.
    pub purpose: Purpose,
    /// The initiator.
    pub sid: ServerId,
    /// A fingerprint of the initiator's ensemble configuration.
    pub ensemble: u64,
}

/// The acceptor's half of the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The answer.
    pub status: HandshakeStatus,
    /// The acceptor.
    pub sid: ServerId,
}

/// A fingerprint of an ensemble (its member ids), so that servers configured for different
/// ensembles refuse each other.
#[must_use]
pub fn ensemble_fingerprint(servers: &[ServerId]) -> u64 {
    ensemble_fingerprint_with_observers(servers, &[])
}

/// [`ensemble_fingerprint`] of voters and observers (`spec/PROTOCOL.md` §10.2): servers that
/// disagree on who observes refuse each other too. Without observers it is the voters' own
/// fingerprint, so an ensemble without observers keeps the fingerprint it had.
#[must_use]
pub fn ensemble_fingerprint_with_observers(servers: &[ServerId], observers: &[ServerId]) -> u64 {
    let mut ids: Vec<u64> = servers.iter().map(|s| s.0).collect();
    ids.sort_unstable();
    let mut obs: Vec<u64> = observers.iter().map(|s| s.0).collect();
    obs.sort_unstable();
    // FNV-1a: stable across runs and builds.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for id in ids {
        mix(&id.to_be_bytes());
    }
    for id in obs {
        mix(b"observer");
        mix(&id.to_be_bytes());
    }
    h
}

/// Length of an encoded [`Hello`].
pub const HELLO_LEN: usize = 4 + 2 + 1 + 8 + 8;
/// Length of an encoded [`Welcome`].
pub const WELCOME_LEN: usize = 4 + 2 + 1 + 8;

/// Encodes the initiator's handshake.
#[must_use]
pub fn encode_hello(h: &Hello) -> Vec<u8> {
    let mut out = Vec::with_capacity(HELLO_LEN);
    out.extend_from_slice(MAGIC);
    out.put_u16(VERSION);
    out.put_u8(h.purpose as u8);
    out.put_u64(h.sid.0);
    out.put_u64(h.ensemble);
    out
}

fn check_magic_version(buf: &mut &[u8]) -> Result<(), WireError> {
    if buf.len() < 6 {
        return Err(WireError::Truncated("handshake"));
    }
    let mut magic = [0u8; 4];
    buf.copy_to_slice(&mut magic);
    if &magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let theirs = buf.get_u16();
    if theirs != VERSION {
        return Err(WireError::Version {
            theirs,
            ours: VERSION,
        });
    }
    Ok(())
}

/// Decodes the initiator's handshake.
pub fn decode_hello(mut buf: &[u8]) -> Result<Hello, WireError> {
    check_magic_version(&mut buf)?;
    if buf.len() < 17 {
        return Err(WireError::Truncated("hello"));
    }
    let purpose = match buf.get_u8() {
        1 => Purpose::Election,
        2 => Purpose::Quorum,
        v => {
            return Err(WireError::Unknown {
                what: "purpose",
                value: v,
            });
        }
    };
    Ok(Hello {
        purpose,
        sid: ServerId(buf.get_u64()),
        ensemble: buf.get_u64(),
    })
}

/// Encodes the acceptor's handshake.
#[must_use]
pub fn encode_welcome(w: &Welcome) -> Vec<u8> {
    let mut out = Vec::with_capacity(WELCOME_LEN);
    out.extend_from_slice(MAGIC);
    out.put_u16(VERSION);
    out.put_u8(w.status as u8);
    out.put_u64(w.sid.0);
    out
}

/// Decodes the acceptor's handshake. A version mismatch is reported as such even though the
/// rest of the answer is then not trusted.
pub fn decode_welcome(mut buf: &[u8]) -> Result<Welcome, WireError> {
    check_magic_version(&mut buf)?;
    if buf.len() < 9 {
        return Err(WireError::Truncated("welcome"));
    }
    let status = match buf.get_u8() {
        0 => HandshakeStatus::Accepted,
        1 => HandshakeStatus::VersionMismatch,
        2 => HandshakeStatus::Refused,
        3 => HandshakeStatus::UnknownServer,
        4 => HandshakeStatus::WrongEnsemble,
        v => {
            return Err(WireError::Unknown {
                what: "handshake status",
                value: v,
            });
        }
    };
    Ok(Welcome {
        status,
        sid: ServerId(buf.get_u64()),
    })
}

/// A frame on a peer connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame<P> {
    /// A leader-election notification.
    Notification(Notification),
    /// A Zab message.
    Zab(Message<P>),
    /// A heartbeat (the leader's ping and the follower's answer).
    Heartbeat,
    /// A follower that was recovering processed UPTODATE: it is restored (§7.1).
    Restored,
    /// An application frame (forwarded client requests, session traffic): a kind and bytes.
    App(u8, Bytes),
    /// The first frame of a SNAP (see the `snap_stream` module): the snapshot's last zxid, its size
    /// and its CRC32C. Only the network layer sees it; the core gets the reassembled
    /// `QuorumMessage::Snap`.
    SnapBegin {
        /// The last zxid the snapshot contains.
        last_zxid: Zxid,
        /// The snapshot's size in bytes.
        total: u64,
        /// CRC32C of the whole snapshot.
        crc: u32,
    },
    /// A piece of a SNAP: at most [`SNAP_CHUNK`] bytes at `offset`.
    SnapChunk {
        /// Where the bytes go in the snapshot.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// The end of a SNAP, repeating its last zxid.
    SnapEnd {
        /// The last zxid the snapshot contains.
        last_zxid: Zxid,
    },
}

mod tag {
    pub const NOTIFICATION: u8 = 1;
    pub const FOLLOWERINFO: u8 = 11;
    pub const LEADERINFO: u8 = 17;
    pub const ACKEPOCH: u8 = 18;
    pub const DIFF: u8 = 13;
    pub const TRUNC: u8 = 14;
    pub const SNAP: u8 = 15;
    pub const SNAPCHUNK: u8 = 16;
    pub const SNAPEND: u8 = 20;
    pub const PROPOSAL: u8 = 2;
    /// ZooKeeper's `Leader.INFORM`: a committed transaction for an observer.
    pub const INFORM: u8 = 8;
    pub const COMMIT: u8 = 4;
    pub const NEWLEADER: u8 = 10;
    pub const ACKLD: u8 = 19;
    pub const UPTODATE: u8 = 12;
    pub const ACK: u8 = 3;
    pub const HEARTBEAT: u8 = 5;
    pub const RESTORED: u8 = 6;
    pub const APP: u8 = 40;
    /// ZooKeeper's OBSERVERINFO is 16, which zabd's framing gave SNAPCHUNK; 21 is free.
    pub const OBSERVERINFO: u8 = 21;
}

fn state_byte(s: ServerState) -> u8 {
    match s {
        ServerState::Looking => 0,
        ServerState::Following => 1,
        ServerState::Leading => 2,
    }
}

/// Encodes a frame, length prefix included.
pub fn encode_frame<P: PayloadCodec>(frame: &Frame<P>, out: &mut BytesMut) {
    let start = out.len();
    out.put_u32(0);
    match frame {
        Frame::Notification(n) => {
            out.put_u8(tag::NOTIFICATION);
            out.put_u64(n.vote.leader.0);
            out.put_u64(n.vote.zxid.to_u64());
            out.put_u32(n.vote.peer_epoch.0);
            out.put_u64(n.election_epoch);
            out.put_u8(state_byte(n.state));
            out.put_u8(u8::from(n.recovering) | (u8::from(n.empty) << 1));
        }
        Frame::Heartbeat => out.put_u8(tag::HEARTBEAT),
        Frame::Restored => out.put_u8(tag::RESTORED),
        Frame::App(kind, bytes) => {
            out.put_u8(tag::APP);
            out.put_u8(*kind);
            out.put_slice(bytes);
        }
        Frame::Zab(QuorumMessage::Snap {
            last_zxid,
            snapshot,
        }) => {
            // Never one frame: the whole chunk sequence, each frame with its own prefix. (A
            // leader streams its SNAPs from a capture instead; a received one left in a file
            // is read back here only if someone re-encodes it.)
            out.truncate(start);
            let data = snapshot.to_bytes().unwrap_or_else(|e| {
                tracing::warn!("cannot read a received SNAP back to encode it: {e}");
                Bytes::new()
            });
            for f in snap_frames::<P>(*last_zxid, &data) {
                encode_frame(&f, out);
            }
            return;
        }
        Frame::Zab(m) => encode_message(m, out),
        Frame::SnapBegin {
            last_zxid,
            total,
            crc,
        } => {
            zxid_frame(tag::SNAP, *last_zxid, out);
            out.put_u64(*total);
            out.put_u32(*crc);
        }
        Frame::SnapChunk { offset, data } => {
            out.put_u8(tag::SNAPCHUNK);
            out.put_u64(*offset);
            out.put_slice(data);
        }
        Frame::SnapEnd { last_zxid } => zxid_frame(tag::SNAPEND, *last_zxid, out),
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// The chunk sequence of a snapshot; the chunks share `data`'s buffer (nothing is copied).
#[must_use]
pub fn snap_frames<P>(last_zxid: Zxid, data: &Bytes) -> Vec<Frame<P>> {
    let mut out = Vec::with_capacity(data.len() / SNAP_CHUNK + 3);
    out.push(Frame::SnapBegin {
        last_zxid,
        total: data.len() as u64,
        crc: crc32c::crc32c(data),
    });
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + SNAP_CHUNK).min(data.len());
        out.push(Frame::SnapChunk {
            offset: offset as u64,
            data: data.slice(offset..end),
        });
        offset = end;
    }
    out.push(Frame::SnapEnd { last_zxid });
    out
}

fn encode_message<P: PayloadCodec>(m: &Message<P>, out: &mut BytesMut) {
    match m {
        QuorumMessage::FollowerInfo {
            accepted_epoch,
            recovering,
        } => {
            out.put_u8(tag::FOLLOWERINFO);
            out.put_u32(accepted_epoch.0);
            out.put_u8(u8::from(*recovering));
        }
        QuorumMessage::LeaderInfo { new_epoch } => {
            out.put_u8(tag::LEADERINFO);
            out.put_u32(new_epoch.0);
        }
        QuorumMessage::AckEpoch {
            current_epoch,
            last_zxid,
        } => {
            out.put_u8(tag::ACKEPOCH);
            out.put_u8(u8::from(current_epoch.is_some()));
            out.put_u32(current_epoch.map_or(0, |e| e.0));
            out.put_u64(last_zxid.to_u64());
        }
        QuorumMessage::Diff { last_zxid } => zxid_frame(tag::DIFF, *last_zxid, out),
        QuorumMessage::Trunc { truncate_to } => zxid_frame(tag::TRUNC, *truncate_to, out),
        // Encoded by `encode_frame` as its chunk sequence.
        QuorumMessage::Snap { .. } => {}
        QuorumMessage::Proposal(txn) => {
            zxid_frame(tag::PROPOSAL, txn.zxid, out);
            txn.payload.encode(out);
        }
        QuorumMessage::Commit { zxid } => zxid_frame(tag::COMMIT, *zxid, out),
        QuorumMessage::NewLeader { zxid } => zxid_frame(tag::NEWLEADER, *zxid, out),
        QuorumMessage::AckNewLeader { zxid } => zxid_frame(tag::ACKLD, *zxid, out),
        QuorumMessage::UpToDate => out.put_u8(tag::UPTODATE),
        QuorumMessage::Ack { zxid } => zxid_frame(tag::ACK, *zxid, out),
        QuorumMessage::ObserverInfo { accepted_epoch } => {
            out.put_u8(tag::OBSERVERINFO);
            out.put_u32(accepted_epoch.0);
        }
        QuorumMessage::Inform(txn) => {
            zxid_frame(tag::INFORM, txn.zxid, out);
            txn.payload.encode(out);
        }
    }
}

fn zxid_frame(t: u8, zxid: Zxid, out: &mut BytesMut) {
    out.put_u8(t);
    out.put_u64(zxid.to_u64());
}

fn need(buf: &[u8], n: usize, what: &'static str) -> Result<(), WireError> {
    if buf.len() < n {
        Err(WireError::Truncated(what))
    } else {
        Ok(())
    }
}

fn zxid(buf: &mut &[u8]) -> Result<Zxid, WireError> {
    need(buf, 8, "zxid")?;
    Ok(Zxid::from_u64(buf.get_u64()))
}

fn epoch(buf: &mut &[u8]) -> Result<Epoch, WireError> {
    need(buf, 4, "epoch")?;
    Ok(Epoch(buf.get_u32()))
}

/// Splits one frame off the front of `buf`: `Ok(None)` when more bytes are needed.
///
/// The length is checked against what the frame's type may be on this connection (`limits`)
/// as soon as the type byte is in, and the buffer grows with the bytes that actually arrive
/// (at most 1 MiB ahead of them), so a length prefix alone never allocates.
pub fn take_frame(buf: &mut BytesMut, limits: &FrameLimits) -> Result<Option<Bytes>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 {
        return Err(WireError::Truncated("frame type"));
    }
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() < 5 {
        return Ok(None);
    }
    let t = buf[4];
    let max = limits.max_body(t).ok_or(WireError::Unknown {
        what: "frame type",
        value: t,
    })?;
    if len > max {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() < 4 + len {
        buf.reserve((4 + len - buf.len()).min(1 << 20));
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Decodes a frame body (without its length prefix).
pub fn decode_frame<P: PayloadCodec>(body: &Bytes) -> Result<Frame<P>, WireError> {
    let mut buf: &[u8] = body;
    need(buf, 1, "frame type")?;
    let t = buf.get_u8();
    let frame = match t {
        tag::NOTIFICATION => {
            need(buf, 30, "notification")?;
            let leader = ServerId(buf.get_u64());
            let zxid = Zxid::from_u64(buf.get_u64());
            let peer_epoch = Epoch(buf.get_u32());
            let election_epoch = buf.get_u64();
            let state = match buf.get_u8() {
                0 => ServerState::Looking,
                1 => ServerState::Following,
                2 => ServerState::Leading,
                v => {
                    return Err(WireError::Unknown {
                        what: "server state",
                        value: v,
                    });
                }
            };
            let flags = buf.get_u8();
            if flags > 3 {
                return Err(WireError::Unknown {
                    what: "notification flags",
                    value: flags,
                });
            }
            Frame::Notification(Notification {
                vote: Vote {
                    peer_epoch,
                    zxid,
                    leader,
                },
                election_epoch,
                state,
                recovering: flags & 1 != 0,
                empty: flags & 2 != 0,
            })
        }
        tag::HEARTBEAT => Frame::Heartbeat,
        tag::RESTORED => Frame::Restored,
        tag::APP => {
            need(buf, 1, "app kind")?;
            let kind = buf.get_u8();
            let rest = body.slice(2..);
            buf = &[];
            Frame::App(kind, rest)
        }
        tag::FOLLOWERINFO => {
            let accepted_epoch = epoch(&mut buf)?;
            need(buf, 1, "followerinfo flag")?;
            let recovering = match buf.get_u8() {
                0 => false,
                1 => true,
                v => {
                    return Err(WireError::Unknown {
                        what: "followerinfo flag",
                        value: v,
                    });
                }
            };
            Frame::Zab(QuorumMessage::FollowerInfo {
                accepted_epoch,
                recovering,
            })
        }
        tag::LEADERINFO => Frame::Zab(QuorumMessage::LeaderInfo {
            new_epoch: epoch(&mut buf)?,
        }),
        tag::ACKEPOCH => {
            need(buf, 13, "ackepoch")?;
            let has = buf.get_u8();
            let e = Epoch(buf.get_u32());
            let current_epoch = match has {
                0 => None,
                1 => Some(e),
                v => {
                    return Err(WireError::Unknown {
                        what: "ackepoch flag",
                        value: v,
                    });
                }
            };
            Frame::Zab(QuorumMessage::AckEpoch {
                current_epoch,
                last_zxid: Zxid::from_u64(buf.get_u64()),
            })
        }
        tag::DIFF => Frame::Zab(QuorumMessage::Diff {
            last_zxid: zxid(&mut buf)?,
        }),
        tag::TRUNC => Frame::Zab(QuorumMessage::Trunc {
            truncate_to: zxid(&mut buf)?,
        }),
        tag::SNAP => {
            let last_zxid = zxid(&mut buf)?;
            need(buf, 12, "snap header")?;
            Frame::SnapBegin {
                last_zxid,
                total: buf.get_u64(),
                crc: buf.get_u32(),
            }
        }
        tag::SNAPCHUNK => {
            need(buf, 8, "snap chunk offset")?;
            let offset = buf.get_u64();
            let data = body.slice(9..);
            buf = &[];
            Frame::SnapChunk { offset, data }
        }
        tag::SNAPEND => Frame::SnapEnd {
            last_zxid: zxid(&mut buf)?,
        },
        tag::PROPOSAL => {
            let z = zxid(&mut buf)?;
            let payload = P::decode(buf)?;
            buf = &[];
            Frame::Zab(QuorumMessage::Proposal(Txn { zxid: z, payload }))
        }
        tag::INFORM => {
            let z = zxid(&mut buf)?;
            let payload = P::decode(buf)?;
            buf = &[];
            Frame::Zab(QuorumMessage::Inform(Txn { zxid: z, payload }))
        }
        tag::COMMIT => Frame::Zab(QuorumMessage::Commit {
            zxid: zxid(&mut buf)?,
        }),
        tag::NEWLEADER => Frame::Zab(QuorumMessage::NewLeader {
            zxid: zxid(&mut buf)?,
        }),
        tag::ACKLD => Frame::Zab(QuorumMessage::AckNewLeader {
            zxid: zxid(&mut buf)?,
        }),
        tag::UPTODATE => Frame::Zab(QuorumMessage::UpToDate),
        tag::ACK => Frame::Zab(QuorumMessage::Ack {
            zxid: zxid(&mut buf)?,
        }),
        tag::OBSERVERINFO => Frame::Zab(QuorumMessage::ObserverInfo {
            accepted_epoch: epoch(&mut buf)?,
        }),
        v => {
            return Err(WireError::Unknown {
                what: "frame type",
                value: v,
            });
        }
    };
    if !buf.is_empty() {
        return Err(WireError::Trailing(buf.len()));
    }
    Ok(frame)
}

thread_local! {
    /// The scratch buffer transactions are encoded in (reused: no allocation per frame once
    /// it is as large as the largest transaction; one above 1 MiB is not kept).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes `txn` in this thread's scratch buffer and hands the bytes to `f`.
fn with_encoded<R>(txn: &zab_zk::Txn, f: impl FnOnce(&[u8]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.take();
        buf.clear();
        let mut w = zab_zk::jute::Writer::from_vec(buf);
        txn.encode_into(&mut w);
        let r = f(w.as_slice());
        let buf = w.into_vec();
        if buf.capacity() <= 1 << 20 {
            cell.replace(buf);
        }
        r
    })
}

/// The length of `txn`'s encoding (the proposal size ZooKeeper reports), without allocating.
#[must_use]
pub fn encoded_len(txn: &zab_zk::Txn) -> usize {
    with_encoded(txn, <[u8]>::len)
}

/// The server's payload: ZooKeeper transactions, in `zab-zk`'s versioned encoding.
impl PayloadCodec for zab_zk::Txn {
    fn encode(&self, out: &mut BytesMut) {
        with_encoded(self, |bytes| out.put_slice(bytes));
    }

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        zab_zk::Txn::decode(bytes).map_err(|e| WireError::Payload(e.to_string()))
    }
}

/// The model's payload also travels on the wire (tests, simulations): a compact encoding.
impl PayloadCodec for zab_spec::ZnodeTxn {
    fn encode(&self, out: &mut BytesMut) {
        use zab_spec::ZnodeTxn as T;
        fn path(out: &mut BytesMut, p: &str) {
            out.put_u32(p.len() as u32);
            out.put_slice(p.as_bytes());
        }
        match self {
            T::CreateSession { session } => {
                out.put_u8(1);
                out.put_i64(session.0);
            }
            T::CloseSession { session } => {
                out.put_u8(2);
                out.put_i64(session.0);
            }
            T::Create {
                path: p,
                ephemeral_owner,
                sequential,
            } => {
                out.put_u8(3);
                path(out, p);
                out.put_u8(u8::from(ephemeral_owner.is_some()));
                out.put_i64(ephemeral_owner.map_or(0, |s| s.0));
                out.put_u8(u8::from(*sequential));
            }
            T::Delete { path: p } => {
                out.put_u8(4);
                path(out, p);
            }
            T::SetData { path: p, version } => {
                out.put_u8(5);
                path(out, p);
                out.put_i32(*version);
            }
            T::Error { code } => {
                out.put_u8(6);
                out.put_i32(code.code());
            }
            T::Multi(txns) => {
                out.put_u8(7);
                out.put_u32(txns.len() as u32);
                for t in txns {
                    let mut inner = BytesMut::new();
                    t.encode(&mut inner);
                    out.put_u32(inner.len() as u32);
                    out.put_slice(&inner);
                }
            }
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        use zab_spec::{ErrorCode, SessionId, ZnodeTxn as T};
        let mut buf = bytes;
        let bad = |m: &str| WireError::Payload(m.to_string());
        fn path(buf: &mut &[u8]) -> Result<zab_spec::znode::ZPath, WireError> {
            need(buf, 4, "path length")?;
            let n = buf.get_u32() as usize;
            need(buf, n, "path")?;
            let s = std::str::from_utf8(&buf[..n])
                .map_err(|_| WireError::Payload("path is not UTF-8".into()))?;
            let p = zab_spec::znode::ZPath::from(s);
            buf.advance(n);
            Ok(p)
        }
        need(buf, 1, "payload type")?;
        let t = match buf.get_u8() {
            1 | 2 => {
                let kind = bytes[0];
                need(buf, 8, "session")?;
                let session = SessionId(buf.get_i64());
                if kind == 1 {
                    T::CreateSession { session }
                } else {
                    T::CloseSession { session }
                }
            }
            3 => {
                let p = path(&mut buf)?;
                need(buf, 10, "create")?;
                let has = buf.get_u8();
                let owner = buf.get_i64();
                let sequential = buf.get_u8() != 0;
                T::Create {
                    path: p,
                    ephemeral_owner: (has != 0).then_some(SessionId(owner)),
                    sequential,
                }
            }
            4 => T::Delete {
                path: path(&mut buf)?,
            },
            5 => {
                let p = path(&mut buf)?;
                need(buf, 4, "version")?;
                T::SetData {
                    path: p,
                    version: buf.get_i32(),
                }
            }
            6 => {
                need(buf, 4, "code")?;
                let code =
                    ErrorCode::from_code(buf.get_i32()).ok_or_else(|| bad("unknown error code"))?;
                T::Error { code }
            }
            7 => {
                need(buf, 4, "multi count")?;
                let n = buf.get_u32() as usize;
                let mut txns = Vec::new();
                for _ in 0..n {
                    need(buf, 4, "multi item length")?;
                    let len = buf.get_u32() as usize;
                    need(buf, len, "multi item")?;
                    txns.push(T::decode(&buf[..len])?);
                    buf.advance(len);
                }
                T::Multi(txns)
            }
            _ => return Err(bad("unknown payload type")),
        };
        if !buf.is_empty() {
            return Err(WireError::Trailing(buf.len()));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use zab_spec::{SessionId, ZnodeTxn};

    fn round_trip(f: Frame<ZnodeTxn>) {
        let mut buf = BytesMut::new();
        encode_frame(&f, &mut buf);
        let body = take_frame(&mut buf, &FrameLimits::from_leader(1 << 20))
            .expect("valid")
            .expect("whole");
        assert!(buf.is_empty());
        assert_eq!(decode_frame::<ZnodeTxn>(&body), Ok(f));
    }

    #[test]
    fn every_frame_round_trips() {
        let z = Zxid::new(3, 7);
        let txn = Txn {
            zxid: z,
            payload: ZnodeTxn::Create {
                path: "/a/b".into(),
                ephemeral_owner: Some(SessionId(9)),
                sequential: true,
            },
        };
        let vote = Vote {
            peer_epoch: Epoch(2),
            zxid: z,
            leader: ServerId(5),
        };
        for f in [
            Frame::Notification(Notification {
                vote,
                election_epoch: 4,
                state: ServerState::Following,
                recovering: false,
                empty: false,
            }),
            Frame::Notification(Notification {
                vote,
                election_epoch: 4,
                state: ServerState::Looking,
                recovering: true,
                empty: true,
            }),
            Frame::Heartbeat,
            Frame::Restored,
            Frame::App(3, Bytes::from_static(b"req")),
            Frame::Zab(QuorumMessage::FollowerInfo {
                accepted_epoch: Epoch(1),
                recovering: false,
            }),
            Frame::Zab(QuorumMessage::FollowerInfo {
                accepted_epoch: Epoch(1),
                recovering: true,
            }),
            Frame::Zab(QuorumMessage::LeaderInfo {
                new_epoch: Epoch(2),
            }),
            Frame::Zab(QuorumMessage::AckEpoch {
                current_epoch: None,
                last_zxid: z,
            }),
            Frame::Zab(QuorumMessage::AckEpoch {
                current_epoch: Some(Epoch(1)),
                last_zxid: z,
            }),
            Frame::Zab(QuorumMessage::Diff { last_zxid: z }),
            Frame::Zab(QuorumMessage::Trunc { truncate_to: z }),
            Frame::SnapBegin {
                last_zxid: z,
                total: 4,
                crc: 0xdead_beef,
            },
            Frame::SnapChunk {
                offset: 0,
                data: Bytes::from_static(b"tree"),
            },
            Frame::SnapEnd { last_zxid: z },
            Frame::Zab(QuorumMessage::Proposal(txn.clone())),
            Frame::Zab(QuorumMessage::Inform(txn)),
            Frame::Zab(QuorumMessage::ObserverInfo {
                accepted_epoch: Epoch(5),
            }),
            Frame::Zab(QuorumMessage::Commit { zxid: z }),
            Frame::Zab(QuorumMessage::NewLeader {
                zxid: Zxid::epoch_start(Epoch(3)),
            }),
            Frame::Zab(QuorumMessage::AckNewLeader {
                zxid: Zxid::epoch_start(Epoch(3)),
            }),
            Frame::Zab(QuorumMessage::UpToDate),
            Frame::Zab(QuorumMessage::Ack { zxid: z }),
        ] {
            round_trip(f);
        }
    }

    #[test]
    fn another_version_is_a_clear_error() {
        let mut hello = encode_hello(&Hello {
            purpose: Purpose::Quorum,
            sid: ServerId(2),
            ensemble: 7,
        });
        hello[5] = 9;
        let err = decode_hello(&hello).unwrap_err();
        assert_eq!(
            err,
            WireError::Version {
                theirs: 9,
                ours: VERSION
            }
        );
        assert_eq!(
            err.to_string(),
            "peer speaks wire version 9, this server speaks 3"
        );
        assert!(matches!(
            decode_hello(b"GET / HTTP/1.1\r\n\r\n"),
            Err(WireError::BadMagic(_))
        ));
        let w = Welcome {
            status: HandshakeStatus::Refused,
            sid: ServerId(3),
        };
        assert_eq!(decode_welcome(&encode_welcome(&w)), Ok(w));
    }

    #[test]
    fn oversized_and_partial_frames() {
        let big = FrameLimits::from_leader(1 << 20);
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            take_frame(&mut buf, &big),
            Err(WireError::TooLarge(0xffff_ffff))
        );
        let mut full = BytesMut::new();
        encode_frame::<ZnodeTxn>(&Frame::Heartbeat, &mut full);
        let mut part = BytesMut::from(&full[..3]);
        assert_eq!(take_frame(&mut part, &big), Ok(None));
        let mut empty = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert!(take_frame(&mut empty, &big).is_err());
    }

    /// The 1 GiB frame attack: refused on the length prefix and type byte, before the body
    /// is buffered, wherever the frame's type cannot be that long.
    #[test]
    fn frames_are_bounded_by_what_their_type_can_be() {
        let gib = |t: u8| {
            let mut b = BytesMut::new();
            b.put_u32(1 << 30);
            b.put_u8(t);
            b
        };
        let learner = FrameLimits::from_learner(0xfffff);
        let leader = FrameLimits::from_leader(0xfffff);
        // A leader accepts no SNAP from a learner, and no huge request.
        for t in [tag::SNAP, tag::APP, tag::PROPOSAL, tag::HEARTBEAT] {
            let mut b = gib(t);
            assert_eq!(
                take_frame(&mut b, &learner),
                Err(WireError::TooLarge(1 << 30))
            );
            assert!(b.capacity() < 1 << 20, "nothing reserved for the body");
        }
        let mut b = gib(tag::NOTIFICATION);
        assert!(take_frame(&mut b, &FrameLimits::ELECTION).is_err());
        // A notification one byte too long is refused on an election connection.
        let mut b = BytesMut::new();
        b.put_u32(32);
        b.put_u8(tag::NOTIFICATION);
        assert_eq!(
            take_frame(&mut b, &FrameLimits::ELECTION),
            Err(WireError::TooLarge(32))
        );
        // A SNAP travels in chunks: a SNAP header, a chunk or a proposal past what it can be
        // is refused even from the leader; a large proposal is accepted, but the buffer
        // reserves only as bytes come.
        for (t, len) in [
            (tag::SNAP, 22),
            (tag::SNAPCHUNK, SNAP_CHUNK + 10),
            (tag::SNAPEND, 10),
            (tag::PROPOSAL, MAX_FRAME + 1),
        ] {
            let mut b = BytesMut::new();
            b.put_u32(len as u32);
            b.put_u8(t);
            assert_eq!(take_frame(&mut b, &leader), Err(WireError::TooLarge(len)));
        }
        let mut b = BytesMut::new();
        b.put_u32(60 << 20);
        b.put_u8(tag::PROPOSAL);
        assert_eq!(take_frame(&mut b, &leader), Ok(None));
        assert!(b.capacity() <= (1 << 20) + 64);
        // An unknown type is refused before its body arrives.
        let mut b = BytesMut::new();
        b.put_u32(10);
        b.put_u8(0xee);
        assert!(matches!(
            take_frame(&mut b, &leader),
            Err(WireError::Unknown { .. })
        ));
        // Requests up to jute.maxbuffer pass from a learner.
        let f: Frame<ZnodeTxn> = Frame::App(1, Bytes::from(vec![7u8; 0xfffff]));
        let mut b = BytesMut::new();
        encode_frame(&f, &mut b);
        assert!(take_frame(&mut b, &learner).expect("valid").is_some());
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_frame::<ZnodeTxn>(&Bytes::from(bytes.clone()));
            let _ = decode_hello(&bytes);
            let _ = decode_welcome(&bytes);
            let mut b = BytesMut::from(&bytes[..]);
            while let Ok(Some(body)) = take_frame(&mut b, &FrameLimits::from_leader(1 << 20)) {
                let _ = decode_frame::<ZnodeTxn>(&body);
            }
        }

        #[test]
        fn znode_payloads_round_trip(session in any::<i64>(), version in any::<i32>(), path in "/[a-z]{1,8}") {
            for t in [
                ZnodeTxn::CreateSession { session: SessionId(session) },
                ZnodeTxn::SetData { path: path.as_str().into(), version },
                ZnodeTxn::Multi(vec![ZnodeTxn::Delete { path: path.as_str().into() }, ZnodeTxn::CloseSession { session: SessionId(session) }]),
            ] {
                let mut b = BytesMut::new();
                t.encode(&mut b);
                prop_assert_eq!(ZnodeTxn::decode(&b), Ok(t));
            }
        }
    }
}
