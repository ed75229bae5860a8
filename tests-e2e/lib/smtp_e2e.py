#!/usr/bin/env python3
"""Client side of the smtpd-std end-to-end tests: sends mail with smtplib and raw
sockets, then checks what arrived in the maildirs. Run with a subcommand; see main()."""

import email
import email.policy
import glob
import hashlib
import os
import random
import smtplib
import socket
import sys
import threading
import time
import uuid


def wait_port(port, seconds=20.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)
                return True
        except OSError:
            time.sleep(0.1)
    return False


def maildir_files(root, rcpt):
    return sorted(glob.glob(os.path.join(root, rcpt.lower(), "new", "*")))


def wait_files(root, rcpt, count, seconds=30.0):
    deadline = time.time() + seconds
    files = []
    while time.time() < deadline:
        files = maildir_files(root, rcpt)
        if len(files) >= count:
            return files
        time.sleep(0.1)
    raise AssertionError(f"{rcpt}: {len(files)} messages arrived, expected {count}")


def strip_received(data):
    """The delivered file without the Received: header our server put first."""
    assert data.startswith(b"Received: "), data[:200]
    lines = data.split(b"\n")
    i = 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    return b"\n".join(lines[i:])


def unix(msg):
    return msg.replace(b"\r\n", b"\n")


def check_exact(root, rcpt, sent):
    files = wait_files(root, rcpt, 1)
    with open(files[-1], "rb") as f:
        got = strip_received(f.read())
    want = unix(sent)
    if got != want:
        raise AssertionError(
            f"{rcpt}: delivered message differs (got {len(got)} bytes, want {len(want)}); "
            f"first difference at {next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))}"
        )


def message(subject, body, extra=b""):
    head = (
        b"From: sender@example.org\r\nTo: somebody@example.org\r\nSubject: "
        + subject.encode()
        + b"\r\nMessage-ID: <"
        + uuid.uuid4().hex.encode()
        + b"@e2e>\r\n"
        + extra
        + b"\r\n"
    )
    return head + body


def test_one(port, root):
    msg = message("one", b"Hello,\r\n\r\nthis is one message.\r\n")
    with smtplib.SMTP("127.0.0.1", port) as s:
        refused = s.sendmail("sender@example.org", ["one@example.org"], msg)
        assert not refused, refused
    check_exact(root, "one@example.org", msg)
    print("ok: one message to one recipient, byte-exact")


def test_many_recipients(port, root, n=60):
    rcpts = [f"many{i}@example.org" for i in range(n)]
    msg = message("many", b"to many recipients\r\n")
    with smtplib.SMTP("127.0.0.1", port) as s:
        refused = s.sendmail("sender@example.org", rcpts, msg)
        assert not refused, refused
    for r in rcpts:
        check_exact(root, r, msg)
    print(f"ok: one message to {n} recipients")


def test_dots_and_8bit(port, root):
    body = (
        b".leading dot\r\n..two dots\r\n.\r\n. space\r\nend with dot.\r\n"
        + bytes(range(0x80, 0x100))
        + b"\r\nlatin-1 caf\xe9, utf-8 caf\xc3\xa9\r\n"
    )
    msg = message("dots and 8bit", body, b"Content-Type: text/plain; charset=utf-8\r\n")
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.ehlo()
        refused = s.sendmail(
            "sender@example.org", ["dots@example.org"], msg, mail_options=["BODY=8BITMIME"]
        )
        assert not refused, refused
    check_exact(root, "dots@example.org", msg)
    print("ok: dot-stuffed lines and an 8-bit body, byte-exact")


