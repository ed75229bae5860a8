//! A bounded CRLF line framer over a `BytesMut` receive buffer.
