//! Password checks against crypt(3) hashes. The vectors were made by libxcrypt
//! (Python's `crypt.crypt`), OpenSSL (`openssl passwd -6`) and OpenSMTPD's own
//! `smtpctl encrypt`; the bcrypt ones are crypt_blowfish's published test vectors.

use runtime_std::auth::{verify_password, AuthError, Scheme};

/// (password, hash) pairs that must match.
const GOOD: &[(&str, &str)] = &[
    // SHA-512-crypt, default rounds; `openssl passwd -6 -salt saltsalt hunter2` agrees.
    ("hunter2", "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfnj."),
    // SHA-512-crypt with rounds=.
    ("correct horse", "$6$rounds=10000$roundsalt$lu7Rcrwbzvc4i3UU0le05F9a9bmjWI6qZ3W01cRCxB0EHJ8hLrRWzqCTVE5ceVSQRShxY.Ag20d5tJkF3rdy/."),
    // The empty password, one-character salt.
    ("", "$6$x$QSmr1Bx2g4O6BzKvdkgOcyU6H91X6I/XBv5pSalMhSPkwdH6Beo3F455xZJg0v//bxVK5F4OE5k1.0xuR26MK0"),
    // A 16-character salt and a password with a colon and a space.
    ("a:b c", "$6$abcdefghijklmnop$zbCZa41wrBerC22QA5fIM52PwMPMdUhXApgSXH3f1Lzqy.htlWTaTuwop6TAkqmy8MYpPyttlbykVcDS21osf0"),
    // Printed by OpenSMTPD's `smtpctl encrypt hunter2` and `echo a | smtpctl encrypt`.
    ("hunter2", "$6$0jJEi2hWVMeYevTa$a3wV1FCiXElG0uRnLQ2H/MgUEKUDYHDiAeC9WMlJLNAIBgzIx.e5QYF08jjPIAvtvs2Bm2I4L3zemCPwUAZN5."),
    ("a", "$6$IcUv/qtoyXt2bYP2$qZoKw6Kl01yOcmR8EMkTfbmhJuFPUClMi8Pln4MUPDrxg4ukvL97GUV/sfOBUZibYqhAlNdwFQrZnpWm0LkCg/"),
    // smtpctl keeps a carriage return that ends a standard-input line.
    ("x\r", "$6$yZWhPsmvP04R0M6X$kNs.SvqJ/MymU2gwxcyXfgjvlbOeE31r0PPDmq4dLPD3MLQWIycZERoKbag4G5oSDMJYi8Tq3YLWe4KNw/k17/"),
    // SHA-256-crypt, default and explicit minimum rounds, non-ASCII password (UTF-8).
    ("hunter2", "$5$saltsalt$OIdfjX.u4Y3SJ4I2bX8w5BMf1VAUhHABNUirScDzZi3"),
    ("pässwörd", "$5$rounds=1000$shortr$RF.e3j3FU.317QMEeBfo6eef0ZkThwbup/vNP7YX56."),
    // bcrypt: crypt_blowfish's vectors, the same digest under $2a$, $2b$ and $2y$.
    ("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
    ("U*U", "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),
    ("U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK"),
    ("U*U*U", "$2y$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a"),
    // bcrypt cost 10 (OpenSMTPD's default on OpenBSD), made by libxcrypt.
    ("correct horse battery", "$2b$10$abcdefghijklmnopqrstuuCj7fyLDJytXL.TfOiOeiv0fQvSOK1/2"),
    // yescrypt, Debian's default for system accounts, made by libxcrypt.
    ("hunter2", "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$PmNgGTLMFjJn.URBv11CpTEm5RwlKtPjRtztKe6.b33"),
];

#[test]
fn known_vectors_match() {
    for (password, hash) in GOOD {
        assert_eq!(
            verify_password(hash, password.as_bytes()).map_err(|e| e.to_string()),
            Ok(true),
            "{password:?} against {hash}"
        );
    }
}

#[test]
fn wrong_passwords_are_refused() {
    for (password, hash) in GOOD {
        for wrong in [
            format!("{password}x"),
            password.to_uppercase() + "!",
            password.chars().skip(1).collect::<String>() + "?",
        ] {
            assert_eq!(
                verify_password(hash, wrong.as_bytes()).map_err(|e| e.to_string()),
                Ok(false),
                "{wrong:?} against {hash}"
            );
        }
    }
}

#[test]
fn a_password_with_a_nul_never_matches() {
    // crypt(3) would stop at the NUL and accept "hunter2\0anything".
    let hash = GOOD[0].1;
    assert!(matches!(
        verify_password(hash, b"hunter2\0anything"),
        Ok(false)
    ));
    assert!(matches!(verify_password(hash, b"hunter2\0"), Ok(false)));
}

#[test]
fn a_trailing_line_end_of_a_table_value_is_ignored() {
    let hash = format!("{}\n", GOOD[0].1);
    assert!(matches!(verify_password(&hash, b"hunter2"), Ok(true)));
}

#[test]
fn schemes_are_told_by_prefix() {
    assert_eq!(Scheme::of("$2a$05$x"), Some(Scheme::Bcrypt));
    assert_eq!(Scheme::of("$2b$10$x"), Some(Scheme::Bcrypt));
    assert_eq!(Scheme::of("$2y$10$x"), Some(Scheme::Bcrypt));
    assert_eq!(Scheme::of("$6$salt$x"), Some(Scheme::Sha512Crypt));
    assert_eq!(Scheme::of("$5$salt$x"), Some(Scheme::Sha256Crypt));
    assert_eq!(Scheme::of("$y$j9T$x"), Some(Scheme::Yescrypt));
    for other in [
        "$1$abc$x",
        "$2x$05$x",
        "$7$x",
        "$gy$x",
        "abJnggxhB/yWI",
        "",
        "$",
        "6$salt$x",
    ] {
        assert_eq!(Scheme::of(other), None, "{other:?}");
    }
}

#[test]
fn unknown_schemes_are_an_error_never_a_match() {
    for (hash, prefix) in [
        // MD5-crypt of "x" by libxcrypt: a real hash, but a scheme we do not check.
        ("$1$abc$OGyl6dDvZCDiGmIVbeuCq/", "$1$"),
        // DES crypt and plain text look alike: no prefix.
        ("abJnggxhB/yWI", "no $id$ prefix"),
        ("hunter2", "no $id$ prefix"),
        ("", "empty hash"),
        (
            "$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
            "$2x$",
        ),
    ] {
        for password in ["x", "hunter2", "U*U", ""] {
            match verify_password(hash, password.as_bytes()) {
                Err(AuthError::UnknownScheme { prefix: p }) => {
                    assert!(p.starts_with(prefix), "{hash:?}: {p}");
                }
                other => panic!("{hash:?} gave {other:?}"),
            }
        }
    }
}

#[test]
fn error_messages_never_show_the_digest() {
    let hash = "$1$abc$OGyl6dDvZCDiGmIVbeuCq/";
    let message = verify_password(hash, b"x")
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(message.contains("$1$"), "{message}");
    assert!(!message.contains("OGyl6d"), "{message}");
}

#[test]
fn malformed_hashes_are_an_error_never_a_match() {
    let long = format!("$6$salt${}", "a".repeat(2000));
    let malformed = [
        // Truncated digests.
        "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF",
        "$5$saltsalt$",
        "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyO",
        "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$",
        // No salt, no digest.
        "$6$",
        "$6",
        "$2b$",
        "$y$",
        // Characters outside crypt's base64 alphabet.
        "$6$salt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfn!.",
        "$2b$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe_",
        // bcrypt cost that is not a number; a cost outside 4..=31.
        "$2b$xx$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        "$2b$99$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        // rounds= outside what crypt(3) ever writes, or not a number.
        "$6$rounds=999$roundsalt$lu7Rcrwbzvc4i3UU0le05F9a9bmjWI6qZ3W01cRCxB0EHJ8hLrRWzqCTVE5ceVSQRShxY.Ag20d5tJkF3rdy/.",
        "$6$rounds=1000000000$s$lu7Rcrwbzvc4i3UU0le05F9a9bmjWI6qZ3W01cRCxB0EHJ8hLrRWzqCTVE5ceVSQRShxY.Ag20d5tJkF3rdy/.",
        "$6$rounds=ten$s$lu7Rcrwbzvc4i3UU0le05F9a9bmjWI6qZ3W01cRCxB0EHJ8hLrRWzqCTVE5ceVSQRShxY.Ag20d5tJkF3rdy/.",
        // Extra fields.
        "$5$saltsalt$OIdfjX.u4Y3SJ4I2bX8w5BMf1VAUhHABNUirScDzZi3$extra",
        // Absurdly long.
        long.as_str(),
    ];
    for hash in malformed {
        for password in ["hunter2", "U*U", "correct horse", ""] {
            match verify_password(hash, password.as_bytes()) {
                Err(AuthError::MalformedHash { .. }) => {}
                other => panic!("{hash:?} with {password:?} gave {other:?}"),
            }
        }
    }
}

#[test]
fn arbitrary_bytes_never_match_and_never_panic() {
    let alphabet = b"$256barounds=./ABCxz019\n:";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        let mut hash = String::new();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = usize::try_from(state % 40).unwrap();
        for i in 0..len {
            let pick = usize::try_from((state >> (i % 50)) % alphabet.len() as u64).unwrap();
            hash.push(char::from(alphabet[pick]));
        }
        if let Ok(true) = verify_password(&hash, b"") {
            panic!("{hash:?} accepted the empty password");
        }
    }
}

#[test]
fn a_table_value_may_name_the_user_before_the_hash() {
    use runtime_std::auth::{table_hash, try_check};
    let hash = GOOD[0].1;
    assert_eq!(table_hash(hash), hash);
    assert_eq!(table_hash(&format!("alice:{hash}")), hash);
    assert_eq!(table_hash(&format!(" {hash}\n")), hash);
    let value = format!("alice:{hash}");
    assert!(matches!(
        try_check("alice", Some(&value), b"hunter2"),
        Ok(true)
    ));
    assert!(matches!(
        try_check("alice", Some(&value), b"alice"),
        Ok(false)
    ));
    // The part before the colon is never taken for the hash.
    assert!(matches!(
        try_check("alice", Some(&format!("{hash}:junk")), b"hunter2"),
        Err(AuthError::UnknownScheme { .. })
    ));
}
