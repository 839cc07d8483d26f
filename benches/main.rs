//! Criterion benchmarks on real Ray inputs.

use criterion::{criterion_group, criterion_main};

mod tsdb;

criterion_group!(benches, tsdb::benches);
criterion_main!(benches);
