//! The places where Go's `regexp`, `Regexp.Expand` and `strings.ToLower/ToUpper` differ from
//! their Rust counterparts, bridged so relabeling gives the same answers as Prometheus.
//!
//! - Perl classes: in Go `\d`, `\w`, `\s` and `\b` are ASCII-only; in the `regex` crate they
//!   are Unicode-aware. [`compile_anchored`] rewrites them to their ASCII definitions.
//! - Templates: `Captures::expand` of the `regex` crate differs from Go's `Expand` on `$01`
//!   (Go: the group *named* "01", so empty), `${1-2}` and `${}` (Go: malformed, the `$` is
//!   kept literally) and on names with non-ASCII letters (`$1é` is one name in Go).
//!   [`Template`] implements Go's rules and resolves references once, at load time.
//! - Case mapping: Go maps rune by rune with simple case mapping (`ß` stays `ß`); Rust's
//!   `str::to_uppercase` uses full mappings (`ß` becomes `SS`).

use std::sync::LazyLock;

use regex::{CaptureLocations, Regex, RegexBuilder};
use regex_syntax::ast::{self, Ast, ClassPerlKind, ClassSetItem};

/// Why a relabel regex could not be compiled.
#[derive(Debug, thiserror::Error)]
pub(super) enum RegexError {
    /// The anchored pattern does not parse.
    #[error("{0}")]
    Syntax(Box<ast::Error>),
    /// A repetition operator applied straight to another (`a**`, `a+?*`, `a{2}{3}`): Go's
    /// Perl syntax refuses it ("invalid nested repetition operator"), the `regex` crate would
    /// accept it, and a long run of them nests the compiler's recursion once per operator.
    #[error("invalid nested repetition operator: `{0}`")]
    NestedRepetition(String),
    /// The pattern parses but the regex engine refuses it (too large once compiled, ...).
    #[error("{0}")]
    Build(#[from] regex::Error),
}

/// Compiles `pattern` as Prometheus does (`^(?s:` + pattern + `)$`, by string concatenation,
/// so the same odd inputs are accepted), with Go's ASCII Perl classes.
pub(super) fn compile_anchored(pattern: &str) -> Result<Regex, RegexError> {
    let anchored = format!("^(?s:{pattern})$");
    let translated = ascii_perl_classes(&anchored)?;
    Ok(RegexBuilder::new(&translated).octal(true).build()?)
}

/// Replaces every `\d \D \w \W \s \S \b \B` with the ASCII-only form Go gives them.
fn ascii_perl_classes(pattern: &str) -> Result<String, RegexError> {
    let parsed = ast::parse::ParserBuilder::new()
        .octal(true)
        .build()
        .parse(pattern)
        .map_err(|e| RegexError::Syntax(Box::new(e)))?;
    ast::visit(&parsed, NestedRepetitionFinder)
        .map_err(|span| RegexError::NestedRepetition(pattern[span].to_owned()))?;
    let edits = ast::visit(&parsed, PerlClassFinder::default()).unwrap_or_default();
    if edits.is_empty() {
        return Ok(pattern.to_owned());
    }
    let mut out = String::with_capacity(pattern.len() + edits.len() * 16);
    let mut pos = 0;
    for (start, end, replacement) in edits {
        out.push_str(&pattern[pos..start]);
        out.push_str(replacement);
        pos = end;
    }
    out.push_str(&pattern[pos..]);
    Ok(out)
}

/// Finds the first repetition operator whose operand is itself a repetition, as Go's parser
/// does; its error is the byte range from the inner operator to the end of the outer one.
struct NestedRepetitionFinder;

impl ast::Visitor for NestedRepetitionFinder {
    type Output = ();
    type Err = std::ops::Range<usize>;

    fn finish(self) -> Result<(), Self::Err> {
        Ok(())
    }

