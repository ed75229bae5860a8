use super::*;
use crate::server::delivery_worker::LocalJob;
use mta_core::expand::LocalUser;
use std::io::{Seek, Write};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let path = std::env::temp_dir().join(format!("smtpd-agent-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).expect("dir");
    Dir(path)
}

fn user(uid: u32) -> LocalUser {
    LocalUser {
        name: "u".into(),
        uid,
        gid: uid,
        directory: "/home/u".into(),
    }
}

fn job(user: LocalUser, maildir: &Path) -> Request {
    Request::Deliver(LocalJob {
        msgid: "0a1b2c3d".into(),
        sender: "a@example.org".into(),
        recipient: "u@example.org".into(),
        user: Some(user),
        method: LocalMethod::Maildir {
            path: maildir.to_string_lossy().into_owned(),
            junk: false,
        },
        hostname: "mx.example.org".into(),
    })
}

fn message(dir: &Path, n: usize) -> File {
    let path = dir.join(format!("message-{n}"));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("message");
    let text = format!("Subject: {n}\r\n\r\nbody {n}\r\n");
    file.write_all(&crate::spool::message_file_bytes(
        "0a1b2c3d",
        text.as_bytes(),
    ))
    .expect("write");
    file.rewind().expect("rewind");
    file
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

/// `batch` delivered by a fresh agent of `key` (no maildir known yet, the default flush
/// policy), with `durability` standing for the syncs.
fn deliver_fresh_with(
    key: &AgentKey,
    batch: Vec<Item>,
    durability: &Durability<'_>,
) -> Vec<(u64, Reply)> {
    deliver_batch_with(
        &mut KnownMaildirs::new(),
        &mut FlushPolicy::default(),
        key,
        batch,
        &|| false,
        durability,
    )
}

#[test]
fn a_batch_lands_in_new_and_foreign_or_broken_requests_fail() {
    let d = dir("batch");
    let maildir = d.0.join("Maildir");
    let other = d.0.join("Other");
    let key = AgentKey::of(&user(1000));
    let batch = vec![
        (1, job(user(1000), &maildir), Some(message(&d.0, 1))),
        (2, job(user(1000), &other), Some(message(&d.0, 2))),
        (3, job(user(1001), &maildir), Some(message(&d.0, 3))),
        (4, job(user(1000), &maildir), None),
        (5, Request::RemoveControlSocket, None),
        (6, job(user(1000), &maildir), Some(message(&d.0, 6))),
    ];
    let replies = deliver_batch(
        &mut KnownMaildirs::new(),
        &mut FlushPolicy::default(),
        &key,
        batch,
        &|| false,
    );
    let ids: Vec<u64> = replies.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6], "one reply each, in order");
    for (id, reply) in &replies {
        match id {
            1 | 2 | 6 => assert_eq!(reply, &Reply::Delivered, "{id}"),
            _ => assert!(matches!(reply, Reply::TempFail(_)), "{id}: {reply:?}"),
        }
    }
    assert!(matches!(&replies[2].1, Reply::TempFail(t) if t.contains("another user")));
    assert_eq!(count(&maildir.join("new")), 2);
    assert_eq!(count(&other.join("new")), 1);
    assert_eq!(count(&maildir.join("tmp")), 0);
    let text = std::fs::read_dir(other.join("new"))
        .expect("new")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
        .collect::<String>();
    assert_eq!(text, "Subject: 2\n\nbody 2\n", "line ends as in a maildir");
}

#[test]
fn an_abandoned_batch_leaves_nothing_behind() {
    let d = dir("abandon");
    let maildir = d.0.join("Maildir");
    let key = AgentKey::of(&user(1000));
    let batch = vec![(1, job(user(1000), &maildir), Some(message(&d.0, 1)))];
    let replies = deliver_batch(
        &mut KnownMaildirs::new(),
        &mut FlushPolicy::default(),
        &key,
        batch,
        &|| true,
    );
    assert!(matches!(&replies[0].1, Reply::TempFail(t) if t.contains("abandoned")));
    assert_eq!(count(&maildir.join("new")), 0);
    assert_eq!(count(&maildir.join("tmp")), 0);
}

