//! Configuration: command-line flags and the optional YAML file (`--config`), merged and validated
//! into one [`Config`] at start-up.
//!
//! # Owns
//! - The flags ([`Cli`], whose `--help` documents each flag, its default and a YAML example; its
//!   subcommands, [`Command`], name the offline tools and their arguments) and
//!   the file format: the flags' settings under their names with `_`, plus `storages:` and
//!   `otlp:` (the raw
//!   structs in `file.rs` are the reference; unknown keys are errors).
//! - Merging: a scalar flag given on the command line wins over its environment variable
//!   (`PROMRELAY_...`), the variable over the file, the file over the default. `--remote-write-url` adds storages with default settings after the file's.
//!   `--queue-max-bytes` (or the file's top-level `queue_max_bytes`) applies to storages that do
//!   not set their own.
//! - Validation, including reading secret files (`password_file`, `bearer_token_file`) into the
//!   config and checking TLS files can be opened.
//! - The storage id ([`StorageConfig::id`]): the frozen name of each queue directory.
//! - The web configuration file (`--web.config.file`, exporter-toolkit's format): `web.rs` loads
//!   and checks it, `web_values.rs` parses its Go TLS names, bcrypt hashes and durations, and
//!   `x509.rs` reads a certificate's validity dates.
//!
//! # Guarantees
//! - Every failure is one [`ConfigError`] whose `Display` is one line naming where (the file and
//!   line, or `command line`), the key or flag, and what is wrong.
//! - A loaded `Config` is internally consistent: at least one storage, no two storages sharing a
//!   queue directory, cluster member number below the member count, `min_backoff <= max_backoff`.
//! - No password, token or header value appears in any `Debug` output ([`Secret`]), nor in
//!   [`StorageConfig::redacted_url`] or any error message.
//!
//! # Must not
//! - Be read by hot paths per request: callers copy what they need (sizes, durations, a built
//!   `Authorization` header) into their own state at start-up.
//! - Touch the queues or the network; the only I/O is reading the files the config names.
//!
//! # Use from the binary
//! ```no_run
//! use promrelay::config::Invocation;
//! fn main() -> std::process::ExitCode {
//!     match Invocation::from_args(std::env::args_os()) {
//!         Ok(Invocation::Run(cfg)) => drop(cfg), // ... run the relay with *cfg ...
//!         Ok(Invocation::Queue(command)) => drop(command), // ... the offline tools; no config loaded
//!         Err(e) => return e.report(),
//!     }
//!     std::process::ExitCode::SUCCESS
//! }
//! ```
//! [`ConfigError::report`] prints `--help`/`--version` to stdout and gives status 0 (clap's
//! behaviour), and prints any error as one line on stderr and gives status 2.

mod cli;
mod error;
mod file;
mod file_refs;
mod storage;
#[cfg(test)]
mod tests;
mod units;
mod web;
mod web_values;
mod x509;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches};

use crate::util::one_line;

use cli::FlagSources;
pub use cli::{Cli, Command, FsyncMode, LogFormat, QueueCommand, env_var_name};
pub use error::{ConfigError, Place};
pub use file::MAX_CONCURRENCY;
pub use file::ReadFileError;
pub use file_refs::FileRefError;
pub use storage::{
    BasicAuth, DEFAULT_CONCURRENCY, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_BLOCK_BYTES,
    DEFAULT_MAX_TENANTS, DEFAULT_MIN_BACKOFF, DEFAULT_QUEUE_MAX_BYTES, DEFAULT_TIMEOUT, QueueFull,
    REDACTED, Secret, StorageConfig, TlsConfig,
};
pub use units::{
    ValueError, format_duration, format_go_duration, format_size, parse_duration,
    parse_go_duration, parse_size,
};
pub use web::{
    ClientAuth, PasswordHash, RateLimit, TlsServerConfig, TlsVersion, WebConfig, is_tls13_suite,
    load_web_config, parse_web_config,
};

use file::{FileConfig, RelayConfigResolver};
pub(crate) use file::{key_path_of, read_bounded, yaml_parts};
pub(crate) use file_refs::FileRefs;

