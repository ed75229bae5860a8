//! The control socket end to end: a `ControlServer` with a fake target over a temporary
//! UNIX socket, answering a real `ControlClient` and the `smtpctl` binary.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mta_core::control::{Agent, QueueRow, Request, Response, Status, Submission};
use mta_core::scheduler::Target;
use runtime_std::control::{permitted, ControlClient, ControlServer, ControlTarget};

/// Answers from a script and records what it was asked, with the peer's uid.
#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<(Request, u32)>>,
}

impl ControlTarget for Fake {
    fn control(&self, request: Request, peer_uid: u32) -> Response {
        self.seen.lock().unwrap().push((request.clone(), peer_uid));
        match request {
            Request::ShowStats | Request::Monitor => Response::Stats(vec![
                ("scheduler.envelope".to_owned(), 3),
                ("smtp.session".to_owned(), 2),
                ("uptime".to_owned(), 90061),
            ]),
            Request::ShowStatus => Response::Status(Status {
                mda_paused: true,
                ..Status::default()
            }),
            Request::ShowQueue => Response::Envelopes(vec![row()]),
            Request::Enqueue(s) => Response::Text(vec![format!("{} bytes", s.message.len())]),
            Request::Remove(Target::All) => Response::Error("nothing to remove".to_owned()),
            _ => Response::Ok,
        }
    }
}

fn row() -> QueueRow {
    QueueRow {
        id: 0x1234_5678_9abc_def0,
        family: "inet4".to_owned(),
        kind: "mda".to_owned(),
        flags: "-".to_owned(),
        sender: "bob@example.com".to_owned(),
        original_recipient: "alice@example.org".to_owned(),
        recipient: "alice@example.org".to_owned(),
        created: 1_800_000_000,
        expires: 1_800_345_600,
        last_try: 1_800_000_010,
        tries: 1,
        runstate: "pending".to_owned(),
        delay: 800,
        error: "mailbox busy".to_owned(),
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory (mode 0755, so other users can reach the socket) and its socket path.
fn socket_path() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "control-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.join("smtpd.sock")
}

/// A server with a fake target; its directory is removed when the server is dropped
/// (the server removes its socket first, as it is dropped before the guard).
fn start() -> (Arc<Fake>, ControlServer, PathBuf) {
    let fake = Arc::new(Fake::default());
    let path = socket_path();
    let server = ControlServer::start(&path, fake.clone()).unwrap();
    (fake, server, path)
}

/// Removes a test's directory at the end of the test.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

#[test]
fn a_client_gets_answers_to_several_requests_on_one_connection() {
    let (fake, _server, path) = start();
    let _cleanup = Cleanup(path.clone());
    let mut client = ControlClient::connect(&path).unwrap();
    assert_eq!(
        client.request(&Request::ShowStatus).unwrap(),
        Response::Status(Status {
            mda_paused: true,
            ..Status::default()
        })
    );
    assert_eq!(
        client.request(&Request::Pause(Agent::Mta)).unwrap(),
        Response::Ok
    );
    assert_eq!(
        client.request(&Request::ShowQueue).unwrap(),
        Response::Envelopes(vec![row()])
    );
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|(_, uid)| *uid == euid()));
}

#[test]
fn a_large_submission_passes_whole() {
    let (fake, _server, path) = start();
    let _cleanup = Cleanup(path.clone());
    let mut client = ControlClient::connect(&path).unwrap();
    let message = vec![b'x'; 3 * 1024 * 1024];
    let sub = Submission {
        sender: "alice@example.org".to_owned(),
        recipients: vec!["bob@example.com".to_owned()],
        message: message.clone(),
    };
    assert_eq!(
        client.request(&Request::Enqueue(sub.clone())).unwrap(),
        Response::Text(vec![format!("{} bytes", message.len())])
    );
    assert_eq!(fake.seen.lock().unwrap()[0].0, Request::Enqueue(sub));
}

#[test]
fn garbage_gets_an_error_and_the_connection_closes() {
    let (fake, _server, path) = start();
    let _cleanup = Cleanup(path.clone());
    let mut stream = UnixStream::connect(&path).unwrap();
    stream
        .write_all(b"HELO there, this is not a frame\r\n")
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let response: Response = mta_core::control::decode(&reply).unwrap();
    assert_eq!(
        response,
        Response::Error("not a control protocol frame".to_owned())
    );
    assert!(fake.seen.lock().unwrap().is_empty());
}

#[test]
fn a_second_daemon_cannot_take_a_live_socket_and_a_stale_one_is_replaced() {
    let (_fake, server, path) = start();
    let _cleanup = Cleanup(path.clone());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, if euid() == 0 { 0o666 } else { 0o600 });
    let err = ControlServer::start(&path, Arc::new(Fake::default())).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    drop(server);
    assert!(!path.exists(), "the socket file is removed on drop");
    // A stale socket file (nobody listening) is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    let _again = ControlServer::start(&path, Arc::new(Fake::default())).unwrap();
    assert!(ControlClient::connect(&path).is_ok());
}

