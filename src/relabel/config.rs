//! The `relabel_config` block as written in YAML, with Prometheus' defaults and null handling.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::RelabelError;
use super::go_regex::go_to_lower;

/// Default `separator`.
pub const DEFAULT_SEPARATOR: &str = ";";
/// Regex used when `regex` is absent.
pub const DEFAULT_REGEX: &str = "(.*)";
/// Default `replacement`.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// What a rule does. Parsed case-insensitively (`Replace`, `labelmap`, `LabelMap`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Set `target_label` to the expanded `replacement` when `regex` matches.
    #[default]
    Replace,
    /// Drop the series when `regex` does not match.
    Keep,
    /// Drop the series when `regex` matches.
    Drop,
    /// Drop the series when the joined source values differ from `target_label`'s value.
    KeepEqual,
    /// Drop the series when the joined source values equal `target_label`'s value.
    DropEqual,
    /// Set `target_label` to md5(joined values) mod `modulus`.
    HashMod,
    /// Copy every label whose name matches `regex` to the name given by `replacement`.
    LabelMap,
    /// Remove every label whose name matches `regex`.
    LabelDrop,
    /// Remove every label whose name does not match `regex`.
    LabelKeep,
    /// Set `target_label` to the joined values in lower case.
    Lowercase,
    /// Set `target_label` to the joined values in upper case.
    Uppercase,
}

impl Action {
    /// Every action, for parsing and tests.
    pub const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];

    /// The canonical (lower-case) name, as Prometheus prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = RelabelError;

    /// Case-insensitive, with Go's `strings.ToLower` so exactly the spellings Prometheus
    /// accepts are accepted.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut lower = String::with_capacity(s.len());
        go_to_lower(s, &mut lower);
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| RelabelError::UnknownAction {
                action: s.to_owned(),
            })
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One `relabel_config` entry, with Prometheus' field names and defaults.
///
/// Deserializing runs [`RelabelConfig::validate`], as Prometheus does when it loads YAML, so a
/// bad rule is reported with the position the deserializer knows. Unknown keys are refused.
/// A key present with a null value (`separator:`) means the field's zero value, as in
/// Prometheus: an empty separator, target or replacement, a zero modulus, and for `regex` the
/// empty regex (which matches only the empty string), not the default `(.*)`.
///
/// Building one in code: start from [`RelabelConfig::default()`], which holds Prometheus'
/// defaults, and call [`RelabelConfig::compile`] before use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRelabelConfig")]
pub struct RelabelConfig {
    /// Labels whose values (empty for an absent label) are joined with `separator`.
    /// `None` when the key is absent; `Some(vec![])` for an explicit empty list, which
    /// `labeldrop`/`labelkeep` refuse just as Prometheus does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<Vec<String>>,
    /// Placed between joined source values. Default `;`.
    pub separator: String,
    /// The regex as written, anchored at compile time as `^(?s:REGEX)$`. `None` when the key
    /// is absent, meaning the default `(.*)`; `keepequal`/`dropequal` refuse any explicit
    /// regex, even `(.*)`, as Prometheus does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Modulus for `hashmod`; 0 means unset.
    pub modulus: u64,
    /// Label written (`replace`, `hashmod`, `lowercase`, `uppercase`) or compared
    /// (`keepequal`, `dropequal`). For `replace` it may reference capture groups.
    pub target_label: String,
    /// Template expanded with the regex's capture groups (`$1`, `${1}`, `$name`, `${name}`,
    /// `$$` for a dollar sign), as Go's `Regexp.Expand` does. Default `$1`.
    pub replacement: String,
    /// What the rule does. Default `replace`.
    pub action: Action,
}

impl Default for RelabelConfig {
    /// Prometheus' `DefaultRelabelConfig`: replace, separator `;`, regex `(.*)`,
    /// replacement `$1`, no source labels, no target.
    fn default() -> Self {
        RelabelConfig {
            source_labels: None,
            separator: DEFAULT_SEPARATOR.to_owned(),
            regex: None,
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.to_owned(),
            action: Action::Replace,
        }
    }
}

impl RelabelConfig {
    /// The regex as written, or the default `(.*)` when none was given.
    pub fn regex_str(&self) -> &str {
        self.regex.as_deref().unwrap_or(DEFAULT_REGEX)
    }
}

/// The wire shape: every key optional, null accepted, unknown keys refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabelConfig {
    #[serde(default)]
    source_labels: Option<Vec<String>>,
    #[serde(default = "default_separator", deserialize_with = "null_as_zero")]
    separator: String,
    #[serde(default, deserialize_with = "null_as_empty_regex")]
    regex: Option<String>,
    #[serde(default, deserialize_with = "null_as_zero")]
    modulus: u64,
    #[serde(default, deserialize_with = "null_as_zero")]
    target_label: String,
    #[serde(default = "default_replacement", deserialize_with = "null_as_zero")]
    replacement: String,
    #[serde(default, deserialize_with = "action_not_null")]
    action: Action,
}

impl TryFrom<RawRelabelConfig> for RelabelConfig {
    type Error = RelabelError;

    fn try_from(raw: RawRelabelConfig) -> Result<Self, Self::Error> {
        let config = RelabelConfig {
            source_labels: raw.source_labels,
            separator: raw.separator,
            regex: raw.regex,
            modulus: raw.modulus,
            target_label: raw.target_label,
            replacement: raw.replacement,
            action: raw.action,
        };
        config.validate()?;
        Ok(config)
    }
}

fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_owned()
}

fn default_replacement() -> String {
    DEFAULT_REPLACEMENT.to_owned()
}

/// A present-but-null key takes the Go zero value, as `yaml.v2` does.
fn null_as_zero<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `regex:` with a null value is the empty regex in Prometheus, not the default.
fn null_as_empty_regex<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Some(
        Option::<String>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}

fn action_not_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Action, D::Error> {
    Option::<Action>::deserialize(deserializer)?
        .ok_or_else(|| serde::de::Error::custom(RelabelError::EmptyAction))
}
