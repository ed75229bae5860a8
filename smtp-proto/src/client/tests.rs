//! Scripted-server tests of the client session.
