//! Wall-clock time as a value, handed in by the runtime.
