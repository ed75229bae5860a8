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
