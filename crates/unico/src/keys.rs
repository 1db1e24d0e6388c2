//! The admin key: from `UNICO_ADMIN_KEY`, or generated once and kept in the data directory.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

/// File in the data directory holding a generated admin key (mode 0600).
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// Shortest admin key accepted from the environment.
const MIN_ADMIN_KEY_CHARS: usize = 16;

/// The admin key and whether it was just generated (and so must be printed once).
pub fn admin_key(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    if let Ok(key) = std::env::var("UNICO_ADMIN_KEY") {
        let key = key.trim().to_owned();
        if key.chars().count() < MIN_ADMIN_KEY_CHARS {
            bail!("UNICO_ADMIN_KEY must be at least {MIN_ADMIN_KEY_CHARS} characters");
        }
        return Ok((key, false));
    }
    let path = data_dir.join(ADMIN_KEY_FILE);
    if path.exists() {
        let key = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok((key.trim().to_owned(), false));
    }
    let key =
        unico_server::auth::generate_key("unico_admin_").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(key.as_bytes())?;
    file.sync_all()?;
    Ok((key, true))
}
