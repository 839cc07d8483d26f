//! Little readers shared by the block, WAL and head-chunk readers: a cursor
//! over bytes with Go's varints and big-endian integers, and a window over
//! a file read with positional reads, so that files of any size are read
//! in constant memory.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::Error;

/// A cursor over bytes. Every read checks the length; `None` means the
/// bytes ended too early (the caller names the file).
pub(super) struct Cursor<'a> {
    pub b: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b }
    }

    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    pub fn byte(&mut self) -> Option<u8> {
        let (&x, rest) = self.b.split_first()?;
        self.b = rest;
        Some(x)
    }

    pub fn be32(&mut self) -> Option<u32> {
        let (x, rest) = self.b.split_first_chunk::<4>()?;
        self.b = rest;
        Some(u32::from_be_bytes(*x))
    }

    pub fn be64(&mut self) -> Option<u64> {
        let (x, rest) = self.b.split_first_chunk::<8>()?;
        self.b = rest;
        Some(u64::from_be_bytes(*x))
    }

    /// Go's `binary.Uvarint`: at most 10 bytes, the last one at most 1.
    pub fn uvarint(&mut self) -> Option<u64> {
        let (x, n) = uvarint(self.b)?;
        self.b = &self.b[n..];
        Some(x)
    }

    /// Go's `binary.Varint` (zig-zag).
    pub fn varint(&mut self) -> Option<i64> {
        let ux = self.uvarint()?;
        let x = (ux >> 1) as i64;
        Some(if ux & 1 != 0 { !x } else { x })
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (x, rest) = self.b.split_at(n);
        self.b = rest;
        Some(x)
    }

    /// A string prefixed by its uvarint length.
    pub fn uvarint_str(&mut self) -> Option<&'a str> {
        let n = usize::try_from(self.uvarint()?).ok()?;
        std::str::from_utf8(self.bytes(n)?).ok()
    }
}

/// Decodes a uvarint at the start of `b`: the value and its length.
pub(super) fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x = 0u64;
    for (i, &c) in b.iter().enumerate().take(10) {
        if i == 9 && c > 1 {
            return None;
        }
        x |= u64::from(c & 0x7f) << (7 * i);
        if c < 0x80 {
            return Some((x, i + 1));
        }
    }
    None
}

/// The CRC-32C of `b` as Prometheus stores it: big-endian after the data.
pub(super) fn crc_ok(data: &[u8], stored: &[u8]) -> bool {
    stored.len() == 4 && crc32c::crc32c(data).to_be_bytes() == stored
}

/// Bytes read per window: large enough that a block's series and chunks,
/// which are laid out in the order they are read, cost few reads.
const WINDOW: usize = 1 << 20;

/// A file read through a window of its bytes.
pub(super) struct FileWindow {
    file: File,
    path: PathBuf,
    len: u64,
    buf: Vec<u8>,
    start: u64,
}

impl FileWindow {
    pub fn open(path: &Path) -> Result<FileWindow, Error> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(FileWindow {
            file,
            path: path.to_path_buf(),
            len,
            buf: Vec::new(),
            start: 0,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `n` bytes at `off`; an error if the file ends before them.
    pub fn range(&mut self, off: u64, n: usize) -> Result<&[u8], Error> {
        let end = off.checked_add(n as u64).filter(|&e| e <= self.len);
        let Some(end) = end else {
            return Err(Error::corrupt(
                &self.path,
                format!(
                    "needs {n} bytes at offset {off}, but the file has {} bytes",
                    self.len
                ),
            ));
        };
        let have = self.start..self.start + self.buf.len() as u64;
        if !(have.contains(&off) && end <= have.end) {
            let want = (n.max(WINDOW) as u64).min(self.len - off) as usize;
            self.buf.resize(want, 0);
            self.file
                .read_exact_at(&mut self.buf, off)
                .map_err(|e| Error::io(&self.path, e))?;
            self.start = off;
        }
        let s = (off - self.start) as usize;
        Ok(&self.buf[s..s + n])
    }

    /// At most `n` bytes at `off` (fewer at the end of the file).
    pub fn up_to(&mut self, off: u64, n: usize) -> Result<&[u8], Error> {
        let n = (n as u64).min(self.len.saturating_sub(off)) as usize;
        self.range(off, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_go() {
        assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(uvarint(&[0x80]), None);
        let mut c = Cursor::new(&[0x03, 0x04, 0x01]);
        assert_eq!(c.varint(), Some(-2));
        assert_eq!(c.varint(), Some(2));
        assert_eq!(c.varint(), Some(-1));
        assert_eq!(c.varint(), None);
        // Ten bytes whose last is above 1 overflow 64 bits.
        assert_eq!(
            uvarint(&[0xff; 9].iter().chain(&[2]).copied().collect::<Vec<_>>()),
            None
        );
    }
}
