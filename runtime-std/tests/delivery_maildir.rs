//! Maildir delivery: byte-exact files, unique names under concurrency, the junk folder.

use runtime_std::delivery::maildir::{self, JUNK_FOLDER};
use runtime_std::delivery::DeliveryOutcome;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
            "maildir-test-{tag}-{}-{n}-{nanos}",
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

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn creates_the_maildir_and_stores_the_message_byte_exact() {
    let dir = TempDir::new("exact");
    let maildir = dir.path().join("home/Maildir");
    let message: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let outcome = maildir::deliver(&maildir, false, &mut message.as_slice());
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    for sub in ["tmp", "new", "cur"] {
        let meta = std::fs::metadata(maildir.join(sub)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o700
        );
    }
    let delivered = files_in(&maildir.join("new"));
    assert_eq!(delivered.len(), 1);
    assert_eq!(std::fs::read(&delivered[0]).unwrap(), message);
    assert!(files_in(&maildir.join("tmp")).is_empty());
    let name = delivered[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let (secs, rest) = name.split_once(".M").unwrap();
    assert!(secs.parse::<u64>().is_ok(), "{name}");
    assert!(
        rest.contains(&format!("P{}Q", std::process::id())),
        "{name}"
    );
    assert!(!name.contains('/') && !name.contains(':'), "{name}");
}

#[test]
fn concurrent_deliveries_get_unique_names() {
    let dir = TempDir::new("concurrent");
    let maildir = dir.path().join("Maildir");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let maildir = maildir.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let body = format!("Subject: {t}/{i}\n\nbody {t} {i}\n");
                    let outcome = maildir::deliver(&maildir, false, &mut body.as_bytes());
                    assert_eq!(outcome, DeliveryOutcome::Delivered);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let delivered = files_in(&maildir.join("new"));
    assert_eq!(delivered.len(), 200);
    let bodies: HashSet<_> = delivered
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(bodies.len(), 200);
}

#[test]
fn spam_goes_to_the_junk_folder_only_with_the_option() {
    let dir = TempDir::new("junk");
    let maildir = dir.path().join("Maildir");
    let spam = b"From: a@b\r\nx-spam:  YES\r\nSubject: buy\r\n\r\nbody\r\n";
    let ham = b"From: a@b\r\nSubject: hi\r\n\r\nX-Spam: yes\r\n";
    assert!(maildir::deliver(&maildir, true, &mut &spam[..]).is_delivered());
    assert!(maildir::deliver(&maildir, true, &mut &ham[..]).is_delivered());
    assert!(maildir::deliver(&maildir, false, &mut &spam[..]).is_delivered());
    let junk = files_in(&maildir.join(JUNK_FOLDER).join("new"));
    assert_eq!(junk.len(), 1);
    assert_eq!(
        std::fs::read(&junk[0]).unwrap(),
        b"From: a@b\nx-spam:  YES\nSubject: buy\n\nbody\n"
    );
    assert!(maildir.join(JUNK_FOLDER).join("cur").is_dir());
    assert_eq!(files_in(&maildir.join("new")).len(), 2);
}

#[test]
fn unwritable_maildir_is_a_temporary_failure() {
    let dir = TempDir::new("unwritable");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let outcome = maildir::deliver(&blocker.join("Maildir"), false, &mut &b"x"[..]);
    assert!(
        matches!(outcome, DeliveryOutcome::TempFail(_)),
        "{outcome:?}"
    );
}

#[test]
fn unique_names_differ_within_one_microsecond() {
    let now = SystemTime::now();
    let a = maildir::unique_name(now);
    let b = maildir::unique_name(now);
    assert_ne!(a, b);
}

#[test]
fn a_message_is_invisible_until_finished_and_leaves_nothing_when_dropped() {
    let dir = TempDir::new("scratch");
    let maildir = dir.path().join("Maildir");
    maildir::ensure_maildir(&maildir).unwrap();
    let written = maildir::write_tmp(&maildir, false, &mut &b"Subject: a\n\nbody\n"[..]).unwrap();
    // On Linux with /proc the copy is an anonymous file: no name anywhere yet.
    assert!(files_in(&maildir.join("tmp")).is_empty());
    assert!(files_in(&maildir.join("new")).is_empty());
    drop(written);
    assert!(files_in(&maildir.join("tmp")).is_empty());
    assert!(files_in(&maildir.join("new")).is_empty());

    let written = maildir::write_tmp(&maildir, false, &mut &b"Subject: b\n\nbody\n"[..]).unwrap();
    let abandoned = written.finish(&|| true).unwrap_err();
    assert_eq!(abandoned.kind(), std::io::ErrorKind::Interrupted);
    assert!(files_in(&maildir.join("tmp")).is_empty());
    assert!(files_in(&maildir.join("new")).is_empty());
}

#[test]
fn a_new_directory_lost_while_writing_is_recreated_at_finish() {
    let dir = TempDir::new("lost-new");
    let maildir = dir.path().join("Maildir");
    maildir::ensure_maildir(&maildir).unwrap();
    let written =
        maildir::write_tmp(&maildir, false, &mut &b"Subject: c\r\n\r\nbody\r\n"[..]).unwrap();
    std::fs::remove_dir(maildir.join("new")).unwrap();
    let new_dir = written.finish(&|| false).unwrap();
    assert_eq!(new_dir, maildir.join("new"));
    let delivered = files_in(&new_dir);
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        std::fs::read(&delivered[0]).unwrap(),
        b"Subject: c\n\nbody\n"
    );
}
