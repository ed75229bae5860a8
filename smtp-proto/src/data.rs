//! DATA body handling: dot-unstuffing and end-of-data detection (RFC 5321 §4.5.2), dot-stuffing, BDAT chunks.
