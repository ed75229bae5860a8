//! quickcheck properties of the grammar, over generated values and over raw bytes.

use bytes::{Bytes, BytesMut};
use quickcheck::{quickcheck, TestResult};

use super::*;
use crate::params::{MailParams, RcptParams};

quickcheck! {
    fn command_render_then_parse_is_identity(cmd: Command) -> bool {
        let line = render_command(&cmd);
        assert!(line.starts_with(cmd.verb().as_bytes()));
        command::parse(line, &ParseOptions { smtputf8: true }) == Ok(cmd)
    }

    fn mail_params_render_then_parse_is_identity(params: MailParams) -> bool {
        let mut out = BytesMut::new();
        params.render(&mut out);
        MailParams::parse(&out.freeze()) == Ok(params)
    }

    fn rcpt_params_render_then_parse_is_identity(params: RcptParams) -> bool {
        let mut out = BytesMut::new();
        params.render(&mut out);
        RcptParams::parse(&out.freeze()) == Ok(params)
    }

    fn reply_render_then_parse_is_identity(reply: Reply) -> () {
        check_reply_round_trip(&reply);
    }

    fn reply_stream_split_anywhere_gives_the_same_replies(
        replies: Vec<Reply>,
        chunks: Vec<usize>
    ) -> TestResult {
        let mut wire = BytesMut::new();
        for r in &replies {
            r.render(&mut wire);
        }
        let limits = ReplyLimits { max_lines: 8, max_line_len: 4096 };
        let chunks: Vec<usize> = chunks.iter().map(|c| c % 97).collect();
        let whole = parse_reply_stream(&wire, &[wire.len()], limits);
        let split = parse_reply_stream(&wire, &chunks, limits);
        TestResult::from_bool(whole == (replies, None) && split == whole)
    }

    fn arbitrary_command_bytes_hold_the_invariants(data: Vec<u8>) -> () {
        command(&data);
    }

    fn arbitrary_reply_bytes_hold_the_invariants(data: Vec<u8>) -> () {
        reply(&data);
    }
}

#[test]
fn remapped_inputs_reach_parsed_commands() {
    let mut parsed = 0;
    for seed in 0u32..2000 {
        let data: Vec<u8> = (0..24)
            .map(|i| (seed.wrapping_mul(2654435761) >> (i % 24)) as u8 ^ i)
            .collect();
        let line = remap_command(&data);
        if command::parse(line.clone(), &ParseOptions::default()).is_ok() {
            parsed += 1;
        }
        check_command_line(&line);
    }
    assert!(parsed > 0, "the remapping never produces a valid command");
}

#[test]
fn harnesses_accept_edge_inputs() {
    for input in [
        &b""[..],
        b"\r\n",
        b"250",
        b"250 \r\n250-x\r\n",
        b"\xff\xff\xff\xff",
    ] {
        command(input);
        reply(input);
    }
    check_command_line(&Bytes::from_static(b"MAIL FROM:<a@b> AUTH=+3C+3E"));
    for encoded in [
        &b"AHRpbQB0YW5zdGFhZnRhbnN0YWFm"[..],
        b"dGlt",
        b"a+2Bb",
        b"*",
        b"=",
    ] {
        check_encodings(encoded);
    }
}
