//! How a batch of maildir files is made durable before it is linked into `new/`.
//!
//! One fsync per file costs a data write, an inode write and a disk cache flush, one
//! after another, for every message. A batch written first and then made durable by one
//! `syncfs(2)` per file system costs one flush for all of it, and its data and inode
//! writes go to the disk together. `syncfs` also writes whatever else is dirty on that
//! file system, so a file system that other programs keep busy makes it slow: a
//! `syncfs` that takes longer than [`SLOW_SYNCFS`] sends the batches of the next
//! [`EACH_FILE_FOR`] back to one fsync per file.
//!
//! On ext4 without a journal `syncfs` writes the last inodes after its flush; the
//! `new/` directory's fsync that follows every batch ends with a flush of its own, and a
//! delivery counts only once that has returned.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// A `syncfs` slower than this means others load the file system.
pub const SLOW_SYNCFS: Duration = Duration::from_millis(200);

/// How long batches go back to one fsync per file after a slow `syncfs`.
pub const EACH_FILE_FOR: Duration = Duration::from_secs(60);

/// How the files of one batch are made durable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileFlush {
    /// Each file's own fsync (a batch of one, or after a slow `syncfs`).
    EachFile,
    /// One `syncfs` per file system the batch wrote to.
    FileSystem,
}

/// The choice between the two, as one agent's recent `syncfs` calls went.
#[derive(Clone, Copy, Default, Debug)]
pub struct FlushPolicy {
    /// Set by a slow `syncfs`: until then, each file gets its own fsync.
    each_file_until: Option<Instant>,
}

impl FlushPolicy {
    /// How to make `files` freshly written files durable at `now`.
    pub fn choose(&self, files: usize, now: Instant) -> FileFlush {
        let backing_off = self.each_file_until.is_some_and(|until| now < until);
        if files < 2 || backing_off {
            FileFlush::EachFile
        } else {
            FileFlush::FileSystem
        }
    }

    /// A `syncfs` chosen at some point took `took`, and ended at `now`.
    pub fn record(&mut self, took: Duration, now: Instant) {
        if took > SLOW_SYNCFS {
            self.each_file_until = now.checked_add(EACH_FILE_FOR);
        }
    }
}

/// `syncfs(2)` once for each distinct file system holding one of `files`.
///
/// # Errors
/// The first failure (a write-back error the file system reports, or a failed `fstat`);
/// the caller then fsyncs each file, which reports the error against the message.
pub fn sync_file_systems(files: &[&File]) -> io::Result<()> {
    let mut synced = HashSet::new();
    for file in files {
        if synced.insert(file.metadata()?.dev()) {
            // SAFETY: the descriptor is open for the duration of the call.
            if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_of_one_keeps_its_own_fsync() {
        let policy = FlushPolicy::default();
        let now = Instant::now();
        assert_eq!(policy.choose(0, now), FileFlush::EachFile);
        assert_eq!(policy.choose(1, now), FileFlush::EachFile);
        assert_eq!(policy.choose(2, now), FileFlush::FileSystem);
        assert_eq!(policy.choose(32, now), FileFlush::FileSystem);
    }

    #[test]
    fn a_slow_syncfs_sends_batches_back_to_each_file_for_a_while() {
        let mut policy = FlushPolicy::default();
        let start = Instant::now();
        policy.record(SLOW_SYNCFS, start);
        assert_eq!(
            policy.choose(8, start),
            FileFlush::FileSystem,
            "at the limit is not slow"
        );
        policy.record(SLOW_SYNCFS + Duration::from_millis(1), start);
        assert_eq!(policy.choose(8, start), FileFlush::EachFile);
        let almost = start + EACH_FILE_FOR - Duration::from_millis(1);
        assert_eq!(policy.choose(8, almost), FileFlush::EachFile);
        assert_eq!(
            policy.choose(8, start + EACH_FILE_FOR),
            FileFlush::FileSystem,
            "tried again once the time is up"
        );
    }

    #[test]
    fn files_of_one_file_system_sync_in_one_call() {
        let dir = std::env::temp_dir().join(format!("smtpd-batch-flush-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let files: Vec<File> = (0..3)
            .map(|n| File::create(dir.join(format!("f{n}"))).expect("create"))
            .collect();
        let refs: Vec<&File> = files.iter().collect();
        let result = sync_file_systems(&refs);
        let _ = std::fs::remove_dir_all(&dir);
        result.expect("syncfs");
        assert!(sync_file_systems(&[]).is_ok(), "nothing to sync");
    }
}
