//! The control socket's doors into the engine host ([`super::EngineHost`]): reading the
//! engine under its lock, opening a session for the local enqueuer, swapping a table,
//! and the relay agent's router. [`crate::server::daemon_control::DaemonControl`] builds
//! the control verbs on them.

use std::sync::Arc;

use mta_core::config::Config;
use mta_core::engine::{Engine, PeerAddr, SessionInfo};
use mta_core::table::Table;
use mta_core::time::UnixTime;

use super::{unix_now, EngineHost};
use crate::relay::RelayAgent;
use crate::server::mailbox::Mailbox;

impl EngineHost {
    /// Runs `f` on the engine under its lock, with the wall clock.
    pub(crate) fn with_engine(&self, f: &mut dyn FnMut(&Engine, UnixTime)) {
        if let Ok(core) = self.core.lock() {
            f(&core.engine, unix_now());
        }
    }

    /// The configuration the engine runs with now (tables as last replaced).
    pub(crate) fn config(&self) -> Option<Arc<Config>> {
        self.core
            .lock()
            .ok()
            .map(|core| Arc::clone(core.engine.config()))
    }

    /// Registers a session from the local enqueuer (`PeerAddr::Local`, no listener, so
    /// `from local` rules match it); notes for it go to `mailbox`. Returns its id.
    pub(crate) fn open_local(&self, mailbox: Arc<Mailbox>) -> u64 {
        let info = SessionInfo {
            listener: None,
            peer: PeerAddr::Local,
            local: None,
            rdns: None,
            tls: false,
        };
        self.open_session(info, mailbox)
    }

    /// Replaces the contents of the table `table.name` and recompiles the rules; new
    /// sessions and expansions see it.
    ///
    /// # Errors
    /// When the engine has no such table or the rules no longer compile with it.
    pub(crate) fn replace_table(&self, table: Table) -> Result<(), String> {
        let mut core = self
            .core
            .lock()
            .map_err(|_| "engine unavailable".to_owned())?;
        core.engine.replace_table(table)
    }

    /// The relay agent, once the first relayed envelope started it.
    pub(crate) fn relay_agent(&self) -> Option<&RelayAgent> {
        self.relay.get().and_then(Option::as_ref)
    }
}
