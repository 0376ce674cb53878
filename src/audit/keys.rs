//! The checkpoint signing key (SPEC §13): `audit.signing_key` (from the
//! environment: `DM_AUDIT_SIGNING_KEY`), or in dev mode without one, a key
//! made once and kept in a file beside the data, so that checkpoints of
//! earlier runs still verify.

use super::checkpoint::AuditKey;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where dev mode keeps its generated key when `audit.key_file` is empty:
/// beside the default game's SQLite file, else in `data/`.
pub fn default_key_file(default_game_url: &str) -> PathBuf {
    let dir = default_game_url
        .strip_prefix("sqlite://")
        .filter(|p| *p != ":memory:")
        .and_then(|p| Path::new(p).parent())
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("data"));
    dir.join("audit-signing.key")
}

/// The key: `signing_key` when given; else the one in `key_file`, made
/// there (mode 0600) when `may_create` and the file does not exist.
pub fn load(signing_key: &str, key_file: &Path, may_create: bool) -> Result<AuditKey, String> {
    if !signing_key.is_empty() {
        return AuditKey::parse(signing_key);
    }
    match std::fs::read_to_string(key_file) {
        Ok(text) => AuditKey::parse(&text).map_err(|e| format!("{}: {e}", key_file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && may_create => {
            let key = AuditKey::generate();
            if let Some(dir) = key_file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let mut file = open_private(key_file)
                .map_err(|e| format!("cannot write {}: {e}", key_file.display()))?;
            writeln!(file, "{}", key.to_hex())
                .map_err(|e| format!("cannot write {}: {e}", key_file.display()))?;
            tracing::info!(path = %key_file.display(), public_key = %key.public_hex(), "audit signing key made (dev mode)");
            Ok(key)
        }
        Err(e) => Err(format!(
            "no audit.signing_key and cannot read {}: {e}",
            key_file.display()
        )),
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_key_is_made_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("dm-audit-key-{}", rand::random::<u32>()));
        let file = dir.join("audit-signing.key");
        assert!(load("", &file, false).is_err(), "not made unless allowed");
        let made = load("", &file, true).expect("made");
        let again = load("", &file, true).expect("read");
        assert_eq!(made.public_hex(), again.public_hex());
        let given = AuditKey::generate();
        let from_config = load(&given.to_hex(), &file, true).expect("given");
        assert_eq!(from_config.public_hex(), given.public_hex());
        assert_eq!(
            default_key_file("sqlite://data/game1.db"),
            PathBuf::from("data/audit-signing.key")
        );
        assert_eq!(
            default_key_file("mysql://u@h/db"),
            PathBuf::from("data/audit-signing.key")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
