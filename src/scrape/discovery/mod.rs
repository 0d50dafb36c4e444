//! Target discovery: `static_configs` and `file_sd_configs`, turned into target groups per job,
//! with change notification.
//!
//! # Owns
//! - Reading `file_sd` files: JSON or YAML by extension (`.json`; `.yml`, `.yaml`), each a list
//!   of `{targets: [...], labels: {...}}`; wildcards in the file name (`*`, `?`, `[a-z]`), files
//!   listed in name order; unknown keys in entries ignored, as Prometheus ignores them.
//! - When files are read: once at [`Discovery::start`], then whenever a file's modification
//!   time or size changes or a file appears or disappears (checked every
//!   [`DEFAULT_POLL_INTERVAL`]), and every `refresh_interval` regardless.
//!
//! # Guarantees
//! - Groups carry `__meta_filepath` (the file's path, as Prometheus writes it) and a source
//!   `<path>:<index>`; static groups have the source `static_configs[<index>]`.
//! - A file that cannot be read or parsed, or holds an invalid label name, keeps the groups it
//!   last had (none if it never parsed); the error is logged once per change of the file. A
//!   file that no longer exists (or no longer matches) loses its groups.
//! - Subscribers are woken only when some job's groups really changed.
//!
//! # Must not
//! Build targets or apply relabeling ([`targets`](super::targets) does), or block the async
//! runtime: file reads after start-up run on the blocking thread pool.
//!
//! # Use
//! ```no_run
//! # use promrelay::scrape::config::JobConfig;
//! # use promrelay::scrape::discovery::Discovery;
//! # async fn follow(jobs: &[JobConfig]) {
//! let discovery = Discovery::start(jobs);             // reads every file once, then watches
//! let mut changes = discovery.subscribe();
//! loop {
//!     let snapshot = changes.borrow_and_update().clone(); // Arc<Vec<JobGroups>>
//!     // ... build targets from snapshot ...
//!     if changes.changed().await.is_err() { break }    // the Discovery was dropped
//! }
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{FilePattern, FileSdConfig, JobConfig, is_valid_label_name, read_bounded};
use crate::config::ReadFileError;
use crate::util::one_line;

/// How often file modification times are checked.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// A discovery file larger than this is refused (and its previous groups kept).
const MAX_SD_FILE_BYTES: u64 = 64 << 20;

/// The label that names the file a `file_sd` group came from.
pub const META_FILEPATH: &str = "__meta_filepath";

/// Targets that share labels, as one `static_configs` entry or one entry of a `file_sd` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroup {
    /// Where the group came from: `static_configs[0]` or `<file path>:<index>`.
    pub source: String,
    /// The targets' addresses, each becoming a target's `__address__`, in the order written.
    pub targets: Vec<String>,
    /// Labels shared by the group's targets, `__meta_filepath` included for `file_sd` groups.
    pub labels: BTreeMap<String, String>,
    /// The file a `file_sd` group came from; `None` for static groups.
    pub file: Option<SdFile>,
}

/// The file behind a `file_sd` group, in the two spellings the sharding key needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdFile {
    /// As in `__meta_filepath`: the pattern's directory (relative to where promrelay runs when
    /// the config file path was relative) joined with the file name.
    pub path: PathBuf,
    /// Absolute and lexically cleaned (vmagent's `__vm_filepath`).
    pub absolute: PathBuf,
}

/// The groups discovered for one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobGroups {
    /// The job's `job_name`.
    pub job: String,
    /// Static groups first (in config order), then `file_sd` groups by config entry, file
    /// name and position in the file.
    pub groups: Vec<TargetGroup>,
}

/// A snapshot of everything discovered, one entry per job in config order.
pub type Snapshot = Arc<Vec<JobGroups>>;

/// Discovery running in the background; see the module doc for when files are read.
///
/// Dropping it stops the background task; subscribers then see their channel close.
#[derive(Debug)]
pub struct Discovery {
    changes: watch::Receiver<Snapshot>,
    task: JoinHandle<()>,
}

