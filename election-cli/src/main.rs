//! `election`: run a command on exactly one host of many, without changing its code.
//!
//! ```sh
//! election run --zookeeper zk1:2181,zk2:2181,zk3:2181 --path /services/maxwell -- bin/maxwell --config config.properties
//! election status --zookeeper zk1:2181 --path /services/maxwell
//! election watch --zookeeper zk1:2181 --path /services/maxwell --json
//! ```
//!
//! Exit codes are listed in [`exit`].
#![warn(missing_debug_implementations)]

mod backend;
mod child;
mod guard;
mod notify;
mod query;
mod run;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The supervisor's own exit codes; otherwise `election run` exits with its child's status
/// (`128 + N` for a child killed by signal `N`).
pub mod exit {
    /// A runtime failure (the election failed for good, the service refused).
    pub const FAILURE: i32 = 1;
    /// A usage error: a bad flag or value, a grace that does not fit; nothing was created.
    pub const USAGE: i32 = 2;
    /// `election status`: nobody leads.
    pub const NOBODY_LEADS: i32 = 3;
    /// The coordination service could not be reached within `--connection-timeout`; nothing was
    /// created (`EX_UNAVAILABLE`).
    pub const UNAVAILABLE: i32 = 69;
    /// The service refused this client for a reason of security (a server certificate not
    /// signed by `--zk-tls-ca` or `--etcd-tls-ca`, expired or for another host; a plain port
    /// where TLS was expected or TLS where it was not; a client certificate refused; a wrong
    /// user or password; no permission): nothing was created (`EX_NOPERM`).
    pub const REFUSED: i32 = 77;
    /// The command exists but cannot be executed.
    pub const NOT_EXECUTABLE: i32 = 126;
    /// The command was not found.
    pub const NOT_FOUND: i32 = 127;
}

/// Leader election for any program: run the same command on each host, exactly one copy runs.
#[derive(Debug, Parser)]
#[command(name = "election", version, about, long_about = None)]
struct Cli {
    /// Log format on stderr (filter with RUST_LOG, default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "ELECTION_LOG_FORMAT", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Join the election and run COMMAND while this copy leads.
    Run(RunArgs),
    /// Print the leader and the participants in queue order (exit 0 when someone leads, 3 when
    /// nobody does).
    Status(QueryArgs),
    /// Print one line per change of leader until interrupted.
    Watch(QueryArgs),
    /// The guard process (internal: started by `run`).
    #[command(name = guard::SUBCOMMAND, hide = true)]
    Guard,
}

/// Where the election is: the service and the path.
#[derive(Debug, Clone, Args)]
struct Service {
    /// ZooKeeper connect string, `host:port[,host:port...][/chroot]`.
    #[arg(
        long,
        env = "ELECTION_ZOOKEEPER",
        value_name = "HOSTS[/chroot]",
        required_unless_present = "etcd",
        conflicts_with = "etcd"
    )]
    zookeeper: Option<String>,
    /// etcd endpoints, `host:port[,host:port...]` (instead of --zookeeper).
    #[arg(long, env = "ELECTION_ETCD", value_name = "ENDPOINTS")]
    etcd: Option<String>,
    /// The election path, such as `/services/maxwell`.
    #[arg(long, env = "ELECTION_PATH")]
    path: String,
    /// Session timeout: how long after the last contact the service ends a dead copy's session
    /// (and a successor may lead). Accepts `500ms`, `10s`, `1m`.
    #[arg(long, env = "ELECTION_SESSION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    session_timeout: Duration,
    /// How long to keep trying to reach the service before giving up (exit 69).
    #[arg(long, env = "ELECTION_CONNECTION_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    connection_timeout: Duration,
    /// ZooKeeper's `tickTime` if not the default 2 s: a leader counts its contact with the
    /// ensemble's leader up to 3/4 of a tick early, so a true value steps down no earlier
    /// than needed.
    #[arg(long, env = "ELECTION_ZK_TICK_TIME", value_parser = parse_duration)]
    zk_tick_time: Option<Duration>,
    #[command(flatten)]
    security: Security,
}

/// The environment variables that hold a password itself: read by the supervisor, never
/// passed on to the command it runs (nor to its guard process).
pub const SECRET_ENV: [&str; 2] = [ZK_SASL_PASSWORD_ENV, ETCD_PASSWORD_ENV];
/// The ZooKeeper SASL password itself (instead of `--zk-sasl-password-file`).
pub const ZK_SASL_PASSWORD_ENV: &str = "ELECTION_ZK_SASL_PASSWORD";
/// The etcd password itself (instead of `--etcd-password-file`).
pub const ETCD_PASSWORD_ENV: &str = "ELECTION_ETCD_PASSWORD";

