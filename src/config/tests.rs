//! Loading tests: flags and YAML files written to a temporary directory, checked by the value
//! they produce or by the exact wording of the one-line error.

use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use super::*;

/// A temporary directory holding a config file and whatever files it names.
struct Dir(TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().expect("create temp dir"))
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }

    /// Writes `yaml` as `promrelay.yml` and loads it with `extra` flags.
    fn load(&self, yaml: &str, extra: &[&str]) -> Result<Config, ConfigError> {
        let path = self.write("promrelay.yml", yaml);
        let mut args = vec![
            "promrelay".to_owned(),
            "--config".to_owned(),
            path.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Config::from_args(args)
    }

    /// Like [`Dir::load`], expecting an error; returns its one line.
    fn error(&self, yaml: &str, extra: &[&str]) -> String {
        match self.load(yaml, extra) {
            Ok(cfg) => panic!("expected an error, got {cfg:?}"),
            Err(e) => one_line_of(e),
        }
    }
}

fn load(args: &[&str]) -> Result<Config, ConfigError> {
    Config::from_args(std::iter::once("promrelay").chain(args.iter().copied()))
}

fn error(args: &[&str]) -> String {
    match load(args) {
        Ok(cfg) => panic!("expected an error, got {cfg:?}"),
        Err(e) => one_line_of(e),
    }
}

fn one_line_of(e: ConfigError) -> String {
    assert!(!e.is_help_or_version(), "unexpected help: {e}");
    let text = e.to_string();
    assert!(!text.contains('\n'), "error is not one line: {text:?}");
    text
}

const VM: &str = "http://vm:8428/api/v1/write";

#[test]
fn defaults_apply_when_only_a_url_is_given() {
    let cfg = load(&["--remote-write-url", VM]).unwrap();
    assert_eq!(cfg.listen, "127.0.0.1:8431".parse().unwrap());
    assert_eq!(cfg.data_dir, PathBuf::from("./promrelay-data"));
    assert_eq!(cfg.fsync, FsyncMode::Interval);
    assert_eq!(cfg.max_request_bytes, 32 * 1024 * 1024);
    assert_eq!(cfg.log_format, LogFormat::Text);
    assert_eq!(cfg.config_file, None);
    assert_eq!(
        cfg.scrape,
        ScrapeSettings {
            config_file: None,
            cluster: ClusterConfig {
                members_count: 1,
                member_num: 0,
                replication_factor: 1
            },
            dns_sd_resolver: None,
            max_dropped_targets: 1000,
        }
    );
    let s = &cfg.storages[0];
    assert_eq!(cfg.storages.len(), 1);
    assert_eq!(s.url.as_str(), VM);
    assert_eq!(s.queue_max_bytes, 1 << 30);
    assert_eq!(s.queue_full, QueueFull::DropOldest);
    assert_eq!(s.concurrency, 1);
    assert_eq!(s.max_block_bytes, 8 << 20);
    assert_eq!(s.timeout, Duration::from_secs(30));
    assert_eq!(s.min_backoff, Duration::from_millis(30));
    assert_eq!(s.max_backoff, Duration::from_secs(5));
    assert_eq!(s.basic_auth, None);
    assert_eq!(s.bearer_token, None);
    assert!(s.headers.is_empty());
}

