//! ZooKeeper's jute binary encoding: a bounds-checked [`Reader`], a [`Writer`], the [`Record`]
//! trait every wire record implements, and the `jute.maxbuffer` limit.
//!
//! Encoding (`BinaryOutputArchive`): big-endian `int`/`long`, `boolean` as one byte, `buffer`
//! and `ustring` as an `int` length followed by the bytes (`-1` = null), `vector` as an `int`
//! count followed by the elements (`-1` = null). Records are their fields in declaration order.
//!
//! Decoding never panics: truncated input, lengths above the limit and negative lengths other
//! than the null marker are [`JuteError`]s. Like `BinaryInputArchive`, a buffer or string may
//! be at most `max_buffer + 1024` bytes long, any non-zero byte is a true boolean, and strings
//! that are not valid UTF-8 are decoded lossily (Java's `new String(bytes, UTF_8)`).

use bytes::Bytes;
use thiserror::Error;

/// ZooKeeper's default `jute.maxbuffer` (`0xfffff`, one byte short of 1 MiB).
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

/// The slack `BinaryInputArchive` allows above `jute.maxbuffer` for one buffer or string
/// (`zookeeper.jute.maxbuffer.extrasize`, default 1024).
pub const EXTRA_MAX_BUFFER: usize = 1024;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum JuteError {
    /// The input ended inside a value.
    #[error("truncated input: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated {
        /// Offset of the value being read.
        offset: usize,
        /// Bytes the value needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A buffer, string or frame longer than the configured limit.
    #[error("unreasonable length {len} (limit {limit})")]
    TooLong {
        /// The announced length.
        len: i64,
        /// The limit in force.
        limit: usize,
    },
    /// A negative length or count other than the null marker `-1`.
    #[error("negative length {0}")]
    NegativeLength(i32),
    /// A value that is structurally invalid (unknown tag, bad marker, ...).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A null where the record requires a value.
    #[error("unexpected null {0}")]
    UnexpectedNull(&'static str),
}

/// A bounds-checked cursor over jute-encoded bytes.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_buffer: usize,
}