/// The help heading of the security flags.
const SECURITY: &str = "Security (no secret on the command line)";

/// TLS and credentials. No secret is ever a command-line value: a private key or a password
/// comes from a file that other users cannot read, or a password from an environment variable.
#[derive(Debug, Clone, Args)]
// Without the etcd feature, `--etcd` and its flags are refused before they are read.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
struct Security {
    /// ZooKeeper over TLS (its `secureClientPort`): the PEM file of the CA(s) the servers'
    /// certificates must chain to. The certificate must name the host as written in --zookeeper.
    #[arg(long, help_heading = SECURITY, env = "ELECTION_ZK_TLS_CA", value_name = "FILE", conflicts_with = "etcd")]
    zk_tls_ca: Option<PathBuf>,
    /// The client certificate (PEM) presented to ZooKeeper; with --zk-tls-key.
    #[arg(
        long,
        help_heading = SECURITY,
        env = "ELECTION_ZK_TLS_CERT",
        value_name = "FILE",
        requires_all = ["zk_tls_key", "zk_tls_ca"]
    )]
    zk_tls_cert: Option<PathBuf>,
    /// The client's private key (PEM); refused if other users can read the file.
    #[arg(long, help_heading = SECURITY, env = "ELECTION_ZK_TLS_KEY", value_name = "FILE", requires = "zk_tls_cert")]
    zk_tls_key: Option<PathBuf>,
    /// SASL DIGEST-MD5 user on ZooKeeper; the password from --zk-sasl-password-file or the
    /// ELECTION_ZK_SASL_PASSWORD environment variable. Nodes created are then writable by this
    /// user only (readable by anyone).
    #[arg(long, help_heading = SECURITY, env = "ELECTION_ZK_SASL_USER", value_name = "USER", conflicts_with = "etcd")]
    zk_sasl_user: Option<String>,
    /// A file holding the SASL password alone (one line); refused if other users can read it.
    #[arg(
        long,
        help_heading = SECURITY,
        env = "ELECTION_ZK_SASL_PASSWORD_FILE",
        value_name = "FILE",
        requires = "zk_sasl_user"
    )]
    zk_sasl_password_file: Option<PathBuf>,
    /// etcd user (etcd's `auth enable`); the password from --etcd-password-file or the
    /// ELECTION_ETCD_PASSWORD environment variable.
    #[arg(long, help_heading = SECURITY, env = "ELECTION_ETCD_USER", value_name = "USER", conflicts_with = "zookeeper")]
    etcd_user: Option<String>,
    /// A file holding the etcd password alone (one line); refused if other users can read it.
    #[arg(
        long,
        help_heading = SECURITY,
        env = "ELECTION_ETCD_PASSWORD_FILE",
        value_name = "FILE",
        requires = "etcd_user"
    )]
    etcd_password_file: Option<PathBuf>,
    /// etcd over TLS: the PEM file of the CA(s) the members' certificates must chain to.
    #[arg(long, help_heading = SECURITY, env = "ELECTION_ETCD_TLS_CA", value_name = "FILE", conflicts_with = "zookeeper")]
    etcd_tls_ca: Option<PathBuf>,
    /// The client certificate (PEM) presented to etcd (`--client-cert-auth`); with
    /// --etcd-tls-key.
    #[arg(
        long,
        help_heading = SECURITY,
        env = "ELECTION_ETCD_TLS_CERT",
        value_name = "FILE",
        requires_all = ["etcd_tls_key", "etcd_tls_ca"]
    )]
    etcd_tls_cert: Option<PathBuf>,
    /// The client's private key (PEM) for etcd; refused if other users can read the file.
    #[arg(long, help_heading = SECURITY, env = "ELECTION_ETCD_TLS_KEY", value_name = "FILE", requires = "etcd_tls_cert")]
    etcd_tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    #[command(flatten)]
    service: Service,
    /// This copy's id in the election (default: the host name).
    #[arg(long, env = "ELECTION_ID")]
    id: Option<String>,
    /// What others read about this copy (default: this host's address towards the service).
    #[arg(long, env = "ELECTION_PAYLOAD")]
    payload: Option<String>,
    /// Name this copy's entry so that stock Curator or kazoo clients on the same path order it
    /// by sequence, for a rolling migration (ZooKeeper only; the entry then holds the id and no
    /// payload): `curator-latch`, `curator-lock` or `kazoo`. See docs/migrating.md.
    #[arg(long, env = "ELECTION_COMPAT", value_name = "MODE", conflicts_with_all = ["etcd", "payload"])]
    compat: Option<election::Compatibility>,
    /// How long the command has to exit after SIGTERM before its process group gets SIGKILL.
    /// Must fit in the step-down budget (see `election run --help`); default a quarter of it.
    #[arg(long, env = "ELECTION_GRACE", value_parser = parse_duration)]
    grace: Option<Duration>,
    /// What to do when the command exits on its own.
    #[arg(long, value_enum, env = "ELECTION_ON_EXIT", default_value_t = OnExit::Resign)]
    on_exit: OnExit,
    /// Serve Prometheus metrics on this address (`127.0.0.1:9000`), at any path.
    #[arg(long, env = "ELECTION_METRICS", value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// The command and its arguments, run directly (no shell unless you write one).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// What to do when the command exits on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnExit {
    /// Hand over and rejoin at the tail, with a growing backoff when it keeps dying at once.
    Resign,
    /// Withdraw, then exit with the command's exact status (for systemd to restart).
    Exit,
    /// Run it again while still leading, with a growing backoff.
    Restart,
}

