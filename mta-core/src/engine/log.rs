//! Log lines in the style of OpenSMTPD (`smtp-in: ...`, `delivery: Ok for ...`), so that
//! administrators used to it find their way.

use smtp_proto::reply::Reply;

use super::input::{PeerAddr, SessionId, SessionInfo};
use crate::queue::{DeliveryKind, Envelope};
use crate::scheduler::Outcome;
use crate::time::UnixTime;

/// A reply on one line, for logs.
pub(super) fn reply_text(reply: &Reply) -> String {
    reply.to_string()
}

/// `smtp-in: session SID: connected from HOST [IP]:PORT`.
pub(super) fn connected(sid: SessionId, info: &SessionInfo) -> String {
    let from = match info.peer {
        PeerAddr::Inet(addr) => format!(
            "{} [{}]:{}",
            info.rdns.as_deref().unwrap_or("<unknown>"),
            addr.ip(),
            addr.port()
        ),
        PeerAddr::Local => "local".to_owned(),
    };
    let tls = if info.tls { " tls" } else { "" };
    format!("smtp-in: session {sid}: connected from {from}{tls}")
}

/// `user` and `method` of a delivery, as OpenSMTPD logs them.
fn user_method(envelope: &Envelope) -> String {
    match &envelope.delivery {
        DeliveryKind::Local { user, method } => {
            let name = user.split(':').next().unwrap_or("");
            let kind = method.split(':').next().unwrap_or("");
            format!("user={name}, method={kind}")
        }
        DeliveryKind::Relay { action } => format!("relay={action}"),
    }
}

/// `delivery: Ok|TempFail|PermFail for EVPID: from=<..>, to=<..>, user=.., method=..,
/// delay=Ns, stat=...`.
pub(super) fn delivery(envelope: &Envelope, outcome: &Outcome, now: UnixTime) -> String {
    let (verdict, stat) = match outcome {
        Outcome::Delivered => ("Ok", "Delivered".to_owned()),
        Outcome::TempFail(f) => ("TempFail", f.text.clone()),
        Outcome::PermFail(f) => ("PermFail", f.text.clone()),
    };
    let stat: String = stat
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let delay = now.saturating_duration_since(envelope.created).as_secs();
    format!(
        "delivery: {verdict} for {}: from=<{}>, to=<{}>, {}, delay={delay}s, stat={stat}",
        envelope.id,
        envelope.sender.as_deref().unwrap_or(""),
        envelope.recipient,
        user_method(envelope),
    )
}
