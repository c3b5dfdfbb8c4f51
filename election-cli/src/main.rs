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