    fn visit_pre(&mut self, node: &Ast) -> Result<(), Self::Err> {
        if let Ast::Repetition(outer) = node
            && let Ast::Repetition(inner) = &*outer.ast
        {
            return Err(inner.op.span.start.offset..outer.op.span.end.offset);
        }
        Ok(())
    }
}

/// Collects `(start, end, replacement)` for each Perl class or word boundary, in pattern order.
#[derive(Default)]
struct PerlClassFinder {
    edits: Vec<(usize, usize, &'static str)>,
}

impl ast::Visitor for PerlClassFinder {
    type Output = Vec<(usize, usize, &'static str)>;
    type Err = std::convert::Infallible;

    fn finish(mut self) -> Result<Self::Output, Self::Err> {
        self.edits.sort_by_key(|e| e.0);
        Ok(self.edits)
    }

    fn visit_pre(&mut self, node: &Ast) -> Result<(), Self::Err> {
        match node {
            Ast::ClassPerl(class) => {
                let replacement = match (&class.kind, class.negated) {
                    (ClassPerlKind::Digit, false) => "[0-9]",
                    (ClassPerlKind::Digit, true) => "[^0-9]",
                    (ClassPerlKind::Word, false) => "[0-9A-Za-z_]",
                    (ClassPerlKind::Word, true) => "[^0-9A-Za-z_]",
                    (ClassPerlKind::Space, false) => r"[\t\n\x0C\r\x20]",
                    (ClassPerlKind::Space, true) => r"[^\t\n\x0C\r\x20]",
                };
                self.push(class.span, replacement);
            }
            Ast::Assertion(assertion) => match assertion.kind {
                ast::AssertionKind::WordBoundary => self.push(assertion.span, r"(?-u:\b)"),
                ast::AssertionKind::NotWordBoundary => self.push(assertion.span, r"(?-u:\B)"),
                _ => {}
            },
            _ => {}
        }
        Ok(())
    }

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), Self::Err> {
        if let ClassSetItem::Perl(class) = item {
            // Inside brackets: ranges for the positive forms, a nested class for the negated.
            let replacement = match (&class.kind, class.negated) {
                (ClassPerlKind::Digit, false) => "0-9",
                (ClassPerlKind::Digit, true) => "[^0-9]",
                (ClassPerlKind::Word, false) => "0-9A-Za-z_",
                (ClassPerlKind::Word, true) => "[^0-9A-Za-z_]",
                (ClassPerlKind::Space, false) => r"\t\n\x0C\r\x20",
                (ClassPerlKind::Space, true) => r"[^\t\n\x0C\r\x20]",
            };
            self.push(class.span, replacement);
        }
        Ok(())
    }
}

impl PerlClassFinder {
    fn push(&mut self, span: ast::Span, replacement: &'static str) {
        self.edits
            .push((span.start.offset, span.end.offset, replacement));
    }
}

/// A `replacement` or `target_label` template, parsed once with Go's `Expand` rules and with
/// group references resolved against one regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Group(usize),
}

/// A reference name after `$`: `{name}` or a bare name, where Go's name characters are
/// Unicode letters (`\p{L}`), decimal digits (`\p{Nd}`) and `_`.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\A(?:\{([\p{L}\p{Nd}_]+)\}|([\p{L}\p{Nd}_]+))")
        .expect("the reference pattern is a valid regex")
});

impl Template {
    /// Parses `template` as Go's `Regexp.Expand` reads it. References to groups that `regex`
    /// does not have expand to nothing, so they are dropped here.
    pub(super) fn parse(template: &str, regex: &Regex) -> Template {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = template;
        while let Some(dollar) = rest.find('$') {
            literal.push_str(&rest[..dollar]);
            rest = &rest[dollar + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                literal.push('$');
                rest = after;
                continue;
            }
            let Some(caps) = REFERENCE.captures(rest) else {
                // Malformed reference: Go keeps the `$` as text and goes on after it.
                literal.push('$');
                continue;
            };
            let name = caps
                .get(1)
                .or_else(|| caps.get(2))
                .map_or("", |m| m.as_str());
            rest = &rest[caps.get(0).map_or(0, |m| m.end())..];
            if let Some(index) = group_index(name, regex) {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Group(index));
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Template { pieces }
    }

    /// True when expansion needs capture positions.
    pub(super) fn has_groups(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Group(_)))
    }

    /// The expansion of a template without group references.
    pub(super) fn literal(&self) -> &str {
        match self.pieces.as_slice() {
            [Piece::Literal(text)] => text,
            _ => "",
        }
    }

    /// Appends the expansion for a match of the template's regex on `haystack`.
    pub(super) fn expand(&self, haystack: &str, locations: &CaptureLocations, dst: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => dst.push_str(text),
                Piece::Group(index) => {
                    if let Some((start, end)) = locations.get(*index) {
                        dst.push_str(&haystack[start..end]);
                    }
                }
            }
        }
    }
}

/// Go's rule: an all-ASCII-digit name without a leading zero is a group number (below 10^9);
/// anything else is a group name.
fn group_index(name: &str, regex: &Regex) -> Option<usize> {
    let numeric = name.bytes().all(|b| b.is_ascii_digit())
        && !(name.len() > 1 && name.starts_with('0'))
        && name.len() <= 9;
    if numeric {
        let index: usize = name.parse().ok()?;
        return (index < regex.captures_len()).then_some(index);
    }
    regex.capture_names().position(|n| n == Some(name))
}

/// Legacy Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(super) fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphabetic() || first == b'_' => {
            bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        _ => false,
    }
}

