//! User lookups and privilege drop for deliveries.

use runtime_std::delivery::user::{lookup_user, run_as_user, UserLookup};
use runtime_std::delivery::{maildir, DeliveryOutcome};
use std::os::unix::fs::MetadataExt;
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
            "user-test-{tag}-{}-{n}-{nanos}",
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

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn root_is_found_and_a_missing_user_is_not() {
    match lookup_user("root") {
        UserLookup::Found(account) => {
            assert_eq!(account.name, "root");
            assert_eq!((account.uid, account.gid), (0, 0));
            assert!(account.home.is_absolute());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(lookup_user("no-such-user-here-42"), UserLookup::NotFound);
    assert_eq!(lookup_user("bad\0name"), UserLookup::NotFound);
    assert_eq!(lookup_user(""), UserLookup::NotFound);
}

#[test]
fn not_root_runs_in_process() {
    if is_root() {
        // Covered from inside a dropped-privilege child in the test below.
        return;
    }
    let me = unsafe { libc::getuid() };
    let outcome = run_as_user(me, unsafe { libc::getgid() }, Path::new("/"), || {
        DeliveryOutcome::Delivered
    });
    assert_eq!(outcome, DeliveryOutcome::Delivered);
}

#[test]
fn as_root_the_delivery_runs_as_the_recipient() {
    if !is_root() {
        return;
    }
    let UserLookup::Found(nobody) = lookup_user("nobody") else {
        return;
    };
    let dir = TempDir::new("drop");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(nobody.uid), Some(nobody.gid)).unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let maildir = home.join("Maildir");
    let outcome = run_as_user(nobody.uid, nobody.gid, &home, || {
        let ids = unsafe {
            (
                libc::getuid(),
                libc::geteuid(),
                libc::getgid(),
                libc::getegid(),
            )
        };
        if ids != (nobody.uid, nobody.uid, nobody.gid, nobody.gid) {
            return DeliveryOutcome::PermFail(format!("wrong ids {ids:?}"));
        }
        if std::env::current_dir().unwrap() != home {
            return DeliveryOutcome::PermFail("wrong directory".into());
        }
        // Not root any more: a nested call runs in-process as this user.
        run_as_user(nobody.uid, nobody.gid, &home, || {
            maildir::deliver(&maildir, false, &mut &b"hi\n"[..])
        })
    });
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    let new: Vec<_> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(new.len(), 1);
    let meta = std::fs::metadata(&new[0]).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (nobody.uid, nobody.gid));
}

#[test]
fn as_root_failures_come_back_and_root_is_refused() {
    if !is_root() {
        return;
    }
    let outcome = run_as_user(65534, 65534, Path::new("/"), || {
        DeliveryOutcome::PermFail("x".repeat(10_000))
    });
    match outcome {
        DeliveryOutcome::PermFail(text) => assert!(text.len() < 5000 && text.starts_with("xxx")),
        other => panic!("{other:?}"),
    }
    let outcome = run_as_user(65534, 65534, Path::new("/"), || std::process::exit(3));
    assert!(
        matches!(&outcome, DeliveryOutcome::TempFail(t) if t.contains("exit status 3")),
        "{outcome:?}"
    );
    let outcome = run_as_user(0, 0, Path::new("/"), || DeliveryOutcome::Delivered);
    assert!(matches!(outcome, DeliveryOutcome::PermFail(_)));
}

#[test]
fn as_root_an_mda_command_runs_as_the_recipient() {
    if !is_root() {
        return;
    }
    use runtime_std::delivery::mda::{self, MdaCommand, MdaEnvironment, DEFAULT_PATH};
    let dir = TempDir::new("mda");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let cmd = MdaCommand {
        command: "id -u > uid.txt; cat > msg.txt".into(),
        env: MdaEnvironment {
            home: dir.path().to_path_buf(),
            user: "nobody".into(),
            path: DEFAULT_PATH.into(),
            local: "nobody".into(),
            domain: "example.org".into(),
            recipient: "nobody@example.org".into(),
            sender: String::new(),
            extension: None,
        },
        timeout: std::time::Duration::from_secs(10),
        max_stderr: 100,
    };
    let outcome = run_as_user(65534, 65534, dir.path(), || {
        mda::deliver(&cmd, &mut &b"hello\n"[..])
    });
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("uid.txt"))
            .unwrap()
            .trim(),
        "65534"
    );
    assert_eq!(
        std::fs::read(dir.path().join("msg.txt")).unwrap(),
        b"hello\n"
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("msg.txt")).unwrap().uid(),
        65534
    );
}

#[test]
fn as_root_a_queued_message_opened_before_the_drop_is_delivered() {
    if !is_root() {
        return;
    }
    use runtime_std::spool::Spool;
    let dir = TempDir::new("spool-to-maildir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (spool, _) = Spool::open(dir.path().join("spool")).unwrap();
    let mut incoming = spool.create_incoming("m1").unwrap();
    incoming
        .write_chunk(b"Subject: queued\r\n\r\nbody\r\n")
        .unwrap();
    incoming.add_envelope("e1", b"rcpt").unwrap();
    incoming.commit().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let maildir = home.join("Maildir");
    let mut message = spool.read_message("m1").unwrap();
    let outcome = run_as_user(65534, 65534, &home, move || {
        if std::fs::read_dir(spool.root()).is_ok() {
            return DeliveryOutcome::PermFail("the spool is readable after the drop".into());
        }
        maildir::deliver(&maildir, false, &mut message)
    });
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    let new: Vec<_> = std::fs::read_dir(home.join("Maildir/new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        std::fs::read(&new[0]).unwrap(),
        b"Subject: queued\n\nbody\n"
    );
}
