//! Applying compiled rules to one label set, in place.

use std::cell::RefCell;
use std::fmt::Write as _;

use md5::{Digest, Md5};
use regex::CaptureLocations;

use super::compile::{CompiledRelabel, Op};
use super::go_regex::{go_to_lower, go_to_upper, is_valid_label_name};
use crate::prompb::Label;

/// Reusable buffers for [`process_with`], so steady-state relabeling does not allocate except
/// for labels it creates. One per thread or task; any rule list may be used with it.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The joined source label values.
    joined: String,
    /// An expanded replacement, case-mapped value or formatted hash.
    value: String,
    /// An expanded `replace` target label name.
    target: String,
    /// `labelmap` results, applied after all names were matched.
    mapped: Vec<Label>,
    /// Capture buffers by rule position, tagged with the rule they were made for.
    locations: Vec<Option<(u64, CaptureLocations)>>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Applies `configs` in order to `labels`. Returns `false` when a rule drops the series; the
/// later rules are then not run and `labels` is left as that rule saw it, for the caller to
/// discard.
///
/// Labels are expected sorted by name with unique names, as remote write requires. Input that
/// is not is sorted first (stably), and of labels sharing a name the first is kept. On return
/// `labels` is sorted by name with no duplicate names. A label set to an empty value is
/// removed, as in Prometheus (where an empty value means "absent"); labels a rule does not
/// touch are not cloned (their strings keep their allocations).
///
/// Uses a per-thread [`Scratch`]; use [`process_with`] to supply one.
pub fn process(labels: &mut Vec<Label>, configs: &[CompiledRelabel]) -> bool {
    if configs.is_empty() {
        normalize(labels);
        return true;
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => process_with(labels, configs, &mut scratch),
        // Unreachable today (nothing in here calls back into `process`), but a fresh scratch
        // is a correct answer if that ever changes.
        Err(_) => process_with(labels, configs, &mut Scratch::default()),
    })
}

/// [`process`] with caller-owned buffers.
pub fn process_with(
    labels: &mut Vec<Label>,
    configs: &[CompiledRelabel],
    scratch: &mut Scratch,
) -> bool {
    normalize(labels);
    configs
        .iter()
        .enumerate()
        .all(|(position, rule)| apply(labels, rule, position, scratch))
}

/// Sorts by name and removes later duplicates, only when needed.
fn normalize(labels: &mut Vec<Label>) {
    if labels.windows(2).all(|w| w[0].name < w[1].name) {
        return;
    }
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    labels.dedup_by(|later, earlier| later.name == earlier.name);
}

