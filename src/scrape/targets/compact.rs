//! [`CompactLabels`]: a target's discovered labels as kept for the targets page and API.
//!
//! Every active target keeps its labels before relabeling (about 45 for a Kubernetes pod
//! target). As a `Vec<Label>` that is two heap strings per label, ~5 KB per target (35 MB of
//! 10,000 pod targets, heaptrack); here it is all names and values in one string and their
//! ends in one slice, ~2.5 KB. Written once when the target is built, read only when a page
//! or API asks.

use std::fmt;

use crate::prompb::Label;

/// Labels in their given order: names and values back to back in one string, with each label's
/// (name end, value end) offsets into it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CompactLabels {
    text: Box<str>,
    ends: Box<[(u32, u32)]>,
}

impl CompactLabels {
    /// `labels` in one string. Labels past 4 GiB of text in total are left out (no target
    /// comes near: a scrape's labels are bounded far below).
    pub fn new(labels: &[Label]) -> CompactLabels {
        let len = labels
            .iter()
            .map(|l| l.name.len() + l.value.len())
            .sum::<usize>();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(labels.len());
        for l in labels {
            if text.len() + l.name.len() + l.value.len() > u32::MAX as usize {
                break;
            }
            text.push_str(&l.name);
            let name_end = text.len() as u32;
            text.push_str(&l.value);
            ends.push((name_end, text.len() as u32));
        }
        CompactLabels {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// Each label as (name, value), in the order given to [`CompactLabels::new`].
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone + '_ {
        (0..self.ends.len()).map(move |i| {
            let start = match i {
                0 => 0,
                _ => self.ends[i - 1].1 as usize,
            };
            let (name_end, end) = self.ends[i];
            (
                &self.text[start..name_end as usize],
                &self.text[name_end as usize..end as usize],
            )
        })
    }

    /// The value of the first label called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The labels as [`Label`]s again.
    pub fn to_vec(&self) -> Vec<Label> {
        self.iter().map(|(n, v)| Label::new(n, v)).collect()
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl From<Vec<Label>> for CompactLabels {
    fn from(labels: Vec<Label>) -> CompactLabels {
        CompactLabels::new(&labels)
    }
}

impl fmt::Debug for CompactLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn labels_come_back_in_order_with_empty_names_and_values() {
        let labels = vec![
            Label::new("b", "2"),
            Label::new("a", ""),
            Label::new("", "x"),
            Label::new("a", "again"),
        ];
        let compact = CompactLabels::new(&labels);
        assert_eq!(compact.to_vec(), labels);
        assert_eq!(compact.len(), 4);
        assert_eq!(compact.get("a"), Some(""), "the first of a repeated name");
        assert_eq!(compact.get("c"), None);
    }

    #[test]
    fn no_labels_is_empty() {
        let compact = CompactLabels::new(&[]);
        assert!(compact.is_empty());
        assert_eq!(compact.iter().count(), 0);
        assert_eq!(compact, CompactLabels::default());
    }

    proptest! {
        #[test]
        fn any_labels_round_trip(pairs in proptest::collection::vec((".{0,12}", ".{0,12}"), 0..20)) {
            let labels: Vec<Label> = pairs.iter().map(|(n, v)| Label::new(n, v)).collect();
            let compact = CompactLabels::new(&labels);
            prop_assert_eq!(compact.to_vec(), labels.clone());
            prop_assert_eq!(compact, CompactLabels::from(labels.clone()));
        }
    }
}
