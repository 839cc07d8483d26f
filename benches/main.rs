//! Criterion benchmarks on real Ray inputs.

use criterion::{criterion_group, criterion_main, Criterion};

mod promql_parser;

fn placeholder(_c: &mut Criterion) {}

criterion_group!(benches, placeholder, promql_parser::parse);
criterion_main!(benches);
