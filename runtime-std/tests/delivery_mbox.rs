//! Mbox delivery: the From line, `>From ` quoting, the lock and truncation on failure.

use runtime_std::delivery::mbox::{self, FromQuoter};
use runtime_std::delivery::DeliveryOutcome;
use std::io::{self, Read};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "mbox-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn quote(input: &[u8], split: usize) -> Vec<u8> {
    let mut quoter = FromQuoter::default();
    let mut out = Vec::new();
    for chunk in input.chunks(split.max(1)) {
        quoter.write(chunk, &mut out).unwrap();
    }
    quoter.finish(&mut out).unwrap();
    out
}

#[test]
fn from_lines_are_quoted_at_any_split() {
    let input = b"From me\nFrom \n>From x\n>>From y\nFro\n>Frog\n From z\nmid From w\n>\nFrom";
    let expected =
        b">From me\n>From \n>>From x\n>>>From y\nFro\n>Frog\n From z\nmid From w\n>\nFrom\n";
    for split in 1..input.len() + 1 {
        assert_eq!(quote(input, split), expected, "split {split}");
    }
    assert_eq!(quote(b"", 1), b"");
    assert_eq!(quote(b"line\n", 3), b"line\n");
}

#[test]
fn appends_with_from_line_and_blank_line() {
    let dir = TempDir::new("append");
    let path = dir.path().join("alice");
    let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let outcome = mbox::deliver(
        &path,
        "bob@example.net",
        when,
        &mut &b"Subject: a\n\nFrom here\n"[..],
        Duration::from_secs(1),
    );
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    let outcome = mbox::deliver(
        &path,
        "",
        when,
        &mut &b"Subject: b\n\nno newline"[..],
        Duration::from_secs(1),
    );
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    let date = mbox::asctime(when);
    let expected = format!(
        "From bob@example.net {date}\nSubject: a\n\n>From here\n\nFrom MAILER-DAEMON {date}\nSubject: b\n\nno newline\n\n"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn asctime_has_the_fixed_layout() {
    let text = mbox::asctime(SystemTime::now());
    assert_eq!(text.len(), 24, "{text}");
    let fields: Vec<_> = text.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{text}");
    assert_eq!(fields[3].len(), 8, "{text}");
}

/// A reader that yields some bytes and then fails.
struct FailingReader(usize);

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::other("spool read failed"));
        }
        let n = self.0.min(buf.len());
        buf[..n].fill(b'x');
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn failure_truncates_back_to_the_original_length() {
    let dir = TempDir::new("truncate");
    let path = dir.path().join("alice");
    std::fs::write(&path, b"From old Thu Jan  1 00:00:00 1970\nold\n\n").unwrap();
    let before = std::fs::read(&path).unwrap();
    let outcome = mbox::deliver(
        &path,
        "bob@x",
        SystemTime::now(),
        &mut FailingReader(200_000),
        Duration::from_secs(1),
    );
    match outcome {
        DeliveryOutcome::TempFail(text) => assert!(text.contains("spool read failed"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_held_lock_makes_delivery_wait_then_fail_temporarily() {
    let dir = TempDir::new("lock");
    let path = dir.path().join("alice");
    std::fs::write(&path, b"").unwrap();
    let holder = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = libc::F_WRLCK as libc::c_short;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    assert_eq!(
        unsafe { libc::fcntl(holder.as_raw_fd(), libc::F_OFD_SETLK, &request) },
        0
    );
    let start = std::time::Instant::now();
    let outcome = mbox::deliver(
        &path,
        "b@x",
        SystemTime::now(),
        &mut &b"x\n"[..],
        Duration::from_millis(200),
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(
        matches!(&outcome, DeliveryOutcome::TempFail(t) if t.contains("locked")),
        "{outcome:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    drop(holder);
    let outcome = mbox::deliver(
        &path,
        "b@x",
        SystemTime::now(),
        &mut &b"x\n"[..],
        Duration::from_millis(200),
    );
    assert_eq!(outcome, DeliveryOutcome::Delivered);
}

#[test]
fn concurrent_threads_never_interleave_messages() {
    let dir = TempDir::new("threads");
    let path = dir.path().join("alice");
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    let body = format!("{t}-{i}\n").repeat(5000);
                    let outcome = mbox::deliver(
                        &path,
                        "b@x",
                        SystemTime::now(),
                        &mut body.as_bytes(),
                        Duration::from_secs(30),
                    );
                    assert_eq!(outcome, DeliveryOutcome::Delivered);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let messages: Vec<_> = text.split("From b@x ").filter(|m| !m.is_empty()).collect();
    assert_eq!(messages.len(), 120);
    for message in messages {
        let mut lines = message.lines().skip(1).filter(|l| !l.is_empty());
        let first = lines.next().unwrap();
        assert!(lines.all(|l| l == first), "interleaved message");
    }
}

#[test]
fn symlinks_are_refused_and_mailboxes_are_created_for_the_user() {
    let dir = TempDir::new("symlink");
    let target = dir.path().join("target");
    std::fs::write(&target, b"precious").unwrap();
    let link = dir.path().join("alice");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let outcome = mbox::deliver(
        &link,
        "b@x",
        SystemTime::now(),
        &mut &b"x\n"[..],
        Duration::from_secs(1),
    );
    assert!(
        matches!(outcome, DeliveryOutcome::TempFail(_)),
        "{outcome:?}"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert!(
        mbox::create_mailbox(&link, 1, 1).is_ok(),
        "an existing entry is left alone"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");

    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let (uid, gid) = if uid == 0 { (65534, 65534) } else { (uid, gid) };
    let fresh = dir.path().join("bob");
    mbox::create_mailbox(&fresh, uid, gid).unwrap();
    let meta = std::fs::metadata(&fresh).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777, meta.len()),
        (uid, gid, 0o600, 0)
    );
}
