//! Why a relabel rule was refused at load time.

use super::config::Action;

/// A relabel rule that cannot be used, named by the field at fault.
///
/// Every variant is a configuration mistake found when the rule is loaded
/// ([`RelabelConfig::validate`](super::RelabelConfig::validate),
/// [`RelabelConfig::compile`](super::RelabelConfig::compile) or deserialization); nothing here
/// happens while labels are processed, and none of it is worth retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    /// `action` names no relabel action (compared case-insensitively, as Prometheus does).
    #[error("action: unknown relabel action {action:?}")]
    UnknownAction {
        /// The value as written in the configuration.
        action: String,
    },

    /// `action` is present but null (`action:` with no value); Prometheus refuses it too.
    #[error("action: relabel action cannot be empty")]
    EmptyAction,

    /// A `source_labels` entry is not a valid (legacy) Prometheus label name.
    #[error("source_labels: {label:?} is not a valid label name")]
    InvalidSourceLabel {
        /// The offending entry.
        label: String,
    },

    /// `regex` does not compile (after being anchored as `^(?s:REGEX)$`).
    #[error("regex: {regex:?} is not a valid regular expression: {reason}")]
    InvalidRegex {
        /// The regex as configured, without the anchors.
        regex: String,
        /// What the regex parser said.
        reason: String,
    },

    /// `modulus` is zero or missing for the `hashmod` action.
    #[error("modulus: the hashmod action requires a non-zero modulus")]
    ModulusRequired,

    /// `target_label` is empty for an action that writes or compares a label.
    #[error("target_label: required for the {action} action")]
    TargetLabelRequired {
        /// The rule's action.
        action: Action,
    },

    /// `target_label` is not a valid label name (or, for `replace`, not a valid label name
    /// template: letters, digits, `_` and `$1`, `${1}`, `$name`, `${name}` references).
    #[error("target_label: {target_label:?} is not a valid label name for the {action} action")]
    InvalidTargetLabel {
        /// The rule's action.
        action: Action,
        /// The offending value.
        target_label: String,
    },

    /// `replacement` is set for an action that ignores it (`lowercase`, `uppercase`,
    /// `keepequal`, `dropequal`).
    #[error("replacement: cannot be set for the {action} action")]
    ReplacementNotAllowed {
        /// The rule's action.
        action: Action,
    },

    /// The `labelmap` replacement is not a valid label name template.
    #[error(
        "replacement: {replacement:?} is not a valid label name template for the labelmap action"
    )]
    InvalidLabelMapReplacement {
        /// The offending value.
        replacement: String,
    },

    /// A field other than `source_labels` and `target_label` is set for `keepequal`/`dropequal`.
    #[error(
        "{field}: the {action} action accepts only source_labels and target_label, and no other fields"
    )]
    OnlySourceAndTargetAllowed {
        /// The rule's action.
        action: Action,
        /// The first field that should not be there.
        field: &'static str,
    },

    /// A field other than `regex` is set for `labeldrop`/`labelkeep`.
    #[error("{field}: the {action} action accepts only regex, and no other fields")]
    OnlyRegexAllowed {
        /// The rule's action.
        action: Action,
        /// The first field that should not be there.
        field: &'static str,
    },

    /// A rule in a list failed; `index` counts from 0 in configuration order.
    #[error("relabel rule {index}: {error}")]
    InRule {
        /// Position of the rule in its list.
        index: usize,
        /// What is wrong with it.
        error: Box<RelabelError>,
    },
}
