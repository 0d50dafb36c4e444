//! Every flag can come from its environment variable (`PROMRELAY_` + the flag's name), so a
//! Kubernetes manifest can set one from the downward API: the variable sets the flag, the
//! command line wins over it, it wins over the `--config` file, and a bad value is an error that
//! names the variable. Run against the real binary, since clap reads the process environment.

mod common;

use std::process::{Command, Output};

use common::relay::{FakeStorage, REMOTE_WRITE_HEADERS, Relay};

/// Runs `promrelay` with `args` and exactly the `PROMRELAY_*` variables in `env` (any inherited
/// from the test's own environment are removed), for runs that end by themselves.
fn run_promrelay(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_promrelay"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PROMRELAY_") {
            command.env_remove(name);
        }
    }
    command.args(args).envs(env.iter().copied());
    command.output().expect("run promrelay")
}

/// Exit status 2 with one line on stderr, returned.
fn refused(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    stderr
}

/// A remote-write body of about `bytes` bytes (one series whose label value is that long).
fn push_body_of(bytes: usize) -> Vec<u8> {
    use promrelay::prompb::{Label, Sample, TimeSeries, WriteRequest};
    let request = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "config_env_push".into(),
                },
                Label {
                    name: "padding".into(),
                    // Letters in a long cycle, so snappy cannot shrink the body much.
                    value: (0..bytes)
                        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
                        .collect(),
                },
            ],
            samples: vec![Sample {
                value: 1.0,
                timestamp: common::now_ms(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    common::relay::encode(&request)
}

#[tokio::test]
async fn an_environment_variable_sets_its_flag() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()])
        .storages_on_command_line()
        .env("PROMRELAY_MAX_REQUEST_BYTES", "1KiB")
        .start()
        .await;

    let (status, reason) = relay
        .push_raw(push_body_of(4096), &REMOTE_WRITE_HEADERS)
        .await;

    assert_eq!(status, 413, "a 4KiB push over a 1KiB limit: {reason}");
}

#[tokio::test]
async fn one_variable_names_several_storages_separated_by_commas() {
    let first = FakeStorage::new().start().await;
    let second = FakeStorage::new().start().await;
    let both = format!("{},{}", first.url(), second.url());
    let relay = Relay::with_storages::<&str>(&[])
        .storages_on_command_line()
        .env("PROMRELAY_REMOTE_WRITE_URL", &both)
        .start()
        .await;

    let urls: Vec<String> = relay
        .queues()
        .await
        .iter()
        .map(|q| q["url"].as_str().expect("url is a string").to_owned())
        .collect();

    assert_eq!(urls, [first.url(), second.url()]);
}

#[tokio::test]
async fn the_command_line_wins_over_the_environment() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()])
        .storages_on_command_line()
        .env("PROMRELAY_MAX_REQUEST_BYTES", "1KiB")
        .arg("--max-request-bytes")
        .arg("1MiB")
        .start()
        .await;

    let (status, reason) = relay
        .push_raw(push_body_of(4096), &REMOTE_WRITE_HEADERS)
        .await;

    assert_eq!(
        status, 204,
        "the 1MiB of the command line applies: {reason}"
    );
}

#[tokio::test]
async fn a_bad_environment_value_is_not_read_when_the_command_line_sets_the_flag() {
    let storage = FakeStorage::new().start().await;
    let relay = Relay::with_storages(&[storage.url()])
        .storages_on_command_line()
        .env("PROMRELAY_QUEUE_MAX_BYTES", "lots")
        .arg("--queue-max-bytes")
        .arg("64MiB")
        .start()
        .await;

    assert!(relay.is_running());
}

#[tokio::test]
async fn the_environment_wins_over_the_config_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("promrelay.yml");
    // On its own the file's member number is out of range and promrelay would refuse to start.
    std::fs::write(&file, "cluster_members_count: 2\ncluster_member_num: 5\n")
        .expect("write the config file");
    let storage = FakeStorage::new().start().await;

    let relay = Relay::with_storages(&[storage.url()])
        .storages_on_command_line()
        .env("PROMRELAY_CONFIG", &file.display().to_string())
        .env("PROMRELAY_CLUSTER_MEMBER_NUM", "promrelay-1")
        .start()
        .await;

    assert!(relay.is_running());
}

#[test]
fn a_bad_size_in_the_environment_is_an_error_naming_the_variable() {
    let output = run_promrelay(
        &["--remote-write-url", "http://127.0.0.1:9/api/v1/write"],
        &[("PROMRELAY_QUEUE_MAX_BYTES", "lots")],
    );

    let stderr = refused(&output);
    assert!(
        stderr.contains("environment: PROMRELAY_QUEUE_MAX_BYTES: ") && stderr.contains("\"lots\""),
        "{stderr}"
    );
}

#[test]
fn a_bad_choice_in_the_environment_is_an_error_naming_the_variable_and_the_choices() {
    let output = run_promrelay(
        &["--remote-write-url", "http://127.0.0.1:9/api/v1/write"],
        &[("PROMRELAY_FSYNC", "sometimes")],
    );

    let stderr = refused(&output);
    assert!(
        stderr.contains("environment: PROMRELAY_FSYNC: ")
            && stderr.contains("possible values: always, interval, never"),
        "{stderr}"
    );
}

#[test]
fn a_member_number_from_the_environment_out_of_range_names_both_variables() {
    let output = run_promrelay(
        &["--remote-write-url", "http://127.0.0.1:9/api/v1/write"],
        &[
            ("PROMRELAY_CLUSTER_MEMBERS_COUNT", "3"),
            ("PROMRELAY_CLUSTER_MEMBER_NUM", "promrelay-3"),
        ],
    );

    let stderr = refused(&output);
    assert!(
        stderr.contains(
            "environment: PROMRELAY_CLUSTER_MEMBER_NUM: member 3 does not exist: \
             PROMRELAY_CLUSTER_MEMBERS_COUNT is 3"
        ),
        "{stderr}"
    );
}

#[test]
fn a_storage_url_refused_from_the_environment_does_not_show_its_password() {
    let output = run_promrelay(
        &[],
        &[(
            "PROMRELAY_REMOTE_WRITE_URL",
            "http://u:hunter2@127.0.0.1:9/api/v1/write,ftp://u:hunter2@vm/x",
        )],
    );

    let stderr = refused(&output);
    assert!(
        stderr.contains("environment: PROMRELAY_REMOTE_WRITE_URL: ") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[test]
fn help_does_not_show_the_value_of_a_url_variable() {
    let output = run_promrelay(
        &["--help"],
        &[(
            "PROMRELAY_REMOTE_WRITE_URL",
            "http://u:hunter2@127.0.0.1:9/api/v1/write",
        )],
    );

    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    assert!(help.contains("[env: PROMRELAY_REMOTE_WRITE_URL]"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

#[test]
fn the_offline_queue_tools_run_beside_the_relays_environment() {
    let data = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(data.path().join("queues")).expect("create queues/");
    let path = data.path().display().to_string();

    let output = run_promrelay(
        &["queue", "inspect", "--json", &path],
        &[
            ("PROMRELAY_FSYNC", "always"),
            ("PROMRELAY_CLUSTER_MEMBER_NUM", "promrelay-0"),
            (
                "PROMRELAY_REMOTE_WRITE_URL",
                "http://127.0.0.1:9/api/v1/write",
            ),
        ],
    );

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reports: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("a JSON array of queues");
    assert_eq!(reports, serde_json::json!([]));
}