/// Everything promrelay needs to start, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Address of the HTTP server (pushes and admin pages).
    pub listen: SocketAddr,
    /// Root of the on-disk state; queues live in `<data_dir>/queues/<storage id>/`.
    pub data_dir: PathBuf,
    /// When queue writes are fsynced.
    pub fsync: FsyncMode,
    /// Largest accepted push request body, in bytes.
    pub max_request_bytes: u64,
    /// Log line format.
    pub log_format: LogFormat,
    /// Destination storages, file entries first, then `--remote-write-url`s, in the order given.
    /// Never empty; ids are unique.
    pub storages: Vec<StorageConfig>,
    /// Built-in scraper settings.
    pub scrape: ScrapeSettings,
    /// The `--config` file, if one was given (for reloads and the status page).
    pub config_file: Option<PathBuf>,
    /// How OTLP pushes are translated (the file's `otlp:` section).
    pub otlp: OtlpConfig,
    /// The listener's own settings: web config file, limits and timeouts.
    pub listener: ListenerSettings,
}

/// How the listener treats clients: TLS and users (`--web.config.file`), overload and slow-client
/// limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSettings {
    /// `--web.config.file`, loaded and checked at start-up; the listener re-reads it on change.
    pub web: Option<WebConfig>,
    /// Ingest requests served at once (`--max-concurrent-inserts`); more wait, then get 429.
    pub max_concurrent_inserts: usize,
    /// How long an ingest request waits for a free slot before 429 (`--insert-max-queue-duration`).
    pub insert_max_queue_duration: std::time::Duration,
    /// Time a client has to send a request's headers, and a TLS handshake to finish.
    pub header_read_timeout: std::time::Duration,
    /// A connection with no traffic and no request in progress for this long is closed.
    pub idle_timeout: std::time::Duration,
    /// Largest request head (request line and headers) accepted; bigger gets 431.
    pub max_header_bytes: usize,
}

/// The file's `otlp:` section, under Prometheus' own key names and values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtlpConfig {
    /// `translation_strategy`: `UnderscoreEscapingWithSuffixes` (Prometheus' default) or
    /// `UnderscoreEscapingWithoutSuffixes` (names as sent, only escaped: vmagent's default).
    pub translation_strategy: OtlpTranslationStrategy,
    /// `promote_resource_attributes`: resource attributes copied onto every series.
    pub promote_resource_attributes: Vec<String>,
}

/// How OTLP metric names become Prometheus names. Prometheus' UTF-8 strategies are refused:
/// remote-write 1.0 storages take only legacy names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub enum OtlpTranslationStrategy {
    /// Escaped, with unit suffixes, `_total` and `_ratio`.
    #[default]
    UnderscoreEscapingWithSuffixes,
    /// Escaped, without suffixes.
    UnderscoreEscapingWithoutSuffixes,
}

/// Built-in scraper settings (the scraper itself parses the scrape config file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeSettings {
    /// The Prometheus-style scrape configuration file; `None` means no scraping. Checked readable.
    pub config_file: Option<PathBuf>,
    /// How scrape targets are shared among promrelay instances.
    pub cluster: ClusterConfig,
    /// The one name server `dns_sd_configs` ask (`--dns-sd-resolver`); `None`: the system's.
    pub dns_sd_resolver: Option<std::net::SocketAddr>,
    /// How many dropped targets each job lists (`--scrape-max-dropped-targets`).
    pub max_dropped_targets: usize,
}

/// Sharding of scrape targets among instances: target `t` is scraped by the `replication_factor`
/// members following `hash(t) % members_count`. Invariant: `member_num < members_count` and
/// `1 <= replication_factor <= members_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Number of instances, N >= 1.
    pub members_count: u32,
    /// This instance, 0..N-1.
    pub member_num: u32,
    /// Instances scraping each target, 1..=N.
    pub replication_factor: u32,
}

/// What the command line asks for: run the relay, or one of the offline tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// No subcommand: run the relay with this configuration.
    Run(Box<Config>),
    /// `promrelay queue ...`: examine queue directories; no configuration is loaded.
    Queue(QueueCommand),
}

