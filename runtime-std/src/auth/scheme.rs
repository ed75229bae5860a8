//! Checking a password against one crypt(3)-style hash: the scheme is read from the
//! hash's `$id$` prefix (Modular Crypt Format), the work is done by the RustCrypto
//! and `bcrypt` crates, and every comparison of digests is constant-time in them.

use super::AuthError;
use sha_crypt::{password_hash, PasswordVerifier};

/// The hash schemes a credentials table or the shadow file may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// bcrypt, `$2a$`, `$2b$`, `$2y$` (OpenBSD's and OpenSMTPD's default on OpenBSD).
    Bcrypt,
    /// SHA-512-crypt, `$6$` (what `smtpctl encrypt` prints on Linux).
    Sha512Crypt,
    /// SHA-256-crypt, `$5$`.
    Sha256Crypt,
    /// yescrypt, `$y$` (Debian's and Fedora's default for system accounts).
    Yescrypt,
}

impl Scheme {
    /// The scheme a hash names by its prefix, or `None` for a scheme we do not check
    /// (DES, MD5-crypt `$1$`, `$2x$`, scrypt `$7$`, anything unknown).
    pub fn of(hash: &str) -> Option<Scheme> {
        let id = hash.strip_prefix('$')?.split('$').next()?;
        match id {
            "2a" | "2b" | "2y" => Some(Scheme::Bcrypt),
            "6" => Some(Scheme::Sha512Crypt),
            "5" => Some(Scheme::Sha256Crypt),
            "y" => Some(Scheme::Yescrypt),
            _ => None,
        }
    }

    /// The scheme's name for log lines.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Bcrypt => "bcrypt",
            Scheme::Sha512Crypt => "SHA-512-crypt",
            Scheme::Sha256Crypt => "SHA-256-crypt",
            Scheme::Yescrypt => "yescrypt",
        }
    }
}

/// The longest hash we look at: real ones are under 150 bytes, and a bound keeps a
/// broken table line from reaching the parsers with megabytes.
const MAX_HASH_LEN: usize = 1024;

/// Check `password` against the crypt(3)-style `hash`.
///
/// `Ok(true)` only when the scheme is one we support, the hash is well-formed and the
/// password matches. A password holding a NUL byte never matches: crypt(3) would
/// stop at the NUL and accept a prefix, and AUTH PLAIN (RFC 4616 §2) cannot carry one.
///
/// # Errors
/// [`AuthError::UnknownScheme`] for a hash whose scheme we do not check, and
/// [`AuthError::MalformedHash`] for a hash of a known scheme that does not parse;
/// both mean a broken table entry the administrator should hear about.
pub fn verify_password(hash: &str, password: &[u8]) -> Result<bool, AuthError> {
    let hash = hash.trim_end_matches(['\r', '\n']);
    let scheme = Scheme::of(hash).ok_or_else(|| AuthError::UnknownScheme {
        prefix: scheme_prefix(hash),
    })?;
    let malformed = |reason: &str| AuthError::MalformedHash {
        scheme: scheme.name(),
        reason: reason.to_string(),
    };
    if hash.len() > MAX_HASH_LEN {
        return Err(malformed("longer than 1024 bytes"));
    }
    if password.contains(&0) {
        return Ok(false);
    }
    match scheme {
        Scheme::Bcrypt => bcrypt::verify(password, hash).map_err(|e| malformed(&e.to_string())),
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => {
            check_sha_crypt_rounds(hash).map_err(malformed)?;
            rustcrypto_outcome(sha_crypt::ShaCrypt::default().verify_password(password, hash))
                .map_err(|r| malformed(&r))
        }
        Scheme::Yescrypt => {
            rustcrypto_outcome(yescrypt::Yescrypt::default().verify_password(password, hash))
                .map_err(|r| malformed(&r))
        }
    }
}

/// SHA-crypt's optional `rounds=N` field must lie in 1000..=999999999, as crypt(3)
/// writes it (it clamps what it is given and writes the clamped value); a value
/// outside would otherwise be taken for the salt and never match, silently.
fn check_sha_crypt_rounds(hash: &str) -> Result<(), &'static str> {
    let Some(field) = hash.split('$').nth(2) else {
        return Err("no salt");
    };
    let Some(rounds) = field.strip_prefix("rounds=") else {
        return Ok(());
    };
    match rounds.parse::<u32>() {
        Ok(n) if (1_000..=999_999_999).contains(&n) => Ok(()),
        _ => Err("rounds= outside 1000..=999999999"),
    }
}

/// The RustCrypto verifiers answer a wrong password with an error too; turn that one
/// into `Ok(false)` and keep the others as the reason the hash is unusable.
fn rustcrypto_outcome(outcome: password_hash::Result<()>) -> Result<bool, String> {
    match outcome {
        Ok(()) => Ok(true),
        Err(password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

/// The scheme part of a hash for an error message (`$1$`, `$7$`, or the first few
/// characters), never the digest: logs must not carry password hashes.
fn scheme_prefix(hash: &str) -> String {
    if let Some(rest) = hash.strip_prefix('$') {
        let id: String = rest.chars().take_while(|&c| c != '$').take(8).collect();
        return format!("${id}$");
    }
    if hash.is_empty() {
        return "empty hash".to_string();
    }
    "no $id$ prefix (DES crypt or plain text)".to_string()
}
