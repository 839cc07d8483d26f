//! `raymon import --url URL FILE`: sends an OpenMetrics file to a running
//! raymon's `POST /api/v1/import` (on when it runs with
//! `--web.enable-import`) in pieces cut at line ends, each small enough for
//! the server's body limit, with progress on stderr.
//! `raymon import --storage.tsdb.path DIR FILE` writes into a data directory
//! instead, through the same backfill code the server uses.
//!
//! Each piece but the last gets its own `# EOF`; the server is told the
//! number of the piece's first line so that its errors name the file's
//! lines. Knows HTTP and files, not the format beyond lines and `# EOF`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};

use super::flags::ImportArgs;
use crate::backfill;
use crate::tsdb::{Db, DbOptions};

/// Bytes per request: well under the server's default 10 MiB body limit.
const PIECE_BYTES: usize = 4 << 20;

pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    if let (Some(from), Some(to)) = (&args.from_prometheus, &args.storage_path) {
        return from_prometheus(from, to);
    }
    let Some(file) = &args.file else {
        bail!("give a file to import, or --from-prometheus DIR");
    };
    let (input, total): (Box<dyn Read>, Option<u64>) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    if let Some(dir) = &args.storage_path {
        return offline(dir, BufReader::with_capacity(1 << 16, input), total);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(send(args, BufReader::with_capacity(1 << 16, input), total))
}

/// Samples between moves of closed chunks out of memory during a
/// `--from-prometheus` import, which may hold far more than memory.
const FLUSH_EVERY_SAMPLES: u64 = 20_000_000;

/// `--from-prometheus`: a Prometheus data directory into the store at `to`.
fn from_prometheus(from: &Path, to: &Path) -> anyhow::Result<()> {
    use crate::promdata::{self, Event};
    // Refuse a directory in use before opening (and maybe creating) ours.
    drop(promdata::lock(from)?);
    let opts = DbOptions {
        retention_ms: 0,
        ..DbOptions::default()
    };
    let (db, _) =
        Db::open(to, opts).with_context(|| format!("cannot open storage at {}", to.display()))?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut flushed_at = 0u64;
    let mut flush_error = None;
    let mut block_started = Instant::now();
    let res = promdata::import(
        from,
        db.head(),
        &promdata::Options::default(),
        &mut |ev| match ev {
            Event::BlockStart {
                ulid,
                index,
                total,
                min_time,
                max_time,
                samples,
            } => {
                block_started = Instant::now();
                eprintln!(
                    "block {index}/{total} {ulid} ({} to {}, {samples} samples)",
                    fmt_ms(min_time),
                    fmt_ms(max_time)
                );
            }
            Event::BlockDone {
                samples, series, ..
            } => eprintln!(
                "  imported {samples} samples of {series} series in {:.1} s",
                block_started.elapsed().as_secs_f64()
            ),
            Event::Skipped { what, reason } => eprintln!("skipped {what}: {reason}"),
            Event::HeadStart {
                segments,
                chunk_files,
            } => {
                block_started = Instant::now();
                eprintln!(
                    "head: {segments} WAL segment files (checkpoint included), {chunk_files} head chunk files"
                );
            }
            Event::HeadDone { samples, series } => eprintln!(
                "  imported {samples} samples of {series} series in {:.1} s",
                block_started.elapsed().as_secs_f64()
            ),
            Event::Committed { samples } => {
                if samples >= flushed_at + FLUSH_EVERY_SAMPLES {
                    flushed_at = samples;
                    if let Err(e) = db.flush_closed_chunks() {
                        flush_error.get_or_insert(e);
                    }
                }
                if last_report.elapsed().as_secs_f64() >= 1.0 {
                    last_report = Instant::now();
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!(
                        "  {samples} samples so far, {:.0} samples/s",
                        samples as f64 / secs.max(1e-9)
                    );
                }
            }
        },
    );
    // What was committed stays, whatever happened after: close writes it out.
    db.close().context("cannot close the storage")?;
    db.merge_windows()
        .context("cannot merge the imported chunks")?;
    if let Some(e) = flush_error {
        eprintln!("warning: moving chunks out of memory failed during the import: {e}");
    }
    let sum = res.with_context(|| format!("import from {} stopped", from.display()))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "done: {} samples ({} from {} blocks, {} from the head's {} series) in {secs:.1} s, {:.0} samples/s",
        sum.samples,
        sum.block_samples,
        sum.blocks,
        sum.head_samples,
        sum.head_series,
        sum.samples as f64 / secs.max(1e-9)
    );
    if let (Some(a), Some(b)) = (sum.min_time, sum.max_time) {
        eprintln!("  time range {} to {}", fmt_ms(a), fmt_ms(b));
    }
    for (n, what) in [
        (
            sum.blocks_replaced as u64,
            "blocks replaced by a later compaction, not read",
        ),
        (
            sum.refused,
            "samples refused: the store already had that time or a later one for the series",
        ),
        (
            sum.deleted,
            "samples under tombstones (deleted in Prometheus), not imported",
        ),
        (
            sum.histograms,
            "native histogram samples or records, not imported (raymon stores floats)",
        ),
        (
            sum.unknown_series,
            "WAL samples of series the WAL never named, not imported",
        ),
        (
            sum.reset,
            "WAL samples of a series from before the WAL named it again, dropped as Prometheus's start-up drops them",
        ),
    ] {
        if n > 0 {
            eprintln!("  {n} {what}");
        }
    }
    if !sum.problems.is_empty() {
        eprintln!(
            "{} problems (reported above, the rest was imported):",
            sum.problems.len()
        );
        for p in &sum.problems {
            eprintln!("  {p}");
        }
    }
    Ok(())
}

