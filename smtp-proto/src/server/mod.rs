//! The server session machine: one inbound SMTP connection.
