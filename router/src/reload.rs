//! Files reloaded while serving (the TLS certificate and key, the API keys file): each is checked every
//! [`RELOAD_INTERVAL`] by modification time, so a rotated Kubernetes Secret or cert-manager certificate needs no
//! restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often watched files are checked for a change.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Calls `reload` after any of `files` changed (its modification time, or whether it exists); runs until the task
/// is dropped. `reload` decides what a change means (and keeps what runs when the new content is bad).
pub async fn on_change(files: Vec<PathBuf>, mut reload: impl FnMut()) {
    let mut seen = stamps(&files);
    let mut ticker = tokio::time::interval(RELOAD_INTERVAL);
    loop {
        ticker.tick().await;
        let now = stamps(&files);
        if now != seen {
            seen = now;
            reload();
        }
    }
}

fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    files.iter().map(|file| modified(file)).collect()
}
