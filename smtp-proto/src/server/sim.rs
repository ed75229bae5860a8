//! Deterministic simulation of a client, the session and a slow engine (seeded).
