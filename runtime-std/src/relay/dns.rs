//! The DNS transport of the relay agent: the stub resolver's datagrams leave through one
//! shared UDP socket per address family, whose reader thread feeds the answers back; a
//! TCP query (after a truncated answer, RFC 7766 §5) runs on a thread of its own.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc::Sender;
use std::time::Duration;

use bytes::Bytes;
use mta_core::dns;

use super::Event;

/// How long a TCP query may take, connect included.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest DNS message (the TCP length prefix allows 65535).
const MAX_MESSAGE: usize = 65_535;

/// The UDP sockets queries leave from.
pub(crate) struct DnsTransport {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    events: Sender<Event>,
}

impl DnsTransport {
    /// Bind the sockets (an IPv6 one only when the host has IPv6) and start their reader
    /// threads.
    ///
    /// # Errors
    /// Neither socket can be bound, or a thread cannot start.
    pub(crate) fn start(events: &Sender<Event>) -> io::Result<DnsTransport> {
        let v4 = UdpSocket::bind("0.0.0.0:0").ok();
        let v6 = UdpSocket::bind("[::]:0").ok();
        if v4.is_none() && v6.is_none() {
            return Err(io::Error::other("cannot bind a UDP socket for DNS"));
        }
        for socket in v4.iter().chain(v6.iter()) {
            let reader = socket.try_clone()?;
            let events = events.clone();
            std::thread::Builder::new()
                .name("relay-dns".to_owned())
                .spawn(move || read_datagrams(&reader, &events))?;
        }
        Ok(DnsTransport {
            v4,
            v6,
            events: events.clone(),
        })
    }

    /// Carry out one send of the resolver; a failed send is left to the resolver's
    /// timeout, which tries the next server.
    pub(crate) fn send(&self, action: dns::Action) {
        // Monkey mode: a dropped query, which the resolver's timeout retries.
        if let crate::monkey::Decision::Fail(_) =
            crate::monkey::decide(mta_core::faults::Fault::DnsQuery)
        {
            return;
        }
        match action {
            dns::Action::SendUdp { server, bytes } => {
                let socket = if server.is_ipv4() { &self.v4 } else { &self.v6 };
                if let Some(socket) = socket {
                    let _ = socket.send_to(&bytes, server);
                }
            }
            dns::Action::SendTcp { server, bytes } => {
                let events = self.events.clone();
                let spawned = std::thread::Builder::new()
                    .name("relay-dns-tcp".to_owned())
                    .spawn(move || {
                        let input = match tcp_query(server, &bytes) {
                            Ok(answer) => dns::Input::TcpReceived {
                                from: server,
                                bytes: answer,
                            },
                            Err(_) => dns::Input::TcpFailed { from: server },
                        };
                        let _ = events.send(Event::Dns(input));
                    });
                if spawned.is_err() {
                    let _ = self
                        .events
                        .send(Event::Dns(dns::Input::TcpFailed { from: server }));
                }
            }
            dns::Action::Answer { .. } => {}
        }
    }
}

fn read_datagrams(socket: &UdpSocket, events: &Sender<Event>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let bytes = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                if events
                    .send(Event::Dns(dns::Input::UdpReceived { from, bytes }))
                    .is_err()
                {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// One query over TCP: `query` already carries its length prefix; the answer is returned
/// with its own.
fn tcp_query(server: SocketAddr, query: &[u8]) -> io::Result<Bytes> {
    let mut stream = TcpStream::connect_timeout(&server, TCP_TIMEOUT)?;
    stream.set_read_timeout(Some(TCP_TIMEOUT))?;
    stream.set_write_timeout(Some(TCP_TIMEOUT))?;
    stream.write_all(query)?;
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix)?;
    let len = usize::from(u16::from_be_bytes(prefix));
    let mut answer = vec![0u8; len.saturating_add(2)];
    if let Some(head) = answer.get_mut(..2) {
        head.copy_from_slice(&prefix);
    }
    if let Some(rest) = answer.get_mut(2..) {
        stream.read_exact(rest)?;
    }
    Ok(Bytes::from(answer))
}
