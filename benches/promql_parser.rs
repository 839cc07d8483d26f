//! Parser throughput on the real Ray dashboard queries.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use raymon::promql::parser::parse_expr;

pub fn parse(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/fixtures/ray/dashboard-queries-substituted.txt"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let queries: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let bytes: usize = queries.iter().map(|q| q.len()).sum();
    let mut g = c.benchmark_group("promql_parser");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function(
        BenchmarkId::new("dashboard_queries", format!("n{}", queries.len())),
        |b| {
            b.iter(|| {
                for q in &queries {
                    let _ = black_box(parse_expr(black_box(q)));
                }
            })
        },
    );
    g.bench_function(
        BenchmarkId::new("parse_and_print", format!("n{}", queries.len())),
        |b| {
            b.iter(|| {
                for q in &queries {
                    if let Ok(e) = parse_expr(q) {
                        black_box(e.to_string());
                    }
                }
            })
        },
    );
    g.finish();
}
