//! What this process costs, read from `/proc/self` (no `libc`, no `unsafe`).

use std::time::Duration;

/// The kernel's USER_HZ: the unit of `utime` and `stime` in `/proc/self/stat`. It is 100 on every
/// Linux architecture that matters (`getconf CLK_TCK`).
const TICKS_PER_SECOND: u64 = 100;

/// The resolution of [`cpu_time`].
pub const CPU_TIME_RESOLUTION: Duration = Duration::from_millis(1000 / TICKS_PER_SECOND);

/// CPU time of this process so far (all threads), from `/proc/self/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu {
    /// `utime`: in user space.
    pub user: Duration,
    /// `stime`: in the kernel on this process's behalf (on loopback, that includes much of the
    /// TCP receive path of the peer's packets too).
    pub system: Duration,
}

impl Cpu {
    /// User + system.
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    /// The CPU time used since `earlier`.
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    /// Per call, over `calls` calls.
    pub fn per(self, calls: usize) -> Cpu {
        let n = u32::try_from(calls.max(1)).unwrap_or(u32::MAX);
        Cpu {
            user: self.user / n,
            system: self.system / n,
        }
    }
}

/// User and system CPU time of this process so far (all threads), from `/proc/self/stat`.
pub fn cpu_time() -> Option<Cpu> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User and system CPU time of process `pid` so far (all threads), from `/proc/PID/stat`:
/// `None` once it has exited.
pub fn cpu_time_of(pid: u32) -> Option<Cpu> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(stat: &str) -> Option<Cpu> {
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14 and stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ms = |ticks: u64| Duration::from_millis(ticks * (1000 / TICKS_PER_SECOND));
    Some(Cpu {
        user: ms(utime),
        system: ms(stime),
    })
}

/// The resident set size of this process in KiB (`VmRSS` in `/proc/self/status`).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Context switches of this process's live threads so far (voluntary + involuntary, from
/// `/proc/self/task/*/status`): each one is a thread that parked and was woken again.
pub fn context_switches() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
            continue; // the thread has exited
        };
        total += status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_time_and_rss() {
        assert!(cpu_time().is_some());
        assert!(cpu_time_of(std::process::id()).is_some());
        assert!(rss_kib().map(|kib| kib > 0).unwrap_or(false));
    }
}