#[test]
fn flags_set_every_scalar_setting() {
    let cfg = load(&[
        "--listen",
        "0.0.0.0:9000",
        "--data-dir",
        "/var/lib/promrelay",
        "--fsync",
        "always",
        "--queue-max-bytes",
        "512MiB",
        "--max-request-bytes",
        "1.5MB",
        "--log-format",
        "json",
        "--remote-write-url",
        VM,
        "--cluster-members-count",
        "3",
        "--cluster-member-num",
        "2",
        "--cluster-replication-factor",
        "2",
    ])
    .unwrap();
    assert_eq!(cfg.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/promrelay"));
    assert_eq!(cfg.fsync, FsyncMode::Always);
    assert_eq!(cfg.storages[0].queue_max_bytes, 512 << 20);
    assert_eq!(cfg.max_request_bytes, 1_500_000);
    assert_eq!(cfg.log_format, LogFormat::Json);
    assert_eq!(
        cfg.scrape.cluster,
        ClusterConfig {
            members_count: 3,
            member_num: 2,
            replication_factor: 2
        }
    );
}

#[test]
fn several_remote_write_url_flags_make_several_storages_in_order() {
    let cfg = load(&[
        "--remote-write-url",
        VM,
        "--remote-write-url",
        "https://mimir.example/api/v1/push",
    ])
    .unwrap();
    let urls: Vec<&str> = cfg.storages.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(urls, [VM, "https://mimir.example/api/v1/push"]);
}

#[test]
fn no_storage_is_an_error_that_says_how_to_add_one() {
    let err = error(&[]);
    assert!(
        err.contains("--remote-write-url http://host:8428/api/v1/write")
            && err.contains("storages:"),
        "{err}"
    );
}

#[test]
fn file_without_storages_and_no_flag_is_the_no_storage_error() {
    let dir = Dir::new();
    let err = dir.error("listen: 127.0.0.1:9999\n", &[]);
    assert!(err.starts_with("no storage to forward to"), "{err}");
}

#[test]
fn remote_write_url_flags_add_to_file_storages() {
    let dir = Dir::new();
    let cfg = dir
        .load(
            "storages:\n  - url: http://a:8428/api/v1/write\n    concurrency: 2\n",
            &["--remote-write-url", "http://b:8428/api/v1/write"],
        )
        .unwrap();
    let urls: Vec<&str> = cfg.storages.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(
        urls,
        ["http://a:8428/api/v1/write", "http://b:8428/api/v1/write"]
    );
    assert_eq!(cfg.storages[0].concurrency, 2);
    assert_eq!(cfg.storages[1].concurrency, DEFAULT_CONCURRENCY);
}

#[test]
fn file_scalars_apply_when_flags_are_not_given() {
    let dir = Dir::new();
    let cfg = dir
        .load(
            "listen: ':9100'\nfsync: never\nmax_request_bytes: 64KiB\nlog_format: json\n\
             queue_max_bytes: 2GiB\nstorages:\n  - url: http://a/api/v1/write\n",
            &[],
        )
        .unwrap();
    assert_eq!(cfg.listen, "0.0.0.0:9100".parse().unwrap());
    assert_eq!(cfg.fsync, FsyncMode::Never);
    assert_eq!(cfg.max_request_bytes, 64 * 1024);
    assert_eq!(cfg.log_format, LogFormat::Json);
    assert_eq!(cfg.storages[0].queue_max_bytes, 2 << 30);
}

#[test]
fn flags_override_file_scalars() {
    let dir = Dir::new();
    let cfg = dir
        .load(
            "listen: 127.0.0.1:9100\nfsync: never\nmax_request_bytes: 64KiB\nlog_format: json\n\
             queue_max_bytes: 2GiB\nstorages:\n  - url: http://a/api/v1/write\n",
            &[
                "--listen",
                "127.0.0.1:9200",
                "--fsync",
                "always",
                "--max-request-bytes",
                "1MiB",
                "--log-format",
                "text",
                "--queue-max-bytes",
                "100MB",
            ],
        )
        .unwrap();
    assert_eq!(cfg.listen, "127.0.0.1:9200".parse().unwrap());
    assert_eq!(cfg.fsync, FsyncMode::Always);
    assert_eq!(cfg.max_request_bytes, 1 << 20);
    assert_eq!(cfg.log_format, LogFormat::Text);
    assert_eq!(cfg.storages[0].queue_max_bytes, 100_000_000);
}

#[test]
fn flag_equal_to_the_default_still_overrides_the_file() {
    let dir = Dir::new();
    let cfg = dir
        .load(
            "fsync: never\nstorages:\n  - url: http://a/api/v1/write\n",
            &["--fsync", "interval"],
        )
        .unwrap();
    assert_eq!(cfg.fsync, FsyncMode::Interval);
}

#[test]
fn storage_queue_max_bytes_wins_over_the_global_setting() {
    let dir = Dir::new();
    let cfg = dir
        .load(
            "storages:\n  - url: http://a/api/v1/write\n    queue_max_bytes: 10GiB\n  - url: http://b/api/v1/write\n",
            &["--queue-max-bytes", "64MiB", "--remote-write-url", VM],
        )
        .unwrap();
    let caps: Vec<u64> = cfg.storages.iter().map(|s| s.queue_max_bytes).collect();
    assert_eq!(caps, [10 << 30, 64 << 20, 64 << 20]);
}

#[test]
fn every_storage_setting_is_read_from_the_file() {
    let dir = Dir::new();
    dir.write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    let cfg = dir
        .load(
            "storages:
  - name: mimir-eu
    url: https://mimir.example/api/v1/push
    headers:
      X-Scope-OrgID: team-a
    bearer_token: tok
    tls:
      ca_file: ca.pem
      insecure_skip_verify: true
    queue_max_bytes: 3GiB
    queue_full: reject
    concurrency: 4
    max_block_bytes: 2MiB
    timeout: 1m30s
    min_backoff: 100ms
    max_backoff: 10s
",
            &[],
        )
        .unwrap();
    let s = &cfg.storages[0];
    assert_eq!(s.name.as_deref(), Some("mimir-eu"));
    assert_eq!(s.headers["X-Scope-OrgID"].expose(), "team-a");
    assert_eq!(s.bearer_token.as_ref().map(Secret::expose), Some("tok"));
    assert_eq!(s.tls.ca_file, Some(dir.0.path().join("ca.pem")));
    assert!(s.tls.insecure_skip_verify);
    assert_eq!(s.queue_max_bytes, 3 << 30);
    assert_eq!(s.queue_full, QueueFull::Reject);
    assert_eq!(s.concurrency, 4);
    assert_eq!(s.max_block_bytes, 2 << 20);
    assert_eq!(s.timeout, Duration::from_secs(90));
    assert_eq!(s.min_backoff, Duration::from_millis(100));
    assert_eq!(s.max_backoff, Duration::from_secs(10));
}

#[test]
fn same_url_twice_is_an_error_naming_both_places() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a:8428/api/v1/write\n",
        &["--remote-write-url", "http://a:8428/api/v1/write"],
    );
    assert!(err.contains("configured twice"), "{err}");
    assert!(
        err.contains("promrelay.yml:2:") && err.contains("storages[0].url"),
        "{err}"
    );
    assert!(err.contains("--remote-write-url #1"), "{err}");
}

