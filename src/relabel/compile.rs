//! Validation (Prometheus' `Config.Validate`, field by field) and the compiled form of a rule.

use std::sync::atomic::{AtomicU64, Ordering};

use regex::Regex;

use super::config::{Action, DEFAULT_REPLACEMENT, DEFAULT_SEPARATOR, RelabelConfig};
use super::error::RelabelError;
use super::go_regex::{
    Template, compile_anchored, is_valid_label_name, is_valid_label_name_template,
};

/// A rule ready to run: its regex compiled and its templates parsed, once, at load time.
///
/// Cheap to share (`Arc<[CompiledRelabel]>`) and to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct CompiledRelabel {
    config: RelabelConfig,
    /// Identifies this compilation so a [`Scratch`](super::Scratch) can tell whether the
    /// capture buffer it keeps for a rule position was made for this regex.
    pub(super) id: u64,
    pub(super) regex: Regex,
    pub(super) op: Op,
}

/// The action with what it needs at run time.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Replace {
        target: Template,
        replacement: Template,
    },
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod {
        modulus: u64,
    },
    LabelMap {
        replacement: Template,
    },
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl CompiledRelabel {
    /// The configuration this rule was compiled from.
    pub fn config(&self) -> &RelabelConfig {
        &self.config
    }

    /// The action.
    pub fn action(&self) -> Action {
        self.config.action
    }
}

impl RelabelConfig {
    /// Checks the rule as Prometheus does when it loads a configuration (including that the
    /// regex compiles). Deserialization already calls this.
    pub fn validate(&self) -> Result<(), RelabelError> {
        self.compile().map(drop)
    }

    /// Validates the rule and compiles it for [`process`](super::process).
    pub fn compile(&self) -> Result<CompiledRelabel, RelabelError> {
        for label in self.source_labels.iter().flatten() {
            if !is_valid_label_name(label) {
                return Err(RelabelError::InvalidSourceLabel {
                    label: label.clone(),
                });
            }
        }
        let regex =
            compile_anchored(self.regex_str()).map_err(|reason| RelabelError::InvalidRegex {
                regex: self.regex_str().to_owned(),
                reason: reason.to_string(),
            })?;
        self.check_fields()?;
        let op = match self.action {
            Action::Replace => Op::Replace {
                target: Template::parse(&self.target_label, &regex),
                replacement: Template::parse(&self.replacement, &regex),
            },
            Action::Keep => Op::Keep,
            Action::Drop => Op::Drop,
            Action::KeepEqual => Op::KeepEqual,
            Action::DropEqual => Op::DropEqual,
            Action::HashMod => Op::HashMod {
                modulus: self.modulus,
            },
            Action::LabelMap => Op::LabelMap {
                replacement: Template::parse(&self.replacement, &regex),
            },
            Action::LabelDrop => Op::LabelDrop,
            Action::LabelKeep => Op::LabelKeep,
            Action::Lowercase => Op::Lowercase,
            Action::Uppercase => Op::Uppercase,
        };
        Ok(CompiledRelabel {
            config: self.clone(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            regex,
            op,
        })
    }

    /// Prometheus' `Config.Validate`, in its order, under legacy label name validation.
    fn check_fields(&self) -> Result<(), RelabelError> {
        use Action::*;
        let action = self.action;
        let target = self.target_label.as_str();
        let invalid_target = || RelabelError::InvalidTargetLabel {
            action,
            target_label: target.to_owned(),
        };

        if action == HashMod && self.modulus == 0 {
            return Err(RelabelError::ModulusRequired);
        }
        let writes_or_compares_target = matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if writes_or_compares_target && target.is_empty() {
            return Err(RelabelError::TargetLabelRequired { action });
        }
        if action == Replace {
            let valid = if target.contains('$') {
                is_valid_label_name_template(target)
            } else {
                is_valid_label_name(target)
            };
            if !valid {
                return Err(invalid_target());
            }
        }
        let plain_target_actions = matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual);
        if (plain_target_actions || action == HashMod) && !is_valid_label_name(target) {
            return Err(invalid_target());
        }
        if plain_target_actions && self.replacement != DEFAULT_REPLACEMENT {
            return Err(RelabelError::ReplacementNotAllowed { action });
        }
        if action == LabelMap && !is_valid_label_name_template(&self.replacement) {
            return Err(RelabelError::InvalidLabelMapReplacement {
                replacement: self.replacement.clone(),
            });
        }
        if matches!(action, KeepEqual | DropEqual) {
            // Prometheus compares the regex by identity with the default one, so any regex
            // written in the file, even "(.*)", is refused.
            let extra = first_set(&[
                ("regex", self.regex.is_some()),
                ("modulus", self.modulus != 0),
                ("separator", self.separator != DEFAULT_SEPARATOR),
                ("replacement", self.replacement != DEFAULT_REPLACEMENT),
            ]);
            if let Some(field) = extra {
                return Err(RelabelError::OnlySourceAndTargetAllowed { action, field });
            }
        }
        if matches!(action, LabelDrop | LabelKeep) {
            let extra = first_set(&[
                ("source_labels", self.source_labels.is_some()),
                ("target_label", !self.target_label.is_empty()),
                ("modulus", self.modulus != 0),
                ("separator", self.separator != DEFAULT_SEPARATOR),
                ("replacement", self.replacement != DEFAULT_REPLACEMENT),
            ]);
            if let Some(field) = extra {
                return Err(RelabelError::OnlyRegexAllowed { action, field });
            }
        }
        Ok(())
    }
}

/// The name of the first field flagged as set.
fn first_set(fields: &[(&'static str, bool)]) -> Option<&'static str> {
    fields.iter().find(|(_, set)| *set).map(|(name, _)| *name)
}

/// Compiles a list of rules, naming the position of the first bad one.
pub fn compile_all(configs: &[RelabelConfig]) -> Result<Vec<CompiledRelabel>, RelabelError> {
    configs
        .iter()
        .enumerate()
        .map(|(index, config)| {
            config.compile().map_err(|error| RelabelError::InRule {
                index,
                error: Box::new(error),
            })
        })
        .collect()
}
