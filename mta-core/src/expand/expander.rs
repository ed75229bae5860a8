//! The expansion machine: turns one accepted recipient into deliveries through virtual
//! mappings, aliases, `:include:` files, `~/.forward` files and user lookups.
//!
//! What needs the world (the password database, `.forward` and `:include:` files) is
//! asked as [`ExpandAction::Ask`] and answered with [`Expander::handle`]; one question is
//! outstanding at a time. The machine has no timer: [`Expander::poll_timeout`] is always
//! `None`. Drain [`Expander::poll_action`] after `new` and after every `handle`, until it
//! returns `None`; the last action is always [`ExpandAction::Done`].
//!
//! Expansion is loop-safe: a user already alias-expanded (or `.forward`-expanded) on the
//! path from the recipient is delivered directly instead of expanded again (so `bob: bob,
//! alice` delivers to bob's own mailbox), the depth is at most [`MAX_DEPTH`], and at most
//! [`MAX_NODES`] targets are looked at in all.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::node::{Node, NodeKind, Origin};
use super::types::*;
use crate::config::{Action, Config, Decision, DeliveryMethod};
use crate::rules::{EnvelopeFacts, Ruleset};
use crate::table::pattern::split_address;
use crate::table::{AliasTarget, Table};

/// Deepest chain of expansions followed (OpenSMTPD stops at the same depth).
pub const MAX_DEPTH: usize = 10;

/// Most targets looked at for one recipient.
pub const MAX_NODES: usize = 512;

/// A caller mistake: an answer nobody asked for.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandMisuse {
    /// The id is not the outstanding question's, or expansion is over.
    #[error("no outstanding question {0:?}")]
    UnexpectedAnswer(QueryId),
    /// An answer of the wrong kind for the question.
    #[error("answer of the wrong kind for question {0:?}")]
    WrongAnswer(QueryId),
}

/// Where the machine stopped to wait for an answer.
#[derive(Debug)]
enum Parked {
    User(Node, String),
    Forward(Node, LocalUser),
    Include(Node),
}

/// The recipient expansion machine (see the module documentation).
#[derive(Debug)]
pub struct Expander {
    config: Arc<Config>,
    ruleset: Arc<Ruleset>,
    request: ExpandRequest,
    stack: Vec<Node>,
    seen: usize,
    deliveries: Vec<Delivery>,
    waiting: Option<(QueryId, Parked)>,
    next_id: u32,
    actions: VecDeque<ExpandAction>,
    done: bool,
}

impl Expander {
    /// Starts expanding `request.recipient` with the action `request.action`.
    pub fn new(config: Arc<Config>, ruleset: Arc<Ruleset>, request: ExpandRequest) -> Expander {
        let (user, domain) = split_address(&request.recipient);
        let root = Node::root(
            NodeKind::Address {
                user: user.into(),
                domain: domain.into(),
            },
            &request.action,
        );
        let mut expander = Expander {
            config,
            ruleset,
            request,
            stack: vec![root],
            seen: 0,
            deliveries: Vec::new(),
            waiting: None,
            next_id: 0,
            actions: VecDeque::new(),
            done: false,
        };
        expander.run();
        expander
    }

