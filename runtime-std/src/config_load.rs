//! Reading the configuration from disk: the main file, its includes and `file:` tables
//! (relative paths are taken from the main file's directory), and the state directory
//! handed to the parser as the `state_dir` macro.

use std::fmt;
use std::path::{Path, PathBuf};

use mta_core::config::{parse, Config, ConfigErrors, DEFAULT_CONFIG};

/// Where the built-in configuration is said to come from in messages.
pub const DEFAULT_NAME: &str = "(built-in configuration)";

/// A configuration read from disk (or the built-in one).
#[derive(Debug)]
pub struct Loaded {
    /// The parsed configuration.
    pub config: Config,
    /// The main file's name as given, or [`DEFAULT_NAME`].
    pub file_name: String,
    /// The state directory given to the parser as `$state_dir`.
    pub state_dir: PathBuf,
    /// Whether the built-in configuration was used (no `-f FILE`).
    pub builtin: bool,
}

/// Why the configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The main file could not be read.
    Read {
        /// The file.
        file: String,
        /// The system's reason.
        reason: String,
    },
    /// The configuration has errors.
    Config(ConfigErrors),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { file, reason } => write!(f, "smtpd: cannot read {file}: {reason}"),
            LoadError::Config(errors) => write!(f, "{errors}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// The state directory: `/var/spool/smtpd` for root, else `$XDG_STATE_HOME/smtpd` or
/// `~/.local/state/smtpd` (XDG Base Directory Specification).
pub fn default_state_dir() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    state_dir_for(
        euid,
        std::env::var_os("XDG_STATE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// [`default_state_dir`] for a given user id and environment, for tests.
pub fn state_dir_for(
    euid: u32,
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    if euid == 0 {
        return PathBuf::from("/var/spool/smtpd");
    }
    match (xdg_state_home, home) {
        (Some(x), _) if Path::new(&x).is_absolute() => PathBuf::from(x).join("smtpd"),
        (_, Some(h)) if !h.is_empty() => PathBuf::from(h).join(".local/state/smtpd"),
        _ => PathBuf::from("/tmp/smtpd-state"),
    }
}

/// The account the built-in configuration's catch-all deliveries run as (the `state_user`
/// macro): the user running the daemon, or `nobody` for root, since nothing is ever
/// delivered as root.
pub fn state_user() -> String {
    use crate::delivery::user::{lookup_uid, UserLookup};
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return "nobody".to_string();
    }
    match lookup_uid(uid) {
        UserLookup::Found(account) => account.name,
        UserLookup::NotFound | UserLookup::TempFail(_) => {
            std::env::var("USER").unwrap_or_else(|_| uid.to_string())
        }
    }
}

/// Loads `file` (or the built-in configuration when `None`) with command-line macros,
/// which win over the file's and over the computed `state_dir`.
///
/// # Errors
///
/// [`LoadError::Read`] when the main file cannot be read, [`LoadError::Config`] with every
/// error of the configuration otherwise, including the relay options this server parses
/// but refuses to run with (`srs`, see `relay::unsupported`).
pub fn load(file: Option<&Path>, cmdline_macros: &[(String, String)]) -> Result<Loaded, LoadError> {
    let state_dir = cmdline_macros
        .iter()
        .find(|(k, _)| k == "state_dir")
        .map(|(_, v)| PathBuf::from(v))
        .unwrap_or_else(default_state_dir);
    let mut macros = cmdline_macros.to_vec();
    macros.push((
        "state_dir".to_string(),
        state_dir.to_string_lossy().into_owned(),
    ));
    if !macros.iter().any(|(k, _)| k == "state_user") {
        macros.push(("state_user".to_string(), state_user()));
    }
    let (text, file_name, base) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| LoadError::Read {
                file: path.display().to_string(),
                reason: e.to_string(),
            })?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (text, path.display().to_string(), base)
        }
        None => (
            DEFAULT_CONFIG.to_string(),
            DEFAULT_NAME.to_string(),
            PathBuf::from("/"),
        ),
    };
    let mut loader = |name: &str| -> Result<String, String> {
        let path = base.join(name);
        std::fs::read_to_string(&path).map_err(|e| e.to_string())
    };
    let config = parse(&text, &file_name, &macros, &mut loader).map_err(LoadError::Config)?;
    let refused = crate::relay::unsupported_relay_options(&config, &text, &file_name);
    if !refused.is_empty() {
        return Err(LoadError::Config(mta_core::config::ConfigErrors(refused)));
    }
    Ok(Loaded {
        config,
        file_name,
        state_dir,
        builtin: file.is_none(),
    })
}

