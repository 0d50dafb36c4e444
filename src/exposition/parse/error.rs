//! [`ParseError`]: why an exposition was refused, with the line to look at.

/// Why an exposition was refused: the first problem found, with its 1-based line number.
///
/// Displays as `line N: what is wrong`, fit for an HTTP 400 body or a target's last error. The
/// message quotes (a prefix of) the offending line where that helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    /// 1-based line number. For a missing `# EOF` it is the line after the last one.
    pub line: usize,
    /// What is wrong, in one line.
    pub msg: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, msg: impl Into<String>) -> ParseError {
        ParseError {
            line,
            msg: msg.into(),
        }
    }

    /// An error about a line's syntax, quoting the line (at most 120 bytes of it).
    pub(crate) fn at(line: usize, what: &str, text: &[u8]) -> ParseError {
        const MAX: usize = 120;
        let shown = String::from_utf8_lossy(&text[..text.len().min(MAX)]);
        let more = if text.len() > MAX { "..." } else { "" };
        ParseError::new(line, format!("{what} in {shown:?}{more}"))
    }
}
