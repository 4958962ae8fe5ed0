//! What each command does, with the SDK.

use crate::cli::{Command, HostAction, ManagerAction};
use crate::failure::{code, Failure};
use jshost::{Error, JsHost, Settings};
use jshost_manager::{HostInfo, Manager};
use serde_json::{json, Value};
use std::io::{Read, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// How often `logs -f` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// How long `manager stop` waits for the manager to stop answering.
const MANAGER_STOP_WAIT: Duration = Duration::from_secs(5);

/// Runs `command` with `settings`.
pub async fn run(command: Command, settings: Settings) -> Result<(), Failure> {
    match command {
        Command::Call { name, data } => call(&settings, &name, &data).await,
        Command::Status if settings.use_manager => managed_status(&settings).await,
        Command::Status => direct_status(&settings).await,
        Command::Host { action } => host(&settings.use_manager(true), action).await,
        Command::Manager {
            action: ManagerAction::Stop,
        } => manager_stop(&settings).await,
        Command::Logs { follow } => logs(&settings.use_manager(true), follow).await,
    }
}

async fn call(settings: &Settings, name: &str, data: &str) -> Result<(), Failure> {
    let body = read_data(data)?;
    let host = connect(settings, Some(&this_command_with_the_manager())).await?;
    let result = host.function(name).call_raw(body).await;
    // Close a managed connection now (if this fails, the SDK's exit watchdog closes it).
    let _ = host.disconnect().await;
    let mut output = result.map_err(|e| call_failure(settings, e))?;
    output.push('\n');
    write_stdout(output.as_bytes())
}

fn call_failure(settings: &Settings, e: Error) -> Failure {
    let managed_host_gone = settings.use_manager && e.is_process();
    let failure = Failure::from(e);
    if managed_host_gone {
        failure.with_hint("`jshost host restart` starts it again; `jshost logs` shows its log")
    } else {
        failure
    }
}

/// The bytes of `--data` (or of stdin for `-`), checked to be a JSON object or array. They are
/// sent as given, so the request's `?hash=` is the hash of exactly these bytes.
fn read_data(arg: &str) -> Result<Vec<u8>, Failure> {
    let (bytes, what) = if arg == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::io("cannot read the data from stdin", e))?;
        (bytes, "the data read from stdin")
    } else {
        (arg.as_bytes().to_vec(), "--data")
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Err(e) => Err(Failure::usage(format!("{what} is not valid JSON: {e}"))),
        Ok(Value::Object(_) | Value::Array(_)) => Ok(bytes),
        Ok(other) => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                _ => "a string",
            };
            Err(Failure::usage(format!(
                "{what} must be a JSON object or array (js-host's rule), got {kind}"
            )))
        }
    }
}

/// Connects as the settings say. Without --use-manager, a host at the config's address serves the
/// command; so does the host of a manager for the config listening there (after `jshost host
/// start`), as with --use-manager but without starting anything. When nothing runs, the failure
/// says what to run: `jshost host start`, or `retry` (this command with --use-manager) for `call`.
async fn connect(settings: &Settings, retry: Option<&str>) -> Result<JsHost, Failure> {
    let e = match JsHost::connect(settings.clone()).await {
        Ok(host) => return Ok(host),
        Err(e) => e,
    };
    if settings.use_manager {
        return Err(e.into());
    }
    let config = settings.config_path();
    if e.is_connection() {
        let start = format!(
            "run `jshost host start` (a managed host for {}, kept up until `jshost host stop`), then \
             this command again",
            config.display()
        );
        return Err(Failure::from(e).with_hint(match retry {
            Some(command) => {
                format!("{start}; or have the manager start the host for this command alone: `{command}`")
            }
            None => start,
        }));
    }
    if e.is_config() && e.url().is_some() {
        // A manager for the config listens at its address (`jshost host start`, or a managed
        // client): its host serves the command.
        if let Ok(Some(manager)) = Manager::find(settings).await {
            if e.url() == Some(manager.url()) {
                return match manager.host_status(&config).await? {
                    Some(_) => JsHost::connect(settings.clone().use_manager(true))
                        .await
                        .map_err(Failure::from),
                    None => Err(no_managed_host(&manager, &config, code::CONNECTION)),
                };
            }
        }
    }
    Err(e.into())
}

/// The command line this process was started with, with --use-manager added, quoted for a POSIX
/// shell.
fn this_command_with_the_manager() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "jshost".to_owned());
    std::iter::once(program)
        .chain(std::iter::once("--use-manager".to_owned()))
        .chain(args)
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `arg` as a POSIX shell word: as is when it holds only characters no shell treats specially,
/// otherwise in single quotes.
fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

