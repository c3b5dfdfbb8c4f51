//! Reading secrets (private keys, passwords) from files, for the backends' builders and the
//! command line: a file that other users can read is refused, and nothing read is ever logged
//! or printed.

use std::path::Path;

use crate::error::ConfigError;

/// Reads a secret file whole (a PEM private key, say).
///
/// # Errors
/// - [`ConfigError::SecretReadableByOthers`]: on Unix, the file grants any permission to
///   users outside its owner and group (`chmod o-rwx` it; `0600` is usual);
/// - [`ConfigError::SecretFile`]: it cannot be read, is not UTF-8, or is empty.
pub fn read_secret_file(path: impl AsRef<Path>) -> Result<String, ConfigError> {
    let path = path.as_ref();
    let failed = |reason: String| ConfigError::SecretFile {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| failed(e.to_string()))?;
    if !meta.is_file() {
        return Err(failed("is not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o007 != 0 {
            return Err(ConfigError::SecretReadableByOthers {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
    if text.trim().is_empty() {
        return Err(failed("is empty".into()));
    }
    Ok(text)
}

/// Reads a password from a file, as [`read_secret_file`] does, without the one line ending
/// editors add (`\n` or `\r\n`); other whitespace is part of the password.
///
/// # Errors
/// As [`read_secret_file`]; also [`ConfigError::SecretFile`] when the file holds more than one
/// line.
pub fn read_password_file(path: impl AsRef<Path>) -> Result<String, ConfigError> {
    let path = path.as_ref();
    let mut text = read_secret_file(path)?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.contains('\n') {
        return Err(ConfigError::SecretFile {
            path: path.to_owned(),
            reason: "holds more than one line; a password file holds the password alone".into(),
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn tmp() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "election-secret-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn refuses_a_file_others_can_read_and_never_shows_its_content() {
        let d = tmp();
        let p = file(&d, "key.pem", "s3cret-key", 0o644);
        let e = read_secret_file(&p).unwrap_err();
        assert_eq!(
            e,
            ConfigError::SecretReadableByOthers {
                path: p.clone(),
                mode: 0o644
            }
        );
        let shown = e.to_string();
        assert!(shown.contains("0644") && shown.contains("chmod"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&p).unwrap(), "s3cret-key");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn password_files_lose_one_line_ending_only() {
        let d = tmp();
        let p = file(&d, "pw1", "pa ss\r\n", 0o600);
        assert_eq!(read_password_file(&p).unwrap(), "pa ss");
        let p = file(&d, "pw2", " pw \n", 0o640);
        assert_eq!(read_password_file(&p).unwrap(), " pw ");
        let p = file(&d, "pw3", "a\nb\n", 0o600);
        assert!(matches!(
            read_password_file(&p),
            Err(ConfigError::SecretFile { .. })
        ));
        let p = file(&d, "pw4", "\n", 0o600);
        assert!(matches!(
            read_password_file(&p),
            Err(ConfigError::SecretFile { .. })
        ));
        let missing = d.join("missing");
        assert!(matches!(
            read_password_file(&missing),
            Err(ConfigError::SecretFile { .. })
        ));
        std::fs::remove_dir_all(d).unwrap();
    }
}
