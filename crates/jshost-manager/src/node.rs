//! Running `node js-host.js ...`: pre-flight checks, the expected status, and its cache.

use jshost_core::error::excerpt;
use jshost_core::error::Build as _;
use jshost_core::{Error, ErrorKind, Result, Settings, Status};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, UNIX_EPOCH};
use tokio::process::Command;

/// Node 20 prints a deprecation warning for js-host's winston at every start; this silences it
/// (children inherit it), so a detached manager does not mistake it for a failure.
pub(crate) const NODE_ENV: (&str, &str) = ("NODE_NO_WARNINGS", "1");

/// The CA bundle Node reads at every start-up, before any code runs (tens of milliseconds for a
/// system bundle), and the name it is passed on under to jshost-node (see [`move_ca_aside`]).
const EXTRA_CA: &str = "NODE_EXTRA_CA_CERTS";
const EXTRA_CA_ASIDE: &str = "JSHOST_NODE_EXTRA_CA_CERTS";

/// Moves `NODE_EXTRA_CA_CERTS` aside for a jshost-node manager or host primary: neither makes a
/// TLS connection, so neither needs to parse the bundle. jshost-node passes
/// `JSHOST_NODE_EXTRA_CA_CERTS` on to the hosts a manager starts and gives it back to every
/// worker as `NODE_EXTRA_CA_CERTS`, so the config's code sees exactly what the user set.
/// js-host has no such hand-back: its processes keep the variable.
pub(crate) fn move_ca_aside(cmd: &mut Command, jshost_node: bool) {
    move_aside(cmd, jshost_node, std::env::var_os(EXTRA_CA));
}

fn move_aside(cmd: &mut Command, jshost_node: bool, bundle: Option<std::ffi::OsString>) {
    if let Some(bundle) = bundle.filter(|v| jshost_node && !v.is_empty()) {
        cmd.env_remove(EXTRA_CA).env(EXTRA_CA_ASIDE, bundle);
    }
}

#[cfg(test)]
mod ca_tests {
    use super::*;

    fn env_of(cmd: &Command) -> Vec<(String, Option<String>)> {
        cmd.as_std()
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    #[test]
    fn the_ca_bundle_is_moved_aside_for_jshost_node_only() {
        let bundle = Some(std::ffi::OsString::from("/etc/ssl/certs/ca.pem"));
        let mut cmd = Command::new("node");
        move_aside(&mut cmd, true, bundle.clone());
        let env = env_of(&cmd);
        assert!(env.contains(&(EXTRA_CA.to_owned(), None)), "{env:?}");
        assert!(
            env.contains(&(
                EXTRA_CA_ASIDE.to_owned(),
                Some("/etc/ssl/certs/ca.pem".to_owned())
            )),
            "{env:?}"
        );

        let mut js_host = Command::new("node");
        move_aside(&mut js_host, false, bundle);
        assert!(env_of(&js_host).is_empty(), "js-host keeps the variable");

        let mut unset = Command::new("node");
        move_aside(&mut unset, true, None);
        assert!(env_of(&unset).is_empty(), "nothing to move");
    }
}

/// The files a js-host command needs, checked and resolved.
#[derive(Debug, Clone)]
pub struct NodeSetup {
    /// The node binary.
    pub node: PathBuf,
    /// The absolute js-host CLI script.
    pub bin: PathBuf,
    /// The absolute config file.
    pub config: PathBuf,
    /// The working directory for node (the source root).
    pub cwd: PathBuf,
    /// Whether `bin` is jshost-node's (its `package.json` says so), not js-host's.
    pub jshost_node: bool,
    /// jshost-node flags for the hosts jshost starts (`--workers N`, `--watch`, `--call-timeout
    /// MS`, `--max-memory MB`, `--max-calls N`); empty for js-host, which has none.
    pub host_flags: Vec<String>,
}

impl NodeSetup {
    /// Resolves and checks the paths in `settings`.
    ///
    /// # Errors
    /// A config error naming the missing config file or js-host script (with the hint to run
    /// `npm ci`), or an invalid setting.
    pub fn check(settings: &Settings) -> Result<Self> {
        settings.validate()?;
        let config = settings.config_path();
        if !config.is_file() {
            return Err(Error::config(format!(
                "config file not found: {} (set config_file / source_root)",
                config.display()
            )));
        }
        check_config_owner(&config, crate::private::uid())?;
        let bin = settings.bin_path();
        if !bin.is_file() {
            return Err(Error::config(format!(
                "the host is not installed: {} does not exist ({}, or set path_to_bin)",
                bin.display(),
                install_hint(&settings.resolved_source_root(), &bin)
            )));
        }
        let jshost_node = package_name(&bin).as_deref() == Some("jshost-node");
        let mut host_flags = Vec::new();
        if jshost_node && settings.workers > 0 {
            host_flags.extend(["--workers".to_owned(), settings.workers.to_string()]);
        }
        if jshost_node && settings.watches() {
            host_flags.push("--watch".to_owned());
        }
        if jshost_node {
            if let Some(timeout) = settings.host_call_timeout {
                host_flags.extend(["--call-timeout".to_owned(), timeout.as_millis().to_string()]);
            }
            if let Some(mb) = settings.max_memory_mb {
                host_flags.extend(["--max-memory".to_owned(), mb.to_string()]);
            }
            if let Some(n) = settings.max_calls {
                host_flags.extend(["--max-calls".to_owned(), n.to_string()]);
            }
        }
        Ok(NodeSetup {
            node: settings.path_to_node.clone(),
            bin,
            config,
            cwd: settings.resolved_source_root(),
            jshost_node,
            host_flags,
        })
    }