#[derive(Debug, Clone, Args)]
struct QueryArgs {
    #[command(flatten)]
    service: Service,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{e} (write a duration such as 500ms, 10s or 1m)"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() {
    let cli = Cli::parse();
    init_logs(cli.log_format);
    // One thread: the child is forked from the thread that lives as long as the supervisor,
    // which the parent-death signal needs (it fires when the forking thread ends).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("election: cannot start the runtime: {e}");
            std::process::exit(exit::FAILURE);
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Status(args) => query::status(args).await,
            Command::Watch(args) => query::watch(args).await,
            Command::Guard => {
                guard::run().await;
                0
            }
        }
    });
    // Tasks still on the runtime (a session close in flight) are dropped here.
    drop(runtime);
    std::process::exit(code);
}

/// Prints a one-line reason and returns `code`.
fn fail(code: i32, reason: impl std::fmt::Display) -> i32 {
    eprintln!("election: {reason}");
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["election", "status", "--path", "/x"].iter().chain(args))
    }

    #[test]
    fn security_flags_come_in_their_sets_and_with_their_service() {
        let zk = ["--zookeeper", "h:1"];
        let ok = |extra: &[&str]| {
            let args: Vec<&str> = zk.iter().chain(extra).copied().collect();
            parse(&args).unwrap_or_else(|e| panic!("{extra:?}: {e}"))
        };
        let refused = |extra: &[&str]| {
            let args: Vec<&str> = zk.iter().chain(extra).copied().collect();
            let e = parse(&args).map(|_| ()).unwrap_err();
            assert_eq!(e.exit_code(), exit::USAGE, "{extra:?}");
        };
        ok(&["--zk-tls-ca", "ca.pem"]);
        ok(&[
            "--zk-tls-ca",
            "ca",
            "--zk-tls-cert",
            "c",
            "--zk-tls-key",
            "k",
        ]);
        ok(&["--zk-sasl-user", "u", "--zk-sasl-password-file", "pw"]);
        // A certificate without its key or CA, a key without its certificate.
        refused(&["--zk-tls-ca", "ca", "--zk-tls-cert", "c"]);
        refused(&["--zk-tls-cert", "c", "--zk-tls-key", "k"]);
        refused(&["--zk-tls-ca", "ca", "--zk-tls-key", "k"]);
        // A password file without its user; no flag takes a password itself.
        refused(&["--zk-sasl-password-file", "pw"]);
        refused(&["--zk-sasl-password", "pw"]);
        refused(&["--etcd-password", "pw"]);
        // The other service's flags.
        refused(&["--etcd-user", "u"]);
        refused(&["--etcd-tls-ca", "ca"]);
        let e = Cli::try_parse_from([
            "election",
            "status",
            "--path",
            "/x",
            "--etcd",
            "h:1",
            "--zk-tls-ca",
            "ca",
        ])
        .map(|_| ())
        .unwrap_err();
        assert_eq!(e.exit_code(), exit::USAGE);
        let Command::Status(q) = ok(&["--zk-tls-ca", "ca.pem"]).command else {
            panic!("not status");
        };
        assert_eq!(q.service.security.zk_tls_ca, Some(PathBuf::from("ca.pem")));
    }
}
