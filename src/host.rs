//! What the host really lets this process use, asked before any shard
//! starts (SPEC §1): whether io_uring works, and how many CPUs the process
//! may use — its affinity mask and its cgroup CPU quota (v2 `cpu.max`, v1
//! `cpu.cfs_quota_us`/`cpu.cfs_period_us`), so a container limited to 2 CPUs
//! on a 64-core host runs 2 shards, not 64.
//!
//! Without io_uring glommio panics deep in start-up ("Failed to register a
//! probe"); [`check_io_uring`] makes the same calls glommio makes first
//! (`io_uring_setup`, then `io_uring_register` with a probe) and turns a
//! refusal into one sentence naming the cause — a seccomp profile, the
//! `kernel.io_uring_disabled` sysctl, an old kernel — and the fix.

use std::path::{Path, PathBuf};

/// How many CPUs the process may use, and what decided it (for the start-up
/// log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsableCpus {
    /// CPUs: at least 1.
    pub count: usize,
    /// Where the figure came from, e.g. `cgroup v2 cpu.max 50000/100000`.
    pub source: String,
}

/// The CPUs the process may use: `min(affinity mask, ceil(cgroup quota))`.
pub fn usable_cpus() -> UsableCpus {
    let affinity = core_affinity::get_core_ids()
        .map(|ids| ids.len())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let quota = cgroup_quota(Path::new("/proc/self/cgroup"), Path::new("/sys/fs/cgroup"));
    combine(affinity, quota)
}

/// A CPU quota: `quota` microseconds of CPU time every `period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    quota: u64,
    period: u64,
    source: String,
}

impl Quota {
    fn cpus(&self) -> usize {
        (self.quota.div_ceil(self.period.max(1)) as usize).max(1)
    }
}

fn combine(affinity: usize, quota: Option<Quota>) -> UsableCpus {
    match quota {
        Some(q) if q.cpus() < affinity => UsableCpus {
            count: q.cpus(),
            source: format!("{} (affinity mask: {affinity})", q.source),
        },
        _ => UsableCpus {
            count: affinity,
            source: "affinity mask".to_string(),
        },
    }
}

/// The tightest CPU quota on this process's cgroup or any of its ancestors,
/// from `/proc/self/cgroup` (`cgroup_file`) and the hierarchy mounted at
/// `root`.
pub fn cgroup_quota(cgroup_file: &Path, root: &Path) -> Option<Quota> {
    let text = std::fs::read_to_string(cgroup_file).ok()?;
    let mut tightest: Option<Quota> = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let found = if controllers.is_empty() {
            quota_v2(root, path)
        } else if controllers.split(',').any(|c| c == "cpu") {
            quota_v1(root, controllers, path)
        } else {
            None
        };
        if let Some(q) = found {
            if tightest
                .as_ref()
                .is_none_or(|t| q.quota * t.period < t.quota * q.period)
            {
                tightest = Some(q);
            }
        }
    }
    tightest
}

/// The directories to look in for the cgroup `path` under `mount`: the path
/// itself and each of its ancestors, then the mount's root (a container
/// sees its own cgroup mounted there while `/proc/self/cgroup` may still
/// name the host's path).
fn candidates(mount: &Path, path: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut p = PathBuf::from(path.trim_start_matches('/'));
    loop {
        out.push(mount.join(&p));
        if !p.pop() {
            break;
        }
    }
    if !out.contains(&mount.to_path_buf()) {
        out.push(mount.to_path_buf());
    }
    out
}

fn tighter(a: Option<Quota>, b: Quota) -> Option<Quota> {
    match a {
        Some(a) if a.quota * b.period <= b.quota * a.period => Some(a),
        _ => Some(b),
    }
}

fn quota_v2(root: &Path, path: &str) -> Option<Quota> {
    let mut best = None;
    for dir in candidates(root, path) {
        let Ok(text) = std::fs::read_to_string(dir.join("cpu.max")) else {
            continue;
        };
        let mut fields = text.split_whitespace();
        let (Some(q), Some(p)) = (fields.next(), fields.next()) else {
            continue;
        };
        if let (Ok(quota), Ok(period)) = (q.parse::<u64>(), p.parse::<u64>()) {
            if quota > 0 && period > 0 {
                let source = format!("cgroup v2 cpu.max {quota}/{period}");
                best = tighter(
                    best,
                    Quota {
                        quota,
                        period,
                        source,
                    },
                );
            }
        }
    }
    best
}

