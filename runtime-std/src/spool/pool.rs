//! Spool files recycled instead of deleted: on a file system without a journal, ext4 will
//! not reuse an inode deleted less than a minute ago, so every new file of a busy spool
//! scans past all the inodes freed recently. Renaming a spent file to `queue/f.<n>`
//! and back into use keeps the inode count of the spool flat. A spare keeps its content
//! (up to [`KEEP_CONTENT`] bytes) and is overwritten in place by its next use, then
//! trimmed to what was written ([`trim`]): a message of the same size as the last one in
//! that file then allocates and frees no block. A body is only
//! retired once its last envelope is gone, when no delivery reads it any more (the
//! scheduler never removes an envelope in flight).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Most spare files kept; beyond that a spent file is deleted.
const MAX_FREE: usize = 1024;
/// A spare bigger than this is emptied when retired, so that spares hold at most
/// [`MAX_FREE`] times this much disk space.
const KEEP_CONTENT: u64 = 256 * 1024;

/// Spare files in one directory, named `f.<n>`.
pub(super) struct FilePool {
    dir: PathBuf,
    free: Mutex<Vec<PathBuf>>,
    next: AtomicU64,
}

impl FilePool {
    /// An empty pool for `dir`.
    pub(super) fn new(dir: PathBuf) -> FilePool {
        FilePool {
            dir,
            free: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        }
    }

    /// Whether `name` is the name of a spare file.
    pub(super) fn is_spare(name: &str) -> bool {
        name.strip_prefix("f.")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Keep the spare file found at `path` (at open), or delete it when the pool is full.
    pub(super) fn adopt(&self, name: &str, path: PathBuf) -> io::Result<()> {
        if let Some(n) = name.get(2..).and_then(|n| n.parse::<u64>().ok()) {
            self.next.fetch_max(n.saturating_add(1), Ordering::Relaxed);
        }
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < MAX_FREE {
            free.push(path);
            Ok(())
        } else {
            fs::remove_file(path)
        }
    }

    /// A file at `target` (which must not exist), open for writing at its start: a spare
    /// one renamed there when there is one (its old bytes stay until overwritten: [`trim`]
    /// it to what was written), else a fresh one (mode 0600).
    pub(super) fn take(&self, target: &Path) -> io::Result<File> {
        loop {
            let spare = self
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let Some(spare) = spare else {
                return super::create_private_file(target);
            };
            match rename_noreplace(&spare, target) {
                Ok(()) => return OpenOptions::new().write(true).open(target),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.free
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(spare);
                    return Err(e);
                }
                // The spare is gone (removed by hand?): try the next one.
                Err(_) => {}
            }
        }
    }

    /// [`FilePool::take`], replacing a leftover at `target` (a scratch name a crash or a
    /// failed attempt left behind, never a committed file), which is retired first.
    pub(super) fn take_replacing(&self, target: &Path) -> io::Result<File> {
        match self.take(target) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.recycle(target)?;
                self.take(target)
            }
            other => other,
        }
    }

    /// Retire the file at `path`: renamed to a spare name, or deleted when the pool is
    /// full. False when there was no such file.
    pub(super) fn recycle(&self, path: &Path) -> io::Result<bool> {
        let size = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
            // Linked elsewhere too (a file shared by messages of one commit): its content
            // must stay for the others.
            Ok(meta) if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 => {
                return not_found_is_false(fs::remove_file(path));
            }
            Ok(meta) => meta.len(),
        };
        let result = {
            let free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            if free.len() < MAX_FREE {
                drop(free);
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let spare = self.dir.join(format!("f.{n}"));
                fs::rename(path, &spare).and_then(|()| {
                    // A big spare is emptied now, to bound the space spares take.
                    if size > KEEP_CONTENT {
                        OpenOptions::new().write(true).open(&spare)?.set_len(0)?;
                    }
                    Ok(Some(spare))
                })
            } else {
                fs::remove_file(path).map(|()| None)
            }
        };
        match result {
            Ok(Some(spare)) => {
                self.free
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(spare);
                Ok(true)
            }
            Ok(None) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Cut `file` (taken from the pool and overwritten from its start) to the `len` bytes
/// written into it, when a longer content was there before.
pub(super) fn trim(file: &File, len: u64) -> io::Result<()> {
    if file.metadata()?.len() > len {
        file.set_len(len)?;
    }
    Ok(())
}

fn not_found_is_false(result: io::Result<()>) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// rename(2) that fails with `AlreadyExists` rather than replace `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let from = super::c_path(from)?;
    let to = super::c_path(to)?;
    // SAFETY: both paths are NUL-terminated and live for the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
