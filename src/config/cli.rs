//! The command-line flags ([`Cli`]), their environment variables, and the text of
//! `promrelay --help`.
//!
//! Defaults live in the `default_value` attributes so `--help` shows them. Every flag of the relay
//! also reads `PROMRELAY_` + its name in upper case with `-` and `.` as `_` (clap's `env`, shown in
//! `--help`), so a Kubernetes manifest can set one from the downward API. Which flags the user set
//! is read from clap's `ValueSource` ([`FlagSources`]): a flag overrides the file only when typed
//! on the command line or set in its variable, and the command line wins over the variable
//! (clap reads a variable only for a flag absent from the command line).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use url::Url;

use super::Place;
use super::units::{ValueError, parse_count, parse_listen, parse_member_num};

/// How often queue writes are fsynced to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// Fsync before answering each push (concurrent pushes share one fsync): survives power loss.
    Always,
    /// Fsync every second and at shutdown: survives a process crash; power loss may lose ~1s.
    #[default]
    Interval,
    /// Leave flushing to the OS: survives a process crash only.
    Never,
}

/// Format of log lines on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The minimal configuration file shown in `--help`; a test loads it, so it stays valid.
macro_rules! example_yaml {
    () => {
        "  storages:
    - url: http://vminsert:8480/insert/0/prometheus/api/v1/write
    - name: mimir
      url: https://mimir.example.com/api/v1/push
      headers: {X-Scope-OrgID: team-a}
      bearer_token_file: /run/secrets/mimir-token
      queue_max_bytes: 4GiB
"
    };
}

#[cfg(test)]
pub(crate) const EXAMPLE_YAML: &str = example_yaml!();

const AFTER_HELP: &str = concat!(
    "Config file (--config FILE), a minimal example:\n\n",
    example_yaml!(),
    "
The file may also hold every flag above under its name with '_' (listen, data_dir, fsync,
queue_max_bytes, max_request_bytes, log_format, scrape_config, cluster_members_count,
cluster_member_num, cluster_replication_factor, max_tenants); a flag given on the command line
wins, and so does one set in its environment variable. --remote-write-url and
--remote-write-multitenant-url add storages with default settings to the file's list.
Environment: every flag above can be set by PROMRELAY_ + its name in upper case with '-' and '.'
as '_' (PROMRELAY_DATA_DIR, PROMRELAY_WEB_CONFIG_FILE), shown as [env: ...]. The command line wins
over the environment, the environment over the file, the file over the default. The URL flags
take several URLs separated by commas, from the command line or one variable.
Per storage: name, url | multitenant_url (a vminsert cluster: one queue per tenant), max_tenants
(100, multitenant only), headers, basic_auth {username, password | password_file},
bearer_token | bearer_token_file, tls {ca_file, cert_file, key_file, insecure_skip_verify},
queue_max_bytes, queue_full (drop_oldest | reject, default drop_oldest), concurrency (1),
max_block_bytes (8MiB), timeout (30s), min_backoff (30ms), max_backoff (5s).
OTLP pushes, as in Prometheus' config: otlp {translation_strategy
(UnderscoreEscapingWithSuffixes | UnderscoreEscapingWithoutSuffixes, default with suffixes),
promote_resource_attributes [attribute, ...]}.
Paths in the file are relative to the file's directory. Unknown keys are errors.
Sizes: 512MiB, 64KiB, 1GiB (powers of 1024), 32MB, 1.5GB (powers of 1000), 1000000 (bytes).
Durations: 100ms, 30s, 1m30s, 5m, 1h."
);

