//! The file-backed queue: incoming area, durable commit with group fsync, reload at start.
