//! The remote write 1.0 messages of Prometheus's `prompb/remote.proto` and
//! `prompb/types.proto`, derived by hand so no `protoc` is needed.
//!
//! Only the fields 1.0 receivers read are declared; prost skips the others
//! (native histograms, field 4 of `TimeSeries`), as an older receiver would.

/// `prometheus.WriteRequest`. Field 2 is reserved upstream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`: labels (with `__name__`), samples ascending by time.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
}

/// Only the tests build requests from the model's types.
#[cfg(test)]
impl TimeSeries {
    /// One series from the model's types, labels in their (sorted) order.
    pub fn from_model(
        labels: &crate::model::Labels,
        samples: &[crate::model::Sample],
    ) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|l| Label::new(l.name.as_str(), l.value.as_str()))
                .collect(),
            samples: samples
                .iter()
                .map(|s| Sample {
                    value: s.v,
                    timestamp: s.t,
                })
                .collect(),
            exemplars: Vec::new(),
        }
    }
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// `prometheus.Sample`: a value at a Unix time in milliseconds.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`; `type` is the upstream enum as its number
/// (0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gaugehistogram,
/// 5 summary, 6 info, 7 stateset).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn from_model_keeps_order_and_bits() {
        let labels = crate::model::Labels::from_pairs([("b", "2"), ("__name__", "m")]);
        let ts = TimeSeries::from_model(
            &labels,
            &[crate::model::Sample {
                t: 5,
                v: crate::model::STALE_NAN,
            }],
        );
        assert_eq!(
            ts.labels,
            [Label::new("__name__", "m"), Label::new("b", "2")]
        );
        assert_eq!(
            ts.samples[0].value.to_bits(),
            crate::model::STALE_NAN.to_bits()
        );
    }

    #[test]
    fn wire_bytes_match_the_proto_definition() {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("a", "b")],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 2,
                }],
                exemplars: vec![],
            }],
            metadata: vec![],
        };
        // Hand-assembled from remote.proto/types.proto field numbers.
        let want: Vec<u8> = vec![
            0x0a, 0x15, // timeseries, 21 bytes
            0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // label a=b
            0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x02, // sample 1.0 @ 2
        ];
        assert_eq!(req.encode_to_vec(), want);
        assert_eq!(WriteRequest::decode(want.as_slice()).unwrap(), req);
    }
}
