//! What hosts write: read in bounded pieces, and their errors passed on to `tracing`.
//!
//! - [`BoundedLines`] reads a child's pipe line by line, keeping at most [`MAX_LINE`] bytes of a
//!   line (the rest up to its newline is dropped), so a host that writes megabytes without a
//!   newline (a progress bar redrawn with `\r`, a binary dump) never grows this process.
//! - [`Records`] groups lines into log records (a jshost-node line starts with a timestamp; the
//!   lines that follow it, a stack or a syntax error's excerpt, belong to it) and [`emit`]s each
//!   at the level it was logged at: `error` records as `tracing::error!`, warnings and any other
//!   output (`console.error`, what node prints about an uncaught error) as `warn!`, info lines
//!   as `debug!`.
//! - [`follow`] does the same for a managed host's logfile while a connection is open.

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncSeekExt, BufReader};

/// The most bytes of one line that are kept (a status line with many functions fits).
pub(crate) const MAX_LINE: usize = 64 * 1024;
/// The most bytes of one log record passed on (a long stack is cut).
const MAX_RECORD: usize = 16 * 1024;
/// A pending record is passed on when nothing follows it for this long.
pub(crate) const RECORD_IDLE: Duration = Duration::from_millis(50);
/// How often a followed logfile is read.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Lines of at most [`MAX_LINE`] bytes from a pipe; cancel safe (the partial line is kept).
pub(crate) struct BoundedLines<R> {
    reader: BufReader<R>,
    line: Vec<u8>,
    cut: bool,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    pub(crate) fn new(reader: R) -> Self {
        BoundedLines {
            reader: BufReader::new(reader),
            line: Vec::new(),
            cut: false,
        }
    }

    /// The next line (without its line ending; a cut line ends with `[... cut]`); `None` at the
    /// end of the stream or on a read error.
    pub(crate) async fn next_line(&mut self) -> Option<String> {
        loop {
            let chunk = self.reader.fill_buf().await.ok()?;
            if chunk.is_empty() {
                return (!self.line.is_empty() || self.cut).then(|| self.take());
            }
            let newline = chunk.iter().position(|&b| b == b'\n');
            let part = &chunk[..newline.unwrap_or(chunk.len())];
            let room = MAX_LINE - self.line.len();
            if part.len() > room {
                self.line.extend_from_slice(&part[..room]);
                self.cut = true;
            } else {
                self.line.extend_from_slice(part);
            }
            let used = newline.map_or(chunk.len(), |i| i + 1);
            self.reader.consume(used);
            if newline.is_some() {
                return Some(self.take());
            }
        }
    }

    fn take(&mut self) -> String {
        let mut line = String::from_utf8_lossy(&self.line).into_owned();
        if line.ends_with('\r') {
            line.pop();
        }
        if self.cut {
            line.push_str(" [... cut]");
        }
        self.line.clear();
        self.cut = false;
        line
    }
}

/// The level a host logged a record at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Error,
    Warn,
    Info,
}

/// Whether `line` starts a jshost-node log record (`2024-01-02T03:04:05.678Z name[pid] level: `).
fn starts_record(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

/// The level a record was logged at: the word ending in `:` among the first two after the
/// timestamp (`TS jshost-node[PID] error:`, js-host's `TS - error:`), or first on an untimestamped
/// line (`error: ...`); anything else (`console.error` output, node's own messages) is a warning.
fn level_of(first_line: &str) -> Level {
    let plain = crate::node::strip_ansi(first_line);
    let rest = match starts_record(&plain) {
        true => plain.split_once(' ').map_or("", |(_, rest)| rest),
        false => plain.as_str(),
    };
    let level = rest
        .split_whitespace()
        .take(2)
        .find_map(|word| word.strip_suffix(':'))
        .map(str::to_ascii_lowercase);
    match level.as_deref() {
        Some("error") => Level::Error,
        Some("info" | "debug" | "verbose") => Level::Info,
        _ => Level::Warn,
    }
}

/// Log records assembled from lines: a timestamped line opens one that the following
/// non-timestamped lines continue; any other line is a record of its own.
#[derive(Default)]
pub(crate) struct Records {
    pending: Option<String>,
}

impl Records {
    /// Adds a line; returns the records it completes.
    pub(crate) fn push(&mut self, line: String) -> Vec<String> {
        let mut done = Vec::new();
        if starts_record(&line) {
            done.extend(self.pending.replace(line));
        } else if let Some(pending) = &mut self.pending {
            if pending.len() < MAX_RECORD {
                pending.push('\n');
                pending.push_str(&line);
                if pending.len() > MAX_RECORD {
                    let mut end = MAX_RECORD;
                    while !pending.is_char_boundary(end) {
                        end -= 1;
                    }
                    pending.truncate(end);
                    pending.push_str(" [... cut]");
                }
            }
        } else {
            done.push(line);
        }
        done
    }

    /// The pending record, if any.
    pub(crate) fn flush(&mut self) -> Option<String> {
        self.pending.take()
    }
}

/// Passes a host's record on to `tracing` at the level it was logged at.
pub(crate) fn emit(record: &str, source: &Source<'_>) {
    let text = crate::node::strip_ansi(record);
    if text.trim().is_empty() {
        return;
    }
    let Source { pid, config, logfile } = source;
    let config = config.display();
    match level_of(&text) {
        Level::Error => tracing::error!(pid = *pid, %config, logfile = ?logfile, "js-host: {text}"),
        Level::Warn => tracing::warn!(pid = *pid, %config, logfile = ?logfile, "js-host: {text}"),
        Level::Info => tracing::debug!(pid = *pid, %config, logfile = ?logfile, "js-host: {text}"),
    }
}

/// Which host a record comes from.
pub(crate) struct Source<'a> {
    pub(crate) pid: Option<u32>,
    pub(crate) config: &'a Path,
    pub(crate) logfile: Option<&'a Path>,
}

