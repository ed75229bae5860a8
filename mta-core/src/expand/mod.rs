//! Recipient expansion: aliases, virtual mappings, .forward, sub-addressing, format specifiers.
