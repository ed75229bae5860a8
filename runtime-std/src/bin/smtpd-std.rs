//! `smtpd-std`: the daemon of the minimal (blocking, std-only) build. `-n` checks the
//! configuration (`runtime_std::cli`); otherwise it serves mail (`runtime_std::server`).

use std::process::ExitCode;

fn main() -> ExitCode {
    match runtime_std::cli::parse_args(std::env::args().skip(1)) {
        Ok(options) if !options.check => runtime_std::server::serve_command(&options),
        _ => runtime_std::cli::main(),
    }
}
