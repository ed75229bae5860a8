//! Prints a configuration in the modern grammar, one statement per line, in an order that
//! declares everything before its use, so that parsing the output gives the same [`Config`].

use std::fmt::Write;

use super::model::{
    Action, Config, Criterion, CriterionKind, Decision, DeliveryMethod, Dhe, Family, Filter,
    FilterConditionKind, FilterDecision, FilterPhase, ForCriterion, FromCriterion, ListenAddress,
    Listener, ListenerTls, Rule, TableMatch, TableRef,
};
use super::values::{format_duration, format_relay_url, format_size};
use crate::table::{TableEntries, TableSource};

/// Quotes a value for the modern grammar, so that the lexer reads it back unchanged:
/// `"` is escaped, and so is a backslash before a blank (a backslash escapes only the
/// quote, blanks and the newline). A value ending in a backslash is written bare when it
/// is a plain word, followed by a blank so that the backslash does not join the next
/// line; quoted, its last backslash is followed by an escaped newline (a continuation
/// the lexer drops) so that it does not escape the closing quote.
pub(crate) fn quote(s: &str) -> String {
    let bare_ok = super::lexer::is_word(s) && !super::parser::KEYWORDS.contains(&s);
    if s.ends_with('\\') && bare_ok {
        // The blank keeps the backslash from joining the next line.
        return format!("{s} ");
    }
    let mut out = String::with_capacity(s.len().saturating_add(2));
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' if matches!(chars.peek(), Some(' ' | '\t')) => out.push_str("\\\\"),
            '\\' if chars.peek().is_none() => out.push_str("\\\\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `<table>` reference, the name quoted inside the brackets when it is not a plain word.
fn table_name(name: &str) -> String {
    if super::lexer::is_word(name) && !super::parser::KEYWORDS.contains(&name) {
        format!("<{name}>")
    } else {
        format!("<{}>", quote(name))
    }
}

fn entries(e: &TableEntries) -> String {
    let items: Vec<String> = match e {
        TableEntries::List(l) => l.iter().map(|v| quote(v)).collect(),
        TableEntries::Map(m) => m
            .iter()
            .map(|(k, v)| format!("{} => {}", quote(k), quote(v)))
            .collect(),
    };
    format!("{{ {} }}", items.join(", "))
}

fn table_ref(r: &TableRef) -> String {
    match r {
        TableRef::Named(n) => table_name(n),
        TableRef::Inline(TableEntries::List(l)) if l.len() == 1 => {
            l.iter().map(|v| quote(v)).collect()
        }
        TableRef::Inline(e) => entries(e),
    }
}

fn table_match(m: &TableMatch) -> String {
    if m.regex {
        format!("regex {}", table_ref(&m.table))
    } else {
        table_ref(&m.table)
    }
}

fn opt_match(m: &Option<TableMatch>) -> String {
    m.as_ref()
        .map(|m| format!(" {}", table_match(m)))
        .unwrap_or_default()
}

impl Rule {
    /// The rule as one `match ...` line.
    pub fn to_modern_string(&self) -> String {
        let mut s = String::from("match");
        for c in &self.criteria {
            s.push(' ');
            s.push_str(&criterion(c));
        }
        match &self.decision {
            Decision::Action(a) => {
                s.push_str(" action ");
                s.push_str(&quote(a));
            }
            Decision::Reject => s.push_str(" reject"),
        }
        s
    }
}

fn criterion(c: &Criterion) -> String {
    let body = match &c.kind {
        CriterionKind::From(f) => match f {
            FromCriterion::Any => "from any".into(),
            FromCriterion::Local => "from local".into(),
            FromCriterion::Socket => "from socket".into(),
            FromCriterion::Src(m) => format!("from src {}", table_match(m)),
            FromCriterion::Auth(m) => format!("from auth{}", opt_match(m)),
            FromCriterion::Rdns(m) => format!("from rdns{}", opt_match(m)),
            FromCriterion::MailFrom(m) => format!("from mail-from {}", table_match(m)),
        },
        CriterionKind::For(f) => match f {
            ForCriterion::Any => "for any".into(),
            ForCriterion::Local => "for local".into(),
            ForCriterion::Domain(m) => format!("for domain {}", table_match(m)),
            ForCriterion::RcptTo(m) => format!("for rcpt-to {}", table_match(m)),
        },
        CriterionKind::Auth(m) => format!("auth{}", opt_match(m)),
        CriterionKind::Helo(m) => format!("helo {}", table_match(m)),
        CriterionKind::MailFrom(m) => format!("mail-from {}", table_match(m)),
        CriterionKind::RcptTo(m) => format!("rcpt-to {}", table_match(m)),
        CriterionKind::Tag { regex, tag } => {
            format!("tag {}{}", if *regex { "regex " } else { "" }, quote(tag))
        }
        CriterionKind::Tls => "tls".into(),
    };
    if c.negated {
        format!("!{body}")
    } else {
        body
    }
}

fn action_line(name: &str, a: &Action) -> String {
    let mut s = format!("action {} ", quote(name));
    match &a.method {
        DeliveryMethod::Mbox => s.push_str("mbox"),
        DeliveryMethod::Maildir { path, junk } => {
            s.push_str("maildir");
            if let Some(p) = path {
                let _ = write!(s, " {}", quote(p));
            }
            if *junk {
                s.push_str(" junk");
            }
        }
        DeliveryMethod::Lmtp { dest, rcpt_to } => {
            let _ = write!(
                s,
                "lmtp {}{}",
                quote(dest),
                if *rcpt_to { " rcpt-to" } else { "" }
            );
        }
        DeliveryMethod::Mda { command } => {
            let _ = write!(s, "mda {}", quote(command));
        }
        DeliveryMethod::ForwardOnly => s.push_str("forward-only"),
        DeliveryMethod::ExpandOnly => s.push_str("expand-only"),
        DeliveryMethod::Relay(r) => {
            s.push_str("relay");
            if let Some(b) = &r.backup {
                s.push_str(" backup");
                if let Some(mx) = &b.mx {
                    let _ = write!(s, " mx {}", quote(mx));
                }
            }
            if let Some(h) = &r.host {
                let _ = write!(s, " host {}", quote(&format_relay_url(h)));
            }
            if let Some(t) = &r.auth {
                let _ = write!(s, " auth {}", table_name(t));
            }
            if let Some(t) = &r.tls {
                s.push_str(if t.no_verify {
                    " tls no-verify"
                } else {
                    " tls"
                });
            }
            for (kw, v) in [
                ("pki", &r.pki),
                ("ca", &r.ca),
                ("helo", &r.helo),
                ("mail-from", &r.mail_from),
            ] {
                if let Some(v) = v {
                    let _ = write!(s, " {kw} {}", quote(v));
                }
            }
            for (kw, v) in [("helo-src", &r.helo_src), ("domain", &r.domain)] {
                if let Some(v) = v {
                    let _ = write!(s, " {kw} {}", table_name(v));
                }
            }
            if let Some(src) = &r.src {
                let _ = write!(s, " src {}", table_ref(src));
            }
            if r.srs {
                s.push_str(" srs");
            }
        }
    }
    let l = &a.local;
    for (kw, v) in [
        ("alias", &l.alias),
        ("virtual", &l.virtual_table),
        ("userbase", &l.userbase),
    ] {
        if let Some(v) = v {
            let _ = write!(s, " {kw} {}", table_name(v));
        }
    }
    for (kw, v) in [("user", &l.user), ("wrapper", &l.wrapper)] {
        if let Some(v) = v {
            let _ = write!(s, " {kw} {}", quote(v));
        }
    }
    if let Some(t) = l.ttl {
        let _ = write!(s, " ttl {}", format_duration(t));
    }
    s
}

fn listener_line(l: &Listener) -> String {
    let mut s = String::from("listen on ");
    match &l.address {
        ListenAddress::Any => s.push_str("all"),
        ListenAddress::Localhost => s.push_str("localhost"),
        ListenAddress::Interface(n) | ListenAddress::Host(n) => s.push_str(&quote(n)),
        ListenAddress::Ip(ip) => s.push_str(&ip.to_string()),
    }
    match l.family {
        Some(Family::Inet4) => s.push_str(" inet4"),
        Some(Family::Inet6) => s.push_str(" inet6"),
        None => {}
    }
    let _ = write!(s, " port {}", l.port);
    match l.tls {
        ListenerTls::None => {}
        ListenerTls::StartTls => s.push_str(" tls"),
        ListenerTls::TlsRequire { verify } => s.push_str(if verify {
            " tls-require verify"
        } else {
            " tls-require"
        }),
        ListenerTls::Smtps => s.push_str(" smtps"),
    }
    for (kw, v) in [
        ("pki", &l.pki),
        ("ca", &l.ca),
        ("hostname", &l.hostname),
        ("tag", &l.tag),
        ("filter", &l.filter),
    ] {
        if let Some(v) = v {
            let _ = write!(s, " {kw} {}", quote(v));
        }
    }
    if let Some(a) = &l.auth {
        s.push_str(if a.optional {
            " auth-optional"
        } else {
            " auth"
        });
        if let Some(t) = &a.table {
            let _ = write!(s, " {}", table_name(t));
        }
    }
    if let Some(t) = &l.hostnames {
        let _ = write!(s, " hostnames {}", table_name(t));
    }
    if let Some(se) = &l.senders {
        let _ = write!(
            s,
            " senders {}{}",
            table_name(&se.table),
            if se.masquerade { " masquerade" } else { "" }
        );
    }
    for (kw, on) in [
        ("mask-src", l.mask_src),
        ("no-dsn", l.no_dsn),
        ("proxy-v2", l.proxy_v2),
        ("received-auth", l.received_auth),
    ] {
        if on {
            let _ = write!(s, " {kw}");
        }
    }
    s
}

fn filter_line(name: &str, f: &Filter) -> String {
    let mut s = format!("filter {} ", quote(name));
    match f {
        Filter::Proc(p) => {
            let _ = write!(s, "proc {}", quote(p));
        }
        Filter::ProcExec(pe) => {
            let _ = write!(s, "proc-exec {}", quote(&pe.command));
            for (kw, v) in [
                ("user", &pe.user),
                ("group", &pe.group),
                ("chroot", &pe.chroot),
            ] {
                if let Some(v) = v {
                    let _ = write!(s, " {kw} {}", quote(v));
                }
            }
        }
        Filter::Chain(members) => {
            let m: Vec<String> = members.iter().map(|m| quote(m)).collect();
            let _ = write!(s, "chain {{ {} }}", m.join(", "));
        }
        Filter::Builtin(b) => {
            let phase = match b.phase {
                FilterPhase::Connect => "connect",
                FilterPhase::Helo => "helo",
                FilterPhase::Ehlo => "ehlo",
                FilterPhase::MailFrom => "mail-from",
                FilterPhase::RcptTo => "rcpt-to",
                FilterPhase::Data => "data",
                FilterPhase::Commit => "commit",
            };
            let cond = match &b.condition.kind {
                FilterConditionKind::Fcrdns => "fcrdns".to_string(),
                FilterConditionKind::Rdns(m) => format!("rdns{}", opt_match(m)),
                FilterConditionKind::Auth(m) => format!("auth{}", opt_match(m)),
                FilterConditionKind::Src(m) => format!("src {}", table_match(m)),
                FilterConditionKind::Helo(m) => format!("helo {}", table_match(m)),
                FilterConditionKind::MailFrom(m) => format!("mail-from {}", table_match(m)),
                FilterConditionKind::RcptTo(m) => format!("rcpt-to {}", table_match(m)),
            };
            let decision = match &b.decision {
                FilterDecision::Bypass => "bypass".to_string(),
                FilterDecision::Junk => "junk".to_string(),
                FilterDecision::Disconnect(m) => format!("disconnect {}", quote(m)),
                FilterDecision::Reject(m) => format!("reject {}", quote(m)),
                FilterDecision::Rewrite(v) => format!("rewrite {}", quote(v)),
            };
            let bang = if b.condition.negated { "!" } else { "" };
            let _ = write!(s, "phase {phase} match {bang}{cond} {decision}");
        }
    }
    s
}

impl Config {
    /// The configuration in the modern grammar, normalized: one statement per line, every
    /// default rule criterion written out, everything declared before use.
    pub fn to_modern_string(&self) -> String {
        let mut out = String::new();
        let o = &self.options;
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        if let Some(p) = &o.queue.path {
            line(format!("queue path {}", quote(p)));
        }
        if let Some(t) = o.queue.ttl {
            line(format!("queue ttl {}", format_duration(t)));
        }
        if o.queue.compression {
            line("queue compression".into());
        }
        match &o.queue.encryption {
            Some(Some(k)) => line(format!("queue encryption {}", quote(k))),
            Some(None) => line("queue encryption".into()),
            None => {}
        }
        if !o.bounce_warn_interval.is_empty() {
            let d: Vec<String> = o
                .bounce_warn_interval
                .iter()
                .map(|d| format_duration(*d))
                .collect();
            line(format!("bounce warn-interval {}", d.join(", ")));
        }
        if let Some(n) = o.smtp.max_message_size {
            line(format!("smtp max-message-size {}", format_size(n)));
        }
        if let Some(n) = o.smtp.max_mails {
            line(format!("smtp limit max-mails {n}"));
        }
        if let Some(n) = o.smtp.max_rcpt {
            line(format!("smtp limit max-rcpt {n}"));
        }
        if let Some(c) = o.smtp.sub_addr_delim {
            line(format!("smtp sub-addr-delim {}", quote(&c.to_string())));
        }
        if let Some(c) = &o.smtp.ciphers {
            line(format!("smtp ciphers {}", quote(c)));
        }
        if let Some(n) = o.mta.max_deferred {
            line(format!("mta max-deferred {n}"));
        }
        for l in &o.mta.limits {
            let domain = l
                .domain
                .as_ref()
                .map(|d| format!("for domain {} ", quote(d)))
                .unwrap_or_default();
            line(format!("mta limit {domain}{} {}", l.key, l.value));
        }
        if let Some(r) = &o.mta.resolver {
            line(format!("mta resolver {}", quote(r)));
        }
        if let Some(p) = o.mta.mx_port {
            line(format!("mta mx-port {p}"));
        }
        if let Some(k) = &o.srs.key {
            line(format!("srs key {}", quote(k)));
        }
        if let Some(k) = &o.srs.backup_key {
            line(format!("srs key backup {}", quote(k)));
        }
        if let Some(t) = o.srs.ttl {
            line(format!("srs ttl {}", format_duration(t)));
        }
        if let Some(a) = &o.admd {
            line(format!("admd {}", quote(a)));
        }
        for (n, c) in &o.mda_wrappers {
            line(format!("mda wrapper {} {}", quote(n), quote(c)));
        }
        if let Some(c) = &o.control_socket {
            line(format!("control socket {}", quote(c)));
        }
        if let Some(m) = &o.metrics {
            // An IP address is always a plain word (digits, letters, `.` and `:`).
            let port = m.port.map(|p| format!(" port {p}")).unwrap_or_default();
            line(format!("metrics listen on {}{port}", m.address));
        }
        for (name, t) in &self.tables {
            match &t.source {
                TableSource::File(path) => line(format!(
                    "table {} {}",
                    quote(name),
                    quote(&format!("file:{path}"))
                )),
                TableSource::Inline => {
                    line(format!("table {} {}", quote(name), entries(&t.entries)))
                }
            }
        }
        for (name, p) in &self.pki {
            if let Some(c) = &p.cert {
                line(format!("pki {} cert {}", quote(name), quote(c)));
            }
            if let Some(k) = &p.key {
                line(format!("pki {} key {}", quote(name), quote(k)));
            }
            match p.dhe {
                Some(Dhe::None) => line(format!("pki {} dhe none", quote(name))),
                Some(Dhe::Legacy) => line(format!("pki {} dhe legacy", quote(name))),
                Some(Dhe::Auto) => line(format!("pki {} dhe auto", quote(name))),
                None => {}
            }
        }
        for (name, c) in &self.ca {
            line(format!("ca {} cert {}", quote(name), quote(c)));
        }
        for (name, c) in &self.procs {
            line(format!("proc {} {}", quote(name), quote(c)));
        }
        for chains in [false, true] {
            for (name, f) in &self.filters {
                if matches!(f, Filter::Chain(_)) == chains {
                    line(filter_line(name, f));
                }
            }
        }
        if let Some(s) = &self.socket_listener {
            let mut l = String::from("listen on socket");
            if let Some(f) = &s.filter {
                let _ = write!(l, " filter {}", quote(f));
            }
            if s.mask_src {
                l.push_str(" mask-src");
            }
            if let Some(t) = &s.tag {
                let _ = write!(l, " tag {}", quote(t));
            }
            line(l);
        }
        for l in &self.listeners {
            line(listener_line(l));
        }
        for (name, a) in &self.actions {
            line(action_line(name, a));
        }
        for r in &self.rules {
            line(r.to_modern_string());
        }
        out
    }
}
