//! The spool: commit and reload, crash leftovers, group commit under concurrency,
//! envelope updates and removals, fault injection, free space.

use runtime_std::spool::{
    BufferedMessage, GroupCommitter, QueuedMessage, Spool, SpoolFaults, SpoolOp,
};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
            "spool-test-{tag}-{}-{n}-{nanos}",
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

/// The names in the spool's `queue/` directory, sorted, without the spare files
/// (`f.<n>`, spent envelope files kept for reuse).
fn queue_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("queue"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with("f."))
        .collect();
    names.sort();
    names
}

fn read_all(spool: &Spool, msgid: &str) -> Vec<u8> {
    let mut body = Vec::new();
    spool
        .read_message(msgid)
        .unwrap()
        .read_to_end(&mut body)
        .unwrap();
    body
}

fn write_message(
    spool: &Spool,
    msgid: &str,
    body: &[u8],
    evpids: &[&str],
) -> runtime_std::spool::IncomingMessage {
    let mut incoming = spool.create_incoming(msgid).unwrap();
    for chunk in body.chunks(7) {
        incoming.write_chunk(chunk).unwrap();
    }
    for evpid in evpids {
        incoming
            .add_envelope(evpid, format!("record of {evpid}").as_bytes())
            .unwrap();
    }
    incoming
}

