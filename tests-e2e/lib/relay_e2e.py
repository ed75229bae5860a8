#!/usr/bin/env python3
"""Helpers of the relay end-to-end test: an SMTP sink (aiosmtpd, run with the system
python3 that has it) that writes each message it accepts to a directory and refuses
recipients whose local part starts with "refuse"; a sender; checks of what arrived.

Subcommands:
  sink HOST PORT DIR [CERT KEY [smtps|auth]]
                              serve until killed; DIR/<n>.eml is the message as received,
                              DIR/<n>.env its envelope ("from" line, one "to" line each,
                              "tls yes|no", "auth LOGIN|-"); with CERT and KEY it offers
                              STARTTLS, with smtps it speaks TLS from the first byte, with
                              auth it requires AUTH as relayuser / relaysecret
  send PORT FROM TO[,TO..] N [big]
                              send N messages through smtpd-std on 127.0.0.1:PORT; the
                              body of message i is body(i) (big_body(i) with "big"), so
                              checks can rebuild it
  wait-count DIR N SECONDS    wait until DIR holds N messages
  check-exact DIR FROM TO     every message in DIR is some body(i) or big_body(i) after
                              the Received: header, from FROM and (unless TO is "") to TO
  check-maildir DIR FROM TO RECEIVED
                              every file in the maildir DIR/new is some body(i) or
                              big_body(i) after exactly RECEIVED Received: headers and the
                              Return-Path: <FROM> and Delivered-To: TO that a local delivery
                              adds (line ends compared as LF, as a maildir stores them)
  wait-dns PORT               wait until a DNS server answers on 127.0.0.1:PORT
"""

import glob
import os
import smtplib
import socket
import sys
import time


def body(i):
    """Message i: CRLF lines, a dot-started line, an 8-bit-free body. It has a Date: and
    a Message-ID: so that no hop (OpenSMTPD does) adds them."""
    return (
        "From: sender@origin.test\r\n"
        "Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n"
        f"Subject: relay test {i}\r\n"
        f"Message-ID: <relay-{i}@origin.test>\r\n"
        "\r\n"
        f"line one of message {i}\r\n"
        ".a line starting with a dot\r\n"
        "last line\r\n"
    ).encode()


def big_body(i):
    """A message of about 220 KiB: long lines, some starting with a dot, a bare "."-line
    lookalike (".." after stuffing), so that it crosses many writes and reads."""
    lines = [
        "From: sender@origin.test",
        "Date: Sat, 28 Nov 2026 12:00:00 +0000",
        f"Subject: big relay test {i}",
        f"Message-ID: <relay-big-{i}@origin.test>",
        "",
    ]
    for n in range(330):
        fill = ("%d-%d " % (i, n)) * 120
        lines.append(("." if n % 7 == 0 else "") + fill[:900])
        if n % 50 == 0:
            lines.append(".")
            lines.append("..")
    return ("\r\n".join(lines) + "\r\n").encode()


def expected_bodies(count):
    """Every message `send` may have sent, for counts up to COUNT."""
    return {body(i) for i in range(count)} | {big_body(i) for i in range(count)}


def sink(host, port, directory, cert=None, key=None, mode="starttls"):
    import ssl
    from aiosmtpd.controller import Controller

    os.makedirs(directory, exist_ok=True)
    counter = [0]

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.lower().startswith("refuse"):
                return "550 5.1.1 <%s>: no such user" % address
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 ok"

        async def handle_DATA(self, server, session, envelope):
            counter[0] += 1
            name = os.path.join(directory, "%06d" % counter[0])
            with open(name + ".tmp", "wb") as f:
                f.write(envelope.original_content)
            with open(name + ".env", "w") as f:
                f.write("from %s\n" % envelope.mail_from)
                for rcpt in envelope.rcpt_tos:
                    f.write("to %s\n" % rcpt)
                tls = session.ssl is not None or (
                    server.transport.get_extra_info("ssl_object") is not None)
                f.write("tls %s\n" % ("yes" if tls else "no"))
                login = getattr(getattr(session, "auth_data", None), "login", None)
                f.write("auth %s\n" % (login.decode() if login else "-"))
            os.rename(name + ".tmp", name + ".eml")
            return "250 2.0.0 queued as %d" % counter[0]

    kwargs = {}
    if cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs = {"ssl_context": context} if mode == "smtps" else {"tls_context": context}
        if mode == "auth":
            from aiosmtpd.smtp import AuthResult

            def authenticator(server, session, envelope, mechanism, data):
                ok = data.login == b"relayuser" and data.password == b"relaysecret"
                return AuthResult(success=ok, handled=False, auth_data=data)

            kwargs.update(auth_required=True, auth_require_tls=True,
                          authenticator=authenticator)
    controller = Controller(Handler(), hostname=host, port=int(port), ready_timeout=10,
                            **kwargs)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def send(port, sender, recipients, count, kind="small"):
    make = big_body if kind == "big" else body
    with smtplib.SMTP("127.0.0.1", int(port), timeout=30) as smtp:
        for i in range(int(count)):
            refused = smtp.sendmail(sender, recipients.split(","), make(i))
            if refused:
                print("refused at submission: %r" % refused, file=sys.stderr)
                return 1
    return 0