/// promrelay's command-line flags.
///
/// Use [`super::Config::from_args`] rather than parsing this directly: it also reads the file,
/// merges and validates. It is public so the binary can build shell completions or man pages
/// from `<Cli as clap::CommandFactory>::command()`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "promrelay",
    version,
    about = "Disk-durable forwarding proxy for Prometheus remote-write: receives pushes, keeps one disk queue per destination storage, forwards from the queues.",
    long_about = None,
    after_help = AFTER_HELP,
    max_term_width = 100,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Offline tools; without one, promrelay runs the relay
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address for pushes and admin pages: IP:PORT, or :PORT for all interfaces
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8431", value_parser = parse_listen, env = "PROMRELAY_LISTEN")]
    pub listen: SocketAddr,

    /// Directory for the disk queues (one per storage, under queues/)
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./promrelay-data",
        env = "PROMRELAY_DATA_DIR"
    )]
    pub data_dir: PathBuf,

    /// YAML file with settings and storages (see below); flags given here win over it
    #[arg(long, value_name = "FILE", env = "PROMRELAY_CONFIG")]
    pub config: Option<PathBuf>,

    /// When to fsync queue writes
    #[arg(long, value_name = "MODE", value_enum, default_value_t = FsyncMode::Interval, env = "PROMRELAY_FSYNC")]
    pub fsync: FsyncMode,

    /// Largest accepted push request body; bigger pushes get 413
    #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = parse_positive_size, env = "PROMRELAY_MAX_REQUEST_BYTES")]
    pub max_request_bytes: u64,

    /// Log line format on stderr
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text, env = "PROMRELAY_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// TLS, basic-auth users and response headers for this listener, in the exporter-toolkit web
    /// configuration format (as Prometheus' --web.config.file); re-read when it or its files change
    #[arg(
        long = "web.config.file",
        value_name = "FILE",
        help_heading = "Listener",
        env = "PROMRELAY_WEB_CONFIG_FILE"
    )]
    pub web_config_file: Option<PathBuf>,

    /// Ingest requests handled at once; more wait for a slot, then get 429 [default: 2 x CPUs]
    #[arg(long, value_name = "N", value_parser = parse_positive_count, help_heading = "Listener", env = "PROMRELAY_MAX_CONCURRENT_INSERTS")]
    pub max_concurrent_inserts: Option<u32>,

    /// How long an ingest request waits for a free slot before it gets 429 with Retry-After
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration, help_heading = "Listener", env = "PROMRELAY_INSERT_MAX_QUEUE_DURATION")]
    pub insert_max_queue_duration: Duration,

    /// Time a client has for its TLS handshake, and to send a request's headers
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration, help_heading = "Listener", env = "PROMRELAY_HTTP_HEADER_READ_TIMEOUT")]
    pub http_header_read_timeout: Duration,

    /// A connection idle this long (no request in progress) is closed
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_positive_duration, help_heading = "Listener", env = "PROMRELAY_HTTP_IDLE_TIMEOUT")]
    pub http_idle_timeout: Duration,

    /// Largest request line plus headers; bigger gets 431
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = parse_header_bytes, help_heading = "Listener", env = "PROMRELAY_HTTP_MAX_HEADER_BYTES")]
    pub http_max_header_bytes: u64,

    /// Storage to forward to, e.g. http://vminsert:8480/insert/0/prometheus/api/v1/write; repeat
    /// for more, or separate URLs with commas (write a comma inside a URL as %2C)
    // Commas, as vmagent's list flags take them, so one environment variable can name several
    // storages. The value is hidden from --help: a URL may carry a password.
    #[arg(long, value_name = "URL", value_parser = parse_storage_url, value_delimiter = ',', help_heading = "Storages", env = "PROMRELAY_REMOTE_WRITE_URL", hide_env_values = true)]
    pub remote_write_url: Vec<Url>,

    /// vminsert cluster to forward to, e.g. http://vminsert:8480: each tenant's data goes to its own
    /// queue and to URL/insert/ACCOUNT:PROJECT/prometheus/api/v1/write; repeat for more, or
    /// separate URLs with commas
    #[arg(long, value_name = "URL", value_parser = parse_storage_url, value_delimiter = ',', help_heading = "Storages", env = "PROMRELAY_REMOTE_WRITE_MULTITENANT_URL", hide_env_values = true)]
    pub remote_write_multitenant_url: Vec<Url>,

    /// Most tenant queues per multitenant storage, unless the file sets it; a push for one more
    /// tenant gets 503
    #[arg(long, value_name = "N", default_value = "100", value_parser = parse_positive_count, help_heading = "Storages", env = "PROMRELAY_MAX_TENANTS")]
    pub max_tenants: u32,

    /// Disk queue cap per storage, unless the file sets one; beyond it the oldest data is dropped
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_positive_size, help_heading = "Storages", env = "PROMRELAY_QUEUE_MAX_BYTES")]
    pub queue_max_bytes: u64,

    /// Scrape configuration file (Prometheus scrape_configs) for the built-in scraper
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Scraping",
        env = "PROMRELAY_SCRAPE_CONFIG"
    )]
    pub scrape_config: Option<PathBuf>,

    /// Number of promrelay instances sharing the scrape targets
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_positive_count, help_heading = "Scraping", env = "PROMRELAY_CLUSTER_MEMBERS_COUNT")]
    pub cluster_members_count: u32,

    /// This instance's number, 0..N-1, or a name ending in -K such as the pod name promrelay-2
    #[arg(long, value_name = "K", default_value = "0", value_parser = parse_member_num, help_heading = "Scraping", env = "PROMRELAY_CLUSTER_MEMBER_NUM")]
    pub cluster_member_num: u32,

    /// How many instances scrape each target (1 <= R <= N)
    #[arg(long, value_name = "R", default_value = "1", value_parser = parse_positive_count, help_heading = "Scraping", env = "PROMRELAY_CLUSTER_REPLICATION_FACTOR")]
    pub cluster_replication_factor: u32,

    /// The one DNS server dns_sd_configs ask (IP:PORT, UDP and TCP) instead of those in
    /// /etc/resolv.conf, without its search list: for tests, and for split-horizon setups where
    /// discovery must ask another server than the system's (not read from the file)
    #[arg(
        long,
        value_name = "IP:PORT",
        help_heading = "Scraping",
        env = "PROMRELAY_DNS_SD_RESOLVER"
    )]
    pub dns_sd_resolver: Option<std::net::SocketAddr>,

    /// Dropped targets listed per job on /targets and /api/v1/targets (the rest are counted);
    /// each listed one keeps all its discovered labels in memory (vmagent:
    /// -promscrape.maxDroppedTargets)
    #[arg(
        long,
        value_name = "N",
        default_value = "1000",
        help_heading = "Scraping",
        env = "PROMRELAY_SCRAPE_MAX_DROPPED_TARGETS"
    )]
    pub scrape_max_dropped_targets: usize,
}

