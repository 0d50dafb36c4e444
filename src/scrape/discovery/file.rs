//! `file_sd_configs` (and the static groups beside them): the synchronous core that reads files
//! and keeps their groups. The [hub](super) drives it on a timer; tests drive it directly.
//!
//! # Owns
//! - Reading `file_sd` files: JSON or YAML by extension (`.json`; `.yml`, `.yaml`), each a list
//!   of `{targets: [...], labels: {...}}`; wildcards in the file name (`*`, `?`, `[a-z]`), files
//!   listed in name order; unknown keys in entries ignored, as Prometheus ignores them.
//! - When files are read: whenever [`Discoverer::refresh`] is called and a file's modification
//!   time or size changed or a file appeared or disappeared, and every `refresh_interval`
//!   regardless.
//!
//! # Guarantees
//! - Groups carry `__meta_filepath` (the file's path, as Prometheus writes it) and a source
//!   `<path>:<index>`; static groups have the source `static_configs[<index>]`.
//! - A file that cannot be read or parsed, or holds an invalid label name, keeps the groups it
//!   last had (none if it never parsed); the error is logged once per change of the file. A
//!   file that no longer exists (or no longer matches) loses its groups.
//!
//! # Must not
//! Be called on the async runtime's threads: reads block (the hub uses the blocking pool).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Deserialize;

use super::{JobGroups, META_FILEPATH, SdFile, TargetGroup};
use crate::config::ReadFileError;
use crate::scrape::config::{
    FilePattern, FileSdConfig, JobConfig, is_valid_label_name, read_bounded,
};
use crate::util::one_line;

/// A discovery file larger than this is refused (and its previous groups kept).
const MAX_SD_FILE_BYTES: u64 = 64 << 20;

/// The synchronous core of discovery: holds the groups of every job and re-reads files when
/// asked. [`Discovery`](super::Discovery) drives it on a timer; tests drive it directly.
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
                        common: None,
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
                    shared: Vec::new(),
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
pub(super) fn expand(pattern: &FilePattern) -> Vec<(PathBuf, PathBuf)> {
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
            common: None,
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
