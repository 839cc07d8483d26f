//! Chunk encodings: how one series' samples are compressed into bytes.
//!
//! Only the Gorilla XOR encoding exists (`docs/format/chunk.md`). This module
//! knows nothing of series, labels or locking.

mod bstream;
mod xor;

pub use xor::{XorChunk, XorIter};

/// The encoding byte that precedes a chunk in its persisted form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Encoding {
    Xor = 1,
}

impl Encoding {
    pub fn from_u8(b: u8) -> Result<Encoding, Error> {
        match b {
            1 => Ok(Encoding::Xor),
            other => Err(Error::UnknownEncoding(other)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("chunk is full")]
    Full,
    #[error("chunk is corrupt")]
    Corrupt,
    #[error("unknown chunk encoding {0}")]
    UnknownEncoding(u8),
}
