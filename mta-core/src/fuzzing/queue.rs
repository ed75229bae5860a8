//! Harness for queue.
