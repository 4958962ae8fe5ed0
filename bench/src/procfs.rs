//! What this process and the node processes it started cost, read from `/proc` (no `libc`, no
//! `unsafe`).

use std::time::{Duration, Instant};

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

/// CPU time of this process's children that have exited and been waited for (`cutime` +
/// `cstime` of `/proc/self/stat`): a wrk run, once it is over.
pub fn children_cpu_time() -> Option<Cpu> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // cutime is field 16 and cstime field 17.
    let ms = |i: usize| -> Option<Duration> {
        let ticks: u64 = fields.get(i)?.parse().ok()?;
        Some(Duration::from_millis(ticks * (1000 / TICKS_PER_SECOND)))
    };
    Some(Cpu {
        user: ms(13)?,
        system: ms(14)?,
    })
}

/// The whole machine's CPU time so far, from the `cpu` line of `/proc/stat`.
///
/// Its busy fields (user, system...) are sampled at timer ticks, which miss much of the short
/// bursts of a request/response workload (a third of them in one test here), while idle and
/// iowait are measured at each entry to and exit from idle: busy time over an interval is best
/// taken as wall time × CPUs − [`Machine::idle`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Machine {
    /// Time the CPUs were idle (idle + iowait).
    pub idle: Duration,
    /// Time the hypervisor gave this machine's CPUs to someone else.
    pub steal: Duration,
}

impl Machine {
    pub fn since(self, earlier: Machine) -> Machine {
        Machine {
            idle: self.idle.saturating_sub(earlier.idle),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }
}

/// The machine's CPU time so far (`None` without `/proc/stat`).
pub fn machine_cpu() -> Option<Machine> {
    parse_machine(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn parse_machine(stat: &str) -> Option<Machine> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let ms = |ticks: u64| Duration::from_millis(ticks * (1000 / TICKS_PER_SECOND));
    Some(Machine {
        idle: ms(at(3) + at(4)),
        steal: ms(at(7)),
    })
}

/// The resident set size of this process in KiB (`VmRSS` in `/proc/self/status`).
pub fn rss_kib() -> Option<u64> {
    parse_rss(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// The resident set size of process `pid` in KiB.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    parse_rss(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

fn parse_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A process as `/proc/PID/stat` names it: its id and its start time (clock ticks after boot),
/// which together name one process even after its id is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub start: u64,
}

impl Proc {
    /// Whether this very process still exists (and is not a zombie).
    pub fn alive(self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| parse_identity(&s))
            .map(|(state, _, start)| start == self.start && state != 'Z')
            .unwrap_or(false)
    }
}

/// State, parent id and start time from a `/proc/PID/stat` line.
fn parse_identity(stat: &str) -> Option<(char, u32, u64)> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); ppid is field 4, starttime field 22.
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, ppid, start))
}

/// `pid` and every process descended from it (children, their children...), read from `/proc`.
/// Empty when `pid` has exited.
pub fn tree(pid: u32) -> Vec<Proc> {
    let mut all = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue; // exited meanwhile
            };
            if let Some((state, ppid, start)) = parse_identity(&stat) {
                if state != 'Z' {
                    all.push((Proc { pid: id, start }, ppid));
                }
            }
        }
    }
    let mut out: Vec<Proc> = all
        .iter()
        .filter(|(p, _)| p.pid == pid)
        .map(|(p, _)| *p)
        .collect();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i].pid;
        out.extend(all.iter().filter(|(_, ppid)| *ppid == parent).map(|(p, _)| *p));
        i += 1;
    }
    out
}

/// Every live process (this one excepted) with an argument that ends with `needle`, such as the
/// path of a config file only this run uses: a managed host's manager and the hosts it started,
/// whoever their parent is.
pub fn with_arg(needle: &str) -> Vec<Proc> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if id == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue; // exited meanwhile
        };
        let matches = cmdline
            .split(|&b| b == 0)
            .any(|arg| arg.ends_with(needle.as_bytes()));
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let (true, Some((state, _, start))) = (matches, parse_identity(&stat)) {
            if state != 'Z' {
                out.push(Proc { pid: id, start });
            }
        }
    }
    out
}