#[test]
fn privilege_policy() {
    assert!(permitted(&Request::ShowQueue, 0, 1000));
    assert!(permitted(&Request::ShowQueue, 1000, 1000));
    assert!(!permitted(&Request::ShowQueue, 1001, 1000));
    assert!(!permitted(&Request::Remove(Target::All), 1001, 0));
    assert!(permitted(&Request::ShowStats, 1001, 0));
    let sub = Submission {
        sender: String::new(),
        recipients: vec!["root".to_owned()],
        message: Vec::new(),
    };
    assert!(permitted(&Request::Enqueue(sub), 1001, 0));
}

fn smtpctl(path: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smtpctl"))
        .arg("-s")
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn smtpctl_prints_opensmtpd_formats() {
    let (fake, _server, path) = start();
    let _cleanup = Cleanup(path.clone());
    let (ok, out, _) = smtpctl(&path, &["show", "stats"]);
    assert!(ok);
    assert_eq!(
        out,
        "scheduler.envelope=3\nsmtp.session=2\nuptime=90061\nuptime.human=1d1h1m1s\n"
    );
    let (ok, out, _) = smtpctl(&path, &["sh", "stat"]);
    assert!(!ok, "`stat` is ambiguous between stats and status: {out}");
    let (ok, out, _) = smtpctl(&path, &["sh", "q"]);
    assert!(ok);
    assert_eq!(
        out,
        "123456789abcdef0|inet4|mda||bob@example.com|alice@example.org|alice@example.org|\
         1800000000|1800345600|1800000010|1|pending|800|mailbox busy\n"
    );
    let (ok, out, _) = smtpctl(&path, &["show", "status"]);
    assert!(ok);
    assert_eq!(out, "MDA paused\nMTA running\nSMTP running\n");
    let (ok, _, err) = smtpctl(&path, &["remove", "all"]);
    assert!(!ok);
    assert_eq!(err, "command failed: nothing to remove\n");
    let (ok, out, _) = smtpctl(&path, &["schedule", "12345678"]);
    assert!(ok);
    assert_eq!(
        out, "1 envelope scheduled\n",
        "OpenSMTPD counts the envelopes from the queue"
    );
    let scheduled = Request::Schedule(Target::Message("12345678".parse().unwrap()));
    assert!(fake
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|(request, _)| *request == scheduled));
}

#[test]
fn smtpctl_without_a_daemon_says_so() {
    let path = socket_path();
    let _cleanup = Cleanup(path.clone());
    let (ok, _, err) = smtpctl(&path, &["show", "queue"]);
    assert!(!ok);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn sendmail_t_submits_through_the_socket() {
    let (fake, _server, path) = start();
    let _cleanup = Cleanup(path.clone());
    let mut child = Command::new(env!("CARGO_BIN_EXE_smtpctl"))
        .arg("-s")
        .arg(&path)
        .args(["sendmail", "-t", "-f", "alice@example.org", "-F", "Alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"To: Bob <bob@example.com>\nBcc: carol@example.net\nSubject: hi\n\nhello\n.\nignored\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = fake.seen.lock().unwrap();
    let Request::Enqueue(sub) = &seen[0].0 else {
        panic!("{seen:?}");
    };
    assert_eq!(sub.sender, "alice@example.org");
    assert_eq!(sub.recipients, ["bob@example.com", "carol@example.net"]);
    let text = String::from_utf8(sub.message.clone()).unwrap();
    assert!(
        text.starts_with("From: Alice <alice@example.org>\nDate: "),
        "{text}"
    );
    assert!(!text.contains("Bcc"), "{text}");
    assert!(
        text.ends_with("To: Bob <bob@example.com>\nSubject: hi\n\nhello\n"),
        "{text}"
    );
}

#[test]
fn invoked_as_sendmail_it_takes_sendmail_options() {
    let (fake, _server, path) = start();
    let _cleanup = Cleanup(path.clone());
    let link = path.with_file_name("sendmail");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_smtpctl"), &link).unwrap();
    // Under that name the arguments are sendmail's (smtpctl would call `-bp` an unknown
    // command), and the socket is the default one, so nothing reaches this server.
    let out = Command::new(&link)
        .args(["-bp"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("sendmail: -bp is not supported"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fake.seen.lock().unwrap().is_empty());
}

#[test]
fn only_owner_and_root_may_change_things() {
    if euid() != 0 {
        // The socket is 0600 for a non-root daemon: nobody else can even connect.
        return;
    }
    let (fake, _server, path) = start();
    let _cleanup = Cleanup(path.clone());
    let bin = env!("CARGO_BIN_EXE_smtpctl");
    let run_as_nobody = |args: &[&str]| {
        use std::os::unix::process::CommandExt;
        let out = Command::new(bin)
            .arg("-s")
            .arg(&path)
            .args(args)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let bin_reachable = run_as_nobody(&["show", "stats"]);
    if bin_reachable.1.contains("Permission denied (os error 13)") && !bin_reachable.0 {
        // The test binary's directory is not readable by nobody on this machine.
        return;
    }
    assert!(bin_reachable.0, "{}", bin_reachable.1);
    let (ok, err) = run_as_nobody(&["pause", "mda"]);
    assert!(!ok);
    assert_eq!(err, "command failed: permission denied\n");
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0], (Request::ShowStats, 65534));
}

#[test]
fn the_server_stops_even_when_its_socket_file_is_gone() {
    let (_fake, server, path) = start();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(server);
        done_tx.send(()).unwrap();
    });
    assert!(
        done_rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .is_ok(),
        "dropping the server must not hang"
    );
}
