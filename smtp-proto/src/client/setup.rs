//! Opening the session: greeting, EHLO with HELO fallback, STARTTLS, AUTH (RFC 5321
//! §4.1.1.1, RFC 3207, RFC 4954), and the RSET between messages.

use bytes::BytesMut;

use super::{ClientSession, ErrorReason, Phase, TlsPolicy};
use crate::command::Command;
use crate::reply::{EhloCapabilities, Reply};
use crate::sasl;

/// Where an AUTH exchange stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum AuthStep {
    /// `AUTH PLAIN <response>` sent; waiting for 235.
    Plain,
    /// `AUTH LOGIN` sent; waiting for the user name challenge.
    Login,
    /// The user name was sent; waiting for the password challenge.
    LoginUser,
    /// The password was sent; waiting for 235.
    LoginPassword,
}

impl ClientSession {
    /// Writes one command line.
    fn send_command(&mut self, command: &Command) {
        let mut line = BytesMut::new();
        command.render(&mut line);
        self.command(&line);
    }

    /// The reply does not fit the command: the stream cannot be trusted any more.
    pub(super) fn unexpected(&mut self, command: &'static str, reply: Reply) {
        self.fail(ErrorReason::UnexpectedReply { command, reply }, true, false);
    }

    /// The server refused a command of the session (polite: it is still in step).
    fn refused(&mut self, command: &'static str, reply: Reply) {
        let temporary = !reply.is_permanent();
        self.fail(ErrorReason::Refused { command, reply }, temporary, true);
    }

    /// Sends EHLO, or LHLO in LMTP (RFC 2033 §4.1).
    pub(super) fn send_ehlo(&mut self) {
        if self.config.lmtp {
            let mut line = BytesMut::from(&b"LHLO "[..]);
            line.extend_from_slice(self.config.helo.as_bytes());
            line.extend_from_slice(b"\r\n");
            self.command(&line);
        } else {
            self.send_command(&Command::Ehlo(self.config.helo.clone()));
        }
        self.phase = Phase::Ehlo;
    }

    /// The greeting: 220, or the server does not want us (RFC 5321 §3.1, §4.3.1).
    pub(super) fn greeting(&mut self, reply: Reply) {
        if reply.code == 220 {
            self.send_ehlo();
        } else if reply.is_transient() || reply.is_permanent() {
            let temporary = reply.is_transient();
            self.fail(ErrorReason::Greeting(reply), temporary, true);
        } else {
            self.unexpected("greeting", reply);
        }
    }

    /// The EHLO reply: the extensions, or HELO when EHLO is not understood (RFC 5321
    /// §3.2; LMTP has no fallback).
    pub(super) fn ehlo(&mut self, reply: Reply) {
        let verb = if self.config.lmtp { "LHLO" } else { "EHLO" };
        if reply.is_positive() {
            self.caps = EhloCapabilities::from_reply(&reply);
            self.greeted();
        } else if reply.is_permanent() && !self.config.lmtp {
            self.send_command(&Command::Helo(self.config.helo.clone()));
            self.phase = Phase::Helo;
        } else if reply.is_transient() || reply.is_permanent() {
            self.refused(verb, reply);
        } else {
            self.unexpected(verb, reply);
        }
    }

    /// The HELO reply: plain SMTP without extensions.
    pub(super) fn helo(&mut self, reply: Reply) {
        if reply.is_positive() {
            self.caps = EhloCapabilities::default();
            self.greeted();
        } else if reply.is_transient() || reply.is_permanent() {
            self.refused("HELO", reply);
        } else {
            self.unexpected("HELO", reply);
        }
    }

    /// After EHLO or HELO: STARTTLS if the policy wants it, then AUTH, then idle.
    fn greeted(&mut self) {
        if self.tls || self.config.tls == TlsPolicy::Never {
            return self.authenticate();
        }
        let possible = self.caps.starttls && self.config.tls_available;
        if possible {
            self.send_command(&Command::StartTls);
            self.phase = Phase::StartTls;
        } else if self.config.tls == TlsPolicy::Required {
            self.fail(ErrorReason::TlsNotAvailable, false, true);
        } else {
            self.authenticate();
        }
    }

    /// The STARTTLS reply: 220 starts the handshake (RFC 3207 §4); a refusal is fatal
    /// only when TLS is required.
    pub(super) fn starttls(&mut self, reply: Reply) {
        if reply.code == 220 {
            self.phase = Phase::TlsHandshake;
            self.push(super::Action::StartTls);
        } else if !(reply.is_transient() || reply.is_permanent()) {
            self.unexpected("STARTTLS", reply);
        } else if self.config.tls == TlsPolicy::Required {
            self.refused("STARTTLS", reply);
        } else {
            self.authenticate();
        }
    }

    /// AUTH when credentials are configured: PLAIN if offered, else LOGIN, never in
    /// plaintext (RFC 4954 §4).
    fn authenticate(&mut self) {
        let Some(creds) = self.config.credentials.clone() else {
            return self.idle();
        };
        if !self.tls {
            return self.fail(ErrorReason::PlaintextCredentials, false, true);
        }
        if self.caps.supports_auth(b"PLAIN") {
            let initial = sasl::encode_plain(b"", &creds.user, &creds.password);
            self.send_command(&Command::Auth {
                mechanism: bytes::Bytes::from_static(b"PLAIN"),
                initial: Some(initial),
            });
            self.phase = Phase::Auth(AuthStep::Plain);
        } else if self.caps.supports_auth(b"LOGIN") {
            self.send_command(&Command::Auth {
                mechanism: bytes::Bytes::from_static(b"LOGIN"),
                initial: None,
            });
            self.phase = Phase::Auth(AuthStep::Login);
        } else {
            self.fail(ErrorReason::NoAuthMechanism, false, true);
        }
    }

    /// A reply of the AUTH exchange: 334 challenges for LOGIN, 235 at the end.
    pub(super) fn auth(&mut self, step: AuthStep, reply: Reply) {
        let Some(creds) = self.config.credentials.clone() else {
            return self.unexpected("AUTH", reply);
        };
        match step {
            AuthStep::Plain | AuthStep::LoginPassword if reply.is_positive() => {
                self.authenticated = true;
                self.idle();
            }
            AuthStep::Login | AuthStep::LoginUser if reply.code == 334 => {
                let (answer, next) = if step == AuthStep::Login {
                    (creds.user, AuthStep::LoginUser)
                } else {
                    (creds.password, AuthStep::LoginPassword)
                };
                let mut line = BytesMut::from(&sasl::encode_base64(&answer)[..]);
                line.extend_from_slice(b"\r\n");
                self.command(&line);
                self.phase = Phase::Auth(next);
            }
            _ if reply.is_transient() || reply.is_permanent() => self.refused("AUTH", reply),
            _ => self.unexpected("AUTH", reply),
        }
    }

    /// The RSET reply between messages.
    pub(super) fn rset(&mut self, reply: Reply) {
        if reply.is_positive() {
            self.idle();
        } else if reply.is_transient() || reply.is_permanent() {
            self.refused("RSET", reply);
        } else {
            self.unexpected("RSET", reply);
        }
    }

    /// Sends RSET to end a transaction the server may still hold (RFC 5321 §4.1.1.5).
    pub(super) fn send_rset(&mut self) {
        self.send_command(&Command::Rset);
        self.phase = Phase::Rset;
    }
}
