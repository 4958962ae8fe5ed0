//! The command line: global flags (mirroring [`Settings`] and the `JSHOST_*` variables) and the
//! commands.

use clap::{ArgAction, Args, Parser, Subcommand};
use jshost::Settings;
use std::path::PathBuf;
use std::time::Duration;

/// The exit-code table, shown at the end of `--help` (kept in step with `crate::failure::code`).
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the JavaScript function failed (its stack is printed to stderr)
  2  usage or configuration error: bad flags or --data, node / js-host / the config file
     missing, a config that does not load, the config's port held by another program
  3  connection or process error: nothing answers for the config (run `jshost host start`,
     or pass --use-manager), the host crashed or was stopped, a manager or host could not start
  4  timeout: no answer within --timeout (or a start-up deadline)
  5  unexpected response: an HTTP status other than 200 and 500, output that is not UTF-8
  6  unknown function: the host serves no function of that name (nothing was sent)
  7  not running: no js-host manager, or no managed host for the config, to act on
  8  I/O error: reading stdin or the logfile, writing stdout

Every error is printed to stderr as `jshost: <message>`.";

const LONG_ABOUT: &str = "\
Call the JavaScript functions of a js-host 0.12 (a persistent Node.js process serving the functions \
of a host.config.js over HTTP), run managed hosts for development, and follow their logs.

By default `call` and `status` reach the host at the config's address (or at --root-url): one you \
run yourself, or the managed host of a js-host manager listening there, such as the one `host start` \
starts. Nothing is started for them: with nothing running they exit with code 3 and say what to run. \
With --use-manager (JSHOST_USE_MANAGER=1) a detached js-host manager starts the host if none runs \
and keeps it warm between runs; it stops the host after the config's disconnectTimeout once the \
last connection closes. `host start` holds a connection of its own: its host runs until `host stop` \
or `manager stop`.

Every global flag can also be set with the JSHOST_* variable shown next to it; an empty variable \
counts as unset.";

/// `jshost`: call js-host functions, manage hosts and managers, follow logs.
#[derive(Debug, Parser)]
#[command(
    name = "jshost",
    version,
    about = "Call the JavaScript functions of a js-host (Node.js) process, manage hosts, follow logs",
    long_about = LONG_ABOUT,
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Where the host is and how to reach it.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted before or after any command.
#[derive(Debug, Args)]
pub struct Global {
    /// The directory holding node_modules (and, by default, the config) [default: the current
    /// directory]
    #[arg(long, global = true, env = "JSHOST_SOURCE_ROOT", value_name = "DIR", value_parser = path_or_unset)]
    pub source_root: Option<PathBuf>,

    /// The js-host config file, relative to the source root [default: host.config.js]
    #[arg(long, global = true, env = "JSHOST_CONFIG_FILE", value_name = "FILE", value_parser = path_or_unset)]
    pub config_file: Option<PathBuf>,

