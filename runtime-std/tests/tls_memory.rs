//! What an idle TLS session costs: the smol daemon's budget is 32 KiB per idle
//! connection (issue "The smol daemon, TLS and AUTH"), so the pump must stay well under.
//! A counting allocator measures the heap the server pump keeps after a handshake and a
//! little traffic.

mod tls_support;

use runtime_std::tls::{ClientTls, TlsPump};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use tls_support::*;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Moves all ciphertext from one pump to the other.
fn transfer(from: &mut TlsPump, to: &mut TlsPump) {
    let bytes = from.take_ciphertext();
    let mut rest: &[u8] = &bytes;
    while !rest.is_empty() {
        let used = to.feed_ciphertext(rest).unwrap();
        assert!(used > 0);
        rest = &rest[used..];
    }
}

#[test]
fn an_idle_server_session_keeps_little_memory() {
    let dir = temp_dir("memory");
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.leaf("mx.example.org");
    let server_config = server_config(&format!(
        "pki mx.example.org cert \"{}\"\npki mx.example.org key \"{}\"\n\
         listen on 127.0.0.1 tls pki mx.example.org\n",
        p(&cert),
        p(&key)
    ));
    let client_config = ClientTls::client_config(true, Some(&p(&ca.ca_file))).unwrap();
    // The cost of a session is the growth of live memory while ten servers are kept side
    // by side (their clients dropped); the shared config was built before.
    let mut servers = Vec::new();
    let before = LIVE.load(Ordering::SeqCst);
    for _ in 0..10 {
        let mut client = TlsPump::client(client_config.clone(), "mx.example.org").unwrap();
        let mut server = TlsPump::server(server_config.clone()).unwrap();
        while client.is_handshaking() || server.is_handshaking() {
            transfer(&mut client, &mut server);
            transfer(&mut server, &mut client);
        }
        client.write_plaintext(&[b'x'; 1024]).unwrap();
        transfer(&mut client, &mut server);
        let mut buf = [0u8; 2048];
        assert_eq!(server.read_plaintext(&mut buf).unwrap(), 1024);
        server.write_plaintext(b"250 ok\r\n").unwrap();
        transfer(&mut server, &mut client);
        drop(client);
        servers.push(server);
    }
    let per_session = (LIVE.load(Ordering::SeqCst) - before) / 10;
    // About 9 KiB with rustls 0.23 (shared session cache entries included).
    eprintln!("idle server TLS session: {per_session} bytes");
    assert!(
        per_session < 24 * 1024,
        "{per_session} bytes per idle session"
    );
}
