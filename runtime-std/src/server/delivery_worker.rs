//! Delivery workers: a fixed pool of threads that run local deliveries (maildir, mbox,
//! mda, lmtp, alias files and commands) away from the engine lock, and
//! [`deliver_local`], the one narrow function every local delivery goes through (the seam
//! where monkey mode can inject faults).

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use mta_core::expand::{LocalMethod, LocalUser};

use crate::delivery::lmtp::{self, LmtpDestination, LmtpRequest};
use crate::delivery::maildir::KnownMaildirs;
use crate::delivery::mda::{self, MdaCommand, MdaEnvironment, DEFAULT_PATH};
use crate::delivery::user::{lookup_user, run_as_user, UserLookup};
use crate::delivery::{dir_sync, maildir, mbox, DeliveryOutcome};
use crate::spool::Spool;

/// How long an MDA command or LMTP exchange may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long to wait for an mbox lock.
const MBOX_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of an MDA's stderr kept for the failure text.
const MAX_STDERR: usize = 1024;

/// One local delivery to make.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LocalJob {
    /// The queued message.
    pub msgid: String,
    /// The envelope sender, empty for `<>`.
    pub sender: String,
    /// The recipient after expansion.
    pub recipient: String,
    /// The account the delivery runs as; `None` for the daemon's own unprivileged
    /// account (files and commands of the aliases table).
    pub user: Option<LocalUser>,
    /// How.
    pub method: LocalMethod,
    /// Our host name (LMTP `LHLO`).
    pub hostname: String,
}

/// Run one local delivery: read the message from the spool and hand it to the agent of
/// `job.method`, as the recipient's user when the daemon is root.
pub fn deliver_local(spool: &Spool, job: &LocalJob) -> DeliveryOutcome {
    let account = match &job.user {
        Some(user) => user.clone(),
        None => match daemon_account() {
            Ok(account) => account,
            Err(outcome) => return outcome,
        },
    };
    let mut message = match spool.read_message(&job.msgid) {
        Ok(file) => file,
        Err(e) => return DeliveryOutcome::from_io("spool read", &e),
    };
    let home = PathBuf::from(&account.directory);
    let (local, domain) = match job.recipient.rsplit_once('@') {
        Some((l, d)) => (l.to_owned(), d.to_owned()),
        None => (job.recipient.clone(), String::new()),
    };
    let mda_env = |home: &Path| MdaEnvironment {
        home: home.to_path_buf(),
        user: account.name.clone(),
        path: DEFAULT_PATH.to_owned(),
        extension: local.split_once('+').map(|(_, tag)| tag.to_owned()),
        local: local.clone(),
        domain: domain.clone(),
        recipient: job.recipient.clone(),
        sender: job.sender.clone(),
    };
    match &job.method {
        LocalMethod::Maildir { path, junk } => {
            let path = PathBuf::from(path);
            let junk = *junk;
            let spool = spool.clone();
            run_as_user(account.uid, account.gid, &home, move || {
                deliver_maildir(&path, junk, &mut message, &|| !spool.owner_alive())
            })
        }
        LocalMethod::Mbox => {
            let path = PathBuf::from("/var/mail").join(&account.name);
            if is_root() {
                if let Err(e) = mbox::create_mailbox(&path, account.uid, account.gid) {
                    return DeliveryOutcome::from_io("mbox create", &e);
                }
            }
            let sender = job.sender.clone();
            run_as_user(account.uid, account.gid, &home, move || {
                mbox::deliver(
                    &path,
                    &sender,
                    SystemTime::now(),
                    &mut message,
                    MBOX_LOCK_TIMEOUT,
                )
            })
        }
        LocalMethod::File { path } => {
            let path = PathBuf::from(path);
            let sender = job.sender.clone();
            run_as_user(account.uid, account.gid, &home, move || {
                mbox::deliver(
                    &path,
                    &sender,
                    SystemTime::now(),
                    &mut message,
                    MBOX_LOCK_TIMEOUT,
                )
            })
        }
        LocalMethod::Mda { command } | LocalMethod::Command { command } => {
            let cmd = MdaCommand {
                command: command.clone(),
                env: mda_env(&home),
                timeout: DELIVERY_TIMEOUT,
                max_stderr: MAX_STDERR,
            };
            run_as_user(account.uid, account.gid, &home, move || {
                mda::deliver(&cmd, &mut message)
            })
        }
        LocalMethod::Lmtp { dest, rcpt } => {
            let destination = match LmtpDestination::parse(dest) {
                Ok(d) => d,
                Err(e) => return DeliveryOutcome::TempFail(format!("lmtp destination: {e}")),
            };
            let request = LmtpRequest {
                destination,
                lhlo_name: job.hostname.clone(),
                sender: job.sender.clone(),
                recipients: vec![rcpt.clone()],
                timeout: DELIVERY_TIMEOUT,
            };
            lmtp::deliver(&request, &mut message)
                .into_iter()
                .next()
                .unwrap_or_else(|| DeliveryOutcome::TempFail("lmtp: no reply".to_owned()))
        }
    }
}

