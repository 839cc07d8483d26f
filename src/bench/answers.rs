//! Whether two collectors gave the same answer to a query: the bodies of
//! two `/api/v1/query_range` (or `/api/v1/query`) responses compared as
//! PromQL results, series matched by their labels, values equal or within
//! a relative 1e-9 (sums over many series may add in another order). Knows
//! Prometheus's JSON envelope, nothing of HTTP.

use std::collections::BTreeMap;

use serde_json::Value;

/// Relative difference two values may have and still agree.
const TOLERANCE: f64 = 1e-9;

/// The verdict on two answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Both succeeded with the same series and values.
    Same,
    /// Both failed (errors are not compared: their texts differ by design).
    BothFailed,
    /// They differ; the first difference found.
    Differ(String),
}

/// A result's series: labels (sorted) to their points.
type Series = BTreeMap<String, Vec<(f64, String)>>;

fn series_of(body: &str) -> Result<(String, Series), String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!(
            "{}: {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or("")
        ));
    }
    let kind = v["data"]["resultType"].as_str().unwrap_or("").to_string();
    let mut out = Series::new();
    let result = &v["data"]["result"];
    let point =
        |p: &Value| -> Option<(f64, String)> { Some((p[0].as_f64()?, p[1].as_str()?.to_string())) };
    match kind.as_str() {
        "scalar" | "string" => {
            out.insert(String::new(), point(result).into_iter().collect());
        }
        _ => {
            for s in result.as_array().into_iter().flatten() {
                let labels: BTreeMap<&str, &str> = s["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                    .collect();
                let key = format!("{labels:?}");
                let points: Vec<(f64, String)> = match s.get("values") {
                    Some(vs) => vs
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(point)
                        .collect(),
                    None => point(&s["value"]).into_iter().collect(),
                };
                if out.insert(key.clone(), points).is_some() {
                    return Err(format!("series {key} twice in the result"));
                }
            }
        }
    }
    Ok((kind, out))
}

fn values_agree(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => {
            (x.is_nan() && y.is_nan()) || (x - y).abs() <= TOLERANCE * x.abs().max(y.abs())
        }
        _ => false,
    }
}

/// How many series the answer holds, when it is a success.
pub fn series_count(body: &str) -> Option<usize> {
    series_of(body).ok().map(|(_, s)| s.len())
}

/// Compares answer `a` (named `name_a`) with answer `b` (`name_b`).
pub fn compare(name_a: &str, a: &str, name_b: &str, b: &str) -> Verdict {
    let (ka, sa) = match series_of(a) {
        Ok(x) => x,
        Err(ea) => {
            return match series_of(b) {
                Err(_) => Verdict::BothFailed,
                Ok(_) => Verdict::Differ(format!("{name_a} failed ({ea}), {name_b} answered")),
            };
        }
    };
    let (kb, sb) = match series_of(b) {
        Ok(x) => x,
        Err(eb) => return Verdict::Differ(format!("{name_b} failed ({eb}), {name_a} answered")),
    };
    if ka != kb {
        return Verdict::Differ(format!("result type {ka} on {name_a}, {kb} on {name_b}"));
    }
    if sa.len() != sb.len() {
        return Verdict::Differ(format!(
            "{} series on {name_a}, {} on {name_b}",
            sa.len(),
            sb.len()
        ));
    }
    for (key, pa) in &sa {
        let Some(pb) = sb.get(key) else {
            return Verdict::Differ(format!("series {key} only on {name_a}"));
        };
        if pa.len() != pb.len() {
            return Verdict::Differ(format!(
                "series {key}: {} points on {name_a}, {} on {name_b}",
                pa.len(),
                pb.len()
            ));
        }
        for ((ta, va), (tb, vb)) in pa.iter().zip(pb) {
            if ta != tb || !values_agree(va, vb) {
                return Verdict::Differ(format!(
                    "series {key}: {va} at {ta} on {name_a}, {vb} at {tb} on {name_b}"
                ));
            }
        }
    }
    Verdict::Same
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(points: &str) -> String {
        format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"a":"1"}},"values":[{points}]}}]}}}}"#
        )
    }

    #[test]
    fn answers_agree_within_a_rounding_and_differ_beyond() {
        let a = matrix(r#"[1,"0.30000000000000004"],[2,"NaN"]"#);
        let b = matrix(r#"[1,"0.3"],[2,"NaN"]"#);
        assert_eq!(compare("x", &a, "y", &b), Verdict::Same);
        let c = matrix(r#"[1,"0.31"],[2,"NaN"]"#);
        assert!(matches!(compare("x", &a, "y", &c), Verdict::Differ(d) if d.contains("0.31")));
        let d = matrix(r#"[1,"0.3"]"#);
        assert!(matches!(compare("x", &a, "y", &d), Verdict::Differ(_)));
        let err = r#"{"status":"error","errorType":"bad_data","error":"boom"}"#;
        assert_eq!(compare("x", err, "y", err), Verdict::BothFailed);
        assert!(matches!(compare("x", err, "y", &a), Verdict::Differ(d) if d.contains("boom")));
        assert_eq!(series_count(&a), Some(1));
    }
}