impl<'a> Reader<'a> {
    /// A reader with the default `jute.maxbuffer`.
    #[must_use]
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader::with_max_buffer(buf, DEFAULT_MAX_BUFFER)
    }

    /// A reader whose buffers and strings may be at most `max_buffer + 1024` bytes long.
    #[must_use]
    pub fn with_max_buffer(buf: &'a [u8], max_buffer: usize) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            max_buffer,
        }
    }

    /// Bytes not read yet.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Whether everything was read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Current offset.
    #[must_use]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread bytes (consumes them).
    pub fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        out
    }

    /// Reads `n` raw bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], JuteError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        match end.and_then(|e| self.buf.get(self.pos..e).map(|s| (e, s))) {
            Some((e, s)) => {
                self.pos = e;
                Ok(s)
            }
            None => Err(JuteError::Truncated {
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], JuteError> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// A `byte`.
    pub fn read_u8(&mut self) -> Result<u8, JuteError> {
        Ok(self.array::<1>()?[0])
    }

    /// A `boolean` (any non-zero byte is true, like `DataInput.readBoolean`).
    pub fn read_bool(&mut self) -> Result<bool, JuteError> {
        Ok(self.read_u8()? != 0)
    }

    /// An `int`.
    pub fn read_i32(&mut self) -> Result<i32, JuteError> {
        Ok(i32::from_be_bytes(self.array::<4>()?))
    }

    /// A `long`.
    pub fn read_i64(&mut self) -> Result<i64, JuteError> {
        Ok(i64::from_be_bytes(self.array::<8>()?))
    }

    fn length(&mut self) -> Result<Option<usize>, JuteError> {
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(JuteError::NegativeLength(len));
        }
        let limit = self.max_buffer.saturating_add(EXTRA_MAX_BUFFER);
        let n = usize::try_from(len).map_err(|_| JuteError::NegativeLength(len))?;
        if n > limit {
            return Err(JuteError::TooLong {
                len: i64::from(len),
                limit,
            });
        }
        Ok(Some(n))
    }

    /// A `buffer`; `None` is jute's null.
    pub fn read_buffer(&mut self) -> Result<Option<Bytes>, JuteError> {
        match self.length()? {
            None => Ok(None),
            Some(n) => Ok(Some(Bytes::copy_from_slice(self.take(n)?))),
        }
    }

    /// A `ustring`; `None` is jute's null.
    pub fn read_ustring(&mut self) -> Result<Option<String>, JuteError> {
        match self.length()? {
            None => Ok(None),
            Some(n) => {
                let raw = self.take(n)?;
                Ok(Some(match std::str::from_utf8(raw) {
                    Ok(s) => s.to_owned(),
                    Err(_) => String::from_utf8_lossy(raw).into_owned(),
                }))
            }
        }
    }

    /// A `ustring` that must not be null (ZooKeeper would fail on it later with a
    /// NullPointerException, i.e. a marshalling error).
    pub fn read_string(&mut self, what: &'static str) -> Result<String, JuteError> {
        self.read_ustring()?.ok_or(JuteError::UnexpectedNull(what))
    }

    /// A `vector<T>`; `None` is jute's null. The count is not trusted for pre-allocation.
    pub fn read_vec<T>(
        &mut self,
        mut elem: impl FnMut(&mut Reader<'a>) -> Result<T, JuteError>,
    ) -> Result<Option<Vec<T>>, JuteError> {
        let n = self.read_i32()?;
        if n == -1 {
            return Ok(None);
        }
        let n = usize::try_from(n).map_err(|_| JuteError::NegativeLength(n))?;
        // Every element takes at least one byte: a count above the remaining bytes is a lie.
        let mut out = Vec::with_capacity(n.min(self.remaining()));
        for _ in 0..n {
            out.push(elem(self)?);
        }
        Ok(Some(out))
    }

    /// A `vector<ustring>`, null and null elements read as empty.
    pub fn read_string_vec(&mut self) -> Result<Vec<String>, JuteError> {
        Ok(self
            .read_vec(|r| Ok(r.read_ustring()?.unwrap_or_default()))?
            .unwrap_or_default())
    }

    /// A record.
    pub fn read<T: Record>(&mut self) -> Result<T, JuteError> {
        T::read(self)
    }
}

/// An appending jute encoder.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    #[must_use]
    pub fn new() -> Writer {
        Writer::default()
    }

    /// An empty writer with room for `n` bytes.
    #[must_use]
    pub fn with_capacity(n: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// A writer appending to `buf` (whose capacity it reuses: an encoder that keeps one
    /// scratch buffer allocates nothing once it is large enough).
    #[must_use]
    pub fn from_vec(buf: Vec<u8>) -> Writer {
        Writer { buf }
    }

    /// Bytes written so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoded bytes.
    #[must_use]
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// The encoded bytes.
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        Bytes::from(self.buf)
    }

    /// The encoded bytes so far.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Raw bytes.
    pub fn write_raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// A `byte`.
    pub fn write_u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A `boolean`.
    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    /// An `int`.
    pub fn write_i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A `long`.
    pub fn write_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn write_len(&mut self, n: usize) {
        // Lengths above i32::MAX cannot be expressed in jute; callers stay far below.
        self.write_i32(i32::try_from(n).unwrap_or(i32::MAX));
    }

    /// A `buffer` (`None` = null).
    pub fn write_buffer(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.write_i32(-1),
            Some(b) => {
                self.write_len(b.len());
                self.write_raw(b);
            }
        }
    }

    /// A non-null `ustring`.
    pub fn write_str(&mut self, s: &str) {
        self.write_len(s.len());
        self.write_raw(s.as_bytes());
    }

    /// A `ustring` (`None` = null).
    pub fn write_ustring(&mut self, s: Option<&str>) {
        match s {
            None => self.write_i32(-1),
            Some(s) => self.write_str(s),
        }
    }

    /// A non-null `vector<T>`.
    pub fn write_vec<T>(&mut self, v: &[T], mut elem: impl FnMut(&mut Writer, &T)) {
        self.write_len(v.len());
        for x in v {
            elem(self, x);
        }
    }

    /// A `vector<T>` (`None` = null).
    pub fn write_opt_vec<T>(&mut self, v: Option<&[T]>, elem: impl FnMut(&mut Writer, &T)) {
        match v {
            None => self.write_i32(-1),
            Some(v) => self.write_vec(v, elem),
        }
    }

    /// A `vector<ustring>`.
    pub fn write_string_vec<S: AsRef<str>>(&mut self, v: &[S]) {
        self.write_vec(v, |w, s| w.write_str(s.as_ref()));
    }

    /// A record.
    pub fn write<T: Record>(&mut self, r: &T) {
        r.write(self);
    }

    /// Overwrites four bytes at `at` with a big-endian `int` (frame length patching).
    pub(crate) fn patch_i32(&mut self, at: usize, v: i32) {
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&v.to_be_bytes());
        }
    }
}

