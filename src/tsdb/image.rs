//! The head image: the head's index and series identities, written at a
//! clean close and after every checkpoint, so that the next open takes them
//! in one read of fixed-size records instead of decoding, hashing and
//! interning every series' labels from the chunk store
//! (`docs/format/head-image.md`).
//!
//! This file owns the file: its header, checksum, the write (temporary
//! file, fsync, rename) and the checks that decide whether an image may be
//! trusted. The index and the head encode their own parts
//! (`index/image.rs`, `head/image.rs`). An image is trusted only if its
//! checksum holds and it names the newest checkpoint; a clean close's image
//! also needs the WAL to end exactly where it ended at the close, and a
//! checkpoint's the WAL it was taken beside to be still there (what came
//! after it is replayed from the WAL, and what moved to the chunk store
//! since is read back from there). It is removed as soon as it is read, so
//! a process that opens the store and then changes it never leaves a stale
//! one behind.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::tsdb::wal::{self, Position};

/// The image's file name in the data directory.
pub const IMAGE_FILE: &str = "head.image";
const TMP_FILE: &str = "head.image.tmp";
const MAGIC: &[u8; 8] = b"RMNHIMG\0";
/// Bump on any change of layout; older or newer images are not read.
pub const VERSION: u32 = 2;
const HEADER_LEN: usize = 40;
/// Where the header holds the kind.
const KIND_AT: usize = 20;
const NO_CHECKPOINT: u32 = u32::MAX;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot write the head image {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the head image {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the head image is not one (bad magic or too short)")]
    Magic,
    #[error("the head image has version {0}, this build reads {VERSION}")]
    Version(u32),
    #[error("the head image's checksum does not match: it is damaged")]
    Checksum,
    #[error("the head image is stale: {0}")]
    Stale(String),
    #[error("the head image is inconsistent: {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Wal(#[from] wal::Error),
}

/// When an image was taken, which decides what the open must add to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// At a clean close, after the last checkpoint: nothing changed after
    /// it, so the WAL must end where it ended then.
    Close,
    /// Right after a checkpoint, while the store kept going: the WAL after
    /// that checkpoint is replayed over it, and the chunks and labels moved
    /// to the chunk store since are read back from there.
    Checkpoint,
}

impl Kind {
    fn code(self) -> u32 {
        match self {
            Kind::Close => 0,
            Kind::Checkpoint => 1,
        }
    }
}

/// What the image was taken after: the newest checkpoint and the end of the
/// WAL at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub checkpoint: Option<u32>,
    pub wal_end: Position,
    pub kind: Kind,
}

/// An image read whole, its checks passed.
pub struct Image {
    buf: Vec<u8>,
    body: std::ops::Range<usize>,
    kind: Kind,
    sums: Sums,
}

/// The CRC-32C of the bytes before the kind and of those between it and
/// the checksum, kept from the check so that rewriting the kind (a clean
/// close's image kept as a checkpoint's) combines them instead of reading
/// the whole image again, on the opening thread, before the index's thread
/// can start.
#[derive(Debug, Clone, Copy)]
struct Sums {
    before: u32,
    after: u32,
    after_len: usize,
}

impl Sums {
    fn of(buf: &[u8], end: usize) -> Sums {
        Sums {
            before: crc32c::crc32c(&buf[..KIND_AT]),
            after: crc32c::crc32c(&buf[KIND_AT + 4..end]),
            after_len: end - KIND_AT - 4,
        }
    }

    /// The checksum of the image with `kind` in the kind's place.
    fn with_kind(self, kind: [u8; 4]) -> u32 {
        let crc = crc32c::crc32c_append(self.before, &kind);
        crc32c::crc32c_combine(crc, self.after, self.after_len)
    }
}

impl Image {
    /// What follows the header: the index's and the head's parts.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body.clone()]
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
}

/// A writer that keeps the CRC-32C and the count of what passes through.
/// It sits under the buffer, so it sees large writes only.
struct Summed<W> {
    inner: W,
    crc: u32,
    n: u64,
}

