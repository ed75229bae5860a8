//! The Prometheus endpoint of `metrics listen on ADDRESS [port PORT]`: one thread that
//! accepts HTTP connections one at a time, reads the request head (at most
//! [`MAX_REQUEST_HEAD`] bytes, for at most [`READ_TIMEOUT`]), answers `GET /metrics`
//! with the counters of `show stats` from the same [`ControlTarget`] as the control
//! socket, and closes. The protocol decisions are in [`mta_core::metrics`].
//!
//! Anyone who can reach the address reads the counters (as anyone may ask `smtpctl show
//! stats`); an address that is not loopback shows them to that network.

use super::accept_thread::AcceptThread;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mta_core::control::{Request, Response};
use mta_core::metrics::{Reply, RequestReader, MAX_REQUEST_HEAD};

use super::ControlTarget;
use crate::server::engine_host::unix_now;

/// How long a client has to send its whole request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How long writing the response may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// After the response, how long unread request bytes (a body) are drained before the
/// close, so that the close does not reset the connection under the response
/// (RFC 9112 §9.6).
const LINGER: Duration = Duration::from_millis(200);

/// The listening endpoint; dropping it stops the thread.
pub struct MetricsServer {
    addr: SocketAddr,
    _accept: AcceptThread,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MetricsServer {
    /// Binds `addr` (call it before privileges are dropped: the port may be below 1024)
    /// and starts answering from `target`.
    ///
    /// # Errors
    /// When the address cannot be bound or the thread cannot start.
    pub fn start(addr: SocketAddr, target: Arc<dyn ControlTarget>) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let listener_fd = listener.as_raw_fd();
        let accept = AcceptThread::spawn("metrics", listener_fd, move |stop| {
            accept_loop(&listener, target.as_ref(), stop)
        })?;
        Ok(MetricsServer {
            addr,
            _accept: accept,
        })
    }

    /// The address it listens on (with the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

fn accept_loop(listener: &TcpListener, target: &dyn ControlTarget, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match stream {
            // A failing client never stops the endpoint.
            Ok(stream) => {
                let _ = serve(stream, target);
            }
            // Out of descriptors or a connection reset before accept: try again soon.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Reads one request from `stream`, answers it and closes.
fn serve(mut stream: TcpStream, target: &dyn ControlTarget) -> io::Result<()> {
    let Some(reply) = read_request(&mut stream)? else {
        return Ok(());
    };
    let (reply, stats) = match reply {
        Reply::Metrics => match target.control(Request::ShowStats, euid()) {
            Response::Stats(stats) => (Reply::Metrics, stats),
            _ => (Reply::Unavailable, Vec::new()),
        },
        other => (other, Vec::new()),
    };
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    stream.write_all(&reply.to_bytes(&stats, unix_now()))?;
    stream.shutdown(Shutdown::Write)?;
    drain(&mut stream);
    Ok(())
}

/// The answer to the request head read from `stream`, within [`READ_TIMEOUT`] in all;
/// `None` when the client sent nothing (closed or timed out).
fn read_request(stream: &mut TcpStream) -> io::Result<Option<Reply>> {
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut reader = RequestReader::new();
    let mut buf = vec![0u8; MAX_REQUEST_HEAD];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok((reader.received() > 0).then_some(Reply::RequestTimeout));
        }
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let room = reader.room().min(buf.len());
        let Some(space) = buf.get_mut(..room) else {
            return Ok(Some(Reply::HeadTooLarge));
        };
        match stream.read(space) {
            Ok(0) if reader.received() == 0 => return Ok(None),
            Ok(0) => return Ok(Some(Reply::BadRequest)),
            Ok(n) => {
                let head = reader.push(space.get(..n).unwrap_or_default());
                if let Some(reply) = Reply::for_request(&head) {
                    return Ok(Some(reply));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok((reader.received() > 0).then_some(Reply::RequestTimeout));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads and drops what the client still sends, for at most [`LINGER`] and 64 KiB.
fn drain(stream: &mut TcpStream) {
    let deadline = Instant::now() + LINGER;
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    while total < 64 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total = total.saturating_add(n),
        }
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Answers `show stats` with two counters and counts the questions.
    struct Stats(AtomicUsize);

    impl ControlTarget for Stats {
        fn control(&self, request: Request, _peer_uid: u32) -> Response {
            self.0.fetch_add(1, Ordering::SeqCst);
            match request {
                Request::ShowStats => Response::Stats(vec![
                    ("smtp.session".to_owned(), 1),
                    ("uptime".to_owned(), 5),
                ]),
                _ => Response::Error("unexpected".to_owned()),
            }
        }
    }

    fn start() -> (MetricsServer, Arc<Stats>) {
        let target = Arc::new(Stats(AtomicUsize::new(0)));
        let server = MetricsServer::start(
            "127.0.0.1:0".parse().expect("address"),
            Arc::clone(&target) as Arc<dyn ControlTarget>,
        )
        .expect("binds");
        (server, target)
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).expect("connects");
        s.write_all(request).expect("writes");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("reads");
        out
    }

    #[test]
    fn serves_the_counters_and_the_errors() {
        let (server, target) = start();
        let addr = server.local_addr();
        let metrics = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
        assert!(
            metrics.contains("\r\nsmtpd_smtp_session 1\n")
                || metrics.contains("\nsmtpd_smtp_session 1\n")
        );
        assert!(metrics.contains("\nsmtpd_uptime_seconds 5\n"), "{metrics}");
        assert_eq!(target.0.load(Ordering::SeqCst), 1);
        let missing = exchange(addr, b"GET /nope HTTP/1.0\r\n\r\n");
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");
        let post = exchange(
            addr,
            b"POST /metrics HTTP/1.0\r\nContent-Length: 1\r\n\r\nx",
        );
        assert!(
            post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET"),
            "{post}"
        );
        let bad = exchange(addr, b"\x16\x03\x01 garbage\r\n");
        assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");
        assert_eq!(target.0.load(Ordering::SeqCst), 1, "only /metrics asks");
    }

    #[test]
    fn a_silent_client_does_not_stop_the_server() {
        let (server, _) = start();
        let addr = server.local_addr();
        let silent = TcpStream::connect(addr).expect("connects");
        let started = Instant::now();
        let index = exchange(addr, b"GET / HTTP/1.0\r\n\r\n");
        assert!(index.starts_with("HTTP/1.1 200 "), "{index}");
        // Served once the silent client timed out, however loaded the machine is.
        assert!(started.elapsed() < READ_TIMEOUT + Duration::from_secs(10));
        drop(silent);
        let partial = exchange(addr, b"GET / HT");
        assert!(partial.starts_with("HTTP/1.1 408 "), "{partial}");
    }

    #[test]
    fn a_bind_failure_is_an_error() {
        let (server, _) = start();
        let taken = MetricsServer::start(server.local_addr(), Arc::new(Stats(AtomicUsize::new(0))));
        assert!(taken.is_err());
    }
}
