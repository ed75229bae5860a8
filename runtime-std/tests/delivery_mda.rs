//! MDA delivery: exit statuses mapped to outcomes, OpenSMTPD's environment, stdin, timeout.

use runtime_std::delivery::mda::{self, MdaCommand, MdaEnvironment, DEFAULT_PATH};
use runtime_std::delivery::DeliveryOutcome;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
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
        let path =
            std::env::temp_dir().join(format!("mda-test-{tag}-{}-{n}-{nanos}", std::process::id()));
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

fn command(home: &Path, line: &str) -> MdaCommand {
    MdaCommand {
        command: line.to_owned(),
        env: MdaEnvironment {
            home: home.to_path_buf(),
            user: "alice".into(),
            path: DEFAULT_PATH.into(),
            local: "alice+lists".into(),
            domain: "example.org".into(),
            recipient: "alice+lists@example.org".into(),
            sender: "bob@example.net".into(),
            extension: Some("lists".into()),
        },
        timeout: Duration::from_secs(10),
        max_stderr: 200,
    }
}

#[test]
fn exit_zero_delivers_the_message_on_stdin() {
    let dir = TempDir::new("stdin");
    let message = b"Subject: x\n\n$(touch pwned) `id` ; rm -rf /\n".repeat(3000);
    let cmd = command(dir.path(), "cat > delivered");
    assert_eq!(
        mda::deliver(&cmd, &mut message.as_slice()),
        DeliveryOutcome::Delivered
    );
    assert_eq!(
        std::fs::read(dir.path().join("delivered")).unwrap(),
        message
    );
    assert!(!dir.path().join("pwned").exists());
}

#[test]
fn the_command_reads_unix_line_ends() {
    let dir = TempDir::new("crlf");
    let cmd = command(dir.path(), "cat > delivered");
    let outcome = mda::deliver(&cmd, &mut &b"Subject: a\r\n\r\nbody\r\n"[..]);
    assert_eq!(outcome, DeliveryOutcome::Delivered);
    assert_eq!(
        std::fs::read(dir.path().join("delivered")).unwrap(),
        b"Subject: a\n\nbody\n"
    );
}

#[test]
fn opensmtpd_environment_is_visible_and_nothing_else() {
    let dir = TempDir::new("env");
    let cmd = command(dir.path(), "env | sort > env.txt; pwd > pwd.txt");
    assert!(mda::deliver(&cmd, &mut &b""[..]).is_delivered());
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    let expected = [
        "DOMAIN=example.org".to_owned(),
        "EXTENSION=lists".into(),
        format!("HOME={}", dir.path().display()),
        "LOCAL=alice+lists".into(),
        "LOGNAME=alice".into(),
        "PATH=/usr/bin:/bin".into(),
        "RECIPIENT=alice+lists@example.org".into(),
        "SENDER=bob@example.net".into(),
        "SHELL=/bin/sh".into(),
        "USER=alice".into(),
    ];
    for line in &expected {
        assert!(env.lines().any(|l| l == line), "missing {line} in\n{env}");
    }
    // The shell itself adds PWD, SHLVL and `_`; nothing from the test's environment leaks.
    for line in env.lines() {
        let name = line.split('=').next().unwrap();
        assert!(
            expected.iter().any(|e| e.starts_with(&format!("{name}=")))
                || ["PWD", "SHLVL", "_", "OLDPWD"].contains(&name),
            "unexpected variable {line}"
        );
    }
    let pwd = std::fs::read_to_string(dir.path().join("pwd.txt")).unwrap();
    assert_eq!(Path::new(pwd.trim()), dir.path());
}

#[test]
fn bounce_sender_is_empty_and_no_extension_means_no_variable() {
    let dir = TempDir::new("bounce");
    let mut cmd = command(dir.path(), "env > env.txt");
    cmd.env.sender = String::new();
    cmd.env.extension = None;
    assert!(mda::deliver(&cmd, &mut &b"x"[..]).is_delivered());
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert!(env.lines().any(|l| l == "SENDER="), "{env}");
    assert!(!env.contains("EXTENSION="), "{env}");
}

#[test]
fn tempfail_exit_is_temporary_with_stderr_text() {
    let dir = TempDir::new("tempfail");
    let cmd = command(dir.path(), "echo 'mailbox   busy' >&2; exit 75");
    assert_eq!(
        mda::deliver(&cmd, &mut &b"x"[..]),
        DeliveryOutcome::TempFail("command exited with status 75: mailbox busy".into())
    );
}

#[test]
fn other_exits_are_permanent_and_stderr_is_bounded() {
    let dir = TempDir::new("permfail");
    let cmd = command(
        dir.path(),
        "head -c 100000 /dev/zero | tr '\\0' e >&2; exit 1",
    );
    match mda::deliver(&cmd, &mut &b"x"[..]) {
        DeliveryOutcome::PermFail(text) => {
            assert!(
                text.starts_with("command exited with status 1: eee"),
                "{text}"
            );
            assert!(text.len() < 300, "{}", text.len());
        }
        other => panic!("{other:?}"),
    }
    let cmd = command(dir.path(), "exit 67");
    assert!(matches!(
        mda::deliver(&cmd, &mut &b"x"[..]),
        DeliveryOutcome::PermFail(_)
    ));
}

#[test]
fn a_command_that_ignores_stdin_still_gets_its_verdict() {
    let dir = TempDir::new("ignore");
    let big = vec![b'a'; 4 << 20];
    let cmd = command(dir.path(), "exit 0");
    assert_eq!(
        mda::deliver(&cmd, &mut big.as_slice()),
        DeliveryOutcome::Delivered
    );
}

#[test]
fn timeout_kills_the_command_and_its_children() {
    let dir = TempDir::new("timeout");
    let mut cmd = command(dir.path(), "sleep 30 & sleep 30; exit 0");
    cmd.timeout = Duration::from_millis(300);
    let start = Instant::now();
    let outcome = mda::deliver(&cmd, &mut &b"x"[..]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    match outcome {
        DeliveryOutcome::TempFail(text) => assert!(text.contains("timed out"), "{text}"),
        other => panic!("{other:?}"),
    }
}