#[test]
fn same_url_twice_in_flags_is_an_error() {
    let err = error(&["--remote-write-url", VM, "--remote-write-url", VM]);
    assert!(
        err.contains("--remote-write-url #1") && err.contains("--remote-write-url #2"),
        "{err}"
    );
}

#[test]
fn same_url_with_other_credentials_is_a_duplicate_and_the_error_hides_passwords() {
    let err = error(&[
        "--remote-write-url",
        "http://u:hunter2@vm:8428/api/v1/write",
        "--remote-write-url",
        "http://u:other@vm:8428/api/v1/write",
    ]);
    assert!(err.contains("configured twice"), "{err}");
    assert!(!err.contains("hunter2") && !err.contains("other@"), "{err}");
}

#[test]
fn unknown_key_in_storage_is_an_error_naming_file_line_and_key() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    concurency: 2\n",
        &[],
    );
    assert!(err.contains("promrelay.yml:3:"), "{err}");
    assert!(err.contains("storages[0].concurency"), "{err}");
    assert!(err.contains("unknown field `concurency`"), "{err}");
    assert!(err.contains("concurrency"), "lists the known keys: {err}");
}

#[test]
fn unknown_top_level_key_is_an_error_naming_file_line_and_key() {
    let dir = Dir::new();
    let err = dir.error("listen: 127.0.0.1:1\nremote_write:\n  - url: x\n", &[]);
    assert!(
        err.contains("promrelay.yml:2:1: remote_write: unknown field `remote_write`"),
        "{err}"
    );
}

#[test]
fn invalid_size_in_file_names_key_line_and_value() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    queue_max_bytes: 12XB\n",
        &[],
    );
    assert!(err.contains("promrelay.yml:3:"), "{err}");
    assert!(err.contains("storages[0].queue_max_bytes"), "{err}");
    assert!(
        err.contains("\"12XB\"") && err.contains("unknown unit"),
        "{err}"
    );
}

#[test]
fn invalid_duration_in_file_names_key_and_value() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    timeout: 30\n",
        &[],
    );
    assert!(
        err.contains("promrelay.yml:3:") && err.contains("storages[0].timeout"),
        "{err}"
    );
    assert!(err.contains("missing unit"), "{err}");
}

