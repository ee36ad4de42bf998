//! The one error type of the core. Every variant names what went wrong and,
//! where there is one, the file it went wrong in. The binding crate maps each
//! variant to its own Python exception class (see `rust/py/src/errors.rs`), so
//! callers can tell an unreadable file from a corrupt one from a wrong argument.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    /// A file could not be read (missing, permissions, ...).
    #[error("{path}: cannot read file: {message}")]
    Io { path: String, message: String },

    /// A file was read but its content is not a valid image.
    #[error("{path}: {message}")]
    Decode { path: String, message: String },

    /// Masks do not fit the weights they mask or each other (different counts
    /// or lengths): typically masks taken from a differently shaped network.
    #[error("mask mismatch: {0}")]
    MaskMismatch(String),

    /// The caller passed values that break a documented precondition.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    pub fn io(path: impl Into<String>, err: &std::io::Error) -> Self {
        CoreError::Io { path: path.into(), message: err.to_string() }
    }
    pub fn decode(path: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Decode { path: path.into(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_the_problem() {
        let e = CoreError::decode("a/b.png", "truncated PNG");
        assert_eq!(e.to_string(), "a/b.png: truncated PNG");
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        assert!(CoreError::io("x.jpg", &io).to_string().starts_with("x.jpg: cannot read file"));
        assert_eq!(
            CoreError::MaskMismatch("2 masks for 3 layers".into()).to_string(),
            "mask mismatch: 2 masks for 3 layers"
        );
        assert_eq!(
            CoreError::InvalidArgument("n must be > 0".into()).to_string(),
            "invalid argument: n must be > 0"
        );
    }
}
