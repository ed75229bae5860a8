//! Timers of the session machines, a table indexed by an enum (RFC 5321 §4.5.3.2).
