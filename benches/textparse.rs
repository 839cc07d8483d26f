//! Benchmarks of the exposition parser on the ~400 KB Ray agent scrape, in
//! both formats: every entry is visited and every label pair decoded; and
//! as a scrape of known series parses it, with every series text vouched
//! for (label checks skipped), visiting entries only: by a voucher that
//! takes any text, and by one that hashes each text as the scrape cache
//! does, with and without telling the parser the length it expects.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use raymon::textparse::{Entry, Format, Parser, Vouch};

const SCRAPES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/fixtures/ray/scrapes"
);

/// Parses `body` as a scrape whose cache knows every series: the labels'
/// end is found and the value parsed, the labels are not checked again;
/// `vouch` answers for each series text.
fn parse_known(body: &[u8], format: Format, vouch: &mut dyn Vouch) -> usize {
    let mut samples = 0;
    let mut parser = Parser::new(body, format);
    while let Some(entry) = parser.next_trusting(vouch) {
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

/// What a scrape cache does for the parser on a scrape of known series:
/// each series text is hashed (XXH3-128, as the cache keys it) and compared
/// with the key of the series expected next. With `lengths` the voucher
/// also says how long that series' text is, so the parser does not search
/// for the labels' closing brace.
struct Ordered {
    keys: Vec<(u128, usize)>,
    next: usize,
    lengths: bool,
}

impl Ordered {
    /// The series texts a parse of `body` asks about, in order.
    fn new(body: &[u8], format: Format, lengths: bool) -> Ordered {
        let mut keys = Vec::new();
        for entry in Parser::new(body, format) {
            if let Ok(Entry::Sample(s)) = entry
                && s.series.len() > s.name().len()
                && s.series[s.name().len()] == b'{'
            {
                keys.push((xxhash_rust::xxh3::xxh3_128(s.series), s.series.len()));
            }
        }
        Ordered {
            keys,
            next: 0,
            lengths,
        }
    }
}

impl Vouch for Ordered {
    fn vouch(&mut self, raw: &[u8]) -> bool {
        let k = xxhash_rust::xxh3::xxh3_128(raw);
        let hit = self.keys.get(self.next).is_some_and(|e| e.0 == k);
        self.next += usize::from(hit);
        hit
    }

    fn expected_len(&mut self) -> Option<usize> {
        self.keys
            .get(self.next)
            .filter(|_| self.lengths)
            .map(|e| e.1)
    }
}

/// [`parse_known`] with an [`Ordered`] voucher: asserts every series was
/// vouched for.
fn parse_ordered(body: &[u8], format: Format, v: &mut Ordered) -> usize {
    v.next = 0;
    let samples = parse_known(body, format, v);
    assert_eq!(v.next, v.keys.len(), "every series vouched for");
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
            |b, body| {
                b.iter(|| {
                    parse_known(black_box(body), format, &mut |raw: &[u8]| {
                        !black_box(raw).is_empty()
                    })
                })
            },
        );
        for (lengths, mode) in [(false, "hashed"), (true, "hashed_len")] {
            let mut v = Ordered::new(&body, format, lengths);
            group.bench_with_input(
                BenchmarkId::new(format!("{id}_{mode}"), format!("{}KB", body.len() / 1000)),
                &body,
                |b, body| b.iter(|| parse_ordered(black_box(body), format, &mut v)),
            );
        }
    }
    group.finish();
}