#[test]
fn a_maildir_removed_after_its_check_is_made_again() {
    let d = dir("removed");
    let maildir = d.0.join("Maildir");
    let key = AgentKey::of(&user(1000));
    let mut known = KnownMaildirs::new();
    let first = vec![(1, job(user(1000), &maildir), Some(message(&d.0, 1)))];
    assert_eq!(
        deliver_batch(
            &mut known,
            &mut FlushPolicy::default(),
            &key,
            first,
            &|| false
        )[0]
        .1,
        Reply::Delivered
    );
    std::fs::remove_dir_all(&maildir).expect("remove");
    let again = vec![(2, job(user(1000), &maildir), Some(message(&d.0, 2)))];
    assert_eq!(
        deliver_batch(
            &mut known,
            &mut FlushPolicy::default(),
            &key,
            again,
            &|| false
        )[0]
        .1,
        Reply::Delivered
    );
    assert_eq!(count(&maildir.join("new")), 1);
}

#[test]
fn a_failed_directory_fsync_fails_only_the_deliveries_into_that_directory() {
    let d = dir("dirsync");
    let (bad, good) = (d.0.join("Bad"), d.0.join("Good"));
    let key = AgentKey::of(&user(1000));
    let batch = vec![
        (1, job(user(1000), &bad), Some(message(&d.0, 1))),
        (2, job(user(1000), &good), Some(message(&d.0, 2))),
        (3, job(user(1000), &bad), Some(message(&d.0, 3))),
    ];
    let synced = std::cell::RefCell::new(Vec::new());
    let durability = Durability {
        sync_file_systems: &batch_flush::sync_file_systems,
        sync_dir: &|dir| {
            synced.borrow_mut().push(dir.to_path_buf());
            if dir.starts_with(&bad) {
                Err(std::io::Error::other("disk says no"))
            } else {
                maildir::sync_dir(dir)
            }
        },
    };
    let replies = deliver_fresh_with(&key, batch, &durability);
    assert_eq!(
        synced.into_inner(),
        [bad.join("new"), good.join("new")],
        "each directory once"
    );
    assert!(matches!(&replies[0].1, Reply::TempFail(t) if t.contains("disk says no")));
    assert_eq!(replies[1].1, Reply::Delivered);
    assert!(matches!(&replies[2].1, Reply::TempFail(t) if t.contains("disk says no")));
    // The files stay: a retry may deliver them twice, never lose them.
    assert_eq!(count(&bad.join("new")), 2);
}

#[test]
fn a_batch_shares_one_file_system_sync_and_a_failed_one_falls_back_to_each_file() {
    let d = dir("syncfs");
    let maildir = d.0.join("Maildir");
    let key = AgentKey::of(&user(1000));
    for (fails, tag) in [(false, "shared"), (true, "fallback")] {
        let batch: Vec<Item> = (1..=3)
            .map(|n| {
                (
                    n,
                    job(user(1000), &maildir),
                    Some(message(&d.0, n as usize)),
                )
            })
            .collect();
        let calls = std::cell::RefCell::new(Vec::new());
        let durability = Durability {
            sync_file_systems: &|files| {
                calls.borrow_mut().push(files.len());
                if fails {
                    Err(std::io::Error::other("write-back error"))
                } else {
                    batch_flush::sync_file_systems(files)
                }
            },
            sync_dir: &maildir::sync_dir,
        };
        let replies = deliver_fresh_with(&key, batch, &durability);
        assert_eq!(
            calls.into_inner(),
            [1],
            "{tag}: one call, one file of the maildir"
        );
        assert!(
            replies.iter().all(|(_, r)| *r == Reply::Delivered),
            "{tag}: {replies:?}"
        );
    }
    assert_eq!(count(&maildir.join("new")), 6);
}

#[test]
fn a_batch_of_one_is_not_synced_as_a_file_system() {
    let d = dir("single");
    let maildir = d.0.join("Maildir");
    let key = AgentKey::of(&user(1000));
    let durability = Durability {
        sync_file_systems: &|_| panic!("a single message gets its own fsync"),
        sync_dir: &maildir::sync_dir,
    };
    let replies = deliver_fresh_with(
        &key,
        vec![(1, job(user(1000), &maildir), Some(message(&d.0, 1)))],
        &durability,
    );
    assert_eq!(replies, [(1, Reply::Delivered)]);
    assert_eq!(count(&maildir.join("new")), 1);
}
