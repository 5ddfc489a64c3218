//! The backup file, byte by byte:
//!
//! ```text
//! "ROSTERBK"            8 bytes, the magic
//! version               u16, big-endian (this build writes and reads 1)
//! header length         u32, big-endian
//! header                JSON (Header): readable with `head -c` before anything is unpacked
//! deflate stream of frames:
//!   'R' key value       a row of the store's scan (lengths u32 big-endian before each)
//!   'C' key 0|1 [value] a write made while the scan ran: 1 with its value, 0 a removal
//!   'T' trailer         JSON (Trailer), the last frame
//! SHA-256               32 bytes, of every byte before it
//! ```
//!
//! A reader checks the magic, the version, every frame's shape, the trailer's counts
//! against the frames it read, that nothing follows the deflate stream but the checksum,
//! and the checksum, and says which of these failed.

use std::io::{self, BufRead, Read, Write};

use flate2::Compression;
use flate2::bufread::DeflateDecoder;
use flate2::write::DeflateEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The first bytes of every backup.
pub const MAGIC: &[u8; 8] = b"ROSTERBK";
/// The format version this build writes, and the only one it reads.
pub const VERSION: u16 = 1;
/// Longest header a reader accepts (a damaged length must not allocate gigabytes).
const MAX_HEADER: u32 = 1 << 20;
/// Longest key, and longest value, a frame may carry.
const MAX_KEY: u32 = 1 << 16;
const MAX_VALUE: u32 = 1 << 30;

/// What a backup says of itself, before its data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The format version (as in the fixed bytes before the header).
    pub format: u16,
    /// When the backup started, in milliseconds since the epoch (UTC).
    pub created_at_ms: i64,
    /// The fingerprint of the master key that wraps every data key inside. The key
    /// itself is never in a backup.
    pub master_key_fingerprint: String,
    /// The store the rows come from (`sled`).
    pub backend: String,
    /// The Roster version that wrote it.
    pub roster_version: String,
}

/// What a backup says of itself after its data: what a reader must have found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// Rows of the scan.
    pub rows: u64,
    /// Writes made during the scan.
    pub changes: u64,
    /// The audit log's length at the backup's point in time.
    pub audit_records: u64,
    /// When the point in time was taken (the scan's end), milliseconds since the epoch.
    pub cut_at_ms: i64,
}

/// One frame of data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A row of the scan.
    Row(Vec<u8>, Vec<u8>),
    /// A write made while the scan ran: the key's value after it, `None` if removed.
    Change(Vec<u8>, Option<Vec<u8>>),
}

/// Why a backup file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// It does not start with the magic.
    #[error("not a Roster backup: the file does not start with \"ROSTERBK\"")]
    NotABackup,
    /// Another format version.
    #[error(
        "backup format version {0} is unknown to this build, which reads version {VERSION}: \
         restore it with the Roster release that wrote it (or a later one)"
    )]
    UnknownVersion(u16),
    /// The file ends too soon.
    #[error("the backup is truncated: it ends {0}")]
    Truncated(String),
    /// A frame, the header or the compressed stream is not what it should be.
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    /// Everything parsed, but the checksum says the bytes are not the ones written.
    #[error("the backup's SHA-256 does not match its content: the file was altered or damaged")]
    Checksum,
    /// Reading or writing failed for another reason.
    #[error("backup I/O: {0}")]
    Io(String),
}

/// A writer that hashes what passes through it and counts it.
pub(crate) struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a backup: [`BackupWriter::new`] (magic, version, header), then rows and
/// changes, then [`BackupWriter::finish`] (trailer, checksum).
pub struct BackupWriter<W: Write> {
    frames: DeflateEncoder<Hashing<W>>,
    rows: u64,
    changes: u64,
}

fn put_bytes(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a value over 4 GiB"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(bytes)
}

impl<W: Write> BackupWriter<W> {
    /// Starts a backup on `out` with `header`.
    pub fn new(out: W, header: &Header) -> io::Result<Self> {
        let mut out = Hashing {
            inner: out,
            hash: Sha256::new(),
            bytes: 0,
        };
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_be_bytes())?;
        put_bytes(&mut out, &serde_json::to_vec(header)?)?;
        Ok(Self {
            frames: DeflateEncoder::new(out, Compression::fast()),
            rows: 0,
            changes: 0,
        })
    }

    /// A row of the scan.
    pub fn row(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.frames.write_all(b"R")?;
        put_bytes(&mut self.frames, key)?;
        put_bytes(&mut self.frames, value)?;
        self.rows += 1;
        Ok(())
    }

    /// A write made during the scan.
    pub fn change(&mut self, key: &[u8], value: Option<&[u8]>) -> io::Result<()> {
        self.frames.write_all(b"C")?;
        put_bytes(&mut self.frames, key)?;
        match value {
            Some(v) => {
                self.frames.write_all(&[1])?;
                put_bytes(&mut self.frames, v)?;
            }
            None => self.frames.write_all(&[0])?,
        }
        self.changes += 1;
        Ok(())
    }

    /// Rows and changes written so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.rows, self.changes)
    }

    /// Ends the backup: the trailer (its counts are this writer's own), the end of the
    /// compressed stream, the checksum. Returns the output and the file's size.
    pub fn finish(mut self, audit_records: u64, cut_at_ms: i64) -> io::Result<(W, u64)> {
        let trailer = Trailer {
            rows: self.rows,
            changes: self.changes,
            audit_records,
            cut_at_ms,
        };
        self.frames.write_all(b"T")?;
        put_bytes(&mut self.frames, &serde_json::to_vec(&trailer)?)?;
        let Hashing {
            mut inner,
            hash,
            bytes,
        } = self.frames.finish()?;
        inner.write_all(&hash.finalize())?;
        inner.flush()?;
        Ok((inner, bytes + 32))
    }
}