impl Invocation {
    /// Parses `args` (the first item is the program name, as in `std::env::args_os()`). Without a
    /// subcommand, reads, merges and validates the configuration as [`Config::from_args`] does.
    pub fn from_args<I, T>(args: I) -> Result<Invocation, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let matches = Cli::command()
            .try_get_matches_from(&args)
            .map_err(|e| flag_error(e, &args))?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| flag_error(e, &args))?;
        if let Some(Command::Queue(command)) = cli.command {
            return Ok(Invocation::Queue(command));
        }
        let sources = FlagSources::new(&matches);
        let file = match &cli.config {
            Some(path) => Some((path.clone(), file::load(path)?)),
            None => None,
        };
        merge(&cli, &sources, file).map(|c| Invocation::Run(Box::new(c)))
    }
}

impl Config {
    /// Parses `args` (the first item is the program name, as in `std::env::args_os()`), reads the
    /// `--config` file and any secret files it names, merges and validates.
    ///
    /// `--help` and `--version` come back as [`ConfigError::HelpOrVersion`]; see
    /// [`ConfigError::report`]. A subcommand is an error here: use [`Invocation::from_args`].
    pub fn from_args<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        match Invocation::from_args(args)? {
            Invocation::Run(config) => Ok(*config),
            Invocation::Queue(_) => Err(ConfigError::Flag(
                "a subcommand (queue) is not a relay configuration".to_owned(),
            )),
        }
    }
}

/// Where a merged value came from, for messages that involve two settings.
struct Origin {
    place: Place,
    key: String,
}

impl Origin {
    /// The flag `id` (its field name), from the command line, its variable or its default.
    fn flag(sources: &FlagSources<'_>, id: &str) -> Self {
        let (place, key) = sources.origin(id);
        Origin { place, key }
    }
}

