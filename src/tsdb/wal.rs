//! The write-ahead log: segment files of checksummed records
//! (`docs/format/wal.md`), the writer that commits log to before they return,
//! and the reader that replays segments and checkpoints.
//!
//! This file owns the byte layout of segments and checkpoint files. It knows
//! series only as references, labels and chunk bytes; it does not know the
//! head's locking or chunk cutting, nor anything of scraping or HTTP.

mod codec;
mod tail;

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tracing::{error, warn};

use crate::model::Labels;
use crate::storage::SeriesRef;
use crate::tsdb::chunkenc::XorState;

pub use codec::{CheckpointChunk, CheckpointSeries, get_labels_into, put_label_strs, put_labels};
pub use tail::{Keep, Position, Tail, Tailed};

/// Segments are cut at this size; a single larger record is written alone.
pub const DEFAULT_SEGMENT_SIZE: u64 = 128 << 20;

const SEGMENT_MAGIC: &[u8; 4] = b"RWAL";
const CHECKPOINT_MAGIC: &[u8; 4] = b"RCKP";
/// Written in new files; older versions are read too (version 1 has no
/// compressed series records, versions 1 and 2 no packed samples records).
const VERSION: u8 = 3;
const OLDEST_VERSION: u8 = 1;
const HEADER_LEN: u64 = 8;
const RECORD_HEADER_LEN: usize = 9;

/// Queued series entries are written as a record of their own once they
/// reach this size, so that a burst of new series is compressed and written
/// in pieces as it is created, each holding the writer's lock for a
/// millisecond or two, instead of all at once by the batch's commit.
/// Writing a series before its samples is what the batch does anyway.
const SERIES_QUEUE_BYTES: usize = 1 << 20;

/// A packing buffer up to this size is kept for the thread's next batch.
const SPARE_SAMPLES_BYTES: usize = 4 << 20;

thread_local! {
    /// Where this thread packs a batch's samples, outside the writer's lock.
    static SAMPLES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}
// A bound on one record, so that a corrupt length is not taken for an
// allocation request.
const MAX_RECORD_LEN: u32 = 1 << 30;

