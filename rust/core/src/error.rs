//! The one error type of the core. Every variant names what went wrong and,
//! where there is one, the file it went wrong in, so the Python side can raise
//! a single readable exception.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    /// A file could not be read (missing, permissions, ...).
    #[error("{path}: cannot read file: {message}")]
    Io { path: String, message: String },

    /// A file was read but its content is not a valid image / document.
    #[error("{path}: {message}")]
    Decode { path: String, message: String },

    /// A saved mask file is damaged, truncated or of an unknown version.
    #[error("{origin}: corrupt mask file: {message}")]
    CorruptMasks { origin: String, message: String },

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
    /// Which Python exception family this error belongs to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CoreError::Io { .. } | CoreError::Decode { .. } => ErrorKind::Scene,
            CoreError::InvalidArgument(_) | CoreError::CorruptMasks { .. } => ErrorKind::Argument,
        }
    }
}

/// Coarse classification used by the binding layer to pick an exception type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input data on disk: raised as `nerfprune.SceneError`.
    Scene,
    /// Bad arguments from the caller: raised as `ValueError`.
    Argument,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file() {
        let e = CoreError::decode("a/b.png", "truncated PNG");
        assert_eq!(e.to_string(), "a/b.png: truncated PNG");
        assert_eq!(e.kind(), ErrorKind::Scene);
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        assert!(CoreError::io("x.jpg", &io).to_string().starts_with("x.jpg: cannot read file"));
        assert_eq!(CoreError::InvalidArgument("n must be > 0".into()).kind(), ErrorKind::Argument);
    }
}