/// Combines the flags and the file: a flag typed on the command line or set in its environment
/// variable wins, then the file, then the flag's default.
fn merge(
    cli: &Cli,
    sources: &FlagSources<'_>,
    file: Option<(PathBuf, FileConfig)>,
) -> Result<Config, ConfigError> {
    let given = |id: &str| sources.given(id);
    let (file_path, raw) = match file {
        Some((path, raw)) => (Some(path), raw),
        None => (None, FileConfig::default()),
    };
    let resolver = file_path
        .as_deref()
        .map(|file| RelayConfigResolver { file });

    let pick = |id: &str, flag: u64, file: Option<u64>| match file {
        Some(v) if !given(id) => v,
        _ => flag,
    };
    let listen = match raw.listen {
        Some(l) if !given("listen") => l.0,
        _ => cli.listen,
    };
    let fsync = match raw.fsync {
        Some(f) if !given("fsync") => f,
        _ => cli.fsync,
    };
    let log_format = match raw.log_format {
        Some(f) if !given("log_format") => f,
        _ => cli.log_format,
    };
    let max_request_bytes = pick(
        "max_request_bytes",
        cli.max_request_bytes,
        raw.max_request_bytes.map(|s| s.0),
    );
    let queue_max_bytes = pick(
        "queue_max_bytes",
        cli.queue_max_bytes,
        raw.queue_max_bytes.map(|s| s.0),
    );
    let max_tenants = match raw.max_tenants {
        Some(n) if !given("max_tenants") => n.0,
        _ => cli.max_tenants,
    };

    let data_dir = match (&raw.data_dir, &resolver) {
        (Some(d), Some(r)) if !given("data_dir") => {
            if d.value.as_os_str().is_empty() {
                return Err(invalid(r.place(d), "data_dir", "is empty"));
            }
            r.path(&d.value)
        }
        _ => {
            if cli.data_dir.as_os_str().is_empty() {
                let (place, key) = sources.origin("data_dir");
                return Err(invalid(place, &key, "is empty"));
            }
            cli.data_dir.clone()
        }
    };

    let scrape = scrape_config(cli, sources, &raw, resolver.as_ref())?;

    let mut storages = Vec::new();
    // Storage id -> where it was first configured, to report both places of a duplicate.
    let mut seen_ids: HashMap<String, String> = HashMap::new();
    let mut seen_names: HashMap<String, String> = HashMap::new();
    if let Some(r) = &resolver {
        for (index, entry) in raw.storages.iter().enumerate() {
            let storage = r.storage(index, entry, queue_max_bytes, max_tenants)?;
            let (url_place, url_key) = entry.url_place(r);
            let here = format!("{url_place} (storages[{index}].{url_key})");
            if let Some(name) = &storage.name
                && let Some(first) = seen_names.insert(name.clone(), here.clone())
            {
                return Err(invalid(
                    url_place,
                    &format!("storages[{index}].name"),
                    &format!("name {name:?} is already used by {first}"),
                ));
            }
            check_unique(&mut seen_ids, &storage, here)?;
            storages.push(storage);
        }
    }
    for (index, url) in cli.remote_write_url.iter().enumerate() {
        let storage = StorageConfig::with_defaults(url.clone(), queue_max_bytes);
        check_unique(
            &mut seen_ids,
            &storage,
            format!("--remote-write-url #{}", index + 1),
        )?;
        storages.push(storage);
    }
    for (index, url) in cli.remote_write_multitenant_url.iter().enumerate() {
        let mut storage = StorageConfig::with_defaults(url.clone(), queue_max_bytes);
        storage.multitenant = true;
        storage.max_tenants = max_tenants;
        check_unique(
            &mut seen_ids,
            &storage,
            format!("--remote-write-multitenant-url #{}", index + 1),
        )?;
        storages.push(storage);
    }
    if storages.is_empty() {
        return Err(ConfigError::NoStorage);
    }

    let web = match &cli.web_config_file {
        Some(path) => Some(load_web_config(path)?),
        None => None,
    };
    Ok(Config {
        listen,
        data_dir,
        fsync,
        max_request_bytes,
        log_format,
        storages,
        scrape,
        config_file: file_path,
        otlp: raw
            .otlp
            .map(file::FileOtlp::into_config)
            .unwrap_or_default(),
        listener: ListenerSettings {
            web,
            max_concurrent_inserts: cli
                .max_concurrent_inserts
                .map_or_else(cli::default_max_concurrent_inserts, |n| n as usize),
            insert_max_queue_duration: cli.insert_max_queue_duration,
            header_read_timeout: cli.http_header_read_timeout,
            idle_timeout: cli.http_idle_timeout,
            max_header_bytes: usize::try_from(cli.http_max_header_bytes).unwrap_or(usize::MAX),
        },
    })
}

