//! Locating the ZooKeeper jars and java: the one place that knows where they are installed.

use std::env;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
// Debian's zookeeper.jar has no slf4j binding: without this one the server logs nothing.
const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";

/// A usable ZooKeeper installation: the java binary and the classpath for `QuorumPeerMain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkInstall {
    /// The `java` executable.
    pub java: PathBuf,
    /// The classpath holding ZooKeeper and a logging binding.
    pub classpath: String,
}

/// Checks that ZooKeeper (`/usr/share/java/zookeeper.jar`) and `java` are installed.
///
/// # Panics
/// When either is missing, with the command that installs them. Tests that need ZooKeeper
/// fail rather than skip.
pub fn require_zookeeper() -> ZkInstall {
    static INSTALL: OnceLock<Result<ZkInstall, String>> = OnceLock::new();
    match INSTALL.get_or_init(find_install) {
        Ok(install) => install.clone(),
        Err(missing) => panic!(
            "ZooKeeper is not installed ({missing}): run `apt-get update && apt-get install -y \
             zookeeper` (or `scripts/test.sh`, which installs it)"
        ),
    }
}

fn find_install() -> Result<ZkInstall, String> {
    if !Path::new(ZOOKEEPER_JAR).is_file() {
        return Err(format!("{ZOOKEEPER_JAR} not found"));
    }
    let java = find_java().ok_or_else(|| "no `java` in JAVA_HOME or PATH".to_owned())?;
    let mut classpath = ZOOKEEPER_JAR.to_owned();
    if Path::new(SLF4J_SIMPLE_JAR).is_file() {
        classpath.push(':');
        classpath.push_str(SLF4J_SIMPLE_JAR);
    }
    Ok(ZkInstall { java, classpath })
}

fn find_java() -> Option<PathBuf> {
    if let Some(home) = env::var_os("JAVA_HOME") {
        let java = Path::new(&home).join("bin/java");
        if java.is_file() {
            return Some(java);
        }
    }
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join("java"))
        .find(|java| java.is_file())
}
