//! Recipient accounts and privileges: `getpwnam_r` lookups, and running a delivery with
//! the recipient's identity.
//!
//! When the process is root, [`run_as_user`] forks a child that drops to the recipient's
//! group and user (`setgroups`, `setgid`, `setuid`, in that order, checked afterwards),
//! changes to the home directory and runs the delivery there; its outcome comes back
//! over a pipe. A delivery never runs as root: uid 0 is refused. When the process is not
//! root it cannot change identity, so every delivery runs in-process as the current user
//! (the files it creates belong to that user; a home it cannot write fails temporarily).
//! A process forked for one delivery only (a child of the fork server) calls
//! [`drop_in_place`] first: it then becomes the recipient itself instead of forking again.

use super::DeliveryOutcome;
use std::ffi::{CStr, CString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};

/// Set in a process that exists for one delivery and exits after it: [`run_as_user`]
/// drops privileges in this process rather than in a forked child (one fork less per
/// delivery).
static DROP_IN_PLACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`run_as_user`] change this process's identity instead of forking: only for a
/// single-threaded process that performs one delivery and then exits (it can never get
/// its privileges back).
pub fn drop_in_place() {
    DROP_IN_PLACE.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// A local account as `getpwnam(3)` describes it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The home directory.
    pub home: PathBuf,
    /// The login shell.
    pub shell: PathBuf,
}

/// The answer of a user lookup.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum UserLookup {
    /// The account exists.
    Found(Account),
    /// No such account: the recipient is unknown (a permanent 550 5.1.1).
    NotFound,
    /// The user database could not be read now (a 451 4.3.0, retry later).
    TempFail(String),
}

/// The largest buffer offered to `getpwnam_r` before giving up.
const MAX_PASSWD_BUFFER: usize = 1 << 20;

/// Look `name` up in the system's user database with `getpwnam_r`, telling a missing
/// account (result 0, `ENOENT`, `ESRCH`, `EBADF`, `EPERM`) apart from a transient error.
pub fn lookup_user(name: &str) -> UserLookup {
    let Ok(c_name) = CString::new(name) else {
        return UserLookup::NotFound;
    };
    lookup_with(&format!("{name:?}"), |pwd, buf, len, result| {
        // SAFETY: every pointer is valid for the call (see `lookup_with`).
        unsafe { libc::getpwnam_r(c_name.as_ptr(), pwd, buf, len, result) }
    })
}

/// Look the account of `uid` up with `getpwuid_r`, with the same answers as
/// [`lookup_user`].
pub fn lookup_uid(uid: u32) -> UserLookup {
    lookup_with(&format!("uid {uid}"), |pwd, buf, len, result| {
        // SAFETY: every pointer is valid for the call (see `lookup_with`).
        unsafe { libc::getpwuid_r(uid, pwd, buf, len, result) }
    })
}

/// The buffer growth and error mapping shared by the `getpw*_r` lookups: `call` gets a
/// zeroed passwd, a buffer and its length, and the result pointer to fill.
fn lookup_with(
    what: &str,
    call: impl Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> libc::c_int,
) -> UserLookup {
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: an all-zero passwd is a valid value for getpw*_r to fill.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // buf outlives every use of pwd below.
        let rc = call(&mut pwd, buf.as_mut_ptr().cast(), buf.len(), &mut result);
        if rc == libc::ERANGE && size < MAX_PASSWD_BUFFER {
            size = size.saturating_mul(4);
            continue;
        }
        return match rc {
            0 if result.is_null() => UserLookup::NotFound,
            // SAFETY: on success the strings point into buf, which is still alive.
            0 => UserLookup::Found(unsafe { account_from(&pwd) }),
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => UserLookup::NotFound,
            code => UserLookup::TempFail(format!(
                "user lookup of {what} failed: {}",
                std::io::Error::from_raw_os_error(code)
            )),
        };
    }
}

/// # Safety
/// The string pointers of `pwd` must be null or point to live NUL-terminated strings.
unsafe fn account_from(pwd: &libc::passwd) -> Account {
    let text = |ptr: *const libc::c_char| {
        if ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { CStr::from_ptr(ptr) }.to_bytes().to_vec()
        }
    };
    Account {
        name: String::from_utf8_lossy(&text(pwd.pw_name)).into_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home: PathBuf::from(std::ffi::OsString::from_vec(text(pwd.pw_dir))),
        shell: PathBuf::from(std::ffi::OsString::from_vec(text(pwd.pw_shell))),
    }
}

/// The most bytes of failure text a delivery child sends back.
const MAX_REPORT: usize = 4096;

