//! Mbox delivery: append under an exclusive lock, never leaving half a message behind.
//!
//! The message is preceded by a `From sender date` line (date in `asctime` format, local
//! time, as mail.local writes it), body lines matching `^>*From ` get one more `>`
//! ("mboxrd" quoting, so readers can undo it), and a blank line ends the message. The
//! file is locked with an open-file-description `fcntl` write lock (it conflicts with the
//! classic `fcntl` locks of other mail programs and, unlike them, also between threads of
//! this process), taken by polling until a timeout (then a temporary failure). On any
//! failure the file is truncated back to its original length. CRLF line ends are written
//! as LF.

use super::{DeliveryOutcome, UnixLines};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Append `message` from envelope sender `sender` (empty for a bounce, written as
/// `MAILER-DAEMON`) to the mbox at `path` (created 0600 if missing; a symbolic link or
/// anything but a regular file is refused), waiting at most `lock_timeout` for the lock.
/// Run it as the recipient; when the spool directory (`/var/mail`) is not writable by
/// users, create the mailbox first with [`create_mailbox`] as root.
pub fn deliver(
    path: &Path,
    sender: &str,
    received: SystemTime,
    message: &mut dyn Read,
    lock_timeout: Duration,
) -> DeliveryOutcome {
    let context = format!("mbox {}", path.display());
    let file = match OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) => return DeliveryOutcome::from_io(&context, &e),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return DeliveryOutcome::TempFail(format!("{context}: not a regular file")),
        Err(e) => return DeliveryOutcome::from_io(&context, &e),
    }
    if let Err(e) = lock(&file, lock_timeout) {
        return DeliveryOutcome::from_io(&context, &e);
    }
    let original = match file.metadata() {
        Ok(meta) => meta.len(),
        Err(e) => return DeliveryOutcome::from_io(&context, &e),
    };
    match append(&file, sender, received, message) {
        Ok(()) => DeliveryOutcome::Delivered,
        Err(e) => {
            if let Err(undo) = file.set_len(original).and_then(|()| file.sync_data()) {
                return DeliveryOutcome::TempFail(format!(
                    "{context}: {e}; truncating back failed: {undo}"
                ));
            }
            DeliveryOutcome::from_io(&context, &e)
        }
    }
    // The lock goes away with the file description when `file` is dropped.
}

/// As root, create the mailbox `path` for user `uid`/`gid` (mode 0600) if it does not
/// exist, so that the delivery itself can run as the user, as mail.local(8) does. An
/// existing file is left alone; a symbolic link is never followed.
pub fn create_mailbox(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        Ok(file) => std::os::unix::fs::fchown(&file, Some(uid), Some(gid)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn append(
    file: &File,
    sender: &str,
    received: SystemTime,
    message: &mut dyn Read,
) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    let sender = if sender.is_empty() {
        "MAILER-DAEMON"
    } else {
        sender
    };
    writeln!(out, "From {sender} {}", asctime(received))?;
    let mut message = UnixLines::new(message);
    let mut quoter = FromQuoter::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match message.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        quoter.write(buf.get(..n).unwrap_or_default(), &mut out)?;
    }
    quoter.finish(&mut out)?;
    out.write_all(b"\n")?;
    out.into_inner().map_err(|e| e.into_error())?.sync_data()
}

/// Take the write lock on the whole file, polling until `timeout`.
fn lock(file: &File, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: an all-zero flock is a valid value; the fields we need are set below.
        let mut request: libc::flock = unsafe { std::mem::zeroed() };
        request.l_type = libc::F_WRLCK as libc::c_short;
        request.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: the descriptor is open and the flock struct lives across the call.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &request) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        let busy = matches!(
            err.raw_os_error(),
            Some(libc::EAGAIN | libc::EACCES | libc::EINTR)
        );
        if !busy {
            return Err(err);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "mailbox is locked"));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Streams the body, inserting `>` before every line that matches `^>*From `, and makes
/// sure it ends with a newline.
#[derive(Default)]
pub struct FromQuoter {
    /// `>` characters seen at the start of the current line and not yet written.
    pending_gt: usize,
    /// Bytes of `From ` matched after them.
    matched: usize,
    /// Whether we are past the point where the line could still need quoting.
    mid_line: bool,
    /// The last byte written, to end the message with a newline.
    last: Option<u8>,
}

const FROM: &[u8] = b"From ";

impl FromQuoter {
    /// Quote and write one chunk of the body.
    pub fn write(&mut self, mut chunk: &[u8], out: &mut dyn Write) -> io::Result<()> {
        while let Some((&byte, rest)) = chunk.split_first() {
            if self.mid_line {
                let end = chunk
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(chunk.len(), |p| p + 1);
                let (line, rest) = chunk.split_at(end);
                out.write_all(line)?;
                self.last = line.last().copied();
                self.mid_line = self.last != Some(b'\n');
                chunk = rest;
                continue;
            }
            chunk = rest;
            if self.matched == 0 && byte == b'>' {
                self.pending_gt += 1;
            } else if FROM.get(self.matched) == Some(&byte) {
                self.matched += 1;
                if self.matched == FROM.len() {
                    out.write_all(b">")?;
                    self.flush_prefix(out)?;
                    self.mid_line = true;
                }
            } else {
                self.flush_prefix(out)?;
                out.write_all(&[byte])?;
                self.last = Some(byte);
                self.mid_line = byte != b'\n';
            }
        }
        Ok(())
    }

    /// Write the `>`s and the part of `From ` held back at the start of a line.
    fn flush_prefix(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let from = FROM.get(..self.matched).unwrap_or_default();
        for _ in 0..self.pending_gt {
            out.write_all(b">")?;
        }
        out.write_all(from)?;
        if let Some(&last) = from.last() {
            self.last = Some(last);
        } else if self.pending_gt > 0 {
            self.last = Some(b'>');
        }
        self.pending_gt = 0;
        self.matched = 0;
        Ok(())
    }

    /// Write what is held back and end the body with a newline if it lacks one.
    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.flush_prefix(out)?;
        if self.last.is_some_and(|b| b != b'\n') {
            out.write_all(b"\n")?;
            self.last = Some(b'\n');
        }
        Ok(())
    }
}

/// `Sat Nov 28 20:14:18 2026` in local time, as `asctime(3)` writes it (without newline).
pub fn asctime(when: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = when
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t = libc::time_t::try_from(secs).unwrap_or(0);
    // SAFETY: an all-zero tm is valid; localtime_r fills it from our time_t.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    unsafe { libc::localtime_r(&t, &mut tm) };
    let day = usize::try_from(tm.tm_wday)
        .ok()
        .and_then(|d| DAYS.get(d))
        .unwrap_or(&"Sun");
    let month = usize::try_from(tm.tm_mon)
        .ok()
        .and_then(|m| MONTHS.get(m))
        .unwrap_or(&"Jan");
    format!(
        "{day} {month} {:2} {:02}:{:02}:{:02} {}",
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        i64::from(tm.tm_year) + 1900
    )
}