/// Checks what only the system can tell: that each `listen on` interface exists and each
/// host name resolves (in the listener's family, if it has one), as OpenSMTPD's `-n` does.
/// Returns one message per listener that fails, naming the configuration file. A listener
/// with `auth` and no credentials table needs the system's accounts: where they cannot be
/// checked (not root, no shadow file), it is refused here rather than failing every AUTH.
pub fn check_listen_addresses(loaded: &Loaded) -> Vec<String> {
    use mta_core::config::{Family, ListenAddress};
    use std::net::ToSocketAddrs;
    let mut problems = Vec::new();
    for l in &loaded.config.listeners {
        let ok = match &l.address {
            ListenAddress::Interface(name) => match std::ffi::CString::new(name.as_str()) {
                Ok(c) => {
                    // SAFETY: the pointer is a valid NUL-terminated string for the whole call.
                    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
                    index != 0
                }
                Err(_) => false,
            },
            ListenAddress::Host(name) => (name.as_str(), 0u16)
                .to_socket_addrs()
                .map(|mut addrs| {
                    addrs.any(|a| match l.family {
                        Some(Family::Inet4) => a.is_ipv4(),
                        Some(Family::Inet6) => a.is_ipv6(),
                        None => true,
                    })
                })
                .unwrap_or(false),
            ListenAddress::Any | ListenAddress::Localhost | ListenAddress::Ip(_) => true,
        };
        if !ok {
            let name = match &l.address {
                ListenAddress::Interface(n) | ListenAddress::Host(n) => n.clone(),
                other => format!("{other:?}"),
            };
            problems.push(format!(
                "{}: listen on \"{name}\": no such interface, and no address for that host name",
                loaded.file_name
            ));
        }
        if l.auth.as_ref().is_some_and(|a| a.table.is_none()) {
            if let Err(why) = crate::auth::system_auth_available() {
                problems.push(format!(
                    "{}: listen on {} port {}: auth without a credentials table: {why}",
                    loaded.file_name,
                    listen_address_text(&l.address),
                    l.port
                ));
            }
        }
    }
    problems
}

/// A listen address as the configuration writes it.
fn listen_address_text(address: &mta_core::config::ListenAddress) -> String {
    use mta_core::config::ListenAddress;
    match address {
        ListenAddress::Ip(ip) => ip.to_string(),
        ListenAddress::Localhost => "localhost".to_owned(),
        ListenAddress::Any => "any".to_owned(),
        ListenAddress::Interface(name) | ListenAddress::Host(name) => name.clone(),
    }
}

/// Checks that the certificate, key and CA files named by `pki` and `ca` can be read, as
/// OpenSMTPD loads them while checking. Returns one message per file that cannot.
pub fn check_certificate_files(loaded: &Loaded) -> Vec<String> {
    let mut files: Vec<(String, &str, &String)> = Vec::new();
    for (name, pki) in &loaded.config.pki {
        if let Some(cert) = &pki.cert {
            files.push((format!("pki \"{name}\""), "certificate", cert));
        }
        if let Some(key) = &pki.key {
            files.push((format!("pki \"{name}\""), "key", key));
        }
    }
    for (name, cert) in &loaded.config.ca {
        files.push((format!("ca \"{name}\""), "certificate", cert));
    }
    files
        .into_iter()
        .filter_map(|(owner, what, path)| {
            std::fs::File::open(path).err().map(|e| {
                format!(
                    "{}: {owner}: cannot read {what} \"{path}\": {e}",
                    loaded.file_name
                )
            })
        })
        .collect()
}
