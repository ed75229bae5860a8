//! Tests of format specifiers: the examples of smtpd.conf(5), slices, modifiers, and
//! injection attempts through addresses.

use quickcheck::quickcheck;

use super::format::*;

fn ctx<'a>(rcpt: &'a str, sender: &'a str) -> FormatContext<'a> {
    FormatContext {
        sender,
        rcpt,
        dest: rcpt,
        user_name: "gilles",
        user_directory: "/home/gilles",
        mda: None,
        sub_addr_delim: '+',
    }
}

fn exp(template: &str, c: &FormatContext<'_>) -> Result<String, FormatError> {
    expand_format(template, c)
}

#[test]
fn manual_slice_examples() {
    let c = ctx("user@example.org", "");
    for (t, want) in [
        ("%{rcpt.domain[0]}", "e"),
        ("%{rcpt.domain[1]}", "x"),
        ("%{rcpt.domain[8:]}", "org"),
        ("%{rcpt.domain[-3:]}", "org"),
        ("%{rcpt.domain[0:6]}", "example"),
        ("%{rcpt.domain[0:-4]}", "example"),
        ("%{rcpt.domain[:2]}", "exa"),
        ("%{rcpt.domain[-1]}", "g"),
        ("%{rcpt.user[2:]}", "er"),
        ("%{rcpt.domain[3:100]}", "mple.org"),
    ] {
        assert_eq!(exp(t, &c).unwrap(), want, "{t}");
    }
    for bad in [
        "%{rcpt.domain[11]}",
        "%{rcpt.domain[5:2]}",
        "%{rcpt.domain[-12:]}",
        "%{rcpt.domain[x]}",
        "%{rcpt.domain[]}",
        "%{rcpt.domain]0[}",
        "%{rcpt.domain[1]x}",
    ] {
        assert!(
            matches!(exp(bad, &c), Err(FormatError::BadSlice(_))),
            "{bad}"
        );
    }
    assert_eq!(
        exp("%{sender[3:]}", &c).unwrap(),
        "",
        "an empty value stays empty"
    );
}

#[test]
fn manual_modifier_examples() {
    let c = ctx("User+Tag@Example.org", "");
    assert_eq!(
        exp("%{rcpt:lowercase}", &c).unwrap(),
        "user+tag@example.org"
    );
    assert_eq!(
        exp("%{rcpt:uppercase}", &c).unwrap(),
        "USER+TAG@EXAMPLE.ORG"
    );
    assert_eq!(exp("%{rcpt:strip}", &c).unwrap(), "User@Example.org");
    assert_eq!(
        exp("%{rcpt:lowercase|strip}", &c).unwrap(),
        "user@example.org"
    );
    assert_eq!(exp("%{rcpt.user:strip}", &c).unwrap(), "User");
    assert_eq!(exp("%{RCPT.USER[0:1]:lowercase}", &c).unwrap(), "us");
    assert!(matches!(
        exp("%{rcpt:shout}", &c),
        Err(FormatError::UnknownModifier(_))
    ));
    let dash = FormatContext {
        sub_addr_delim: '-',
        ..ctx("a-b@x", "")
    };
    assert_eq!(exp("%{rcpt:strip}", &dash).unwrap(), "a@x");
}

#[test]
fn every_token() {
    let c = FormatContext {
        sender: "s@sd.example",
        rcpt: "r@rd.example",
        dest: "d@dd.example",
        user_name: "vmail",
        user_directory: "/var/vmail",
        mda: Some("/usr/bin/procmail -f -"),
        sub_addr_delim: '+',
    };
    let t = "%{sender} %{sender.user} %{sender.domain} %{rcpt} %{rcpt.user} %{rcpt.domain} \
             %{dest} %{dest.user} %{dest.domain} %{user.username} %{user.directory} %{mbox.from} %{mda}";
    assert_eq!(
        exp(t, &c).unwrap(),
        "s@sd.example s sd.example r@rd.example r rd.example d@dd.example d dd.example vmail \
         /var/vmail s@sd.example /usr/bin/procmail -f -"
    );
    let bounce = ctx("r@x", "");
    assert_eq!(
        exp("[%{sender}] %{mbox.from}", &bounce).unwrap(),
        "[] MAILER-DAEMON"
    );
    assert_eq!(exp("%{mda}", &bounce), Err(FormatError::NoMda));
    assert!(matches!(
        exp("%{nope}", &bounce),
        Err(FormatError::UnknownToken(_))
    ));
}

#[test]
fn literals_home_and_percent() {
    let c = ctx("bob@example.org", "");
    assert_eq!(
        exp("~/Maildir/%{rcpt.domain}", &c).unwrap(),
        "/home/gilles/Maildir/example.org"
    );
    assert_eq!(exp("/x/~/y", &c).unwrap(), "/x/~/y");
    assert_eq!(exp("date +%%s %d 100%", &c).unwrap(), "date +%s %d 100%");
    assert_eq!(exp("", &c).unwrap(), "");
    assert_eq!(exp("%{rcpt", &c), Err(FormatError::Unterminated(0)));
    let long = format!("%{{{}}}", "r".repeat(200));
    assert!(matches!(exp(&long, &c), Err(FormatError::Unterminated(_))));
}

