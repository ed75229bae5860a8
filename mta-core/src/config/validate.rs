//! Checks that go beyond the grammar: a table used where key-value pairs are needed must
//! hold pairs, one used for plain lookups must hold values, and options that depend on
//! others (`auth` needs TLS on a listener, `srs` needs an `srs key`).

use super::model::{Family, ListenAddress, Listener, ListenerTls};
use super::parser::{PErr, Parser, Toks};
use crate::table::TableEntries;

/// The shape a table must have for a given use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Shape {
    /// Plain values (`{ a, b }`), as matched by `from src`, `for domain`...
    List,
    /// Key-value pairs (`{ k = v }`), as used by `alias`, `virtual`, `auth`...
    Map,
}

impl Parser<'_> {
    /// Reads `<table>`, checks it is declared and has the shape `shape` for the use `what`.
    pub(crate) fn shaped_table(
        &self,
        toks: &mut Toks<'_>,
        after: &str,
        shape: Shape,
    ) -> Result<String, PErr> {
        let at = toks.here();
        let name = self.declared_table(toks, after)?;
        self.check_shape(&name, shape, after, at)?;
        Ok(name)
    }

    /// Checks that the declared table `name` has the shape needed for the use `what`.
    pub(crate) fn check_shape(
        &self,
        name: &str,
        shape: Shape,
        what: &str,
        at: (u32, u32),
    ) -> Result<(), PErr> {
        let Some(table) = self.config.tables.get(name) else {
            return Ok(());
        };
        let fits = match (&table.entries, shape) {
            (TableEntries::List(l), Shape::Map) => l.is_empty(),
            (TableEntries::Map(m), Shape::List) => m.is_empty(),
            _ => true,
        };
        if fits {
            return Ok(());
        }
        let holds = match shape {
            Shape::Map => "it holds values, key-value pairs are needed",
            Shape::List => "it holds key-value pairs, values are needed",
        };
        Err((
            at.0,
            at.1,
            format!("table \"{name}\" may not be used for {what} lookups ({holds})"),
        ))
    }

    /// Checks a listener's options against each other.
    pub(crate) fn check_listener(&self, l: &Listener, at: (u32, u32)) -> Result<(), PErr> {
        if l.auth.is_some() && l.tls == ListenerTls::None {
            return Err((
                at.0,
                at.1,
                "auth on a listener requires tls, tls-require or smtps".into(),
            ));
        }
        if l.pki.is_some() && l.tls == ListenerTls::None {
            return Err((
                at.0,
                at.1,
                "pki on a listener requires tls, tls-require or smtps".into(),
            ));
        }
        if let (ListenAddress::Ip(ip), Some(family)) = (&l.address, l.family) {
            if ip.is_ipv4() != (family == Family::Inet4) {
                return Err((
                    at.0,
                    at.1,
                    format!("address {ip} is not of the listener's family"),
                ));
            }
        }
        Ok(())
    }

    /// Checks that `srs` in an action has a key to sign with.
    pub(crate) fn check_srs(&self, at: (u32, u32)) -> Result<(), PErr> {
        if self.config.options.srs.key.is_none() {
            return Err((
                at.0,
                at.1,
                "srs in an action requires an \"srs key\" declared before it".into(),
            ));
        }
        Ok(())
    }
}
