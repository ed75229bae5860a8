//! The async runtime on smol: the daemon `smtpd`, driving the same pure machines as
//! `runtime-std` with one task per connection.