fn quota_v1(root: &Path, controllers: &str, path: &str) -> Option<Quota> {
    let mounts = [
        root.join(controllers),
        root.join("cpu"),
        root.join("cpu,cpuacct"),
    ];
    let mut best = None;
    for mount in mounts.iter().filter(|m| m.is_dir()) {
        for dir in candidates(mount, path) {
            let read = |name: &str| -> Option<i64> {
                std::fs::read_to_string(dir.join(name))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            };
            if let (Some(quota), Some(period)) =
                (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us"))
            {
                if quota > 0 && period > 0 {
                    let source = format!("cgroup v1 cpu.cfs_quota_us {quota}/{period}");
                    best = tighter(
                        best,
                        Quota {
                            quota: quota as u64,
                            period: period as u64,
                            source,
                        },
                    );
                }
            }
        }
    }
    best
}

/// The least locked memory glommio starts an executor with (its
/// `MIN_MEMLOCK_LIMIT`); below it every shard fails to start.
pub const MIN_MEMLOCK: u64 = 512 * 1024;

/// Raises the soft `RLIMIT_MEMLOCK` to the hard limit (containers often
/// start with a low soft limit), so glommio can register its I/O buffers
/// where the runtime allows; `Err` with the one line to print when even the
/// hard limit is below [`MIN_MEMLOCK`]. A limit between the two starts
/// without registered buffers (glommio warns; see docs/operations.md, "Containers and Kubernetes").
pub fn raise_memlock() -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Ok(u64::MAX);
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct; raising the soft limit
        // up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            limit = raised;
        }
    }
    let soft = limit.rlim_cur;
    if soft < MIN_MEMLOCK {
        return Err(format!(
            "the locked-memory limit (RLIMIT_MEMLOCK) is {} KiB and io_uring needs at least {} KiB: \
             raise it (ulimit -l, systemd LimitMEMLOCK=, Compose/docker --ulimit memlock=-1)",
            soft / 1024,
            MIN_MEMLOCK / 1024
        ));
    }
    Ok(soft)
}

/// Puts the calling thread, and every thread it starts from now on, in the
/// `SCHED_BATCH` class (`node.sched_batch`): a thread woken by I/O then
/// does not preempt the thread running on its core, it waits for it to
/// block or for its time slice to end. On cores shared with a load
/// generator or a game server a shard otherwise preempts it for every
/// request that arrives, and both pay a context switch per request;
/// batched, the shard serves what arrived meanwhile in one turn
/// (bench/RESULTS.md, issue 29, run 4). Needs no privilege; `Err` with the reason
/// when the kernel (or a seccomp profile) refuses.
pub fn use_batch_scheduling() -> Result<(), String> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler only reads `param`; pid 0 is this thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// Where the shipped seccomp profile lives, for the messages below.
const PROFILE: &str = "deploy/seccomp/datamiddleware.json";

/// `Ok` when io_uring works as glommio needs it; else the one line to
/// print: the cause and the fix.
pub fn check_io_uring() -> Result<(), String> {
    let fd = match io_uring_setup() {
        Ok(fd) => fd,
        Err(e) => return Err(explain("io_uring_setup", e)),
    };
    let probe = io_uring_register_probe(fd);
    // SAFETY: `fd` is the ring this function opened; nothing else uses it.
    unsafe {
        libc::close(fd);
    }
    probe.map_err(|e| explain("io_uring_register", e))
}

fn io_uring_setup() -> Result<i32, std::io::Error> {
    // struct io_uring_params is 120 bytes; zeroed asks for the defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(entries, params) with a zeroed, large enough
    // params buffer that lives across the call.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fd as i32)
    }
}

