//! Maildir delivery: write the message, fsync it, then give it its unique name in `new/`.
//!
//! The message is written into an anonymous file of `tmp/` (`O_TMPFILE`) and linked into
//! `new/` once complete, so a reader never sees part of it and a crash leaves nothing
//! behind in `tmp/`; that also spares the fsync of `tmp/` that a named file there costs
//! (its entry is created and removed again). Where the file system or kernel has no
//! anonymous files, or `/proc` is missing, it is the classic way: a named file in `tmp/`,
//! renamed into `new/`.
//!
//! The unique name follows the maildir convention
//! `<seconds>.M<micros>P<pid>Q<counter>.<hostname>`, with `/` and `:` in the host name
//! written as `\057` and `\072` so the name stays one path component without a flag
//! separator. With the `junk` option a message whose header says `X-Spam: yes` goes to
//! the `.Junk` folder (Maildir++), created on first use. CRLF line ends are written as LF.

use super::{DeliveryOutcome, UnixLines};
use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The Maildir++ folder that receives spam with the `junk` option.
pub const JUNK_FOLDER: &str = ".Junk";

/// The longest header line inspected for `X-Spam:`; longer lines are not that header.
const MAX_HEADER_LINE: usize = 998;

/// Deliver `message` into the maildir at `maildir` (created with its `tmp/`, `new/` and
/// `cur/` if missing, mode 0700). With `junk`, a message marked `X-Spam: yes` goes to the
/// `.Junk` folder instead. Every I/O error is a temporary failure.
pub fn deliver(maildir: &Path, junk: bool, message: &mut dyn Read) -> DeliveryOutcome {
    deliver_unless(maildir, junk, message, &|| false)
}

/// [`deliver`], but `abandon` is asked once the message is written and fsynced in
/// `tmp/`, just before it is renamed into `new/`: when it says yes (the daemon that asked
/// for the delivery is gone, so the envelope stays queued and will be delivered again),
/// the copy is removed and the delivery is a temporary failure.
///
/// This is [`ensure_maildir`], then [`store`], then [`sync_dir`] of the `new/`
/// directory: one delivery on its own. Callers that deliver many messages share the last
/// step (see [`store`]).
pub fn deliver_unless(
    maildir: &Path,
    junk: bool,
    message: &mut dyn Read,
    abandon: &dyn Fn() -> bool,
) -> DeliveryOutcome {
    let stored = ensure_maildir(maildir)
        .and_then(|()| store(maildir, junk, message, abandon))
        .and_then(|new_dir| sync_dir(&new_dir));
    match stored {
        Ok(()) => DeliveryOutcome::Delivered,
        Err(e) => failure(maildir, &e),
    }
}

/// The temporary failure of a delivery into `maildir`, in the words every caller uses.
pub fn failure(maildir: &Path, error: &io::Error) -> DeliveryOutcome {
    DeliveryOutcome::from_io(&format!("maildir {}", maildir.display()), error)
}

/// The per-message part of a delivery: write `message` into `tmp/` under a unique name,
/// fsync it, ask `abandon` (see [`deliver_unless`]), rename it into `new/` (or the junk
/// folder's, see [`deliver`]) and return that `new/` directory.
///
/// The message is NOT delivered yet when this returns: its directory entry becomes
/// durable only with a [`sync_dir`] of the returned directory that starts after this
/// call. That split lets one directory fsync serve many messages (a batch, or the
/// threads of [`super::dir_sync`]). It does not create the maildir first (the caller
/// knows whether it exists, e.g. [`KnownMaildirs`]), but a missing `tmp/` or `new/`
/// (`ENOENT`) is created by [`ensure_maildir`] and the step tried once more.
///
/// # Errors
/// Any file system error; the copy in `tmp/` is removed then.
pub fn store(
    maildir: &Path,
    junk: bool,
    message: &mut dyn Read,
    abandon: &dyn Fn() -> bool,
) -> io::Result<PathBuf> {
    write_tmp(maildir, junk, message)?.finish(abandon)
}

/// The first half of [`store`]: `message` written into `tmp/` under a unique name, not
/// yet fsynced nor in `new/`. A caller with several messages writes them all (starting
/// each one's write-back, [`Written::start_writeback`]) before it finishes any, so that
/// their data reaches the disk together instead of one fsync after another.
///
/// # Errors
/// Any file system error; the copy in `tmp/` is removed then.
pub fn write_tmp(maildir: &Path, junk: bool, message: &mut dyn Read) -> io::Result<Written> {
    let name = unique_name(SystemTime::now());
    let tmp_dir = maildir.join("tmp");
    let (mut file, scratch) = match create_scratch(&tmp_dir, &name) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            ensure_maildir(maildir)?;
            create_scratch(&tmp_dir, &name)?
        }
        other => other?,
    };
    let mut written = Written {
        file: None,
        scratch,
        name,
        folder: maildir.to_path_buf(),
    };
    // On an error, dropping `written` removes a named copy.
    let spam = copy_scanning(&mut UnixLines::new(message), &mut file)?;
    if junk && spam {
        written.folder = maildir.join(JUNK_FOLDER);
    }
    written.file = Some(file);
    Ok(written)
}

