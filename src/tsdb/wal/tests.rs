//! The WAL's unit tests: records, segments, checkpoints, torn and corrupt
//! tails, and replay.

use std::path::PathBuf;

use super::*;
use crate::model::STALE_NAN_BITS;

fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("rm-wal-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&p);
    fs::create_dir_all(&p).unwrap();
    p
}

type Replayed = (
    ReplayStats,
    Vec<(SeriesRef, Labels)>,
    Vec<(SeriesRef, i64, u64)>,
);

fn collect(dir: &Path) -> Replayed {
    let mut series = Vec::new();
    let mut samples = Vec::new();
    let st = replay(dir, None, &mut |r| match r {
        Record::Series(l) => series.extend(l.iter().cloned()),
        Record::Samples(l) => samples.extend(l.iter().map(|&(r, t, v)| (r, t, v.to_bits()))),
    })
    .unwrap();
    (st, series, samples)
}

fn write_some(dir: &Path, batches: i64) -> Wal {
    let wal = Wal::create(dir, 1, 4096).unwrap();
    let up = Labels::from_pairs([("__name__", "up"), ("job", "ray")]);
    wal.log_series(17, &up);
    for b in 0..batches {
        let v = if b % 3 == 2 {
            f64::from_bits(STALE_NAN_BITS)
        } else {
            b as f64 / 3.0
        };
        let mut it = [(17, b * 1000 - 5, v), (17, b * 1000, -0.0)].into_iter();
        wal.log_samples(&mut it).unwrap();
    }
    wal
}