const TYPE_SERIES: u8 = 1;
const TYPE_SAMPLES: u8 = 2;
const TYPE_CHECKPOINT_SERIES: u8 = 3;
/// A series record's payload compressed with snappy (raw block format).
const TYPE_SERIES_SNAPPY: u8 = 4;
/// A samples record with short forms for the common cases.
const TYPE_SAMPLES_PACKED: u8 = 5;
/// A checkpoint series with the open chunk's encoder state.
const TYPE_CHECKPOINT_SERIES_OPEN: u8 = 6;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create WAL directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open WAL segment {n}")]
    OpenSegment {
        n: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write WAL segment {n}")]
    Write {
        n: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot sync WAL segment {n}")]
    Sync {
        n: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write checkpoint {path}")]
    WriteCheckpoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: bad header (not a raymon file of version {OLDEST_VERSION} to {VERSION})")]
    BadHeader { path: PathBuf },
    #[error("{path}: corrupt record at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("writes are failing (injected for tests)")]
    Injected,
}

impl Error {
    /// The I/O error underneath, if any.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Error::CreateDir { source, .. }
            | Error::OpenSegment { source, .. }
            | Error::Write { source, .. }
            | Error::Sync { source, .. }
            | Error::Read { source, .. }
            | Error::WriteCheckpoint { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// The file name of segment `n`.
pub fn segment_name(n: u32) -> String {
    format!("{n:08}")
}

/// The file name of the checkpoint that covers segments up to `n`.
pub fn checkpoint_name(n: u32) -> String {
    format!("checkpoint.{n:08}")
}

/// Segment numbers in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u32>, Error> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 8
            && name.bytes().all(|b| b.is_ascii_digit())
            && let Ok(n) = name.parse()
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Checkpoint numbers in `dir`, ascending; deletes leftover `.tmp` files.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<u32>, Error> {
    let mut out = Vec::new();
    let rd = fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("checkpoint.") else {
            continue;
        };
        if rest.ends_with(".tmp") {
            // A checkpoint that a crash interrupted: the segments it would
            // have replaced are still there.
            let _ = fs::remove_file(e.path());
            continue;
        }
        if let Ok(n) = rest.parse() {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn header(magic: &[u8; 4]) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..4].copy_from_slice(magic);
    h[4] = VERSION;
    h
}

/// A record's checksum: CRC-32C of its type byte followed by its payload.
fn record_crc(typ: u8, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[typ]), payload)
}

/// Appends a framed record of type `typ` whose payload is `buf[start + 9..]`,
/// after reserving the 9 header bytes at `start`.
fn frame(buf: &mut [u8], start: usize, typ: u8) {
    let payload_len = (buf.len() - start - RECORD_HEADER_LEN) as u32;
    let crc = record_crc(typ, &buf[start + RECORD_HEADER_LEN..]);
    buf[start] = typ;
    buf[start + 1..start + 5].copy_from_slice(&payload_len.to_be_bytes());
    buf[start + 5..start + 9].copy_from_slice(&crc.to_be_bytes());
}

/// Appends a series record of the encoded entries `series` to `buf`,
/// compressed: labels are most of a WAL's bytes while series are new (a Ray
/// series' labels are about 400 bytes, its sample 11), and a batch of them
/// shares most names and values: at 500 Ray-like targets the data directory
/// after a minute fell from 46.8 to 20.3 bytes per sample.
fn put_series_record(buf: &mut Vec<u8>, series: &[u8]) {
    let start = buf.len();
    buf.resize(
        start + RECORD_HEADER_LEN + snap::raw::max_compress_len(series.len()),
        0,
    );
    match snap::raw::Encoder::new().compress(series, &mut buf[start + RECORD_HEADER_LEN..]) {
        Ok(n) => {
            buf.truncate(start + RECORD_HEADER_LEN + n);
            frame(buf, start, TYPE_SERIES_SNAPPY);
        }
        Err(_) => {
            buf.truncate(start + RECORD_HEADER_LEN);
            buf.extend_from_slice(series);
            frame(buf, start, TYPE_SERIES);
        }
    }
}

/// Counters of the writer, readable without its lock.
#[derive(Debug, Default)]
pub struct WalStats {
    pub bytes_written: AtomicU64,
    pub records_written: AtomicU64,
    pub samples_written: AtomicU64,
    pub write_failures: AtomicU64,
    pub segments_created: AtomicU64,
}

struct Writer {
    n: u32,
    file: File,
    size: u64,
    // Encoded series entries waiting for the next write: they go out before
    // the samples that could name them.
    series: Vec<u8>,
    buf: Vec<u8>,
    dirty: bool,
    /// Segments closed since the last [`Wal::sync`], which syncs them
    /// outside the lock.
    unsynced: Vec<(u32, File)>,
}

/// The log writer. Every call writes with `write()` before returning, so a
/// killed process loses nothing that was acknowledged; `sync` makes it
/// survive a power cut too.
pub struct Wal {
    dir: PathBuf,
    segment_size: u64,
    /// parking_lot's lock, which hands itself to a thread that has waited
    /// half a millisecond: a target bursting into new series queues each one
    /// here, and with std's lock took it back between series while a small
    /// commit waited to write its samples.
    w: Mutex<Writer>,
    fail_writes: AtomicBool,
    pub stats: WalStats,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).finish()
    }
}

fn create_segment(dir: &Path, n: u32) -> Result<File, Error> {
    let path = dir.join(segment_name(n));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(|source| Error::OpenSegment { n, source })?;
    f.write_all(&header(SEGMENT_MAGIC))
        .map_err(|source| Error::Write { n, source })?;
    Ok(f)
}