def test_pipelining(port, root):
    msg = message("pipelined", b"sent with PIPELINING\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        s.sendall(b"EHLO client.example.org\r\n")
        ehlo = []
        while True:
            line = f.readline()
            ehlo.append(line)
            if line[3:4] == b" ":
                break
        assert any(b"PIPELINING" in l for l in ehlo), ehlo
        s.sendall(
            b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<pipe1@example.org>\r\n"
            b"RCPT TO:<pipe2@example.org>\r\nDATA\r\n"
        )
        codes = [f.readline()[:3] for _ in range(4)]
        assert codes == [b"250", b"250", b"250", b"354"], codes
        stuffed = msg.replace(b"\r\n.", b"\r\n..")
        s.sendall(stuffed + b".\r\nQUIT\r\n")
        assert f.readline()[:3] == b"250"
        assert f.readline()[:3] == b"221"
    check_exact(root, "pipe1@example.org", msg)
    check_exact(root, "pipe2@example.org", msg)
    print("ok: pipelined commands")


def test_large(port, root, megabytes=30):
    line = b"".join(bytes([33 + (i % 90)]) for i in range(76)) + b"\r\n"
    body = line * (megabytes * 1024 * 1024 // len(line))
    msg = message("large", body)
    with smtplib.SMTP("127.0.0.1", port, timeout=300) as s:
        refused = s.sendmail("sender@example.org", ["large@example.org"], msg)
        assert not refused, refused
    files = wait_files(root, "large@example.org", 1, seconds=120)
    with open(files[-1], "rb") as f:
        got = strip_received(f.read())
    assert hashlib.sha256(got).digest() == hashlib.sha256(unix(msg)).digest(), len(got)
    print(f"ok: a {len(msg) // (1024 * 1024)} MB message, byte-exact")


def test_concurrent(port, root, sessions=20, per_session=5):
    errors = []

    def client(n):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                for k in range(per_session):
                    msg = message(f"concurrent {n}.{k}", f"session {n} message {k}\r\n".encode())
                    refused = s.sendmail("sender@example.org", [f"conc{n}@example.org"], msg)
                    assert not refused, refused
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"session {n}: {e!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for n in range(sessions):
        wait_files(root, f"conc{n}@example.org", per_session)
    print(f"ok: {sessions} concurrent sessions, {per_session} messages each")


def test_loop(port, root):
    hops = b"".join(b"Received: from hop%d.example.org by mx\r\n" % i for i in range(101))
    msg = hops + message("loop", b"looping\r\n")
    with smtplib.SMTP("127.0.0.1", port) as s:
        try:
            s.sendmail("sender@example.org", ["loop@example.org"], msg)
        except smtplib.SMTPDataError as e:
            assert 500 <= e.smtp_code < 600, e
        else:
            raise AssertionError("a message with 101 Received: headers was accepted")
    time.sleep(0.5)
    assert not maildir_files(root, "loop@example.org"), "a looping message was delivered"
    print("ok: a message with 101 Received: headers is refused (mail loop)")


def test_basic(port, root):
    test_one(port, root)
    test_many_recipients(port, root)
    test_dots_and_8bit(port, root)
    test_pipelining(port, root)
    test_concurrent(port, root)
    test_loop(port, root)
    test_large(port, root)


def send_one(port, sender, rcpt, subject, body=b"test\r\n"):
    with smtplib.SMTP("127.0.0.1", port) as s:
        refused = s.sendmail(sender, [rcpt], message(subject, body))
        assert not refused, refused


def check_bounce(root, sender, failed_rcpt, seconds=60):
    files = wait_files(root, sender, 1, seconds=seconds)
    with open(files[-1], "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", msg.get_param("report-type")
    assert "MAILER-DAEMON" in msg.get("From", ""), msg.get("From")
    parts = msg.get_payload()
    types = [p.get_content_type() for p in parts]
    assert types[0] == "text/plain", types
    assert types[1] == "message/delivery-status", types
    assert types[2] in ("message/rfc822", "text/rfc822-headers"), types
    status = parts[1].as_string()
    assert "Reporting-MTA:" in status, status
    assert "Final-Recipient: rfc822;" in status.replace("; ", ";"), status
    text = parts[0].get_payload(decode=True).decode("utf-8", "replace")
    assert f"<{failed_rcpt}>" in text, text
    returned = parts[2].as_string()
    assert "Subject: bounce me" in returned, returned
    assert "Action: failed" in status, status
    assert "Status: 5." in status, status
    print(f"ok: bounce to {sender} is an RFC 3464 report naming {failed_rcpt}, original attached")


def load(port, ackfile, stopfile, threads=6):
    """Send until stopfile exists; append the id of every message answered 250."""
    lock = threading.Lock()
    out = open(ackfile, "a")
    sent = [0]

    def worker(n):
        while not os.path.exists(stopfile):
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                    while not os.path.exists(stopfile):
                        mid = uuid.uuid4().hex
                        body = b"load line\r\n" * random.randint(1, 200) + f"END {mid}\r\n".encode()
                        msg = message(f"load {mid}", body, f"X-E2E-Id: {mid}\r\n".encode())
                        s.sendmail("sender@example.org", ["load@example.org"], msg)
                        with lock:
                            out.write(mid + "\n")
                            out.flush()
                            sent[0] += 1
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.close()
    print(f"load: {sent[0]} messages answered 250")


def check_crash(root, ackfile, seconds=90):
    acked = set(l.strip() for l in open(ackfile) if l.strip())
    deadline = time.time() + seconds
    while True:
        delivered = {}
        partial = []
        for path in maildir_files(root, "load@example.org"):
            with open(path, "rb") as f:
                data = f.read()
            mid = None
            for line in data.split(b"\n"):
                if line.startswith(b"X-E2E-Id: "):
                    mid = line[10:].strip().decode()
                    break
            if mid is None or not data.endswith(f"END {mid}\n".encode()):
                partial.append(path)
            else:
                delivered[mid] = delivered.get(mid, 0) + 1
        missing = acked - set(delivered)
        if not missing or time.time() > deadline:
            break
        time.sleep(0.5)
    assert not partial, f"partial messages in new/: {partial[:5]}"
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged messages never delivered"
    dups = sum(c - 1 for c in delivered.values())
    print(
        f"ok: all {len(acked)} acknowledged messages delivered, none partial "
        f"({len(delivered)} distinct delivered, {dups} delivered twice after a crash)"
    )


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "wait-port":
        sys.exit(0 if wait_port(int(args[0])) else 1)
    elif cmd == "basic":
        test_basic(int(args[0]), args[1])
    elif cmd == "send":
        send_one(int(args[0]), args[1], args[2], args[3])
    elif cmd == "wait-files":
        wait_files(args[0], args[1], int(args[2]), float(args[3]))
    elif cmd == "check-bounce":
        check_bounce(args[0], args[1], args[2])
    elif cmd == "load":
        load(int(args[0]), args[1], args[2])
    elif cmd == "check-crash":
        check_crash(args[0], args[1])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
