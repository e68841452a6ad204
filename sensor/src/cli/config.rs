//! The config file (TOML, default `/etc/siem-sensor/sensor.toml`; a fully
//! commented example is `systemd/sensor.toml`).
//!
//! Every key sets one command-line flag, so the file and the flags share
//! one definition, one set of defaults and one validation: the file's keys
//! become flags placed before the command line's, and a flag given on the
//! command line replaces the file's value. Unknown sections or keys and bad
//! values are errors naming the file, the line and the reason.

use std::{
    ffi::OsString,
    fmt,
    path::{Path, PathBuf},
};

use toml::{Table, Value};

/// The default config file of `run` (used when it exists).
pub const DEFAULT: &str = "/etc/siem-sensor/sensor.toml";

/// Sections, their keys, and the flag each key sets. A boolean `enabled =
/// false` sets the flag named for it (`--no-detectors`, `--no-metrics`).
const KEYS: &[(&str, &[(&str, &str)])] = &[
    (
        "capture",
        &[
            ("interfaces", "iface"),
            ("hook", "hook"),
            ("tc_attach", "tc-attach"),
            ("xdp_mode", "xdp-mode"),
            ("ports", "ports"),
            ("all_ports", "all-ports"),
            ("capture_len", "capture-len"),
            ("ring_size_mib", "ring-size-mib"),
            ("trim_bodies", "trim-bodies"),
            ("tls", "tls"),
            ("tls_libraries", "tls-lib"),
            ("tls_ring_size_mib", "tls-ring-size-mib"),
            ("stats_interval", "stats-interval"),
        ],
    ),
    (
        "identity",
        &[
            ("trusted_proxies", "trusted-proxy"),
            ("real_ip_header", "real-ip-header"),
            ("kong_addresses", "kong-address"),
            ("proxy_ports", "proxy-ports"),
            ("key_names", "key-name"),
            ("fingerprint_key", "fingerprint-key"),
        ],
    ),
    (
        "flows",
        &[
            ("max_flows", "max-flows"),
            ("memory_budget", "memory-budget"),
        ],
    ),
    (
        "detectors",
        &[
            ("enabled", "no-detectors"),
            ("window", "window"),
            ("flood_budget", "flood-budget"),
            ("error_min", "error-min"),
            ("error_ratio", "error-ratio"),
            ("error_baseline_factor", "error-baseline-factor"),
            ("error_baseline", "error-baseline"),
            ("spread_min_ips", "spread-min-ips"),
            ("spread_window", "spread-window"),
            ("sequence_successes", "sequence-successes"),
            ("sequence_success_window", "sequence-success-window"),
            ("sequence_failures", "sequence-failures"),
            ("sequence_failure_ratio", "sequence-failure-ratio"),
            ("sequence_failure_window", "sequence-failure-window"),
            ("decoys", "decoy"),
            ("resolve_after", "resolve-after"),
            ("runbook_url", "runbook-url"),
            ("max_ips", "max-ips"),
            ("max_credentials", "max-credentials"),
        ],
    ),
    (
        "metrics",
        &[
            ("enabled", "no-metrics"),
            ("listen", "listen"),
            ("allow", "metrics-allow"),
            ("web_config_file", "web.config.file"),
        ],
    ),
    (
        "syslog",
        &[
            ("targets", "syslog"),
            ("format", "syslog-format"),
            ("body", "syslog-body"),
            ("facility", "syslog-facility"),
            ("queue", "syslog-queue"),
            ("ca", "syslog-ca"),
            ("max_record", "syslog-max-record"),
        ],
    ),
    (
        "alertmanager",
        &[
            ("urls", "alertmanager"),
            ("ca", "alertmanager-ca"),
            ("cert", "alertmanager-cert"),
            ("key", "alertmanager-key"),
            ("user", "alertmanager-user"),
            ("password_file", "alertmanager-password-file"),
            ("resend", "alertmanager-resend"),
            ("queue", "alertmanager-queue"),
            ("max_active", "alertmanager-max-active"),
        ],
    ),
    (
        "fleet",
        &[
            ("servers", "nats"),
            ("ca", "nats-ca"),
            ("creds", "nats-creds"),
            ("partitions", "partitions"),
            ("group", "group"),
            ("lateness", "lateness"),
            ("node_timeout", "node-timeout"),
            ("retention", "retention"),
            ("max_buffered", "max-buffered"),
        ],
    ),
    (
        "publish",
        &[
            ("servers", "publish"),
            ("ca", "publish-ca"),
            ("creds", "publish-creds"),
            ("node", "publish-node"),
            ("queue", "publish-queue"),
            ("retention", "publish-retention"),
        ],
    ),
    (
        "block",
        &[
            ("mode", "block"),
            ("detectors", "block-detector"),
            ("ttl", "block-ttl"),
            ("max_ttl", "block-max-ttl"),
            ("max_per_minute", "block-max-per-minute"),
            ("allow", "block-allow"),
            ("control_socket", "control-socket"),
        ],
    ),
    (
        "outputs",
        &[
            ("transactions", "transactions"),
            ("transactions_format", "transactions-format"),
            ("alerts", "alerts"),
            ("file_mode", "file-mode"),
            ("node_name", "node-name"),
        ],
    ),
];

