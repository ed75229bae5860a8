//! The expander's lookups: accounts, `.forward` files and `:include:` files. An answer
//! known from the last few seconds ([`known_answer`]) is given at once, without a system
//! call, so that a session's question never blocks its caller on the common path (the
//! smol daemon asks its recipients on its executor); any other lookup ([`lookup`]) runs
//! on the engine host's lookup threads and its answer is fed back to the engine later.
//! A `.forward` created or changed takes effect within [`CACHE_TTL`].

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use mta_core::expand::{self, FileLookup, LocalUser, UserLookup};
use mta_core::faults::Fault;

use crate::delivery::{self, user::lookup_user};

/// How long an answer stays known.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// Most answers of a kind kept (the memory is emptied when full).
const CACHE_MAX: usize = 1024;
/// Largest `.forward` or `:include:` file read.
const MAX_FILE: u64 = 1024 * 1024;

/// Answers remembered for [`CACHE_TTL`], temporary failures excepted.
struct Memory<K, V> {
    entries: OnceLock<Mutex<HashMap<K, (Instant, V)>>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Memory<K, V> {
    const fn new() -> Self {
        Memory {
            entries: OnceLock::new(),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.get_or_init(Mutex::default).lock().ok()?;
        let (at, value) = entries.get(key)?;
        (at.elapsed() < CACHE_TTL).then(|| value.clone())
    }

    fn put(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.get_or_init(Mutex::default).lock() {
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
            entries.insert(key, (Instant::now(), value));
        }
    }
}

static ACCOUNTS: Memory<String, UserLookup> = Memory::new();
/// `.forward` files by (uid, home directory).
static FORWARDS: Memory<(u32, String), FileLookup> = Memory::new();

/// The answer to `question` if it is known from the last few seconds (no system call).
pub fn known_answer(question: &expand::Question) -> Option<expand::Answer> {
    match question {
        expand::Question::User { name } => ACCOUNTS.get(name).map(expand::Answer::User),
        expand::Question::Forward { user } => FORWARDS
            .get(&(user.uid, user.directory.clone()))
            .map(expand::Answer::File),
        expand::Question::Include { .. } => None,
    }
}

/// Answer one of the expander's questions with a blocking lookup (the seam where monkey
/// mode can make lookups fail temporarily), and remember the answer.
pub fn lookup(question: &expand::Question) -> expand::Answer {
    let kind = match question {
        expand::Question::User { .. } => Fault::UserLookup,
        _ => Fault::FileLookup,
    };
    if crate::monkey::strike(kind).is_some() {
        return match question {
            expand::Question::User { .. } => expand::Answer::User(UserLookup::TempFail),
            _ => expand::Answer::File(FileLookup::TempFail),
        };
    }
    match question {
        expand::Question::User { name } => {
            let found = account(name);
            if found != UserLookup::TempFail {
                ACCOUNTS.put(name.clone(), found.clone());
            }
            expand::Answer::User(found)
        }
        // Through the root fork server when the home is closed to the daemon's account.
        expand::Question::Forward { user } => {
            let found = forward(user);
            if found != FileLookup::TempFail {
                FORWARDS.put((user.uid, user.directory.clone()), found.clone());
            }
            expand::Answer::File(found)
        }
        expand::Question::Include { path } => expand::Answer::File(read_file(Path::new(path))),
    }
}

fn account(name: &str) -> UserLookup {
    match lookup_user(name) {
        delivery::user::UserLookup::Found(account) => UserLookup::Found {
            uid: account.uid,
            gid: account.gid,
            directory: account.home.to_string_lossy().into_owned(),
        },
        delivery::user::UserLookup::NotFound => UserLookup::NotFound,
        delivery::user::UserLookup::TempFail(_) => UserLookup::TempFail,
    }
}

fn forward(user: &LocalUser) -> FileLookup {
    crate::server::fork_server::forward_file(user)
}

/// Read a small text file (an `:include:` list).
fn read_file(path: &Path) -> FileLookup {
    match std::fs::metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileLookup::Absent,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return FileLookup::Absent,
        Err(_) => return FileLookup::TempFail,
    }
    let mut text = String::new();
    match std::fs::File::open(path).and_then(|f| f.take(MAX_FILE).read_to_string(&mut text)) {
        Ok(_) => FileLookup::Content(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileLookup::Absent,
        Err(_) => FileLookup::TempFail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_looked_up_is_known_for_a_while() {
        let root = expand::Question::User {
            name: "root".to_owned(),
        };
        let missing = expand::Question::User {
            name: "no-such-user-lookups-test".to_owned(),
        };
        let answer = lookup(&root);
        assert!(matches!(
            answer,
            expand::Answer::User(UserLookup::Found { uid: 0, .. })
        ));
        assert_eq!(known_answer(&root), Some(answer));
        assert_eq!(known_answer(&missing), None, "never looked up");
        let absent = lookup(&missing);
        assert_eq!(absent, expand::Answer::User(UserLookup::NotFound));
        assert_eq!(known_answer(&missing), Some(absent));
        let forward = expand::Question::Forward {
            user: LocalUser {
                name: "t".to_owned(),
                uid: 4_000_123,
                gid: 4_000_123,
                directory: "/nonexistent-lookups-test".to_owned(),
            },
        };
        assert_eq!(known_answer(&forward), None);
        let read = lookup(&forward);
        assert_eq!(read, expand::Answer::File(FileLookup::Absent));
        assert_eq!(known_answer(&forward), Some(read));
        let include = expand::Question::Include {
            path: "/nonexistent-lookups-test/list".to_owned(),
        };
        let _ = lookup(&include);
        assert_eq!(
            known_answer(&include),
            None,
            "include files are read each time"
        );
    }
}
