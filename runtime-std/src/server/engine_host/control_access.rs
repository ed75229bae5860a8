//! The control socket's door into the engine host ([`super::EngineHost`]).
