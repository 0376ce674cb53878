//! `--server-pid PID`: what the server process itself spent during the
//! measured window, read from Linux's `/proc` at the window's start (after
//! the warm-up) and at its end: its CPU time (user + system, the whole
//! thread group) and its threads' context switches (voluntary and
//! involuntary). The report divides both by the requests answered in the
//! window, so the server's own cost per request sits beside the throughput
//! and latency of the same run.
//!
//! Nothing here may end the run: an unreadable `/proc` (another OS, a pid
//! that is gone or was reused) only leaves the figures out, with a line on
//! stderr saying why.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::thread::JoinHandle;
use std::time::Instant;

/// One reading of the server process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// When the process started (field 22 of `/proc/PID/stat`, clock ticks
    /// after boot): another value at the end means the pid was reused.
    start_time: u64,
    /// `utime + stime` in clock ticks. `/proc/PID/stat` counts the whole
    /// thread group, threads that have exited included.
    cpu_ticks: u64,
    /// Each live thread's `voluntary_ctxt_switches +
    /// nonvoluntary_ctxt_switches` by thread id (`/proc/PID/task/*/status`).
    switches: BTreeMap<u32, u64>,
}

/// The server's spending between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerWindow {
    /// The process.
    pub pid: u32,
    /// CPU seconds (user + system, every thread).
    pub cpu_seconds: f64,
    /// Context switches of the threads alive at the end of the window.
    pub context_switches: u64,
    /// Threads alive at the end of the window.
    pub threads: usize,
}

/// `(start_time, utime + stime)` from the text of `/proc/PID/stat`.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    // "pid (comm) state ppid ...": the command name may hold spaces and
    // parentheses, so the fields are counted from the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // fields[0] is field 3 (state); utime is field 14, stime 15, starttime 22.
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(22)?, field(14)?.checked_add(field(15)?)?))
}

/// `voluntary_ctxt_switches + nonvoluntary_ctxt_switches` from the text of
/// `/proc/PID/task/TID/status`; `None` when either line is missing.
pub fn parse_switches(text: &str) -> Option<u64> {
    let (mut voluntary, mut nonvoluntary) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "voluntary_ctxt_switches" => &mut voluntary,
            "nonvoluntary_ctxt_switches" => &mut nonvoluntary,
            _ => continue,
        };
        *slot = value.trim().parse::<u64>().ok();
    }
    voluntary?.checked_add(nonvoluntary?)
}

/// The process's resident memory (`VmRSS` of `/proc/PID/status`) in KiB;
/// `None`, with a line on stderr, when it cannot be read.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let path = format!("/proc/{pid}/status");
    let rss = std::fs::read_to_string(&path)
        .map_err(|e| format!("{path}: {e}"))
        .and_then(|text| parse_rss(&text).ok_or_else(|| format!("no VmRSS in {path}")));
    match rss {
        Ok(kib) => Some(kib),
        Err(e) => {
            eprintln!("dm-bench: --server-pid: the server's memory is left out: {e}");
            None
        }
    }
}

/// `VmRSS` in KiB from the text of `/proc/PID/status`.
pub fn parse_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// Reads the process `pid` now.
pub fn sample(pid: u32) -> Result<Sample, String> {
    let stat_path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&stat_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("no such process ({stat_path}: {e})")
        } else {
            format!("cannot read {stat_path}: {e}")
        }
    })?;
    let (start_time, cpu_ticks) =
        parse_stat(&stat).ok_or_else(|| format!("cannot parse {stat_path}"))?;
    let tasks = format!("/proc/{pid}/task");
    let mut switches = BTreeMap::new();
    for entry in std::fs::read_dir(&tasks).map_err(|e| format!("cannot list {tasks}: {e}"))? {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread may exit between the listing and the read: it is left out.
        let Ok(text) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        if let Some(n) = parse_switches(&text) {
            switches.insert(tid, n);
        }
    }
    if switches.is_empty() {
        return Err(format!("no thread's context switches in {tasks}/*/status"));
    }
    Ok(Sample {
        start_time,
        cpu_ticks,
        switches,
    })
}

