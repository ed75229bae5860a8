//! System accounts: finding a user's line in a shadow(5) text, refusing locked and
//! password-less accounts, and the root requirement of `auth` without a table.

use runtime_std::auth::{
    check_account, find_hash, is_usable, system_auth_available, try_check, AuthError,
};
use std::path::PathBuf;

const HUNTER2: &str = "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfnj.";
const YESCRYPT_HUNTER2: &str =
    "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$PmNgGTLMFjJn.URBv11CpTEm5RwlKtPjRtztKe6.b33";

fn sample() -> String {
    format!(
        "root:*:19000:0:99999:7:::\n\
         daemon:*:19000:0:99999:7:::\n\
         alice:{HUNTER2}:19000:0:99999:7:::\n\
         bob:!{HUNTER2}:19000:0:99999:7:::\n\
         carol::19000:0:99999:7:::\n\
         dave:!!:19000::::::\n\
         erin:{YESCRYPT_HUNTER2}:19500:0:99999:7:::\n\
         alice2:$1$abc$OGyl6dDvZCDiGmIVbeuCq/:19000:0:99999:7:::\n\
         short:{HUNTER2}\n"
    )
}

/// A private file under the system's temporary directory, removed on drop.
struct TempShadow(PathBuf);

impl TempShadow {
    fn new(name: &str, text: &str) -> TempShadow {
        let path = std::env::temp_dir().join(format!("auth-shadow-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempShadow(path)
    }
}

impl Drop for TempShadow {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_users_hash_is_the_second_field_of_their_line() {
    let text = sample();
    assert_eq!(find_hash(&text, "alice"), Some(HUNTER2));
    assert_eq!(find_hash(&text, "erin"), Some(YESCRYPT_HUNTER2));
    assert_eq!(find_hash(&text, "root"), Some("*"));
    assert_eq!(find_hash(&text, "carol"), Some(""));
    assert_eq!(find_hash(&text, "short"), Some(HUNTER2));
}

#[test]
fn names_match_exactly() {
    let text = sample();
    for user in [
        "ALICE",
        "alic",
        "alice ",
        " alice",
        "",
        "nobody",
        "alice:",
        "alice\nbob",
    ] {
        assert_eq!(find_hash(&text, user), None, "{user:?}");
    }
    assert!(find_hash(&text, "alice2").is_some_and(|h| h.starts_with("$1$")));
    // A name smuggling a field separator never selects a line.
    assert_eq!(find_hash(&text, "alice:$6$"), None);
}

#[test]
fn locked_and_passwordless_accounts_are_unusable() {
    for hash in ["", "*", "!", "!!", "!*", &format!("!{HUNTER2}"), "*LK*"] {
        assert!(!is_usable(hash), "{hash:?}");
    }
    assert!(is_usable(HUNTER2));
    assert!(is_usable(YESCRYPT_HUNTER2));
}

#[test]
fn accounts_are_checked_against_a_shadow_file() {
    let shadow = TempShadow::new("accounts", &sample());
    let check = |user: &str, password: &str| {
        check_account(&shadow.0, user, password.as_bytes()).map_err(|e| e.to_string())
    };
    assert_eq!(check("alice", "hunter2"), Ok(true));
    assert_eq!(check("erin", "hunter2"), Ok(true));
    assert_eq!(check("alice", "hunter3"), Ok(false));
    assert_eq!(check("erin", "Hunter2"), Ok(false));
    // Locked (with the right password behind the `!`), disabled, password-less.
    assert_eq!(check("bob", "hunter2"), Ok(false));
    assert_eq!(check("root", ""), Ok(false));
    assert_eq!(check("root", "*"), Ok(false));
    assert_eq!(check("carol", ""), Ok(false));
    assert_eq!(check("dave", "!!"), Ok(false));
    // Unknown users.
    assert_eq!(check("mallory", "hunter2"), Ok(false));
    assert_eq!(check("", ""), Ok(false));
    // A hash we cannot check is an error to log, not a verdict.
    assert!(matches!(
        check_account(&shadow.0, "alice2", b"x"),
        Err(AuthError::UnknownScheme { .. })
    ));
}

#[test]
fn an_unreadable_shadow_file_is_an_error() {
    let missing = std::env::temp_dir().join(format!("auth-no-shadow-{}", std::process::id()));
    assert!(matches!(
        check_account(&missing, "alice", b"hunter2"),
        Err(AuthError::Shadow { .. })
    ));
}

/// What a daemon not running as root sees: system accounts refused with a message
/// that says why and what to do instead.
fn assert_non_root_refuses() {
    let outcome = try_check("root", None, b"x");
    assert!(
        matches!(outcome, Err(AuthError::SystemAuthNeedsRoot { .. })),
        "{outcome:?}"
    );
    let message = system_auth_available().unwrap_err();
    assert!(message.contains("needs root"), "{message}");
    assert!(message.contains("auth <"), "{message}");
}

/// Run by [`system_accounts_need_root`] in a child as `nobody`; ignored otherwise.
#[test]
#[ignore = "run as a non-root child by system_accounts_need_root"]
fn non_root_probe() {
    assert_non_root_refuses();
}

#[test]
fn system_accounts_need_root() {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert_non_root_refuses();
        return;
    }
    // As root: an unknown account is refused, not an error...
    let outcome = try_check("no-such-user-auth-test", None, b"x");
    assert!(matches!(outcome, Ok(false)), "{outcome:?}");
    assert_eq!(system_auth_available(), Ok(()));
    // ...and the same calls as `nobody` refuse with the explanation.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "non_root_probe", "--ignored", "--test-threads=1"])
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) => assert!(status.success(), "the probe as nobody failed"),
        // A test binary in a directory `nobody` cannot enter: nothing to learn.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("non-root probe not run: {e}");
        }
        Err(e) => panic!("cannot run the non-root probe: {e}"),
    }
}

#[test]
fn a_table_hash_needs_no_root() {
    assert!(matches!(
        try_check("anyone", Some(HUNTER2), b"hunter2"),
        Ok(true)
    ));
    assert!(matches!(
        try_check("anyone", Some(HUNTER2), b"hunter"),
        Ok(false)
    ));
    assert!(!runtime_std::auth::check(
        "anyone",
        Some("$1$abc$OGyl6dDvZCDiGmIVbeuCq/"),
        b"x"
    ));
    assert!(runtime_std::auth::check(
        "anyone",
        Some(HUNTER2),
        b"hunter2"
    ));
}

#[test]
fn unknown_and_locked_accounts_cost_a_real_check() {
    // The decoy check runs for accounts that cannot log in: it must be a well-formed
    // hash, or it would be refused at once and the time would tell them apart.
    let shadow = TempShadow::new("timing", &sample());
    // The fastest of a few runs, so that a busy machine does not make it flaky.
    let time = |user: &str| {
        (0..5)
            .map(|_| {
                let start = std::time::Instant::now();
                assert!(matches!(
                    check_account(&shadow.0, user, b"guess"),
                    Ok(false)
                ));
                start.elapsed()
            })
            .min()
            .unwrap()
    };
    let real = time("alice");
    let unknown = time("mallory");
    let locked = time("bob");
    assert!(unknown * 4 > real, "unknown {unknown:?} vs real {real:?}");
    assert!(locked * 4 > real, "locked {locked:?} vs real {real:?}");
}