fn io_uring_register_probe(fd: i32) -> Result<(), std::io::Error> {
    const IORING_REGISTER_PROBE: u32 = 8;
    const OPS: usize = 64;
    // struct io_uring_probe (16 bytes) + OPS × io_uring_probe_op (8 bytes).
    let mut probe = vec![0u8; 16 + OPS * 8];
    // SAFETY: registers a probe of OPS entries into a buffer of that size,
    // on a ring fd this module owns.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            fd,
            IORING_REGISTER_PROBE,
            probe.as_mut_ptr(),
            OPS as u32,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The kernel's release (`uname -r`).
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Whether the kernel release is at least `major.minor`.
fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let a = parts
        .next()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(0);
    let b = parts
        .next()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(0);
    (a, b) >= (major, minor)
}

/// Whether a seccomp filter is applied to this process (`Seccomp: 2`).
fn seccomp_filtered() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Seccomp:", "2"])
        })
        .unwrap_or(false)
}

fn explain(call: &str, e: std::io::Error) -> String {
    let release = kernel_release();
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let cause = if !kernel_at_least(&release, 5, 8) {
        format!("kernel {release} is older than 5.8; run on Linux 5.8 or newer")
    } else if disabled > 0 {
        format!(
            "the sysctl kernel.io_uring_disabled is {disabled}; set it to 0 \
             (sysctl -w kernel.io_uring_disabled=0)"
        )
    } else if seccomp_filtered() {
        format!(
            "a seccomp profile blocks it (container runtimes' default profiles do); run with \
             the shipped profile {PROFILE} (podman/docker: --security-opt seccomp={PROFILE}; \
             Kubernetes: seccompProfile type Localhost)"
        )
    } else {
        format!("kernel {release} refused it; run on a kernel with io_uring enabled")
    };
    format!("io_uring is not available ({call}: {e}): {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dm-host-{}", rand::random::<u64>()));
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        dir
    }

    #[test]
    fn cgroup_v2_quota_rounds_up_and_takes_the_tightest_ancestor() {
        let d = tree(&[
            ("proc", "0::/kubepods/pod1/ctr\n"),
            ("cg/kubepods/cpu.max", "max 100000\n"),
            ("cg/kubepods/pod1/cpu.max", "150000 100000\n"),
            ("cg/kubepods/pod1/ctr/cpu.max", "max 100000\n"),
        ]);
        let q = cgroup_quota(&d.join("proc"), &d.join("cg")).expect("quota");
        assert_eq!(q.cpus(), 2);
        assert_eq!(combine(64, Some(q.clone())).count, 2);
        assert!(combine(64, Some(q.clone()))
            .source
            .contains("cpu.max 150000/100000"));
        // The affinity mask wins when it is the smaller.
        assert_eq!(combine(1, Some(q)).count, 1);
    }

    #[test]
    fn cgroup_v1_half_a_cpu_is_one_shard_and_no_quota_is_none() {
        let d = tree(&[
            (
                "proc",
                "4:cpu,cpuacct:/machine.slice/libpod-1.scope\n3:memory:/x\n",
            ),
            ("cg/cpu,cpuacct/cpu.cfs_quota_us", "50000\n"),
            ("cg/cpu,cpuacct/cpu.cfs_period_us", "100000\n"),
        ]);
        let q = cgroup_quota(&d.join("proc"), &d.join("cg")).expect("quota");
        assert_eq!(q.cpus(), 1);
        let unlimited = tree(&[
            ("proc", "4:cpu,cpuacct:/\n"),
            ("cg/cpu,cpuacct/cpu.cfs_quota_us", "-1\n"),
            ("cg/cpu,cpuacct/cpu.cfs_period_us", "100000\n"),
        ]);
        assert_eq!(
            cgroup_quota(&unlimited.join("proc"), &unlimited.join("cg")),
            None
        );
        assert_eq!(combine(8, None).count, 8);
    }

    #[test]
    fn kernel_versions_compare_by_number() {
        assert!(kernel_at_least("6.1.0-27-amd64", 5, 8));
        assert!(kernel_at_least("5.8.0", 5, 8));
        assert!(!kernel_at_least("5.4.0-150-generic", 5, 8));
        assert!(!kernel_at_least("4.19.0", 5, 8));
    }
}
