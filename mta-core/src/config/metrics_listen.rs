//! `metrics listen on ADDRESS [port PORT]`, our extension: where the daemon serves its
//! counters to Prometheus (see [`MetricsListener`]). OpenSMTPD has no such line.

use std::net::IpAddr; // allow-impure: address values, no socket

use super::lexer::TokKind;
use super::model::MetricsListener;
use super::parser::{describe, PErr, Parser, Toks};
use super::values::read_port;

impl Parser<'_> {
    /// The rest of a `metrics` line, after the keyword at `start`; a second line is an
    /// error there.
    pub(crate) fn metrics(&mut self, toks: &mut Toks<'_>, start: (u32, u32)) -> Result<(), PErr> {
        toks.expect("listen", "metrics")?;
        toks.expect("on", "listen")?;
        let address = match toks.peek() {
            Some(t) => match &t.kind {
                TokKind::Word(w) | TokKind::Quoted(w) => match w.parse::<IpAddr>() {
                    Ok(ip) => ip,
                    Err(_) => return Err(not_an_address(t.line, t.col, &describe(&t.kind))),
                },
                other => return Err(not_an_address(t.line, t.col, &describe(other))),
            },
            None => {
                let (line, col) = toks.here();
                return Err((line, col, format!("expected {ADDRESS} after \"on\"")));
            }
        };
        toks.bump();
        let port = if toks.eat("port") {
            Some(read_port(toks, "port")?)
        } else {
            None
        };
        if !toks.is_done() {
            return Err(toks.expected("\"port\" or the end of the line", "metrics listen on"));
        }
        if self.config.options.metrics.is_some() {
            return Err((
                start.0,
                start.1,
                "only one \"metrics listen on\" line is allowed".into(),
            ));
        }
        self.config.options.metrics = Some(MetricsListener { address, port });
        Ok(())
    }
}

/// What the address of the line may be.
const ADDRESS: &str = "an IPv4 or IPv6 address such as 127.0.0.1 or ::1";

fn not_an_address(line: u32, col: u32, found: &str) -> PErr {
    (
        line,
        col,
        format!("expected {ADDRESS} after \"on\", found {found}"),
    )
}

#[cfg(test)]
mod tests {
    use crate::config::{parse, Config, MetricsListener};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr}; // allow-impure: address values, no socket

    const RULES: &str = "action \"local\" mbox\nmatch for local action \"local\"\n";

    fn no_files(path: &str) -> Result<String, String> {
        Err(format!("no file {path} in this test"))
    }

    fn ok(line: &str) -> Config {
        match parse(
            &format!("{line}\n{RULES}"),
            "smtpd.conf",
            &[],
            &mut no_files,
        ) {
            Ok(c) => c,
            Err(e) => panic!("unexpected errors:\n{e}"),
        }
    }

    fn error(line: &str) -> String {
        match parse(
            &format!("{line}\n{RULES}"),
            "smtpd.conf",
            &[],
            &mut no_files,
        ) {
            Ok(c) => panic!("parsed but should not: {:?}", c.options.metrics),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn absent_means_no_endpoint() {
        assert_eq!(ok("").options.metrics, None);
    }

    #[test]
    fn loopback_with_the_default_port() {
        let m = ok("metrics listen on 127.0.0.1").options.metrics;
        assert_eq!(
            m,
            Some(MetricsListener {
                address: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: None,
            })
        );
        assert_eq!(m.map(|m| m.port()), Some(9464));
        assert_eq!(
            m.map(|m| m.socket_addr().to_string()),
            Some("127.0.0.1:9464".to_owned())
        );
    }

    #[test]
    fn ipv6_quoted_and_a_port() {
        let m = ok("metrics listen on \"::1\" port 9100").options.metrics;
        assert_eq!(
            m,
            Some(MetricsListener {
                address: IpAddr::V6(Ipv6Addr::LOCALHOST),
                port: Some(9100),
            })
        );
        let bare = ok("metrics listen on ::1 port 9100").options.metrics;
        assert_eq!(bare, m);
    }

    #[test]
    fn a_network_address_is_accepted() {
        let m = ok("metrics listen on 192.0.2.7 port 9464").options.metrics;
        assert_eq!(
            m.map(|m| m.socket_addr().to_string()),
            Some("192.0.2.7:9464".to_owned())
        );
    }

    #[test]
    fn printed_back_and_parsed_again() {
        for line in [
            "metrics listen on 127.0.0.1",
            "metrics listen on ::1 port 1",
            "metrics listen on 10.1.2.3 port 65535",
        ] {
            let c = ok(line);
            let printed = c.to_modern_string();
            assert!(printed.contains(line), "{printed}");
            let again = parse(&printed, "printed.conf", &[], &mut no_files).expect("parses");
            assert_eq!(again, c);
        }
    }

    #[test]
    fn errors_say_where_and_what_was_expected() {
        assert_eq!(
            error("metrics listen on nothere"),
            "smtpd.conf:1:19: expected an IPv4 or IPv6 address such as 127.0.0.1 or ::1 \
             after \"on\", found \"nothere\""
        );
        assert_eq!(
            error("metrics listen on"),
            "smtpd.conf:1:18: expected an IPv4 or IPv6 address such as 127.0.0.1 or ::1 \
             after \"on\""
        );
        assert_eq!(
            error("metrics on 127.0.0.1"),
            "smtpd.conf:1:9: expected \"listen\" after \"metrics\", found \"on\""
        );
        assert_eq!(
            error("metrics listen 127.0.0.1"),
            "smtpd.conf:1:16: expected \"on\" after \"listen\", found \"127.0.0.1\""
        );
        assert_eq!(
            error("metrics listen on 127.0.0.1 port 0"),
            "smtpd.conf:1:34: expected a port number (1-65535) after \"port\", found \"0\""
        );
        assert_eq!(
            error("metrics listen on 127.0.0.1 tls"),
            "smtpd.conf:1:29: expected \"port\" or the end of the line after \
             \"metrics listen on\", found \"tls\""
        );
        assert_eq!(
            error("metrics listen on { 127.0.0.1 }"),
            "smtpd.conf:1:19: expected an IPv4 or IPv6 address such as 127.0.0.1 or ::1 \
             after \"on\", found \"{\""
        );
    }

    #[test]
    fn only_one_line() {
        assert_eq!(
            error("metrics listen on 127.0.0.1\nmetrics listen on ::1 port 9465"),
            "smtpd.conf:2:1: only one \"metrics listen on\" line is allowed"
        );
    }
}