/// Waits up to 3 s for `procs` to exit (polling); kills (SIGKILL) and returns those still there.
pub async fn leftovers(procs: &[Proc]) -> Vec<Proc> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut left: Vec<Proc> = procs.iter().copied().filter(|p| p.alive()).collect();
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left.retain(|p| p.alive());
    }
    for p in &left {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &p.pid.to_string()])
            .status();
    }
    left
}

/// CPU time of all of `procs` so far (`None` when one of them cannot be read).
pub fn cpu_time_of_all(procs: &[Proc]) -> Option<Cpu> {
    procs.iter().try_fold(Cpu::default(), |sum, p| {
        let c = cpu_time_of(p.pid)?;
        Some(Cpu {
            user: sum.user + c.user,
            system: sum.system + c.system,
        })
    })
}

/// Regular files process `pid` holds open for writing, with their sizes (from `/proc/PID/fd` and
/// `/proc/PID/fdinfo`).
pub fn files_open_for_writing(pid: u32) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for fd in fds.flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(&target) else {
            continue; // a pipe, a socket, a deleted file
        };
        if !meta.is_file() {
            continue;
        }
        let info =
            std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()));
        let writable = info
            .ok()
            .and_then(|i| {
                i.lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            })
            .map(|flags| flags & 0o3 != 0) // O_WRONLY or O_RDWR
            .unwrap_or(false);
        if writable && !out.iter().any(|(p, _)| *p == target) {
            out.push((target, meta.len()));
        }
    }
    out
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
        assert!(rss_kib_of(std::process::id()).is_some());
    }

    #[test]
    fn reads_the_machine_and_children_cpu() {
        assert!(machine_cpu().is_some());
        assert!(children_cpu_time().is_some());
        let m = parse_machine("cpu  100 5 50 1000 7 3 2 9 0 0\ncpu0 1 2 3 4\n").expect("parses");
        assert_eq!(m.idle, Duration::from_millis(10070));
        assert_eq!(m.steal, Duration::from_millis(90));
    }

    #[test]
    fn finds_this_process_and_its_children() {
        let me = tree(std::process::id());
        assert_eq!(me.first().map(|p| p.pid), Some(std::process::id()));
        // Only this process: the other tests' children may exit at any moment.
        assert!(me.first().is_some_and(|p| p.alive()));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let with_child = tree(std::process::id());
        assert!(with_child.iter().any(|p| p.pid == child.id()), "{with_child:?}");
        let mine: Vec<Proc> = with_child
            .iter()
            .copied()
            .filter(|p| p.pid == child.id() || p.pid == std::process::id())
            .collect();
        assert!(cpu_time_of_all(&mine).is_some());
        let _ = child.kill();
        let _ = child.wait();
        assert!(!tree(std::process::id()).iter().any(|p| p.pid == child.id()));
    }

    #[test]
    fn finds_processes_by_argument() {
        let arg = format!("{}.31", 40 + std::process::id() % 50);
        let mut child = std::process::Command::new("sleep")
            .arg(&arg)
            .spawn()
            .expect("sleep runs");
        // Seen once under a loaded parallel run: the child not yet listed with its argument right
        // after spawn returned. Look again until a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut found = with_arg(&arg);
        while !found.iter().any(|p| p.pid == child.id()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
            found = with_arg(&arg);
        }
        assert!(found.iter().any(|p| p.pid == child.id()), "{found:?}");
        let _ = child.kill();
        let _ = child.wait();
        assert!(!with_arg(&arg).iter().any(|p| p.pid == child.id()));
    }

    #[test]
    fn lists_files_open_for_writing() {
        let path = std::env::temp_dir().join(format!("jshost-bench-procfs-{}.txt", std::process::id()));
        let file = std::fs::File::create(&path).expect("temp file");
        std::fs::write(&path, b"1234").expect("write");
        let open = files_open_for_writing(std::process::id());
        drop(file);
        let _ = std::fs::remove_file(&path);
        assert!(open.iter().any(|(p, n)| p == &path && *n == 4), "{open:?}");
    }
}
