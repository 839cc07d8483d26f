//! Builds remote write request bodies without the prost message types: a
//! series' labels are encoded once, when the queue first sees the series,
//! and each sample's `TimeSeries` is those bytes plus 11 to 20 bytes of
//! sample. Prometheus 2.42 sends one `TimeSeries` per sample the same way
//! (`populateTimeSeries`); receivers merge them.
//!
//! The layout is `prompb`'s: `WriteRequest.timeseries` (field 1), holding
//! `TimeSeries.labels` (field 1, `Label{name = 1, value = 2}`) and
//! `TimeSeries.samples` (field 2, `Sample{value = 1 (double), timestamp = 2}`).

use crate::model::Labels;

const TAG_LEN_1: u8 = 0x0a; // field 1, length-delimited
const TAG_LEN_2: u8 = 0x12; // field 2, length-delimited
const TAG_DOUBLE_1: u8 = 0x09; // field 1, 64-bit
const TAG_VARINT_2: u8 = 0x10; // field 2, varint

fn put_uvarint(buf: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        buf.push((x as u8) | 0x80);
        x >>= 7;
    }
    buf.push(x as u8);
}

fn uvarint_len(mut x: u64) -> usize {
    let mut n = 1;
    while x >= 0x80 {
        x >>= 7;
        n += 1;
    }
    n
}

/// The repeated `Label` fields of a `TimeSeries` for `labels`.
pub fn encode_labels(labels: &Labels) -> Vec<u8> {
    let mut out = Vec::with_capacity(labels.len() * 32);
    for l in labels.iter() {
        let (n, v) = (l.name.as_bytes(), l.value.as_bytes());
        let inner =
            1 + uvarint_len(n.len() as u64) + n.len() + 1 + uvarint_len(v.len() as u64) + v.len();
        out.push(TAG_LEN_1);
        put_uvarint(&mut out, inner as u64);
        out.push(TAG_LEN_1);
        put_uvarint(&mut out, n.len() as u64);
        out.extend_from_slice(n);
        out.push(TAG_LEN_2);
        put_uvarint(&mut out, v.len() as u64);
        out.extend_from_slice(v);
    }
    out
}

/// Appends one `TimeSeries` with one sample to a `WriteRequest` body.
pub fn put_sample(buf: &mut Vec<u8>, labels: &[u8], t: i64, v: f64) {
    let sample_len = 1 + 8 + 1 + uvarint_len(t as u64);
    let series_len = labels.len() + 1 + uvarint_len(sample_len as u64) + sample_len;
    buf.push(TAG_LEN_1);
    put_uvarint(buf, series_len as u64);
    buf.extend_from_slice(labels);
    buf.push(TAG_LEN_2);
    put_uvarint(buf, sample_len as u64);
    buf.push(TAG_DOUBLE_1);
    buf.extend_from_slice(&v.to_bits().to_le_bytes());
    buf.push(TAG_VARINT_2);
    // An int64 is written as its two's complement, as protobuf does.
    put_uvarint(buf, t as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::{Label, Sample, TimeSeries, WriteRequest};
    use prost::Message as _;

    #[test]
    fn decodes_as_the_prost_messages() {
        let a = Labels::from_pairs([("__name__", "up"), ("job", "ray"), ("x", &"v".repeat(200))]);
        let b = Labels::from_pairs([("__name__", "m")]);
        let (la, lb) = (encode_labels(&a), encode_labels(&b));
        let mut body = Vec::new();
        put_sample(&mut body, &la, 1_700_000_000_123, 1.5);
        put_sample(
            &mut body,
            &lb,
            -5,
            f64::from_bits(crate::model::STALE_NAN_BITS),
        );
        put_sample(&mut body, &lb, 0, 0.0);
        let req = WriteRequest::decode(body.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 3);
        assert_eq!(
            req.timeseries[0],
            TimeSeries::from_model(
                &a,
                &[crate::model::Sample {
                    t: 1_700_000_000_123,
                    v: 1.5
                }]
            )
        );
        assert_eq!(req.timeseries[1].labels, vec![Label::new("__name__", "m")]);
        assert_eq!(req.timeseries[1].samples[0].timestamp, -5);
        assert_eq!(
            req.timeseries[1].samples[0].value.to_bits(),
            crate::model::STALE_NAN_BITS
        );
        assert_eq!(
            req.timeseries[2].samples,
            vec![Sample {
                value: 0.0,
                timestamp: 0
            }]
        );
    }
}