impl Discovery {
    /// Reads every discovery file once (blocking the calling thread for that), publishes the
    /// result, and starts watching for changes every [`DEFAULT_POLL_INTERVAL`].
    ///
    /// Must be called within a tokio runtime.
    pub fn start(jobs: &[JobConfig]) -> Discovery {
        Discovery::start_polling(jobs, DEFAULT_POLL_INTERVAL)
    }

    /// [`Discovery::start`] with another interval between modification-time checks.
    pub fn start_polling(jobs: &[JobConfig], poll_interval: Duration) -> Discovery {
        let mut discoverer = Discoverer::new(jobs);
        discoverer.refresh(Instant::now());
        let (tx, changes) = watch::channel(Arc::new(discoverer.snapshot()));
        let task = tokio::spawn(watch_files(discoverer, tx, poll_interval));
        Discovery { changes, task }
    }

    /// What is known now.
    pub fn current(&self) -> Snapshot {
        self.changes.borrow().clone()
    }

    /// A receiver that is marked changed whenever the snapshot changes. Its current value is
    /// the latest snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.changes.clone()
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch_files(
    mut discoverer: Discoverer,
    tx: watch::Sender<Snapshot>,
    poll_interval: Duration,
) {
    if !discoverer.has_files() {
        // Static groups never change; keep the sender alive so subscribers are not closed.
        tx.closed().await;
        return;
    }
    let mut ticker = tokio::time::interval(poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; start-up already read the files
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tx.closed() => return,
        }
        let polled = tokio::task::spawn_blocking(move || {
            let changed = discoverer.refresh(Instant::now());
            (discoverer, changed)
        })
        .await;
        let changed;
        (discoverer, changed) = match polled {
            Ok(result) => result,
            Err(e) => {
                // Only a panic in the file reading could get here; the state went with it.
                tracing::error!("file_sd watcher stopped: {e}");
                return;
            }
        };
        if changed {
            tx.send_replace(Arc::new(discoverer.snapshot()));
        }
    }
}

/// The synchronous core of discovery: holds the groups of every job and re-reads files when
/// asked. [`Discovery`] drives it on a timer; tests drive it directly.
#[derive(Debug)]
pub struct Discoverer {
    jobs: Vec<JobState>,
}

#[derive(Debug)]
struct JobState {
    job: String,
    static_groups: Vec<TargetGroup>,
    file_sd: Vec<FileSdState>,
}

#[derive(Debug)]
struct FileSdState {
    config: FileSdConfig,
    /// When every file was last read regardless of modification time.
    last_full_read: Option<Instant>,
    /// The files currently matching, by `__meta_filepath` spelling.
    files: BTreeMap<PathBuf, FileState>,
}

#[derive(Debug)]
struct FileState {
    /// Modification time and size when last read; `None` when it could not be stat'ed.
    stamp: Option<(SystemTime, u64)>,
    /// Whether a read was attempted since the file started matching.
    read_once: bool,
    /// Groups from the last successful read.
    groups: Vec<TargetGroup>,
}

impl Discoverer {
    /// Static groups are ready at once; files are read by the first [`Discoverer::refresh`].
    pub fn new(jobs: &[JobConfig]) -> Self {
        let jobs = jobs
            .iter()
            .map(|job| JobState {
                job: job.job_name.clone(),
                static_groups: job
                    .static_configs
                    .iter()
                    .enumerate()
                    .map(|(i, s)| TargetGroup {
                        source: format!("static_configs[{i}]"),
                        targets: s.targets.clone(),
                        labels: s.labels.clone(),
                        file: None,
                    })
                    .collect(),
                file_sd: job
                    .file_sd_configs
                    .iter()
                    .map(|config| FileSdState {
                        config: config.clone(),
                        last_full_read: None,
                        files: BTreeMap::new(),
                    })
                    .collect(),
            })
            .collect();
        Discoverer { jobs }
    }

