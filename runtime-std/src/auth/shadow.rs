//! System accounts through the shadow file (shadow(5)): `name:hash:lastchg:...`, one
//! account a line, readable by root only. This is what `listen on ... auth` without a
//! table checks, as OpenSMTPD does with its system `getpwnam`/`crypt` path.

use super::AuthError;
use std::path::Path;

/// Where the system keeps its password hashes.
pub const SHADOW_PATH: &str = "/etc/shadow";

/// The hash field of `user`'s line in a shadow file's `text`, or `None` when no line
/// names the user. Matching is exact on the first field, so a client-chosen name
/// holding `:` or a newline never selects another account's line.
pub fn find_hash<'a>(text: &'a str, user: &str) -> Option<&'a str> {
    if user.is_empty() || user.contains([':', '\n', '\r']) {
        return None;
    }
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        fields.next()
    })
}

/// Whether a shadow hash field can ever match a password: an empty field (a
/// password-less login) and a locked or disabled one (`!...`, `*`, `!!`) never can,
/// whatever crypt(3) would say; SMTP AUTH is never granted without a password.
pub fn is_usable(hash: &str) -> bool {
    !(hash.is_empty() || hash.starts_with('!') || hash.starts_with('*'))
}

/// Check `password` for the system account `user` against the shadow file at `path`.
///
/// `Ok(false)` for an unknown user, a locked account or a wrong password.
///
/// # Errors
/// [`AuthError::Shadow`] when the file cannot be read (not root), and the errors of
/// [`super::verify_password`] for a hash we cannot check.
pub fn check_account(path: &Path, user: &str, password: &[u8]) -> Result<bool, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuthError::Shadow {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    match find_hash(&text, user) {
        Some(hash) if is_usable(hash) => super::verify_password(hash, password),
        _ => {
            // Spend about the time of a real check, so the answer's delay does not
            // tell a client which account names exist.
            let _ = super::verify_password(DECOY_HASH, password);
            Ok(false)
        }
    }
}

/// A SHA-512-crypt hash (default rounds) checked for unknown and locked accounts;
/// its password is of no use, as it only stands in for an account that cannot log in.
const DECOY_HASH: &str = "$6$decoydecoydecoy$W1b2ElGEySgaFOBv9/poRjzuVHXL2Crj4yWa/p9wZ19UJgZMWbVlORNNVTD5QVHK/mLfNeLxmuEwHfag4Wb4q/";
