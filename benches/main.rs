//! Criterion benchmarks on real Ray inputs.

use criterion::{criterion_group, criterion_main};

mod promql_parser;
mod textparse;
mod tsdb;

criterion_group!(
    benches,
    textparse::textparse,
    tsdb::benches,
    promql_parser::parse
);
criterion_main!(benches);
