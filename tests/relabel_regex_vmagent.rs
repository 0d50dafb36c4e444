//! Relabel regexes that Go's `regexp` refuses are refused by promrelay with Go's message, and
//! the ones it accepts are accepted: each pattern is given to the real vmagent 1.79.5 (a Go
//! program, through `-dryRun`, which loads the scrape config and exits) and to promrelay's
//! relabel compiler. Stacked repetition operators (`a**`) were found by the relabel fuzz target:
//! the `regex` crate accepts them, and a long run of them overflowed a thread's stack.

mod common;

use std::process::Command;

use common::peer_binary;
use promrelay::relabel::{self, RelabelConfig};

fn rule(regex: &str) -> String {
    format!("- source_labels: [a]\n  regex: '{regex}'\n  target_label: b\n")
}

/// vmagent's verdict on `regex`: `None` when it loads, else Go's parse error.
fn vmagent_error(regex: &str) -> Option<String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("scrape.yml");
    let rules = rule(regex).replace('\n', "\n      ");
    let text = format!(
        "scrape_configs:\n  - job_name: x\n    static_configs: [{{targets: [\"127.0.0.1:1\"]}}]\n    relabel_configs:\n      {rules}\n"
    );
    std::fs::write(&config, text).expect("write the config");
    let out = Command::new(peer_binary("vmagent"))
        .arg(format!("-promscrape.config={}", config.display()))
        .arg("-dryRun")
        .arg("-remoteWrite.url=http://127.0.0.1:1/api/v1/write")
        .arg(format!(
            "-remoteWrite.tmpDataPath={}",
            dir.path().join("data").display()
        ))
        .output()
        .expect("vmagent runs");
    if out.status.success() {
        return None;
    }
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let start = log
        .find("error parsing regexp: ")
        .unwrap_or_else(|| panic!("vmagent failed without a regexp error for {regex:?}:\n{log}"));
    let message = &log[start + "error parsing regexp: ".len()..];
    let end = message.find(['"', '\n', ';']).unwrap_or(message.len());
    Some(message[..end].trim_end().to_owned())
}

/// promrelay's verdict on `regex`: `None` when the rule loads and compiles, else the error
/// (loading checks the regex already, as the scrape config loader reports it).
fn promrelay_error(regex: &str) -> Option<String> {
    match serde_saphyr::from_str::<Vec<RelabelConfig>>(&rule(regex)) {
        Ok(configs) => relabel::compile_all(&configs).err().map(|e| e.to_string()),
        Err(e) => Some(e.to_string()),
    }
}

#[test]
fn stacked_repetition_operators_are_refused_with_gos_message_as_vmagent_does() {
    for regex in ["a**", "a+?*", "a{2}{3}", "x(ab)*?+", "(web)-(.*)****x"] {
        let go = vmagent_error(regex).unwrap_or_else(|| panic!("vmagent accepted {regex:?}"));
        let ours = promrelay_error(regex).unwrap_or_else(|| panic!("promrelay accepted {regex:?}"));
        assert!(
            ours.contains(&go),
            "{regex:?}: vmagent says {go:?}, promrelay says {ours:?}"
        );
    }
}

#[test]
fn single_repetitions_and_repeated_groups_are_accepted_as_vmagent_does() {
    for regex in ["a*?", "(a*)*", "(?:a+)?", "a{2}?", "[*]*", r"\**"] {
        assert_eq!(vmagent_error(regex), None, "vmagent refused {regex:?}");
        assert_eq!(promrelay_error(regex), None, "promrelay refused {regex:?}");
    }
}