def messages(directory):
    return sorted(glob.glob(os.path.join(directory, "*.eml")))


def wait_count(directory, count, seconds):
    deadline = time.time() + float(seconds)
    while time.time() < deadline:
        if len(messages(directory)) >= int(count):
            return 0
        time.sleep(0.1)
    print("%s: %d messages, wanted %s" % (directory, len(messages(directory)), count),
          file=sys.stderr)
    return 1


def check_exact(directory, sender, recipient):
    files = messages(directory)
    if not files:
        print("no message in %s" % directory, file=sys.stderr)
        return 1
    expected = expected_bodies(len(files) + 100)
    for name in files:
        data = open(name, "rb").read()
        if not data.startswith(b"Received: "):
            print("%s: no Received: header first" % name, file=sys.stderr)
            return 1
        # Drop the Received: header (its folded continuation lines too).
        lines = data.split(b"\r\n")
        rest = 1
        while rest < len(lines) and lines[rest][:1] in (b" ", b"\t"):
            rest += 1
        remainder = b"\r\n".join(lines[rest:])
        if remainder not in expected:
            print("%s: body differs:\n%r" % (name, remainder), file=sys.stderr)
            return 1
        env = open(name[:-4] + ".env").read().split("\n")
        if env[0] != "from " + sender or (recipient and ("to " + recipient) not in env):
            print("%s: envelope %r" % (name, env), file=sys.stderr)
            return 1
    return 0


def check_maildir(directory, sender, recipient, received_count):
    files = sorted(glob.glob(os.path.join(directory, "new", "*")))
    if not files:
        print("no message in %s/new" % directory, file=sys.stderr)
        return 1
    expected = {b.replace(b"\r\n", b"\n") for b in expected_bodies(len(files) + 100)}
    for name in files:
        lines = open(name, "rb").read().replace(b"\r\n", b"\n").split(b"\n")
        headers, rest = [], 0
        while rest < len(lines) and lines[rest].split(b":")[0].lower() in (
                b"received", b"return-path", b"delivered-to"):
            header = lines[rest]
            rest += 1
            while rest < len(lines) and lines[rest][:1] in (b" ", b"\t"):
                header += b"\n" + lines[rest]
                rest += 1
            headers.append(header)
        received = [h for h in headers if h.lower().startswith(b"received:")]
        wanted = {("return-path: <%s>" % sender).encode(),
                  ("delivered-to: %s" % recipient).encode()}
        added = {h.lower() for h in headers if not h.lower().startswith(b"received:")}
        if len(received) != int(received_count) or not added <= wanted:
            print("%s: added headers %r, wanted %s Received: and %r" % (
                name, headers, received_count, wanted), file=sys.stderr)
            return 1
        if b"\n".join(lines[rest:]) not in expected:
            print("%s: body differs:\n%r" % (name, b"\n".join(lines[rest:])[:2000]),
                  file=sys.stderr)
            return 1
    return 0


def wait_dns(port, seconds=10.0):
    """Wait until a DNS server answers on 127.0.0.1:PORT (a query for the root SOA)."""
    query = bytes.fromhex("1234010000010000000000000000060001")
    deadline = time.time() + float(seconds)
    while time.time() < deadline:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.3)
        try:
            s.sendto(query, ("127.0.0.1", int(port)))
            s.recv(512)
            return 0
        except OSError:
            time.sleep(0.1)
        finally:
            s.close()
    return 1


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "sink":
        sink(*args)
        return 0
    if command == "send":
        return send(*args)
    if command == "wait-count":
        return wait_count(*args)
    if command == "check-exact":
        return check_exact(*args)
    if command == "check-maildir":
        return check_maildir(*args)
    if command == "wait-dns":
        return wait_dns(*args)
    print("unknown command %s" % command, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