    /// Feeds the answer to the outstanding question `id`.
    ///
    /// # Errors
    /// [`ExpandMisuse`] when `id` is not the outstanding question or the answer is of the
    /// wrong kind; the machine is left unchanged.
    pub fn handle(&mut self, id: QueryId, answer: Answer) -> Result<(), ExpandMisuse> {
        let Some((waiting_id, parked)) = self.waiting.take() else {
            return Err(ExpandMisuse::UnexpectedAnswer(id));
        };
        if waiting_id != id {
            self.waiting = Some((waiting_id, parked));
            return Err(ExpandMisuse::UnexpectedAnswer(id));
        }
        match (parked, answer) {
            (Parked::User(node, name), Answer::User(lookup)) => {
                self.user_answer(node, name, lookup)
            }
            (Parked::Forward(node, user), Answer::File(file)) => {
                self.forward_answer(node, user, file)
            }
            (Parked::Include(node), Answer::File(file)) => self.include_answer(node, file),
            (parked, _) => {
                self.waiting = Some((waiting_id, parked));
                return Err(ExpandMisuse::WrongAnswer(id));
            }
        }
        self.run();
        Ok(())
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<ExpandAction> {
        self.actions.pop_front()
    }

    /// Always `None`: expansion sets no timer (the runtime bounds how long it answers).
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Whether expansion is over (its result was emitted).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Processes nodes until a question is asked or the stack is empty.
    fn run(&mut self) {
        while !self.done && self.waiting.is_none() {
            let Some(node) = self.stack.pop() else {
                let result = if self.deliveries.is_empty() {
                    Err(Refusal::new(
                        550,
                        (5, 4, 6),
                        "Alias expansion gave no recipient (loop?)",
                    ))
                } else {
                    Ok(std::mem::take(&mut self.deliveries))
                };
                self.finish(result);
                return;
            };
            self.seen = self.seen.saturating_add(1);
            if self.seen > MAX_NODES || node.depth > MAX_DEPTH {
                self.finish(Err(Refusal::new(
                    550,
                    (5, 4, 6),
                    "Alias expansion too deep or too wide",
                )));
                return;
            }
            if let Err(refusal) = self.step(node) {
                self.finish(Err(refusal));
            }
        }
    }

    fn finish(&mut self, result: Result<Vec<Delivery>, Refusal>) {
        self.done = true;
        self.stack.clear();
        self.actions.push_back(ExpandAction::Done(result));
    }

    fn ask(&mut self, question: Question, parked: Parked) {
        let id = QueryId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        self.waiting = Some((id, parked));
        self.actions.push_back(ExpandAction::Ask(id, question));
    }

    fn action(&self, name: &str) -> Result<&Action, Refusal> {
        self.config
            .actions
            .get(name)
            .ok_or_else(Refusal::temp_failure)
    }

    fn table(&self, name: &str) -> Result<&Table, Refusal> {
        self.config
            .tables
            .get(name)
            .ok_or_else(Refusal::temp_failure)
    }

    fn delim(&self) -> char {
        self.config.options.sub_addr_delim()
    }

    /// Pushes the targets of an alias, virtual entry, include or forward file as children.
    fn push_targets(&mut self, parent: &Node, targets: Vec<AliasTarget>, origin: Origin) {
        for target in targets.into_iter().rev() {
            let child = parent.child(NodeKind::from_target(target), origin.clone());
            self.stack.push(child);
        }
    }

    fn push_delivery(&mut self, delivery: Delivery) {
        if !self.deliveries.contains(&delivery) {
            self.deliveries.push(delivery);
        }
    }

    /// One node: decide, expand into children, ask, or deliver.
    fn step(&mut self, node: Node) -> Result<(), Refusal> {
        match node.kind.clone() {
            NodeKind::Address { user, domain } => self.address(node, &user, &domain),
            NodeKind::Username { name } => self.username(node, &name),
            NodeKind::File { path } => self.terminal(&node, LocalMethod::File { path }),
            NodeKind::Command { command } => self.terminal(&node, LocalMethod::Command { command }),
            NodeKind::Include { path } => {
                if matches!(node.origin, Origin::Forward(_)) {
                    return Err(Refusal::temp_failure());
                }
                self.ask(Question::Include { path }, Parked::Include(node));
                Ok(())
            }
            NodeKind::Error { code, message } => {
                let class = if code < 500 { 4 } else { 5 };
                Err(Refusal {
                    code,
                    status: parse_status(&message, class),
                    text: message,
                })
            }
        }
    }

    /// An address: relay, virtual lookup, or on to its user part.
    fn address(&mut self, mut node: Node, user: &str, domain: &str) -> Result<(), Refusal> {
        if node.depth > 0 {
            node.action = self.rematch(user, domain)?;
        }
        let action = self.action(&node.action)?.clone();
        if let DeliveryMethod::Relay(_) = action.method {
            let address = join(user, domain);
            self.push_delivery(Delivery::Relay {
                action: node.action.clone(),
                address,
            });
            return Ok(());
        }
        if let Some(virtual_name) = &action.local.virtual_table {
            let address = join(user, domain);
            let targets = self
                .table(virtual_name)?
                .virtual_targets(&address, self.delim())
                .map_err(|_| Refusal::temp_failure())?
                .ok_or_else(Refusal::unknown_user)?;
            self.push_targets(&node.with_dest(&address), targets, Origin::Alias);
            return Ok(());
        }
        // The same target seen as its user part: no extra depth.
        let as_user = Node {
            kind: NodeKind::Username { name: user.into() },
            ..node.with_dest(&join(user, domain))
        };
        self.username(as_user, user)
    }

    /// An address that came out of an alias or forward: matched against the rules again.
    fn rematch(&self, user: &str, domain: &str) -> Result<String, Refusal> {
        let address = join(user, domain);
        let envelope = EnvelopeFacts {
            sender: &self.request.sender,
            recipient: &address,
        };
        match self
            .ruleset
            .evaluate(&self.request.session, &envelope)
            .decision
        {
            Decision::Action(name) => Ok(name),
            Decision::Reject => Err(Refusal::not_authorized()),
        }
    }

    /// A user name: aliases, then the user lookup.
    fn username(&mut self, node: Node, name: &str) -> Result<(), Refusal> {
        let action = self.action(&node.action)?.clone();
        if let Some(alias_name) = &action.local.alias {
            if !node.aliased.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                let targets = self
                    .table(alias_name)?
                    .alias_targets(name, self.delim())
                    .map_err(|_| Refusal::temp_failure())?;
                if let Some(targets) = targets {
                    let parent = node.aliasing(name);
                    self.push_targets(&parent, targets, Origin::Alias);
                    return Ok(());
                }
            }
        }
        let lookup_name = match &action.local.user {
            Some(user) => user.to_ascii_lowercase(),
            None => {
                crate::table::pattern::strip_subaddress(name, self.delim()).to_ascii_lowercase()
            }
        };
        if let (Some(userbase), None) = (&action.local.userbase, &action.local.user) {
            let info = self
                .table(userbase)?
                .user_info(&lookup_name)
                .map_err(|_| Refusal::temp_failure())?;
            let info = info.ok_or_else(Refusal::unknown_user)?;
            let user = LocalUser {
                name: lookup_name,
                uid: info.uid,
                gid: info.gid,
                directory: info.directory,
            };
            return self.with_user(node, user);
        }
        self.ask(
            Question::User {
                name: lookup_name.clone(),
            },
            Parked::User(node, lookup_name),
        );
        Ok(())
    }

