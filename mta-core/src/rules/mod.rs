//! Rule evaluation: which `match` rule applies to a session and an envelope.
