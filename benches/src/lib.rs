//! Benchmark package: see the files under `benches/`.
