//! The export format as the tests read it, shared by the router tests here
//! and the serve-process tests of `tests/it/ops.rs` (which include this
//! file): values told apart bit for bit, stale markers apart from NaN, and a
//! generated OpenMetrics file with what it holds. It names what it needs
//! through its parent module (`Labels`, `Rng`, `is_stale_nan`).

use std::collections::BTreeMap;

use super::{Labels, Rng, is_stale_nan};

/// A value as exported: see `web/import_export.rs`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Exported {
    Bits(u64),
    NaN,
    Stale,
}

pub(crate) fn exported_of(v: f64) -> Exported {
    if is_stale_nan(v) {
        Exported::Stale
    } else if v.is_nan() {
        Exported::NaN
    } else {
        Exported::Bits(v.to_bits())
    }
}

pub(crate) type Dump = BTreeMap<Labels, Vec<(i64, Exported)>>;

/// Parses export output. Values are read from the raw text with Rust's
/// correctly rounded parser, not through a JSON library's float reader.
pub(crate) fn parse_export(body: &str) -> Dump {
    let mut out: Dump = BTreeMap::new();
    for line in body.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line ({e}): {line}"));
        let labels = Labels::from_pairs(
            v["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
        );
        let ts: Vec<i64> = v["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap())
            .collect();
        let raw = line
            .split_once("\"values\":[")
            .unwrap()
            .1
            .split_once("],\"timestamps\"")
            .unwrap()
            .0;
        let vals: Vec<Exported> = raw
            .split(',')
            .map(|tok| match tok {
                "null" => Exported::Stale,
                "\"NaN\"" => Exported::NaN,
                "\"+Inf\"" => Exported::Bits(f64::INFINITY.to_bits()),
                "\"-Inf\"" => Exported::Bits(f64::NEG_INFINITY.to_bits()),
                t => Exported::Bits(t.parse::<f64>().unwrap().to_bits()),
            })
            .collect();
        assert_eq!(ts.len(), vals.len(), "{line}");
        out.entry(labels)
            .or_default()
            .extend(ts.into_iter().zip(vals));
    }
    out
}

pub(crate) fn om_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v:?}")
    }
}

/// An OpenMetrics file with awkward values, escaped label values, and both
/// series-by-series and scrape-by-scrape order, plus what it holds.
pub(crate) fn generate(series_per_family: usize, points: usize, seed: u64) -> (String, Dump) {
    let mut rng = Rng::seeded(
        &format!("generated OpenMetrics, {series_per_family} series per family × {points} points"),
        seed,
    );
    let mut text = String::new();
    let mut want: Dump = BTreeMap::new();
    let specials = [
        0.0,
        -0.0,
        1.0,
        0.1,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        5e-324,
        f64::MAX,
        1e21,
        -123456.789,
    ];
    let value = |rng: &mut Rng| -> f64 {
        let r = rng.next();
        match r % 4 {
            0 => specials[(r >> 8) as usize % specials.len()],
            1 => (r >> 20) as f64,
            _ => {
                let v = f64::from_bits(rng.next());
                if v.is_nan() { 0.5 } else { v }
            }
        }
    };
    let base_ms: i64 = 1_700_000_000_000;
    // Family 1: series after series.
    text.push_str("# HELP ray_tasks Tasks by state.\n# TYPE ray_tasks gauge\n");
    for s in 0..series_per_family {
        let state = format!("st\\\"a\\\\te{s}");
        let labels = Labels::from_pairs([
            ("__name__", "ray_tasks".to_string()),
            ("State", format!("st\"a\\te{s}")),
            ("node", "10.0.0.1".to_string()),
        ]);
        for p in 0..points {
            let t = base_ms + (p as i64) * 15_000 + (s as i64 % 1000);
            let v = value(&mut rng);
            text.push_str(&format!(
                "ray_tasks{{State=\"{state}\",node=\"10.0.0.1\"}} {} {}.{:03}\n",
                om_value(v),
                t / 1000,
                t % 1000
            ));
            want.entry(labels.clone())
                .or_default()
                .push((t, exported_of(v)));
        }
    }
    // Family 2: scrape after scrape, a counter with `_total`.
    text.push_str("# TYPE ray_bytes counter\n");
    for p in 0..points {
        for s in 0..series_per_family {
            let t = base_ms + (p as i64) * 10_000 + 7;
            let v = value(&mut rng);
            text.push_str(&format!(
                "ray_bytes_total{{instance=\"n{s}\"}} {} {}.{:03}\n",
                om_value(v),
                t / 1000,
                t % 1000
            ));
            let labels = Labels::from_pairs([
                ("__name__", "ray_bytes_total".to_string()),
                ("instance", format!("n{s}")),
            ]);
            want.entry(labels).or_default().push((t, exported_of(v)));
        }
    }
    text.push_str("# EOF\n");
    (text, want)
}
