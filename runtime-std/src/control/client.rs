//! The client side of the control socket, for `smtpctl` and `sendmail`.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use mta_core::control::{encode, FrameDecoder, Request, Response};

/// A connection to the daemon's control socket; one request at a time.
#[derive(Debug)]
pub struct ControlClient {
    stream: UnixStream,
    decoder: FrameDecoder<Response>,
}

impl ControlClient {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// When the socket does not exist or refuses (no daemon running).
    pub fn connect(path: &Path) -> io::Result<ControlClient> {
        Ok(ControlClient {
            stream: UnixStream::connect(path)?,
            decoder: FrameDecoder::new(),
        })
    }

    /// Sends `request` and waits for the daemon's response.
    ///
    /// # Errors
    /// When the request is too large to send, the connection fails, or the daemon's
    /// answer is not a frame of this protocol version.
    pub fn request(&mut self, request: &Request) -> io::Result<Response> {
        let frame = encode(request).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.stream.write_all(&frame)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(result) = self.decoder.next() {
                return result.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the daemon closed the control connection",
                ));
            }
            let mut data = buf.get(..n).unwrap_or(&[]);
            while !data.is_empty() {
                let taken = self.decoder.push(data);
                data = data.get(taken..).unwrap_or(&[]);
                if taken == 0 {
                    // A whole frame waits: take it; the daemon sends nothing unasked, so
                    // bytes after it are a protocol error.
                    return match self.decoder.next() {
                        Some(Ok(_)) | None => Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "unexpected data from the daemon",
                        )),
                        Some(Err(e)) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                    };
                }
            }
        }
    }
}