/// A config file that cannot be used.
#[derive(Debug)]
pub struct ConfigError {
    path: PathBuf,
    line: Option<usize>,
    reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A loaded config file: the flags it sets, and where each came from.
#[derive(Debug)]
pub struct Config {
    path: PathBuf,
    /// `(flag, value, line)`; value `None` for a switch.
    flags: Vec<(&'static str, Option<String>, usize)>,
}

/// 1-based line of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// Line of `key` inside `[section]`, found in the text (TOML's table model
/// keeps no positions).
fn key_line(text: &str, section: &str, key: Option<&str>) -> usize {
    let header = format!("[{section}]");
    let start = text.find(&header).unwrap_or(0);
    let Some(key) = key else {
        return line_of(text, start);
    };
    let at = text[start..]
        .lines()
        .scan(start, |pos, l| {
            let here = *pos;
            *pos += l.len() + 1;
            Some((here, l))
        })
        .find(|(_, l)| l.trim_start().split(['=', ' ']).next() == Some(key))
        .map_or(start, |(at, _)| at);
    line_of(text, at)
}

impl Config {
    /// Reads and checks `path`.
    ///
    /// # Errors
    /// Unreadable file, TOML syntax, an unknown section or key, or a value of
    /// the wrong shape (a table where a value belongs).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |line, reason: String| ConfigError {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| err(None, format!("cannot read: {e}")))?;
        let table: Table = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start));
            err(line, e.message().to_owned())
        })?;
        let mut flags = Vec::new();
        for (section, body) in &table {
            let Some((_, keys)) = KEYS.iter().find(|(s, _)| *s == section) else {
                let known: Vec<_> = KEYS.iter().map(|(s, _)| *s).collect();
                let reason = format!("unknown section [{section}] (known: {})", known.join(", "));
                return Err(err(Some(key_line(&text, section, None)), reason));
            };
            let Value::Table(body) = body else {
                return Err(err(
                    Some(key_line(&text, section, None)),
                    format!("`{section}` must be a [section]"),
                ));
            };
            for (key, value) in body {
                let line = key_line(&text, section, Some(key));
                let Some((_, flag)) = keys.iter().find(|(k, _)| *k == key) else {
                    let known: Vec<_> = keys.iter().map(|(k, _)| *k).collect();
                    let reason = format!(
                        "unknown key `{key}` in [{section}] (known: {})",
                        known.join(", ")
                    );
                    return Err(err(Some(line), reason));
                };
                push(&mut flags, flag, key, value, line).map_err(|r| err(Some(line), r))?;
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            flags,
        })
    }

    /// `argv` with the file's flags inserted after the subcommand (`argv[1]`),
    /// leaving out those the command line sets itself and those the
    /// subcommand does not take (`accepts` false: a node's file names its
    /// interfaces, which `replay` has no use for).
    pub fn merge(&self, argv: &[OsString], accepts: impl Fn(&str) -> bool) -> Vec<OsString> {
        let given = |flag: &str| {
            argv.iter().any(|a| {
                a.to_str().is_some_and(|a| {
                    a.strip_prefix("--")
                        .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
                })
            })
        };
        let mut out: Vec<OsString> = argv.iter().take(2).cloned().collect();
        for (flag, value, _) in &self.flags {
            if accepts(flag) && !given(flag) {
                out.push(format!("--{flag}").into());
                out.extend(value.iter().map(OsString::from));
            }
        }
        out.extend(argv.iter().skip(2).cloned());
        out
    }

    /// The error for a value clap refused: the file's line of the flag,
    /// when the flag came from the file.
    pub fn locate(&self, flag: &str, reason: &str) -> Option<ConfigError> {
        let (_, _, line) = self.flags.iter().find(|(f, _, _)| *f == flag)?;
        Some(ConfigError {
            path: self.path.clone(),
            line: Some(*line),
            reason: reason.to_owned(),
        })
    }
}

