//! The configuration used when no file is given.

/// The built-in configuration: listen on 127.0.0.1 port 2525, keep the queue and every
/// message under the state directory (the runtime defines the `state_dir` macro), and
/// relay nothing.
///
/// "For any address into maildirs" means a catch-all: mail for a local user goes to the
/// maildir `$state_dir/mail/USER`, and mail for any other address is kept (not relayed)
/// in the maildir `$state_dir/mail/ADDRESS`, which makes a safe development sink. Those
/// catch-all deliveries run as the `state_user` macro's account (the runtime defines it as
/// the user running the daemon, or `nobody` for root, since nothing is delivered as root).
pub const DEFAULT_CONFIG: &str = r#"# Built-in configuration of smtpd (used when no -f FILE is given).
queue path $state_dir/queue

listen on 127.0.0.1 port 2525

action "local_users" maildir $state_dir/mail/%{user.username:lowercase}
action "any_address" maildir $state_dir/mail/%{rcpt:lowercase} user $state_user

match from local for local action "local_users"
match from local for any action "any_address"
"#;
