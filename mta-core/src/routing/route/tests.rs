//! Routes built from `relay` actions and their tables.

use std::net::IpAddr;

use super::{route_for_envelope, RouteError};
use crate::config::{Config, DeliveryMethod, RelayOptions};
use crate::routing::{Destination, RouteKey, TlsPolicy};

fn config(text: &str) -> Config {
    crate::config::parse(text, "relay.conf", &[], &mut |_| Err("no files".into()))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn options<'a>(config: &'a Config, action: &str) -> &'a RelayOptions {
    match &config.actions[action].method {
        DeliveryMethod::Relay(options) => options,
        other => panic!("not a relay action: {other:?}"),
    }
}

fn route(config: &Config, action: &str, domain: &str, spread: u64) -> RouteKey {
    route_for_envelope(
        config,
        options(config, action),
        domain,
        "us.example",
        spread,
    )
    .unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn helo_ca_pki_and_mail_from_are_part_of_the_route() {
    let c = config(
        "pki p cert \"/c.pem\"\npki p key \"/k.pem\"\nca c cert \"/ca.pem\"\n\
         action \"out\" relay host smtp+tls://smart.example.net helo \"out.example\" \
         pki p ca c mail-from \"bounces@us.example\"\n\
         match from any for any action \"out\"\n",
    );
    let key = route(&c, "out", "example.org", 0);
    assert_eq!(key.helo.as_deref(), Some("out.example"));
    assert_eq!(key.pki.as_deref(), Some("p"));
    assert_eq!(key.ca.as_deref(), Some("c"));
    assert_eq!(key.mail_from.as_deref(), Some("bounces@us.example"));
    assert_eq!(key.tls, TlsPolicy::Required { verify: true });
    let shown = key.to_string();
    assert!(
        shown.ends_with(" helo=out.example pki=p ca=c mail-from=bounces@us.example"),
        "{shown}"
    );
    assert_ne!(
        key,
        RouteKey {
            helo: None,
            ..key.clone()
        },
        "helo separates routes"
    );
}

#[test]
fn a_literal_source_address_is_the_route_source() {
    let c =
        config("action \"out\" relay src \"192.0.2.7\"\nmatch from any for any action \"out\"\n");
    assert_eq!(
        route(&c, "out", "example.org", 5).src,
        Some(ip("192.0.2.7"))
    );
}

#[test]
fn a_source_table_is_taken_in_turn_and_names_the_helo() {
    let c = config(
        "table sources { \"192.0.2.1\", \"2001:db8::2\" }\n\
         table names { \"192.0.2.1\" = \"one.example\", \"2001:db8::2\" = \"two.example\" }\n\
         action \"out\" relay src <sources> helo-src <names>\n\
         action \"fixed\" relay src <sources> helo-src <names> helo \"fixed.example\"\n\
         match from any for any action \"out\"\n",
    );
    let first = route(&c, "out", "example.org", 0);
    let second = route(&c, "out", "example.org", 1);
    let third = route(&c, "out", "example.org", 2);
    assert_eq!(first.src, Some(ip("192.0.2.1")));
    assert_eq!(first.helo.as_deref(), Some("one.example"));
    assert_eq!(second.src, Some(ip("2001:db8::2")));
    assert_eq!(second.helo.as_deref(), Some("two.example"));
    assert_eq!(third, first);
    assert_eq!(
        route(&c, "fixed", "example.org", 1).helo.as_deref(),
        Some("fixed.example"),
        "helo wins over helo-src"
    );
}

#[test]
fn helo_src_without_a_mapping_keeps_the_host_name() {
    let c = config(
        "table names { \"192.0.2.9\" = \"nine.example\" }\n\
         action \"out\" relay src \"192.0.2.1\" helo-src <names>\n\
         match from any for any action \"out\"\n",
    );
    assert_eq!(route(&c, "out", "example.org", 0).helo, None);
}

#[test]
fn the_domain_table_picks_the_relay_host_per_recipient_domain() {
    let c = config(
        "table relays { \"example.org\" = \"smtp+tls://lbl@smart.example.net:587\", \
         \"*.example.com\" = \"smtps://[2001:db8::25]\" }\n\
         action \"out\" relay domain <relays> tls no-verify\n\
         match from any for any action \"out\"\n",
    );
    let org = route(&c, "out", "Example.ORG", 0);
    assert_eq!(
        org.destination,
        Destination::Relay {
            host: "smart.example.net".into(),
            port: 587
        }
    );
    assert_eq!(org.tls, TlsPolicy::Required { verify: false });
    assert_eq!(org.auth.as_deref(), Some("lbl"));
    let com = route(&c, "out", "mail.example.com", 0);
    assert_eq!(
        com.destination,
        Destination::Relay {
            host: "2001:db8::25".into(),
            port: 465
        }
    );
    assert_eq!(com.tls, TlsPolicy::Implicit { verify: false });
    let other = route(&c, "out", "example.net", 0);
    assert_eq!(
        other.destination,
        Destination::Domain("example.net".into()),
        "a domain the table does not hold goes to its MXs"
    );
}

#[test]
fn unusable_tables_fail_the_route() {
    let c = config(
        "table relays { \"example.org\" = \"gopher://x\" }\n\
         table sources { \"not-an-address\" }\n\
         action \"bad-url\" relay domain <relays>\n\
         action \"bad-src\" relay src <sources>\n\
         match from any for any action \"bad-url\"\n",
    );
    let err = route_for_envelope(&c, options(&c, "bad-url"), "example.org", "us", 0);
    assert!(
        matches!(err, Err(RouteError::BadRelayUrl { .. })),
        "{err:?}"
    );
    let err = route_for_envelope(&c, options(&c, "bad-src"), "example.org", "us", 0);
    assert!(matches!(err, Err(RouteError::BadSource(_))), "{err:?}");
    let mut gone = options(&c, "bad-url").clone();
    gone.domain = Some("missing".into());
    assert_eq!(
        route_for_envelope(&c, &gone, "example.org", "us", 0),
        Err(RouteError::NoTable("missing".into()))
    );
}
