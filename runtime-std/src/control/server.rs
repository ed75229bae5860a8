//! The daemon's side of the control socket: a listener thread and one thread per client.

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mta_core::control::{encode, FrameDecoder, Request, Response};

use super::accept_thread::AcceptThread;

/// How many control clients may be connected at once; more are closed at once.
pub const MAX_CLIENTS: usize = 32;

/// A client idle this long is disconnected (`monitor` asks every second).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What answers control requests: the daemon's engine host.
pub trait ControlTarget: Send + Sync {
    /// Answers `request` from a client running as `peer_uid`. Requests that need
    /// privilege ([`Request::needs_privilege`]) reach it only from root or the daemon's
    /// own user.
    fn control(&self, request: Request, peer_uid: u32) -> Response;
}

/// The listening control socket; dropping it stops the listener and removes the socket
/// file (clients already connected finish their current request).
pub struct ControlServer {
    path: PathBuf,
    /// Stopped (and waited for) before the socket file is removed.
    accept: Option<AcceptThread>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("path", &self.path)
            .finish()
    }
}

impl ControlServer {
    /// Binds the socket at `path` (replacing a stale one; refusing if a daemon answers
    /// there), sets its mode (0666 as root, 0600 otherwise) and starts accepting.
    ///
    /// # Errors
    /// When another daemon listens at `path`, or the socket cannot be made.
    pub fn start(path: &Path, target: Arc<dyn ControlTarget>) -> io::Result<ControlServer> {
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "control socket {} is in use by a running daemon",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        let owner = euid();
        let mode = if owner == 0 { 0o666 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        let listener_fd = listener.as_raw_fd();
        let accept = AcceptThread::spawn("control", listener_fd, move |stop| {
            accept_loop(&listener, &target, stop, owner)
        })?;
        Ok(ControlServer {
            path: path.to_owned(),
            accept: Some(accept),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        drop(self.accept.take());
        let _ = std::fs::remove_file(&self.path);
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn accept_loop(
    listener: &UnixListener,
    target: &Arc<dyn ControlTarget>,
    stop: &AtomicBool,
    owner: u32,
) {
    let clients = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let target = Arc::clone(target);
        let count = Arc::clone(&clients);
        let spawned = std::thread::Builder::new()
            .name("control-client".to_owned())
            .spawn(move || {
                let _ = serve_client(stream, target.as_ref(), owner);
                count.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            clients.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The user id of the process at the other end of `stream` (`SO_PEERCRED`).
pub(super) fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the buffer is a ucred of the length passed; the descriptor is open.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(cred.uid)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether a client running as `peer_uid` may send `request` to a daemon running as
/// `owner`: root and the owner may send anything, others only unprivileged requests
/// (submission, counters, status).
pub fn permitted(request: &Request, peer_uid: u32, owner: u32) -> bool {
    peer_uid == 0 || peer_uid == owner || !request.needs_privilege()
}

fn serve_client(mut stream: UnixStream, target: &dyn ControlTarget, owner: u32) -> io::Result<()> {
    let uid = peer_uid(&stream)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let mut decoder = FrameDecoder::<Request>::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let mut data = buf.get(..n).unwrap_or(&[]);
        loop {
            let taken = decoder.push(data);
            data = data.get(taken..).unwrap_or(&[]);
            match decoder.next() {
                Some(Ok(request)) => {
                    let response = if !permitted(&request, uid, owner) {
                        Response::Error("permission denied".to_owned())
                    } else {
                        target.control(request, uid)
                    };
                    send(&mut stream, &response)?;
                }
                Some(Err(e)) => {
                    send(&mut stream, &Response::Error(e.to_string()))?;
                    return Ok(());
                }
                None => {}
            }
            if data.is_empty() {
                break;
            }
        }
    }
}

fn send(stream: &mut UnixStream, response: &Response) -> io::Result<()> {
    let frame = match encode(response) {
        Ok(f) => f,
        Err(e) => encode(&Response::Error(format!("response not sent: {e}")))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
    };
    stream.write_all(&frame)
}
