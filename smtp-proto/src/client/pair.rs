//! The client session against the server session, wired in memory.
