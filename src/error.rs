//! Typed errors of the library. The CLI wraps them with `anyhow` context.

use std::path::PathBuf;

/// An error that stops the work on one input (one image, one manifest). A batch goes on with the next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // The I/O error is part of the message (not a `source`), so that `{:#}` chains do not repeat it.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: is a directory, not a file")]
    IsDirectory { path: PathBuf },
    #[error("{path}: not a regular file")]
    NotRegularFile { path: PathBuf },
    #[error("{path}: file is {size} bytes, larger than the limit of {limit} bytes")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{path}: file changed while it was being read ({what})")]
    FileChanged { path: PathBuf, what: String },
    #[error("{path}: {error}")]
    Parse { path: PathBuf, error: ParseError },
    #[error("layout {path}: line {line}: {message}")]
    Layout {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("{0}")]
    Other(String),
}

/// A structural problem found while parsing bytes. Offsets are relative to the buffer being parsed
/// (absolute in the image unless the buffer is a decompressed one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("truncated {what} at offset {offset:#x}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        offset: u64,
        need: u64,
        have: u64,
    },
    #[error("bad {what} at offset {offset:#x}: {detail}")]
    Invalid {
        what: &'static str,
        offset: u64,
        detail: String,
    },
    #[error("limit exceeded at offset {offset:#x}: {what}")]
    Limit { what: String, offset: u64 },
    #[error("decompression failed at offset {offset:#x}: {detail}")]
    Decompress { offset: u64, detail: String },
    #[error("arithmetic overflow computing {what} at offset {offset:#x}")]
    Overflow { what: &'static str, offset: u64 },
}

impl ParseError {
    /// The finding code a structure that failed this way is reported with.
    pub fn code(&self) -> crate::finding::Code {
        use crate::finding::Code;
        match self {
            ParseError::Decompress { .. } => Code::DecompressFailed,
            ParseError::Limit { .. } => Code::LimitExceeded,
            _ => Code::Unparsed,
        }
    }

    /// The same error with its offset moved by `base`: for a parser that reads a node's bytes from 0
    /// and reports where in the image the problem is (`base` = the node's offset).
    pub fn rebased(mut self, base: u64) -> ParseError {
        match &mut self {
            ParseError::Truncated { offset, .. }
            | ParseError::Invalid { offset, .. }
            | ParseError::Limit { offset, .. }
            | ParseError::Decompress { offset, .. }
            | ParseError::Overflow { offset, .. } => *offset = offset.saturating_add(base),
        }
        self
    }

    /// Offset the error refers to, relative to the buffer that was parsed.
    pub fn offset(&self) -> u64 {
        match self {
            ParseError::Truncated { offset, .. }
            | ParseError::Invalid { offset, .. }
            | ParseError::Limit { offset, .. }
            | ParseError::Decompress { offset, .. }
            | ParseError::Overflow { offset, .. } => *offset,
        }
    }
}