#[test]
fn committed_message_reloads_with_its_envelopes() {
    let dir = TempDir::new("roundtrip");
    let root = dir.path().join("spool");
    let body = b"Subject: hi\r\n\r\nhello\r\n".repeat(5000);
    {
        let (spool, recovered) = Spool::open(&root).unwrap();
        assert!(recovered.messages.is_empty());
        let incoming = write_message(&spool, "m1", &body, &["e2", "e1"]);
        assert_eq!(incoming.bytes_written(), body.len() as u64);
        incoming.commit().unwrap();
        assert_eq!(read_all(&spool, "m1"), body);
    }
    let (spool, recovered) = Spool::open(&root).unwrap();
    assert_eq!(
        recovered.messages,
        vec![QueuedMessage {
            msgid: "m1".into(),
            envelopes: vec![
                ("e1".into(), b"record of e1".to_vec()),
                ("e2".into(), b"record of e2".to_vec()),
            ],
        }]
    );
    assert_eq!(read_all(&spool, "m1"), body);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&root).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn uncommitted_incoming_message_is_discarded_at_open() {
    let dir = TempDir::new("halfwritten");
    let root = dir.path().join("spool");
    let (spool, _) = Spool::open(&root).unwrap();
    let mut incoming = write_message(&spool, "half", b"partial", &["e1"]);
    // Past what a message keeps in memory: it has its own file from here on.
    incoming.write_chunk(&[b'x'; 70 * 1024]).unwrap();
    // Simulate a crash: the process dies without commit or drop.
    std::mem::forget(incoming);
    assert!(root.join("queue/i.half").exists());
    assert!(!root.join("queue/m.half").exists());
    drop(spool);
    let (spool, recovered) = Spool::open(&root).unwrap();
    assert!(recovered.messages.is_empty());
    assert_eq!(recovered.discarded_incoming, vec!["half".to_string()]);
    assert!(queue_files(&root).is_empty());
    assert_eq!(
        spool.read_message("half").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn aborted_and_dropped_messages_leave_nothing() {
    let dir = TempDir::new("abort");
    let (spool, _) = Spool::open(dir.path()).unwrap();
    write_message(&spool, "a", b"x", &["e"]).abort().unwrap();
    drop(write_message(&spool, "b", b"y", &["e"]));
    assert_eq!(queue_files(dir.path()), Vec::<String>::new());
    let (_, recovered) = Spool::open(dir.path()).unwrap();
    assert!(recovered.messages.is_empty());
}

#[test]
fn group_commits_from_twenty_threads_are_all_durable() {
    let dir = TempDir::new("group");
    let root = dir.path().join("spool");
    let (spool, _) = Spool::open(&root).unwrap();
    let committer = GroupCommitter::start(spool.clone(), 64).unwrap();
    let threads: Vec<_> = (0..20)
        .map(|t| {
            let spool = spool.clone();
            let committer = committer.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    let msgid = format!("m{t}-{i}");
                    let body = format!("message {msgid}\r\n").repeat(100);
                    let incoming = write_message(&spool, &msgid, body.as_bytes(), &["a", "b"]);
                    if t % 2 == 0 {
                        committer.commit(incoming).unwrap();
                    } else {
                        let (tx, rx) = std::sync::mpsc::channel();
                        committer.submit(incoming, Box::new(move |r| tx.send(r).unwrap()));
                        rx.recv().unwrap().unwrap();
                    }
                    assert_eq!(read_all(&spool, &msgid), body.as_bytes());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = committer.stats();
    assert_eq!(stats.commits, 200);
    assert_eq!(stats.failures, 0);
    assert!(stats.batches <= 200);
    drop(committer);
    let (spool, recovered) = Spool::open(&root).unwrap();
    assert_eq!(recovered.messages.len(), 200);
    for message in &recovered.messages {
        assert_eq!(message.envelopes.len(), 2);
        let body = format!("message {}\r\n", message.msgid).repeat(100);
        assert_eq!(read_all(&spool, &message.msgid), body.as_bytes());
    }
}

#[test]
fn submit_calls_the_completion_once() {
    let dir = TempDir::new("submit");
    let (spool, _) = Spool::open(dir.path()).unwrap();
    let committer = GroupCommitter::start(spool.clone(), 8).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let incoming = write_message(&spool, "s1", b"body", &["e"]);
    committer.submit(
        incoming,
        Box::new(move |result| tx.send(result.is_ok()).unwrap()),
    );
    assert!(rx.recv().unwrap());
    assert!(rx.recv().is_err(), "the completion runs exactly once");
    assert_eq!(read_all(&spool, "s1"), b"body");
}

#[test]
fn a_recycled_file_is_overwritten_and_trimmed_to_the_new_message() {
    let dir = TempDir::new("recycle");
    let root = dir.path().join("spool");
    let (spool, _) = Spool::open(&root).unwrap();
    let committer = GroupCommitter::start(spool.clone(), 8).unwrap();
    let long = b"a much longer first message, line after line\r\n".repeat(50);
    committer
        .commit(write_message(&spool, "first", &long, &["e1", "e2", "e3"]))
        .unwrap();
    for evpid in ["e1", "e2", "e3"] {
        spool.remove_envelope("first", evpid).unwrap();
    }
    // The next messages reuse the spent body and envelope files, shorter and longer.
    committer
        .commit(write_message(&spool, "short", b"short\r\n", &["s"]))
        .unwrap();
    assert_eq!(read_all(&spool, "short"), b"short\r\n");
    let longer = b"0123456789".repeat(600);
    committer
        .commit(write_message(&spool, "longer", &longer, &["l1", "l2"]))
        .unwrap();
    assert_eq!(read_all(&spool, "longer"), longer);
    drop(committer);
    let (_, recovered) = Spool::open(&root).unwrap();
    let mut found: Vec<_> = recovered
        .messages
        .iter()
        .map(|m| (m.msgid.clone(), m.envelopes.len()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![("longer".to_owned(), 2), ("short".to_owned(), 1)]
    );
}

#[test]
fn a_lone_commit_completes_on_the_callers_thread() {
    let dir = TempDir::new("lone");
    let (spool, _) = Spool::open(dir.path()).unwrap();
    let committer = GroupCommitter::start(spool.clone(), 8).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    committer.submit(
        write_message(&spool, "l1", b"body", &["e"]),
        Box::new(move |result| {
            tx.send((std::thread::current().id(), result.is_ok()))
                .unwrap()
        }),
    );
    let (thread, ok) = rx.try_recv().expect("completed before submit returned");
    assert!(ok);
    assert_eq!(
        thread,
        std::thread::current().id(),
        "no thread hop when alone"
    );
    assert_eq!(committer.stats().batches, 1);
}

#[test]
fn commits_queued_behind_a_leader_are_handed_to_the_committer_thread() {
    let dir = TempDir::new("handoff");
    let (spool, _) = Spool::open(dir.path()).unwrap();
    let committer = GroupCommitter::start(spool.clone(), 8).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (queued_tx, queued_rx) = std::sync::mpsc::channel::<()>();
    let leader = {
        let committer = committer.clone();
        let incoming = write_message(&spool, "h1", b"first", &["e"]);
        let tx = tx.clone();
        std::thread::spawn(move || {
            // The completion runs inside the leader's batch: hold the batch open until
            // the second commit is queued behind it.
            committer.submit(
                incoming,
                Box::new(move |result| {
                    queued_rx.recv().unwrap();
                    tx.send((
                        "h1",
                        std::thread::current().name().map(str::to_owned),
                        result.is_ok(),
                    ))
                    .unwrap();
                    release_rx.recv().unwrap();
                }),
            );
        })
    };
    // Wait until the leader is inside its batch (the completion blocks on queued_rx).
    while committer.stats().batches == 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let tx2 = tx.clone();
    committer.submit(
        write_message(&spool, "h2", b"second", &["e"]),
        Box::new(move |result| {
            tx2.send((
                "h2",
                std::thread::current().name().map(str::to_owned),
                result.is_ok(),
            ))
            .unwrap();
        }),
    );
    queued_tx.send(()).unwrap();
    let first = rx.recv().unwrap();
    assert_eq!((first.0, first.2), ("h1", true));
    release_tx.send(()).unwrap();
    leader.join().unwrap();
    let second = rx.recv().unwrap();
    assert_eq!(second, ("h2", Some("spool-commit".to_owned()), true));
    assert_eq!(read_all(&spool, "h2"), b"second");
}

fn buffered(msgid: &str, content: &str, evpids: &[&str]) -> BufferedMessage {
    BufferedMessage {
        msgid: msgid.to_owned(),
        content: content.as_bytes().to_vec(),
        envelopes: evpids
            .iter()
            .map(|e| ((*e).to_owned(), format!("record of {e}").into_bytes()))
            .collect(),
    }
}

/// Messages given whole from memory in one batch share one file, linked under each name:
/// each reads back alone, survives a reopen with its records, and the file goes with the
/// last of them.
#[test]
fn messages_committed_from_memory_in_one_batch_share_one_file() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("shared");
    let root = dir.path().join("spool");
    let (spool, _) = Spool::open(&root).unwrap();
    let committer = GroupCommitter::start(spool.clone(), 8).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (inside_tx, inside_rx) = std::sync::mpsc::channel::<()>();
    {
        // Its completion runs inside the committer's batch: the next ones queue behind.
        let tx = tx.clone();
        committer.submit_buffered(
            buffered("s0", "zero", &["e0"]),
            Box::new(move |result| {
                inside_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                tx.send(("s0".to_owned(), result.is_ok())).unwrap();
            }),
        );
    }
    inside_rx.recv().unwrap();
    for (msgid, content) in [("s1", "one"), ("s2", ""), ("s3", "three"), ("s0", "again")] {
        let tx = tx.clone();
        let tag = if content == "again" { "dup" } else { msgid }.to_owned();
        committer.submit_buffered(
            buffered(msgid, content, &["e1", "e2"]),
            Box::new(move |result| tx.send((tag, result.is_ok())).unwrap()),
        );
    }
    release_tx.send(()).unwrap();
    let mut results: Vec<(String, bool)> = (0..5).map(|_| rx.recv().unwrap()).collect();
    results.sort();
    let expected: Vec<(String, bool)> = [
        ("dup", false),
        ("s0", true),
        ("s1", true),
        ("s2", true),
        ("s3", true),
    ]
    .iter()
    .map(|(id, ok)| ((*id).to_owned(), *ok))
    .collect();
    assert_eq!(results, expected, "a message id already queued fails alone");
    let inode = |msgid: &str| {
        std::fs::metadata(root.join(format!("queue/m.{msgid}")))
            .unwrap()
            .ino()
    };
    assert_eq!(inode("s1"), inode("s2"));
    assert_eq!(inode("s2"), inode("s3"));
    assert_ne!(inode("s0"), inode("s1"));
    assert_eq!(queue_files(&root), ["m.s0", "m.s1", "m.s2", "m.s3"]);
    for (msgid, content) in [("s0", "zero"), ("s1", "one"), ("s2", ""), ("s3", "three")] {
        assert_eq!(read_all(&spool, msgid), content.as_bytes(), "{msgid}");
    }
    drop(committer);
    drop(spool);

    // A crash between the links and the removal of the scratch name leaves it linked too.
    std::fs::hard_link(root.join("queue/m.s1"), root.join("queue/i.s1")).unwrap();
    let (spool, recovered) = Spool::open(&root).unwrap();
    assert!(recovered.discarded_incoming.is_empty(), "{recovered:?}");
    let ids: Vec<_> = recovered
        .messages
        .iter()
        .map(|m| m.msgid.as_str())
        .collect();
    assert_eq!(ids, ["s0", "s1", "s2", "s3"]);
    assert_eq!(
        recovered.messages[3].envelopes,
        vec![
            ("e1".into(), b"record of e1".to_vec()),
            ("e2".into(), b"record of e2".to_vec()),
        ]
    );
    assert_eq!(queue_files(&root), ["m.s0", "m.s1", "m.s2", "m.s3"]);

    spool.update_envelope("s3", "e1", b"retry 1").unwrap();
    spool.remove_message("s2").unwrap();
    assert_eq!(read_all(&spool, "s1"), b"one");
    assert_eq!(read_all(&spool, "s3"), b"three");
    assert_eq!(spool.remove_envelope("s3", "e2").unwrap(), 1);
    let (spool, recovered) = Spool::open(&root).unwrap();
    assert_eq!(
        recovered.messages[2].envelopes,
        vec![("e1".into(), b"retry 1".to_vec())]
    );
    for msgid in ["s0", "s1", "s3"] {
        spool.remove_message(msgid).unwrap();
    }
    assert!(queue_files(&root).is_empty(), "{:?}", queue_files(&root));
}

/// A message being received holds back the committer thread's next batch until it
/// arrives, so that both share one batch; one abandoned holds it back only the gather
/// time.
#[test]
fn the_committer_waits_for_expected_messages_to_share_their_batch() {
    let dir = TempDir::new("gather");
    let (spool, _) = Spool::open(dir.path().join("spool")).unwrap();
    let long = Duration::from_secs(30);
    let committer = GroupCommitter::with_gather(spool.clone(), 8, long).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let submit = |msgid: &str| {
        let tx = tx.clone();
        let tag = msgid.to_owned();
        committer.submit_buffered(
            buffered(msgid, "body", &["e"]),
            Box::new(move |result| tx.send((tag, result.is_ok())).unwrap()),
        );
    };
    let started = Instant::now();
    let (first, second) = (committer.expect(), committer.expect());
    drop(first);
    submit("g1");
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "held back while g2 is on its way"
    );
    drop(second);
    submit("g2");
    let mut done: Vec<(String, bool)> = (0..2).map(|_| rx.recv().unwrap()).collect();
    done.sort();
    assert_eq!(done, [("g1".to_owned(), true), ("g2".to_owned(), true)]);
    assert!(started.elapsed() < long / 2, "released by g2's arrival");
    assert_eq!(committer.stats().batches, 1);
    drop(committer.expect());
    let started = Instant::now();
    submit("g3");
    assert_eq!(rx.recv().unwrap(), ("g3".to_owned(), true));
    assert!(started.elapsed() < long / 2, "nothing on its way: no wait");

    let short = Duration::from_millis(50);
    let committer = GroupCommitter::with_gather(spool, 8, short).unwrap();
    let _abandoned = committer.expect();
    let started = Instant::now();
    committer.submit_buffered(
        buffered("g4", "body", &["e"]),
        Box::new(move |result| tx.send(("g4".to_owned(), result.is_ok())).unwrap()),
    );
    assert_eq!(rx.recv().unwrap(), ("g4".to_owned(), true));
    assert!(
        started.elapsed() >= short,
        "waited the gather time, no more"
    );
}

#[test]
fn a_committer_refuses_messages_of_another_spool() {
    let dir = TempDir::new("other");
    let (first, _) = Spool::open(dir.path().join("a")).unwrap();
    let (second, _) = Spool::open(dir.path().join("b")).unwrap();
    let committer = GroupCommitter::start(first, 4).unwrap();
    let err = committer
        .commit(write_message(&second, "m", b"x", &["e"]))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(
        second.read_message("m").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn duplicate_msgid_commit_fails_and_keeps_the_first() {
    let dir = TempDir::new("dup");
    let (spool, _) = Spool::open(dir.path()).unwrap();
    write_message(&spool, "same", b"first", &["e"])
        .commit()
        .unwrap();
    let err = write_message(&spool, "same", b"second", &["e"])
        .commit()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(read_all(&spool, "same"), b"first");
    assert_eq!(queue_files(dir.path()), ["m.same"]);
}

#[test]
fn envelopes_update_and_remove_then_message_goes() {
    let dir = TempDir::new("envelopes");
    let root = dir.path().join("spool");
    let (spool, _) = Spool::open(&root).unwrap();
    write_message(&spool, "m", b"body", &["e1", "e2"])
        .commit()
        .unwrap();
    spool.update_envelope("m", "e1", b"retry 3").unwrap();
    let (spool, recovered) = Spool::open(&root).unwrap();
    assert_eq!(
        recovered.messages[0].envelopes[0],
        ("e1".into(), b"retry 3".to_vec())
    );
    assert_eq!(spool.remove_envelope("m", "e2").unwrap(), 1);
    assert_eq!(spool.remove_envelope("m", "e1").unwrap(), 0);
    spool.remove_message("m").unwrap();
    assert_eq!(
        spool.read_message("m").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let (_, recovered) = Spool::open(&root).unwrap();
    assert!(recovered.messages.is_empty());
    assert_eq!(
        spool.update_envelope("m", "e1", b"x").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn crash_leftovers_are_cleaned_at_open() {
    let dir = TempDir::new("leftovers");
    let root = dir.path().join("spool");
    let (spool, _) = Spool::open(&root).unwrap();
    for msgid in ["keep", "updated", "empty", "removed", "garbled", "cut"] {
        write_message(&spool, msgid, b"body", &["e1"])
            .commit()
            .unwrap();
    }
    spool.update_envelope("updated", "e1", b"retry 1").unwrap();
    std::fs::write(root.join("queue/t.keep"), b"half an update").unwrap();
    std::fs::write(root.join("queue/e.empty"), b"smtpd-envelopes 2\n").unwrap();
    // A removal interrupted between the message file and the envelope file.
    spool.update_envelope("removed", "e1", b"retry 1").unwrap();
    std::fs::remove_file(root.join("queue/m.removed")).unwrap();
    std::fs::write(
        root.join("queue/e.garbled"),
        b"smtpd-envelopes 2\ne1 99\nab",
    )
    .unwrap();
    let cut = std::fs::OpenOptions::new()
        .write(true)
        .open(root.join("queue/m.cut"))
        .unwrap();
    cut.set_len(3).unwrap();
    drop(spool);
    let (_, recovered) = Spool::open(&root).unwrap();
    let ids: Vec<_> = recovered
        .messages
        .iter()
        .map(|m| m.msgid.as_str())
        .collect();
    assert_eq!(ids, ["keep", "updated"]);
    assert_eq!(
        recovered.messages[0].envelopes,
        vec![("e1".into(), b"record of e1".to_vec())]
    );
    assert_eq!(
        recovered.messages[1].envelopes,
        vec![("e1".into(), b"retry 1".to_vec())]
    );
    assert_eq!(recovered.corrupt, ["cut", "garbled"]);
    assert!(root.join("corrupt/garbled.envelopes").is_file());
    assert_eq!(
        std::fs::read(root.join("corrupt/garbled.message")).unwrap(),
        b"body"
    );
    assert!(std::fs::read(root.join("corrupt/garbled.records"))
        .unwrap()
        .starts_with(b"smtpd-envelopes 2\ne1 "));
    assert_eq!(
        std::fs::read(root.join("corrupt/cut.message")).unwrap(),
        b"bod"
    );
    assert_eq!(queue_files(&root), ["e.updated", "m.keep", "m.updated"]);
}

/// A spool written by the release before the flat layout (a directory per message) is
/// converted at open: nothing queued there is lost, its leftovers are cleaned.
#[test]
fn a_spool_of_the_previous_layout_is_converted() {
    let dir = TempDir::new("v1");
    let root = dir.path().join("spool");
    let old = |path: &str, bytes: &[u8]| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    old("queue/m1/message", b"first body");
    old("queue/m1/envelopes/e2", b"record 2");
    old("queue/m1/envelopes/e1", b"record 1");
    old("queue/m1/envelopes/.e1.tmp", b"half an update");
    old("queue/nobody/message", b"no envelope left");
    std::fs::create_dir_all(root.join("queue/nobody/envelopes")).unwrap();
    old("queue/lost/envelopes/e1", b"record without body");
    old("incoming/half/message", b"never committed");
    old("purge/gone/message", b"being removed");
    let (spool, recovered) = Spool::open(&root).unwrap();
    assert_eq!(
        recovered.messages,
        vec![QueuedMessage {
            msgid: "m1".into(),
            envelopes: vec![
                ("e1".into(), b"record 1".to_vec()),
                ("e2".into(), b"record 2".to_vec()),
            ],
        }]
    );
    assert_eq!(recovered.discarded_incoming, ["half"]);
    assert_eq!(recovered.corrupt, ["lost"]);
    assert_eq!(read_all(&spool, "m1"), b"first body");
    assert_eq!(queue_files(&root), ["e.m1", "m.m1"]);
    assert!(!root.join("incoming").exists() && !root.join("purge").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("version")).unwrap(),
        "3\n"
    );
    assert_eq!(spool.remove_envelope("m1", "e1").unwrap(), 1);
    drop(spool);
    let (_, recovered) = Spool::open(&root).unwrap();
    assert_eq!(
        recovered.messages[0].envelopes,
        vec![("e2".into(), b"record 2".to_vec())]
    );
}

/// A spool of layout 2 (records only in `e.<msgid>`, bare messages in `m.<msgid>`) is
/// converted at open, also when an earlier conversion was interrupted half way.
#[test]
fn a_spool_of_layout_2_is_converted() {
    let dir = TempDir::new("v2");
    let root = dir.path().join("spool");
    let write = |path: &str, bytes: &[u8]| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    let records = b"smtpd-envelopes 2\ne1 8\nrecord 1\ne2 8\nrecord 2\n";
    write("version", b"2\n");
    write("queue/m.a", b"Subject: a\r\n\r\nfirst body\r\n");
    write("queue/e.a", records);
    write("queue/m.uncommitted", b"never committed");
    write("queue/e.lost", records);
    // Converted by an earlier open that stopped before the version was written.
    let (spool, _) = Spool::open(dir.path().join("scratch")).unwrap();
    write_message(&spool, "done", b"converted body", &[])
        .commit()
        .unwrap();
    drop(spool);
    std::fs::copy(
        dir.path().join("scratch/queue/m.done"),
        root.join("queue/m.done"),
    )
    .unwrap();
    write("queue/e.done", records);

    let (spool, recovered) = Spool::open(&root).unwrap();
    let ids: Vec<_> = recovered
        .messages
        .iter()
        .map(|m| m.msgid.as_str())
        .collect();
    assert_eq!(ids, ["a", "done"]);
    for message in &recovered.messages {
        assert_eq!(
            message.envelopes,
            vec![
                ("e1".into(), b"record 1".to_vec()),
                ("e2".into(), b"record 2".to_vec()),
            ]
        );
    }
    assert_eq!(recovered.discarded_incoming, ["uncommitted"]);
    assert_eq!(recovered.corrupt, ["lost"]);
    assert_eq!(read_all(&spool, "a"), b"Subject: a\r\n\r\nfirst body\r\n");
    assert_eq!(read_all(&spool, "done"), b"converted body");
    assert_eq!(
        std::fs::read_to_string(root.join("version")).unwrap(),
        "3\n"
    );
    assert_eq!(spool.remove_envelope("a", "e1").unwrap(), 1);
    drop(spool);
    let (spool, recovered) = Spool::open(&root).unwrap();
    assert_eq!(
        recovered.messages[0].envelopes,
        vec![("e2".into(), b"record 2".to_vec())]
    );
    assert_eq!(read_all(&spool, "a"), b"Subject: a\r\n\r\nfirst body\r\n");
}

/// A spool written by a newer release is refused, not misread.
#[test]
fn a_spool_of_an_unknown_layout_is_refused() {
    let dir = TempDir::new("v9");
    std::fs::write(dir.path().join("version"), b"9\n").unwrap();
    let err = Spool::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("version \"9\""), "{err}");
}

#[test]
fn ids_that_could_escape_the_spool_are_refused() {
    let dir = TempDir::new("ids");
    let (spool, _) = Spool::open(dir.path()).unwrap();
    for bad in ["", "..", "../x", "a/b", ".hidden", "x y", &"a".repeat(65)] {
        assert_eq!(
            spool.create_incoming(bad).unwrap_err().kind(),
            io::ErrorKind::InvalidInput,
            "{bad:?}"
        );
        assert_eq!(
            spool.read_message(bad).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
    let mut incoming = spool.create_incoming("ok").unwrap();
    assert_eq!(
        incoming.add_envelope("../e", b"x").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}

struct FailCommits(AtomicBool);

impl SpoolFaults for FailCommits {
    fn check(&self, op: SpoolOp, _msgid: &str) -> io::Result<()> {
        if op == SpoolOp::Commit && self.0.load(Ordering::Relaxed) {
            Err(io::Error::other("injected fault"))
        } else {
            Ok(())
        }
    }
}

#[test]
fn fault_hook_fails_commits_without_leaving_anything() {
    let dir = TempDir::new("faults");
    let (spool, _) = Spool::open(dir.path()).unwrap();
    let hook = Arc::new(FailCommits(AtomicBool::new(true)));
    let spool = spool.with_faults(hook.clone());
    let committer = GroupCommitter::start(spool.clone(), 4).unwrap();
    let err = committer
        .commit(write_message(&spool, "m", b"x", &["e"]))
        .unwrap_err();
    assert_eq!(err.to_string(), "injected fault");
    assert_eq!(committer.stats().failures, 1);
    assert_eq!(queue_files(dir.path()), Vec::<String>::new());
    let (tx, rx) = std::sync::mpsc::channel();
    committer.submit_buffered(
        buffered("b", "from memory", &["e"]),
        Box::new(move |result| tx.send(result).unwrap()),
    );
    let err = rx.recv().unwrap().unwrap_err();
    assert_eq!(err.to_string(), "injected fault");
    assert_eq!(queue_files(dir.path()), Vec::<String>::new());
    hook.0.store(false, Ordering::Relaxed);
    committer
        .commit(write_message(&spool, "m", b"x", &["e"]))
        .unwrap();
    assert_eq!(read_all(&spool, "m"), b"x");
}

#[test]
fn free_space_is_reported() {
    let dir = TempDir::new("room");
    let (spool, _) = Spool::open(dir.path()).unwrap();
    assert!(spool.has_room(1).unwrap());
    assert!(spool.has_room(1).unwrap(), "trusted from the last look");
    assert!(
        !spool.has_room(u64::MAX).unwrap(),
        "a floor above half the last look is looked at again"
    );
    assert!(spool.has_room(1).unwrap());
}

/// Commits per second with 1 and 20 committing threads, fsyncing the message files on the
/// calling threads (`commit`) or on the committer thread (`submit`); run with
/// `cargo test --release --test spool_commit -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_group_commit_rate() {
    for on_caller in [true, false] {
        for threads in [1usize, 20] {
            let dir = TempDir::new("bench");
            let (spool, _) = Spool::open(dir.path()).unwrap();
            let committer = GroupCommitter::start(spool.clone(), 256).unwrap();
            let per_thread = 2000 / threads;
            let body = b"Subject: bench\r\n\r\n".repeat(200);
            let start = Instant::now();
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (spool, committer, body) = (spool.clone(), committer.clone(), body.clone());
                    std::thread::spawn(move || {
                        for i in 0..per_thread {
                            let incoming =
                                write_message(&spool, &format!("b{t}-{i}"), &body, &["e1"]);
                            if on_caller {
                                committer.commit(incoming).unwrap();
                            } else {
                                let (tx, rx) = std::sync::mpsc::channel();
                                committer.submit(incoming, Box::new(move |r| tx.send(r).unwrap()));
                                rx.recv().unwrap().unwrap();
                            }
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
            let elapsed = start.elapsed().as_secs_f64();
            let stats = committer.stats();
            println!(
                "{} {threads:2} committers: {} commits in {elapsed:.2}s = {:.0}/s, {} batches",
                if on_caller { "commit" } else { "submit" },
                stats.commits,
                stats.commits as f64 / elapsed,
                stats.batches
            );
        }
    }
}

#[test]
fn an_envelope_set_aside_leaves_the_queue_and_keeps_its_record() {
    let dir = TempDir::new("aside");
    let root = dir.path().join("spool");
    let (spool, _) = Spool::open(&root).unwrap();
    write_message(&spool, "m", b"body", &["e1", "e2"])
        .commit()
        .unwrap();
    spool.set_aside_envelope("m", "e1").unwrap();
    assert_eq!(
        spool.set_aside_envelope("m", "e1").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let (spool, recovered) = Spool::open(&root).unwrap();
    assert_eq!(
        recovered.messages,
        vec![QueuedMessage {
            msgid: "m".into(),
            envelopes: vec![("e2".into(), b"record of e2".to_vec())],
        }]
    );
    spool.set_aside_envelope("m", "e2").unwrap();
    let (spool, recovered) = Spool::open(&root).unwrap();
    assert!(recovered.messages.is_empty());
    assert_eq!(
        spool.read_message("m").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let corrupt = root.join("corrupt");
    assert_eq!(std::fs::read(corrupt.join("m.message")).unwrap(), b"body");
    assert_eq!(
        std::fs::read(corrupt.join("m.e1.envelope")).unwrap(),
        b"record of e1"
    );
    assert_eq!(
        std::fs::read(corrupt.join("m.e2.envelope")).unwrap(),
        b"record of e2"
    );
    assert_eq!(
        spool.set_aside_envelope("../x", "e1").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
}
