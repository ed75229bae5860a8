//! The Prometheus endpoint of the daemon, without its socket: the statistics of
//! `smtpctl show stats` in the text exposition format 0.0.4 ([`render`]), a bounded
//! reader of HTTP/1.x request heads ([`RequestReader`]) and the responses ([`Reply`]).
//!
//! Performs no I/O and reads no clock. A runtime serving `metrics listen on` (see
//! [`MetricsListener`](crate::config::MetricsListener)) accepts a connection, reads at
//! most [`MAX_REQUEST_HEAD`] bytes into a [`RequestReader`] until [`Reply::for_request`]
//! gives an answer, asks its engine for the statistics when the answer is
//! [`Reply::Metrics`], writes [`Reply::to_bytes`] and closes the connection.

mod http;
mod render;
mod reply;

pub use http::{parse_request_head, RequestHead, RequestReader, MAX_REQUEST_HEAD};
pub use render::{metric_name, metric_type, render, PREFIX};
pub use reply::{Reply, CONTENT_TYPE, METRICS_PATH};

#[cfg(any(test, feature = "__fuzz"))]
pub mod fuzzing;

#[cfg(test)]
mod tests;
