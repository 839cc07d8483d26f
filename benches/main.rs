//! Criterion benchmarks on real Ray inputs.

use criterion::{criterion_group, criterion_main};

mod textparse;
mod tsdb;

criterion_group!(benches, textparse::textparse, tsdb::benches);
criterion_main!(benches);
