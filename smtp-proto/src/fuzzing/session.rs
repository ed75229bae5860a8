//! Harnesses for the server session machine and DATA dot-stuffing.
