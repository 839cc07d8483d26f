//! The raw samples Prometheus 2.42 stored from a real Ray cluster (the
//! golden capture), for tests that replay real series. Shared like
//! `wire.rs`: unit tests reach it as `crate::testing::golden`, the
//! integration tests include it by path; it returns plain pairs so that it
//! names nothing of the crate.

use std::io::Read;

/// One series of the capture: its label pairs and its (ms, value) samples.
pub(crate) type GoldenSeries = (Vec<(String, String)>, Vec<(i64, f64)>);

/// Every series of the capture.
pub(crate) fn real_ray_samples() -> Vec<GoldenSeries> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fixtures/ray/golden-prom-2.42/raw-samples.json.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                    let v = match p[1].as_str().unwrap() {
                        "+Inf" => f64::INFINITY,
                        "-Inf" => f64::NEG_INFINITY,
                        "NaN" => f64::NAN,
                        x => x.parse().unwrap(),
                    };
                    (t, v)
                })
                .collect();
            (labels, values)
        })
        .collect()
}