#[test]
fn invalid_queue_full_lists_the_allowed_values() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    queue_full: block\n",
        &[],
    );
    assert!(err.contains("storages[0].queue_full"), "{err}");
    assert!(
        err.contains("drop_oldest") && err.contains("reject"),
        "{err}"
    );
}

#[test]
fn invalid_url_in_file_names_key_and_line() {
    let dir = Dir::new();
    let err = dir.error("storages:\n  - url: ftp://a/x\n", &[]);
    assert!(
        err.contains("promrelay.yml:2:") && err.contains("storages[0].url"),
        "{err}"
    );
    assert!(err.contains("http or https"), "{err}");
}

#[test]
fn storage_without_url_is_an_error() {
    let dir = Dir::new();
    let err = dir.error("storages:\n  - name: a\n", &[]);
    assert!(
        err.contains("promrelay.yml:2:")
            && err.contains("storages[0]")
            && err.contains("needs url"),
        "{err}"
    );
}

#[test]
fn multitenant_url_flag_adds_a_multitenant_storage_with_the_default_bound() {
    let cfg = Config::from_args([
        "promrelay",
        "--remote-write-url",
        "http://plain:8428/api/v1/write",
        "--remote-write-multitenant-url",
        "http://vminsert:8480",
    ])
    .unwrap();
    assert_eq!(cfg.storages.len(), 2);
    assert!(!cfg.storages[0].multitenant);
    assert!(cfg.storages[1].multitenant);
    assert_eq!(cfg.storages[1].max_tenants, DEFAULT_MAX_TENANTS);
}

#[test]
fn max_tenants_flag_sets_the_bound_of_flag_storages() {
    let cfg = Config::from_args([
        "promrelay",
        "--remote-write-multitenant-url",
        "http://vminsert:8480",
        "--max-tenants",
        "7",
    ])
    .unwrap();
    assert_eq!(cfg.storages[0].max_tenants, 7);
}

#[test]
fn multitenant_url_in_the_file_makes_a_multitenant_storage_with_its_own_bound() {
    let dir = Dir::new();
    let cfg = dir.load(
        "max_tenants: 20\nstorages:\n  - multitenant_url: http://vminsert:8480\n    max_tenants: 3\n  - multitenant_url: http://other:8480\n",
        &[],
    )
    .unwrap();
    assert!(cfg.storages[0].multitenant);
    assert_eq!(cfg.storages[0].max_tenants, 3);
    assert_eq!(
        cfg.storages[1].max_tenants, 20,
        "the file's top-level default"
    );
}

#[test]
fn storage_with_both_url_and_multitenant_url_is_an_error() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    multitenant_url: http://b:8480\n",
        &[],
    );
    assert!(
        err.contains("promrelay.yml:3:")
            && err.contains("storages[0].multitenant_url")
            && err.contains("not both"),
        "{err}"
    );
}

#[test]
fn max_tenants_on_an_ordinary_storage_is_an_error() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    max_tenants: 5\n",
        &[],
    );
    assert!(
        err.contains("storages[0].max_tenants") && err.contains("multitenant_url"),
        "{err}"
    );
}

#[test]
fn zero_max_tenants_is_an_error() {
    let err = Config::from_args([
        "promrelay",
        "--remote-write-multitenant-url",
        "http://vminsert:8480",
        "--max-tenants",
        "0",
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("--max-tenants"), "{err}");
}

#[test]
fn yaml_syntax_error_names_file_and_line() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n  concurrency: 1\n",
        &[],
    );
    assert!(err.contains("promrelay.yml:3:"), "{err}");
}

#[test]
fn duplicate_key_in_file_is_an_error() {
    let dir = Dir::new();
    let err = dir.error("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", &[]);
    assert!(
        err.contains("promrelay.yml:2:") && err.contains("duplicate") && err.contains("listen"),
        "{err}"
    );
}

#[test]
fn top_level_list_is_an_error() {
    let dir = Dir::new();
    let err = dir.error("- url: http://a/api/v1/write\n", &[]);
    assert!(err.contains("promrelay.yml:1:"), "{err}");
    assert!(err.contains("(top level)"), "{err}");
}

