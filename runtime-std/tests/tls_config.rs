//! `ServerTls::from_config` and `ClientTls::client_config`: what a listener gets, and the
//! errors an administrator reads when a pki or CA is wrong.

mod tls_support;

use runtime_std::tls::{ClientTls, ServerTls, TlsConfigError};
use tls_support::*;

/// The error `from_config` gives for the first listener of `text`.
fn server_error(text: &str) -> TlsConfigError {
    let config = config(text);
    ServerTls::from_config(&config, &config.listeners[0]).unwrap_err()
}

#[test]
fn a_listener_without_tls_gets_no_server_config() {
    let config = config("listen on 127.0.0.1\n");
    assert!(ServerTls::from_config(&config, &config.listeners[0])
        .unwrap()
        .is_none());
}

#[test]
fn a_missing_key_file_is_named_with_the_reason() {
    let dir = temp_dir("missing-key");
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("mx.example.org");
    std::fs::remove_file(&key).unwrap();
    let err = server_error(&format!(
        "pki mail cert \"{}\"\npki mail key \"{}\"\nlisten on 127.0.0.1 tls pki mail\n",
        p(&cert),
        p(&key)
    ));
    let text = err.to_string();
    assert!(matches!(err, TlsConfigError::Read { .. }), "{err:?}");
    assert!(text.starts_with(&p(&key)), "{text}");
    assert!(text.contains("No such file"), "{text}");
}

#[test]
fn a_key_file_without_a_key_says_so() {
    let dir = temp_dir("no-key");
    let ca = TestCa::new(&dir);
    let (cert, _key) = ca.leaf("mx.example.org");
    // The certificate given twice: a PEM file, but no private key in it.
    let text = server_error(&format!(
        "pki mail cert \"{}\"\npki mail key \"{}\"\nlisten on 127.0.0.1 smtps pki mail\n",
        p(&cert),
        p(&cert)
    ))
    .to_string();
    assert_eq!(
        text,
        format!("{}: no private key found in this PEM file", p(&cert))
    );
}

#[test]
fn a_certificate_file_without_a_certificate_says_so() {
    let dir = temp_dir("no-cert");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not pem at all\n").unwrap();
    let ca = TestCa::new(&dir);
    let (_cert, key) = ca.leaf("mx.example.org");
    let text = server_error(&format!(
        "pki mail cert \"{}\"\npki mail key \"{}\"\nlisten on 127.0.0.1 tls pki mail\n",
        p(&empty),
        p(&key)
    ))
    .to_string();
    assert!(text.starts_with(&p(&empty)), "{text}");
    assert!(text.contains("no certificate found"), "{text}");
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let dir = temp_dir("mismatch");
    let ca = TestCa::new(&dir);
    let (cert, _) = ca.leaf("a.example.org");
    let (_, other_key) = ca.leaf("b.example.org");
    let err = server_error(&format!(
        "pki a cert \"{}\"\npki a key \"{}\"\nlisten on 127.0.0.1 tls pki a\n",
        p(&cert),
        p(&other_key)
    ));
    assert!(matches!(err, TlsConfigError::Key { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("pki a: the key in "), "{text}");
    assert!(text.contains("does not match the certificate"), "{text}");
}

#[test]
fn a_broken_pki_not_used_by_the_listener_still_fails_the_start() {
    // Every pki can be chosen by SNI, so each must load.
    let dir = temp_dir("other-broken");
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("a.example.org");
    let gone = dir.join("gone.key");
    let err = server_error(&format!(
        "pki a cert \"{0}\"\npki a key \"{1}\"\npki b cert \"{0}\"\npki b key \"{2}\"\n\
         listen on 127.0.0.1 tls pki a\n",
        p(&cert),
        p(&key),
        p(&gone)
    ));
    assert!(err.to_string().starts_with(&p(&gone)), "{err}");
}

#[test]
fn tls_without_any_pki_is_a_configuration_error() {
    let err = server_error("listen on 127.0.0.1 tls\n");
    assert!(err.to_string().contains("no pki is configured"), "{err}");
}

#[test]
fn a_missing_ca_file_is_named() {
    let dir = temp_dir("missing-ca");
    let gone = dir.join("gone-ca.pem");
    let err = ClientTls::client_config(true, Some(&p(&gone))).unwrap_err();
    assert!(err.to_string().starts_with(&p(&gone)), "{err}");
    // `no-verify` does not read the CA at all.
    assert!(ClientTls::client_config(false, Some(&p(&gone))).is_ok());
}
