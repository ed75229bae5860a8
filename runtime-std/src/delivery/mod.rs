//! Local delivery agents: maildir, mbox, mda, lmtp.
