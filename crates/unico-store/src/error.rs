//! Storage errors, split the way callers must react to them.

/// What went wrong in the store. `NotFound`, `Conflict` and `Limit` are the user's to fix;
/// `Internal` is ours (I/O, corruption) and is never shown to clients in detail.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    Invalid(String),
    /// The storage cannot answer now but may soon (the database unreachable or out of
    /// connections, the writer gone, the engines too far behind): worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// The change log no longer holds the entries after this sequence number.
    #[error("the change log was pruned past sequence number {0}")]
    LogPruned(u64),
    #[error("storage failure: {0}")]
    Internal(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Internal(e.to_string())
    }
}

impl From<crate::codec::CodecError> for StoreError {
    fn from(e: crate::codec::CodecError) -> Self {
        StoreError::Internal(e.to_string())
    }
}