#[test]
fn missing_config_file_is_an_error_naming_it() {
    let dir = Dir::new();
    let path = dir.0.path().join("nope.yml");
    let err = error(&["--config", &path.display().to_string()]);
    assert!(
        err.contains("nope.yml") && err.contains("cannot read config file"),
        "{err}"
    );
}

#[test]
fn empty_config_file_is_an_empty_config() {
    let dir = Dir::new();
    let cfg = dir
        .load("# nothing yet\n", &["--remote-write-url", VM])
        .unwrap();
    assert_eq!(cfg.storages.len(), 1);
    assert_eq!(cfg.config_file, Some(dir.0.path().join("promrelay.yml")));
}

#[test]
fn paths_in_the_file_are_relative_to_the_file() {
    let dir = Dir::new();
    let cfg = dir
        .load(
            "data_dir: data\nstorages:\n  - url: http://a/api/v1/write\n",
            &[],
        )
        .unwrap();
    assert_eq!(cfg.data_dir, dir.0.path().join("data"));
}

#[test]
fn password_file_is_read_at_load_and_trimmed() {
    let dir = Dir::new();
    dir.write("pw", "s3cret\n");
    let cfg = dir
        .load(
            "storages:\n  - url: http://a/api/v1/write\n    basic_auth:\n      username: relay\n      password_file: pw\n",
            &[],
        )
        .unwrap();
    let auth = cfg.storages[0].basic_auth.as_ref().unwrap();
    assert_eq!(auth.username, "relay");
    assert_eq!(auth.password.expose(), "s3cret");
    assert_eq!(auth.password_file, Some(dir.0.path().join("pw")));
}

#[test]
fn unreadable_password_file_is_an_error_naming_that_file() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    basic_auth:\n      username: relay\n      password_file: missing-pw\n",
        &[],
    );
    assert!(err.contains("promrelay.yml:5:"), "{err}");
    assert!(
        err.contains("storages[0].basic_auth.password_file"),
        "{err}"
    );
    assert!(
        err.contains("cannot read") && err.contains("missing-pw"),
        "{err}"
    );
}

#[test]
fn unreadable_bearer_token_file_is_an_error_naming_that_file() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    bearer_token_file: /nonexistent/token\n",
        &[],
    );
    assert!(
        err.contains("storages[0].bearer_token_file") && err.contains("/nonexistent/token"),
        "{err}"
    );
}

#[test]
fn bearer_token_file_is_read_at_load() {
    let dir = Dir::new();
    dir.write("token", "  abc.def  \n");
    let cfg = dir
        .load(
            "storages:\n  - url: http://a/api/v1/write\n    bearer_token_file: token\n",
            &[],
        )
        .unwrap();
    assert_eq!(
        cfg.storages[0].bearer_token.as_ref().map(Secret::expose),
        Some("abc.def")
    );
}

#[test]
fn empty_secret_file_is_an_error() {
    let dir = Dir::new();
    dir.write("token", "\n");
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    bearer_token_file: token\n",
        &[],
    );
    assert!(err.contains("is empty"), "{err}");
}

#[test]
fn basic_auth_needs_exactly_one_of_password_and_password_file() {
    let dir = Dir::new();
    dir.write("pw", "x");
    let neither = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    basic_auth: {username: u}\n",
        &[],
    );
    assert!(
        neither.contains("storages[0].basic_auth") && neither.contains("needs password"),
        "{neither}"
    );
    let both = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    basic_auth: {username: u, password: p, password_file: pw}\n",
        &[],
    );
    assert!(both.contains("not both"), "{both}");
}

#[test]
fn two_credential_sources_are_an_error() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    bearer_token: t\n    basic_auth: {username: u, password: p}\n",
        &[],
    );
    assert!(
        err.contains("basic_auth and bearer_token") && err.contains("keep only one"),
        "{err}"
    );
    let err = dir.error(
        "storages:\n  - url: http://u:p@a/api/v1/write\n    headers: {Authorization: Basic eA==}\n",
        &[],
    );
    assert!(
        err.contains("user info in the url and an Authorization header"),
        "{err}"
    );
}

#[test]
fn authorization_header_alone_is_accepted() {
    let dir = Dir::new();
    let cfg = dir
        .load(
            "storages:\n  - url: http://a/api/v1/write\n    headers: {Authorization: Bearer xyz}\n",
            &[],
        )
        .unwrap();
    assert_eq!(
        cfg.storages[0].headers["Authorization"].expose(),
        "Bearer xyz"
    );
}

