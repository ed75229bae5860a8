//! Harnesses for the command, reply, path, parameter and SASL parsers.