    /// The host flags as jshost-node's manager takes them with `/host/start` (`{"watch": false,
    /// "workers": null, "callTimeout": 700, ...}`; `null` leaves a flag out); `None` for js-host.
    pub fn host_options(&self) -> Option<serde_json::Value> {
        if !self.jshost_node {
            return None;
        }
        let mut options = serde_json::json!({
            "watch": false, "workers": null, "callTimeout": null, "maxMemory": null, "maxCalls": null,
        });
        let mut flags = self.host_flags.iter();
        while let Some(flag) = flags.next() {
            let key = match flag.as_str() {
                "--watch" => {
                    options["watch"] = true.into();
                    continue;
                }
                "--workers" => "workers",
                "--call-timeout" => "callTimeout",
                "--max-memory" => "maxMemory",
                "--max-calls" => "maxCalls",
                _ => continue,
            };
            if let Some(n) = flags.next().and_then(|v| v.parse::<u64>().ok()) {
                options[key] = n.into();
            }
        }
        Some(options)
    }

    /// `node BIN CONFIG ARGS...` in the source root, with warnings silenced and no stdin.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.node);
        cmd.arg(&self.bin)
            .arg(&self.config)
            .args(args)
            .current_dir(&self.cwd)
            .env(NODE_ENV.0, NODE_ENV.1)
            .stdin(Stdio::null());
        cmd
    }

    /// Turns a spawn failure into an error naming node.
    pub fn spawn_error(&self, err: std::io::Error) -> Error {
        let msg = if err.kind() == std::io::ErrorKind::NotFound {
            format!(
                "node not found: cannot run {:?} (install Node.js or set path_to_node)",
                self.node
            )
        } else {
            format!("cannot run {:?}", self.node)
        };
        Error::config(msg).with_source(err)
    }