/// A jute record: fields in declaration order.
pub trait Record: Sized {
    /// Appends the record.
    fn write(&self, w: &mut Writer);
    /// Reads the record.
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError>;

    /// The record alone, encoded.
    fn to_bytes(&self) -> Bytes {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_bytes()
    }

    /// Decodes the record from the start of `buf` (trailing bytes are ignored, as ZooKeeper
    /// ignores them).
    fn from_bytes(buf: &[u8]) -> Result<Self, JuteError> {
        Self::read(&mut Reader::new(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_big_endian() {
        let mut w = Writer::new();
        w.write_i32(0x0102_0304);
        w.write_i64(-2);
        w.write_bool(true);
        w.write_buffer(None);
        w.write_ustring(Some("ab"));
        assert_eq!(
            w.as_slice(),
            &[
                1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 1, 0xff, 0xff, 0xff,
                0xff, 0, 0, 0, 2, b'a', b'b'
            ]
        );
        let mut r = Reader::new(w.as_slice());
        assert_eq!(r.read_i32(), Ok(0x0102_0304));
        assert_eq!(r.read_i64(), Ok(-2));
        assert_eq!(r.read_bool(), Ok(true));
        assert_eq!(r.read_buffer(), Ok(None));
        assert_eq!(r.read_ustring(), Ok(Some("ab".to_owned())));
        assert!(r.is_empty());
    }

    #[test]
    fn truncation_is_an_error() {
        let mut r = Reader::new(&[0, 0, 0]);
        assert!(matches!(r.read_i32(), Err(JuteError::Truncated { .. })));
        let mut r = Reader::new(&[0, 0, 0, 5, b'a']);
        assert!(matches!(r.read_buffer(), Err(JuteError::Truncated { .. })));
    }

    #[test]
    fn lengths_are_limited_like_binary_input_archive() {
        let limit = DEFAULT_MAX_BUFFER + EXTRA_MAX_BUFFER;
        let mut ok = Writer::new();
        ok.write_buffer(Some(&vec![7u8; limit]));
        assert_eq!(
            Reader::new(ok.as_slice())
                .read_buffer()
                .map(|b| b.map(|b| b.len())),
            Ok(Some(limit))
        );
        let mut w = Writer::new();
        w.write_i32(i32::try_from(limit + 1).unwrap_or(i32::MAX));
        assert!(matches!(
            Reader::new(w.as_slice()).read_buffer(),
            Err(JuteError::TooLong { .. })
        ));
        // With jute.maxbuffer 0 the limit is the 1024 bytes of slack.
        let mut small = Reader::with_max_buffer(&[0, 0, 0x04, 0x01], 0);
        assert!(matches!(
            small.read_ustring(),
            Err(JuteError::TooLong { .. })
        ));
        let mut neg = Reader::new(&[0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(neg.read_buffer(), Err(JuteError::NegativeLength(-2)));
    }

    #[test]
    fn vectors_do_not_trust_their_count() {
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1]);
        assert!(r.read_vec(Reader::read_i32).is_err());
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.read_vec(Reader::read_i32), Ok(None));
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily() {
        let mut r = Reader::new(&[0, 0, 0, 2, 0xff, b'a']);
        assert_eq!(r.read_ustring(), Ok(Some("\u{fffd}a".to_owned())));
    }
}
