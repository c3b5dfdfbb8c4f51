//! Locating the etcd binary: the one place that knows where it is installed.

use std::env;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable that names the etcd binary to use.
pub const ETCD_BIN_VAR: &str = "ELECTION_ETCD_BIN";

/// Where `scripts/test.sh` unpacks Debian's `etcd-server` package (`dpkg -x`), under the user's
/// cache directory: the binary is then `<cache>/election-etcd/usr/bin/etcd`.
pub const CACHE_SUBDIR: &str = "election-etcd";

/// Finds the etcd binary: `$ELECTION_ETCD_BIN`, then `etcd` on the `PATH`, then
/// `$XDG_CACHE_HOME/election-etcd/usr/bin/etcd` or `$HOME/.cache/election-etcd/usr/bin/etcd`
/// (where `scripts/test.sh` unpacks it).
///
/// # Panics
/// When none is found, with the commands that install it. Tests that need etcd fail rather than
/// skip.
pub fn require_etcd() -> PathBuf {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match FOUND.get_or_init(find_etcd) {
        Ok(path) => path.clone(),
        Err(looked) => panic!(
            "etcd is not installed (looked in {looked}): run `scripts/test.sh`, which unpacks \
             Debian's etcd-server without starting a service (`apt-get download etcd-server && \
             dpkg -x etcd-server_*.deb ~/.cache/{CACHE_SUBDIR}`), or set {ETCD_BIN_VAR} to an \
             etcd 3.4+ binary"
        ),
    }
}

fn find_etcd() -> Result<PathBuf, String> {
    let mut looked = Vec::new();
    if let Some(bin) = env::var_os(ETCD_BIN_VAR) {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        looked.push(format!("${ETCD_BIN_VAR}={}", bin.display()));
    }
    if let Some(path) = env::var_os("PATH") {
        if let Some(bin) = env::split_paths(&path)
            .map(|dir| dir.join("etcd"))
            .find(|bin| bin.is_file())
        {
            return Ok(bin);
        }
    }
    looked.push("PATH".into());
    for cache in cache_dirs() {
        let bin = cache.join(CACHE_SUBDIR).join("usr/bin/etcd");
        if bin.is_file() {
            return Ok(bin);
        }
        looked.push(bin.display().to_string());
    }
    Err(looked.join(", "))
}

fn cache_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(xdg) = env::var_os("XDG_CACHE_HOME") {
        dirs.push(PathBuf::from(xdg));
    }
    if let Some(home) = env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cache"));
    }
    dirs
}
