//! The daemon's [`ControlTarget`]: the engine-side verbs of
//! [`ControlState::answer`] over whatever holds the engine, so that a runtime only
//! provides the three doors of [`DaemonAccess`].

use std::io::Read;
use std::sync::{Arc, Mutex};

use mta_core::control::{Answer, ControlState, Effect, Request, Response, MAX_SUBMISSION};
use mta_core::engine::{Engine, Input};
use mta_core::queue::MessageId;
use mta_core::time::UnixTime;

use super::ControlTarget;
use crate::spool::Spool;

/// What the control socket needs from a daemon.
pub trait DaemonAccess: Send + Sync {
    /// Runs `f` on the engine (under its lock), at wall-clock time `now`.
    fn read_engine(&self, f: &mut dyn FnMut(&Engine, UnixTime));
    /// Feeds `input` to the engine and performs the actions that follow.
    fn feed(&self, input: Input);
    /// Performs `effect` (pause SMTP, log level, table reload, show message, local
    /// submission) and says how it went.
    fn perform(&self, effect: Effect) -> Response;
}

/// Answers control requests for a daemon: keeps the [`ControlState`] (pauses, uptime,
/// traces) and dispatches each request to the engine or the runtime.
pub struct EngineControl<D> {
    daemon: Arc<D>,
    state: Mutex<ControlState>,
}

impl<D: DaemonAccess> EngineControl<D> {
    /// Control of `daemon`, started at `started` (for `uptime`).
    pub fn new(daemon: Arc<D>, started: UnixTime) -> Self {
        EngineControl {
            daemon,
            state: Mutex::new(ControlState::new(started)),
        }
    }
}

impl<D: DaemonAccess> ControlTarget for EngineControl<D> {
    fn control(&self, request: Request, _peer_uid: u32) -> Response {
        let mut answer = None;
        {
            let Ok(mut state) = self.state.lock() else {
                return Response::Error("control state unavailable".to_owned());
            };
            self.daemon.read_engine(&mut |engine, now| {
                answer = Some(state.answer(engine, &request, now));
            });
        }
        match answer {
            None => Response::Error("engine unavailable".to_owned()),
            Some(Answer::Reply(response)) => response,
            Some(Answer::Feed(control)) => {
                self.daemon.feed(Input::Control(control));
                Response::Ok
            }
            Some(Answer::Runtime(effect)) => self.daemon.perform(effect),
        }
    }
}

/// The text of queued message `msgid` from `spool`, one line per line (`show message`);
/// an error when it cannot be read or exceeds the response bound.
pub fn show_message(spool: &Spool, msgid: MessageId) -> Response {
    let mut text = Vec::new();
    let read = spool
        .read_message(&msgid.to_string())
        .and_then(|f| f.take(u64::from(MAX_SUBMISSION) / 8).read_to_end(&mut text));
    match read {
        Ok(_) => Response::Text(
            String::from_utf8_lossy(&text)
                .lines()
                .map(str::to_owned)
                .collect(),
        ),
        Err(e) => Response::Error(format!("cannot read message {msgid}: {e}")),
    }
}