/// Where a message being written lives until it gets its name in `new/`.
#[derive(Debug)]
enum Scratch {
    /// An anonymous file (`O_TMPFILE`), linked into `new/` through `/proc/self/fd`.
    Anonymous,
    /// A named file in `tmp/`, renamed into `new/`; emptied once renamed.
    Named(PathBuf),
}

/// A message in `tmp/` ([`write_tmp`]), to be finished ([`Written::finish`]); dropped
/// unfinished, it is removed.
#[derive(Debug)]
pub struct Written {
    /// Open until finished.
    file: Option<File>,
    scratch: Scratch,
    name: String,
    /// The maildir (or junk folder) whose `new/` receives it.
    folder: PathBuf,
}

impl Written {
    /// Ask the kernel to start writing the file's data now, without waiting, so that
    /// the fsync of [`Written::finish`] finds it (mostly) written.
    pub fn start_writeback(&self) {
        use std::os::fd::AsRawFd;
        if let Some(file) = &self.file {
            // SAFETY: a hint on a descriptor we own; errors show in the later fsync.
            unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        }
    }

    /// The file being written, for a caller that makes several durable at once.
    pub fn file(&self) -> Option<&File> {
        self.file.as_ref()
    }

    /// The second half of [`store`]: fsync the file, ask `abandon` (see
    /// [`deliver_unless`]), give it its name in `new/` and return that directory, whose
    /// fsync makes the delivery durable.
    ///
    /// # Errors
    /// Any file system error, or the abandon; the file is removed then.
    pub fn finish(self, abandon: &dyn Fn() -> bool) -> io::Result<PathBuf> {
        if let Some(file) = &self.file {
            file.sync_all()?;
        }
        self.finish_flushed(abandon)
    }

    /// [`Written::finish`] without the file's own fsync, for a caller that has made it
    /// durable since it was written, with others ([`super::batch_flush`]).
    ///
    /// # Errors
    /// As [`Written::finish`].
    pub fn finish_flushed(mut self, abandon: &dyn Fn() -> bool) -> io::Result<PathBuf> {
        if abandon() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "delivery abandoned: the daemon is gone",
            ));
        }
        let new_dir = self.folder.join("new");
        let target = new_dir.join(&self.name);
        match self.publish(&target) {
            // The junk folder is created on first use; a maildir may lose `new/` meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                ensure_maildir(&self.folder)?;
                self.publish(&target)?;
            }
            other => other?,
        }
        // Published: nothing left in tmp/ to remove.
        self.scratch = Scratch::Anonymous;
        Ok(new_dir)
    }

    /// Give the written file the name `target` in one step.
    fn publish(&self, target: &Path) -> io::Result<()> {
        match (&self.scratch, &self.file) {
            (Scratch::Named(tmp_path), _) => fs::rename(tmp_path, target),
            (Scratch::Anonymous, Some(file)) => link_anonymous(file, target),
            (Scratch::Anonymous, None) => Err(io::Error::other("maildir file already closed")),
        }
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        drop(self.file.take());
        if let Scratch::Named(tmp_path) = &self.scratch {
            let _ = fs::remove_file(tmp_path);
        }
    }
}