/// The flags one key sets.
fn push(
    flags: &mut Vec<(&'static str, Option<String>, usize)>,
    flag: &'static str,
    key: &str,
    value: &Value,
    line: usize,
) -> Result<(), String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        other => Err(format!(
            "`{key}`: expected a string or number, found {}",
            other.type_str()
        )),
    };
    match value {
        Value::Boolean(b) if key == "enabled" => {
            if !b {
                flags.push((flag, None, line));
            }
        }
        Value::Boolean(true) => flags.push((flag, None, line)),
        Value::Boolean(false) => {}
        Value::Array(items) => {
            for item in items {
                flags.push((flag, Some(scalar(item)?), line));
            }
        }
        other => flags.push((flag, Some(scalar(other)?), line)),
    }
    Ok(())
}

/// Parses `argv` with the config file's flags merged in: the file from
/// `--config FILE`, or [`DEFAULT`] for `run` when it exists. At `startup`,
/// clap's own errors (`--help` included) exit as usual; later (a reload)
/// they are returned. A bad value from the file is reported at its line.
/// Returns the file too, to locate later errors.
///
/// # Errors
/// The file cannot be used, or a value from it is refused.
pub fn parse<C: clap::Parser>(
    argv: Vec<OsString>,
    startup: bool,
) -> anyhow::Result<(C, Option<Config>)> {
    let explicit = argv
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| PathBuf::from(&w[1]));
    let default = (argv.get(1).is_some_and(|a| a == "run") && Path::new(DEFAULT).exists())
        .then(|| PathBuf::from(DEFAULT));
    let Some(path) = explicit.or(default) else {
        return Ok((C::parse_from(argv), None));
    };
    let config = Config::load(&path)?;
    // The subcommand's long flags; all, when argv[1] names none.
    let command = C::command();
    let subcommand = argv
        .get(1)
        .and_then(|a| a.to_str())
        .and_then(|name| command.find_subcommand(name));
    let accepts = |flag: &str| {
        subcommand.is_none_or(|c| c.get_arguments().any(|a| a.get_long() == Some(flag)))
    };
    match C::try_parse_from(config.merge(&argv, accepts)) {
        Ok(cli) => Ok((cli, Some(config))),
        Err(e) => {
            let flag = e
                .get(clap::error::ContextKind::InvalidArg)
                .and_then(|v| match v {
                    clap::error::ContextValue::String(s) => s
                        .strip_prefix("--")?
                        .split([' ', '='])
                        .next()
                        .map(str::to_owned),
                    _ => None,
                });
            let reason = e.kind().to_string();
            let detail = e.to_string();
            let detail = detail.as_str();
            let detail = detail
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            match flag.and_then(|f| config.locate(&f, detail)) {
                Some(located) => Err(located.into()),
                None if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => {
                    let missing = match e.get(clap::error::ContextKind::InvalidArg) {
                        Some(clap::error::ContextValue::Strings(args)) => args.join(", "),
                        _ => reason,
                    };
                    let keys: Vec<String> = KEYS
                        .iter()
                        .flat_map(|(section, keys)| keys.iter().map(move |(k, f)| (section, k, f)))
                        .filter(|(_, _, f)| missing.contains(&format!("--{f} ")))
                        .map(|(section, k, _)| format!("[{section}] {k}"))
                        .collect();
                    Err(anyhow::anyhow!(
                        "{}: {missing} is required: set {} in the file or pass it on the command line",
                        path.display(),
                        keys.join(", ")
                    ))
                }
                None if startup => e.exit(),
                None => Err(anyhow::anyhow!("{detail}")),
            }
        }
    }
}
