//! Dropping root after start-up, as OpenSMTPD runs its network-facing processes as
//! `_smtpd`: a daemon started as root binds its listeners, starts the fork server (which
//! stays root for deliveries, system-account AUTH and `.forward` files), takes the queue
//! over for the unprivileged account, reads the TLS material only root can read, and
//! then becomes that account for good ([`drop_to`]).

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use mta_core::config::{Config, DeliveryMethod};

use crate::delivery::user::{lookup_user, UserLookup};
use crate::tls::ClientTls;

/// The account the daemon runs as after start-up when started as root (OpenSMTPD's name).
pub const DEFAULT_ACCOUNT: &str = "_smtpd";

/// The unprivileged account the daemon becomes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RunAs {
    /// The login name.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
}

/// Look the account `name` up. A missing account is an error that says how to create it,
/// since a root daemon refuses to go on without it.
///
/// # Errors
/// The account does not exist, is root itself, or the user database cannot be read.
pub fn find_account(name: &str) -> Result<RunAs, String> {
    match lookup_user(name) {
        UserLookup::Found(account) if account.uid == 0 => Err(format!(
            "the account {name} to run as is root (uid 0): give an unprivileged one with -u USER"
        )),
        UserLookup::Found(account) => Ok(RunAs {
            name: account.name,
            uid: account.uid,
            gid: account.gid,
        }),
        UserLookup::NotFound => Err(format!(
            "started as root, the daemon runs as the account {name} after binding, and there \
             is no such account: create it (`useradd --system --home-dir /var/empty --shell \
             /usr/sbin/nologin {name}`) or name another one with -u USER"
        )),
        UserLookup::TempFail(e) => Err(format!("cannot look the account {name} up: {e}")),
    }
}

/// Give the queue directory to `account`: every file and directory below it (symbolic
/// links themselves, never their targets) gets its owner, and the directory itself mode
/// 0700, so that a spool left by a daemon that ran as root is taken over. `created_parent`
/// is the queue's parent when the daemon created it: it is given to the account too (not
/// recursively; its mode is kept, as it may hold other users' maildirs).
///
/// # Errors
/// A file that cannot be listed or changed.
pub fn take_over_queue(
    queue_dir: &Path,
    created_parent: Option<&Path>,
    account: &RunAs,
) -> io::Result<()> {
    if let Some(parent) = created_parent {
        chown(parent, account)?;
    }
    chown_tree(queue_dir, account)?;
    std::fs::set_permissions(queue_dir, std::fs::Permissions::from_mode(0o700))
}

fn chown_tree(path: &Path, account: &RunAs) -> io::Result<()> {
    chown(path, account)?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), account)?;
        }
    }
    Ok(())
}

fn chown(path: &Path, account: &RunAs) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: a NUL-terminated path we own; lchown does not follow a symbolic link.
    if unsafe { libc::lchown(c_path.as_ptr(), account.uid, account.gid) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("chown {}: {e}", path.display()),
        ));
    }
    Ok(())
}

/// Become `account` for good: supplementary groups, group, then user, for every thread
/// of the process (glibc's set*id calls apply process-wide), then check that root cannot
/// be regained.
///
/// # Errors
/// A call that fails, or ids that did not change.
pub fn drop_to(account: &RunAs) -> Result<(), String> {
    switch_ids(account.uid, account.gid)
}

/// The set*id sequence of [`drop_to`], also used by the fork server's children that read
/// a user's files as that user.
pub(crate) fn switch_ids(uid: u32, gid: u32) -> Result<(), String> {
    let groups = [gid];
    // SAFETY: plain system calls on values we own.
    unsafe {
        if libc::setgroups(1, groups.as_ptr()) != 0 {
            return Err(format!("setgroups: {}", io::Error::last_os_error()));
        }
        if libc::setgid(gid) != 0 {
            return Err(format!("setgid({gid}): {}", io::Error::last_os_error()));
        }
        if libc::setuid(uid) != 0 {
            return Err(format!("setuid({uid}): {}", io::Error::last_os_error()));
        }
    }
    // SAFETY: the get*id calls have no preconditions and cannot fail.
    let (ruid, euid, rgid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    if (ruid, euid, rgid, egid) != (uid, uid, gid, gid) {
        return Err(format!(
            "ids did not change: uid {ruid}/{euid}, gid {rgid}/{egid}, wanted {uid}/{gid}"
        ));
    }
    // SAFETY: setuid(0) only tests that root is gone; if it succeeds we refuse to go on.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err("root could be regained after setuid".to_owned());
    }
    Ok(())
}

/// What a relay's rustls client configuration depends on, as the relay agent keys it:
/// certificate verification, the CA name when verifying, the client certificate's pki name.
pub type ClientTlsKey = (bool, Option<String>, Option<String>);

