//! The smtpd.conf corpus: every valid file parses and prints back to the same model, every
//! invalid file fails, some errors are checked word for word, and a classic file equals
//! its modern translation.

#[path = "config-corpus/list.rs"]
mod list;

use list::CORPUS;
use mta_core::config::{parse, Config, ConfigErrors, DEFAULT_CONFIG};

/// Serves `/tmp/smtpd-corpus/NAME` (how corpus files name their tables and includes)
/// from the corpus's `files/` folder.
fn loader(path: &str) -> Result<String, String> {
    let name = path
        .strip_prefix("/tmp/smtpd-corpus/")
        .ok_or_else(|| format!("{path}: not in the corpus"))?;
    let wanted = format!("files/{name}");
    CORPUS
        .iter()
        .find(|(p, _)| *p == wanted)
        .map(|(_, text)| text.to_string())
        .ok_or_else(|| format!("{path}: no such file"))
}

fn macros() -> Vec<(String, String)> {
    vec![
        ("state_dir".to_string(), "/var/lib/smtpd".to_string()),
        ("state_user".to_string(), "nobody".to_string()),
    ]
}

fn parse_file(path: &str, text: &str) -> Result<Config, ConfigErrors> {
    parse(text, path, &macros(), &mut loader)
}

fn corpus(prefix: &str) -> Vec<(&'static str, &'static str)> {
    CORPUS
        .iter()
        .copied()
        .filter(|(p, _)| p.starts_with(prefix) && p.ends_with(".conf"))
        .collect()
}

fn file(path: &str) -> &'static str {
    CORPUS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("{path} not in corpus"))
}

#[test]
fn corpus_is_big_enough() {
    assert!(corpus("valid/").len() >= 25, "at least 25 valid files");
    assert!(corpus("invalid/").len() >= 15, "at least 15 invalid files");
}