impl Sample {
    /// What the process spent from `self` (the window's start) to `end`,
    /// with `ticks_per_second` clock ticks a second (`sysconf(_SC_CLK_TCK)`).
    ///
    /// Context switches are added up thread by thread (by thread id) over
    /// the threads alive at the end: a thread that exits during the window
    /// takes its switches with it (the kernel shows no other process's
    /// exited threads' counts), one born in it counts from zero. The
    /// server's glommio executors and blocking-pool threads live as long as
    /// the process, so little is lost. A thread whose count went down is a
    /// new thread under a reused id: all of its count is in the window.
    pub fn until(
        &self,
        end: &Sample,
        pid: u32,
        ticks_per_second: f64,
    ) -> Result<ServerWindow, String> {
        if end.start_time != self.start_time {
            return Err("the pid now belongs to another process (the server restarted?)".into());
        }
        let ticks = end
            .cpu_ticks
            .checked_sub(self.cpu_ticks)
            .ok_or("the process's CPU time went down")?;
        let context_switches = end
            .switches
            .iter()
            .map(|(tid, &n)| {
                n - self
                    .switches
                    .get(tid)
                    .copied()
                    .filter(|&s| s <= n)
                    .unwrap_or(0)
            })
            .sum();
        Ok(ServerWindow {
            pid,
            cpu_seconds: ticks as f64 / ticks_per_second,
            context_switches,
            threads: end.switches.len(),
        })
    }
}

/// Clock ticks a second, the unit of `/proc/PID/stat`'s times.
pub fn ticks_per_second() -> Option<f64> {
    // SAFETY: sysconf only reads a system setting.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then_some(ticks as f64)
}

/// The start sample of a window, taken on a thread of its own at the
/// window's start while the load runs.
pub struct Watch {
    pid: u32,
    start: JoinHandle<Result<Sample, String>>,
}

/// Checks at once that `pid` can be read (saying on stderr why not, in
/// which case the run goes on without the figures), then samples it at `at`.
pub fn watch(pid: u32, at: Instant) -> Option<Watch> {
    if let Err(e) = sample(pid) {
        eprintln!(
            "dm-bench: --server-pid {pid}: {e}; the server's CPU time and context switches \
             are not reported"
        );
        return None;
    }
    let start = std::thread::Builder::new()
        .name("server-pid".into())
        .spawn(move || {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            sample(pid)
        });
    match start {
        Ok(start) => Some(Watch { pid, start }),
        Err(e) => {
            eprintln!("dm-bench: --server-pid {pid}: cannot start its thread: {e}");
            None
        }
    }
}

impl Watch {
    /// Samples the process again now (the window's end); `None`, with a
    /// line on stderr, when either sample failed.
    pub fn finish(self) -> Option<ServerWindow> {
        let pid = self.pid;
        let window = self
            .start
            .join()
            .map_err(|_| "its thread panicked".to_string())
            .and_then(|start| {
                let start = start.map_err(|e| format!("at the window's start: {e}"))?;
                let end = sample(pid).map_err(|e| format!("at the window's end: {e}"))?;
                let ticks = ticks_per_second().ok_or("sysconf(_SC_CLK_TCK) failed")?;
                start.until(&end, pid, ticks)
            });
        window
            .map_err(|e| {
                eprintln!(
                    "dm-bench: --server-pid {pid}: {e}; the server's CPU time and context \
                     switches are not reported"
                )
            })
            .ok()
    }
}

