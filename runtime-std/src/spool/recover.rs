//! What [`Spool::open`] does before the daemon serves: clean what a crash left, convert
//! messages queued in the previous layout (a directory per message), and collect the
//! queue to reload.

use super::{
    check_id, create_private_file, list_dir, not_found_is_ok, records, sync_dir, QueuedMessage,
    Recovered, Spool,
};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// The layout this code writes, recorded in `version` at the spool's root.
const LAYOUT_VERSION: &str = "2\n";

/// The parts of one message found in `queue/`.
#[derive(Default)]
struct Found {
    body: bool,
    envelopes: bool,
}

pub(super) fn recover(spool: &Spool) -> io::Result<Recovered> {
    let mut recovered = Recovered::default();
    let root = spool.root().to_path_buf();
    // The previous layout's areas: uncommitted messages and interrupted removals.
    for (name, sub) in [("incoming", true), ("purge", false)] {
        let dir = root.join(name);
        if !dir.is_dir() {
            continue;
        }
        for (id, path) in list_dir(&dir)? {
            fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path))?;
            if sub {
                recovered.discarded_incoming.push(id);
            }
        }
        fs::remove_dir(&dir)?;
    }
    let queue = spool.queue_root();
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    for (name, path) in list_dir(&queue)? {
        if path.is_dir() {
            convert_previous_layout(spool, &name, &path, &mut recovered)?;
            found.entry(name.clone()).or_default();
            if spool.envelopes_path(&name).exists() {
                let entry = found.entry(name).or_default();
                entry.body = true;
                entry.envelopes = true;
            }
            continue;
        }
        if super::pool::FilePool::is_spare(&name) {
            spool.pool().adopt(&name, path)?;
            continue;
        }
        let (kind, msgid) = match (name.get(..2), name.get(2..)) {
            (Some(kind), Some(msgid)) if check_id(msgid).is_ok() => (kind, msgid.to_owned()),
            _ => continue,
        };
        match kind {
            "m." => found.entry(msgid).or_default().body = true,
            "e." => found.entry(msgid).or_default().envelopes = true,
            "t." => {
                spool.pool().recycle(&path)?;
            }
            _ => {}
        }
    }
    for (msgid, parts) in found {
        match parts {
            Found {
                body: true,
                envelopes: true,
            } => match fs::read(spool.envelopes_path(&msgid)).and_then(|b| records::decode(&b)) {
                Ok(envelopes) if envelopes.is_empty() => spool.purge(&msgid)?,
                Ok(envelopes) => recovered.messages.push(QueuedMessage { msgid, envelopes }),
                Err(_) => {
                    set_aside(spool, &msgid)?;
                    recovered.corrupt.push(msgid);
                }
            },
            Found {
                body: true,
                envelopes: false,
            } => {
                not_found_is_ok(fs::remove_file(spool.body_path(&msgid)))?;
                recovered.discarded_incoming.push(msgid);
            }
            Found {
                body: false,
                envelopes: true,
            } => {
                set_aside(spool, &msgid)?;
                recovered.corrupt.push(msgid);
            }
            Found { .. } => {}
        }
    }
    sync_dir(&queue)?;
    let version = root.join("version");
    if fs::read_to_string(&version).ok().as_deref() != Some(LAYOUT_VERSION) {
        let tmp = root.join(".version.tmp");
        not_found_is_ok(fs::remove_file(&tmp))?;
        let mut file = create_private_file(&tmp)?;
        file.write_all(LAYOUT_VERSION.as_bytes())?;
        file.sync_data()?;
        fs::rename(&tmp, &version)?;
        sync_dir(&root)?;
    }
    Ok(recovered)
}

/// A free name for `base` in `corrupt/`.
fn corrupt_target(spool: &Spool, base: &str) -> std::path::PathBuf {
    let corrupt = spool.root().join("corrupt");
    let mut target = corrupt.join(base);
    let mut attempt = 0u32;
    while target.exists() {
        attempt = attempt.saturating_add(1);
        target = corrupt.join(format!("{base}.{attempt}"));
    }
    target
}

/// Move what is left of message `msgid` (its body, its envelope file) to `corrupt/`.
fn set_aside(spool: &Spool, msgid: &str) -> io::Result<()> {
    for (path, suffix) in [
        (spool.envelopes_path(msgid), "envelopes"),
        (spool.body_path(msgid), "message"),
    ] {
        if path.exists() {
            fs::rename(&path, corrupt_target(spool, &format!("{msgid}.{suffix}")))?;
        }
    }
    sync_dir(&spool.root().join("corrupt"))
}

/// Convert `queue/<msgid>/` of the previous layout: link its body as `m.<msgid>`, write
/// its envelope records as `e.<msgid>` (fsynced, then renamed: the commit), then remove
/// the old directory. Interrupted at any point, it is done again from the old directory
/// at the next open, which stays whole until the new files are durable.
fn convert_previous_layout(
    spool: &Spool,
    msgid: &str,
    dir: &Path,
    recovered: &mut Recovered,
) -> io::Result<()> {
    if check_id(msgid).is_err() || !dir.join("message").is_file() {
        fs::rename(dir, corrupt_target(spool, msgid))?;
        sync_dir(&spool.root().join("corrupt"))?;
        recovered.corrupt.push(msgid.to_owned());
        return Ok(());
    }
    let mut envelopes = Vec::new();
    match list_dir(&dir.join("envelopes")) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
        Ok(entries) => {
            for (evpid, path) in entries {
                if check_id(&evpid).is_ok() {
                    envelopes.push((evpid, fs::read(&path)?));
                }
            }
        }
    }
    if !envelopes.is_empty() {
        let body = spool.body_path(msgid);
        not_found_is_ok(fs::remove_file(&body))?;
        fs::hard_link(dir.join("message"), &body)?;
        let tmp = spool.rewrite_path(msgid);
        not_found_is_ok(fs::remove_file(&tmp))?;
        let mut file = create_private_file(&tmp)?;
        file.write_all(&records::encode(&envelopes))?;
        file.sync_data()?;
        fs::rename(&tmp, spool.envelopes_path(msgid))?;
        sync_dir(&spool.queue_root())?;
    }
    // The old directory goes only once the new files are durable, its envelopes first:
    // interrupted, it is left with a body and no envelope, which the next open removes.
    match fs::remove_dir_all(dir.join("envelopes")) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::remove_dir_all(dir)?;
    Ok(())
}
