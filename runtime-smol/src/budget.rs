//! How much of the messages being received `smtpd` keeps in memory.
//!
//! A message kept in memory until its commit costs no spool file of its own and no
//! blocking-pool hop while it arrives: the committer writes it with the others of its
//! batch into one shared file. Each message may hold up to [`MESSAGE_LIMIT`] bytes so,
//! and all of them together [`TOTAL_LIMIT`]; past either, the message goes to a spool
//! file of its own as it arrives. The total bounds what many concurrent transfers can
//! make the daemon hold, whatever their number.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The most bytes one message keeps in memory.
pub const MESSAGE_LIMIT: usize = 1024 * 1024;

/// The most bytes all messages being received keep in memory together.
pub const TOTAL_LIMIT: usize = 64 * 1024 * 1024;

/// Bytes held now by every [`Held`] of the process.
static IN_MEMORY: AtomicUsize = AtomicUsize::new(0);

/// The bytes one message holds in memory, given back when it is dropped (the message
/// went to a file, was committed, or was abandoned).
#[derive(Debug)]
pub struct Held {
    bytes: usize,
    /// The total it counts in ([`IN_MEMORY`] but in tests).
    total: &'static AtomicUsize,
}

impl Default for Held {
    fn default() -> Held {
        Held {
            bytes: 0,
            total: &IN_MEMORY,
        }
    }
}

impl Held {
    /// Account for `bytes` more, if both limits allow: false (and nothing taken) when
    /// not.
    pub fn try_grow(&mut self, bytes: usize) -> bool {
        self.try_grow_within(bytes, TOTAL_LIMIT)
    }

    /// [`Held::try_grow`] against a total of `total_limit`.
    fn try_grow_within(&mut self, bytes: usize, total_limit: usize) -> bool {
        let Some(mine) = self
            .bytes
            .checked_add(bytes)
            .filter(|&n| n <= MESSAGE_LIMIT)
        else {
            return false;
        };
        let taken = self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |total| {
                total.checked_add(bytes).filter(|&n| n <= total_limit)
            });
        if taken.is_ok() {
            self.bytes = mine;
        }
        taken.is_ok()
    }

    /// Account for `bytes` whatever the limits (what is already in memory, such as the
    /// header the engine wrote).
    pub fn grow(&mut self, bytes: usize) {
        self.total.fetch_add(bytes, Ordering::AcqRel);
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// The bytes this message holds.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted_in(total: &'static AtomicUsize) -> Held {
        Held { bytes: 0, total }
    }

    #[test]
    fn a_message_grows_to_its_limit_and_gives_everything_back() {
        let total: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let mut held = counted_in(total);
        assert!(held.try_grow_within(MESSAGE_LIMIT - 10, usize::MAX));
        assert!(!held.try_grow_within(11, usize::MAX), "past its own limit");
        assert!(held.try_grow_within(10, usize::MAX));
        assert_eq!(held.bytes(), MESSAGE_LIMIT);
        assert_eq!(total.load(Ordering::Acquire), MESSAGE_LIMIT);
        drop(held);
        assert_eq!(total.load(Ordering::Acquire), 0);
    }

    #[test]
    fn the_total_limit_refuses_growth_without_taking_anything() {
        let total: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let (mut first, mut second) = (counted_in(total), counted_in(total));
        assert!(first.try_grow_within(100, 150));
        assert!(!second.try_grow_within(100, 150), "over the total");
        assert_eq!((second.bytes(), total.load(Ordering::Acquire)), (0, 100));
        second.grow(70);
        assert_eq!(second.bytes(), 70, "what is already in memory is counted");
        drop(first);
        assert_eq!(total.load(Ordering::Acquire), 70);
        assert!(second.try_grow_within(80, 150));
    }
}
