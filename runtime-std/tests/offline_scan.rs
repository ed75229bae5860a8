//! The daemon's scan of the offline directory: files `sendmail` left are enqueued and
//! removed on a 250, kept on a temporary failure, set aside (never deleted) when
//! refused for good, undecodable, too large, a link or not a regular file, and a file
//! that names another user than its owner is enqueued as its owner.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use mta_core::control::{OfflineMessage, Submission};
use runtime_std::control::offline::{leave_offline, OFFLINE_DIR_MODE};
use runtime_std::control::sendmail::{parse_args, sender_from_user};
use runtime_std::delivery::user::{lookup_uid, UserLookup};
use runtime_std::server::log::Log;
use runtime_std::server::offline::{
    setup_dir, Enqueued, OfflineScan, ScanCounts, CORRUPT_PREFIX, REFUSED_PREFIX,
};

/// A fresh offline directory for one test.
fn fresh_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("offline-scan-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    setup_dir(&dir, None).expect("offline directory");
    dir
}

fn my_name() -> String {
    // SAFETY: geteuid has no preconditions.
    match lookup_uid(unsafe { libc::geteuid() }) {
        UserLookup::Found(a) => a.name,
        other => panic!("no account for this test's user: {other:?}"),
    }
}

fn message(user: &str, sender_is_user: bool) -> OfflineMessage {
    OfflineMessage {
        user: user.to_owned(),
        sender_is_user,
        submission: Submission {
            sender: format!("{user}@host.example"),
            recipients: vec!["bob@example.org".to_owned()],
            message: b"Subject: offline\n\nbody\n".to_vec(),
        },
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Scans `dir` once, answering every message with `answer`; returns what the enqueuer
/// was handed.
fn scan(dir: &Path, answer: Enqueued) -> (ScanCounts, Vec<OfflineMessage>) {
    let scanner = OfflineScan::new(dir.to_path_buf(), 64 * 1024, "host.example".to_owned());
    let mut seen = Vec::new();
    let counts = scanner.scan(&Log::quiet(), &mut |m| {
        seen.push(m.clone());
        answer.clone()
    });
    (counts, seen)
}

#[test]
fn the_directory_is_sticky_shared_and_never_a_link() {
    let dir = fresh_dir("mode");
    let mode = std::fs::symlink_metadata(&dir).expect("stat").mode() & 0o7777;
    assert_eq!(mode, OFFLINE_DIR_MODE);
    let link = dir.with_extension("link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&dir, &link).expect("symlink");
    assert!(setup_dir(&link, None).is_err(), "a link is not taken over");
    std::fs::remove_file(&link).expect("remove link");
    std::fs::remove_dir_all(&dir).expect("clean");
}

#[test]
fn accepted_files_go_failed_ones_stay_refused_ones_are_set_aside() {
    let dir = fresh_dir("outcomes");
    let me = my_name();
    let path = leave_offline(&dir, &message(&me, true)).expect("left");
    std::fs::write(dir.join(".being-written"), b"partial").expect("temp");

    let (counts, seen) = scan(&dir, Enqueued::Failed("451 try later".to_owned()));
    assert_eq!(counts.kept, 1);
    assert_eq!(
        seen,
        vec![message(&me, true)],
        "temporary files are skipped"
    );
    assert!(path.exists(), "a temporary failure keeps the file");

    let (counts, _) = scan(&dir, Enqueued::Accepted("250 queued".to_owned()));
    assert_eq!(counts.enqueued, 1);
    assert_eq!(names(&dir), vec![".being-written".to_owned()]);

    let path = leave_offline(&dir, &message(&me, true)).expect("left");
    let (counts, _) = scan(&dir, Enqueued::Refused("550 no such user".to_owned()));
    assert_eq!(counts.set_aside, 1);
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(dir.join(format!("{REFUSED_PREFIX}{name}")).exists());
    let (counts, seen) = scan(&dir, Enqueued::Accepted("250".to_owned()));
    assert_eq!(
        (counts, seen.len()),
        (ScanCounts::default(), 0),
        "never tried again"
    );
    std::fs::remove_dir_all(&dir).expect("clean");
}

#[test]
fn another_users_name_is_replaced_by_the_owners() {
    let dir = fresh_dir("owner");
    let me = my_name();
    leave_offline(&dir, &message("mallory-not-me", true)).expect("left");
    let (_, seen) = scan(&dir, Enqueued::Accepted("250".to_owned()));
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].user, me);
    assert_eq!(seen[0].submission.sender, format!("{me}@host.example"));

    // A sender the user gave (-f, From:) is theirs to give, as with sendmail online.
    leave_offline(&dir, &message("mallory-not-me", false)).expect("left");
    let (_, seen) = scan(&dir, Enqueued::Accepted("250".to_owned()));
    assert_eq!(seen[0].user, me);
    assert_eq!(seen[0].submission.sender, "mallory-not-me@host.example");
    std::fs::remove_dir_all(&dir).expect("clean");
}

#[test]
fn unusable_files_are_set_aside_unread() {
    let dir = fresh_dir("unusable");
    let secret = dir.with_extension("secret");
    std::fs::write(&secret, b"not for the daemon").expect("secret");
    std::os::unix::fs::symlink(&secret, dir.join("link")).expect("symlink");
    std::fs::write(dir.join("garbage"), b"From: x\n\nnot an offline file\n").expect("garbage");
    std::fs::write(dir.join("huge"), vec![b'x'; 65 * 1024]).expect("huge");
    let kept = leave_offline(&dir, &message(&my_name(), true)).expect("left");
    std::fs::hard_link(&kept, dir.join("linked")).expect("hard link");
    let fifo = CString::new(dir.join("fifo").as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) }, 0);

    let (counts, seen) = scan(&dir, Enqueued::Accepted("250".to_owned()));
    assert!(
        seen.is_empty(),
        "nothing unusable reaches the enqueuer: {seen:?}"
    );
    assert_eq!(
        counts.set_aside, 6,
        "link, garbage, huge, fifo and both hard links"
    );
    for name in names(&dir) {
        assert!(name.starts_with(CORRUPT_PREFIX), "{name} left in place");
    }
    assert_eq!(
        std::fs::read(&secret).expect("secret"),
        b"not for the daemon"
    );
    std::fs::remove_dir_all(&dir).expect("clean");
    std::fs::remove_file(&secret).expect("clean");
}

#[test]
fn an_unreadable_directory_is_logged_not_fatal() {
    let dir = std::env::temp_dir().join(format!("offline-scan-none-{}", std::process::id()));
    let (counts, seen) = scan(&dir, Enqueued::Accepted("250".to_owned()));
    assert_eq!((counts, seen.len()), (ScanCounts::default(), 0));
}

#[test]
fn the_sender_comes_from_the_user_only_without_f_or_from() {
    let none = parse_args(&["bob".to_owned()]).expect("args");
    let with_f = parse_args(&["-f".to_owned(), "a@b".to_owned(), "bob".to_owned()]).expect("args");
    assert!(sender_from_user(&none, b"Subject: x\n\nbody\n"));
    assert!(!sender_from_user(&with_f, b"Subject: x\n\nbody\n"));
    assert!(!sender_from_user(&none, b"From: A <a@b>\n\nbody\n"));
    assert!(sender_from_user(&none, b"Subject: x\n\nFrom: a@b\n"));
}