    /// True when some job has `file_sd_configs` (so there is something to watch).
    pub fn has_files(&self) -> bool {
        self.jobs.iter().any(|j| !j.file_sd.is_empty())
    }

    /// Re-lists the file patterns, re-reads files that are new, changed, or due for their
    /// `refresh_interval` at `now`, and drops files that are gone. Returns whether any
    /// group changed.
    pub fn refresh(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for job in &mut self.jobs {
            for sd in &mut job.file_sd {
                changed |= sd.refresh(&job.job, now);
            }
        }
        changed
    }

    /// The groups of every job, in config order.
    pub fn snapshot(&self) -> Vec<JobGroups> {
        self.jobs
            .iter()
            .map(|job| {
                let mut groups = job.static_groups.clone();
                for sd in &job.file_sd {
                    for file in sd.files.values() {
                        groups.extend(file.groups.iter().cloned());
                    }
                }
                JobGroups {
                    job: job.job.clone(),
                    groups,
                }
            })
            .collect()
    }
}

impl FileSdState {
    fn refresh(&mut self, job: &str, now: Instant) -> bool {
        let full = self
            .last_full_read
            .is_none_or(|last| now.duration_since(last) >= self.config.refresh_interval);
        if full {
            self.last_full_read = Some(now);
        }
        let mut matched: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        for pattern in &self.config.files {
            for (path, absolute) in expand(pattern) {
                matched.insert(path, absolute);
            }
        }
        let before = self.files.len();
        self.files.retain(|path, _| matched.contains_key(path));
        let mut changed = self.files.len() != before;

        for (path, absolute) in matched {
            let stamp = stamp_of(&absolute);
            let state = self.files.entry(path.clone()).or_insert_with(|| FileState {
                stamp: None,
                read_once: false,
                groups: Vec::new(),
            });
            let file_changed = !state.read_once || stamp != state.stamp;
            if !full && !file_changed {
                continue;
            }
            state.stamp = stamp;
            state.read_once = true;
            match read_groups(&path, &absolute) {
                Ok(groups) => {
                    if groups != state.groups {
                        state.groups = groups;
                        changed = true;
                    }
                }
                // A broken file is reported when it changes, not at every refresh.
                Err(reason) if file_changed => {
                    tracing::error!(
                        job,
                        file = %path.display(),
                        "cannot use file_sd file, keeping its previous targets: {reason}"
                    );
                }
                Err(_) => {}
            }
        }
        changed
    }
}

