//! `smtpctl encrypt`: the hashes it prints are SHA-512-crypt in smtpctl's shape, each
//! with its own salt, and each verifies against its password.

use runtime_std::auth::{encrypt_lines, encrypt_password, verify_password};
use std::process::ExitCode;

/// The shape smtpctl prints: `$6$`, 16 salt characters, `$`, 86 digest characters,
/// all from crypt's base64 alphabet.
fn assert_smtpctl_shape(hash: &str) {
    let fields: Vec<&str> = hash.split('$').collect();
    assert_eq!(fields.len(), 4, "{hash}");
    assert_eq!(fields[0], "", "{hash}");
    assert_eq!(fields[1], "6", "{hash}");
    assert_eq!(fields[2].len(), 16, "{hash}");
    assert_eq!(fields[3].len(), 86, "{hash}");
    let crypt64 = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '/';
    assert!(fields[2].chars().all(crypt64), "{hash}");
    assert!(fields[3].chars().all(crypt64), "{hash}");
}

#[test]
fn encrypted_passwords_verify() {
    for password in [
        "hunter2",
        "",
        "a:b c",
        "pässwörd",
        "x\r",
        &"long".repeat(100),
    ] {
        let hash = encrypt_password(password.as_bytes()).unwrap();
        assert_smtpctl_shape(&hash);
        assert!(matches!(
            verify_password(&hash, password.as_bytes()),
            Ok(true)
        ));
        assert!(matches!(verify_password(&hash, b"wrong"), Ok(false)));
    }
}

#[test]
fn every_hash_has_its_own_salt() {
    let a = encrypt_password(b"hunter2").unwrap();
    let b = encrypt_password(b"hunter2").unwrap();
    assert_ne!(a, b);
    assert_ne!(a.split('$').nth(2), b.split('$').nth(2));
}

#[test]
fn standard_input_gives_one_hash_a_line() {
    let input = b"alpha\nbeta\r\n\ngamma";
    let mut out = Vec::new();
    let code = encrypt_lines(&mut &input[..], &mut out);
    assert_eq!(code, ExitCode::SUCCESS);
    let text = String::from_utf8(out).unwrap();
    let hashes: Vec<&str> = text.lines().collect();
    // The line feed goes, a carriage return stays (as smtpctl), the empty line is
    // hashed, and the last line needs no line feed.
    let passwords: [&[u8]; 4] = [b"alpha", b"beta\r", b"", b"gamma"];
    assert_eq!(hashes.len(), passwords.len(), "{text}");
    for (hash, password) in hashes.iter().zip(passwords) {
        assert_smtpctl_shape(hash);
        assert!(
            matches!(verify_password(hash, password), Ok(true)),
            "{hash}"
        );
    }
}

#[test]
fn empty_standard_input_prints_nothing() {
    let mut out = Vec::new();
    assert_eq!(encrypt_lines(&mut &b""[..], &mut out), ExitCode::SUCCESS);
    assert!(out.is_empty());
}

#[test]
fn an_overlong_line_is_refused() {
    let input = vec![b'x'; 10_000];
    let mut out = Vec::new();
    assert_eq!(encrypt_lines(&mut &input[..], &mut out), ExitCode::FAILURE);
    assert!(out.is_empty());
}

/// Run the `smtpctl` binary with `args` and `stdin`; (exit success, stdout).
fn smtpctl(args: &[&str], stdin: &[u8]) -> (bool, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_smtpctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A command that does not read its input (encrypt with an argument) may have exited
    // before this write: a broken pipe is then no error.
    match child.stdin.take().unwrap().write_all(stdin) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

#[test]
fn smtpctl_encrypt_hashes_its_argument() {
    let (ok, out) = smtpctl(&["encrypt", "hunter2"], b"ignored\n");
    assert!(ok);
    let hash = out.strip_suffix('\n').unwrap();
    assert_smtpctl_shape(hash);
    assert!(matches!(verify_password(hash, b"hunter2"), Ok(true)));
}

#[test]
fn smtpctl_encrypt_reads_standard_input_without_an_argument() {
    let (ok, out) = smtpctl(&["encrypt"], b"one\ntwo\n");
    assert!(ok);
    let hashes: Vec<&str> = out.lines().collect();
    assert_eq!(hashes.len(), 2, "{out}");
    assert!(matches!(verify_password(hashes[0], b"one"), Ok(true)));
    assert!(matches!(verify_password(hashes[1], b"two"), Ok(true)));
}

#[test]
fn smtpctl_encrypt_refuses_two_arguments() {
    let (ok, out) = smtpctl(&["encrypt", "a", "b"], b"");
    assert!(!ok);
    assert!(out.is_empty());
}
