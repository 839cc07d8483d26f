//! The benchmark's error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {what}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub(super) fn io(what: &'static str, source: std::io::Error) -> Error {
        Error::Io { what, source }
    }
}
