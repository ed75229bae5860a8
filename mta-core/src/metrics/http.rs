//! A small, bounded reader of HTTP/1.x request heads (RFC 9112 §2–§5): the request line
//! and the header fields up to the empty line, at most [`MAX_REQUEST_HEAD`] bytes. The
//! endpoint needs no body and answers one request per connection, so nothing else of
//! HTTP is read.

/// The most bytes of a request head read; a head without its empty line by then is
/// answered 431 (RFC 6585 §5).
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// What the bytes received so far make of a request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RequestHead {
    /// A complete `GET` request for `path` (the request target without its query).
    Get {
        /// The path, such as `/metrics`.
        path: String,
    },
    /// A complete, well-formed request with another method (`HEAD`, `POST`...).
    OtherMethod,
    /// A request that breaks the grammar (RFC 9112 §2.2, §3, §5): answered 400.
    Malformed,
    /// The empty line that ends the head has not come yet.
    Incomplete,
    /// [`MAX_REQUEST_HEAD`] bytes came without the empty line: answered 431.
    TooLarge,
}

/// Parses the first [`MAX_REQUEST_HEAD`] bytes of `data` as a request head. A line is
/// judged as soon as its line feed has come, so a malformed request line is known before
/// the rest arrives; the result for a prefix of `data` is [`RequestHead::Incomplete`] or
/// the result for `data` itself.
pub fn parse_request_head(data: &[u8]) -> RequestHead {
    let data = data.get(..MAX_REQUEST_HEAD).unwrap_or(data);
    let mut request: Option<RequestLine> = None;
    let mut hosts = 0usize;
    let mut rest = data;
    while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
        let line = rest.get(..lf).unwrap_or_default();
        rest = rest.get(lf.saturating_add(1)..).unwrap_or_default();
        // RFC 9112 §2.2: a line may end in a bare LF; CR elsewhere is invalid.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match &request {
            // RFC 9112 §2.2: empty lines before the request line are ignored.
            None if line.is_empty() => {}
            None => match request_line(line) {
                Some(r) => request = Some(r),
                None => return RequestHead::Malformed,
            },
            Some(r) if line.is_empty() => return r.finish(hosts),
            Some(_) => match field_line(line) {
                Some(is_host) => hosts = hosts.saturating_add(usize::from(is_host)),
                None => return RequestHead::Malformed,
            },
        }
    }
    if data.len() >= MAX_REQUEST_HEAD {
        RequestHead::TooLarge
    } else {
        RequestHead::Incomplete
    }
}

/// Accumulates the bytes of one request head as they are read, up to
/// [`MAX_REQUEST_HEAD`]; however the bytes are split, the result is the same.
#[derive(Clone, Debug, Default)]
pub struct RequestReader {
    buf: Vec<u8>,
}

impl RequestReader {
    /// A reader with nothing received.
    pub fn new() -> Self {
        RequestReader::default()
    }

    /// How many more bytes may be pushed.
    pub fn room(&self) -> usize {
        MAX_REQUEST_HEAD.saturating_sub(self.buf.len())
    }

    /// How many bytes were kept so far.
    pub fn received(&self) -> usize {
        self.buf.len()
    }

    /// Adds `data` (beyond [`RequestReader::room`] it is dropped) and says what the bytes
    /// make so far. Call until the result is not [`RequestHead::Incomplete`].
    pub fn push(&mut self, data: &[u8]) -> RequestHead {
        let take = data.len().min(self.room());
        self.buf
            .extend_from_slice(data.get(..take).unwrap_or_default());
        parse_request_head(&self.buf)
    }
}

/// A parsed request line (RFC 9112 §3).
struct RequestLine {
    /// The method is `GET`.
    get: bool,
    /// The path of the target, for `GET`; `None` for a target that names none.
    path: Option<String>,
    /// The minor version of `HTTP/1.x`.
    minor: u8,
}

impl RequestLine {
    /// The request once the head is complete: RFC 9112 §3.2 makes a missing `Host` in
    /// HTTP/1.1, or more than one, a 400.
    fn finish(&self, hosts: usize) -> RequestHead {
        if hosts > 1 || (hosts == 0 && self.minor >= 1) {
            return RequestHead::Malformed;
        }
        match (&self.path, self.get) {
            (_, false) => RequestHead::OtherMethod,
            (Some(path), true) => RequestHead::Get { path: path.clone() },
            (None, true) => RequestHead::Malformed,
        }
    }
}

/// `method SP request-target SP HTTP-version` (RFC 9112 §3), or `None`.
fn request_line(line: &[u8]) -> Option<RequestLine> {
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !is_token(method) || target.is_empty() {
        return None;
    }
    if !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return None;
    }
    let minor = match version.strip_prefix(b"HTTP/1.") {
        Some([d]) if d.is_ascii_digit() => d.saturating_sub(b'0'),
        _ => return None,
    };
    Some(RequestLine {
        get: method == b"GET",
        path: target_path(target),
        minor,
    })
}

/// The path of an origin-form (`/p?q`) or absolute-form (`http://h/p?q`) target
/// (RFC 9112 §3.2.1, §3.2.2); `None` for the authority and asterisk forms.
fn target_path(target: &[u8]) -> Option<String> {
    let after_scheme = ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme.as_bytes())
            .then(|| target.get(scheme.len()..))
            .flatten()
    });
    let origin = match after_scheme {
        Some(rest) => match rest.iter().position(|&b| b == b'/' || b == b'?') {
            Some(i) if rest.get(i) == Some(&b'/') => rest.get(i..)?,
            _ => b"/".as_slice(),
        },
        None if target.first() == Some(&b'/') => target,
        None => return None,
    };
    let path = origin.split(|&b| b == b'?').next().unwrap_or(origin);
    Some(String::from_utf8_lossy(path).into_owned())
}

/// `field-name ":" OWS field-value OWS` (RFC 9112 §5); `Some(true)` for `Host`. A line
/// starting with a blank (obsolete folding, §5.2) or a blank before the colon (§5.1) is
/// refused.
fn field_line(line: &[u8]) -> Option<bool> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line.get(..colon)?;
    let value = line.get(colon.saturating_add(1)..)?;
    if !is_token(name) {
        return None;
    }
    // field-vchar = VCHAR / obs-text, with SP and HTAB between.
    if !value
        .iter()
        .all(|&b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b) || b >= 0x80)
    {
        return None;
    }
    Some(name.eq_ignore_ascii_case(b"host"))
}

/// `token = 1*tchar` (RFC 9110 §5.6.2).
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