    /// Runs `node BIN CONFIG ARGS...` to completion within `timeout`; what it printed and how it
    /// exited. `what` names the command in a timeout error.
    ///
    /// # Errors
    /// A config error when node cannot be started, a timeout error when it takes too long.
    ///
    /// # Cancel safety
    /// Dropping the future kills the process.
    pub async fn output(&self, args: &[&str], timeout: Duration, what: &str) -> Result<std::process::Output> {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let setup = self.clone();
        let what = what.to_owned();
        // On the SDK's runtime: the child is reaped there, whatever runtime the caller is on.
        jshost_client::driver::run(async move {
            let child = cmd.spawn().map_err(|e| setup.spawn_error(e))?;
            tokio::time::timeout(timeout, child.wait_with_output())
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::Timeout,
                        format!("{what} did not finish within {timeout:?}"),
                    )
                })?
                .map_err(|e| Error::process(format!("waiting for {what} failed")).with_source(e))
        })
        .await
    }

    /// Runs `node BIN CONFIG ARGS...` to completion within `timeout` and returns its stdout.
    ///
    /// # Errors
    /// A config error carrying the exit status and stderr when node fails (the config file
    /// throws, exports no object...), a timeout error when it takes too long.
    pub async fn run(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let what = format!("`js-host {} {}`", self.config.display(), args.join(" "));
        let output = self.output(args, timeout, &what).await?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(Error::config(format!(
                "js-host could not load the config file {} ({}): {}",
                self.config.display(),
                output.status,
                tail(&stderr, 1500)
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The status js-host computes for this config (`js-host CONFIG --config`, or with
    /// `--manager` for a manager's).
    ///
    /// # Errors
    /// As [`NodeSetup::run`], and a config error when the output is not a js-host 0.12 status.
    pub async fn expected_status(&self, manager: bool, timeout: Duration) -> Result<Status> {
        let args: &[&str] = if manager {
            &["--config", "--manager"]
        } else {
            &["--config"]
        };
        let out = self.run(args, timeout).await?;
        let status = Status::parse(&out)
            .map_err(|e| e.context(format!("`js-host {} --config`", self.config.display())))?;
        check_version(&status, &format!("the js-host at {}", self.bin.display()))?;
        Ok(status)
    }

    /// The version in js-host's `package.json` next to the bin script, if readable.
    pub fn js_host_version(&self) -> Option<String> {
        let pkg = self.bin.parent()?.parent()?.join("package.json");
        let text = std::fs::read_to_string(pkg).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        value["version"].as_str().map(str::to_owned)
    }
}

/// A config is code that runs as this user: it must be a regular file owned by this user that
/// no one else may write (else another local user could run code as us by writing it).
///
/// # Errors
/// A config error naming the file and what is wrong with it.
pub(crate) fn check_config_owner(config: &std::path::Path, uid: u32) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(config).map_err(|e| {
        Error::config(format!("cannot inspect the config file {}", config.display())).with_source(e)
    })?;
    let why = if !meta.is_file() {
        "it is not a regular file".to_owned()
    } else if meta.uid() != uid {
        format!("it is owned by uid {}, not by this user (uid {uid})", meta.uid())
    } else if meta.permissions().mode() & 0o022 != 0 {
        format!(
            "other users may write it (mode {:o}; run `chmod go-w {}`)",
            meta.permissions().mode() & 0o777,
            config.display()
        )
    } else {
        return Ok(());
    };
    Err(Error::config(format!(
        "jshost refuses to run the config file {}: {why}. A config is code that runs as you, so \
         it must be a regular file of yours that no one else can write",
        config.display()
    )))
}

/// The `name` in the `package.json` of the package whose `bin/` holds `bin`.
fn package_name(bin: &std::path::Path) -> Option<String> {
    let pkg = bin.parent()?.parent()?.join("package.json");
    let text = std::fs::read_to_string(pkg).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["name"].as_str().map(str::to_owned)
}

/// A config error unless `status` is from js-host 0.12.x.
///
/// # Errors
/// A config error naming `what` and the version found.
pub(crate) fn check_version(status: &Status, what: &str) -> Result<()> {
    if status.is_supported_version() {
        Ok(())
    } else {
        Err(Error::config(format!(
            "{what} speaks js-host protocol {}, but this SDK speaks js-host 0.12.x (use jshost-node, or pin \"js-host\": \"0.12.0\" in package.json)",
            status.version()
        )))
    }
}

/// The last `max` characters of `text`, trimmed, without ANSI colour codes.
pub(crate) fn tail(text: &str, max: usize) -> String {
    let plain = strip_ansi(text);
    let text = plain.trim();
    let count = text.chars().count();
    if count <= max {
        text.to_owned()
    } else {
        let skip = count - max;
        let start = text.char_indices().nth(skip).map(|(i, _)| i).unwrap_or(0);
        format!("...{}", &text[start..])
    }
}

/// A cache of `js-host CONFIG --config` output, so a warm start does not pay for a node start-up.
///
/// Entries are keyed by the config file's absolute path, size and modification time, the node
/// and js-host paths and the js-host version. A cached status only ever proposes: callers must
/// still compare it with the live host's status, and recompute it on a mismatch. The entries
/// live in this user's private directory (`status-HASH.json`): another user can neither read
/// nor plant them, and an entry that is not a regular file of this user's is ignored.
#[derive(Debug, Clone)]
pub struct StatusCache {
    dir: PathBuf,
}

impl StatusCache {
    /// The cache in this user's private directory.
    ///
    /// # Errors
    /// A config error naming the directory when it is refused (see `private_dir`).
    pub fn private() -> Result<Self> {
        Ok(StatusCache {
            dir: crate::private::dir()?,
        })
    }

    fn entry(&self, setup: &NodeSetup) -> Option<PathBuf> {
        let meta = std::fs::metadata(&setup.config).ok()?;
        let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        let key = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            setup.config.display(),
            meta.len(),
            mtime.as_nanos(),
            setup.node.display(),
            setup.bin.display(),
            setup.js_host_version().unwrap_or_default()
        );
        Some(self.dir.join(format!("status-{}.json", jshost_core::hash(key))))
    }

    /// The cached status for this setup, if any.
    pub fn get(&self, setup: &NodeSetup) -> Option<Status> {
        let text = crate::private::read_trusted(&self.entry(setup)?)?;
        Status::parse(&text).ok()
    }

    /// Stores `status` (best effort: a cache that cannot be written is only logged).
    pub fn put(&self, setup: &NodeSetup, status: &Status) {
        let Some(path) = self.entry(setup) else { return };
        if let Err(e) = crate::private::write_atomic(&path, status.to_string().as_bytes()) {
            tracing::debug!(error = %e, "cannot write the status cache");
        }
    }
}

/// What a manager started with the same config reports: the host's status with type `Manager`
/// (a manager has no `functions: null` default).
pub(crate) fn manager_status_for(host: &Status) -> Status {
    let mut value = host.with_kind("Manager").as_value().clone();
    if let Some(config) = value.get_mut("config").and_then(|c| c.as_object_mut()) {
        if config.get("functions").map(|f| f.is_null()).unwrap_or(false) {
            config.remove("functions");
        }
    }
    Status::from_value(value).unwrap_or_else(|_| host.with_kind("Manager"))
}

/// What to run in `root` to install the missing host script `bin`: `npm ci` where a lock file
/// pins the dependencies, else `npm install`; jshost-node is not published on npm yet, so a
/// project installs it from a clone (this crate's own when it is built from one).
fn install_hint(root: &std::path::Path, bin: &std::path::Path) -> String {
    let root_shown = root.display();
    if root.join("package-lock.json").is_file() {
        return format!("run `npm ci` in {root_shown}");
    }
    if !bin.to_string_lossy().contains("jshost-node") {
        return format!("run `npm install` in {root_shown}");
    }
    let clone = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node");
    let node_dir = match std::fs::canonicalize(&clone) {
        Ok(dir) if dir.join("package.json").is_file() => dir.display().to_string(),
        _ => "PATH/TO/jshost/node".to_owned(),
    };
    format!(
        "run `npm install` in {root_shown}; jshost-node is not on npm yet: `npm install {node_dir}` \
         installs it from a clone of jshost"
    )
}

/// Shortens long text for messages.
pub(crate) fn short(text: &str) -> String {
    excerpt(strip_ansi(text).trim(), 800)
}

/// `text` without ANSI escape sequences (node colours its error output on a terminal).
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI: ESC [ parameters... final byte in @..~
        if chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_of_other_users_or_writable_by_others_are_refused() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let path = std::env::temp_dir().join(format!("jshost-config-owner-{}.js", std::process::id()));
        std::fs::write(&path, "module.exports = {};").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let uid = std::fs::metadata(&path).expect("meta").uid();
        check_config_owner(&path, uid).expect("own file, 0644");
        let e = check_config_owner(&path, uid + 1)
            .expect_err("other owner")
            .to_string();
        assert!(
            e.contains("owned by uid") && e.contains(&path.display().to_string()),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).expect("chmod");
        let e = check_config_owner(&path, uid)
            .expect_err("group-writable")
            .to_string();
        assert!(e.contains("chmod go-w"), "{e}");
        std::fs::remove_file(&path).expect("cleanup");
    }

    #[test]
    fn the_install_hint_fits_the_project() {
        let root = std::env::temp_dir().join(format!("jshost-install-hint-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("mkdir");
        let bin = root.join(DEFAULT_BIN_FOR_TEST);
        let hint = install_hint(&root, &bin);
        assert!(
            hint.contains("`npm install`") && !hint.contains("npm ci") && hint.contains("npm install /"),
            "no lock file: {hint}"
        );
        let js_host = install_hint(&root, &root.join("node_modules/js-host/bin/js-host.js"));
        assert_eq!(js_host, format!("run `npm install` in {}", root.display()));
        std::fs::write(root.join("package-lock.json"), "{}").expect("write");
        assert_eq!(
            install_hint(&root, &bin),
            format!("run `npm ci` in {}", root.display())
        );
        std::fs::remove_dir_all(&root).expect("cleanup");
    }

    const DEFAULT_BIN_FOR_TEST: &str = jshost_core::settings::DEFAULT_PATH_TO_BIN;

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("  abc  ", 10), "abc");
        assert_eq!(tail("abcdef", 3), "...def");
    }

    #[test]
    fn ansi_codes_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[31mError\u{1b}[39m: x"), "Error: x");
        assert_eq!(tail("\u{1b}[1;33mwarn\u{1b}[0m", 100), "warn");
    }

    #[test]
    fn manager_status_drops_a_null_functions_default() {
        let host =
            Status::parse(r#"{"type":"Host","version":"0.12.0","config":{"functions":null,"port":1}}"#)
                .expect("valid");
        let m = manager_status_for(&host);
        assert_eq!(m.kind(), "Manager");
        assert!(m.config().get("functions").is_none());
    }
}
