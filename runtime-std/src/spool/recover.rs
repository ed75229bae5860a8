//! What [`Spool::open`] does before the daemon serves: clean what a crash left, convert
//! messages queued in older layouts (version 2, and a directory per message before it),
//! and collect the queue to reload.

use super::{
    body, check_id, create_private_file, list_dir, not_found_is_ok, records, sync_dir, write_aside,
    QueuedMessage, Recovered, Spool,
};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// The layout this code writes, recorded in `version` at the spool's root.
const LAYOUT_VERSION: &str = "3\n";

/// The previous layout, whose messages this code converts.
const PREVIOUS_VERSION: &str = "2\n";

/// The parts of one message found in `queue/`.
#[derive(Default)]
struct Found {
    body: bool,
    envelopes: bool,
}

pub(super) fn recover(spool: &Spool) -> io::Result<Recovered> {
    let mut recovered = Recovered::default();
    let root = spool.root().to_path_buf();
    let version = match fs::read_to_string(root.join("version")) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        other => Some(other?),
    };
    if let Some(v) = version
        .as_deref()
        .filter(|v| *v != LAYOUT_VERSION && *v != PREVIOUS_VERSION)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "spool layout version {:?} is not one this release reads ({} or {})",
                v.trim(),
                PREVIOUS_VERSION.trim(),
                LAYOUT_VERSION.trim()
            ),
        ));
    }
    // In version 2 a message file without an envelope file was never committed.
    let from_previous = version.as_deref() == Some(PREVIOUS_VERSION);
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
            "i." => {
                // The scratch name of a shared file already linked as its messages'
                // names (see shared.rs) was committed: only the name goes.
                let linked = fs::symlink_metadata(&path)
                    .is_ok_and(|meta| std::os::unix::fs::MetadataExt::nlink(&meta) > 1);
                spool.pool().recycle(&path)?;
                if !linked {
                    recovered.discarded_incoming.push(msgid);
                }
            }
            "t." => {
                spool.pool().recycle(&path)?;
            }
            _ => {}
        }
    }
    for (msgid, parts) in found {
        let Found { body, envelopes } = parts;
        if !body {
            if envelopes && from_previous {
                set_aside(spool, &msgid)?;
                recovered.corrupt.push(msgid);
            } else if envelopes {
                // Removing a message takes its file first: this is what a crash left.
                spool.pool().recycle(&spool.envelopes_path(&msgid))?;
            }
            continue;
        }
        let has_footer = has_unit(&spool.body_path(&msgid), &msgid)?;
        if !has_footer && !envelopes && from_previous {
            not_found_is_ok(fs::remove_file(spool.body_path(&msgid)))?;
            recovered.discarded_incoming.push(msgid);
            continue;
        }
        if !has_footer && envelopes {
            add_footer(spool, &msgid)?;
        }
        match spool.read_envelopes(&msgid) {
            Ok(envelopes) if envelopes.is_empty() => spool.purge(&msgid)?,
            Ok(envelopes) => recovered.messages.push(QueuedMessage { msgid, envelopes }),
            Err(_) => {
                set_aside(spool, &msgid)?;
                recovered.corrupt.push(msgid);
            }
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

/// Move what is left of message `msgid` (its envelope file, its message) to `corrupt/`.
/// A message file whose footer is whole leaves the message alone as `<msgid>.message`
/// (ready to be sent again by hand) and its committed records as `<msgid>.records`;
/// anything else is moved as it is.
fn set_aside(spool: &Spool, msgid: &str) -> io::Result<()> {
    let envelopes = spool.envelopes_path(msgid);
    if envelopes.exists() {
        fs::rename(
            &envelopes,
            corrupt_target(spool, &format!("{msgid}.envelopes")),
        )?;
    }
    let message = spool.body_path(msgid);
    if message.exists() {
        let opened = File::open(&message).and_then(|f| body::QueuedBody::open(f, msgid));
        if let Ok(mut body) = opened {
            let records = body.committed_records()?;
            let target = corrupt_target(spool, &format!("{msgid}.records"));
            write_aside(&target, &mut records.as_slice())?;
            write_aside(
                &corrupt_target(spool, &format!("{msgid}.message")),
                &mut body,
            )?;
            fs::remove_file(&message)?;
        } else {
            fs::rename(&message, corrupt_target(spool, &format!("{msgid}.message")))?;
        }
    }
    sync_dir(&spool.root().join("corrupt"))
}

/// Whether the message file at `path` holds a valid unit of `msgid` (layout 3).
fn has_unit(path: &Path, msgid: &str) -> io::Result<bool> {
    match body::QueuedBody::open(File::open(path)?, msgid) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Convert message `msgid` of layout 2 (a bare message, its records in `e.<msgid>`):
/// copy it with a footer and no records into `i.<msgid>`, fsync, rename over
/// `m.<msgid>`. Interrupted, the old file is still whole and is converted again.
fn add_footer(spool: &Spool, msgid: &str) -> io::Result<()> {
    let target = spool.body_path(msgid);
    let scratch = spool.incoming_path(msgid);
    let mut copy = spool.pool().take_replacing(&scratch)?;
    let written = (|| {
        let length = io::copy(&mut File::open(&target)?, &mut copy)?;
        let tail = body::close_unit(&mut copy, msgid, length, &records::encode(&[]))?;
        let total = length.saturating_add(tail);
        super::pool::trim(&copy, total)?;
        copy.sync_data()?;
        fs::rename(&scratch, &target)
    })();
    if written.is_err() {
        let _ = spool.pool().recycle(&scratch);
    }
    written
}

/// Convert `queue/<msgid>/` of the first layout: link its body as `m.<msgid>`, write
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
