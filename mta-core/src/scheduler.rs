//! The scheduler: when each envelope is tried, retried, warned about and expired.