/// Where each flag's value came from, for merging with the file and for naming the flag in
/// messages.
pub(super) struct FlagSources<'a> {
    matches: &'a ArgMatches,
    command: clap::Command,
}

impl<'a> FlagSources<'a> {
    pub(super) fn new(matches: &'a ArgMatches) -> Self {
        FlagSources {
            matches,
            command: Cli::command(),
        }
    }

    /// True when flag `id` (its field name, like `data_dir`) was typed on the command line or set
    /// in its environment variable: then it wins over the file.
    pub(super) fn given(&self, id: &str) -> bool {
        matches!(
            self.matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    }

    /// Where flag `id` took its value and the name to show for it: `command line` and `--flag`,
    /// `environment` and `PROMRELAY_FLAG`, or for a default `command line` and
    /// `--flag (default)`.
    pub(super) fn origin(&self, id: &str) -> (Place, String) {
        let arg = self.command.get_arguments().find(|a| a.get_id() == id);
        let long = arg
            .and_then(clap::Arg::get_long)
            .map_or_else(|| id.replace('_', "-"), str::to_owned);
        match self.matches.value_source(id) {
            Some(ValueSource::EnvVariable) => {
                let var = arg
                    .and_then(clap::Arg::get_env)
                    .map_or_else(|| env_var_name(&long), |v| v.to_string_lossy().into_owned());
                (Place::Environment, var)
            }
            Some(ValueSource::CommandLine) => (Place::CommandLine, format!("--{long}")),
            _ => (Place::CommandLine, format!("--{long} (default)")),
        }
    }
}

/// The environment variable of the flag `--long`: `PROMRELAY_` + the name in upper case with `-`
/// and `.` as `_`.
pub fn env_var_name(long: &str) -> String {
    let mut name = String::from("PROMRELAY_");
    name.extend(long.chars().map(|c| match c {
        '-' | '.' => '_',
        c => c.to_ascii_uppercase(),
    }));
    name
}

/// When a flag's value was refused and the flag is not on the command line `args`, the
/// environment variable clap read it from (the variable is set and belongs to that flag).
pub(super) fn env_source_of(flag: &str, args: &[std::ffi::OsString]) -> Option<String> {
    let long = flag.strip_prefix("--")?;
    let command = Cli::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    let var = arg.get_env()?;
    let with_value = format!("{flag}=");
    let typed = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .filter_map(|a| a.to_str())
        .any(|a| a == flag || a.starts_with(&with_value));
    (!typed && std::env::var_os(var).is_some()).then(|| var.to_string_lossy().into_owned())
}

/// A subcommand: something other than running the relay.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Check or inspect queue directories offline (read-only: safe beside a running promrelay)
    #[command(subcommand)]
    Queue(QueueCommand),
}

