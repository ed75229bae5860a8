//! `smtpd-std`: the daemon of the minimal (blocking, std-only) build. `-n` checks the
//! configuration; otherwise it serves mail (`runtime_std::server`), in monkey mode with
//! `-M SEED:RATE` (see `runtime_std::cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    runtime_std::cli::main_with(runtime_std::server::serve_command)
}
