//! `quickcheck::Arbitrary` for the grammar's values: each generator builds only values
//! the grammar accepts, so `parse(render(x)) == x` can be checked for all of them.

use bytes::{Bytes, BytesMut};
use quickcheck::{Arbitrary, Gen};

use crate::command::Command;
use crate::params::{BodyType, MailParams, Notify, OriginalRecipient, RcptParams, Ret};
use crate::reply::{EnhancedStatus, Reply};
use crate::types::{ForwardPath, Host, Mailbox, ReversePath};

/// A number below `n` (n > 0).
fn below(g: &mut Gen, n: usize) -> usize {
    usize::arbitrary(g) % n.max(1)
}

/// One element of a non-empty slice.
fn pick<T: Copy>(g: &mut Gen, items: &[T]) -> T {
    *g.choose(items).unwrap()
}

/// A string of `1..=max` characters drawn from `alphabet`.
fn word(g: &mut Gen, alphabet: &[u8], max: usize) -> String {
    let len = 1 + below(g, max);
    (0..len).map(|_| char::from(pick(g, alphabet))).collect()
}

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ATEXT: &[u8] = b"abcxyzABCXYZ0189!#$%&'*+-/=?^_`{|}~";
const PRINTABLE: &[u8] = b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_`abcxyz{|}~";
const UTF8_WORDS: &[&str] = &["bücher", "jöran", "例え", "пример", "ελ"];

/// An LDH label: alphanumeric ends, hyphens inside.
fn label(g: &mut Gen) -> String {
    let mut l = word(g, ALNUM, 6);
    if bool::arbitrary(g) {
        l.push('-');
        l.push_str(&word(g, ALNUM, 4));
    }
    l
}

/// A domain of one to three labels; U-labels when `utf8`.
fn domain(g: &mut Gen, utf8: bool) -> String {
    let n = 1 + below(g, 3);
    let labels: Vec<String> = (0..n)
        .map(|_| {
            if utf8 && bool::arbitrary(g) {
                pick(g, UTF8_WORDS).to_string()
            } else {
                label(g)
            }
        })
        .collect();
    labels.join(".")
}

/// An address literal: IPv4, IPv6 or general.
fn literal(g: &mut Gen) -> String {
    match below(g, 3) {
        0 => {
            let o: [u8; 4] = Arbitrary::arbitrary(g);
            format!("[{}.{}.{}.{}]", o[0], o[1], o[2], o[3])
        }
        1 => {
            let segs: [u16; 8] = Arbitrary::arbitrary(g);
            format!("[IPv6:{}]", std::net::Ipv6Addr::from(segs)) // allow-impure: an address value
        }
        _ => format!("[{}:{}]", label(g), word(g, b"abc\"#.:;<=>ZYX", 8)),
    }
}

/// A host, a literal or a domain.
fn host(g: &mut Gen, utf8: bool) -> String {
    if below(g, 4) == 0 {
        literal(g)
    } else {
        domain(g, utf8)
    }
}

/// A local part: a dot-string or a quoted string with quoted pairs.
fn local(g: &mut Gen, utf8: bool) -> String {
    if below(g, 4) == 0 {
        let mut q = String::from("\"");
        for _ in 0..below(g, 8) {
            match pick(g, PRINTABLE) {
                c @ (b'"' | b'\\') => {
                    q.push('\\');
                    q.push(char::from(c));
                }
                c => q.push(char::from(c)),
            }
        }
        q.push('"');
        return q;
    }
    let n = 1 + below(g, 3);
    let atoms: Vec<String> = (0..n)
        .map(|_| {
            if utf8 && bool::arbitrary(g) {
                pick(g, UTF8_WORDS).to_string()
            } else {
                word(g, ATEXT, 6)
            }
        })
        .collect();
    atoms.join(".")
}

/// A valid mailbox; UTF-8 only when `utf8`.
pub(crate) fn mailbox(g: &mut Gen, utf8: bool) -> Mailbox {
    let text = format!("{}@{}", local(g, utf8), host(g, utf8));
    Mailbox::parse(Bytes::from(text), utf8).unwrap()
}

/// Printable text without leading or trailing spaces.
fn text(g: &mut Gen) -> Bytes {
    let t = word(g, PRINTABLE, 12);
    let t = t.trim();
    Bytes::from(if t.is_empty() {
        "x".to_string()
    } else {
        t.to_string()
    })
}

/// Printable ASCII, possibly with spaces (decoded xtext values).
fn xtext_value(g: &mut Gen) -> Bytes {
    Bytes::from(word(g, b" +=abcXYZ09@.<>", 16))
}

impl Arbitrary for MailParams {
    fn arbitrary(g: &mut Gen) -> Self {
        let auth = match below(g, 3) {
            0 => None,
            1 => Some(Bytes::new()),
            _ => Some(xtext_value(g)).filter(|a| &a[..] != b"<>"),
        };
        MailParams {
            size: Option::arbitrary(g),
            body: if bool::arbitrary(g) {
                Some(pick(
                    g,
                    &[
                        BodyType::SevenBit,
                        BodyType::EightBitMime,
                        BodyType::BinaryMime,
                    ],
                ))
            } else {
                None
            },
            smtputf8: bool::arbitrary(g),
            auth,
            ret: if bool::arbitrary(g) {
                Some(pick(g, &[Ret::Full, Ret::Headers]))
            } else {
                None
            },
            envid: if bool::arbitrary(g) {
                Some(xtext_value(g))
            } else {
                None
            },
        }
    }
}

impl Arbitrary for RcptParams {
    fn arbitrary(g: &mut Gen) -> Self {
        let notify = match below(g, 3) {
            0 => None,
            1 => Some(Notify {
                never: true,
                ..Notify::default()
            }),
            _ => {
                let mut n = Notify {
                    never: false,
                    success: bool::arbitrary(g),
                    failure: bool::arbitrary(g),
                    delay: bool::arbitrary(g),
                };
                n.failure |= !(n.success || n.delay);
                Some(n)
            }
        };
        let orcpt = bool::arbitrary(g).then(|| OriginalRecipient {
            addr_type: Bytes::from_static(pick(g, &[&b"rfc822"[..], b"utf-8", b"X-Type"])),
            addr: xtext_value(g),
        });
        RcptParams { notify, orcpt }
    }
}

impl Arbitrary for Command {
    fn arbitrary(g: &mut Gen) -> Self {
        let ascii_host = |g: &mut Gen| Host::parse(Bytes::from(host(g, false)), false).unwrap();
        match below(g, 15) {
            0 => Command::Helo(ascii_host(g)),
            1 => Command::Ehlo(ascii_host(g)),
            2 => {
                let params = MailParams::arbitrary(g);
                let path = if below(g, 5) == 0 {
                    ReversePath::Null
                } else {
                    let m = mailbox(g, params.smtputf8);
                    ReversePath::Mailbox(m)
                };
                Command::Mail(path, params)
            }
            3 => {
                let path = if below(g, 5) == 0 {
                    ForwardPath::Postmaster
                } else {
                    ForwardPath::Mailbox(mailbox(g, true))
                };
                Command::Rcpt(path, RcptParams::arbitrary(g))
            }
            4 => Command::Data,
            5 => Command::Bdat {
                size: u64::arbitrary(g),
                last: bool::arbitrary(g),
            },
            6 => Command::Rset,
            7 => Command::Noop,
            8 => Command::Quit,
            9 => Command::Vrfy(text(g)),
            10 => Command::Expn(text(g)),
            11 => Command::Help(bool::arbitrary(g).then(|| text(g))),
            12 => Command::StartTls,
            _ => {
                let mechanism = Bytes::from(word(g, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", 20));
                let initial = match below(g, 3) {
                    0 => None,
                    1 => Some(Bytes::new()),
                    _ => Some(crate::sasl::encode_base64(&Vec::<u8>::arbitrary(g)))
                        .filter(|r| !r.is_empty()),
                };
                Command::Auth { mechanism, initial }
            }
        }
    }
}

impl Arbitrary for Reply {
    fn arbitrary(g: &mut Gen) -> Self {
        let class = pick(g, &[2u16, 3, 4, 5]);
        let code = class * 100 + (below(g, 6) * 10 + below(g, 10)) as u16;
        let status = (class != 3 && bool::arbitrary(g)).then(|| {
            EnhancedStatus::new(
                class as u8,
                (below(g, 1000)) as u16,
                (below(g, 1000)) as u16,
            )
        });
        let n = 1 + below(g, 5);
        let mut lines: Vec<Bytes> = (0..n)
            .map(|_| {
                let len = below(g, 20);
                let bytes: Vec<u8> = (0..len)
                    .map(|_| match u8::arbitrary(g) {
                        b'\r' | b'\n' => b' ',
                        b => b,
                    })
                    .collect();
                Bytes::from(bytes)
            })
            .collect();
        if status.is_none() {
            if let Some(first) = lines.first_mut() {
                if crate::reply::status_prefix(first, class).is_some() {
                    let mut b = BytesMut::from(&b"x"[..]);
                    b.extend_from_slice(first);
                    *first = b.freeze();
                }
            }
        }
        Reply::multiline(code, status, lines)
    }
}
