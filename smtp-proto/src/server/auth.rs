//! AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN: the command's checks, the challenge
//! steps, and the decoded credentials leaving as a question to the engine.

use std::time::Instant;

use bytes::Bytes;

use crate::line::Framed;
use crate::sasl::{self, SaslError};

use super::actions::{AuthMechanism, Question};
use super::pipeline::Pending;
use super::render::{self, Canned};
use super::state::{AuthStep, Mode};
use super::ServerSession;

fn sasl_refusal(error: SaslError) -> Canned {
    match error {
        SaslError::Cancelled => render::AUTH_CANCELED,
        SaslError::InvalidBase64 => render::AUTH_BAD_BASE64,
        _ => render::AUTH_MALFORMED,
    }
}

impl ServerSession {
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4).
    pub(super) fn auth(&mut self, mechanism: &[u8], initial: Option<Bytes>, now: Instant) {
        let offered = self.config.auth;
        if !offered {
            return self.refuse(render::NOT_IMPLEMENTED);
        }
        if !self.greeted.is_some_and(|g| g.esmtp) {
            return self.refuse(render::NEED_EHLO);
        }
        if self.authenticated {
            return self.refuse(render::AUTH_TWICE);
        }
        if self.txn.is_some() {
            return self.refuse(render::AUTH_IN_TXN);
        }
        if !self.tls && !self.config.auth_plaintext {
            return self.refuse(render::AUTH_NEEDS_TLS);
        }
        if mechanism.eq_ignore_ascii_case(b"PLAIN") {
            match initial {
                Some(response) => self.auth_plain(&response, now),
                None => {
                    self.reply(render::EMPTY_CHALLENGE);
                    self.mode = Mode::Auth(AuthStep::PlainResponse);
                }
            }
        } else if mechanism.eq_ignore_ascii_case(b"LOGIN") {
            match initial {
                Some(response) => self.auth_step(AuthStep::LoginUser, &response, now),
                None => {
                    self.reply(render::LOGIN_USER);
                    self.mode = Mode::Auth(AuthStep::LoginUser);
                }
            }
        } else {
            self.refuse(render::AUTH_UNKNOWN);
        }
    }

    /// One response line of an AUTH exchange.
    pub(super) fn auth_line(&mut self, step: AuthStep, framed: Framed, now: Instant) {
        match framed {
            Framed::TooLong => self.refuse(render::AUTH_LINE_TOO_LONG),
            Framed::Line(line) => self.auth_step(step, &line, now),
        }
    }

    fn auth_step(&mut self, step: AuthStep, response: &[u8], now: Instant) {
        match step {
            AuthStep::PlainResponse => self.auth_plain(response, now),
            AuthStep::LoginUser => match sasl::decode_base64(response) {
                Ok(user) => {
                    self.reply(render::LOGIN_PASSWORD);
                    self.mode = Mode::Auth(AuthStep::LoginPassword { user });
                }
                Err(error) => self.refuse(sasl_refusal(error)),
            },
            AuthStep::LoginPassword { user } => match sasl::decode_base64(response) {
                Ok(password) => {
                    let question = Question::Auth {
                        mechanism: AuthMechanism::Login,
                        authzid: Bytes::new(),
                        authcid: user,
                        password,
                    };
                    self.ask(question, Pending::Auth, now, self.config.timeouts.mail);
                }
                Err(error) => self.refuse(sasl_refusal(error)),
            },
        }
    }

    fn auth_plain(&mut self, response: &[u8], now: Instant) {
        match sasl::decode_plain(response) {
            Ok(credentials) => {
                let question = Question::Auth {
                    mechanism: AuthMechanism::Plain,
                    authzid: credentials.authzid,
                    authcid: credentials.authcid,
                    password: credentials.password,
                };
                self.ask(question, Pending::Auth, now, self.config.timeouts.mail);
            }
            Err(error) => self.refuse(sasl_refusal(error)),
        }
    }
}
