//! In-process maildir deliveries (a daemon that is not root) sharing the fsync of
//! `new/`: many threads store into one maildir and wait on one `DirSync`; every message
//! ends in `new/`, none in `tmp/`, and no thread is answered by an fsync that started
//! before its rename.

use runtime_std::delivery::dir_sync::DirSync;
use runtime_std::delivery::maildir;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

#[test]
fn concurrent_deliveries_share_directory_fsyncs_and_all_land() {
    let dir = std::env::temp_dir().join(format!("maildir-dir-sync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let maildir = dir.join("Maildir");
    maildir::ensure_maildir(&maildir).expect("maildir");
    let sync = Arc::new(DirSync::new());
    // Each rename is numbered; each fsync records the highest number renamed before it
    // started, and a thread checks that its own rename is covered.
    let renamed = Arc::new(AtomicUsize::new(0));
    let fsyncs = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (sync, renamed, fsyncs, maildir) = (
                Arc::clone(&sync),
                Arc::clone(&renamed),
                Arc::clone(&fsyncs),
                maildir.clone(),
            );
            std::thread::spawn(move || {
                for n in 0..25 {
                    let body = format!("Subject: {t}-{n}\r\n\r\nx\r\n");
                    let new_dir = maildir::store(&maildir, false, &mut body.as_bytes(), &|| false)
                        .expect("stored");
                    let mine = renamed.fetch_add(1, Ordering::SeqCst) + 1;
                    let result = sync.sync_with(&new_dir, |dir| {
                        fsyncs.fetch_add(1, Ordering::SeqCst);
                        let upto = renamed.load(Ordering::SeqCst);
                        maildir::sync_dir(dir)?;
                        Err(std::io::Error::other(upto.to_string()))
                    });
                    let upto: usize = result
                        .expect_err("the fsync reports what it covered")
                        .to_string()
                        .parse()
                        .expect("a number");
                    assert!(
                        upto >= mine,
                        "rename {mine} not covered by an fsync up to {upto}"
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    assert_eq!(count(&maildir.join("new")), 200);
    assert_eq!(count(&maildir.join("tmp")), 0);
    let fsyncs = fsyncs.load(Ordering::SeqCst);
    assert!(fsyncs <= 200, "at most one fsync per delivery: {fsyncs}");
    assert_eq!(sync.directories(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
