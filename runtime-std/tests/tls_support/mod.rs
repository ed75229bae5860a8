//! Shared by the tls_* tests: certificates made with rcgen in a fresh directory, a
//! configuration parsed from text, and a loopback server running one handshake.

#![allow(dead_code)]

use mta_core::config::Config;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use runtime_std::tls::{ServerTls, TlsStream};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A handshake that takes longer than this has hung.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Every directory [`temp_dir`] made in this process, removed when it exits.
static MADE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" fn remove_made() {
    if let Ok(made) = MADE.lock() {
        for dir in made.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A fresh directory for one TLS test's files (see [`scratch_dir`]).
pub fn temp_dir(tag: &str) -> PathBuf {
    scratch_dir("tls-test", tag)
}

/// A fresh directory `PREFIX-PID-TAG-N` under the system's temporary directory, removed
/// when the test binary exits (the tests keep its path in servers and threads, so no
/// guard value could own it).
pub fn scratch_dir(prefix: &str, tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a plain function without arguments, run by exit(3).
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(remove_made);
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if let Ok(mut made) = MADE.lock() {
        made.push(dir.clone());
    }
    dir
}

/// A test certificate authority and the files it wrote.
pub struct TestCa {
    /// Where the files go.
    pub dir: PathBuf,
    /// The CA certificate, PEM, in `dir`.
    pub ca_file: PathBuf,
    /// Signs the leaf certificates.
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// A new CA whose certificate is written to `dir/ca.pem`.
    pub fn new(dir: &Path) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own, so that two test CAs are never mistaken for each other.
        let name = format!("Test CA {}", dir.display());
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        TestCa {
            dir: dir.to_owned(),
            ca_file,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `name` signed by this CA: writes `name.crt` and `name.key`
    /// and returns their paths.
    pub fn leaf(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = self.dir.join(format!("{name}.crt"));
        let key_file = self.dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

/// A self-signed certificate for `name` in `dir` (no CA knows it).
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let cert_file = dir.join(format!("{name}.self.crt"));
    let key_file = dir.join(format!("{name}.self.key"));
    std::fs::write(&cert_file, made.cert.pem()).unwrap();
    std::fs::write(&key_file, made.signing_key.serialize_pem()).unwrap();
    (cert_file, key_file)
}

/// Parses a configuration written for the test (a catch-all rule is appended).
pub fn config(text: &str) -> Config {
    let text =
        format!("{text}\naction \"local\" maildir\nmatch from any for any action \"local\"\n");
    mta_core::config::parse(&text, "test.conf", &[], &mut |path| {
        Err(format!("no include in tests: {path}"))
    })
    .unwrap_or_else(|e| panic!("config: {e:?}\n{text}"))
}

/// The server configuration of the first listener of `text`.
pub fn server_config(text: &str) -> Arc<rustls::ServerConfig> {
    let config = config(text);
    let listener = config.listeners.first().unwrap();
    ServerTls::from_config(&config, listener).unwrap().unwrap()
}

/// A loopback server that accepts one connection, runs the TLS handshake, then echoes
/// one line back prefixed with "echo: ". Its thread returns the handshake outcome (the
/// negotiated info, or the error text).
pub fn echo_server(
    config: Arc<rustls::ServerConfig>,
) -> (u16, JoinHandle<Result<runtime_std::tls::TlsInfo, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        let mut tls = TlsStream::accept(tcp, config, TIMEOUT).map_err(|e| e.to_string())?;
        tls.set_read_timeout(Some(TIMEOUT))
            .map_err(|e| e.to_string())?;
        let info = tls.info().clone();
        let line = read_line(&mut tls).map_err(|e| e.to_string())?;
        tls.write_all(format!("echo: {line}").as_bytes())
            .map_err(|e| e.to_string())?;
        tls.close().map_err(|e| e.to_string())?;
        Ok(info)
    });
    (port, handle)
}

/// Connects to the loopback port (with read timeouts so that a bug fails, not hangs).
pub fn connect(port: u16) -> TcpStream {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp
}

/// Reads up to and including the first LF.
pub fn read_line(stream: &mut impl Read) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// A path as configuration text.
pub fn p(path: &Path) -> String {
    path.display().to_string()
}
