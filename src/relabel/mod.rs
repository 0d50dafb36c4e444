//! Prometheus `relabel_config` semantics over label sets.
//!
//! Owns: the `relabel_config` block (its YAML keys, defaults and validation, as Prometheus'
//! `model/relabel` package has them) and applying a list of rules to one label set. Used per
//! scraped series (the scraper's relabel rules) and per forwarded series (a storage's
//! write relabel rules).
//!
//! # Guarantees
//! - Same results as Prometheus for every action: `replace`, `keep`, `drop`, `hashmod`,
//!   `labelmap`, `labeldrop`, `labelkeep`, `keepequal`, `dropequal`, `lowercase`,
//!   `uppercase`. Defaults: separator `;`, regex `(.*)`, replacement `$1`, action `replace`.
//!   The regex is anchored as `^(?s:REGEX)$`; `\d \w \s \b` are ASCII as in Go; templates
//!   expand as Go's `Regexp.Expand`; `hashmod` is md5 of the joined values, last 8 bytes
//!   big-endian, mod `modulus`; `lowercase`/`uppercase` map rune by rune as Go does.
//! - Label names are validated as Prometheus' legacy scheme: `[a-zA-Z_][a-zA-Z0-9_]*`.
//!   A `replace` whose target expands to an invalid name changes nothing.
//! - Regexes are compiled and templates parsed once, by [`RelabelConfig::compile`]; nothing
//!   is compiled per series. Processing allocates only for labels it creates or grows.
//! - [`process`] leaves labels sorted by name without duplicate names; setting a label to an
//!   empty value removes it.
//!
//! # Deviations from Prometheus, on purpose
//! - `labelmap` never creates a label with an empty name (Prometheus would).
//! - When several labels map to the same name in one `labelmap` rule, the copy from the last
//!   label in name order wins. Prometheus iterates labels set by earlier rules of the same
//!   pass after the others, so with such a conflict it may pick another one.
//! - Regex syntax is the `regex` crate's, made Go-like above: a few RE2-only forms (`\Q..\E`,
//!   group names starting with a digit) are refused at load time, and a few forms RE2 refuses
//!   (`(?x)`, `\b{start}`) are accepted.
//! - Only legacy label name validation; Prometheus 3's UTF-8 names (`utf-8.label`) are refused
//!   in `source_labels` and `target_label`.
//!
//! # Must not
//! Know where labels came from (scrape, remote write, text import) or where they go.
//!
//! # Layout
//! - `config`: [`RelabelConfig`] and [`Action`], serde with Prometheus' keys and null rules.
//! - `compile`: validation and [`CompiledRelabel`].
//! - `process`: [`process`], [`process_with`] and their [`Scratch`].
//! - `go_regex`: where Go's regexp, `Expand` and case mapping differ from Rust's, bridged.

mod compile;
mod config;
mod error;
mod go_regex;
mod process;

#[cfg(test)]
mod tests;

pub use compile::{CompiledRelabel, compile_all};
pub use config::{Action, DEFAULT_REGEX, DEFAULT_REPLACEMENT, DEFAULT_SEPARATOR, RelabelConfig};
pub use error::RelabelError;
pub use process::{Scratch, process, process_with};