async fn direct_status(settings: &Settings) -> Result<(), Failure> {
    let host = connect(settings, None).await?;
    let status = host.request_status().await.unwrap_or_else(|| host.status());
    // Closes the connection to a managed host (nothing for a host run otherwise).
    let _ = host.disconnect().await;
    print_json(status.as_value())
}

/// `status --use-manager`: never starts anything.
async fn managed_status(settings: &Settings) -> Result<(), Failure> {
    let config = settings.config_path();
    match Manager::find(settings).await {
        Err(e) if e.is_connection() => {
            let url = e.url().map(str::to_owned);
            print_json(&json!({
                "manager": { "url": url, "running": false },
                "host": null,
            }))?;
            Err(Failure::new(
                code::CONNECTION,
                format!(
                    "no js-host manager runs for {} (nothing answers at {})",
                    config.display(),
                    url.as_deref().unwrap_or("the config's address")
                ),
            )
            .with_hint("`jshost host start` starts a managed host; `jshost call --use-manager ...` too"))
        }
        Err(e) => Err(e.into()),
        // A host for the config (not run by a manager) answers at the config's address.
        Ok(None) => {
            let host = connect(&settings.clone().use_manager(false), None).await?;
            let status = host.request_status().await.unwrap_or_else(|| host.status());
            print_json(&json!({
                "manager": { "url": host.url(), "running": false },
                "host": {
                    "url": host.url(),
                    "managed": false,
                    "logfile": null,
                    "connections": null,
                    "status": status.as_value(),
                },
            }))
        }
        Ok(Some(manager)) => match manager.host_status(&config).await? {
            Some(info) => print_json(&json!({
                "manager": { "url": manager.url(), "running": true },
                "host": {
                    "url": info.status.url(),
                    "managed": true,
                    "logfile": info.logfile,
                    "connections": info.connections,
                    "status": info.status.as_value(),
                },
            })),
            None => {
                print_json(&json!({
                    "manager": { "url": manager.url(), "running": true },
                    "host": null,
                }))?;
                Err(no_managed_host(&manager, &config, code::CONNECTION))
            }
        },
    }
}

async fn host(settings: &Settings, action: HostAction) -> Result<(), Failure> {
    let config = settings.config_path();
    let (manager, info) = match action {
        HostAction::Start => {
            let manager = Manager::start_or_reuse(settings).await?;
            manager.ensure_host(&config).await?;
            // Hold a connection that this command never closes: otherwise the first client to
            // connect and disconnect would make the manager stop the host a few seconds later.
            // `jshost host stop` (or `manager stop`) ends it.
            let connection = manager
                .open_connection(&config)
                .await?
                .ok_or_else(|| no_managed_host(&manager, &config, code::CONNECTION))?;
            (manager, connection.host)
        }
        HostAction::Stop => {
            let manager = running_manager(settings).await?;
            let info = manager
                .stop_host(&config)
                .await?
                .ok_or_else(|| no_managed_host(&manager, &config, code::NOT_RUNNING))?;
            (manager, info)
        }
        HostAction::Restart => {
            let manager = running_manager(settings).await?;
            let info = manager
                .restart_host(&config)
                .await?
                .ok_or_else(|| no_managed_host(&manager, &config, code::NOT_RUNNING))?;
            (manager, info)
        }
    };
    print_host(&manager, &info)
}

fn print_host(manager: &Manager, info: &HostInfo) -> Result<(), Failure> {
    let url = info.status.url().unwrap_or_else(|| "(unknown)".into());
    write_stdout(
        format!(
            "url: {url}\nlogfile: {}\nmanager: {}\n",
            info.logfile.display(),
            manager.url()
        )
        .as_bytes(),
    )
}

/// The manager running for the settings' config, or "not running" (exit code 7).
async fn running_manager(settings: &Settings) -> Result<Manager, Failure> {
    let config = settings.config_path();
    match Manager::find(settings).await {
        Ok(Some(manager)) => Ok(manager),
        Ok(None) => Err(Failure::not_running(format!(
            "no js-host manager runs for {}: a host that no manager runs answers at the config's address",
            config.display()
        ))),
        Err(e) if e.is_connection() => Err(Failure::not_running(format!(
            "no js-host manager runs for {} (nothing answers at {})",
            config.display(),
            e.url().unwrap_or("the config's address")
        ))),
        Err(e) => Err(e.into()),
    }
}

