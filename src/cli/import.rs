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
    let (input, total): (Box<dyn Read>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
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
