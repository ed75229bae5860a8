//! What the maildir agent tests share: a fork server on a spool holding one message, and
//! the user its deliveries run as (the current user, or `nobody` when the tests run as
//! root, since a delivery never runs as root).

use mta_core::expand::{LocalMethod, LocalUser};
use runtime_std::delivery::user::{lookup_user, UserLookup};
use runtime_std::server::delivery_worker::LocalJob;
use runtime_std::server::fork_server::ForkServer;
use runtime_std::spool::Spool;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The message every job delivers.
pub const MSGID: &str = "0000000a";

/// A fork server, its directory and the user deliveries run as.
pub struct Fixture {
    pub dir: PathBuf,
    pub forker: Arc<ForkServer>,
    pub user: LocalUser,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fixture {
    /// A fresh directory (mode 0755, so that `nobody` can reach the maildir in it), a
    /// spool with [`MSGID`], and a fork server reading it.
    pub fn start(tag: &str) -> Fixture {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("maildir-agents-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("mode");
        let (spool, _) = Spool::open(dir.join("queue")).expect("spool");
        let mut incoming = spool.create_incoming(MSGID).expect("incoming");
        incoming
            .write_chunk(b"Subject: agents\r\n\r\nHello.\r\n")
            .expect("write");
        incoming
            .add_envelope("0000000a00000001", b"record")
            .expect("envelope");
        incoming.commit().expect("commit");
        let user = delivery_user(&dir);
        let forker =
            Arc::new(ForkServer::start(&spool, &dir.join("control.sock")).expect("fork server"));
        forker.start_reader().expect("reader");
        Fixture { dir, forker, user }
    }

    /// A maildir of the delivery user under the directory, created and owned by them.
    pub fn maildir(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::create_dir_all(&path).expect("maildir");
        let c_path = std::ffi::CString::new(path.to_string_lossy().as_bytes()).expect("path");
        // SAFETY: a NUL-terminated path we own; chown to the user's ids.
        let rc = unsafe { libc::chown(c_path.as_ptr(), self.user.uid, self.user.gid) };
        assert_eq!(rc, 0, "chown {}", path.display());
        path
    }

    /// A maildir delivery of [`MSGID`] into `maildir` as the delivery user.
    pub fn job(&self, maildir: &Path) -> LocalJob {
        LocalJob {
            msgid: MSGID.into(),
            sender: "sender@example.org".into(),
            recipient: "user@example.org".into(),
            user: Some(self.user.clone()),
            method: LocalMethod::Maildir {
                path: maildir.to_string_lossy().into_owned(),
                junk: false,
            },
            hostname: "mx.example.org".into(),
        }
    }

    /// The processes whose parent is the fork server (its agents, and one-shot
    /// children still running).
    #[allow(dead_code)] // not every test binary sharing this module counts them
    pub fn children(&self) -> Vec<libc::pid_t> {
        let parent = self.forker.pid();
        std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|entry| {
                let pid: libc::pid_t = entry.ok()?.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // The fields after the command name (which ends with the last ')').
                let rest = stat.get(stat.rfind(')')? + 2..)?;
                let ppid: libc::pid_t = rest.split(' ').nth(1)?.parse().ok()?;
                (ppid == parent).then_some(pid)
            })
            .collect()
    }
}

/// The current user, or `nobody` as root.
fn delivery_user(home: &Path) -> LocalUser {
    // SAFETY: the get*id calls have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid != 0 {
        return LocalUser {
            name: "me".into(),
            uid,
            gid,
            directory: home.to_string_lossy().into_owned(),
        };
    }
    match lookup_user("nobody") {
        UserLookup::Found(account) => LocalUser {
            name: account.name,
            uid: account.uid,
            gid: account.gid,
            directory: home.to_string_lossy().into_owned(),
        },
        other => panic!("running as root needs the account nobody: {other:?}"),
    }
}

/// The names in `dir`.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}