fn stamp_of(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The files matching `pattern`, in name order, as `(__meta_filepath spelling, absolute)`.
fn expand(pattern: &FilePattern) -> Vec<(PathBuf, PathBuf)> {
    let (Some(name_pattern), Some(abs_dir)) = (
        pattern.absolute.file_name().and_then(|n| n.to_str()),
        pattern.absolute.parent(),
    ) else {
        return Vec::new();
    };
    let shown_dir = pattern.path.parent().unwrap_or(Path::new(""));
    if !has_wildcard(name_pattern) {
        return if pattern.absolute.is_file() {
            vec![(pattern.path.clone(), pattern.absolute.clone())]
        } else {
            Vec::new()
        };
    }
    let Ok(entries) = fs::read_dir(abs_dir) else {
        return Vec::new();
    };
    let mut names: BTreeSet<String> = BTreeSet::new();
    for entry in entries.flatten() {
        if let Ok(name) = entry.file_name().into_string()
            && wildcard_match(name_pattern, &name)
            && entry.path().is_file()
        {
            names.insert(name);
        }
    }
    names
        .into_iter()
        .map(|name| (shown_dir.join(&name), abs_dir.join(&name)))
        .collect()
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Matches a file name against a pattern as Go's `filepath.Match` does for one path element:
/// `*` any run of characters, `?` one character, `[abc]`, `[a-z]`, `[^a-z]` a class, `\x` a
/// literal `x`. A malformed class matches nothing.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|skip| match_from(&p[1..], &n[skip..])),
        Some('?') => !n.is_empty() && match_from(&p[1..], &n[1..]),
        Some('[') => {
            let Some((&c, rest)) = n.split_first() else {
                return false;
            };
            match match_class(&p[1..], c) {
                Some((true, after)) => match_from(after, rest),
                _ => false,
            }
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && match_from(&p[2..], &n[1..]),
        Some(&literal) => n.first() == Some(&literal) && match_from(&p[1..], &n[1..]),
    }
}

/// Matches `c` against the class starting after `[`; returns whether it matched and the
/// pattern after the closing `]`, or `None` for a malformed class.
fn match_class(p: &[char], c: char) -> Option<(bool, &[char])> {
    let (negated, mut i) = match p.first() {
        Some('^') => (true, 1),
        _ => (false, 0),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negated, &p[i + 1..]));
        }
        first = false;
        let (lo, next) = if lo == '\\' {
            (*p.get(i + 1)?, i + 2)
        } else {
            (lo, i + 1)
        };
        let (hi, next) = if p.get(next) == Some(&'-') && p.get(next + 1).is_some_and(|c| *c != ']')
        {
            let hi = *p.get(next + 1)?;
            if hi == '\\' {
                (*p.get(next + 2)?, next + 3)
            } else {
                (hi, next + 2)
            }
        } else {
            (lo, next)
        };
        if lo <= c && c <= hi {
            matched = true;
        }
        i = next;
    }
}

/// One entry of a `file_sd` file. Unknown keys are ignored, as Prometheus ignores them.
#[derive(Deserialize)]
struct RawGroup {
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Why a `file_sd` file could not be used (its previous targets are kept). `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum SdFileError {
    /// The file could not be read, is too large or is not UTF-8.
    #[error(transparent)]
    Read(#[from] ReadFileError),
    /// The file is not a JSON or YAML list of target groups.
    #[error("{0}")]
    Syntax(String),
    /// The file name ends in neither `.json`, `.yml` nor `.yaml`.
    #[error("not a .json, .yml or .yaml file")]
    UnknownExtension,
    /// A group's label name is not a valid Prometheus label name.
    #[error("entry {index}: {name:?} is not a valid label name")]
    BadLabelName { index: usize, name: String },
}

/// Reads and parses one `file_sd` file into groups.
fn read_groups(path: &Path, absolute: &Path) -> Result<Vec<TargetGroup>, SdFileError> {
    let text = read_bounded(absolute, MAX_SD_FILE_BYTES)?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let raw: Vec<RawGroup> = match extension.as_deref() {
        Some("json") => serde_json::from_str::<Option<Vec<RawGroup>>>(&text)
            .map_err(|e| SdFileError::Syntax(one_line(&e.to_string())))?
            .unwrap_or_default(),
        Some("yml" | "yaml") => serde_saphyr::from_str::<Option<Vec<RawGroup>>>(&text)
            .map_err(|e| SdFileError::Syntax(one_line(&e.to_string())))?
            .unwrap_or_default(),
        _ => return Err(SdFileError::UnknownExtension),
    };
    let shown = path.to_string_lossy().into_owned();
    let mut groups = Vec::with_capacity(raw.len());
    for (index, group) in raw.into_iter().enumerate() {
        let mut labels = group.labels.unwrap_or_default();
        if let Some(bad) = labels.keys().find(|name| !is_valid_label_name(name)) {
            return Err(SdFileError::BadLabelName {
                index,
                name: one_line(bad),
            });
        }
        labels.insert(META_FILEPATH.to_owned(), shown.clone());
        groups.push(TargetGroup {
            source: format!("{shown}:{index}"),
            targets: group.targets.unwrap_or_default(),
            labels,
            file: Some(SdFile {
                path: path.to_path_buf(),
                absolute: absolute.to_path_buf(),
            }),
        });
    }
    Ok(groups)
}

#[cfg(test)]
mod tests;