#[test]
fn reserved_or_malformed_headers_are_rejected() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    headers: {Content-Encoding: gzip}\n",
        &[],
    );
    assert!(
        err.contains("storages[0].headers.Content-Encoding")
            && err.contains("sets this header itself"),
        "{err}"
    );
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    headers: {\"Bad Name\": x}\n",
        &[],
    );
    assert!(err.contains("invalid header name"), "{err}");
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    headers: {X-A: a, x-a: b}\n",
        &[],
    );
    assert!(err.contains("ignore case"), "{err}");
}

#[test]
fn debug_output_never_contains_passwords() {
    let dir = Dir::new();
    dir.write("pw", "from-file-secret");
    let cfg = dir
        .load(
            "storages:
  - url: http://user:url-secret@a/api/v1/write
  - url: http://b/api/v1/write
    basic_auth: {username: u, password: inline-secret}
  - url: http://c/api/v1/write
    basic_auth: {username: u, password_file: pw}
  - url: http://d/api/v1/write
    bearer_token: token-secret
  - url: http://e/api/v1/write
    headers: {Authorization: header-secret, X-Api-Key: key-secret}
",
            &[],
        )
        .unwrap();
    let debug = format!("{cfg:?} {cfg:#?}");
    for secret in [
        "url-secret",
        "inline-secret",
        "from-file-secret",
        "token-secret",
        "header-secret",
        "key-secret",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into {debug}");
    }
    assert!(
        debug.contains("http://user:xxxxx@a/api/v1/write"),
        "{debug}"
    );
    assert!(
        debug.contains("X-Api-Key"),
        "header names stay visible: {debug}"
    );
}

#[test]
fn tls_files_must_be_readable() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: https://a/api/v1/write\n    tls:\n      ca_file: missing-ca.pem\n",
        &[],
    );
    assert!(
        err.contains("promrelay.yml:4:")
            && err.contains("storages[0].tls.ca_file")
            && err.contains("missing-ca.pem"),
        "{err}"
    );
}

#[test]
fn tls_cert_without_key_is_an_error() {
    let dir = Dir::new();
    dir.write("cert.pem", "x");
    let err = dir.error(
        "storages:\n  - url: https://a/api/v1/write\n    tls: {cert_file: cert.pem}\n",
        &[],
    );
    assert!(
        err.contains("storages[0].tls") && err.contains("set both"),
        "{err}"
    );
}

#[test]
fn tls_on_an_http_url_is_an_error() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    tls: {insecure_skip_verify: true}\n",
        &[],
    );
    assert!(err.contains("https"), "{err}");
}

#[test]
fn concurrency_must_be_between_1_and_the_maximum() {
    let dir = Dir::new();
    let zero = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    concurrency: 0\n",
        &[],
    );
    assert!(
        zero.contains("storages[0].concurrency") && zero.contains("at least 1"),
        "{zero}"
    );
    let huge = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    concurrency: 1000\n",
        &[],
    );
    assert!(huge.contains("maximum of 64"), "{huge}");
}

#[test]
fn max_backoff_below_min_backoff_is_an_error() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\n    min_backoff: 2s\n    max_backoff: 1s\n",
        &[],
    );
    assert!(
        err.contains("promrelay.yml:4:") && err.contains("storages[0].max_backoff"),
        "{err}"
    );
    assert!(err.contains("less than min_backoff 2s"), "{err}");
}

#[test]
fn duplicate_storage_names_are_an_error() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - {name: a, url: http://a/api/v1/write}\n  - {name: a, url: http://b/api/v1/write}\n",
        &[],
    );
    assert!(
        err.contains("storages[1].name") && err.contains("already used"),
        "{err}"
    );
}

#[test]
fn newline_in_a_value_keeps_the_error_on_one_line() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - {name: \"a\\nb\", url: http://a/api/v1/write}\n",
        &[],
    );
    assert!(err.contains("a\\nb"), "{err}");
}

#[test]
fn member_num_accepts_statefulset_pod_name() {
    let cfg = load(&[
        "--remote-write-url",
        VM,
        "--cluster-members-count",
        "3",
        "--cluster-member-num",
        "promrelay-2",
    ])
    .unwrap();
    assert_eq!(cfg.scrape.cluster.member_num, 2);
}