impl<W: Write> Write for Summed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..k]);
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the image of `dir` (replacing any): the header, then the
/// `body_len` bytes `body` writes, then the checksum; durable before it
/// gets its name, so a crash mid-write leaves only the temporary file,
/// which nothing reads. The body streams to the file: a million series'
/// image is some 90 MB, which would otherwise sit in memory whole.
pub fn write(
    dir: &Path,
    stamp: Stamp,
    body_len: u64,
    body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), ImageError> {
    let tmp = dir.join(TMP_FILE);
    let err = |source| ImageError::Write {
        path: tmp.clone(),
        source,
    };
    let mut head = Vec::with_capacity(HEADER_LEN);
    head.extend_from_slice(MAGIC);
    put_u32(&mut head, VERSION);
    put_u32(&mut head, stamp.checkpoint.unwrap_or(NO_CHECKPOINT));
    put_u32(&mut head, stamp.wal_end.segment);
    put_u32(&mut head, stamp.kind.code());
    put_u64(&mut head, stamp.wal_end.offset);
    put_u64(&mut head, body_len);
    let f = fs::File::create(&tmp).map_err(err)?;
    let mut w = BufWriter::with_capacity(
        1 << 20,
        Summed {
            inner: f,
            crc: 0,
            n: 0,
        },
    );
    w.write_all(&head).map_err(err)?;
    body(&mut w).map_err(err)?;
    let mut summed = w.into_inner().map_err(|e| err(e.into_error()))?;
    if summed.n != HEADER_LEN as u64 + body_len {
        return Err(err(std::io::Error::other(format!(
            "the body took {} bytes, not the {body_len} announced",
            summed.n - HEADER_LEN as u64
        ))));
    }
    let crc = summed.crc;
    summed.inner.write_all(&crc.to_le_bytes()).map_err(err)?;
    summed.inner.sync_all().map_err(err)?;
    drop(summed);
    let path = dir.join(IMAGE_FILE);
    fs::rename(&tmp, &path).map_err(|source| ImageError::Write { path, source })?;
    // The rename itself reaches the disk with the directory.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes any image of `dir` (and a temporary one left by a crash).
pub fn remove(dir: &Path) {
    for name in [IMAGE_FILE, TMP_FILE] {
        let _ = fs::remove_file(dir.join(name));
    }
}

/// Reads the image of `dir`. `Ok(None)` when there is none; an error (and
/// the image removed) when there is one that must not be trusted: damaged,
/// of another version, or not taken at the state the store is in
/// (`checkpoint` is the newest checkpoint, the WAL is in `wal_dir`).
///
/// A trusted image stays, as a checkpoint's (kind 1): this process only
/// appends to the WAL and moves chunks to the chunk store until its next
/// checkpoint (or a change that removes the image first), which is what an
/// open after a crash adds to a checkpoint's image. A clean close's image is
/// rewritten so (its kind and checksum); the caller removes it with
/// [`remove`] if it does not use it after all.
pub fn take(
    dir: &Path,
    checkpoint: Option<u32>,
    wal_dir: &Path,
) -> Result<Option<Image>, ImageError> {
    let got = read_checked(dir, checkpoint, wal_dir);
    match &got {
        Ok(Some(im)) if im.kind == Kind::Close => {
            if let Err(e) = mark_checkpoint(&dir.join(IMAGE_FILE), &im.buf, im.sums) {
                remove(dir);
                return Err(e);
            }
        }
        Ok(_) => {}
        Err(_) => remove(dir),
    }
    got
}

/// Rewrites a clean close's image in `path` (whose bytes are `buf`) as a
/// checkpoint's: the kind, then the checksum. A crash in between leaves a
/// checksum that does not match, so the image is refused, never misread.
fn mark_checkpoint(path: &Path, buf: &[u8], sums: Sums) -> Result<(), ImageError> {
    use std::os::unix::fs::FileExt;
    let err = |source| ImageError::Write {
        path: path.to_path_buf(),
        source,
    };
    let end = buf.len() - 4;
    let kind = Kind::Checkpoint.code().to_le_bytes();
    let crc = sums.with_kind(kind);
    let f = fs::OpenOptions::new().write(true).open(path).map_err(err)?;
    f.write_all_at(&kind, KIND_AT as u64).map_err(err)?;
    f.write_all_at(&crc.to_le_bytes(), end as u64)
        .map_err(err)?;
    Ok(())
}

fn read_checked(
    dir: &Path,
    checkpoint: Option<u32>,
    wal_dir: &Path,
) -> Result<Option<Image>, ImageError> {
    let path = dir.join(IMAGE_FILE);
    let buf = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = fs::remove_file(dir.join(TMP_FILE));
            return Ok(None);
        }
        Err(source) => return Err(ImageError::Read { path, source }),
    };
    let (body, sums) = check(&buf)?;
    let mut rd = Reader::new(&buf[8..HEADER_LEN]);
    let _version = rd.u32()?;
    let cp = match rd.u32()? {
        NO_CHECKPOINT => None,
        n => Some(n),
    };
    let segment = rd.u32()?;
    let kind = match rd.u32()? {
        0 => Kind::Close,
        1 => Kind::Checkpoint,
        _ => return Err(ImageError::Invalid("an unknown kind of image")),
    };
    let offset = rd.u64()?;
    if cp != checkpoint {
        return Err(ImageError::Stale(format!(
            "taken after checkpoint {cp:?}, the newest is {checkpoint:?}"
        )));
    }
    let last = wal::list_segments(wal_dir)?.last().copied();
    let len = fs::metadata(wal_dir.join(wal::segment_name(segment)))
        .map(|m| m.len())
        .ok();
    let fits = match kind {
        Kind::Close => last == Some(segment) && len == Some(offset),
        // The WAL only grew after it: replaying it brings what came later.
        Kind::Checkpoint => len.is_some_and(|l| l >= offset),
    };
    if !fits {
        return Err(ImageError::Stale(format!(
            "taken when the WAL ended at segment {segment} byte {offset}; it ends at segment {last:?}, that segment's length is {len:?}"
        )));
    }
    Ok(Some(Image {
        buf,
        body,
        kind,
        sums,
    }))
}

