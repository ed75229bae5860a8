//! `smtpd-std`: the daemon of the minimal (blocking, std-only) build. For now only `-n`
//! (check the configuration) works; see `runtime_std::cli`.

fn main() {
    runtime_std::cli::main()
}
