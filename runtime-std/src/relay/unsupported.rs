//! Relay options this server parses (they are OpenSMTPD's) but refuses to run with.
//!
//! `srs` (the Sender Rewriting Scheme) is one: rewriting the MAIL FROM of forwarded mail
//! is only half of it; the other half is recognising the `SRS0=` addresses that bounces
//! come back to and sending them on to the original sender, which the inbound side does
//! not do. Rewriting alone would turn every returning bounce into a message for a
//! mailbox that does not exist, so a configuration asking for it is refused at `-n` and
//! at start, naming the line, rather than accepted and half honoured.

use mta_core::config::{Config, ConfigError, DeliveryMethod};

/// The errors for every `relay ... srs` action of `config`, each at the line and column
/// of its `srs` word in `text`, the main file named `file` (line 1 when the action comes
/// from an included file).
pub(crate) fn unsupported_relay_options(
    config: &Config,
    text: &str,
    file: &str,
) -> Vec<ConfigError> {
    let with_srs: Vec<&String> = config
        .actions
        .iter()
        .filter(|(_, action)| matches!(&action.method, DeliveryMethod::Relay(r) if r.srs))
        .map(|(name, _)| name)
        .collect();
    if with_srs.is_empty() {
        return Vec::new();
    }
    let found = srs_words(text);
    with_srs
        .into_iter()
        .map(|name| {
            let (line, col) = found
                .iter()
                .find(|(action, _, _)| action == name)
                .map_or((1, 1), |(_, line, col)| (*line, *col));
            ConfigError {
                file: file.to_owned(),
                line,
                col,
                message: format!(
                    "action \"{name}\": relay option \"srs\" is not supported: this server \
                     does not decode the SRS addresses that bounces return to, so rewritten \
                     senders could never get their bounces; remove \"srs\""
                ),
            }
        })
        .collect()
}

/// The `srs` words of `action` lines (continued with a final `\`): action name, 1-based
/// line and column.
fn srs_words(text: &str) -> Vec<(String, u32, u32)> {
    let mut found = Vec::new();
    let mut action: Option<String> = None;
    let mut continued = false;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default();
        if !continued {
            let mut words = line.split_whitespace();
            action = match (words.next(), words.next()) {
                (Some("action"), Some(name)) => Some(name.trim_matches('"').to_owned()),
                _ => None,
            };
        }
        continued = line.trim_end().ends_with('\\');
        let Some(name) = &action else { continue };
        let mut offset = 0;
        for word in line.split_whitespace() {
            let at = line
                .get(offset..)
                .and_then(|rest| rest.find(word))
                .map_or(offset, |p| p.saturating_add(offset));
            offset = at.saturating_add(word.len());
            if word == "srs" {
                let number = u32::try_from(index.saturating_add(1)).unwrap_or(u32::MAX);
                let col = u32::try_from(line.get(..at).map_or(0, |s| s.chars().count()))
                    .unwrap_or(0)
                    .saturating_add(1);
                found.push((name.clone(), number, col));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::unsupported_relay_options;

    fn check(text: &str) -> Vec<String> {
        let config =
            mta_core::config::parse(text, "smtpd.conf", &[], &mut |_| Err("none".into())).unwrap();
        unsupported_relay_options(&config, text, "smtpd.conf")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn srs_is_refused_at_its_line_and_column() {
        let text = "srs key \"secret\"\n\
                    action \"local\" maildir\n\
                    action \"out\" relay \\\n    helo \"x.example\" srs\n\
                    match from any for any action \"out\"\n";
        let errors = check(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "smtpd.conf:4:22: action \"out\": relay option \"srs\" is not supported"
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn relays_without_srs_pass() {
        let text = "srs key \"secret\"\naction \"out\" relay helo \"srs\"\n\
                    match from any for any action \"out\"\n";
        assert!(check(text).is_empty());
    }
}
