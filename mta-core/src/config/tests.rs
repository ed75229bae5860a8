//! Unit tests of the configuration parser: values, errors with positions, printing.

use super::*;

fn no_files(path: &str) -> Result<String, String> {
    Err(format!("no file {path} in this test"))
}

fn ok(text: &str) -> Config {
    match parse(text, "smtpd.conf", &[], &mut no_files) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, "smtpd.conf", &[], &mut no_files) {
        Ok(c) => panic!("parsed but should not: {c:?}"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn minimal_modern() {
    let c = ok("listen on lo\naction \"local\" mbox\nmatch for local action \"local\"\n");
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.rules.len(), 1);
}

#[test]
fn listen_without_on() {
    assert_eq!(
        errors("listen lo\n"),
        vec!["smtpd.conf:1:8: expected \"on\" after \"listen\", found \"lo\""]
    );
}

#[test]
fn durations_and_sizes() {
    use super::values::{duration, format_duration, format_size, size};
    use std::time::Duration;
    assert_eq!(duration("4d"), Some(Duration::from_secs(4 * 86_400)));
    assert_eq!(duration("90m"), Some(Duration::from_secs(5400)));
    assert_eq!(duration("30"), None, "a unit is required");
    assert_eq!(duration("0s"), None, "a delay is positive");
    assert_eq!(duration("4w"), None);
    assert_eq!(duration("d"), None);
    assert_eq!(duration("99999999999999999999d"), None);
    assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    assert_eq!(format_duration(Duration::from_secs(61)), "61s");
    assert_eq!(size("35M"), Some(35 * 1024 * 1024));
    assert_eq!(size("1k"), Some(1024));
    assert_eq!(size("100000"), Some(100_000));
    assert_eq!(size("12X"), None);
    assert_eq!(size("99999999999T"), None);
    assert_eq!(format_size(35 * 1024 * 1024), "35M");
    assert_eq!(format_size(1000), "1000");
}

#[test]
fn relay_urls() {
    use super::values::relay_url;
    let u = relay_url("smtp+tls://bob@smtp.example.com:587").expect("valid");
    assert_eq!(u.scheme, RelayScheme::SmtpTls);
    assert_eq!(u.label.as_deref(), Some("bob"));
    assert_eq!(u.host, "smtp.example.com");
    assert_eq!(u.port, Some(587));
    let v6 = relay_url("[2001:db8::1]:25").expect("valid");
    assert_eq!(
        (v6.scheme, v6.host.as_str(), v6.port),
        (RelayScheme::Smtp, "2001:db8::1", Some(25))
    );
    assert!(relay_url("ftp://x").is_err());
    assert!(relay_url("lmtp://x").is_err());
    assert!(relay_url("smtp://x:0").is_err());
    assert!(relay_url("smtp://@x").is_err());
}

#[test]
fn lexer_continuations_quotes_and_comments() {
    let c = ok("listen \\\n  on lo # comment \"not a string\"\naction \"a b\" maildir \"/x/\\\"q\\\"\"\nmatch for local action \"a b\"\n");
    assert_eq!(c.listeners.len(), 1);
    let action = c.actions.get("a b").expect("action \"a b\"");
    assert_eq!(
        action.method,
        DeliveryMethod::Maildir {
            path: Some("/x/\"q\"".into()),
            junk: false
        }
    );
}

#[test]
fn macros_expand_to_several_tokens_and_join_suffixes() {
    let c = ok("opts = \"lo port 2525\"\ndir = \"/srv\"\nlisten on $opts\naction \"a\" maildir $dir/mail/%{rcpt}\nmatch for any action \"a\"\n");
    assert_eq!(c.listeners.first().map(|l| l.port), Some(2525));
    let action = c.actions.get("a").expect("action a");
    assert_eq!(
        action.method,
        DeliveryMethod::Maildir {
            path: Some("/srv/mail/%{rcpt}".into()),
            junk: false
        }
    );
    // Macros are not expanded inside quotes, as in OpenSMTPD.
    let c = ok("d = \"/srv\"\naction \"a\" maildir \"$d\"\nmatch for any action \"a\"\n");
    let action = c.actions.get("a").expect("action a");
    assert_eq!(
        action.method,
        DeliveryMethod::Maildir {
            path: Some("$d".into()),
            junk: false
        }
    );
}

#[test]
fn default_criteria_are_written_out() {
    let c = ok("action \"a\" mbox\nmatch auth action \"a\"\n");
    let rule = c.rules.first().expect("one rule");
    assert_eq!(
        rule.to_modern_string(),
        "match from local auth for local action \"a\""
    );
}

#[test]
fn classic_rules_compile_to_actions_and_matches() {
    let c = ok("table d { example.org }\naccept from any for domain <d> deliver to mbox\nreject from any for any\n");
    assert_eq!(
        c.to_modern_string()
            .lines()
            .filter(|l| l.starts_with("match"))
            .collect::<Vec<_>>(),
        vec![
            "match from any for domain <d> action \"classic-1\"",
            "match from any for any reject",
        ]
    );
    assert_eq!(
        c.actions.get("classic-1").map(|a| &a.method),
        Some(&DeliveryMethod::Mbox)
    );
}

#[test]
fn includes_are_read_through_the_loader_and_bounded() {
    let mut loader = |path: &str| -> Result<String, String> {
        match path {
            "/inc.conf" => Ok("action \"a\" mbox\n".into()),
            "/loop.conf" => Ok("include \"/loop.conf\"\n".into()),
            other => Err(format!("no {other}")),
        }
    };
    let c = parse(
        "include \"/inc.conf\"\nmatch for local action \"a\"\n",
        "m.conf",
        &[],
        &mut loader,
    )
    .expect("parses");
    assert!(c.actions.contains_key("a"));
    let e = parse("include \"/loop.conf\"\n", "m.conf", &[], &mut loader).expect_err("loops");
    assert!(e.to_string().contains("includes nested too deeply"), "{e}");
    let e = parse("include \"/none.conf\"\n", "m.conf", &[], &mut loader).expect_err("missing");
    assert_eq!(
        e.to_string(),
        "m.conf:1:1: cannot include \"/none.conf\": no /none.conf"
    );
}

#[test]
fn errors_in_included_files_name_that_file() {
    let mut loader = |_: &str| -> Result<String, String> { Ok("\nlisten lo\n".into()) };
    let e = parse("include \"/inc.conf\"\n", "m.conf", &[], &mut loader).expect_err("fails");
    assert_eq!(
        e.to_string(),
        "/inc.conf:2:8: expected \"on\" after \"listen\", found \"lo\""
    );
}

#[test]
fn error_list_is_bounded() {
    let text = "bogus\n".repeat(1000);
    let e = parse(&text, "x", &[], &mut no_files).expect_err("fails");
    assert_eq!(e.0.len(), super::error::MAX_ERRORS);
}

#[test]
fn macro_expansion_is_bounded() {
    let mut text = String::from("m0 = \"x\"\n");
    for i in 1..8 {
        let refs = format!("${} ", format_args!("m{}", i - 1)).repeat(100);
        text.push_str(&format!("m{i} = \"{refs}\"\n"));
    }
    text.push_str("listen on $m7\n");
    let e = parse(&text, "x", &[], &mut no_files).expect_err("too big");
    assert!(
        e.to_string()
            .contains("statement too long once macros are expanded"),
        "{e}"
    );
}

#[test]
fn a_value_ending_in_a_backslash_prints_back_to_itself() {
    // A quoted value can end in a backslash through a line continuation; the printer
    // must not let that backslash escape its closing quote (found by the config fuzzer).
    let text = "table t { \"a b\\\\\n\" => \"x\\\\\n\", \"c\" => \"d\\\\ e\" }\n\
                action \"a\" maildir virtual <t>\nmatch from any for any action \"a\"\n";
    let parsed = ok(text);
    let printed = parsed.to_modern_string();
    let again = parse(&printed, "printed.conf", &[], &mut no_files)
        .unwrap_or_else(|e| panic!("printed form does not parse:\n{printed}\n{e}"));
    assert_eq!(parsed, again, "printed as:\n{printed}");
    assert!(printed.contains("a b\\\\\n\""), "{printed}");
}