/// Prometheus' `relabelTargetLegacy`: a label name in which `$name`/`${name}` references may
/// stand for characters. Go's `\w` is ASCII, hence the explicit class.
static LABEL_NAME_TEMPLATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$")
        .expect("the label name template pattern is a valid regex")
});

/// Whether `template` may be used as a `replace` target or `labelmap` replacement.
pub(super) fn is_valid_label_name_template(template: &str) -> bool {
    LABEL_NAME_TEMPLATE.is_match(template)
}

/// Go's `strings.ToLower`: rune by rune, simple case mapping.
pub(super) fn go_to_lower(s: &str, dst: &mut String) {
    for c in s.chars() {
        let mut mapped = c.to_lowercase();
        match (mapped.next(), mapped.next()) {
            (Some(single), None) => dst.push(single),
            // Only U+0130 (İ) has a multi-character full lowercase; its simple mapping is `i`.
            _ if c == '\u{130}' => dst.push('i'),
            _ => dst.push(c),
        }
    }
}

/// Go's `strings.ToUpper`: rune by rune, simple case mapping.
pub(super) fn go_to_upper(s: &str, dst: &mut String) {
    for c in s.chars() {
        let mut mapped = c.to_uppercase();
        match (mapped.next(), mapped.next()) {
            (Some(single), None) => dst.push(single),
            _ => dst.push(simple_upper_of_special(c)),
        }
    }
}

