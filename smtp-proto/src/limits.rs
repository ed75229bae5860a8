//! Limits of the server session, with the defaults of RFC 5321 §4.5.3.
