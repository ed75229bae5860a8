//! CRLF to LF conversion for local delivery, whatever the read sizes.

use runtime_std::delivery::UnixLines;
use std::io::{self, Read};

/// A reader that returns at most `step` bytes per call.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn convert(input: &[u8], step: usize, out_size: usize) -> Vec<u8> {
    let mut reader = UnixLines::new(Trickle { data: input, step });
    let mut out = Vec::new();
    let mut buf = vec![0u8; out_size];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn crlf_becomes_lf_and_lone_cr_stays_at_any_split() {
    let input = b"a\r\nb\r\r\n\rc\n\r\r\nend\r";
    let expected = b"a\nb\r\n\rc\n\r\nend\r";
    for step in 1..input.len() + 1 {
        for out_size in [1, 2, 3, 64] {
            assert_eq!(
                convert(input, step, out_size),
                expected,
                "step {step} out {out_size}"
            );
        }
    }
    assert_eq!(convert(b"", 1, 8), b"");
    assert_eq!(convert(b"\r", 1, 1), b"\r");
}

#[test]
fn large_input_is_converted_whole() {
    let input = b"line of text\r\n".repeat(20_000);
    let expected = b"line of text\n".repeat(20_000);
    let mut out = Vec::new();
    UnixLines::new(&input[..]).read_to_end(&mut out).unwrap();
    assert_eq!(out, expected);
}