/// Run `delivery` as user `uid`/`gid` in directory `home`: in a forked child that drops
/// privileges when the process is root (uid 0 is refused with a permanent failure), or
/// in-process as the current user otherwise (see the module documentation).
///
/// Open the message (e.g. [`crate::spool::Spool::read_message`]) before calling and move
/// the file into `delivery`: the child inherits the open file and needs no access to the
/// spool, which only the daemon's user can read.
///
/// The child of a multi-threaded process may only rely on a fork-safe allocator (glibc's
/// is); it writes the outcome back and exits without running destructors.
pub fn run_as_user<F>(uid: u32, gid: u32, home: &Path, delivery: F) -> DeliveryOutcome
where
    F: FnOnce() -> DeliveryOutcome,
{
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return delivery();
    }
    if uid == 0 {
        return DeliveryOutcome::PermFail("refusing to deliver as root".to_owned());
    }
    let Ok(c_home) = CString::new(home.as_os_str().as_bytes()) else {
        return DeliveryOutcome::PermFail("home directory contains a NUL byte".to_owned());
    };
    if DROP_IN_PLACE.load(std::sync::atomic::Ordering::SeqCst) {
        return match drop_privileges(uid, gid, &c_home) {
            Ok(()) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(delivery))
                .unwrap_or_else(|_| {
                    DeliveryOutcome::TempFail("delivery process panicked".to_owned())
                }),
            Err(reason) => DeliveryOutcome::TempFail(reason),
        };
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return DeliveryOutcome::from_io("cannot create pipe", &std::io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    // SAFETY: fork has no memory preconditions; the child only runs the code below.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let err = std::io::Error::last_os_error();
        // SAFETY: both descriptors are ours and open.
        unsafe {
            libc::close(read_end);
            libc::close(write_end);
        }
        return DeliveryOutcome::from_io("cannot fork delivery process", &err);
    }
    if pid == 0 {
        // SAFETY: in the child: the read end is ours to close.
        unsafe { libc::close(read_end) };
        let outcome = match drop_privileges(uid, gid, &c_home) {
            Ok(()) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(delivery))
                .unwrap_or_else(|_| {
                    DeliveryOutcome::TempFail("delivery process panicked".to_owned())
                }),
            Err(reason) => DeliveryOutcome::TempFail(reason),
        };
        let report = encode(&outcome);
        write_all_raw(write_end, &report);
        // SAFETY: leave at once, without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: in the parent: the write end is ours to close, the read end becomes a File.
    unsafe { libc::close(write_end) };
    // SAFETY: read_end is an open descriptor owned by nobody else.
    let mut reader = unsafe { std::fs::File::from_raw_fd(read_end) };
    let mut report = Vec::new();
    let read = (&mut reader)
        .take(MAX_REPORT as u64 + 1)
        .read_to_end(&mut report);
    drop(reader);
    let status = wait_child(pid);
    match (read, decode(&report)) {
        (Ok(_), Some(outcome)) => outcome,
        _ => DeliveryOutcome::TempFail(format!("delivery process failed ({status})")),
    }
}

/// In the child: switch to the recipient's groups, group and user, and check it stuck.
fn drop_privileges(uid: u32, gid: u32, home: &CStr) -> Result<(), String> {
    let groups = [gid];
    // SAFETY: plain system calls on values we own.
    unsafe {
        if libc::setgroups(1, groups.as_ptr()) != 0 {
            return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
        }
        if libc::setgid(gid) != 0 {
            return Err(format!("setgid: {}", std::io::Error::last_os_error()));
        }
        if libc::setuid(uid) != 0 {
            return Err(format!("setuid: {}", std::io::Error::last_os_error()));
        }
        if libc::getuid() != uid
            || libc::geteuid() != uid
            || libc::getegid() != gid
            || libc::setuid(0) == 0
        {
            return Err("privileges were not dropped".to_owned());
        }
        if libc::chdir(home.as_ptr()) != 0 {
            let root = c"/";
            libc::chdir(root.as_ptr());
        }
    }
    Ok(())
}

fn write_all_raw(fd: libc::c_int, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        match usize::try_from(n) {
            Ok(n) if n > 0 => bytes = bytes.get(n..).unwrap_or_default(),
            _ => return,
        }
    }
}

/// Wait for the child and describe how it ended.
fn wait_child(pid: libc::pid_t) -> String {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: status is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return "cannot wait for it".to_owned();
        }
    }
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit status {}", libc::WEXITSTATUS(status))
    }
}

fn encode(outcome: &DeliveryOutcome) -> Vec<u8> {
    let (tag, text) = match outcome {
        DeliveryOutcome::Delivered => (b'D', ""),
        DeliveryOutcome::TempFail(text) => (b'T', text.as_str()),
        DeliveryOutcome::PermFail(text) => (b'P', text.as_str()),
    };
    let mut report = vec![tag];
    let mut end = text.len().min(MAX_REPORT - 1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    report.extend_from_slice(text.get(..end).unwrap_or_default().as_bytes());
    report
}

fn decode(report: &[u8]) -> Option<DeliveryOutcome> {
    let (&tag, text) = report.split_first()?;
    let text = String::from_utf8_lossy(text).into_owned();
    match tag {
        b'D' => Some(DeliveryOutcome::Delivered),
        b'T' => Some(DeliveryOutcome::TempFail(text)),
        b'P' => Some(DeliveryOutcome::PermFail(text)),
        _ => None,
    }
}
