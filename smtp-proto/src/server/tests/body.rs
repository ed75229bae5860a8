//! DATA and BDAT bodies: unstuffing, smuggling, limits, chunks.

use super::*;

#[test]
fn bare_lf_never_ends_data_or_smuggles_a_command() {
    let mut h = in_data(config());
    let all = h.converse("hi\n.\nMAIL FROM:<evil@x.y>\r\nRCPT TO:<v@x.y>\r\nDATA\r\nforged\r\n");
    assert_eq!(text(&all), "");
    assert!(has(
        &all,
        &Action::BodyAborted {
            fault: Some(BodyFault::BareLf)
        }
    ));
    assert_eq!(asks(&all), vec![]);
    let all = h.converse(".\r\nNOOP\r\n");
    assert_eq!(
        text(&all),
        "554 5.6.11 Bare CR or LF in message; lines must end with CRLF\r\n250 2.0.0 Ok\r\n"
    );
    let mut h = in_data(config());
    let all = h.converse("hi\r.\r\nNOOP\r\n.\r\n");
    assert!(text(&all).starts_with("554 5.6.11 "));
}

#[test]
fn normalize_bare_lf_accepts_with_crlf() {
    let mut h = in_data(ServerConfig {
        normalize_bare_lf: true,
        ..config()
    });
    let all = h.converse("a\nb\r\n.\r\n");
    assert_eq!(body(&all), b"a\r\nb\r\n");
    assert_eq!(text(&all), "250 2.0.0 queued 6\r\n");
}

#[test]
fn over_long_body_lines_refuse_the_message() {
    let mut h = in_data(config());
    let all = h.converse(&format!("{}\r\n.\r\n", "z".repeat(999)));
    assert!(text(&all).starts_with("554 5.6.0 "), "{}", text(&all));
    assert!(has(
        &all,
        &Action::BodyAborted {
            fault: Some(BodyFault::LineTooLong)
        }
    ));
    let mut h = in_data(config());
    let all = h.converse(&format!("{}\r\n.\r\n", "z".repeat(998)));
    assert_eq!(text(&all), "250 2.0.0 queued 1000\r\n");
}

#[test]
fn refused_data_start_reads_commands_again() {
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.feed("DATA\r\nNOOP\r\n");
    let (id, _) = asks(&all)[0].clone();
    assert_eq!(
        text(&h.answer(id, reply(451, "try later"))),
        "451 4.0.0 try later\r\n250 2.0.0 Ok\r\n"
    );
}

#[test]
fn bdat_chunks() {
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.feed("BDAT 5\r\nab");
    let (id, question) = asks(&all)[0].clone();
    assert_eq!(question, Question::DataStart { chunking: true });
    let all = h.answer(id, reply(250, "go"));
    assert_eq!(body(&all), b"ab");
    let all = h.converse("c\r\nBDAT 3 LAST\r\n.\r\n");
    assert_eq!(body(&all), b"c\r\n.\r\n");
    assert_eq!(asks(&all)[0].1, Question::EndOfMessage { size: 8 });
    assert_eq!(
        text(&all),
        "250 2.0.0 5 octets received\r\n250 2.0.0 queued 8\r\n"
    );
    // BDAT 0 LAST, and DATA after BDAT.
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let out = h.say("BDAT 2\r\nxyDATA\r\nBDAT 0 LAST\r\n");
    assert_eq!(
        out,
        "250 2.0.0 2 octets received\r\n503 5.5.1 DATA and BDAT cannot be mixed in one transaction\r\n\
         250 2.0.0 queued 2\r\n"
    );
}

#[test]
fn refused_bdat_chunks_are_read_and_dropped() {
    let mut h = ehloed(config());
    let all = h.converse("BDAT 6\r\nRSET\r\nNOOP\r\n");
    assert_eq!(
        text(&all),
        "503 5.5.1 Need MAIL command\r\n250 2.0.0 Ok\r\n"
    );
    assert_eq!(body(&all), b"");
    let limits = crate::limits::Limits {
        message_size: 4,
        ..Default::default()
    };
    let mut h = ehloed(ServerConfig { limits, ..config() });
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.converse("BDAT 3\r\nabcBDAT 3 LAST\r\ndef");
    assert_eq!(
        text(&all),
        "250 2.0.0 3 octets received\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    assert!(has(
        &all,
        &Action::BodyAborted {
            fault: Some(BodyFault::TooBig)
        }
    ));
    let no_chunking = Extensions {
        chunking: false,
        ..Extensions::default()
    };
    let mut h = ehloed(ServerConfig {
        extensions: no_chunking,
        ..config()
    });
    assert_eq!(
        h.say("BDAT 4\r\nQUITNOOP\r\n"),
        "502 5.5.1 Command not implemented\r\n250 2.0.0 Ok\r\n"
    );
}

#[test]
fn engine_refusal_of_bdat_fails_the_transaction() {
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.feed("BDAT 2\r\nxyBDAT 1 LAST\r\nz");
    let (id, _) = asks(&all)[0].clone();
    let out = text(&h.converse_answer(id, reply(452, "no room")));
    assert_eq!(out, "452 4.0.0 no room\r\n503 5.5.1 Need MAIL command\r\n");
}

impl Harness {
    fn converse_answer(&mut self, id: ReqId, answer: Answer) -> Vec<Action> {
        let mut all = self.answer(id, answer);
        let mut next = 0;
        while let Some((id, question)) = asks(&all).get(next).cloned() {
            next += 1;
            let more = self.answer(id, yes(&question));
            all.extend(more);
        }
        all
    }
}

#[test]
fn binarymime_requires_bdat() {
    let ext = Extensions {
        binarymime: true,
        ..Extensions::default()
    };
    let mut h = ehloed(ServerConfig {
        extensions: ext,
        ..config()
    });
    h.say("MAIL FROM:<a@b.c> BODY=BINARYMIME\r\nRCPT TO:<d@e.f>\r\n");
    assert_eq!(
        h.say("DATA\r\n"),
        "503 5.5.1 BODY=BINARYMIME requires BDAT\r\n"
    );
    let mut h = ehloed(config());
    assert_eq!(
        h.say("MAIL FROM:<a@b.c> BODY=BINARYMIME\r\n"),
        "555 5.5.4 Parameter not supported here\r\n"
    );
}

#[test]
fn rset_between_bdat_chunks_aborts_the_body() {
    let mut h = ehloed(config());
    h.say("MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    let all = h.converse("BDAT 2\r\nxyRSET\r\n");
    assert_eq!(body(&all), b"xy");
    assert!(has(&all, &Action::BodyAborted { fault: None }));
    assert_eq!(
        text(&all),
        "250 2.0.0 2 octets received\r\n250 2.0.0 Ok\r\n"
    );
}