impl Wal {
    /// Starts a new segment numbered `n` in `dir`.
    pub fn create(dir: &Path, n: u32, segment_size: u64) -> Result<Wal, Error> {
        fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = create_segment(dir, n)?;
        let stats = WalStats::default();
        stats.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(Wal {
            dir: dir.to_path_buf(),
            segment_size: segment_size.max(4096),
            w: Mutex::new(Writer {
                n,
                file,
                size: HEADER_LEN,
                series: Vec::new(),
                buf: Vec::with_capacity(64 << 10),
                dirty: true,
                unsynced: Vec::new(),
            }),
            fail_writes: AtomicBool::new(false),
            stats,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of the segment being written.
    pub fn current_segment(&self) -> u32 {
        self.w.lock().n
    }

    /// Where the next record will be written.
    pub fn end(&self) -> Position {
        let w = self.w.lock();
        Position {
            segment: w.n,
            offset: w.size,
        }
    }

    /// Makes writes fail as a full disk would (tests of the error path).
    pub fn set_fail_writes(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::Relaxed);
    }

    /// Queues a series entry; it is written with the next batch, or at
    /// once a megabyte of entries is queued (see `SERIES_QUEUE_BYTES`).
    pub fn log_series(&self, r: SeriesRef, labels: &Labels) {
        let mut w = self.w.lock();
        codec::put_series(&mut w.series, r, labels);
        if w.series.len() >= SERIES_QUEUE_BYTES {
            // On failure the entries stay queued and the next batch, which
            // needs them, reports the error.
            let _ = self.flush_series_locked(&mut w);
        }
    }

    /// Writes queued series and one samples record for `samples`.
    pub fn log_samples(
        &self,
        samples: &mut dyn Iterator<Item = (SeriesRef, i64, f64)>,
    ) -> Result<(), Error> {
        // The samples are packed before the lock is taken: every other
        // commit waits for it, and a batch of millions of samples (a target
        // that suddenly serves millions of series) takes long to pack.
        let mut rec = SAMPLES.with(|b| std::mem::take(&mut *b.borrow_mut()));
        rec.clear();
        rec.extend_from_slice(&[0; RECORD_HEADER_LEN]);
        let n = codec::put_packed_samples(&mut rec, samples);
        if n == 0 {
            rec.clear();
        } else {
            frame(&mut rec, 0, TYPE_SAMPLES_PACKED);
        }
        let res = self.write_with_series(&rec);
        if rec.capacity() <= SPARE_SAMPLES_BYTES {
            SAMPLES.with(|b| *b.borrow_mut() = rec);
        }
        res?;
        self.stats
            .samples_written
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the queued series and then `record` (framed, or empty).
    fn write_with_series(&self, record: &[u8]) -> Result<(), Error> {
        let mut w = self.w.lock();
        let w = &mut *w;
        w.buf.clear();
        if !w.series.is_empty() {
            put_series_record(&mut w.buf, &w.series);
        }
        w.buf.extend_from_slice(record);
        if w.buf.is_empty() {
            return Ok(());
        }
        self.write_buf(w)?;
        w.series.clear();
        Ok(())
    }

    /// Writes every queued series entry.
    pub fn flush_series(&self) -> Result<(), Error> {
        self.flush_series_locked(&mut self.w.lock())
    }

    fn flush_series_locked(&self, w: &mut Writer) -> Result<(), Error> {
        if w.series.is_empty() {
            return Ok(());
        }
        w.buf.clear();
        put_series_record(&mut w.buf, &w.series);
        self.write_buf(w)?;
        w.series.clear();
        Ok(())
    }

    fn write_buf(&self, w: &mut Writer) -> Result<(), Error> {
        let len = w.buf.len() as u64;
        if w.size > HEADER_LEN && w.size + len > self.segment_size {
            self.rotate_locked(w)?;
        }
        let res = if self.fail_writes.load(Ordering::Relaxed) {
            Err(Error::Injected)
        } else {
            w.file
                .write_all(&w.buf)
                .map_err(|source| Error::Write { n: w.n, source })
        };
        if let Err(e) = res {
            self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
            // Nothing half-written may stay in front of later records.
            let _ = w.file.set_len(w.size);
            let _ = w.file.seek(SeekFrom::Start(w.size));
            return Err(e);
        }
        w.size += len;
        w.dirty = true;
        self.stats.bytes_written.fetch_add(len, Ordering::Relaxed);
        self.stats.records_written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Starts the next segment. The closed one is synced by the next
    /// [`Wal::sync`], outside the lock: an fdatasync of a whole segment
    /// takes up to a second, and every commit waits for this lock.
    fn rotate_locked(&self, w: &mut Writer) -> Result<u32, Error> {
        let n = w.n;
        let file = create_segment(&self.dir, n + 1)?;
        let closed = std::mem::replace(&mut w.file, file);
        w.unsynced.push((n, closed));
        w.n = n + 1;
        w.size = HEADER_LEN;
        w.dirty = true;
        self.stats.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(n)
    }

    /// Closes the current segment and starts the next; returns the number
    /// of the closed one.
    pub fn rotate(&self) -> Result<u32, Error> {
        let n = self.start_segment()?;
        self.sync()?;
        Ok(n)
    }

    /// [`Wal::rotate`] without the sync: the closed segment is synced by the
    /// next [`Wal::sync`]. For callers that hold other writers off while the
    /// segment changes and should not hold them for the sync too.
    pub fn start_segment(&self) -> Result<u32, Error> {
        self.rotate_locked(&mut self.w.lock())
    }

    /// `fdatasync`s the current segment if anything was written since the
    /// last call.
    pub fn sync(&self) -> Result<(), Error> {
        // The sync runs on a second handle of the segment, outside the
        // writer's lock: holding the lock for the length of an fdatasync
        // (tens to hundreds of ms at 400k samples/s) stalled every commit,
        // and with them the scrape threads. Everything written before the
        // lock was released is covered by the sync.
        let (n, file, closed) = {
            let mut w = self.w.lock();
            let closed = std::mem::take(&mut w.unsynced);
            if !w.dirty && closed.is_empty() {
                return Ok(());
            }
            let n = w.n;
            let file = w
                .file
                .try_clone()
                .map_err(|source| Error::Sync { n, source })?;
            w.dirty = false;
            (n, file, closed)
        };
        let mut closed = closed.into_iter();
        while let Some((c, f)) = closed.next() {
            if let Err(source) = f.sync_data() {
                // Tried again by the next call, the current segment too:
                // its flag was cleared above and it was not synced.
                let mut w = self.w.lock();
                w.unsynced.push((c, f));
                w.unsynced.extend(closed);
                if w.n == n {
                    w.dirty = true;
                }
                return Err(Error::Sync { n: c, source });
            }
        }
        if let Err(source) = file.sync_data() {
            let mut w = self.w.lock();
            if w.n == n {
                w.dirty = true;
            }
            return Err(Error::Sync { n, source });
        }
        Ok(())
    }

    /// Bytes of every segment file in the directory.
    pub fn disk_bytes(&self) -> u64 {
        dir_bytes(&self.dir)
    }
}

/// Total size of the files directly in `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    pub segments: usize,
    pub series_records: u64,
    pub samples: u64,
    /// Partial records at the end of a segment, dropped.
    pub torn: usize,
    /// Set when replay stopped at a corrupt record.
    pub corruption: Option<String>,
}

/// One decoded WAL record, handed to the replay callback.
pub enum Record<'a> {
    Series(&'a [(SeriesRef, Labels)]),
    Samples(&'a [(SeriesRef, i64, f64)]),
}

enum Next {
    Record(u8, u64),
    End,
    Torn(u64),
    Corrupt(u64, String),
}

/// Reads the next record of `r` into `payload`.
fn read_record(
    r: &mut impl Read,
    offset: u64,
    payload: &mut Vec<u8>,
) -> Result<Next, std::io::Error> {
    let mut h = [0u8; RECORD_HEADER_LEN];
    let got = read_full(r, &mut h)?;
    if got == 0 {
        return Ok(Next::End);
    }
    if got < RECORD_HEADER_LEN {
        return Ok(Next::Torn(offset));
    }
    let typ = h[0];
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]);
    let crc = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
    if !(TYPE_SERIES..=TYPE_CHECKPOINT_SERIES_OPEN).contains(&typ) {
        return Ok(Next::Corrupt(offset, format!("unknown record type {typ}")));
    }
    if len > MAX_RECORD_LEN {
        return Ok(Next::Corrupt(offset, format!("record length {len}")));
    }
    payload.clear();
    payload.resize(len as usize, 0);
    if read_full(r, payload)? < len as usize {
        return Ok(Next::Torn(offset));
    }
    let want = record_crc(typ, payload);
    if want != crc {
        return Ok(Next::Corrupt(offset, "checksum mismatch".to_string()));
    }
    Ok(Next::Record(
        typ,
        offset + RECORD_HEADER_LEN as u64 + len as u64,
    ))
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, std::io::Error> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn open_checked(path: &Path, magic: &[u8; 4]) -> Result<Option<BufReader<File>>, Error> {
    let f = File::open(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut h = [0u8; HEADER_LEN as usize];
    let got = read_full(&mut r, &mut h).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if got < HEADER_LEN as usize {
        // A segment whose header a crash cut short holds nothing.
        return Ok(None);
    }
    if &h[..4] != magic || !(OLDEST_VERSION..=VERSION).contains(&h[4]) {
        return Err(Error::BadHeader {
            path: path.to_path_buf(),
        });
    }
    Ok(Some(r))
}

/// Replays the segments of `dir` numbered above `after`, in order, calling
/// `f` with each record. A partial record at the end of a segment is cut
/// off; a corrupt record stops replay, the segment is truncated there and
/// the later segments are renamed `*.corrupt`, and the corruption is logged
/// and returned in the stats (the caller keeps serving). A segment whose
/// header is damaged is renamed too, with the later ones (Prometheus's
/// `wlog.Repair` likewise keeps what comes before the damage and drops the
/// rest).
pub fn replay(
    dir: &Path,
    after: Option<u32>,
    f: &mut dyn FnMut(Record<'_>),
) -> Result<ReplayStats, Error> {
    let mut st = ReplayStats::default();
    let segs: Vec<u32> = list_segments(dir)?
        .into_iter()
        .filter(|&n| after.is_none_or(|a| n > a))
        .collect();
    let mut payload = Vec::new();
    let mut unpacked = Vec::new();
    let mut series = Vec::new();
    let mut samples = Vec::new();
    for (i, &n) in segs.iter().enumerate() {
        let path = dir.join(segment_name(n));
        st.segments += 1;
        let mut r = match open_checked(&path, SEGMENT_MAGIC) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            // A damaged header leaves nothing in this segment to trust: it
            // goes aside with the later ones, as a corrupt record would.
            Err(Error::BadHeader { .. }) => {
                error!(segment = %path.display(), offset = 0, "WAL corruption: bad segment header; this segment and the later ones are set aside");
                set_aside(dir, &segs[i..]);
                st.corruption = Some(format!("{}: bad header at offset 0", path.display()));
                return Ok(st);
            }
            Err(e) => return Err(e),
        };
        let mut offset = HEADER_LEN;
        loop {
            let next = read_record(&mut r, offset, &mut payload).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            match next {
                Next::End => break,
                Next::Torn(at) => {
                    warn!(segment = %path.display(), offset = at, "dropping a partial record at the end of a WAL segment");
                    st.torn += 1;
                    truncate(&path, at);
                    break;
                }
                Next::Corrupt(at, reason) => {
                    let msg = format!(
                        "{}: corrupt record at offset {at}: {reason}",
                        path.display()
                    );
                    error!(segment = %path.display(), offset = at, %reason, "WAL corruption: replay stops here, later records are set aside");
                    truncate(&path, at);
                    set_aside(dir, &segs[i + 1..]);
                    st.corruption = Some(msg);
                    return Ok(st);
                }
                Next::Record(typ, end) => {
                    let ok = match typ {
                        TYPE_SERIES | TYPE_SERIES_SNAPPY => {
                            series.clear();
                            let entries = if typ == TYPE_SERIES {
                                Some(&payload[..])
                            } else {
                                unsnappy(&payload, &mut unpacked).then_some(&unpacked[..])
                            };
                            let ok = entries.is_some_and(|e| codec::get_series(e, &mut series));
                            st.series_records += series.len() as u64;
                            f(Record::Series(&series));
                            ok
                        }
                        TYPE_SAMPLES | TYPE_SAMPLES_PACKED => {
                            samples.clear();
                            let ok = if typ == TYPE_SAMPLES {
                                codec::get_samples(&payload, &mut samples)
                            } else {
                                codec::get_packed_samples(&payload, &mut samples)
                            };
                            st.samples += samples.len() as u64;
                            f(Record::Samples(&samples));
                            ok
                        }
                        _ => false,
                    };
                    if !ok {
                        let msg =
                            format!("{}: undecodable record at offset {offset}", path.display());
                        error!(segment = %path.display(), offset, "WAL corruption: a record with a good checksum does not decode; later records are set aside");
                        truncate(&path, offset);
                        set_aside(dir, &segs[i + 1..]);
                        st.corruption = Some(msg);
                        return Ok(st);
                    }
                    offset = end;
                }
            }
        }
    }
    Ok(st)
}

/// Decompresses a snappy record payload into `out`; false if it does not
/// decode or would exceed the largest record.
fn unsnappy(payload: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(len) = snap::raw::decompress_len(payload) else {
        return false;
    };
    if len > MAX_RECORD_LEN as usize {
        return false;
    }
    out.clear();
    out.resize(len, 0);
    snap::raw::Decoder::new()
        .decompress(payload, out)
        .is_ok_and(|n| n == len)
}

/// Renames segments `segs` of `dir` out of the WAL (`00000003` becomes
/// `00000003.corrupt`, or `.corrupt.1`, ... if that name is taken), so that
/// replay and the writer no longer see them and nothing earlier set aside is
/// overwritten.
fn set_aside(dir: &Path, segs: &[u32]) {
    for &n in segs {
        let from = dir.join(segment_name(n));
        let mut to = dir.join(format!("{}.corrupt", segment_name(n)));
        let mut k = 0;
        while to.exists() {
            k += 1;
            to = dir.join(format!("{}.corrupt.{k}", segment_name(n)));
        }
        match fs::rename(&from, &to) {
            Ok(()) => warn!(segment = %from.display(), to = %to.display(), "WAL segment set aside"),
            Err(e) => {
                error!(error = %e, segment = %from.display(), "cannot set a WAL segment aside")
            }
        }
    }
}

fn truncate(path: &Path, at: u64) {
    if let Ok(f) = OpenOptions::new().write(true).open(path)
        && let Err(e) = f.set_len(at)
    {
        warn!(error = %e, segment = %path.display(), "cannot truncate WAL segment");
    }
}

/// Writes a checkpoint: `next` appends framed records
/// ([`put_checkpoint_record`]) to the buffer it is given, until it returns
/// false.
/// The file is written under a temporary name, synced and renamed, so a
/// crash leaves either the old state or the new one.
pub fn write_checkpoint(
    dir: &Path,
    n: u32,
    next: &mut dyn FnMut(&mut Vec<u8>) -> bool,
) -> Result<u64, Error> {
    let path = dir.join(checkpoint_name(n));
    let tmp = dir.join(format!("{}.tmp", checkpoint_name(n)));
    let werr = |source| Error::WriteCheckpoint {
        path: path.clone(),
        source,
    };
    let mut f = File::create(&tmp).map_err(werr)?;
    let mut bytes = HEADER_LEN;
    let res = (|| -> Result<(), std::io::Error> {
        f.write_all(&header(CHECKPOINT_MAGIC))?;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let more = next(&mut buf);
            f.write_all(&buf)?;
            bytes += buf.len() as u64;
            if !more {
                break;
            }
        }
        f.sync_all()?;
        Ok(())
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(werr(e));
    }
    fs::rename(&tmp, &path).map_err(werr)?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(bytes)
}

/// Appends one framed checkpoint record (type 6) built from its parts:
/// `labels` as a pair count with the name, value, ... strings (`None` for a
/// series whose labels the chunk store holds), `n` chunks as (min t, max
/// t, XOR bytes) and, when the last of them is the open chunk, its encoder
/// state. The head encodes each series straight from its chunks, with no
/// copy in between.
pub fn put_checkpoint_record<'a, 'c>(
    buf: &mut Vec<u8>,
    r: SeriesRef,
    labels: Option<(usize, impl Iterator<Item = &'a str>)>,
    (last_t, last_v): (i64, u64),
    n: usize,
    chunks: impl Iterator<Item = (i64, i64, &'c [u8])>,
    open: Option<&XorState>,
) {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    codec::put_checkpoint_parts(buf, r, labels, last_t, last_v, n, chunks, open);
    frame(buf, start, TYPE_CHECKPOINT_SERIES_OPEN);
}

/// A type 3 record (no encoder state), as checkpoints written before type
/// 6 hold them.
#[cfg(test)]
pub fn put_checkpoint_record_v1(buf: &mut Vec<u8>, s: &CheckpointSeries) {
    let start = buf.len();
    buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    let strs = s
        .labels
        .iter()
        .flat_map(|l| [l.name.as_str(), l.value.as_str()]);
    codec::put_checkpoint_parts(
        buf,
        s.r,
        Some((s.labels.len(), strs)),
        s.last_t,
        s.last_v,
        s.chunks.len(),
        s.chunks.iter().map(|c| (c.min_t, c.max_t, &*c.data)),
        None,
    );
    // Type 3 has no state byte.
    buf.pop();
    frame(buf, start, TYPE_CHECKPOINT_SERIES);
}

/// [`put_checkpoint_record`] of a decoded series.
#[cfg(test)]
pub fn put_checkpoint_series_record(buf: &mut Vec<u8>, s: &CheckpointSeries) {
    let strs = s
        .labels
        .iter()
        .flat_map(|l| [l.name.as_str(), l.value.as_str()]);
    put_checkpoint_record(
        buf,
        s.r,
        Some((s.labels.len(), strs)),
        (s.last_t, s.last_v),
        s.chunks.len(),
        s.chunks.iter().map(|c| (c.min_t, c.max_t, &*c.data)),
        s.open.as_ref(),
    );
}

/// Reads checkpoint `n`, calling `f` with each series.
pub fn read_checkpoint(
    dir: &Path,
    n: u32,
    f: &mut dyn FnMut(CheckpointSeries),
) -> Result<u64, Error> {
    let path = dir.join(checkpoint_name(n));
    let Some(mut r) = open_checked(&path, CHECKPOINT_MAGIC)? else {
        return Err(Error::BadHeader { path });
    };
    let mut payload = Vec::new();
    let mut offset = HEADER_LEN;
    let mut count = 0;
    loop {
        let next = read_record(&mut r, offset, &mut payload).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        match next {
            Next::End => return Ok(count),
            Next::Torn(at) => {
                return Err(Error::Corrupt {
                    path,
                    offset: at,
                    reason: "truncated".to_string(),
                });
            }
            Next::Corrupt(at, reason) => {
                return Err(Error::Corrupt {
                    path,
                    offset: at,
                    reason,
                });
            }
            Next::Record(typ, end) => {
                let with_state = match typ {
                    TYPE_CHECKPOINT_SERIES => false,
                    TYPE_CHECKPOINT_SERIES_OPEN => true,
                    other => {
                        return Err(Error::Corrupt {
                            path,
                            offset,
                            reason: format!("record type {other} in a checkpoint"),
                        });
                    }
                };
                let Some(s) = codec::get_checkpoint_series(&payload, with_state) else {
                    return Err(Error::Corrupt {
                        path,
                        offset,
                        reason: "undecodable series".to_string(),
                    });
                };
                count += 1;
                f(s);
                offset = end;
            }
        }
    }
}

#[cfg(test)]
mod tests;
