//! The CRL directory's convention: a file is written under a hidden name and renamed into place,
//! so that a reload (which skips hidden files) never reads it half written.

use std::path::Path;

/// Writes `bytes` to `path` through a hidden file of the same directory renamed into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "a file path is needed")
    })?;
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    hidden.push(".tmp");
    let tmp = path.with_file_name(hidden);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