#[test]
fn member_num_pod_name_is_accepted_in_the_file() {
    let dir = Dir::new();
    let cfg = dir
        .load(
            "cluster_members_count: 4\ncluster_member_num: relay-set-3\nstorages:\n  - url: http://a/api/v1/write\n",
            &[],
        )
        .unwrap();
    assert_eq!(cfg.scrape.cluster.member_num, 3);
    assert_eq!(cfg.scrape.cluster.members_count, 4);
}

#[test]
fn member_num_must_be_below_members_count() {
    let err = error(&[
        "--remote-write-url",
        VM,
        "--cluster-members-count",
        "3",
        "--cluster-member-num",
        "promrelay-3",
    ]);
    assert!(
        err.starts_with("command line: --cluster-member-num: member 3 does not exist"),
        "{err}"
    );
    assert!(
        err.contains("--cluster-members-count is 3") && err.contains("0 to 2"),
        "{err}"
    );
}

#[test]
fn member_num_in_file_above_flag_count_names_both() {
    let dir = Dir::new();
    let err = dir.error(
        "cluster_member_num: 2\nstorages:\n  - url: http://a/api/v1/write\n",
        &["--cluster-members-count", "2"],
    );
    assert!(
        err.contains("promrelay.yml:1:") && err.contains("cluster_member_num"),
        "{err}"
    );
    assert!(err.contains("--cluster-members-count is 2"), "{err}");
}

#[test]
fn member_num_without_number_suffix_is_an_error() {
    let err = error(&[
        "--remote-write-url",
        VM,
        "--cluster-member-num",
        "promrelay",
    ]);
    assert!(
        err.contains("--cluster-member-num") && err.contains("ending in -NUMBER"),
        "{err}"
    );
}

#[test]
fn replication_factor_above_members_count_is_an_error() {
    let err = error(&[
        "--remote-write-url",
        VM,
        "--cluster-members-count",
        "2",
        "--cluster-replication-factor",
        "3",
    ]);
    assert!(
        err.contains("--cluster-replication-factor")
            && err.contains("more than --cluster-members-count (2)"),
        "{err}"
    );
}

#[test]
fn replication_factor_zero_is_an_error() {
    let err = error(&[
        "--remote-write-url",
        VM,
        "--cluster-replication-factor",
        "0",
    ]);
    assert!(
        err.contains("--cluster-replication-factor") && err.contains("at least 1"),
        "{err}"
    );
}

#[test]
fn scrape_config_file_must_be_readable() {
    let err = error(&[
        "--remote-write-url",
        VM,
        "--scrape-config",
        "/nonexistent/scrape.yml",
    ]);
    assert!(
        err.contains("--scrape-config") && err.contains("/nonexistent/scrape.yml"),
        "{err}"
    );
}

#[test]
fn scrape_config_in_file_is_resolved_and_checked() {
    let dir = Dir::new();
    dir.write("scrape.yml", "scrape_configs: []\n");
    let cfg = dir
        .load(
            "scrape_config: scrape.yml\nstorages:\n  - url: http://a/api/v1/write\n",
            &[],
        )
        .unwrap();
    assert_eq!(
        cfg.scrape.config_file,
        Some(dir.0.path().join("scrape.yml"))
    );
}

#[test]
fn unknown_flag_is_one_line_with_a_suggestion() {
    let err = error(&["--remote-write-urls", VM]);
    assert!(
        err.starts_with("command line: ") && err.contains("--remote-write-urls"),
        "{err}"
    );
    assert!(err.contains("did you mean '--remote-write-url'"), "{err}");
}

#[test]
fn invalid_flag_size_is_one_line_naming_the_flag() {
    let err = error(&["--remote-write-url", VM, "--queue-max-bytes", "lots"]);
    assert!(
        err.starts_with("command line: --queue-max-bytes: invalid size \"lots\""),
        "{err}"
    );
}

#[test]
fn invalid_fsync_flag_lists_possible_values() {
    let err = error(&["--remote-write-url", VM, "--fsync", "sometimes"]);
    assert!(
        err.contains("--fsync") && err.contains("always, interval, never"),
        "{err}"
    );
}