/// A millisecond timestamp as RFC 3339 UTC.
fn fmt_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::model::civil::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Imports into the store at `dir`, closed (checkpointed) at the end.
fn offline(dir: &Path, input: impl BufRead, total: Option<u64>) -> anyhow::Result<()> {
    let opts = DbOptions {
        // Old samples are the point of a backfill: serve applies retention.
        retention_ms: 0,
        ..DbOptions::default()
    };
    let (db, _) =
        Db::open(dir, opts).with_context(|| format!("cannot open storage at {}", dir.display()))?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut committed = 0;
    let res =
        backfill::import_openmetrics(db.head(), input, &backfill::Options::default(), &mut |st| {
            committed = st.samples;
            if last_report.elapsed().as_secs_f64() >= 1.0 {
                last_report = Instant::now();
                let pct = total
                    .filter(|t| *t > 0)
                    .map(|t| format!(" ({:.0}%)", 100.0 * st.bytes as f64 / t as f64))
                    .unwrap_or_default();
                eprintln!(
                    "imported {} samples, {:.1} MiB{pct}, {:.1} s",
                    st.samples,
                    st.bytes as f64 / f64::from(1u32 << 20),
                    started.elapsed().as_secs_f64()
                );
            }
        });
    // What was committed before an error stays: close writes it out.
    db.close().context("cannot close the storage")?;
    // A backfill spans many windows; serve merges only the ones it sees end.
    let merged = db
        .merge_windows()
        .context("cannot merge the imported chunks")?;
    if merged.chunks_read > merged.chunks_left {
        eprintln!(
            "merged {} persisted chunks into {}",
            merged.chunks_read, merged.chunks_left
        );
    }
    let st = res
        .with_context(|| format!("import stopped ({committed} samples before it were imported)"))?;
    eprintln!(
        "imported {} samples from {} lines into {} in {:.1} s",
        st.samples,
        st.lines,
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(serde::Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Summary>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    samples: u64,
}

async fn send(
    args: &ImportArgs,
    mut input: impl BufRead,
    total: Option<u64>,
) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/import", args.url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut piece: Vec<u8> = Vec::with_capacity(PIECE_BYTES + 4096);
    let mut first_line = 1usize;
    let mut next_line = 1usize;
    let mut sent_bytes = 0u64;
    let mut samples = 0u64;
    let mut done = false;
    while !done {
        piece.clear();
        while piece.len() < PIECE_BYTES {
            let start = piece.len();
            let n = input
                .read_until(b'\n', &mut piece)
                .context("cannot read input")?;
            if n == 0 {
                done = true;
                break;
            }
            next_line += 1;
            let line = &piece[start..];
            if line == b"# EOF\n" || line == b"# EOF" {
                let mut probe = [0u8; 1];
                if input.read(&mut probe).context("cannot read input")? > 0 {
                    bail!(
                        "line {next_line}: unexpected data after \"# EOF\" (nothing after line {} was sent)",
                        first_line.saturating_sub(1)
                    );
                }
                done = true;
                break;
            }
        }
        let piece_len = piece.len() as u64;
        if !done {
            // A middle piece: the server wants a whole OpenMetrics body.
            if piece.last() != Some(&b'\n') {
                piece.push(b'\n');
            }
            piece.extend_from_slice(b"# EOF\n");
        }
        let resp = client
            .post(format!("{url}?first_line={first_line}"))
            .header(
                reqwest::header::CONTENT_TYPE,
                // The server refuses types a web page could send unasked.
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .body(std::mem::replace(
                &mut piece,
                Vec::with_capacity(PIECE_BYTES + 4096),
            ))
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let text = resp.text().await.context("cannot read the answer")?;
        if status == reqwest::StatusCode::NOT_FOUND {
            bail!(
                "{url} does not take imports ({}): start that raymon with --web.enable-import",
                text.trim()
            );
        }
        let answer: Answer = serde_json::from_str(&text)
            .with_context(|| format!("unexpected answer ({status}): {}", text.trim()))?;
        if answer.status != "success" {
            bail!(
                "import stopped: {} ({samples} samples imported before this request)",
                answer.error.unwrap_or(text)
            );
        }
        samples += answer.data.map_or(0, |d| d.samples);
        sent_bytes += piece_len;
        first_line = next_line;
        let pct = total
            .filter(|t| *t > 0)
            .map(|t| format!(" ({:.0}%)", 100.0 * sent_bytes as f64 / t as f64))
            .unwrap_or_default();
        eprintln!(
            "imported {samples} samples, {:.1} MiB{pct}, {:.1} s",
            sent_bytes as f64 / f64::from(1u32 << 20),
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "done: {samples} samples from {} lines in {:.1} s",
        next_line - 1,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
