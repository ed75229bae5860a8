//! The daemon's side of the offline directory (see [`crate::control::offline`]): made
//! at start, then scanned once the daemon runs as its account, every
//! [`SCAN_INTERVAL`] and on `smtpctl schedule all`. Each file is enqueued through the
//! local enqueuer's session, as `sendmail` would have done, as the user who owns it.
//!
//! The directory is writable by every user, so each file is treated as hostile: opened
//! relative to the directory without following a link and without blocking, checked on
//! the open descriptor to be a regular file with one link and at most the configured
//! message size (plus room for its envelope), and its owner taken from that descriptor.
//! A file that says it is another user's is enqueued as its owner (a sender made from
//! the user's name is made again from the owner's). A file that cannot be used
//! (undecodable, a link, too large, an owner without an account, refused with a 5xx) is
//! renamed `corrupt-NAME` or `refused-NAME` with a log line, never deleted and never
//! tried again; one that got a 250 is removed; any other failure leaves it for the next
//! scan. Names starting with `.` are files still being written.

mod file;

use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use mta_core::config::Config;
use mta_core::control::OfflineMessage;

pub use file::{Enqueued, OfflineScan, ScanCounts, CORRUPT_PREFIX, REFUSED_PREFIX};

use super::conn::ConnContext;
use super::daemon_control::LocalEnqueuer;
use super::engine_host::EngineHost;
use super::log::Log;
use super::privdrop::RunAs;
use crate::control::offline::{offline_dir, OFFLINE_DIR_MODE};
use crate::control::submit::transaction;

/// How often the directory is scanned while the daemon runs.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(300);

/// Room for the envelope lines of an offline file, beyond the message size limit.
pub const ENVELOPE_ROOM: u64 = 1024 * 1024;

/// Make the offline directory `dir` (or take over the one there): a real directory,
/// not a link, owned by `owner` (uid, gid) when given (the daemon runs as root and will
/// become that account), mode [`OFFLINE_DIR_MODE`].
///
/// # Errors
/// When it cannot be made, is no directory (a link is refused), or cannot be given its
/// owner and mode.
pub fn setup_dir(dir: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let handle = file::open_dir(dir)?;
    let fd = handle.as_raw_fd();
    if let Some((uid, gid)) = owner {
        // SAFETY: fchown on a descriptor we own.
        if unsafe { libc::fchown(fd, uid, gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
    } else if handle.metadata()?.uid() != euid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} belongs to another user", dir.display()),
        ));
    }
    handle.set_permissions(std::fs::Permissions::from_mode(OFFLINE_DIR_MODE))
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The wake-up of every scanner: a generation counter and its condition.
fn wake_signal() -> &'static (Mutex<u64>, Condvar) {
    static WAKE: OnceLock<(Mutex<u64>, Condvar)> = OnceLock::new();
    WAKE.get_or_init(|| (Mutex::new(0), Condvar::new()))
}

/// Scan the offline directory now (`smtpctl schedule all`) instead of at the next
/// interval.
pub fn wake() {
    let (generation, condvar) = wake_signal();
    if let Ok(mut g) = generation.lock() {
        *g = g.wrapping_add(1);
        condvar.notify_all();
    }
}

/// Wait for [`wake`] or `timeout`, whichever comes first.
fn sleep_until_woken(timeout: Duration) {
    let (generation, condvar) = wake_signal();
    let Ok(g) = generation.lock() else {
        std::thread::sleep(timeout);
        return;
    };
    let seen = *g;
    let _ = condvar.wait_timeout_while(g, timeout, |g| *g == seen);
}

/// Set up the offline directory beside `queue_dir` and start its scanner (for the
/// daemon's life). Called at start, after the control socket and before the privilege
/// drop: the directory is made (and given to `account`) while root; the scanner waits
/// until the process no longer runs as root before its first scan, so no message is
/// ever enqueued as root. A directory that cannot be set up is logged and not scanned.
pub fn start(
    queue_dir: &Path,
    config: &Config,
    account: &Option<RunAs>,
    host: &Arc<EngineHost>,
    conn: &ConnContext,
    log: &Log,
) {
    let hostname = super::hostname();
    let hostname = hostname.as_str();
    let dir = offline_dir(queue_dir);
    if let Err(e) = setup_dir(&dir, account.as_ref().map(|a| (a.uid, a.gid))) {
        log.warn(&format!(
            "offline: no offline directory at {}: {e}; sendmail cannot leave messages there",
            dir.display()
        ));
        return;
    }
    let scan = OfflineScan::new(
        dir.clone(),
        config
            .options
            .max_message_size()
            .saturating_add(ENVELOPE_ROOM),
        hostname.to_owned(),
    );
    let enqueuer = LocalEnqueuer {
        host: Arc::clone(host),
        conn: conn.clone(),
        session: Arc::new(super::local_session_config(config, hostname)),
    };
    let thread_log = log.clone();
    let dropping = account.is_some();
    let spawned = std::thread::Builder::new()
        .name("offline".to_owned())
        .spawn(move || scanner(&scan, &enqueuer, &thread_log, dropping));
    if let Err(e) = spawned {
        log.warn(&format!(
            "offline: cannot start the scanner of {}: {e}",
            dir.display()
        ));
    }
}

/// How long after start (and the privilege drop) the first scan waits: the start-up
/// reloads the queue right after, and new message ids must not be drawn before the
/// engine knows the queued ones.
const FIRST_SCAN_DELAY: Duration = Duration::from_secs(1);

/// The scanner thread: first wait for the privilege drop, then scan and sleep.
fn scanner(scan: &OfflineScan, enqueuer: &LocalEnqueuer, log: &Log, dropping: bool) {
    while dropping && euid() == 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(FIRST_SCAN_DELAY);
    loop {
        let counts = scan.scan(log, &mut |message| enqueue(enqueuer, message));
        if counts.enqueued + counts.set_aside + counts.kept > 0 {
            log.info(&format!(
                "offline: {} enqueued, {} set aside, {} kept for later in {}",
                counts.enqueued,
                counts.set_aside,
                counts.kept,
                scan.dir().display()
            ));
        }
        sleep_until_woken(SCAN_INTERVAL);
    }
}

/// One offline message through the local enqueuer's session.
fn enqueue(enqueuer: &LocalEnqueuer, message: &OfflineMessage) -> Enqueued {
    let step = enqueuer
        .with_session(|stream| transaction(stream, &message.submission, "localhost"))
        .and_then(|r| r);
    match step {
        Ok(Ok(reply)) => Enqueued::Accepted(reply.to_line()),
        Ok(Err((step, reply))) if reply.code >= 500 => {
            Enqueued::Refused(format!("{step} refused: {}", reply.to_line()))
        }
        Ok(Err((step, reply))) => Enqueued::Failed(format!("{step} refused: {}", reply.to_line())),
        Err(e) => Enqueued::Failed(format!("submission failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_wake_ends_the_wait_at_once() {
        let started = Instant::now();
        let sleeper = std::thread::spawn(|| sleep_until_woken(Duration::from_secs(60)));
        while !sleeper.is_finished() && started.elapsed() < Duration::from_secs(20) {
            wake();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(sleeper.is_finished(), "still asleep after wakes");
        sleeper.join().expect("sleeper");
    }
}
