//! xtext encoding and decoding (RFC 3461 §4).