impl ServerWindow {
    /// One line beside the table: the figures per request over `requests`
    /// answered in `seconds` measured.
    pub fn line(&self, requests: u64, seconds: f64) -> String {
        let mut text = format!("server (pid {}) during the run: ", self.pid);
        if requests > 0 {
            let _ = write!(
                text,
                "{:.1} µs CPU and {:.2} context switches per request; ",
                self.cpu_seconds * 1e6 / requests as f64,
                self.context_switches as f64 / requests as f64
            );
        }
        let _ = write!(
            text,
            "{:.2} s CPU ({:.2} cores busy), {} context switches over {} threads",
            self.cpu_seconds,
            if seconds > 0.0 {
                self.cpu_seconds / seconds
            } else {
                0.0
            },
            self.context_switches,
            self.threads
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from a real /proc/PID/stat (52 fields); the command name
    // holds a space and a ')' on purpose.
    const STAT: &str = "4242 (dm ser)ver) S 1 4242 4242 0 -1 4194560 3215 0 0 0 \
                        1234 567 0 0 20 0 14 0 987654 1234567890 4567 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 17664 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    const STATUS: &str = "Name:\tshard-0\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n\
                          Pid:\t4243\nThreads:\t14\nCpus_allowed_list:\t0-1\n\
                          voluntary_ctxt_switches:\t1500\nnonvoluntary_ctxt_switches:\t27\n";

    #[test]
    fn cpu_time_and_start_are_read_after_the_command_name() {
        assert_eq!(parse_stat(STAT), Some((987654, 1234 + 567)));
        assert_eq!(parse_stat("1 (x) S 1 2 3"), None, "too few fields");
        assert_eq!(parse_stat("no parenthesis"), None);
        assert_eq!(parse_stat(&STAT.replace(" 1234 ", " -1 ")), None);
    }

    #[test]
    fn resident_memory_is_read_in_kib() {
        assert_eq!(
            parse_rss("Name:\tx\nVmHWM:\t  9000 kB\nVmRSS:\t   41234 kB\nRssAnon:\t1 kB\n"),
            Some(41234)
        );
        assert_eq!(parse_rss(STATUS), None);
        assert_eq!(parse_rss("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn context_switches_add_both_kinds() {
        assert_eq!(parse_switches(STATUS), Some(1527));
        assert_eq!(
            parse_switches("voluntary_ctxt_switches: 3\nnonvoluntary_ctxt_switches: 4"),
            Some(7)
        );
        assert_eq!(parse_switches("voluntary_ctxt_switches:\t3\n"), None);
        assert_eq!(parse_switches("Name:\tx\n"), None);
    }

    fn sample_of(start_time: u64, cpu_ticks: u64, threads: &[(u32, u64)]) -> Sample {
        Sample {
            start_time,
            cpu_ticks,
            switches: threads.iter().copied().collect(),
        }
    }

    #[test]
    fn a_window_is_the_difference_thread_by_thread() {
        let start = sample_of(7, 1000, &[(1, 100), (2, 50), (3, 999)]);
        // Thread 3 exited (its switches are lost), 4 was born, 2's id was
        // reused by a new thread whose count is lower than the old one's.
        let end = sample_of(7, 1250, &[(1, 160), (2, 20), (4, 5)]);
        let w = start.until(&end, 42, 100.0).expect("same process");
        assert_eq!(w.pid, 42);
        assert!((w.cpu_seconds - 2.5).abs() < 1e-12);
        assert_eq!(w.context_switches, 60 + 20 + 5);
        assert_eq!(w.threads, 3);
        assert!(
            w.line(1000, 5.0).starts_with(
                "server (pid 42) during the run: 2500.0 µs CPU and 0.09 context switches \
                 per request; 2.50 s CPU (0.50 cores busy)"
            ),
            "{}",
            w.line(1000, 5.0)
        );
        assert!(!w.line(0, 5.0).contains("per request"));
        assert!(start.until(&sample_of(8, 1250, &[]), 42, 100.0).is_err());
        assert!(start.until(&sample_of(7, 999, &[]), 42, 100.0).is_err());
    }

    #[test]
    fn this_process_can_be_read_and_a_missing_one_cannot() {
        let me = sample(std::process::id()).expect("/proc/self is readable");
        assert!(me.switches.contains_key(&std::process::id()));
        assert!(ticks_per_second().is_some());
        // Above the kernel's largest pid (2^22).
        let missing = sample(u32::MAX).expect_err("no such process");
        assert!(missing.starts_with("no such process"), "{missing}");
    }
}