#[test]
fn records_round_trip_bit_exact_across_segments() {
    let dir = tmp("rt");
    let wal = write_some(&dir, 300);
    assert!(wal.current_segment() > 1, "small segments rotate");
    drop(wal);
    let (st, series, samples) = collect(&dir);
    assert_eq!(st.torn, 0);
    assert!(st.corruption.is_none());
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].0, 17);
    assert_eq!(samples.len(), 600);
    assert_eq!(samples[5], (17, 2 * 1000, (-0.0f64).to_bits()));
    assert_eq!(samples[4], (17, 2 * 1000 - 5, STALE_NAN_BITS));
    assert_eq!(samples[2].2, (1.0f64 / 3.0).to_bits());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_torn_tail_is_cut_off_and_earlier_records_survive() {
    let dir = tmp("torn");
    let wal = write_some(&dir, 10);
    let last = wal.current_segment();
    drop(wal);
    let path = dir.join(segment_name(last));
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (st, _, samples) = collect(&dir);
    assert_eq!(st.torn, 1);
    assert!(st.corruption.is_none());
    assert_eq!(samples.len(), 18);
    // The segment was truncated at the torn record: a second replay is clean.
    let (st, _, samples) = collect(&dir);
    assert_eq!((st.torn, samples.len()), (0, 18));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corruption_in_the_middle_stops_replay_loudly() {
    let dir = tmp("corrupt");
    let wal = write_some(&dir, 300);
    let segs = list_segments(&dir).unwrap();
    assert!(segs.len() >= 3);
    drop(wal);
    // Flip a byte inside the second record of the second segment.
    let path = dir.join(segment_name(segs[1]));
    let mut bytes = fs::read(&path).unwrap();
    let second = HEADER_LEN as usize
        + RECORD_HEADER_LEN
        + u32::from_be_bytes(bytes[9..13].try_into().unwrap()) as usize;
    bytes[second + RECORD_HEADER_LEN + 3] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
    let (st, _, samples) = collect(&dir);
    let msg = st.corruption.unwrap();
    assert!(msg.contains("checksum mismatch"), "{msg}");
    let first_segment = samples
        .iter()
        .filter(|s| s.1 < 0 || s.1 % 1000 == 0)
        .count();
    assert!(first_segment > 0 && samples.len() < 600);
    // The later segments were set aside, the damaged one cut.
    assert_eq!(list_segments(&dir).unwrap(), segs[..2].to_vec());
    let (st2, _, again) = collect(&dir);
    assert!(st2.corruption.is_none());
    assert_eq!(again.len(), samples.len());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_write_leaves_no_garbage_and_keeps_queued_series() {
    let dir = tmp("fail");
    let wal = Wal::create(&dir, 1, DEFAULT_SEGMENT_SIZE).unwrap();
    let a = Labels::from_pairs([("__name__", "a")]);
    wal.log_series(1, &a);
    wal.set_fail_writes(true);
    assert!(wal.log_samples(&mut [(1, 10, 1.0)].into_iter()).is_err());
    assert_eq!(wal.stats.write_failures.load(Ordering::Relaxed), 1);
    wal.set_fail_writes(false);
    wal.log_samples(&mut [(1, 20, 2.0)].into_iter()).unwrap();
    drop(wal);
    let (st, series, samples) = collect(&dir);
    assert!(st.corruption.is_none());
    assert_eq!(series.len(), 1);
    assert_eq!(samples, vec![(1, 20, 2.0f64.to_bits())]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoints_round_trip_and_reject_damage() {
    let dir = tmp("ckpt");
    let s = CheckpointSeries {
        r: 99,
        labels: Labels::from_pairs([("__name__", "x"), ("i", "1")]),
        last_t: 50,
        last_v: STALE_NAN_BITS,
        chunks: vec![CheckpointChunk {
            min_t: 1,
            max_t: 50,
            data: vec![0u8, 2, 3, 4],
        }],
        open: Some(crate::tsdb::chunkenc::XorState {
            t: 50,
            v: 7,
            t_delta: 15_000,
            leading: 3,
            trailing: 12,
            free: 5,
        }),
    };
    let mut left = 3;
    write_checkpoint(&dir, 7, &mut |out| {
        put_checkpoint_series_record(out, &s);
        left -= 1;
        left > 0
    })
    .unwrap();
    assert_eq!(list_checkpoints(&dir).unwrap(), vec![7]);
    let mut got = Vec::new();
    assert_eq!(read_checkpoint(&dir, 7, &mut |x| got.push(x)).unwrap(), 3);
    assert_eq!(got, vec![s.clone(), s.clone(), s]);
    let path = dir.join(checkpoint_name(7));
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        read_checkpoint(&dir, 7, &mut |_| {}),
        Err(Error::Corrupt { .. })
    ));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoints_without_encoder_state_still_load() {
    // Type 3 records, as checkpoints held before type 6: the last chunk is
    // then reopened by decoding it.
    let dir = tmp("ckpt-v1");
    let s = CheckpointSeries {
        r: 17,
        labels: Labels::from_pairs([("__name__", "y")]),
        last_t: 9,
        last_v: 1.5f64.to_bits(),
        chunks: vec![CheckpointChunk {
            min_t: 9,
            max_t: 9,
            data: vec![0u8, 1, 18, 63, 248, 0, 0, 0, 0, 0, 0],
        }],
        open: None,
    };
    write_checkpoint(&dir, 3, &mut |out| {
        put_checkpoint_record_v1(out, &s);
        false
    })
    .unwrap();
    let mut got = Vec::new();
    assert_eq!(read_checkpoint(&dir, 3, &mut |x| got.push(x)).unwrap(), 1);
    assert_eq!(got, vec![s]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn series_records_are_compressed_and_version_1_segments_still_replay() {
    let dir = tmp("snappy");
    let wal = Wal::create(&dir, 1, 1 << 20).unwrap();
    let ray = |i: u64| {
        Labels::from_pairs([
            ("__name__".to_string(), "ray_tasks".to_string()),
            (
                "SessionName".to_string(),
                "session_2026-11-26_03-35-11_178048_5703".to_string(),
            ),
            ("WorkerId".to_string(), format!("{i:040x}")),
            ("instance".to_string(), "10.0.0.1:8080".to_string()),
        ])
    };
    let mut raw = Vec::new();
    for i in 1..=200u64 {
        wal.log_series(i << 4, &ray(i));
        codec::put_series(&mut raw, i << 4, &ray(i));
    }
    wal.log_samples(&mut [(16, 1000, 1.5)].into_iter()).unwrap();
    drop(wal);
    let seg = fs::read(dir.join(segment_name(1))).unwrap();
    assert_eq!(seg[4], VERSION);
    assert_eq!(seg[HEADER_LEN as usize], TYPE_SERIES_SNAPPY);
    assert!(seg.len() * 3 < raw.len(), "{} of {}", seg.len(), raw.len());
    let (st, series, samples) = collect(&dir);
    assert!(st.corruption.is_none());
    assert_eq!(series.len(), 200);
    assert_eq!(series[199], (200 << 4, ray(200)));
    assert_eq!(samples, vec![(16, 1000, 1.5f64.to_bits())]);

    // What an older raymon wrote: version 1, plain series records.
    let old = tmp("v1");
    let mut bytes = header(SEGMENT_MAGIC).to_vec();
    bytes[4] = 1;
    let start = bytes.len();
    bytes.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    codec::put_series(&mut bytes, 32, &ray(2));
    frame(&mut bytes, start, TYPE_SERIES);
    fs::write(old.join(segment_name(1)), &bytes).unwrap();
    let (st, series, _) = collect(&old);
    assert!(st.corruption.is_none());
    assert_eq!(series, vec![(32, ray(2))]);

    // Version 2: compressed series, plain samples records.
    let v2 = tmp("v2");
    let mut bytes = header(SEGMENT_MAGIC).to_vec();
    bytes[4] = 2;
    let start = bytes.len();
    bytes.extend_from_slice(&[0; RECORD_HEADER_LEN]);
    let plain = [(32, 5000, 0.25), (33, 5001, f64::from_bits(STALE_NAN_BITS))];
    codec::put_samples(&mut bytes, &mut plain.into_iter());
    frame(&mut bytes, start, TYPE_SAMPLES);
    fs::write(v2.join(segment_name(1)), &bytes).unwrap();
    let (st, _, samples) = collect(&v2);
    assert!(st.corruption.is_none());
    assert_eq!(
        samples,
        vec![(32, 5000, 0.25f64.to_bits()), (33, 5001, STALE_NAN_BITS)]
    );
}

#[test]
fn samples_records_are_packed() {
    let dir = tmp("packed");
    let wal = Wal::create(&dir, 1, 1 << 20).unwrap();
    let scrape: Vec<_> = (0..2000u64)
        .map(|i| (160 + i, 1_764_000_000_000, (i * 7 % 1000) as f64))
        .collect();
    wal.log_samples(&mut scrape.iter().copied()).unwrap();
    assert_eq!(wal.stats.samples_written.load(Ordering::Relaxed), 2000);
    drop(wal);
    let seg = fs::read(dir.join(segment_name(1))).unwrap();
    assert_eq!(seg[HEADER_LEN as usize], TYPE_SAMPLES_PACKED);
    // Plain records took 13 bytes a sample here.
    assert!(seg.len() < 4 * scrape.len(), "{} bytes", seg.len());
    let (st, _, samples) = collect(&dir);
    assert!(st.corruption.is_none());
    let want: Vec<_> = scrape
        .iter()
        .map(|&(r, t, v)| (r, t, v.to_bits()))
        .collect();
    assert_eq!(samples, want);
}

#[test]
fn record_checksum_is_crc32c() {
    // RFC 3720 B.4 and the common check value: the format names Castagnoli.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
    assert_eq!(crc32c::crc32c(&[0xffu8; 32]), 0x62a8_ab43);
    let split = crc32c::crc32c_append(crc32c::crc32c(b"12345"), b"6789");
    assert_eq!(split, 0xe306_9283);
    // A record's: the type byte, then the payload.
    assert_eq!(record_crc(b'1', b"23456789"), 0xe306_9283);
}

#[test]
fn a_started_segment_leaves_the_closed_one_to_the_next_sync() {
    let dir = tmp("start");
    let wal = write_some(&dir, 3);
    let closed = wal.current_segment();
    assert_eq!(wal.start_segment().unwrap(), closed);
    assert_eq!(wal.current_segment(), closed + 1);
    // Not synced yet: the checkpoint syncs it after letting commits go.
    let pending: Vec<u32> = wal.w.lock().unsynced.iter().map(|(n, _)| *n).collect();
    assert_eq!(pending, [closed]);
    let mut it = [(17, 9_000, 1.5)].into_iter();
    wal.log_samples(&mut it).unwrap();
    wal.sync().unwrap();
    assert!(wal.w.lock().unsynced.is_empty());
    assert!(!wal.w.lock().dirty);
    drop(wal);
    // Both segments replay, in order.
    let (st, _, samples) = collect(&dir);
    assert!(st.corruption.is_none());
    assert_eq!(samples.len(), 7);
    assert_eq!(samples[6], (17, 9_000, 1.5f64.to_bits()));
    fs::remove_dir_all(&dir).unwrap();
}
