//! The one error type for reading histories: it always names the line, so a
//! user can open the file at the offending spot.

use std::fmt;

/// A history (or nemesis log) that cannot be read or does not make sense.
///
/// `line` is 1-based; 0 means the problem is not tied to one line (for
/// example an empty file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct HistoryError {
    pub line: usize,
    pub message: String,
}

impl HistoryError {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        HistoryError {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}