    fn user_answer(&mut self, node: Node, name: String, lookup: UserLookup) {
        let result = match lookup {
            UserLookup::Found {
                uid,
                gid,
                directory,
            } => self.with_user(
                node,
                LocalUser {
                    name,
                    uid,
                    gid,
                    directory,
                },
            ),
            UserLookup::NotFound => Err(Refusal::unknown_user()),
            UserLookup::TempFail => Err(Refusal::temp_failure()),
        };
        if let Err(refusal) = result {
            self.finish(Err(refusal));
        }
    }

    /// The user exists: read its `.forward` (once per path) or deliver.
    fn with_user(&mut self, node: Node, user: LocalUser) -> Result<(), Refusal> {
        let action = self.action(&node.action)?;
        let forward_allowed =
            action.local.user.is_none() && !node.forwarded.iter().any(|f| f == &user.name);
        if forward_allowed {
            self.ask(
                Question::Forward { user: user.clone() },
                Parked::Forward(node, user),
            );
            return Ok(());
        }
        self.deliver_to_user(&node, user)
    }

    fn forward_answer(&mut self, node: Node, user: LocalUser, file: FileLookup) {
        let result = match file {
            FileLookup::TempFail => Err(Refusal::temp_failure()),
            FileLookup::Absent => self.deliver_to_user(&node, user),
            FileLookup::Content(text) => match super::node::parse_target_lines(&text) {
                Err(_) => Err(Refusal::temp_failure()),
                Ok(targets) if targets.is_empty() => self.deliver_to_user(&node, user),
                Ok(targets) => {
                    let parent = node.forwarding(&user.name);
                    self.push_targets(&parent, targets, Origin::Forward(user));
                    Ok(())
                }
            },
        };
        if let Err(refusal) = result {
            self.finish(Err(refusal));
        }
    }

    fn include_answer(&mut self, node: Node, file: FileLookup) {
        let result = match file {
            FileLookup::TempFail | FileLookup::Absent => Err(Refusal::temp_failure()),
            FileLookup::Content(text) => match super::node::parse_target_lines(&text) {
                Err(_) => Err(Refusal::temp_failure()),
                Ok(targets) => {
                    self.push_targets(&node, targets, Origin::Alias);
                    Ok(())
                }
            },
        };
        if let Err(refusal) = result {
            self.finish(Err(refusal));
        }
    }

    /// A file or command target: delivered as the forward's owner, or the daemon's account.
    fn terminal(&mut self, node: &Node, method: LocalMethod) -> Result<(), Refusal> {
        let action = self.action(&node.action)?;
        if matches!(action.method, DeliveryMethod::ForwardOnly) {
            return Err(no_method());
        }
        let user = match &node.origin {
            Origin::Forward(user) => Some(user.clone()),
            Origin::Alias => None,
        };
        let delivery = LocalDelivery {
            action: node.action.clone(),
            dest: node.dest.clone(),
            user,
            method,
        };
        self.push_delivery(Delivery::Local(delivery));
        Ok(())
    }

    /// The user's own mailbox, by the action's method.
    fn deliver_to_user(&mut self, node: &Node, user: LocalUser) -> Result<(), Refusal> {
        let action = self.action(&node.action)?.clone();
        let method =
            super::method::local_method(&self.config, &self.request, node, &action, &user)?;
        let delivery = LocalDelivery {
            action: node.action.clone(),
            dest: node.dest.clone(),
            user: Some(user),
            method,
        };
        self.push_delivery(Delivery::Local(delivery));
        Ok(())
    }
}

fn no_method() -> Refusal {
    Refusal::new(
        550,
        (5, 1, 1),
        "Invalid recipient: no delivery method for this action",
    )
}

/// `user@domain`, or `user` alone when there is no domain.
pub(super) fn join(user: &str, domain: &str) -> String {
    if domain.is_empty() {
        user.to_string()
    } else {
        format!("{user}@{domain}")
    }
}

/// The RFC 3463 status at the start of an `error:` text, if its class matches the code's.
fn parse_status(text: &str, class: u8) -> Option<smtp_proto::reply::EnhancedStatus> {
    let first = text.split_whitespace().next()?;
    let mut parts = first.split('.');
    let c: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || c != class || subject > 999 || detail > 999 {
        return None;
    }
    Some(smtp_proto::reply::EnhancedStatus::new(c, subject, detail))
}