/// A buffered reader that hashes the bytes its user consumes (not those it buffers
/// ahead), so the deflate decoder can stop exactly where the checksum starts.
struct HashingBuf<R> {
    inner: R,
    hash: Sha256,
}

impl<R: BufRead> Read for HashingBuf<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for HashingBuf<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            self.hash.update(&buf[..n.min(buf.len())]);
        }
        self.inner.consume(n);
    }
}

/// Reads a backup, checking it as it goes: [`BackupReader::open`] reads the header,
/// [`BackupReader::next`] each entry, and `None` only after the trailer's counts and the
/// checksum were found right.
pub struct BackupReader<R: BufRead> {
    frames: Option<DeflateDecoder<HashingBuf<R>>>,
    header: Header,
    rows: u64,
    changes: u64,
    trailer: Option<Trailer>,
}

/// Whether an I/O error of reading means the file ended.
fn ended(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::UnexpectedEof
}

impl<R: BufRead> BackupReader<R> {
    /// Reads the magic, the version and the header.
    pub fn open(input: R) -> Result<Self, BackupError> {
        let mut input = HashingBuf {
            inner: input,
            hash: Sha256::new(),
        };
        let mut magic = [0u8; 8];
        let mut version = [0u8; 2];
        let short = |e: io::Error| {
            if ended(&e) {
                BackupError::NotABackup
            } else {
                BackupError::Io(e.to_string())
            }
        };
        input.read_exact(&mut magic).map_err(short)?;
        if &magic != MAGIC {
            return Err(BackupError::NotABackup);
        }
        input.read_exact(&mut version).map_err(short)?;
        let version = u16::from_be_bytes(version);
        if version != VERSION {
            return Err(BackupError::UnknownVersion(version));
        }
        let header = read_bytes(&mut input, MAX_HEADER, "its header")?;
        let header: Header = serde_json::from_slice(&header)
            .map_err(|e| BackupError::Damaged(format!("its header is not readable: {e}")))?;
        Ok(Self {
            frames: Some(DeflateDecoder::new(input)),
            header,
            rows: 0,
            changes: 0,
            trailer: None,
        })
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The trailer, once [`BackupReader::next`] returned `None`.
    pub fn trailer(&self) -> Option<&Trailer> {
        self.trailer.as_ref()
    }

    /// The next entry; `None` after the last, once the whole file checked out.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry>, BackupError> {
        let Some(frames) = self.frames.as_mut() else {
            return Ok(None);
        };
        let at = || format!("after {} rows and {} changes", self.rows, self.changes);
        let mut tag = [0u8; 1];
        frames
            .read_exact(&mut tag)
            .map_err(|e| stream_error(&e, at()))?;
        match tag[0] {
            b'R' => {
                let key = read_bytes(frames, MAX_KEY, &at())?;
                let value = read_bytes(frames, MAX_VALUE, &at())?;
                self.rows += 1;
                Ok(Some(Entry::Row(key, value)))
            }
            b'C' => {
                let key = read_bytes(frames, MAX_KEY, &at())?;
                let mut present = [0u8; 1];
                frames
                    .read_exact(&mut present)
                    .map_err(|e| stream_error(&e, at()))?;
                let value = match present[0] {
                    0 => None,
                    1 => Some(read_bytes(frames, MAX_VALUE, &at())?),
                    b => {
                        return Err(BackupError::Damaged(format!(
                            "a change marked {b} {}",
                            at()
                        )));
                    }
                };
                self.changes += 1;
                Ok(Some(Entry::Change(key, value)))
            }
            b'T' => {
                let trailer = read_bytes(frames, MAX_HEADER, &at())?;
                let trailer: Trailer = serde_json::from_slice(&trailer).map_err(|e| {
                    BackupError::Damaged(format!("its trailer is not readable: {e}"))
                })?;
                self.finish(trailer)?;
                Ok(None)
            }
            other => Err(BackupError::Damaged(format!(
                "an unknown frame {other:#04x} {}",
                at()
            ))),
        }
    }