    /// Start and reuse hosts through a detached js-host manager (development); the variable
    /// takes true/false, 1/0, yes/no, on/off
    #[arg(
        long,
        global = true,
        env = "JSHOST_USE_MANAGER",
        action = ArgAction::SetTrue,
        value_parser = bool_or_unset
    )]
    pub use_manager: bool,

    /// The node binary [default: node]
    #[arg(long, global = true, env = "JSHOST_PATH_TO_NODE", value_name = "PATH", value_parser = path_or_unset)]
    pub path_to_node: Option<PathBuf>,

    /// The host's CLI script, relative to the source root [default:
    /// node_modules/jshost-node/bin/jshost-node.js; js-host 0.12's is
    /// node_modules/js-host/bin/js-host.js]
    #[arg(long, global = true, env = "JSHOST_PATH_TO_BIN", value_name = "PATH", value_parser = path_or_unset)]
    pub path_to_bin: Option<PathBuf>,

    /// How long a function call may take, in seconds (fractions allowed) [default: 10]
    #[arg(long, global = true, env = "JSHOST_FUNCTION_TIMEOUT", value_name = "SECONDS", value_parser = seconds_or_unset)]
    pub timeout: Option<Duration>,

    /// Send requests to this URL (a caching reverse proxy, no trailing /) instead of the config's
    /// address; several, separated by commas, spread calls over several hosts; not with
    /// --use-manager
    #[arg(long, global = true, env = "JSHOST_ROOT_URL", value_name = "URL")]
    pub root_url: Option<String>,

    /// Log what jshost does to stderr: -v info, -vv debug, -vvv trace
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    /// The SDK settings: `Settings::from_env` (every `JSHOST_*` variable), then the flags on top.
    pub fn settings(&self) -> jshost::Result<Settings> {
        let mut settings = Settings::from_env()?;
        if self.use_manager {
            settings = settings.use_manager(true);
        }
        if let Some(dir) = set(&self.source_root) {
            settings = settings.source_root(dir);
        }
        if let Some(file) = set(&self.config_file) {
            settings = settings.config_file(file);
        }
        if let Some(node) = set(&self.path_to_node) {
            settings = settings.path_to_node(node);
        }
        if let Some(bin) = set(&self.path_to_bin) {
            settings = settings.path_to_bin(bin);
        }
        if let Some(timeout) = self.timeout.filter(|t| !t.is_zero()) {
            settings = settings.function_timeout(timeout);
        }
        if let Some(urls) = self.root_url.as_deref().filter(|u| !u.trim().is_empty()) {
            // Several URLs, separated by commas, spread calls over several hosts.
            settings = settings.root_urls(urls.split(',').map(str::trim).filter(|u| !u.is_empty()));
        }
        Ok(settings)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call a function and print its output (followed by a newline) to stdout
    Call {
        /// The function's name (as listed in the host's status)
        name: String,
        /// The data to call it with: a JSON object or array, or `-` to read it from stdin
        #[arg(short, long, value_name = "JSON", default_value = "{}")]
        data: String,
    },
    /// Print the host's status as JSON; with --use-manager, also the manager's URL and whether it
    /// runs, and the managed host's URL, logfile and connections (exit code 3 when no host runs)
    Status,
    /// Start, stop or restart the managed host for the config (always through the manager)
    Host {
        /// What to do with it.
        #[command(subcommand)]
        action: HostAction,
    },
    /// Control the js-host manager for the config
    Manager {
        /// What to do with it.
        #[command(subcommand)]
        action: ManagerAction,
    },
    /// Print the managed host's logfile
    Logs {
        /// Keep printing what is appended to it, until Ctrl-C (or until the file is removed)
        #[arg(short, long)]
        follow: bool,
    },
}

/// `jshost host ...`
#[derive(Debug, Subcommand)]
pub enum HostAction {
    /// Start the host (and, if needed, a detached manager), or reuse the running one; print its
    /// URL and logfile. It holds a connection that only `host stop` or `manager stop` ends, so the
    /// host runs until then; `call` and `status` use it without --use-manager
    Start,
    /// Stop the host; the manager keeps running
    Stop,
    /// Restart the host on the same port and logfile, with fresh JavaScript state
    Restart,
}

/// `jshost manager ...`
#[derive(Debug, Subcommand)]
pub enum ManagerAction {
    /// Stop the manager and every host it runs (exit code 7 when none runs)
    Stop,
}

fn set(path: &Option<PathBuf>) -> Option<&PathBuf> {
    path.as_ref().filter(|p| !p.as_os_str().is_empty())
}

/// Any path; an empty value (an empty variable) means "unset", as in `Settings::from_env`.
fn path_or_unset(value: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(value))
}

/// A boolean as `Settings::from_env` accepts it; empty means unset (false).
fn bool_or_unset(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "0" | "false" | "no" | "off" => Ok(false),
        "1" | "true" | "yes" | "on" => Ok(true),
        _ => Err("expected true or false (or 1/0, yes/no, on/off)".into()),
    }
}

/// A positive number of seconds; empty means unset (returned as zero, which is otherwise refused).
fn seconds_or_unset(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(Duration::ZERO);
    }
    value
        .parse::<f64>()
        .ok()
        .filter(|secs| secs.is_finite() && *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("expected a positive number of seconds, got {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn values_parse_like_settings_from_env() {
        assert_eq!(seconds_or_unset("0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(seconds_or_unset(""), Ok(Duration::ZERO));
        assert!(seconds_or_unset("0").is_err());
        assert!(seconds_or_unset("soon").is_err());
        assert!(seconds_or_unset("-1").is_err());
        assert_eq!(bool_or_unset("YES"), Ok(true));
        assert_eq!(bool_or_unset(""), Ok(false));
        assert!(bool_or_unset("maybe").is_err());
    }

    #[test]
    fn flags_make_settings() {
        let cli = Cli::try_parse_from([
            "jshost",
            "call",
            "f",
            "--source-root",
            "/srv",
            "--config-file",
            "x.js",
            "--timeout",
            "2.5",
            "--use-manager",
        ])
        .expect("parses");
        let s = cli.global.settings().expect("valid settings");
        assert_eq!(s.source_root.as_deref(), Some(std::path::Path::new("/srv")));
        assert_eq!(s.config_path(), std::path::Path::new("/srv/x.js"));
        assert_eq!(s.function_timeout, Duration::from_millis(2500));
        assert!(s.use_manager);
    }
}