/// A maildir delivery in this process, sharing what concurrent ones can: the maildir is
/// checked once per process ([`KnownMaildirs`]) and the fsync of `new/` is shared with
/// the other delivery threads ([`dir_sync::shared`]). The outcome is the same as
/// [`maildir::deliver_unless`]'s: delivered only once the directory entry is durable.
fn deliver_maildir(
    path: &Path,
    junk: bool,
    message: &mut dyn Read,
    abandon: &dyn Fn() -> bool,
) -> DeliveryOutcome {
    static KNOWN: Mutex<Option<KnownMaildirs>> = Mutex::new(None);
    let known = |dir: &Path| {
        KNOWN
            .lock()
            .is_ok_and(|known| known.as_ref().is_some_and(|k| k.knows(dir)))
    };
    // Checked outside the lock: a slow file system must not hold up other maildirs.
    let checked = if known(path) {
        Ok(())
    } else {
        maildir::ensure_maildir(path).map(|()| {
            if let Ok(mut known) = KNOWN.lock() {
                known.get_or_insert_with(KnownMaildirs::new).remember(path);
            }
        })
    };
    let stored = checked
        .and_then(|()| maildir::store(path, junk, message, abandon))
        .and_then(|new_dir| dir_sync::shared().sync(&new_dir));
    match stored {
        Ok(()) => DeliveryOutcome::Delivered,
        Err(e) => maildir::failure(path, &e),
    }
}

/// The account deliveries without a user run as: the current user, or `nobody` when
/// the daemon runs as root (never root itself).
fn daemon_account() -> Result<LocalUser, DeliveryOutcome> {
    let name = if is_root() {
        "nobody".to_owned()
    } else {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        return Ok(LocalUser {
            name: std::env::var("USER").unwrap_or_else(|_| uid.to_string()),
            uid,
            // SAFETY: getegid has no preconditions.
            gid: unsafe { libc::getegid() },
            directory: std::env::var("HOME").unwrap_or_else(|_| "/".to_owned()),
        });
    };
    match lookup_user(&name) {
        UserLookup::Found(a) => Ok(LocalUser {
            name: a.name,
            uid: a.uid,
            gid: a.gid,
            directory: a.home.to_string_lossy().into_owned(),
        }),
        UserLookup::NotFound => Err(DeliveryOutcome::TempFail(format!("no account {name}"))),
        UserLookup::TempFail(reason) => Err(DeliveryOutcome::TempFail(reason)),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

type Task = Box<dyn FnOnce() + Send>;

struct PoolState {
    tasks: VecDeque<Task>,
    running: usize,
    closed: bool,
}

struct PoolInner {
    state: Mutex<PoolState>,
    wake: Condvar,
    idle: Condvar,
}

/// A fixed pool of delivery threads. Cheap to clone.
#[derive(Clone)]
pub struct DeliveryPool {
    inner: Arc<PoolInner>,
}

impl DeliveryPool {
    /// Start `threads` workers (at least one), named `delivery-N`.
    ///
    /// # Errors
    ///
    /// When no thread can be started.
    pub fn start(threads: usize) -> std::io::Result<DeliveryPool> {
        DeliveryPool::start_named("delivery", threads)
    }

    /// Start `threads` workers (at least one) named `NAME-N`, for another kind of blocking
    /// task (the engine host's lookups).
    ///
    /// # Errors
    ///
    /// When no thread can be started.
    pub fn start_named(name: &str, threads: usize) -> std::io::Result<DeliveryPool> {
        let pool = DeliveryPool {
            inner: Arc::new(PoolInner {
                state: Mutex::new(PoolState {
                    tasks: VecDeque::new(),
                    running: 0,
                    closed: false,
                }),
                wake: Condvar::new(),
                idle: Condvar::new(),
            }),
        };
        for n in 0..threads.max(1) {
            let inner = Arc::clone(&pool.inner);
            std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || worker(&inner))?;
        }
        Ok(pool)
    }

    /// Queue a delivery task; it runs on the first free worker.
    pub fn spawn(&self, task: impl FnOnce() + Send + 'static) {
        if let Ok(mut state) = self.inner.state.lock() {
            state.tasks.push_back(Box::new(task));
        }
        self.inner.wake.notify_one();
    }

    /// Stop taking new tasks' results into account and wait up to `limit` for the queued
    /// and running ones to finish; true when they all did.
    pub fn drain(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let Ok(mut state) = self.inner.state.lock() else {
            return false;
        };
        while state.running > 0 || !state.tasks.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            state = match self.inner.idle.wait_timeout(state, left) {
                Ok((guard, _)) => guard,
                Err(_) => return false,
            };
        }
        state.closed = true;
        self.inner.wake.notify_all();
        true
    }
}

fn worker(inner: &PoolInner) {
    loop {
        let task = {
            let Ok(mut state) = inner.state.lock() else {
                return;
            };
            loop {
                if let Some(task) = state.tasks.pop_front() {
                    state.running = state.running.saturating_add(1);
                    break task;
                }
                if state.closed {
                    return;
                }
                state = match inner.wake.wait(state) {
                    Ok(guard) => guard,
                    Err(_) => return,
                };
            }
        };
        task();
        if let Ok(mut state) = inner.state.lock() {
            state.running = state.running.saturating_sub(1);
        }
        inner.idle.notify_all();
    }
}