/// Simple uppercase of a character whose full uppercase is several characters (the
/// SpecialCasing entries). Most have none (`ß`, ligatures, `ŉ`...) and stay as they are; the
/// Greek letters with ypogegrammeni map to their titlecase forms, which map to themselves.
fn simple_upper_of_special(c: char) -> char {
    let code = u32::from(c);
    let mapped = match code {
        0x1F80..=0x1FAF if code & 0x8 == 0 => code + 8,
        0x1FB3 | 0x1FC3 | 0x1FF3 => code + 9,
        _ => code,
    };
    char::from_u32(mapped).unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(pattern: &str, template: &str, haystack: &str) -> String {
        let regex = compile_anchored(pattern).expect("test regex compiles");
        let parsed = Template::parse(template, &regex);
        let mut locations = regex.capture_locations();
        regex
            .captures_read(&mut locations, haystack)
            .expect("test regex matches");
        let mut out = String::new();
        parsed.expand(haystack, &locations, &mut out);
        out
    }

    #[test]
    fn expand_follows_go_rules_for_references() {
        // (template, expansion of "(?P<first>a)(b)" on "ab"), each checked against Go's Expand.
        let cases = [
            ("$1", "a"),
            ("${1}", "a"),
            ("$1x", ""),
            ("${1}x", "ax"),
            ("$2$1", "ba"),
            ("$0", "ab"),
            ("$first", "a"),
            ("${first}", "a"),
            ("$first_", ""),
            ("$3", ""),
            ("$01", ""),
            ("$$1", "$1"),
            ("$", "$"),
            ("a$", "a$"),
            ("$-", "$-"),
            ("${}", "${}"),
            ("${1", "${1"),
            ("${1-2}", "${1-2}"),
            ("$1é", ""),
            ("${1}é", "aé"),
            ("$١", ""),
            ("$9999999999", ""),
            ("no references", "no references"),
        ];
        for (template, want) in cases {
            assert_eq!(
                expand("(?P<first>a)(b)", template, "ab"),
                want,
                "template {template:?}"
            );
        }
    }

    #[test]
    fn optional_group_that_did_not_take_part_expands_to_nothing() {
        assert_eq!(expand("(a)?(b)", "[$1][$2]", "b"), "[][b]");
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let digits = compile_anchored(r"\d+").expect("compiles");
        assert!(digits.is_match("123"));
        assert!(
            !digits.is_match("١٢٣"),
            "Arabic-Indic digits are not \\d in Go"
        );
        let word = compile_anchored(r"\w+").expect("compiles");
        assert!(word.is_match("cafe_1"));
        assert!(!word.is_match("café"));
        let not_word = compile_anchored(r"\W").expect("compiles");
        assert!(not_word.is_match("é"));
        let space = compile_anchored(r"a\sb").expect("compiles");
        assert!(space.is_match("a b"));
        assert!(
            !space.is_match("a\u{a0}b"),
            "no-break space is not \\s in Go"
        );
        assert!(!space.is_match("a\u{b}b"), "vertical tab is not \\s in Go");
        let in_class = compile_anchored(r"[\d.]+").expect("compiles");
        assert!(in_class.is_match("1.2"));
        assert!(!in_class.is_match("١.٢"));
        let negated_in_class = compile_anchored(r"[\Da]+").expect("compiles");
        assert!(negated_in_class.is_match("é"));
        assert!(!negated_in_class.is_match("1"));
        let boundary = compile_anchored(r".*\bx").expect("compiles");
        assert!(boundary.is_match("é x"));
        assert!(
            boundary.is_match("éx"),
            "é is not a word character, so a boundary precedes x"
        );
    }

    #[test]
    fn unicode_property_classes_and_escaped_backslashes_are_kept() {
        let letters = compile_anchored(r"\pL+").expect("compiles");
        assert!(letters.is_match("café"));
        let escaped = compile_anchored(r"a\\d").expect("compiles");
        assert!(escaped.is_match(r"a\d"));
    }

    #[test]
    fn anchoring_is_textual_as_in_prometheus() {
        // Prometheus builds "^(?s:" + regex + ")$" by concatenation, so this odd regex compiles
        // to ^(?s:a)|(b)$ and matches a string that merely starts with "a".
        let odd = compile_anchored("a)|(b").expect("compiles");
        assert!(odd.is_match("abc"));
    }

    #[test]
    fn nested_repetition_operators_are_refused_as_in_go() {
        // Each message is Go's `regexp.Compile` error for the same pattern.
        let cases = [
            ("a**", "`**`"),
            ("a+?*", "`+?*`"),
            ("a{2}{3}", "`{2}{3}`"),
            ("x(ab)*?+", "`*?+`"),
        ];
        for (pattern, operator) in cases {
            let err = compile_anchored(pattern).expect_err(pattern).to_string();
            assert_eq!(
                err,
                format!("invalid nested repetition operator: {operator}"),
                "{pattern}"
            );
        }
        for accepted in ["a*?", "(a*)*", "(?:a+)?", "a{2}?", "[*]*", r"\**"] {
            assert!(compile_anchored(accepted).is_ok(), "{accepted}");
        }
    }

    #[test]
    fn a_long_run_of_repetition_operators_is_an_error_not_a_stack_overflow() {
        // Found by the relabel fuzz target: 200 stacked operators overflowed a debug test
        // thread's stack in the regex compiler's recursion.
        let pattern = format!("(web)-{}x", "*".repeat(200));
        assert!(matches!(
            compile_anchored(&pattern),
            Err(RegexError::NestedRepetition(_))
        ));
    }

    #[test]
    fn octal_escapes_are_accepted_as_in_go() {
        let newline = compile_anchored(r"a\012b").expect("compiles");
        assert!(newline.is_match("a\nb"));
    }

    #[test]
    fn case_mapping_is_go_simple_mapping() {
        let upper = |s: &str| {
            let mut out = String::new();
            go_to_upper(s, &mut out);
            out
        };
        let lower = |s: &str| {
            let mut out = String::new();
            go_to_lower(s, &mut out);
            out
        };
        assert_eq!(upper("bAr123Foo"), "BAR123FOO");
        assert_eq!(upper("straße"), "STRAßE");
        assert_eq!(upper("ﬁ"), "ﬁ");
        assert_eq!(upper("ᾳ"), "ᾼ");
        assert_eq!(upper("ᾀ"), "ᾈ");
        assert_eq!(upper("ᾈ"), "ᾈ");
        assert_eq!(upper("éà"), "ÉÀ");
        assert_eq!(lower("İ"), "i");
        assert_eq!(lower("ΟΔΟΣ"), "οδοσ", "no final-sigma rule in Go");
        assert_eq!(lower("ÉÀ"), "éà");
    }

    #[test]
    fn legacy_label_names() {
        for valid in ["a", "_", "__name__", "A9_b"] {
            assert!(is_valid_label_name(valid), "{valid}");
        }
        for invalid in ["", "0a", "a-b", "a.b", "é", "a b"] {
            assert!(!is_valid_label_name(invalid), "{invalid}");
        }
    }

    #[test]
    fn label_name_templates_match_prometheus_target_label_legacy_validity() {
        // TestTargetLabelLegacyValidity in Prometheus' relabel_test.go.
        let cases = [
            ("-label", false),
            ("label", true),
            ("label${1}", true),
            ("${1}label", true),
            ("${1}", true),
            ("${", false),
            ("$", false),
            ("${}", false),
            ("foo${", false),
            ("$1", true),
            ("asd$2asd", true),
            ("-foo${1}bar-", false),
            ("bar.foo${1}bar", false),
            ("_${1}_", true),
            ("foo${bar}foo", true),
        ];
        for (template, valid) in cases {
            assert_eq!(
                is_valid_label_name_template(template),
                valid,
                "{template:?}"
            );
        }
    }
}