/// `promrelay queue ...`: the offline queue tools. A PATH is a data directory (all the queues under
/// its queues/) or one queue directory.
#[derive(Clone, Debug, PartialEq, Eq, Subcommand)]
pub enum QueueCommand {
    /// Check every byte: per chunk file its valid blocks and each damaged byte range.
    /// Exit status 0 when all is intact, 1 when anything is damaged, 2 when a PATH is not a queue
    Verify {
        /// Data directory or queue directory
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
    /// Show chunks, pending blocks and bytes, the position, the oldest and newest block times,
    /// and what the size cap would drop next. Exit status 2 when a PATH is not a queue
    Inspect {
        /// Data directory or queue directory
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
        /// One JSON array of queue objects on stdout
        #[arg(long)]
        json: bool,
    },
}

fn parse_positive_size(s: &str) -> Result<u64, ValueError> {
    s.parse::<super::units::PositiveSize>().map(|p| p.0)
}

fn parse_positive_duration(s: &str) -> Result<Duration, ValueError> {
    s.parse::<super::units::PositiveDuration>().map(|d| d.0)
}

/// hyper's read buffer, which bounds the head, cannot be smaller than 8 KiB.
fn parse_header_bytes(s: &str) -> Result<u64, ValueError> {
    let n = parse_positive_size(s)?;
    if n < 8192 {
        return Err(ValueError::Size {
            text: s.to_owned(),
            why: "must be at least 8KiB".to_owned(),
        });
    }
    Ok(n)
}

/// vmagent's default for `-maxConcurrentInserts`: twice the CPUs.
pub(super) fn default_max_concurrent_inserts() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
}

fn parse_positive_count(s: &str) -> Result<u32, ValueError> {
    parse_count(s, 1)
}

/// Parses and checks a storage URL: `http` or `https`, with a host.
pub(crate) fn parse_storage_url(text: &str) -> Result<Url, ValueError> {
    let url = Url::parse(text.trim()).map_err(|e| ValueError::StorageUrl {
        shown: mask_userinfo(text),
        why: e.to_string(),
    })?;
    let bad = |why: String| ValueError::StorageUrl {
        shown: super::storage::redact_url(&url),
        why,
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "scheme must be http or https, not {:?}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host".to_owned()));
    }
    if url.fragment().is_some() {
        return Err(bad(
            "a #fragment is never sent to the server; remove it".to_owned()
        ));
    }
    Ok(url)
}

