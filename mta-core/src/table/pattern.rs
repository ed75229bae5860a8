//! The patterns of domain and mailaddr tables (table(5)): host names with a `*` wildcard,
//! and `user`, `@domain`, `user@domain` or `user@*.domain` address masks.

/// Whether `host` matches the domain-table entry `pattern`.
///
/// ASCII case is ignored (RFC 5321 §2.4: domain names are case-insensitive) and a trailing
/// root dot on either side is ignored. A `*` matches any run of characters, dots included,
/// so `*.example.org` matches `mx.example.org` and `a.b.example.org` but not `example.org`
/// itself. The match is the classic two-cursor glob: no backtracking blow-up, at most
/// `host.len() * pattern.len()` steps.
pub fn host_matches(host: &str, pattern: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).as_bytes();
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern).as_bytes();
    glob(host, pattern)
}

fn glob(text: &[u8], pattern: &[u8]) -> bool {
    let (mut t, mut p) = (0usize, 0usize);
    // Where the last `*` was seen in the pattern, and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pattern.get(p), text.get(t)) {
            (Some(b'*'), _) => {
                star = Some((p, t));
                p = p.saturating_add(1);
            }
            (Some(pc), Some(tc)) if pc.eq_ignore_ascii_case(tc) => {
                p = p.saturating_add(1);
                t = t.saturating_add(1);
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp.saturating_add(1);
                    t = st.saturating_add(1);
                    star = Some((sp, t));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Splits an address at its last `@` into (user, domain); an address without `@` is all
/// user. The last `@` is the separator because a quoted local part may itself hold one.
pub fn split_address(address: &str) -> (&str, &str) {
    match address.rfind('@') {
        Some(at) => (
            address.get(..at).unwrap_or(""),
            address.get(at.saturating_add(1)..).unwrap_or(""),
        ),
        None => (address, ""),
    }
}

/// The user part without its sub-address: everything before the first `delim`
/// (smtpd.conf(5) `smtp sub-addr-delim`, `+` by default). `user+tag` gives `user`.
pub fn strip_subaddress(user: &str, delim: char) -> &str {
    match user.find(delim) {
        Some(at) if at > 0 => user.get(..at).unwrap_or(user),
        _ => user,
    }
}

/// Whether `address` matches the mailaddr-table entry `entry` (table(5) "Mailaddr
/// tables"): `user` matches that user at any domain, `@domain` any user at that domain,
/// `user@domain` both, and the domain may hold a `*` wildcard ([`host_matches`]).
///
/// Users compare ASCII case-insensitively, as OpenSMTPD folds lookup keys; the address's
/// user also matches once its sub-address (`+tag`) is stripped. An empty address (the null
/// sender `<>`) matches no entry but the bare `@`.
pub fn mailaddr_matches(address: &str, entry: &str, delim: char) -> bool {
    let (user, domain) = split_address(address);
    let (entry_user, entry_domain) = if entry.contains('@') {
        split_address(entry)
    } else {
        (entry, "")
    };
    if !entry_domain.is_empty() && !host_matches(domain, entry_domain) {
        return false;
    }
    if entry_user.is_empty() {
        return true;
    }
    entry_user.eq_ignore_ascii_case(user)
        || entry_user.eq_ignore_ascii_case(strip_subaddress(user, delim))
}
