//! TCP listeners from the `listen on` lines, and the accept loop: one thread per
//! connection up to a limit (the next client gets `421 4.3.2` and is closed), until a
//! stop signal, then `Shutdown` to every live session.
//!
//! `smtpctl pause smtp` ([`SmtpPause`]): new clients are still accepted, but only to be
//! told `421 4.3.2 HOST Service temporarily paused` and closed, so they retry later
//! (RFC 5321 §3.8) instead of waiting in the backlog; sessions already open go on.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use mta_core::config::{Config, Family, ListenAddress, Listener};
use smtp_proto::server::ServerConfig;

use super::conn::{serve, ConnContext, ListenerTls};
use super::conn_threads::ConnThreads;
use super::mailbox::{Mailbox, Note};
use super::signals::StopSignal;

/// One bound socket and the session configuration of its `listen on` line.
#[derive(Debug)]
pub struct Bound {
    /// The socket.
    pub socket: TcpListener,
    /// Index of the line in `Config::listeners`.
    pub index: usize,
    /// The configuration of sessions accepted on it.
    pub session_config: Arc<ServerConfig>,
    /// Its TLS side, when the line says `tls`, `tls-require` or `smtps`.
    pub tls: Option<Arc<ListenerTls>>,
}

/// The addresses a `listen on` line designates, with its port.
///
/// # Errors
///
/// When an interface has no address or a host name does not resolve.
pub fn addresses(listener: &Listener) -> io::Result<Vec<SocketAddr>> {
    let port = listener.port;
    let ips: Vec<IpAddr> = match &listener.address {
        ListenAddress::Ip(ip) => vec![*ip],
        ListenAddress::Localhost => vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()],
        ListenAddress::Any => vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()],
        ListenAddress::Interface(name) if name == "all" => {
            vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()]
        }
        ListenAddress::Interface(name) => interface_addresses(name)?,
        ListenAddress::Host(name) => (name.as_str(), port)
            .to_socket_addrs()?
            .map(|a| a.ip())
            .collect(),
    };
    let wanted = |ip: &IpAddr| match listener.family {
        Some(Family::Inet4) => ip.is_ipv4(),
        Some(Family::Inet6) => ip.is_ipv6(),
        None => true,
    };
    let mut out: Vec<SocketAddr> = ips
        .into_iter()
        .filter(wanted)
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    out.dedup();
    if out.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("listen on {:?}: no address", listener.address),
        ));
    }
    Ok(out)
}

/// The IPv4 and IPv6 addresses of network interface `name` (getifaddrs(3)).
fn interface_addresses(name: &str) -> io::Result<Vec<IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: cursor walks the list getifaddrs returned, which stays valid until freed.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifname = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) };
        if ifname.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null; its family says which sockaddr type it points to.
        let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
        if family == libc::AF_INET {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
            found.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))));
        } else if family == libc::AF_INET6 {
            // SAFETY: an AF_INET6 address is a sockaddr_in6.
            let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
            found.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
        }
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// Bind every listener of `config`; `session_config` gives each line's session settings.
/// The TLS configuration of a line is built here, once (certificates are read now).
/// An IPv6 address that the host cannot bind (no IPv6) is skipped when other addresses
/// of the same line bound.
///
/// # Errors
///
/// When a line binds no address at all (port in use, permission, no address), or its
/// TLS configuration cannot be built (a pki file missing or not matching).
pub fn bind_all(
    config: &Config,
    session_config: impl Fn(&Listener) -> ServerConfig,
) -> io::Result<Vec<Bound>> {
    let mut bound = Vec::new();
    for (index, line) in config.listeners.iter().enumerate() {
        let shared = Arc::new(session_config(line));
        let tls = crate::tls::ServerTls::from_config(config, line)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("tls: {e}")))?
            .map(|server| {
                Arc::new(ListenerTls {
                    config: server,
                    implicit: line.tls == mta_core::config::ListenerTls::Smtps,
                })
            });
        let mut last_error = None;
        let mut any = false;
        for addr in addresses(line)? {
            match bind_retrying(addr) {
                Ok(socket) => {
                    socket.set_nonblocking(true)?;
                    bound.push(Bound {
                        socket,
                        index,
                        session_config: Arc::clone(&shared),
                        tls: tls.clone(),
                    });
                    any = true;
                }
                Err(e) => last_error = Some(io::Error::new(e.kind(), format!("bind {addr}: {e}"))),
            }
        }
        if !any {
            return Err(last_error
                .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "nothing to bind")));
        }
    }
    Ok(bound)
}

/// How long a start waits for a port still held by a dying predecessor (a delivery
/// child of a killed daemon keeps its listening sockets until it exits).
const BIND_PATIENCE: Duration = Duration::from_secs(15);

