//! Interoperability: Python's `ssl` module (OpenSSL) as the client of our server side,
//! verifying our certificate against the test CA, as `smtplib.starttls()` would.

mod tls_support;

use std::process::Command;
use tls_support::*;

/// Runs Python's client against a fresh server; `tls12` caps Python at TLS 1.2. Returns
/// Python's report line and the server's view.
fn python_client(tls12: bool) -> (String, runtime_std::tls::TlsInfo) {
    let dir = temp_dir("python");
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("mx.example.org");
    let (port, handle) = echo_server(server_config(&format!(
        "pki mx.example.org cert \"{}\"\npki mx.example.org key \"{}\"\n\
         listen on 127.0.0.1 smtps pki mx.example.org\n",
        p(&cert),
        p(&key)
    )));
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
if sys.argv[3] == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="mx.example.org") as tls:
        tls.sendall(b"EHLO python.example\r\n")
        reply = b""
        while not reply.endswith(b"\n"):
            data = tls.recv(100)
            if not data:
                break
            reply += data
        print(tls.version(), tls.cipher()[0], tls.cipher()[2], reply.decode().strip())
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&ca.ca_file)
        .arg(port.to_string())
        .arg(if tls12 { "1.2" } else { "1.3" })
        .output()
        .expect("python3 is needed for this test");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let info = handle.join().unwrap().unwrap();
    (stdout, info)
}

#[test]
fn python_ssl_verifies_our_certificate_and_exchanges_a_line() {
    let (stdout, info) = python_client(false);
    assert!(stdout.starts_with("TLSv1.3 TLS_"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("echo: EHLO python.example"),
        "{stdout}"
    );
    assert_eq!(info.sni.as_deref(), Some("mx.example.org"));
    assert_eq!(info.protocol, "TLSv1.3");
    let expected = format!("TLSv1.3 {} {} ", info.openssl_cipher(), info.cipher_bits());
    assert!(stdout.starts_with(&expected), "{stdout} vs {info:?}");
}

#[test]
fn python_ssl_limited_to_tls12_still_gets_through() {
    let (stdout, info) = python_client(true);
    assert!(stdout.starts_with("TLSv1.2 ECDHE-"), "{stdout}");
    assert!(
        stdout.trim_end().ends_with("echo: EHLO python.example"),
        "{stdout}"
    );
    assert_eq!(info.protocol, "TLSv1.2");
    let expected = format!("TLSv1.2 {} {} ", info.openssl_cipher(), info.cipher_bits());
    assert!(stdout.starts_with(&expected), "{stdout} vs {info:?}");
    assert!(info.cipher.starts_with("TLS_ECDHE_"), "{info:?}");
}
