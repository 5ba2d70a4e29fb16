//! One error type for the whole crate: a single human-readable line that names the file
//! or value at fault and what is wrong with it, and a kind that programs can act on
//! (`code()`: the string JavaScript sees as `err.code`).

use std::fmt;

/// What went wrong, for programs: each maps to one stable code (see docs/web.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not a decodable image.
    NotImage,
    /// An image whose data is damaged or cut short.
    DamagedImage,
    /// An image over the size limits (checked from its header).
    TooLarge,
    /// A model folder, manifest, config or weights file that cannot be used.
    BadModel,
    /// A shard whose size or sha256 does not match its manifest.
    Checksum,
    /// No GPU adapter, or one that refuses what the network needs.
    NoGpu,
    /// The GPU device was lost (driver reset, tab in the background too long).
    DeviceLost,
    /// A call made with values it cannot take (a class index out of range, say).
    BadInput,
    /// A head file (your own classes) that cannot be used: not one, damaged, truncated.
    BadHead,
    /// A head trained on another model than the one it is used with.
    OtherModel,
    /// Anything else.
    Other,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotImage => "not-image",
            ErrorKind::DamagedImage => "truncated",
            ErrorKind::TooLarge => "too-large",
            ErrorKind::BadModel => "bad-model",
            ErrorKind::Checksum => "checksum",
            ErrorKind::NoGpu => "no-webgpu",
            ErrorKind::DeviceLost => "device-lost",
            ErrorKind::BadInput => "bad-input",
            ErrorKind::BadHead => "bad-head",
            ErrorKind::OtherModel => "other-model",
            ErrorKind::Other => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }

    /// The same error with `kind`, unless it already has a more specific one.
    pub fn or_kind(mut self, kind: ErrorKind) -> Self {
        if self.kind == ErrorKind::Other {
            self.kind = kind;
        }
        self
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::new(ErrorKind::Other, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// `bail!("{path}: not an image")` returns early with an [`Error`] of kind `Other`;
/// `bail!(NotImage, "{path}: not an image")` with that kind.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $fmt:literal $($arg:tt)*) => {
        return Err($crate::Error::new($crate::ErrorKind::$kind, format!($fmt $($arg)*)))
    };
    ($($arg:tt)*) => { return Err($crate::Error::new($crate::ErrorKind::Other, format!($($arg)*))) };
}

/// Adds "what we were doing" in front of any displayable error.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(ErrorKind::Other, format!("{}: {e}", what())))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| Error::new(ErrorKind::Other, what()))
    }
}

/// Sets the kind of a failed result (where the kind is still `Other`).
pub trait WithKind<T> {
    fn kind(self, kind: ErrorKind) -> Result<T>;
}

impl<T> WithKind<T> for Result<T> {
    fn kind(self, kind: ErrorKind) -> Result<T> {
        self.map_err(|e| e.or_kind(kind))
    }
}