#[test]
fn injection_attempts_are_neutralized() {
    let cases = [
        (
            "../../etc/passwd@example.org",
            "/var/mail/%{rcpt.user}",
            Err(FormatError::LeadingDot("..:..:etc:passwd".into())),
        ),
        (
            "a/../../etc@x",
            "/var/mail/%{rcpt.user}",
            Ok("/var/mail/a:..:..:etc"),
        ),
        (
            "$(rm -rf /)@x",
            "/usr/bin/mda %{rcpt.user}",
            Ok("/usr/bin/mda ::rm:-rf:::"),
        ),
        ("a;reboot@x", "mda %{rcpt}", Ok("mda a:reboot@x")),
        ("`id`@x", "mda %{rcpt.user}", Ok("mda :id:")),
        ("a\nb@x", "mda %{rcpt.user}", Ok("mda a:b")),
        ("a|b&c>d<e@x", "mda %{rcpt.user}", Ok("mda a:b:c:d:e")),
        (
            "\"quoted local\"@x",
            "mda %{rcpt.user}",
            Ok("mda :quoted:local:"),
        ),
        (
            "user+t?g@example.org",
            "%{rcpt}",
            Ok("user+t:g@example.org"),
        ),
        (
            ".ssh@x",
            "~/%{rcpt.user}",
            Err(FormatError::LeadingDot(".ssh".into())),
        ),
        (
            "..@x",
            "/var/mail/%{rcpt.user[0]}%{rcpt.user[1]}",
            Err(FormatError::LeadingDot(".".into())),
        ),
        ("a..b@x", "/var/mail/%{rcpt.user}", Ok("/var/mail/a..b")),
        ("..@x", "/var/mail/x%{rcpt.user}", Ok("/var/mail/x..")),
    ];
    for (rcpt, template, want) in cases {
        let c = ctx(rcpt, "");
        assert_eq!(
            exp(template, &c),
            want.map(str::to_string),
            "{rcpt:?} in {template:?}"
        );
    }
}

#[test]
fn raw_is_refused_on_addresses_only() {
    let c = FormatContext {
        mda: Some("/bin/x; y"),
        ..ctx("user+t?g@example.org", "")
    };
    assert_eq!(
        exp("%{rcpt:raw}", &c),
        Err(FormatError::RawRefused("rcpt".into()))
    );
    assert_eq!(
        exp("%{user.username:raw}", &c),
        Err(FormatError::RawRefused("user.username".into()))
    );
    assert_eq!(exp("%{mda:raw}", &c).unwrap(), "/bin/x; y");
    assert_eq!(exp("%{user.directory:raw}", &c).unwrap(), "/home/gilles");
}

#[test]
fn control_characters_and_length() {
    let c = FormatContext {
        user_directory: "/home/a\nb",
        ..ctx("u@x", "")
    };
    assert_eq!(
        exp("%{user.directory}", &c),
        Err(FormatError::ControlCharacter)
    );
    assert_eq!(exp("a\tb", &c), Err(FormatError::ControlCharacter));
    let big = "a".repeat(3000);
    let rcpt = format!("{big}@x");
    let c = ctx(&rcpt, "");
    assert_eq!(
        exp("%{rcpt.user}%{rcpt.user}", &c),
        Err(FormatError::TooLong)
    );
    assert_eq!(
        exp(&"x".repeat(MAX_EXPANSION_LEN + 1), &c),
        Err(FormatError::TooLong)
    );
}

/// What an expanded path or command may never contain when only addresses vary.
fn assert_safe(out: &str, template_shell_free: bool) {
    assert!(!out.contains("/.."), "{out:?}");
    assert!(!out.starts_with('.'), "{out:?}");
    if template_shell_free {
        assert!(out.chars().all(|c| is_safe_char(c) || c == '/'), "{out:?}");
    }
}

quickcheck! {
    fn arbitrary_addresses_never_panic_and_stay_safe(user: String, domain: String, sender: String, lo: i8, hi: i8) -> bool {
        let rcpt = format!("{user}@{domain}");
        let c = ctx(&rcpt, &sender);
        let templates = [
            "/var/mail/%{rcpt.user}/%{rcpt.domain}".to_string(),
            "%{rcpt}/%{sender}/%{dest.user:lowercase|strip}/%{mbox.from}".to_string(),
            format!("/m/%{{rcpt.user[{lo}:{hi}]}}/%{{sender.domain[{lo}]}}"),
        ];
        for t in &templates {
            if let Ok(out) = expand_format(t, &c) {
                assert_safe(&out, true);
            }
        }
        true
    }

    fn arbitrary_templates_never_panic(template: String, rcpt: String) -> bool {
        let c = FormatContext { mda: Some("m"), ..ctx(&rcpt, "s@x") };
        if let Ok(out) = expand_format(&template, &c) {
            assert!(out.len() <= MAX_EXPANSION_LEN);
        }
        true
    }
}
