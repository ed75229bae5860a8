//! `smtpctl encrypt [PASSWORD]`: turn a clear-text password into the SHA-512-crypt hash
//! a credentials table holds, as OpenSMTPD's smtpctl(8) does on Linux
//! (`$6$` + 16 salt characters + `$` + 86 digest characters).

use super::AuthError;
use sha_crypt::PasswordHasher;
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;

/// Random salt bytes: 12 bytes are the 16 crypt-base64 characters that SHA-crypt
/// reads at most (and what OpenSMTPD's smtpctl writes).
const SALT_BYTES: usize = 12;

/// The longest password line `encrypt` reads from standard input; a bound so that
/// a stray binary file on standard input cannot grow memory without limit.
const MAX_LINE: usize = 4096;

/// Hash `password` with SHA-512-crypt, the default 5000 rounds and a fresh random
/// salt from the operating system.
///
/// # Errors
/// [`AuthError::Entropy`] when the operating system gives no random bytes.
pub fn encrypt_password(password: &[u8]) -> Result<String, AuthError> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Entropy(e.to_string()))?;
    let hash = sha_crypt::ShaCrypt::SHA512
        .hash_password_with_salt(password, &salt)
        .map_err(|e| AuthError::Entropy(e.to_string()))?
        .to_string();
    // The crate always writes `rounds=5000`; crypt(3) leaves the default out, and the
    // digest is the same either way, so print what smtpctl prints.
    Ok(match hash.strip_prefix("$6$rounds=5000$") {
        Some(rest) => format!("$6${rest}"),
        None => hash,
    })
}

/// Run `smtpctl encrypt`: `args` are the words after `encrypt`. With one word, print
/// its hash; with none, hash each line of standard input (the line feed removed, a
/// carriage return kept, as smtpctl does) and print one hash a line.
pub fn encrypt_command(args: &[String]) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args {
        [] => {
            let stdin = std::io::stdin();
            encrypt_lines(&mut stdin.lock(), &mut out)
        }
        [password] => print_hash(&mut out, password.as_bytes()),
        _ => {
            eprintln!("usage: smtpctl encrypt [string]");
            ExitCode::FAILURE
        }
    }
}

/// Hash every line of `input` to `out`; the testable body of [`encrypt_command`].
pub fn encrypt_lines(input: &mut dyn BufRead, out: &mut dyn Write) -> ExitCode {
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_bounded_line(input, &mut line) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(e) => {
                eprintln!("smtpctl: encrypt: {e}");
                return ExitCode::FAILURE;
            }
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if print_hash(out, &line) != ExitCode::SUCCESS {
            return ExitCode::FAILURE;
        }
    }
}

/// Read one line into `line` (line feed included), refusing lines over [`MAX_LINE`].
fn read_bounded_line(input: &mut dyn BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut limited = Read::take(
        input,
        u64::try_from(MAX_LINE)
            .unwrap_or(u64::MAX)
            .saturating_add(1),
    );
    let n = limited.read_until(b'\n', line)?;
    if n > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("password line longer than {MAX_LINE} bytes"),
        ));
    }
    Ok(n)
}

fn print_hash(out: &mut dyn Write, password: &[u8]) -> ExitCode {
    let hash = match encrypt_password(password) {
        Ok(hash) => hash,
        Err(e) => {
            eprintln!("smtpctl: encrypt: {e}");
            return ExitCode::FAILURE;
        }
    };
    match writeln!(out, "{hash}").and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smtpctl: encrypt: {e}");
            ExitCode::FAILURE
        }
    }
}