/// Checks magic, version, length and checksum; returns the body's range
/// and the checksum's parts.
fn check(buf: &[u8]) -> Result<(std::ops::Range<usize>, Sums), ImageError> {
    if buf.len() < HEADER_LEN + 4 || &buf[..8] != MAGIC {
        return Err(ImageError::Magic);
    }
    let mut rd = Reader::new(&buf[8..HEADER_LEN]);
    let version = rd.u32()?;
    if version != VERSION {
        return Err(ImageError::Version(version));
    }
    let body_len = u64::from_le_bytes(le8(&buf[32..40]));
    if body_len != (buf.len() - HEADER_LEN - 4) as u64 {
        return Err(ImageError::Checksum);
    }
    let end = buf.len() - 4;
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&buf[end..]);
    let sums = Sums::of(buf, end);
    let mut kind = [0u8; 4];
    kind.copy_from_slice(&buf[KIND_AT..KIND_AT + 4]);
    if sums.with_kind(kind) != u32::from_le_bytes(stored) {
        return Err(ImageError::Checksum);
    }
    Ok((HEADER_LEN..end, sums))
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

pub(crate) fn put_u32(out: &mut Vec<u8>, x: u32) {
    out.extend_from_slice(&x.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_le_bytes());
}

/// The little-endian `u32` at the start of `b`, which the caller has
/// already bounded (fixed-size records).
pub(crate) fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// The little-endian `u64` at the start of `b` (see [`le32`]).
pub(crate) fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// A cursor over an image's bytes that refuses to read past the end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ImageError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(ImageError::Invalid("a section runs past the end"))?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ImageError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, ImageError> {
        Ok(u64::from_le_bytes(le8(self.take(8)?)))
    }

    /// A count of records of `size` bytes each, checked against what is
    /// left, so that a bad count cannot make the reader allocate wildly.
    pub(crate) fn count(&mut self, size: usize) -> Result<usize, ImageError> {
        let n = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
        if n.saturating_mul(size) > self.buf.len() - self.at {
            return Err(ImageError::Invalid("a count runs past the end"));
        }
        Ok(n)
    }

    /// Whether everything was read.
    pub(crate) fn is_done(&self) -> bool {
        self.at == self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_parts_give_the_whole_checksum_with_either_kind() {
        let mut buf: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let end = buf.len() - 4;
        let sums = Sums::of(&buf, end);
        for kind in [Kind::Close, Kind::Checkpoint] {
            let k = kind.code().to_le_bytes();
            buf[KIND_AT..KIND_AT + 4].copy_from_slice(&k);
            assert_eq!(sums.with_kind(k), crc32c::crc32c(&buf[..end]));
        }
    }
}
