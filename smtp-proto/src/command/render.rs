//! Writes a [`Command`] as a line plus CRLF: the client session's side of the grammar.

use bytes::{BufMut, BytesMut};

use super::Command;

impl Command {
    /// The verb, upper-case, as written on the wire (for logs and statistics).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Helo(_) => "HELO",
            Command::Ehlo(_) => "EHLO",
            Command::Mail(..) => "MAIL",
            Command::Rcpt(..) => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }

    /// Appends the command line and its CRLF to `out`; `parse` of the line without
    /// the CRLF gives back an equal command. A CR or LF inside a field built by hand
    /// (VRFY text, an ORCPT address type) becomes a space, so a value can never end
    /// the line early and smuggle in another command.
    pub fn render(&self, out: &mut BytesMut) {
        let start = out.len();
        self.render_fields(out);
        if let Some(line) = out.get_mut(start..) {
            for b in line.iter_mut().filter(|b| **b == b'\r' || **b == b'\n') {
                *b = b' ';
            }
        }
        out.put_slice(b"\r\n");
    }

    /// Writes the line without its CRLF.
    fn render_fields(&self, out: &mut BytesMut) {
        match self {
            Command::Helo(host) => {
                out.put_slice(b"HELO ");
                out.put_slice(host.as_bytes());
            }
            Command::Ehlo(host) => {
                out.put_slice(b"EHLO ");
                out.put_slice(host.as_bytes());
            }
            Command::Mail(path, params) => {
                out.put_slice(b"MAIL FROM:");
                path.render(out);
                params.render(out);
            }
            Command::Rcpt(path, params) => {
                out.put_slice(b"RCPT TO:");
                path.render(out);
                params.render(out);
            }
            Command::Data => out.put_slice(b"DATA"),
            Command::Bdat { size, last } => {
                out.put_slice(b"BDAT ");
                out.put_slice(size.to_string().as_bytes());
                if *last {
                    out.put_slice(b" LAST");
                }
            }
            Command::Rset => out.put_slice(b"RSET"),
            Command::Noop => out.put_slice(b"NOOP"),
            Command::Quit => out.put_slice(b"QUIT"),
            Command::Vrfy(arg) => {
                out.put_slice(b"VRFY ");
                out.put_slice(arg);
            }
            Command::Expn(arg) => {
                out.put_slice(b"EXPN ");
                out.put_slice(arg);
            }
            Command::Help(None) => out.put_slice(b"HELP"),
            Command::Help(Some(arg)) => {
                out.put_slice(b"HELP ");
                out.put_slice(arg);
            }
            Command::StartTls => out.put_slice(b"STARTTLS"),
            Command::Auth { mechanism, initial } => {
                out.put_slice(b"AUTH ");
                out.put_slice(mechanism);
                match initial {
                    None => {}
                    Some(r) if r.is_empty() => out.put_slice(b" ="),
                    Some(r) => {
                        out.put_u8(b' ');
                        out.put_slice(r);
                    }
                }
            }
        }
    }
}