static CLIENT_TLS: OnceLock<HashMap<ClientTlsKey, Arc<rustls::ClientConfig>>> = OnceLock::new();

/// Build, while still root, the client TLS configurations of every relay action that
/// names a `pki` or a `ca` (their key files are often readable by root only), for
/// [`preloaded_client_tls`]. A configuration that cannot be built is left out: the relay
/// agent then builds it itself and logs why it fails. Only the first call counts.
pub fn preload_client_tls(config: &Config) {
    let _ = CLIENT_TLS.set(client_tls_of(config));
}

/// The client TLS configurations of `config`'s relay actions with a `pki` or a `ca`.
fn client_tls_of(config: &Config) -> HashMap<ClientTlsKey, Arc<rustls::ClientConfig>> {
    let mut built = HashMap::new();
    for action in config.actions.values() {
        let DeliveryMethod::Relay(relay) = &action.method else {
            continue;
        };
        if relay.pki.is_none() && relay.ca.is_none() {
            continue;
        }
        let keys = [
            (false, None, relay.pki.clone()),
            (true, relay.ca.clone(), relay.pki.clone()),
        ];
        for key in keys {
            if built.contains_key(&key) {
                continue;
            }
            if let Some(tls) = build_client_tls(config, &key) {
                built.insert(key, tls);
            }
        }
    }
    built
}

fn build_client_tls(config: &Config, key: &ClientTlsKey) -> Option<Arc<rustls::ClientConfig>> {
    let (verify, ca, pki) = key;
    let ca_file = match ca {
        Some(name) => Some(config.ca.get(name)?.as_str()),
        None => None,
    };
    match pki {
        None => ClientTls::client_config(*verify, ca_file).ok(),
        Some(name) => {
            let pki = config.pki.get(name)?;
            let (cert, key) = pki.cert.as_deref().zip(pki.key.as_deref())?;
            ClientTls::client_config_with_cert(*verify, ca_file, cert, key).ok()
        }
    }
}

/// The client TLS configuration [`preload_client_tls`] built for `key`, if any: the
/// relay agent asks here first, since after the drop it may no longer read the files.
pub fn preloaded_client_tls(key: &ClientTlsKey) -> Option<Arc<rustls::ClientConfig>> {
    CLIENT_TLS.get()?.get(key).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_account_says_how_to_create_it() {
        let e = find_account("no-such-account-smtpd-test").expect_err("missing");
        assert!(e.contains("useradd --system"), "{e}");
        assert!(e.contains("-u USER"), "{e}");
    }

    #[test]
    fn root_is_refused_as_the_account_to_run_as() {
        let e = find_account("root").expect_err("root");
        assert!(e.contains("uid 0"), "{e}");
    }

    #[test]
    fn the_queue_is_taken_over_with_mode_0700() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("smtpd-privdrop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("queue/sub")).expect("dirs");
        std::fs::write(dir.join("queue/sub/file"), b"x").expect("file");
        std::os::unix::fs::symlink("/nonexistent", dir.join("queue/link")).expect("link");
        // SAFETY: the get*id calls have no preconditions.
        let me = RunAs {
            name: String::new(),
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
        };
        take_over_queue(&dir.join("queue"), Some(&dir), &me).expect("taken over");
        let meta = std::fs::metadata(dir.join("queue")).expect("queue");
        assert_eq!(meta.mode() & 0o777, 0o700);
        let file = std::fs::metadata(dir.join("queue/sub/file")).expect("file");
        assert_eq!((file.uid(), file.gid()), (me.uid, me.gid));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn relay_client_certificates_are_read_ahead() {
        let dir = std::env::temp_dir().join(format!("smtpd-preload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let made = rcgen::generate_simple_self_signed(vec!["client.example.org".to_owned()])
            .expect("certificate");
        let (cert, key) = (dir.join("c.crt"), dir.join("c.key"));
        std::fs::write(&cert, made.cert.pem()).expect("cert");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("key");
        let text = format!(
            "pki client cert \"{c}\"\npki client key \"{k}\"\nca peers cert \"{c}\"\n\
             action \"out\" relay host smtp+tls://mx.example.org pki client ca peers\n\
             action \"plain\" relay\n\
             match from any for any action \"out\"\n",
            c = cert.display(),
            k = key.display()
        );
        let config = mta_core::config::parse(&text, "t.conf", &[], &mut |p| Err(p.to_owned()))
            .expect("configuration");
        let built = client_tls_of(&config);
        let mut keys: Vec<_> = built.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                (false, None, Some("client".to_owned())),
                (true, Some("peers".to_owned()), Some("client".to_owned())),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_is_preloaded_without_relay_tls_material() {
        assert!(preloaded_client_tls(&(true, Some("none".into()), None)).is_none());
    }
}
