//! The nodes of an expansion tree: one target each, with the path that led to it.

use super::expander::join;
use super::types::LocalUser;
use crate::table::pattern::split_address;
use crate::table::{split_alias_list, AliasError, AliasTarget};

/// Most targets one `.forward` or `:include:` file may hold.
pub const MAX_FILE_TARGETS: usize = 1000;

/// What a node stands for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) enum NodeKind {
    Address { user: String, domain: String },
    Username { name: String },
    File { path: String },
    Command { command: String },
    Include { path: String },
    Error { code: u16, message: String },
}

impl NodeKind {
    pub(super) fn from_target(target: AliasTarget) -> NodeKind {
        match target {
            // `\user` in a .forward: the user's own mailbox (sendmail's syntax).
            AliasTarget::User(name) => NodeKind::Username {
                name: name.trim_start_matches('\\').to_string(),
            },
            AliasTarget::Address { user, domain } => NodeKind::Address { user, domain },
            AliasTarget::Command(command) => NodeKind::Command { command },
            AliasTarget::File(path) => NodeKind::File { path },
            AliasTarget::Include(path) => NodeKind::Include { path },
            AliasTarget::Error { code, message } => NodeKind::Error { code, message },
        }
    }
}

/// Where a target was written: who files and commands run as, and whether `:include:`
/// is allowed (not in `.forward`, forward(5)).
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) enum Origin {
    /// The recipient itself, an alias or virtual table, or an include file.
    Alias,
    /// This user's `.forward`.
    Forward(LocalUser),
}

/// One target to expand.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) struct Node {
    pub(super) kind: NodeKind,
    /// The action in force (addresses from aliases are matched again).
    pub(super) action: String,
    /// How many expansions led here.
    pub(super) depth: usize,
    /// The address after expansion so far (`%{dest}`).
    pub(super) dest: String,
    pub(super) origin: Origin,
    /// User names alias-expanded on the path: delivered directly if met again.
    pub(super) aliased: Vec<String>,
    /// Users whose `.forward` was read on the path: delivered directly if met again.
    pub(super) forwarded: Vec<String>,
}

impl Node {
    pub(super) fn root(kind: NodeKind, action: &str) -> Node {
        let dest = match &kind {
            NodeKind::Address { user, domain } => join(user, domain),
            _ => String::new(),
        };
        Node {
            kind,
            action: action.to_string(),
            depth: 0,
            dest,
            origin: Origin::Alias,
            aliased: Vec::new(),
            forwarded: Vec::new(),
        }
    }

    /// A target of this node, one level deeper.
    pub(super) fn child(&self, kind: NodeKind, origin: Origin) -> Node {
        let (_, parent_domain) = split_address(&self.dest);
        let dest = match &kind {
            NodeKind::Address { user, domain } => join(user, domain),
            NodeKind::Username { name } => join(name, parent_domain),
            _ => self.dest.clone(),
        };
        Node {
            kind,
            action: self.action.clone(),
            depth: self.depth.saturating_add(1),
            dest,
            origin,
            aliased: self.aliased.clone(),
            forwarded: self.forwarded.clone(),
        }
    }

    pub(super) fn with_dest(&self, dest: &str) -> Node {
        Node {
            dest: dest.to_string(),
            ..self.clone()
        }
    }

    pub(super) fn aliasing(&self, name: &str) -> Node {
        let mut node = self.clone();
        node.aliased.push(name.to_string());
        node
    }

    pub(super) fn forwarding(&self, name: &str) -> Node {
        let mut node = self.clone();
        node.forwarded.push(name.to_string());
        node
    }
}

/// The targets of a `.forward` or `:include:` file: one or more comma-separated targets
/// per line, `#` comments outside double quotes, blank lines ignored.
///
/// # Errors
/// [`AliasError`] for an invalid target or more than [`MAX_FILE_TARGETS`] targets.
pub(super) fn parse_target_lines(text: &str) -> Result<Vec<AliasTarget>, AliasError> {
    let mut targets = Vec::new();
    for line in text.lines() {
        for element in split_alias_list(strip_comment(line)) {
            if targets.len() >= MAX_FILE_TARGETS {
                return Err(AliasError {
                    target: element.to_string(),
                    reason: "too many targets in file",
                });
            }
            targets.push(AliasTarget::parse(element)?);
        }
    }
    Ok(targets)
}

/// The line up to its first `#` outside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return line.get(..i).unwrap_or(""),
            _ => {}
        }
    }
    line
}
