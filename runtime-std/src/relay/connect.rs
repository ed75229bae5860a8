//! Outbound TCP, from a chosen source address when the route has one (`relay src`).
//!
//! std's `TcpStream` cannot bind before it connects, so a sourced socket is made with
//! libc: `socket`, `bind` to the source (port chosen by the kernel), a non-blocking
//! `connect` awaited with `poll` within the timeout, then handed to std in blocking mode.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// Connects to `addr` within `timeout`, from `src` when given.
///
/// # Errors
/// The source and destination are of different address families, the source address is
/// not one of this host's (`EADDRNOTAVAIL`), or the connection fails or times out.
pub(crate) fn connect(
    addr: SocketAddr,
    src: Option<IpAddr>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let Some(src) = src else {
        return TcpStream::connect_timeout(&addr, timeout);
    };
    if src.is_ipv4() != addr.is_ipv4() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("source address {src} cannot reach {addr} (another address family)"),
        ));
    }
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket has no memory preconditions; the result is checked below.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns; OwnedFd closes it on error.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // Leave the choice of the local port to connect(), which knows the destination: a
    // port is then shared by connections to different exchangers instead of each bind
    // taking one of the ephemeral range (best effort: older kernels lack the option).
    let yes: libc::c_int = 1;
    // SAFETY: yes is a valid c_int for the whole call, and its size is given.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::from_ref(&yes).cast::<libc::c_void>(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
        );
    }
    let (local, local_len) = sockaddr(SocketAddr::new(src, 0));
    // SAFETY: local is a valid sockaddr of local_len bytes for the whole call.
    let bound = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            std::ptr::from_ref(&local).cast::<libc::sockaddr>(),
            local_len,
        )
    };
    if bound != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("bind to {src}: {e}")));
    }
    let (remote, remote_len) = sockaddr(addr);
    // SAFETY: remote is a valid sockaddr of remote_len bytes for the whole call.
    let started = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            std::ptr::from_ref(&remote).cast::<libc::sockaddr>(),
            remote_len,
        )
    };
    if started != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
        wait_writable(&socket, timeout)?;
        if let Some(e) = socket_error(&socket)? {
            return Err(e);
        }
    }
    let stream = TcpStream::from(socket);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// Waits until the connecting socket is writable (connected or failed).
fn wait_writable(socket: &OwnedFd, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            ));
        }
        let mut pollfd = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let millis = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: pollfd is one valid entry for the whole call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if ready > 0 {
            return Ok(());
        }
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// The pending error of a socket whose connect finished (`SO_ERROR`).
fn socket_error(socket: &OwnedFd) -> io::Result<Option<io::Error>> {
    let mut value: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4);
    // SAFETY: value and len are valid for writes of the sizes given.
    let done = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            std::ptr::from_mut(&mut value).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((value != 0).then(|| io::Error::from_raw_os_error(value)))
}

/// `addr` as a C socket address and its length.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data for which all-zero bytes are valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or(2),
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe {
                std::ptr::write(
                    std::ptr::from_mut(&mut storage).cast::<libc::sockaddr_in>(),
                    sin,
                );
            }
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::sa_family_t::try_from(libc::AF_INET6).unwrap_or(10),
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe {
                std::ptr::write(
                    std::ptr::from_mut(&mut storage).cast::<libc::sockaddr_in6>(),
                    sin6,
                );
            }
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, libc::socklen_t::try_from(len).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::connect;
    use std::net::{IpAddr, Ipv4Addr, TcpListener};
    use std::time::Duration;

    #[test]
    fn the_peer_sees_the_source_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let _stream = connect(addr, Some(src), Duration::from_secs(5)).unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), src);
    }

    #[test]
    fn a_refused_connection_and_a_foreign_family_fail() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let refused = connect(
            addr,
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Duration::from_secs(5),
        );
        assert_eq!(
            refused.unwrap_err().kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        let v6 = connect(addr, Some("::1".parse().unwrap()), Duration::from_secs(5));
        assert_eq!(v6.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    }
}
