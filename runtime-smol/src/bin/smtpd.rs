//! `smtpd`: the daemon on the smol runtime, one task per connection. It shares its
//! command line with `smtpd-std` (`smtpd [-dnv] [-D macro=value] [-f file]`, see
//! `runtime_std::cli`): `-n` checks the configuration, anything else serves mail.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match runtime_std::cli::parse_args(args.clone()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("smtpd: {e}\n{}", runtime_std::cli::USAGE);
            return ExitCode::FAILURE;
        }
    };
    if options.check {
        let stdout = std::io::stdout();
        let stderr = std::io::stderr();
        let code = runtime_std::cli::run(args, &mut stdout.lock(), &mut stderr.lock());
        return if code == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    runtime_smol::serve::serve_command(&options)
}