fn invalid(place: Place, key: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        place,
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Refuses a second storage with the same id: both would write one queue directory.
fn check_unique(
    seen: &mut HashMap<String, String>,
    storage: &StorageConfig,
    here: String,
) -> Result<(), ConfigError> {
    match seen.get(&storage.id()) {
        Some(first) => Err(ConfigError::DuplicateUrl {
            url: one_line(&storage.redacted_url()),
            first: first.clone(),
            second: here,
        }),
        None => {
            seen.insert(storage.id(), here);
            Ok(())
        }
    }
}

fn scrape_config(
    cli: &Cli,
    sources: &FlagSources<'_>,
    raw: &FileConfig,
    resolver: Option<&RelayConfigResolver<'_>>,
) -> Result<ScrapeSettings, ConfigError> {
    let given = |id: &str| sources.given(id);
    // Each cluster setting with where it came from, so a conflict names both ends.
    let setting = |id: &str, flag: u32, file: Option<(u32, Origin)>| match file {
        Some(from_file) if !given(id) => from_file,
        _ => (flag, Origin::flag(sources, id)),
    };
    let from_file = |key: &str, value: u32, place: Place| {
        (
            value,
            Origin {
                place,
                key: key.to_owned(),
            },
        )
    };
    let (count, count_origin) = setting(
        "cluster_members_count",
        cli.cluster_members_count,
        raw.cluster_members_count
            .as_ref()
            .zip(resolver)
            .map(|(v, r)| from_file("cluster_members_count", v.value.0, r.place(v))),
    );
    let (member, member_origin) = setting(
        "cluster_member_num",
        cli.cluster_member_num,
        raw.cluster_member_num
            .as_ref()
            .zip(resolver)
            .map(|(v, r)| from_file("cluster_member_num", v.value.0, r.place(v))),
    );
    let (replication, replication_origin) = setting(
        "cluster_replication_factor",
        cli.cluster_replication_factor,
        raw.cluster_replication_factor
            .as_ref()
            .zip(resolver)
            .map(|(v, r)| from_file("cluster_replication_factor", v.value.0, r.place(v))),
    );
    if member >= count {
        return Err(ConfigError::Invalid {
            place: member_origin.place,
            key: member_origin.key,
            reason: format!(
                "member {member} does not exist: {} is {count}, so members are numbered 0 to {}",
                count_origin.key,
                count - 1
            ),
        });
    }
    if replication > count {
        return Err(ConfigError::Invalid {
            place: replication_origin.place,
            key: replication_origin.key,
            reason: format!(
                "{replication} is more than {} ({count}): a target cannot be scraped by more members than exist",
                count_origin.key
            ),
        });
    }

    let config_file = match (&raw.scrape_config, resolver) {
        (Some(f), Some(r)) if !given("scrape_config") => {
            let path = r.path(&f.value);
            check_readable(&path, r.place(f), "scrape_config")?;
            Some(path)
        }
        _ => match &cli.scrape_config {
            Some(path) => {
                let (place, key) = sources.origin("scrape_config");
                check_readable(path, place, &key)?;
                Some(path.clone())
            }
            None => None,
        },
    };

    Ok(ScrapeSettings {
        dns_sd_resolver: cli.dns_sd_resolver,
        max_dropped_targets: cli.scrape_max_dropped_targets,
        config_file,
        cluster: ClusterConfig {
            members_count: count,
            member_num: member,
            replication_factor: replication,
        },
    })
}

/// Checks that `path`, set by `key` at `place`, is a regular file that can be opened.
fn check_readable(path: &Path, place: Place, key: &str) -> Result<(), ConfigError> {
    file_refs::check_regular_file(path).map_err(|e| ConfigError::Invalid {
        place,
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// Turns a clap error into [`ConfigError`]: help and version pass through for clap to print;
/// real errors become one line (clap's own rendering spans several, with usage and tips). A value
/// that came from a flag's environment variable (the flag is not among `args`) is reported as
/// [`ConfigError::Environment`], naming the variable.
fn flag_error(e: clap::Error, args: &[OsString]) -> ConfigError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use std::error::Error as _;

    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return ConfigError::HelpOrVersion(e);
    }
    let flag = match e.get(ContextKind::InvalidArg) {
        // "--queue-max-bytes <SIZE>" -> "--queue-max-bytes"
        Some(ContextValue::String(arg)) => arg.split(' ').next().map(str::to_owned),
        _ => None,
    };
    let mut message = match (e.kind(), &flag, e.source()) {
        // Our own value parsers already say what is wrong and echo the value safely
        // (without passwords); clap's first line would echo the raw value.
        (ErrorKind::ValueValidation, Some(flag), Some(source)) => format!("{flag}: {source}"),
        _ => {
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            first.strip_prefix("error: ").unwrap_or(first).to_owned()
        }
    };
    if let Some(ContextValue::Strings(values)) = e.get(ContextKind::ValidValue)
        && !values.is_empty()
    {
        message.push_str(&format!(" (possible values: {})", values.join(", ")));
    }
    for kind in [ContextKind::SuggestedArg, ContextKind::SuggestedValue] {
        if let Some(ContextValue::String(s)) = e.get(kind) {
            message.push_str(&format!(" (did you mean '{s}'?)"));
        }
    }
    match flag.as_deref().and_then(|f| cli::env_source_of(f, args)) {
        Some(var) => ConfigError::Environment {
            var,
            reason: one_line(&message),
        },
        None => ConfigError::Flag(one_line(&message)),
    }
}
