//! The one error type of the probe-spec language: what is wrong, where, and what to do.

use std::fmt;

/// A problem in a probe spec, with the 1-based column where it starts and a fix to suggest.
///
/// Displayed on one line: `unknown register %rdi at column 14: tracefs names it %di`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// 1-based byte column inside the spec text (0 when the problem is the spec as a whole).
    pub column: usize,
    /// What is wrong.
    pub problem: String,
    /// What to do about it (may be empty).
    pub fix: String,
}

impl SpecError {
    /// An error at byte offset `pos` (0-based) of the spec text.
    pub fn at(pos: usize, problem: impl Into<String>, fix: impl Into<String>) -> SpecError {
        SpecError {
            column: pos + 1,
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// An error about the whole spec, with no position.
    pub fn whole(problem: impl Into<String>, fix: impl Into<String>) -> SpecError {
        SpecError {
            column: 0,
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The same error moved right by `by` bytes (for a part parsed out of a longer text).
    pub fn shifted(mut self, by: usize) -> SpecError {
        if self.column > 0 {
            self.column += by;
        }
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)?;
        if self.column > 0 {
            write!(f, " at column {}", self.column)?;
        }
        if !self.fix.is_empty() {
            write!(f, ": {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}
