//! The delivery method of a local user's own mailbox, with its format specifiers expanded.

use super::format::{expand_format, FormatContext, FormatError};
use super::node::Node;
use super::types::{ExpandRequest, LocalMethod, LocalUser, Refusal};
use crate::config::{Action, Config, DeliveryMethod};

/// Default maildir of smtpd.conf(5): `~/Maildir`.
const DEFAULT_MAILDIR: &str = "~/Maildir";

/// How `action` delivers to `user`, paths and commands expanded for this recipient.
///
/// # Errors
/// A [`Refusal`]: 550 5.1.1 for `forward-only` and `expand-only` actions (no method of
/// their own), 550 5.1.3 when the address cannot be used safely in a path or command,
/// 451 4.3.0 for a configuration problem (unknown token or wrapper).
pub(super) fn local_method(
    config: &Config,
    request: &ExpandRequest,
    node: &Node,
    action: &Action,
    user: &LocalUser,
) -> Result<LocalMethod, Refusal> {
    let ctx = FormatContext {
        sender: &request.sender,
        rcpt: &request.recipient,
        dest: &node.dest,
        user_name: &user.name,
        user_directory: &user.directory,
        mda: None,
        sub_addr_delim: config.options.sub_addr_delim(),
    };
    match &action.method {
        DeliveryMethod::Mbox => Ok(LocalMethod::Mbox),
        DeliveryMethod::Maildir { path, junk } => {
            let template = path.as_deref().unwrap_or(DEFAULT_MAILDIR);
            Ok(LocalMethod::Maildir {
                path: expand(template, &ctx)?,
                junk: *junk,
            })
        }
        DeliveryMethod::Mda { command } => {
            let command = expand(command, &ctx)?;
            let command = match &action.local.wrapper {
                None => command,
                Some(name) => {
                    let wrapper = config
                        .options
                        .mda_wrappers
                        .get(name)
                        .ok_or_else(Refusal::temp_failure)?;
                    expand(
                        wrapper,
                        &FormatContext {
                            mda: Some(&command),
                            ..ctx.clone()
                        },
                    )?
                }
            };
            Ok(LocalMethod::Mda { command })
        }
        DeliveryMethod::Lmtp { dest, rcpt_to } => {
            let rcpt = if *rcpt_to {
                node.dest.clone()
            } else {
                user.name.clone()
            };
            Ok(LocalMethod::Lmtp {
                dest: dest.clone(),
                rcpt,
            })
        }
        DeliveryMethod::ForwardOnly | DeliveryMethod::ExpandOnly => Err(Refusal::new(
            550,
            (5, 1, 1),
            "Invalid recipient: no delivery method for this action",
        )),
        DeliveryMethod::Relay(_) => Err(Refusal::temp_failure()),
    }
}

fn expand(template: &str, ctx: &FormatContext<'_>) -> Result<String, Refusal> {
    expand_format(template, ctx).map_err(|e| match e {
        FormatError::LeadingDot(_) | FormatError::TooLong => Refusal::new(
            550,
            (5, 1, 3),
            "Invalid recipient: address unusable in a mailbox path",
        ),
        _ => Refusal::temp_failure(),
    })
}
