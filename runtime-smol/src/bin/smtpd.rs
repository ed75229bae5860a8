//! `smtpd`: the daemon on the smol runtime, one task per connection. It shares its
//! command line with `smtpd-std` (`smtpd [-dnv] [-D macro=value] [-f file] [-M seed:rate]`,
//! see `runtime_std::cli`): `-n` checks the configuration, anything else serves mail, in
//! monkey mode with `-M`.

use std::process::ExitCode;

fn main() -> ExitCode {
    runtime_std::cli::main_with(runtime_smol::serve::serve_command)
}