/// Open the file the message is written into: anonymous in `tmp_dir` where the system
/// allows it, else `tmp_dir/name`.
fn create_scratch(tmp_dir: &Path, name: &str) -> io::Result<(File, Scratch)> {
    if anonymous_files_usable() {
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o600)
            .open(tmp_dir)
        {
            Ok(file) => return Ok((file, Scratch::Anonymous)),
            // No O_TMPFILE here (old kernel, or a file system without it): the named way.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let path = tmp_dir.join(name);
    let file = crate::spool::create_private_file(&path)?;
    Ok((file, Scratch::Named(path)))
}

/// Whether an anonymous file can be linked by name: through `linkat(2)` with
/// `AT_EMPTY_PATH` (Linux 6.10 and later allow it to the file's opener) or else through
/// `/proc/self/fd`.
fn anonymous_files_usable() -> bool {
    static USABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USABLE.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Whether `linkat(2)` with `AT_EMPTY_PATH` was refused here (older kernels ask for a
/// capability the recipient's process lacks), so `/proc/self/fd` is used instead.
static EMPTY_PATH_REFUSED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Link the anonymous file `file` as `target`.
fn link_anonymous(file: &File, target: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    let target = crate::spool::c_path(target)?;
    let link = |dirfd: libc::c_int, source: &std::ffi::CStr, flags: libc::c_int| {
        // SAFETY: both paths are NUL-terminated and live for the call; the descriptor is
        // open for its duration.
        let rc = unsafe {
            libc::linkat(
                dirfd,
                source.as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                flags,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    if !EMPTY_PATH_REFUSED.load(Ordering::Relaxed) {
        match link(file.as_raw_fd(), c"", libc::AT_EMPTY_PATH) {
            // Refused for want of the capability is ENOENT (or EPERM): tell it from a
            // missing `new/` by trying the other way.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EPERM)) => {}
            other => return other,
        }
    }
    let source = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::other("descriptor path with a NUL byte"))?;
    link(libc::AT_FDCWD, &source, libc::AT_SYMLINK_FOLLOW)?;
    EMPTY_PATH_REFUSED.store(true, Ordering::Relaxed);
    Ok(())
}

/// Fsync the directory `dir`: after it, the entries renamed into it before the call
/// started survive a crash.
///
/// # Errors
/// When the directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The most maildirs a [`KnownMaildirs`] remembers; past it, it starts over.
const MAX_KNOWN: usize = 1024;

/// Maildirs this process has already checked with [`ensure_maildir`], so that each
/// delivery into one does not repeat its four `mkdir` attempts. A maildir removed
/// meanwhile is recreated by [`store`] (on `ENOENT`); forgetting is never wrong.
#[derive(Default, Debug)]
pub struct KnownMaildirs {
    known: HashSet<PathBuf>,
}

impl KnownMaildirs {
    /// An empty memory.
    pub fn new() -> KnownMaildirs {
        KnownMaildirs::default()
    }

    /// [`ensure_maildir`] the first time `dir` is seen; nothing afterwards.
    ///
    /// # Errors
    /// Those of [`ensure_maildir`]; `dir` is not remembered then.
    pub fn ensure(&mut self, dir: &Path) -> io::Result<()> {
        if !self.knows(dir) {
            ensure_maildir(dir)?;
            self.remember(dir);
        }
        Ok(())
    }

    /// Whether `dir` was checked already.
    pub fn knows(&self, dir: &Path) -> bool {
        self.known.contains(dir)
    }

    /// Remember that `dir` was checked (for callers that check it without holding this
    /// memory, e.g. under a lock shared by threads).
    pub fn remember(&mut self, dir: &Path) {
        if self.known.len() >= MAX_KNOWN {
            self.known.clear();
        }
        self.known.insert(dir.to_path_buf());
    }
}

/// Create `dir` with `tmp/`, `new/` and `cur/` (mode 0700) where missing.
pub fn ensure_maildir(dir: &Path) -> io::Result<()> {
    let mut created = false;
    for sub in [PathBuf::new(), "tmp".into(), "new".into(), "cur".into()] {
        let path = dir.join(sub);
        match DirBuilder::new().recursive(false).mode(0o700).create(&path) {
            Ok(()) => created = true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&path)?;
                created = true;
            }
            Err(e) => return Err(e),
        }
    }
    if created {
        File::open(dir)?.sync_all()?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// A name unique to this host, process and delivery, per the maildir convention.
pub fn unique_name(now: SystemTime) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{}.{}",
        since.as_secs(),
        since.subsec_micros(),
        std::process::id(),
        counter,
        sanitized_hostname()
    )
}

/// This host's name with `/` and `:` escaped as maildir readers expect.
fn sanitized_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let raw = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).into_owned()
    } else {
        String::new()
    };
    let host = if raw.is_empty() {
        "localhost".to_owned()
    } else {
        raw
    };
    host.replace('/', "\\057").replace(':', "\\072")
}

/// Copy `message` to `out`, watching the header section for `X-Spam: yes`.
fn copy_scanning(message: &mut dyn Read, out: &mut File) -> io::Result<bool> {
    let mut scanner = SpamScanner::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match message.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        scanner.feed(chunk);
        out.write_all(chunk)?;
    }
    Ok(scanner.spam)
}

/// Finds an `X-Spam: yes` header line (case-insensitive) before the first empty line.
#[derive(Default)]
struct SpamScanner {
    line: Vec<u8>,
    overlong: bool,
    body: bool,
    spam: bool,
}

impl SpamScanner {
    fn feed(&mut self, chunk: &[u8]) {
        for &byte in chunk {
            if self.body {
                return;
            }
            if byte == b'\n' {
                self.end_line();
            } else if self.line.len() < MAX_HEADER_LINE {
                self.line.push(byte);
            } else {
                self.overlong = true;
            }
        }
    }

    fn end_line(&mut self) {
        let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        if line.is_empty() {
            self.body = true;
        } else if !self.overlong && is_spam_header(line) {
            self.spam = true;
        }
        self.line.clear();
        self.overlong = false;
    }
}

fn is_spam_header(line: &[u8]) -> bool {
    const NAME: &[u8] = b"x-spam:";
    match line.get(..NAME.len()) {
        Some(name) if name.eq_ignore_ascii_case(NAME) => {
            let value = line.get(NAME.len()..).unwrap_or_default().trim_ascii();
            value
                .get(..3)
                .is_some_and(|v| v.eq_ignore_ascii_case(b"yes"))
        }
        _ => false,
    }
}
