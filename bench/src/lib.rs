//! Benchmarks run by hand; see the binaries in src/bin.