#[test]
fn remote_write_url_flag_rejects_non_http_urls() {
    let err = error(&["--remote-write-url", "ftp://vm/x"]);
    assert!(
        err.starts_with("command line: --remote-write-url: ") && err.contains("http or https"),
        "{err}"
    );
}

#[test]
fn flag_value_missing_is_one_line() {
    let err = error(&["--listen"]);
    assert!(err.contains("--listen"), "{err}");
}

#[test]
fn help_and_version_are_returned_for_clap_to_print() {
    let help = load(&["--help"]).unwrap_err();
    assert!(help.is_help_or_version());
    let text = help.to_string();
    assert!(
        text.contains("--remote-write-url") && text.contains("storages:"),
        "{text}"
    );
    assert!(load(&["--version"]).unwrap_err().is_help_or_version());
}

#[test]
fn help_example_yaml_is_a_valid_config() {
    let dir = Dir::new();
    let token = dir.write("token", "t");
    let yaml = cli::EXAMPLE_YAML.replace("/run/secrets/mimir-token", &token.display().to_string());
    let cfg = dir.load(&yaml, &[]).unwrap();
    assert_eq!(cfg.storages.len(), 2);
    assert_eq!(cfg.storages[1].name.as_deref(), Some("mimir"));
}

#[test]
fn storage_ids_are_unique_and_derived_from_the_url() {
    let cfg = load(&[
        "--remote-write-url",
        "http://a:8428/api/v1/write",
        "--remote-write-url",
        "http://b:8428/api/v1/write",
    ])
    .unwrap();
    let ids: Vec<String> = cfg.storages.iter().map(StorageConfig::id).collect();
    assert!(ids[0].starts_with("a-8428-api-v1-write-"), "{ids:?}");
    assert!(ids[1].starts_with("b-8428-api-v1-write-"), "{ids:?}");
}

#[test]
fn write_relabel_configs_are_read_per_storage() {
    let d = Dir::new();
    let cfg = d
        .load(
            "storages:\n  - url: http://a:8428/api/v1/write\n    write_relabel_configs:\n      - source_labels: [__name__]\n        regex: go_.*\n        action: drop\n",
            &[],
        )
        .unwrap();
    assert_eq!(cfg.storages[0].write_relabel_configs.len(), 1);
}

#[test]
fn invalid_write_relabel_rule_is_an_error_naming_file_line_and_key() {
    let d = Dir::new();
    let e = d.error(
        "storages:\n  - url: http://a:8428/api/v1/write\n    write_relabel_configs:\n      - source_labels: [a]\n        target_label: shard\n        action: hashmod\n",
        &[],
    );
    assert!(e.contains("promrelay.yml"), "{e}");
    assert!(e.contains("write_relabel_configs"), "{e}");
    assert!(e.contains("modulus"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn otlp_translation_is_prometheus_default_without_an_otlp_section() {
    let cfg = load(&["--remote-write-url", VM]).unwrap();
    assert_eq!(cfg.otlp, OtlpConfig::default());
    assert_eq!(
        cfg.otlp.translation_strategy,
        OtlpTranslationStrategy::UnderscoreEscapingWithSuffixes
    );
}

#[test]
fn otlp_section_is_read_under_prometheus_key_names() {
    let dir = Dir::new();
    let cfg = dir
        .load(
            "storages:\n  - url: http://a/api/v1/write\notlp:\n  translation_strategy: UnderscoreEscapingWithoutSuffixes\n  promote_resource_attributes: [k8s.pod.name, host.name]\n",
            &[],
        )
        .unwrap();
    assert_eq!(
        cfg.otlp,
        OtlpConfig {
            translation_strategy: OtlpTranslationStrategy::UnderscoreEscapingWithoutSuffixes,
            promote_resource_attributes: vec!["k8s.pod.name".into(), "host.name".into()],
        }
    );
}

#[test]
fn utf8_otlp_translation_strategies_are_refused_naming_the_key() {
    let dir = Dir::new();
    let err = dir.error(
        "storages:\n  - url: http://a/api/v1/write\notlp:\n  translation_strategy: NoTranslation\n",
        &[],
    );
    assert!(err.contains("otlp.translation_strategy"), "{err}");
    assert!(
        err.contains("UnderscoreEscapingWithoutSuffixes"),
        "lists the accepted values: {err}"
    );
}
