//! Criterion benchmarks on real Ray inputs.

use criterion::{criterion_group, criterion_main};

mod textparse;

criterion_group!(benches, textparse::textparse);
criterion_main!(benches);