fn no_managed_host(manager: &Manager, config: &Path, code: u8) -> Failure {
    Failure::new(
        code,
        format!(
            "the js-host manager at {} runs no host for {}",
            manager.url(),
            config.display()
        ),
    )
    .with_hint("`jshost host start` starts one")
}

async fn manager_stop(settings: &Settings) -> Result<(), Failure> {
    let manager = running_manager(settings).await?;
    let asked = manager.stop().await;
    let deadline = Instant::now() + MANAGER_STOP_WAIT;
    while manager.is_running().await {
        if Instant::now() >= deadline {
            return Err(match asked {
                Err(e) => e.into(),
                Ok(()) => Failure::new(
                    code::CONNECTION,
                    format!(
                        "the js-host manager at {} still answers {MANAGER_STOP_WAIT:?} after being asked to stop",
                        manager.url()
                    ),
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write_stdout(format!("stopped the js-host manager at {}\n", manager.url()).as_bytes())
}

async fn logs(settings: &Settings, follow: bool) -> Result<(), Failure> {
    let config = settings.config_path();
    let manager = running_manager(settings).await?;
    let info = manager
        .host_status(&config)
        .await?
        .ok_or_else(|| no_managed_host(&manager, &config, code::NOT_RUNNING))?;
    let path = info.logfile;
    // js-host creates the logfile at the host's first log line (its first request).
    let (offset, exists) = match copy_from(&path, 0).await? {
        Ok(end) => (end, true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "jshost: nothing logged yet: {} does not exist yet (js-host creates it at the host's first log line)",
                path.display()
            );
            (0, false)
        }
        Err(e) => {
            return Err(Failure::io(
                format!("cannot read the logfile {}", path.display()),
                e,
            ))
        }
    };
    if follow {
        follow_file(&path, offset, exists).await
    } else {
        Ok(())
    }
}

/// Prints what is appended to `path` after `offset` until Ctrl-C, or until the file is removed
/// (once it `exists`: a logfile not created yet is waited for).
async fn follow_file(path: &Path, mut offset: u64, mut exists: bool) -> Result<(), Failure> {
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut tick = tokio::time::interval(FOLLOW_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            signal = &mut ctrl_c => {
                return signal.map_err(|e| Failure::io("cannot listen for Ctrl-C", e));
            }
            _ = tick.tick() => {}
        }
        let len = match tokio::fs::metadata(path).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !exists => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("jshost: the logfile {} was removed", path.display());
                return Ok(());
            }
            Err(e) => {
                return Err(Failure::io(
                    format!("cannot read the logfile {}", path.display()),
                    e,
                ))
            }
        };
        exists = true;
        if len < offset {
            // Truncated: start again from its beginning.
            offset = 0;
        }
        if len > offset {
            match copy_from(path, offset).await? {
                Ok(end) => offset = end,
                // Removed in between: the next look ends following.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Failure::io(
                        format!("cannot read the logfile {}", path.display()),
                        e,
                    ))
                }
            }
        }
    }
}

/// Copies `path` from `offset` to its current end to stdout and returns the new offset. The outer
/// error is about stdout, the inner one about the file.
async fn copy_from(path: &Path, offset: u64) -> Result<std::io::Result<u64>, Failure> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    if let Err(e) = file.seek(SeekFrom::Start(offset)).await {
        return Ok(Err(e));
    }
    let mut position = offset;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(0) => return Ok(Ok(position)),
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        write_stdout(&buf[..n])?;
        position += n as u64;
    }
}

fn print_json(value: &Value) -> Result<(), Failure> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(code::UNEXPECTED, format!("cannot format JSON: {e}")))?;
    text.push('\n');
    write_stdout(text.as_bytes())
}

/// Writes to stdout; a reader that went away (`jshost logs | head`) ends the command quietly.
fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::silent(code::OK)),
        Err(e) => Err(Failure::io("cannot write to stdout", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("hello_world"), "hello_world");
        assert_eq!(shell_quote("--data=/tmp/a.json"), "--data=/tmp/a.json");
        assert_eq!(shell_quote(r#"{"name":"Foo"}"#), r#"'{"name":"Foo"}'"#);
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
    }

    #[test]
    fn data_must_be_a_json_object_or_array() {
        assert_eq!(read_data(r#"{"a":1}"#).ok(), Some(br#"{"a":1}"#.to_vec()));
        assert!(read_data("[1, 2]").is_ok());
        let e = read_data("{nope").expect_err("invalid");
        assert_eq!(e.code(), code::USAGE);
        let e = read_data(r#""text""#).expect_err("a string");
        assert_eq!(e.code(), code::USAGE);
    }
}
