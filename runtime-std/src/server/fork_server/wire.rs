//! The `SOCK_SEQPACKET` calls of the fork server and its agents: whole packets, with an
//! open file passed along (`SCM_RIGHTS`) where a delivery needs its message, and
//! `poll(2)` over several sockets.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// What one receive got.
#[derive(Debug)]
pub enum Received {
    /// A packet of this many bytes (in the caller's buffer), with the file that came
    /// with it, if any.
    Packet(usize, Option<OwnedFd>),
    /// The other end is closed.
    Closed,
    /// Nothing waiting (only without waiting).
    Empty,
}

/// A socket pair of packets, both ends close-on-exec: `[a, b]`.
///
/// # Errors
/// When the system refuses.
pub fn socket_pair() -> io::Result<[RawFd; 2]> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two descriptors into the array we own.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc == 0 {
        Ok(fds)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Send `packet` whole; with `wait` false, fail with `WouldBlock` rather than wait for
/// room. Never raises `SIGPIPE`.
///
/// # Errors
/// The send's error, or `WriteZero` for a packet sent in part.
pub fn send(socket: RawFd, packet: &[u8], wait: bool) -> io::Result<()> {
    send_with(socket, packet, None, wait)
}

/// [`send`] with the open file `file` attached: the receiver gets its own descriptor.
///
/// # Errors
/// As [`send`].
pub fn send_file(socket: RawFd, packet: &[u8], file: RawFd, wait: bool) -> io::Result<()> {
    send_with(socket, packet, Some(file), wait)
}

fn send_with(socket: RawFd, packet: &[u8], file: Option<RawFd>, wait: bool) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: packet.as_ptr().cast_mut().cast(),
        iov_len: packet.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is a valid empty header.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    if let Some(fd) = file {
        let fd_len = std::mem::size_of::<RawFd>() as libc::c_uint;
        header.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is arithmetic.
        header.msg_controllen = unsafe { libc::CMSG_SPACE(fd_len) } as usize;
        // SAFETY: the control buffer (32 bytes, aligned) holds one cmsghdr and one fd.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&header);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(fd_len) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        }
    }
    let flags = libc::MSG_NOSIGNAL | if wait { 0 } else { libc::MSG_DONTWAIT };
    loop {
        // SAFETY: the header points to live buffers of the lengths it states.
        let sent = unsafe { libc::sendmsg(socket, &header, flags) };
        if sent < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return if usize::try_from(sent).ok() == Some(packet.len()) {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::WriteZero))
        };
    }
}

/// Receive one packet into `buf` (a longer one is cut), and the file sent with it. With
/// `wait` false, [`Received::Empty`] when none is waiting.
///
/// # Errors
/// The receive's error (other than an interruption, which is retried).
pub fn receive(socket: RawFd, buf: &mut [u8], wait: bool) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 4];
    loop {
        // SAFETY: an all-zero msghdr is a valid empty header.
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = std::mem::size_of_val(&control);
        let flags = libc::MSG_CMSG_CLOEXEC | if wait { 0 } else { libc::MSG_DONTWAIT };
        // SAFETY: the header points to live buffers of the lengths it states.
        let n = unsafe { libc::recvmsg(socket, &mut header, flags) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(Received::Empty),
                _ => return Err(e),
            }
        }
        let file = passed_file(&header);
        return match usize::try_from(n) {
            Ok(0) | Err(_) => Ok(Received::Closed),
            Ok(n) => Ok(Received::Packet(n, file)),
        };
    }
}

/// The descriptor an `SCM_RIGHTS` message of `header` carries, owned from now on.
fn passed_file(header: &libc::msghdr) -> Option<OwnedFd> {
    // SAFETY: the header was filled by recvmsg; the CMSG macros stay inside its control
    // buffer.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(header);
        let mut found = None;
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                // Only one file is ever sent; close any other.
                if found.is_none() {
                    found = Some(OwnedFd::from_raw_fd(fd));
                } else {
                    libc::close(fd);
                }
            }
            cmsg = libc::CMSG_NXTHDR(header, cmsg);
        }
        found
    }
}

/// Wait until one of `fds` is ready or `timeout_ms` passes (-1: no limit); their
/// `revents` say which. An interruption is an empty round.
///
/// # Errors
/// Poll's error.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<()> {
    let count = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: the pointer and count describe the caller's slice.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), count, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Close a descriptor this process owns.
pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe { libc::close(fd) };
}