/// `text` with anything between `://` and the last `@` masked, for echoing a URL that did not
/// parse (and so cannot be redacted structurally) without echoing its password.
fn mask_userinfo(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_owned();
    };
    match text[start..].rfind('@') {
        Some(at) => format!(
            "{}{}{}",
            &text[..start],
            super::storage::REDACTED,
            &text[start + at..]
        ),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_shows_every_flag_with_its_default_and_the_yaml_example() {
        // Unwrapped, so the test does not depend on the terminal it runs in.
        let help = Cli::command().term_width(0).render_help().to_string();
        for expected in [
            "--listen <ADDR>",
            "[default: 127.0.0.1:8431]",
            "[default: ./promrelay-data]",
            "--remote-write-url <URL>",
            "--fsync <MODE>",
            "[default: interval]",
            "--queue-max-bytes <SIZE>",
            "[default: 1GiB]",
            "--max-request-bytes <SIZE>",
            "[default: 32MiB]",
            "--log-format <FORMAT>",
            "[default: text]",
            "--config <FILE>",
            "--scrape-config <FILE>",
            "--cluster-members-count <N>",
            "--cluster-member-num <K>",
            "--cluster-replication-factor <R>",
            "storages:",
            "- url: http://vminsert:8480",
        ] {
            assert!(help.contains(expected), "help lacks {expected:?}:\n{help}");
        }
    }

    /// The relay's flags: every argument of the top-level command but help, version and the
    /// subcommands' own.
    fn relay_flags() -> Vec<clap::Arg> {
        Cli::command()
            .get_arguments()
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .cloned()
            .collect()
    }

    #[test]
    fn every_flag_has_its_promrelay_environment_variable() {
        let flags = relay_flags();
        assert!(
            flags.len() >= 20,
            "the walk found the flags: {}",
            flags.len()
        );
        for arg in flags {
            let long = arg.get_long().expect("every relay argument is a --flag");
            let expected = env_var_name(long);
            assert_eq!(
                arg.get_env().map(|v| v.to_string_lossy().into_owned()),
                Some(expected.clone()),
                "--{long} reads {expected}"
            );
        }
    }

    #[test]
    fn help_names_the_environment_variable_of_every_flag() {
        let help = Cli::command().term_width(0).render_help().to_string();
        for arg in relay_flags() {
            let var = env_var_name(arg.get_long().expect("a --flag"));
            assert!(help.contains(&format!("[env: {var}")), "help lacks {var}");
        }
    }

    #[test]
    fn environment_variable_names_turn_dashes_and_dots_into_underscores() {
        assert_eq!(
            env_var_name("cluster-member-num"),
            "PROMRELAY_CLUSTER_MEMBER_NUM"
        );
        assert_eq!(env_var_name("web.config.file"), "PROMRELAY_WEB_CONFIG_FILE");
    }

    #[test]
    fn storage_url_flags_take_several_urls_separated_by_commas() {
        let cli = Cli::try_parse_from([
            "promrelay",
            "--remote-write-url",
            "http://a:8428/api/v1/write,http://b:8428/api/v1/write?x=1%2C2",
            "--remote-write-url",
            "http://c:8428/api/v1/write",
        ])
        .unwrap();
        let urls: Vec<&str> = cli.remote_write_url.iter().map(Url::as_str).collect();
        assert_eq!(
            urls,
            [
                "http://a:8428/api/v1/write",
                "http://b:8428/api/v1/write?x=1%2C2",
                "http://c:8428/api/v1/write"
            ]
        );
    }

    #[test]
    fn help_defaults_match_the_constants_used_by_the_file() {
        let cli = Cli::try_parse_from(["promrelay"]).unwrap();
        assert_eq!(
            cli.queue_max_bytes,
            super::super::storage::DEFAULT_QUEUE_MAX_BYTES
        );
        assert_eq!(cli.max_request_bytes, 32 << 20);
        assert_eq!(cli.fsync, FsyncMode::default());
        assert_eq!(cli.log_format, LogFormat::default());
    }

    #[test]
    fn queue_subcommand_needs_no_storage_and_loads_no_configuration() {
        use super::super::Invocation;
        let parsed = Invocation::from_args(["promrelay", "queue", "inspect", "--json", "/d", "/e"]);
        assert_eq!(
            parsed.unwrap(),
            Invocation::Queue(QueueCommand::Inspect {
                paths: vec!["/d".into(), "/e".into()],
                json: true
            })
        );
        assert!(super::super::Config::from_args(["promrelay", "queue", "verify", "/d"]).is_err());
    }

    #[test]
    fn queue_tools_need_a_path_and_do_not_mix_with_relay_flags() {
        assert!(Cli::try_parse_from(["promrelay", "queue", "verify"]).is_err());
        assert!(
            Cli::try_parse_from(["promrelay", "--fsync", "always", "queue", "verify", "/d"])
                .is_err()
        );
        assert_eq!(
            Cli::try_parse_from(["promrelay", "--fsync", "always"])
                .unwrap()
                .command,
            None
        );
    }

    #[test]
    fn storage_url_must_be_http_or_https_with_a_host() {
        assert!(parse_storage_url("http://vm:8428/api/v1/write").is_ok());
        assert!(parse_storage_url("https://vm/api/v1/push").is_ok());
        assert!(
            parse_storage_url("ftp://vm/x")
                .unwrap_err()
                .to_string()
                .contains("http or https")
        );
        assert!(parse_storage_url("vm:8428/api/v1/write").is_err());
        assert!(parse_storage_url("http://").is_err());
        assert!(parse_storage_url("not a url").is_err());
    }

    #[test]
    fn storage_url_error_does_not_show_the_password() {
        let err = parse_storage_url("ftp://u:hunter2@vm/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse_storage_url("http://u:hunter2@vm:99999/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