/// Follows a managed host's logfile from its current end, passing its records on to
/// `tracing`, until the returned guard is dropped. Only a regular file owned by this user is
/// followed (the path comes from the manager).
pub(crate) fn follow(logfile: PathBuf, config: PathBuf) -> tokio_util::sync::DropGuard {
    let token = tokio_util::sync::CancellationToken::new();
    let guard = token.clone().drop_guard();
    // Opened, and its end noted, now: what the host logs once this returns is followed, even
    // before the task below first runs.
    let opened = crate::private::open_trusted(&logfile).map(|file| {
        let end = file.metadata().map(|m| m.len()).unwrap_or(0);
        (file, end)
    });
    jshost_client::driver::spawn(async move {
        tokio::select! {
            () = token.cancelled() => {}
            () = follow_until_gone(opened, &logfile, &config) => {}
        }
    });
    guard
}

async fn follow_until_gone(mut opened: Option<(std::fs::File, u64)>, logfile: &Path, config: &Path) {
    // A host may create its logfile at its first line (js-host does): wait for it, then read it
    // from its start. It may also have appeared since `follow` looked.
    while opened.is_none() {
        if std::fs::symlink_metadata(logfile).is_ok() {
            opened = crate::private::open_trusted(logfile).map(|file| (file, 0));
            break;
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
    let Some((file, end)) = opened else {
        tracing::debug!(logfile = %logfile.display(), "not following the managed host's logfile: not a file of this user's");
        return;
    };
    let mut file = tokio::fs::File::from_std(file);
    if file.seek(std::io::SeekFrom::Start(end)).await.is_err() {
        return;
    }
    let source = Source {
        pid: None,
        config,
        logfile: Some(logfile),
    };
    let mut records = Records::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            if let Some(record) = records.flush() {
                emit(&record, &source);
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            continue;
        }
        let mut rest = &buf[..n];
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if partial.len() < MAX_LINE {
                partial.extend_from_slice(&rest[..i.min(MAX_LINE - partial.len())]);
            }
            let line = String::from_utf8_lossy(&partial).into_owned();
            partial.clear();
            for record in records.push(line) {
                emit(&record, &source);
            }
            rest = &rest[i + 1..];
        }
        if partial.len() < MAX_LINE {
            partial.extend_from_slice(&rest[..rest.len().min(MAX_LINE - partial.len())]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_cut_and_the_rest_is_read() {
        let mut input = vec![b'x'; MAX_LINE * 3];
        input.extend_from_slice(b"\nnext\r\nlast");
        let mut lines = BoundedLines::new(&input[..]);
        let first = lines.next_line().await.expect("first");
        assert_eq!(first.len(), MAX_LINE + " [... cut]".len());
        assert!(first.ends_with("[... cut]"));
        assert_eq!(lines.next_line().await.as_deref(), Some("next"));
        assert_eq!(lines.next_line().await.as_deref(), Some("last"));
        assert_eq!(lines.next_line().await, None);
    }

    #[test]
    fn records_group_a_stack_under_its_line_and_know_its_level() {
        let mut records = Records::default();
        let line = |s: &str| s.to_owned();
        assert!(records
            .push(line(
                "2026-01-02T03:04:05.678Z jshost-node[7] error: cannot start a host for /x.js:"
            ))
            .is_empty());
        assert!(records.push(line("/x.js:3")).is_empty());
        assert!(records.push(line("SyntaxError: Unexpected token '}'")).is_empty());
        let done = records.push(line(
            "2026-01-02T03:04:06.000Z jshost-node[7] info: Host listening",
        ));
        assert_eq!(done.len(), 1);
        assert!(done[0].contains("SyntaxError") && done[0].contains("/x.js:3"));
        assert_eq!(level_of(&done[0]), Level::Error);
        let info = records.flush().expect("pending");
        assert_eq!(level_of(&info), Level::Info);
        assert_eq!(
            records.push(line("Trace: from console.error")),
            vec!["Trace: from console.error"]
        );
        assert_eq!(level_of("Trace: from console.error"), Level::Warn);
        assert_eq!(level_of("\u{1b}[31merror\u{1b}[39m: js-host said"), Level::Error);
        assert_eq!(
            level_of("2026-12-03T12:10:13.736Z - error: Host: function fail produced an error"),
            Level::Error
        );
        assert_eq!(
            level_of("2026-12-03T12:10:13.736Z - info: Host: listening"),
            Level::Info
        );
        assert_eq!(level_of("SyntaxError: Unexpected token"), Level::Warn);
    }
}