    /// After the trailer: counts, the end of the stream, the checksum, the end of file.
    fn finish(&mut self, trailer: Trailer) -> Result<(), BackupError> {
        if (trailer.rows, trailer.changes) != (self.rows, self.changes) {
            return Err(BackupError::Damaged(format!(
                "its trailer declares {} rows and {} changes, it holds {} and {}",
                trailer.rows, trailer.changes, self.rows, self.changes
            )));
        }
        let Some(mut frames) = self.frames.take() else {
            return Ok(());
        };
        let mut rest = [0u8; 1];
        match frames.read(&mut rest) {
            Ok(0) => {}
            Ok(_) => return Err(BackupError::Damaged("data after its trailer".into())),
            Err(e) => return Err(stream_error(&e, "after its trailer".into())),
        }
        let mut input = frames.into_inner();
        let computed = std::mem::take(&mut input.hash).finalize();
        let mut stored = [0u8; 32];
        input.inner.read_exact(&mut stored).map_err(|e| {
            if ended(&e) {
                BackupError::Truncated("before its checksum".into())
            } else {
                BackupError::Io(e.to_string())
            }
        })?;
        let mut more = [0u8; 1];
        if input
            .inner
            .read(&mut more)
            .map_err(|e| BackupError::Io(e.to_string()))?
            > 0
        {
            return Err(BackupError::Damaged("bytes after its checksum".into()));
        }
        if computed.as_slice() != stored {
            return Err(BackupError::Checksum);
        }
        self.trailer = Some(trailer);
        Ok(())
    }
}

/// What an error inside the compressed stream means.
fn stream_error(e: &io::Error, at: String) -> BackupError {
    if ended(e) {
        BackupError::Truncated(at)
    } else if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::InvalidInput {
        BackupError::Damaged(format!("its compressed data does not unpack ({e}) {at}"))
    } else {
        BackupError::Io(e.to_string())
    }
}

fn read_bytes(r: &mut impl Read, max: u32, at: &str) -> Result<Vec<u8>, BackupError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|e| stream_error(&e, at.to_owned()))?;
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(BackupError::Damaged(format!(
            "a length of {len} bytes (at most {max}) {at}"
        )));
    }
    // Read as the data comes, so a damaged length cannot make us allocate it up front.
    let mut out = Vec::new();
    r.take(u64::from(len))
        .read_to_end(&mut out)
        .map_err(|e| stream_error(&e, at.to_owned()))?;
    if out.len() != len as usize {
        return Err(BackupError::Truncated(at.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format: VERSION,
            created_at_ms: 1_800_000_000_000,
            master_key_fingerprint: "fp".into(),
            backend: "sled".into(),
            roster_version: "test".into(),
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = BackupWriter::new(Vec::new(), &header()).unwrap();
        for i in 0..500u32 {
            w.row(format!("u{i:05}").as_bytes(), &i.to_be_bytes().repeat(40))
                .unwrap();
        }
        w.change(b"u00001", None).unwrap();
        w.change(b"u99999", Some(b"new")).unwrap();
        let (bytes, size) = w.finish(7, 1_800_000_000_500).unwrap();
        assert_eq!(size, bytes.len() as u64);
        bytes
    }

    fn read_all(bytes: &[u8]) -> Result<(Vec<Entry>, Trailer), BackupError> {
        let mut r = BackupReader::open(bytes)?;
        let mut out = Vec::new();
        while let Some(e) = r.next()? {
            out.push(e);
        }
        Ok((out, r.trailer().cloned().unwrap()))
    }

    #[test]
    fn what_is_written_reads_back_with_its_trailer() {
        let bytes = sample();
        assert_eq!(BackupReader::open(&bytes[..]).unwrap().header(), &header());
        let (entries, trailer) = read_all(&bytes).unwrap();
        assert_eq!(entries.len(), 502);
        assert_eq!(
            entries[0],
            Entry::Row(b"u00000".to_vec(), 0u32.to_be_bytes().repeat(40))
        );
        assert_eq!(entries[500], Entry::Change(b"u00001".to_vec(), None));
        assert_eq!(
            entries[501],
            Entry::Change(b"u99999".to_vec(), Some(b"new".to_vec()))
        );
        assert_eq!(
            trailer,
            Trailer {
                rows: 500,
                changes: 2,
                audit_records: 7,
                cut_at_ms: 1_800_000_000_500
            }
        );
    }

    #[test]
    fn every_truncation_and_every_altered_byte_is_refused() {
        let bytes = sample();
        for len in [
            0,
            5,
            9,
            20,
            bytes.len() / 2,
            bytes.len() - 33,
            bytes.len() - 1,
        ] {
            let err = read_all(&bytes[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    BackupError::NotABackup | BackupError::Truncated(_) | BackupError::Damaged(_)
                ),
                "cut at {len}: {err}"
            );
        }
        // Every byte after the fixed start, altered, is caught by one check or another.
        for at in 10..bytes.len() {
            let mut altered = bytes.clone();
            altered[at] ^= 0x20;
            assert!(read_all(&altered).is_err(), "byte {at} altered went unseen");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            read_all(&longer).unwrap_err(),
            BackupError::Damaged(_)
        ));
    }

    #[test]
    fn another_version_or_another_file_is_named_as_such() {
        let mut bytes = sample();
        bytes[9] = 2;
        assert!(matches!(
            read_all(&bytes).unwrap_err(),
            BackupError::UnknownVersion(2)
        ));
        assert!(matches!(
            read_all(b"{\"users\": []}").unwrap_err(),
            BackupError::NotABackup
        ));
    }
}
