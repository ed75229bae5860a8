//! The queue model: messages, envelopes, their states and the on-disk record format.
