//! Decoy password hashes: an AUTH for a user the credentials table does not know is
//! checked against one of these, so that it costs the runtime the same work as a known
//! user's wrong password and the reply's timing does not tell which user names exist
//! (RFC 4954 §9 warns against disclosing account existence).

use crate::table::{Table, TableEntries};

/// DECOY: a real SHA-512-crypt hash (default 5000 rounds) of a random string that was
/// thrown away once hashed; no password is known to match it. It only stands in for a
/// user that does not exist.
const DECOY_SHA512: &str = "$6$IGaxZhbclwGL4UZ$t5k/XTkN0JQGwz4A/nsi5IVzODMw4aT8BqbyAsJW/Kl/wiio.pbcdFluic/BseMtsxwpQGm4HVjUEwsuFvXnA/";

/// DECOY: a real bcrypt hash (cost 10) of a random string that was thrown away once
/// hashed; no password is known to match it.
const DECOY_BCRYPT: &str = "$2b$10$pwbGw4TjDlf..Pa1wmLwuu3xViZuon1SggEPfazAwzlfuC9Nh3.7i";

/// The hash to check an unknown user's password against: a decoy of the scheme and cost
/// of the table's first hash (bcrypt `$2?$NN$` or SHA-512-crypt with its `rounds=N`),
/// so the check takes as long as a known user's; SHA-512-crypt at default rounds when
/// the table says nothing usable. The answer is refused whatever the check says.
pub(super) fn decoy_hash(table: Option<&Table>) -> String {
    let sample = table
        .and_then(|t| match &t.entries {
            TableEntries::Map(pairs) => pairs.first().map(|(_, v)| v.as_str()),
            TableEntries::List(_) => None,
        })
        // A value may be `user:hash`; hashes of these schemes hold no colon.
        .and_then(|v| v.rsplit(':').next())
        .unwrap_or("");
    if let Some(cost) = bcrypt_cost(sample) {
        let rest = DECOY_BCRYPT.get(7..).unwrap_or("");
        return format!("$2b${cost}${rest}");
    }
    if let Some(rounds) = sha512_rounds(sample) {
        let rest = DECOY_SHA512.get(3..).unwrap_or("");
        return format!("$6$rounds={rounds}${rest}");
    }
    DECOY_SHA512.to_owned()
}

/// The two-digit cost of a bcrypt hash (`$2a$`, `$2b$`, `$2y$`), within bcrypt's 04..=31.
fn bcrypt_cost(hash: &str) -> Option<&str> {
    let rest = hash
        .strip_prefix("$2a$")
        .or_else(|| hash.strip_prefix("$2b$"))
        .or_else(|| hash.strip_prefix("$2y$"))?;
    let cost = rest.get(..2)?;
    let n: u8 = cost.parse().ok()?;
    ((4..=31).contains(&n) && rest.get(2..3) == Some("$")).then_some(cost)
}

/// The `rounds=N` of a SHA-512-crypt hash, within crypt(3)'s 1000..=999999999.
fn sha512_rounds(hash: &str) -> Option<u32> {
    let field = hash.strip_prefix("$6$rounds=")?.split('$').next()?;
    let n: u32 = field.parse().ok()?;
    (1000..=999_999_999).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableSource;

    fn table(value: &str) -> Table {
        Table {
            name: "creds".into(),
            source: TableSource::Inline,
            entries: TableEntries::Map(vec![("bob".into(), value.into())]),
        }
    }

    #[test]
    fn the_decoy_follows_the_tables_scheme_and_cost() {
        assert_eq!(decoy_hash(None), DECOY_SHA512);
        assert_eq!(decoy_hash(Some(&table("$6$salt$hash"))), DECOY_SHA512);
        let bcrypt = decoy_hash(Some(&table("$2y$12$abcdefghijklmnopqrstuu")));
        assert!(bcrypt.starts_with("$2b$12$pwbGw4"), "{bcrypt}");
        assert_eq!(bcrypt.len(), DECOY_BCRYPT.len());
        let bob_bcrypt = decoy_hash(Some(&table("bob:$2b$10$xyz")));
        assert_eq!(bob_bcrypt, DECOY_BCRYPT);
        let rounds = decoy_hash(Some(&table("$6$rounds=20000$salt$hash")));
        assert_eq!(rounds, format!("$6$rounds=20000${}", &DECOY_SHA512[3..]));
        // Nonsense costs fall back to the default decoy.
        assert_eq!(decoy_hash(Some(&table("$2b$99$x"))), DECOY_SHA512);
        assert_eq!(decoy_hash(Some(&table("$6$rounds=5$s$h"))), DECOY_SHA512);
        assert_eq!(decoy_hash(Some(&table("plain"))), DECOY_SHA512);
    }

    #[test]
    fn decoys_are_well_formed() {
        // crypt(3) alphabet, and the lengths of real hashes of each scheme.
        let alphabet = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
        };
        let sha = DECOY_SHA512.strip_prefix("$6$").unwrap();
        let (salt, digest) = sha.split_once('$').unwrap();
        assert!(salt.len() <= 16 && alphabet(salt));
        assert!(digest.len() == 86 && alphabet(digest));
        let bc = DECOY_BCRYPT.strip_prefix("$2b$10$").unwrap();
        assert!(bc.len() == 53 && alphabet(bc));
    }
}
