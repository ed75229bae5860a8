//! `smtpd`: the daemon on the smol runtime. It shares its command line with `smtpd-std`;
//! for now only `-n` (check the configuration) works; see `runtime_std::cli`.

fn main() {
    runtime_std::cli::main()
}