#[test]
fn every_valid_file_parses() {
    let mut failures = Vec::new();
    for (path, text) in corpus("valid/") {
        if let Err(e) = parse_file(path, text) {
            failures.push(format!("{path}:\n{e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "valid files that failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_invalid_file_fails() {
    let mut accepted = Vec::new();
    for (path, text) in corpus("invalid/")
        .into_iter()
        .filter(|(p, _)| !p.starts_with("invalid/runtime/"))
    {
        if parse_file(path, text).is_ok() {
            accepted.push(path);
        }
    }
    assert!(
        accepted.is_empty(),
        "invalid files that parsed: {accepted:?}"
    );
}

#[test]
fn files_only_the_runtime_can_refuse_parse() {
    for (path, text) in corpus("invalid/runtime/") {
        assert!(
            parse_file(path, text).is_ok(),
            "{path} should parse: the runtime refuses it"
        );
    }
}

#[test]
fn printing_then_parsing_gives_the_same_config() {
    for (path, text) in corpus("valid/") {
        let config = parse_file(path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let printed = config.to_modern_string();
        let again = parse_file("printed.conf", &printed)
            .unwrap_or_else(|e| panic!("{path} printed as:\n{printed}\n{e}"));
        assert_eq!(config, again, "{path} printed as:\n{printed}");
        assert_eq!(
            printed,
            again.to_modern_string(),
            "{path}: printing is not stable"
        );
    }
}

fn first_error(path: &str) -> String {
    match parse_file(path, file(path)) {
        Ok(_) => panic!("{path} parsed"),
        Err(e) => e.0.first().map(|e| e.to_string()).unwrap_or_default(),
    }
}

#[test]
fn error_messages_name_file_line_and_column() {
    let cases = [
        ("invalid/modern/01-listen-without-on.conf", "1:8: expected \"on\" after \"listen\", found \"lo\""),
        ("invalid/modern/02-undefined-action.conf", "2:24: action \"local\" is not defined (declare it before the match rule)"),
        ("invalid/modern/04-undefined-table.conf", "2:27: table \"aliases\" is not defined (declare it with \"table\" before use)"),
        ("invalid/modern/05-duplicate-action.conf", "3:8: action \"local\" is already defined"),
        ("invalid/modern/06-bad-port.conf", "1:19: expected a port number (1-65535) after \"port\", found \"0\""),
        ("invalid/modern/08-from-twice.conf", "3:16: from already specified in this rule"),
        ("invalid/modern/09-unquoted-keyword.conf", "2:8: expected an action name after \"action\", found keyword \"local\" (quote it to use it as a value)"),
        ("invalid/modern/11-auth-without-tls.conf", "1:11: auth on a listener requires tls, tls-require or smtps"),
        ("invalid/modern/12-map-for-domain.conf", "4:27: table \"m\" may not be used for domain lookups (it holds key-value pairs, values are needed)"),
        ("invalid/modern/17-undefined-macro.conf", "1:11: undefined macro \"$lan_addr\""),
        ("invalid/modern/18-unterminated-quote.conf", "2:8: expected a closing \" before the end of the line"),
        ("invalid/modern/22-missing-decision.conf", "3:25: expected \"action NAME\" or \"reject\" at the end of the match rule"),
        ("invalid/ours/01-mixed-grammars.conf", "5:1: the classic (accept/reject) grammar cannot be mixed with the modern (match/action) grammar used elsewhere in the configuration"),
        ("invalid/ours/02-mixed-classic-majority.conf", "3:1: the modern (match/action) grammar cannot be mixed with the classic (accept/reject) grammar used elsewhere in the configuration"),
    ];
    for (path, expected) in cases {
        assert_eq!(first_error(path), format!("{path}:{expected}"));
    }
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let text = "listen lo\naction \"a\" nothing\nmatch for any action \"b\"\n";
    let errors = parse(text, "x.conf", &[], &mut loader).expect_err("three errors");
    let lines: Vec<u32> = errors.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![1, 2, 3], "{errors}");
}

#[test]
fn classic_and_modern_files_give_the_same_rules() {
    let classic =
        parse_file("c", file("valid/classic/06-equivalent-classic.conf")).expect("classic parses");
    let modern =
        parse_file("m", file("valid/ours/06-equivalent-modern.conf")).expect("modern parses");
    assert_eq!(
        classic.with_canonical_action_names(),
        modern.with_canonical_action_names()
    );
}

#[test]
fn the_seed_virtual_catch_all_compiles_to_a_maildir_action() {
    let c = parse_file("seed", file("valid/classic/01-seed-virtual-catchall.conf"))
        .expect("seed parses");
    let printed = c.to_modern_string();
    assert!(
        printed.contains("table \"classic-1-virtual\" { \"@\" => \"gilles\" }"),
        "{printed}"
    );
    assert!(
        printed.contains("action \"classic-1\" maildir virtual <classic-1-virtual>"),
        "{printed}"
    );
    assert!(
        printed.contains("match from local for any action \"classic-1\""),
        "{printed}"
    );
}

#[test]
fn command_line_macros_override_the_file() {
    let text =
        "smtp_port = \"25\"\nlisten on lo port $smtp_port\naction \"a\" mbox\nmatch for local action \"a\"\n";
    let c = parse(
        text,
        "x",
        &[("smtp_port".into(), "2525".into())],
        &mut loader,
    )
    .expect("parses");
    assert_eq!(c.listeners.first().map(|l| l.port), Some(2525));
}

#[test]
fn the_default_configuration_parses() {
    let c = parse(DEFAULT_CONFIG, "(default)", &macros(), &mut loader).expect("default parses");
    assert_eq!(
        c.options.queue.path.as_deref(),
        Some("/var/lib/smtpd/queue")
    );
    assert_eq!(c.listeners.first().map(|l| l.port), Some(2525));
    assert_eq!(c.rules.len(), 2);
    assert!(c
        .actions
        .values()
        .all(|a| !matches!(a.method, mta_core::config::DeliveryMethod::Relay(_))));
}

#[test]
fn a_classic_smarthost_equals_its_modern_translation() {
    let classic =
        parse_file("c", file("valid/classic/03-relay-via-auth.conf")).expect("classic parses");
    let modern = parse_file(
        "m",
        "table secrets file:/tmp/smtpd-corpus/secrets\n\
         listen on lo\n\
         action \"local\" mbox\n\
         action \"relay\" relay host \"smtp+tls://bob@smtp.example.com:587\" auth <secrets> mail-from \"bob@example.com\"\n\
         match for local action \"local\"\n\
         match from local for any action \"relay\"\n",
    )
    .expect("modern parses");
    assert_eq!(
        classic.with_canonical_action_names(),
        modern.with_canonical_action_names()
    );
}

#[test]
fn the_classic_seed_equals_its_modern_translation() {
    let classic = parse_file("c", file("valid/classic/01-seed-virtual-catchall.conf"))
        .expect("classic parses");
    let modern = parse_file(
        "m",
        "table \"classic-1-virtual\" { \"@\" => gilles }\n\
         action \"catchall\" maildir virtual <classic-1-virtual>\n\
         match for any action \"catchall\"\n",
    )
    .expect("modern parses");
    assert_eq!(
        classic.with_canonical_action_names(),
        modern.with_canonical_action_names()
    );
}
