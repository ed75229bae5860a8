//! Harness for the configuration parser: arbitrary bytes never panic, and whatever parses
//! prints back (modern grammar) to text that parses to the same configuration.

use crate::config;

/// Refuses every file: fuzzed includes and `file:` tables fail like missing files.
fn no_files(path: &str) -> Result<String, String> {
    Err(format!("no file {path} while fuzzing"))
}

/// Parses `data` (as lossy UTF-8); if it parses, checks the print/parse round trip.
pub fn parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let macros = [("state_dir".to_string(), "/var/spool/smtpd".to_string())];
    if let Ok(parsed) = config::parse(&text, "fuzz.conf", &macros, &mut no_files) {
        let printed = parsed.to_modern_string();
        match config::parse(&printed, "printed.conf", &[], &mut no_files) {
            Ok(again) => assert_eq!(parsed, again, "printed as:\n{printed}"),
            Err(e) => panic!("printed form does not parse:\n{printed}\n{e}"),
        }
    }
}

/// Words the configuration grammar is made of, to build inputs that reach deep paths.
const WORDS: &[&str] = &[
    "listen",
    "on",
    "lo",
    "port",
    "25",
    "tls",
    "smtps",
    "auth",
    "<t>",
    "table",
    "t",
    "{",
    "}",
    ",",
    "=",
    "=>",
    "\"a b\"",
    "action",
    "\"x\"",
    "mbox",
    "maildir",
    "relay",
    "host",
    "smtp://h:25",
    "match",
    "from",
    "for",
    "any",
    "local",
    "domain",
    "src",
    "!",
    "reject",
    "accept",
    "deliver",
    "to",
    "virtual",
    "alias",
    "filter",
    "phase",
    "connect",
    "junk",
    "regex",
    "$m",
    "m",
    "\n",
    "\\\n",
    "#",
    "include",
    "queue",
    "ttl",
    "4d",
    "pki",
    "cert",
    "tag",
    "mda",
    "\"cmd\"",
    "lmtp",
    "rcpt-to",
    "mail-from",
    "helo",
    "bounce",
    "warn-interval",
    "1h",
    "metrics",
    "127.0.0.1",
    "::1",
];

/// Parses a sentence made of grammar words chosen by `choices`.
pub fn parse_words(choices: &[u8]) {
    let mut text = String::new();
    for c in choices {
        if let Some(w) = WORDS.get(usize::from(*c) % WORDS.len()) {
            text.push_str(w);
            text.push(' ');
        }
    }
    parse(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use quickcheck::QuickCheck;

    #[test]
    fn arbitrary_bytes_never_panic_and_round_trip() {
        fn prop(data: Vec<u8>) -> bool {
            super::parse(&data);
            true
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(Vec<u8>) -> bool);
    }

    #[test]
    fn grammar_word_soup_never_panics_and_round_trips() {
        fn prop(choices: Vec<u8>) -> bool {
            super::parse_words(&choices);
            true
        }
        QuickCheck::new()
            .tests(3000)
            .quickcheck(prop as fn(Vec<u8>) -> bool);
    }

    #[test]
    fn a_classic_virtual_list_is_refused_not_printed_wrong() {
        // Found by the fuzzer: a list given as a classic virtual table.
        super::parse(b"accept for any virtual { \x98A } deliver to maildir\n");
    }

    #[test]
    fn a_valid_file_goes_through_the_round_trip() {
        super::parse(b"t = \"lo\"\nlisten on $t port 2525\naction \"a\" mbox\nmatch from any for any action \"a\"\n");
    }
}
