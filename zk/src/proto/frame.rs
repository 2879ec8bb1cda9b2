//! Length-prefixed framing: every message in both directions is an `int32` big-endian length
//! followed by that many bytes. [`FrameDecoder`] splits complete frames off a growing buffer,
//! waits on partial ones and refuses negative or oversized lengths (`NIOServerCnxn.readLength`:
//! `len < 0 || len > jute.maxbuffer` closes the connection).

use crate::jute::DEFAULT_MAX_BUFFER;
use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// A frame length the peer must not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A negative length.
    #[error("negative frame length {0}")]
    Negative(i32),
    /// A length above the limit.
    #[error("frame length {len} above the limit {max}")]
    TooLong {
        /// The announced length.
        len: i32,
        /// The limit (`jute.maxbuffer`).
        max: usize,
    },
}

/// A frame's payload and the bytes after the frame.
pub type Split<'a> = (&'a [u8], &'a [u8]);

/// Splits length-prefixed frames off a byte stream.
#[derive(Clone, Copy, Debug)]
pub struct FrameDecoder {
    max: usize,
}

impl Default for FrameDecoder {
    fn default() -> FrameDecoder {
        FrameDecoder::new(DEFAULT_MAX_BUFFER)
    }
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max` bytes (ZooKeeper: `jute.maxbuffer`).
    #[must_use]
    pub fn new(max: usize) -> FrameDecoder {
        FrameDecoder { max }
    }

    /// The payload length announced at the start of `buf`, once its four bytes are there.
    pub fn announced_len(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(head) = buf.get(..4) else {
            return Ok(None);
        };
        let mut four = [0u8; 4];
        four.copy_from_slice(head);
        let len = i32::from_be_bytes(four);
        if len < 0 {
            return Err(FrameError::Negative(len));
        }
        let n = usize::try_from(len).map_err(|_| FrameError::Negative(len))?;
        if n > self.max {
            return Err(FrameError::TooLong { len, max: self.max });
        }
        Ok(Some(n))
    }

    /// The total size (4 + payload) of the first frame of `buf` once it is complete,
    /// `None` while incomplete.
    pub fn frame_size(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        match self.announced_len(buf)? {
            Some(n) if buf.len() >= 4 + n => Ok(Some(4 + n)),
            _ => Ok(None),
        }
    }

    /// Removes the first complete frame from `buf` and returns its payload (without the
    /// length); `None` while the frame is incomplete (nothing is consumed).
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self.frame_size(buf)? {
            None => Ok(None),
            Some(total) => {
                let mut frame = buf.split_to(total);
                frame.advance(4);
                Ok(Some(frame.freeze()))
            }
        }
    }

    /// The first complete frame of a slice: `(payload, rest)`.
    pub fn split<'a>(&self, buf: &'a [u8]) -> Result<Option<Split<'a>>, FrameError> {
        match self.frame_size(buf)? {
            None => Ok(None),
            Some(total) => match (buf.get(4..total), buf.get(total..)) {
                (Some(payload), Some(rest)) => Ok(Some((payload, rest))),
                _ => Ok(None),
            },
        }
    }
}

/// Prefixes `payload` with its length.
#[must_use]
pub fn frame(payload: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(
        &i32::try_from(payload.len())
            .unwrap_or(i32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// The four-letter word ZooKeeper would recognise in the first four bytes of a fresh
/// connection (`FourLetterCommands`), if any. Only the first frame of a connection may be one.
#[must_use]
pub fn four_letter_word(first: &[u8]) -> Option<&'static str> {
    const WORDS: [&str; 18] = [
        "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr",
        "stat", "wchc", "wchp", "wchs", "mntr", "isro", "hash",
    ];
    let head = first.get(..4)?;
    WORDS.into_iter().find(|w| w.as_bytes() == head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_frames_wait_and_complete_frames_split() {
        let d = FrameDecoder::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 0]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[0, 3, b'a']);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&[b'b', b'c', 0, 0, 0, 0]);
        assert_eq!(d.decode(&mut buf), Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(d.decode(&mut buf), Ok(Some(Bytes::new())));
        assert!(buf.is_empty());
    }

    #[test]
    fn negative_and_oversized_lengths_are_refused() {
        let d = FrameDecoder::default();
        let mut neg = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(d.decode(&mut neg), Err(FrameError::Negative(-1)));
        let mut big = BytesMut::from(&0x0010_0000i32.to_be_bytes()[..]);
        assert!(matches!(
            d.decode(&mut big),
            Err(FrameError::TooLong { .. })
        ));
        let mut max = BytesMut::from(&0x000f_ffffi32.to_be_bytes()[..]);
        assert_eq!(d.decode(&mut max), Ok(None));
    }

    #[test]
    fn ruok_is_a_four_letter_word_not_a_length() {
        assert_eq!(four_letter_word(b"ruok"), Some("ruok"));
        assert_eq!(four_letter_word(&[0, 0, 0, 45]), None);
        assert!(FrameDecoder::default().announced_len(b"ruok").is_err());
    }

    #[test]
    fn split_returns_the_rest() {
        let d = FrameDecoder::default();
        let buf = [0, 0, 0, 1, 9, 0, 0];
        assert_eq!(d.split(&buf), Ok(Some((&[9u8][..], &[0u8, 0][..]))));
        assert_eq!(frame(&[9]).as_ref(), &[0, 0, 0, 1, 9]);
    }
}
