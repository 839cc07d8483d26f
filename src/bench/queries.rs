//! Dashboard queries against a collector's HTTP API, as Grafana sends them
//! (`POST /api/v1/query_range`, form-encoded), timed one by one, with the
//! collector's resident memory sampled while they run. Knows the API and
//! `/proc`, not what the collector is.

use std::time::{Duration, Instant};

use super::measure;
use super::report::{Queries, QueryTime};

/// One answer: HTTP status (0 when no answer came: refused, timed out), how
/// long it took and the body (or the transport error).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub seconds: f64,
    pub body: String,
}

/// A range query over `[start, end]` (Unix seconds) at `step` seconds.
pub async fn query_range(
    http: &reqwest::Client,
    base: &str,
    expr: &str,
    (start, end, step): (f64, f64, f64),
    timeout: Duration,
) -> Answer {
    let form = format!(
        "query={}&start={start:.3}&end={end:.3}&step={step}",
        form_encode(expr)
    );
    let t = Instant::now();
    let r = http
        .post(format!("{base}/api/v1/query_range"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .timeout(timeout)
        .send()
        .await;
    let (status, body) = match r {
        Ok(r) => {
            let s = r.status().as_u16();
            match r.text().await {
                Ok(b) => (s, b),
                Err(e) => (0, e.to_string()),
            }
        }
        Err(e) => (0, e.to_string()),
    };
    Answer {
        status,
        seconds: t.elapsed().as_secs_f64(),
        body,
    }
}

/// Samples `pid`'s resident memory every 100 ms until dropped; `peak()`
/// is the highest seen.
pub struct RssWatch {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    pub fn start(pid: u32) -> RssWatch {
        use std::sync::atomic::Ordering;
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(s) = measure::sample(pid) {
                    p.fetch_max(s.rss_bytes, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssWatch { peak, task }
    }

    pub fn peak(&self) -> u64 {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for RssWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What [`run`] needs besides the queries.
pub struct Plan<'a> {
    pub name: &'a str,
    pub base: &'a str,
    pub pid: u32,
    /// The range every query covers, ending now.
    pub window: Duration,
    pub step: Duration,
    pub timeout: Duration,
    /// Stop after this long in all.
    pub budget: Duration,
    /// The highest RSS over the scrape-only window's last
    /// [`SCRAPE_HIGH_WINDOW`].
    pub scrape_high_rss_bytes: Option<u64>,
}

/// How much of the scrape-only window before the queries
/// [`Plan::scrape_high_rss_bytes`] covers.
pub const SCRAPE_HIGH_WINDOW: Duration = Duration::from_secs(60);

/// Runs `queries` one after another and records each one's time, and the
/// collector's memory just before and while they run.
pub async fn run(http: &reqwest::Client, plan: &Plan<'_>, queries: &[String]) -> Queries {
    let mut q = Queries {
        count: queries.len(),
        rss_before_bytes: measure::sample(plan.pid).map(|s| s.rss_bytes),
        scrape_high_rss_bytes: plan.scrape_high_rss_bytes.filter(|&b| b > 0),
        ..Default::default()
    };
    let watch = RssWatch::start(plan.pid);
    let end = super::run::unix_us() as f64 / 1e6;
    let range = (
        end - plan.window.as_secs_f64(),
        end,
        plan.step.as_secs_f64().max(1.0),
    );
    let mut times = Vec::new();
    let mut engine_missing = 0;
    let started = Instant::now();
    for (i, expr) in queries.iter().enumerate() {
        if started.elapsed() > plan.budget {
            q.count = i;
            q.status_note = Some(format!(
                "stopped after {i} queries: --query-budget {:?} used",
                plan.budget
            ));
            break;
        }
        super::run::progress(
            plan.name,
            &format!("dashboard queries {}/{}", i + 1, q.count),
        );
        let a = query_range(http, plan.base, expr, range, plan.timeout).await;
        q.per_query.push(QueryTime {
            query: expr.clone(),
            status: a.status,
            seconds: (a.status == 200).then_some(a.seconds),
        });
        if a.status == 200 {
            q.ok += 1;
            times.push(a.seconds);
        } else {
            q.failed += 1;
            if a.status == 422 && a.body.contains("not available") {
                engine_missing += 1;
                // Without an engine every query fails the same way.
                if engine_missing >= 3 && q.ok == 0 {
                    q.status = "n/a: engine not available".into();
                    return q;
                }
            }
        }
    }
    q.peak_rss_bytes = Some(watch.peak()).filter(|&b| b > 0);
    q.p50_seconds = measure::quantile(&mut times, 0.5);
    q.p99_seconds = measure::quantile(&mut times, 0.99);
    q.status = if q.ok > 0 {
        "ok".into()
    } else if q.count == 0 {
        "n/a: no queries".into()
    } else {
        "n/a: every query failed".into()
    };
    q
}

/// Percent-encodes a form value (`application/x-www-form-urlencoded`).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode(r#"a{b="c d"}"#), "a%7Bb%3D%22c+d%22%7D");
    }
}