/// One rule. `false` means drop.
fn apply(
    labels: &mut Vec<Label>,
    rule: &CompiledRelabel,
    position: usize,
    s: &mut Scratch,
) -> bool {
    let config = rule.config();
    s.joined.clear();
    for (i, name) in config.source_labels.iter().flatten().enumerate() {
        if i > 0 {
            s.joined.push_str(&config.separator);
        }
        s.joined.push_str(get(labels, name));
    }
    let joined = s.joined.as_str();

    match &rule.op {
        Op::Drop => !rule.regex.is_match(joined),
        Op::Keep => rule.regex.is_match(joined),
        Op::DropEqual => get(labels, &config.target_label) != joined,
        Op::KeepEqual => get(labels, &config.target_label) == joined,
        Op::Replace {
            target,
            replacement,
        } => {
            if !target.has_groups() && !replacement.has_groups() {
                // Nothing to substitute: a match test is enough.
                if rule.regex.is_match(joined) && is_valid_label_name(target.literal()) {
                    set(labels, target.literal(), replacement.literal());
                }
                return true;
            }
            let locations = capture_locations(&mut s.locations, position, rule);
            if rule.regex.captures_read(locations, joined).is_none() {
                return true;
            }
            s.target.clear();
            target.expand(joined, locations, &mut s.target);
            if !is_valid_label_name(&s.target) {
                return true;
            }
            s.value.clear();
            replacement.expand(joined, locations, &mut s.value);
            set(labels, &s.target, &s.value);
            true
        }
        Op::Lowercase => {
            s.value.clear();
            go_to_lower(joined, &mut s.value);
            set(labels, &config.target_label, &s.value);
            true
        }
        Op::Uppercase => {
            s.value.clear();
            go_to_upper(joined, &mut s.value);
            set(labels, &config.target_label, &s.value);
            true
        }
        Op::HashMod { modulus } => {
            s.value.clear();
            // Writing to a String cannot fail.
            let _ = write!(s.value, "{}", hashmod(joined, *modulus));
            set(labels, &config.target_label, &s.value);
            true
        }
        Op::LabelMap { replacement } => {
            // Names are matched against the label set as it was before this rule (Prometheus
            // iterates a snapshot), then the copies are applied in name order.
            s.mapped.clear();
            for label in labels.iter() {
                let name = if replacement.has_groups() {
                    let locations = capture_locations(&mut s.locations, position, rule);
                    if rule.regex.captures_read(locations, &label.name).is_none() {
                        continue;
                    }
                    let mut name = String::new();
                    replacement.expand(&label.name, locations, &mut name);
                    name
                } else if rule.regex.is_match(&label.name) {
                    replacement.literal().to_owned()
                } else {
                    continue;
                };
                // Prometheus would create a label with an empty name; no storage accepts one.
                if !name.is_empty() {
                    s.mapped.push(Label {
                        name,
                        value: label.value.clone(),
                    });
                }
            }
            for label in s.mapped.drain(..) {
                set_owned(labels, label);
            }
            true
        }
        Op::LabelDrop => {
            labels.retain(|label| !rule.regex.is_match(&label.name));
            true
        }
        Op::LabelKeep => {
            labels.retain(|label| rule.regex.is_match(&label.name));
            true
        }
    }
}

/// Prometheus' hashmod: the last 8 bytes of md5(value) as a big-endian integer, mod `modulus`.
pub(super) fn hashmod(value: &str, modulus: u64) -> u64 {
    let digest = Md5::digest(value.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(tail) % modulus
}

/// The capture buffer for the rule at `position`, made anew only when the rule changed.
fn capture_locations<'a>(
    locations: &'a mut Vec<Option<(u64, CaptureLocations)>>,
    position: usize,
    rule: &CompiledRelabel,
) -> &'a mut CaptureLocations {
    if locations.len() <= position {
        locations.resize_with(position + 1, || None);
    }
    let slot = &mut locations[position];
    if slot.as_ref().is_some_and(|(id, _)| *id != rule.id) {
        *slot = None;
    }
    &mut slot
        .get_or_insert_with(|| (rule.id, rule.regex.capture_locations()))
        .1
}

/// The value of `name`, or "" when absent (Prometheus does not tell the two apart).
fn get<'a>(labels: &'a [Label], name: &str) -> &'a str {
    match labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
        Ok(i) => &labels[i].value,
        Err(_) => "",
    }
}

/// Sets `name` to `value`, or removes it when `value` is empty. Keeps the order.
fn set(labels: &mut Vec<Label>, name: &str, value: &str) {
    match labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
        Ok(i) if value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => {
            if labels[i].value != value {
                labels[i].value.clear();
                labels[i].value.push_str(value);
            }
        }
        Err(i) => {
            if !value.is_empty() {
                labels.insert(i, Label::new(name, value));
            }
        }
    }
}

/// [`set`] taking ownership, for labels built anyway.
fn set_owned(labels: &mut Vec<Label>, label: Label) {
    match labels.binary_search_by(|l| l.name.cmp(&label.name)) {
        Ok(i) if label.value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => labels[i].value = label.value,
        Err(i) => {
            if !label.value.is_empty() {
                labels.insert(i, label);
            }
        }
    }
}
