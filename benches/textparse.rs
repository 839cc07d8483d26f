//! Benchmarks of the exposition parser on the ~400 KB Ray agent scrape, in
//! both formats: every entry is visited and every label pair decoded; and
//! as a scrape of known series parses it, with every series text vouched
//! for (label checks skipped), visiting entries only.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use raymon::textparse::{Entry, Format, Parser};

const SCRAPES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/fixtures/ray/scrapes"
);

/// Parses `body` as a scrape whose cache knows every series: the labels'
/// end is found and the value parsed, the labels are not checked again.
fn parse_known(body: &[u8], format: Format) -> usize {
    let mut samples = 0;
    let mut parser = Parser::new(body, format);
    while let Some(entry) = parser.next_trusting(&mut |raw| !black_box(raw).is_empty()) {
        match entry {
            Ok(Entry::Sample(s)) => {
                samples += 1;
                black_box((s.series, s.value, s.timestamp_ms));
            }
            Ok(other) => {
                black_box(other);
            }
            Err(e) => panic!("{e}"),
        }
    }
    samples
}

/// Parses `body` fully; returns the number of samples so nothing is skipped.
fn parse(body: &[u8], format: Format) -> usize {
    let mut samples = 0;
    for entry in Parser::new(body, format) {
        match entry {
            Ok(Entry::Sample(s)) => {
                samples += 1;
                black_box((s.series, s.value, s.timestamp_ms));
                for (name, value) in s.labels() {
                    black_box((name, value));
                }
            }
            Ok(other) => {
                black_box(other);
            }
            Err(e) => panic!("{e}"),
        }
    }
    samples
}

pub fn textparse(c: &mut Criterion) {
    let mut group = c.benchmark_group("textparse");
    for (file, format, id) in [
        ("target-8080-1.prom", Format::PromText, "prom_text"),
        (
            "target-8080-1.openmetrics.txt",
            Format::OpenMetrics,
            "openmetrics",
        ),
    ] {
        let body = std::fs::read(format!("{SCRAPES}/{file}")).expect("fixture is readable");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new(id, format!("{}KB", body.len() / 1000)),
            &body,
            |b, body| b.iter(|| parse(black_box(body), format)),
        );
        group.bench_with_input(
            BenchmarkId::new(format!("{id}_known"), format!("{}KB", body.len() / 1000)),
            &body,
            |b, body| b.iter(|| parse_known(black_box(body), format)),
        );
    }
    group.finish();
}