fn bind_retrying(addr: SocketAddr) -> io::Result<TcpListener> {
    let deadline = Instant::now() + BIND_PATIENCE;
    loop {
        match TcpListener::bind(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Whether new SMTP sessions are refused (`smtpctl pause smtp`), shared by the accept
/// loops of both runtimes and the control socket.
#[derive(Debug, Default)]
pub struct SmtpPause {
    paused: AtomicBool,
}

impl SmtpPause {
    /// Refuse new sessions from now on (`pause smtp`).
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Serve new sessions again (`resume smtp`).
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Whether new sessions are refused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// The reply a client gets while paused: the service is not available, try later
    /// (RFC 5321 §4.2.3, RFC 3463 X.3.2 "system not accepting network messages").
    pub fn refusal(hostname: &str) -> String {
        format!("421 4.3.2 {hostname} Service temporarily paused\r\n")
    }
}

/// The live connections: their mailboxes (for `Shutdown`) and their number (for the
/// limit), with a condition variable to wait for them to end.
#[derive(Default)]
pub struct Connections {
    live: Mutex<HashMap<u64, Arc<Mailbox>>>,
    ended: Condvar,
}

impl Connections {
    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.live.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// Tell every session the server is stopping.
    pub fn shutdown_all(&self) {
        if let Ok(live) = self.live.lock() {
            for mailbox in live.values() {
                mailbox.push(Note::Shutdown);
            }
        }
    }

    /// Wait until every connection ended or `limit` passed; true when all ended.
    pub fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let Ok(mut live) = self.live.lock() else {
            return false;
        };
        while !live.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            live = match self.ended.wait_timeout(live, left) {
                Ok((guard, _)) => guard,
                Err(_) => return false,
            };
        }
        true
    }
}

/// Accept connections on `bound` until `stop` fires, each on its own thread, at most
/// `max_connections` at once, none while `paused`. Returns when stopped (sessions are
/// then told to shut down).
pub fn accept_loop(
    bound: &[Bound],
    stop: &StopSignal,
    ctx: &ConnContext,
    connections: &Arc<Connections>,
    max_connections: usize,
    paused: &SmtpPause,
) {
    let mut next_id: u64 = 0;
    let threads = ConnThreads::default();
    loop {
        let mut fds: Vec<libc::pollfd> = bound
            .iter()
            .map(|b| libc::pollfd {
                fd: b.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        fds.push(libc::pollfd {
            fd: stop.fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let count = libc::nfds_t::try_from(fds.len()).unwrap_or(0);
        // SAFETY: `fds` is a valid array of `count` pollfd structs we own.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, 1000) };
        if ready < 0 {
            continue;
        }
        if fds.last().is_some_and(|f| f.revents != 0) && stop.fired() {
            ctx.log.info("smtpd: stop signal received, shutting down");
            connections.shutdown_all();
            return;
        }
        for (b, fd) in bound.iter().zip(&fds) {
            if fd.revents == 0 {
                continue;
            }
            while let Ok((stream, peer)) = b.socket.accept() {
                let _ = stream.set_nonblocking(false);
                if paused.is_paused() {
                    ctx.log.info(&format!(
                        "smtp-in: refusing connection from {peer}: smtp is paused"
                    ));
                    let mut s = stream;
                    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                    let _ = s.write_all(SmtpPause::refusal(&b.session_config.hostname).as_bytes());
                    continue;
                }
                if connections.count() >= max_connections {
                    ctx.log.info(&format!(
                        "smtp-in: refusing connection from {peer}: too many connections"
                    ));
                    let mut s = stream;
                    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                    let _ = write!(
                        s,
                        "421 4.3.2 {} Too many connections, try again later\r\n",
                        b.session_config.hostname
                    );
                    continue;
                }
                let mailbox = match Mailbox::new() {
                    Ok(m) => Arc::new(m),
                    Err(e) => {
                        ctx.log.warn(&format!("smtp-in: cannot serve {peer}: {e}"));
                        continue;
                    }
                };
                next_id = next_id.wrapping_add(1);
                let id = next_id;
                if let Ok(mut live) = connections.live.lock() {
                    live.insert(id, Arc::clone(&mailbox));
                }
                let ctx = ctx.clone();
                let config = Arc::clone(&b.session_config);
                let tls = b.tls.clone();
                let index = b.index;
                let conns = Arc::clone(connections);
                let spawned = threads.run(move || {
                    serve(stream, index, config, tls, ctx, mailbox);
                    if let Ok(mut live) = conns.live.lock() {
                        live.remove(&id);
                    }
                    conns.ended.notify_all();
                });
                if let Err(e) = spawned {
                    ctx_warn_spawn(connections, id, &e);
                }
            }
        }
    }
}

fn ctx_warn_spawn(connections: &Connections, id: u64, error: &io::Error) {
    if let Ok(mut live) = connections.live.lock() {
        live.remove(&id);
    }
    let _ = writeln!(
        io::stderr(),
        "warn: smtp-in: cannot start a thread: {error}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_and_families() {
        let mut line = Listener::new(ListenAddress::Localhost);
        line.port = 2525;
        let all = addresses(&line).expect("localhost has addresses");
        assert_eq!(
            all,
            vec![
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 2525),
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 2525)
            ]
        );
        line.family = Some(Family::Inet4);
        assert_eq!(
            addresses(&line).expect("inet4"),
            vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 2525)]
        );
        line.address = ListenAddress::Ip(Ipv6Addr::LOCALHOST.into());
        assert!(
            addresses(&line).is_err(),
            "an inet4 listener on ::1 has nothing"
        );
    }

    #[test]
    fn the_loopback_interface_has_127_0_0_1() {
        let line = Listener::new(ListenAddress::Interface("lo".to_owned()));
        let found = addresses(&line).expect("lo exists");
        assert!(found.contains(&SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 25)));
        let missing = Listener::new(ListenAddress::Interface("no-such-if0".to_owned()));
        assert!(addresses(&missing).is_err());
    }
}
