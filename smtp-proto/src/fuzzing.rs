//! Invariant harnesses shared by the quickcheck properties and the cargo-fuzz targets.
