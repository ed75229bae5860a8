//! SASL PLAIN (RFC 4616) and LOGIN decoding for AUTH (RFC 4954).
