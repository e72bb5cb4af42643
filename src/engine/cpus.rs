//! How many CPUs this process may really use: the CPUs its affinity mask allows
//! (`sched_setaffinity`, `taskset`, systemd's `CPUAffinity=`), capped by the CPU quota of its
//! control group and every group above it (`CPUQuota=`, a container's `--cpus`). llama.cpp's
//! threads spin while they wait for each other, so a pool larger than the CPUs the process gets
//! burns its time slices waiting for threads that cannot run.
//!
//! Read from `/proc` and `/sys/fs/cgroup` (Linux); elsewhere the standard library's count.

use std::path::{Path, PathBuf};

/// What limits the CPUs of this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuLimits {
    /// CPUs the affinity mask allows (`Cpus_allowed_list` of `/proc/self/status`).
    pub affinity: Option<usize>,
    /// CPUs' worth of time the tightest control-group quota allows (e.g. 1.5).
    pub quota: Option<f64>,
    /// What the standard library reports.
    pub available: usize,
}

impl CpuLimits {
    /// The limits of this process.
    pub fn of_this_process() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        CpuLimits {
            affinity: affinity_in_status(&status),
            quota: cgroup_quota(&cgroups, Path::new("/sys/fs/cgroup"), &|path| {
                std::fs::read_to_string(path).ok()
            }),
            available: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    /// Threads worth running: the affinity mask's CPUs, at most the quota (rounded down, at
    /// least one), else what the standard library reports.
    pub fn usable(&self) -> usize {
        let cpus = self.affinity.unwrap_or(self.available).max(1);
        match self.quota {
            Some(quota) => cpus.min((quota.floor() as usize).max(1)),
            None => cpus,
        }
    }
}

/// CPUs this process may use ([`CpuLimits::usable`]), the default thread count.
pub fn usable_cpus() -> usize {
    CpuLimits::of_this_process().usable()
}

/// CPUs listed in `Cpus_allowed_list:` of a `/proc/<pid>/status` text.
pub fn affinity_in_status(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .and_then(|list| count_cpu_list(list.trim()))
}

/// Counts a CPU list such as `0-3,6,8-9` (`None` when malformed or empty).
pub fn count_cpu_list(list: &str) -> Option<usize> {
    let mut count = 0usize;
    for part in list.split(',').filter(|part| !part.trim().is_empty()) {
        let part = part.trim();
        count += match part.split_once('-') {
            Some((first, last)) => {
                let (first, last): (usize, usize) = (first.parse().ok()?, last.parse().ok()?);
                last.checked_sub(first)? + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    (count > 0).then_some(count)
}

/// The tightest CPU quota (in CPUs) over this process's control group and its ancestors,
/// given `/proc/self/cgroup`'s text, the cgroup mount point and a file reader. Understands
/// cgroup v2 (`cpu.max`) and v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`).
pub fn cgroup_quota(
    cgroups: &str,
    root: &Path,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Option<f64> {
    let mut tightest: Option<f64> = None;
    let mut consider = |quota: Option<f64>| {
        if let Some(quota) = quota {
            tightest = Some(tightest.map_or(quota, |tightest| tightest.min(quota)));
        }
    };
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            // cgroup v2: one hierarchy at the root.
            for folder in ancestors(root, path) {
                consider(read(&folder.join("cpu.max")).and_then(|text| quota_v2(&text)));
            }
        } else if controllers.split(',').any(|controller| controller == "cpu") {
            // cgroup v1: the cpu controller's own hierarchy.
            let mount = ["cpu,cpuacct", "cpuacct,cpu", "cpu"]
                .iter()
                .map(|name| root.join(name))
                .find(|mount| read(&mount.join("cpu.cfs_period_us")).is_some())
                .unwrap_or_else(|| root.join("cpu"));
            for folder in ancestors(&mount, path) {
                let quota = read(&folder.join("cpu.cfs_quota_us"));
                let period = read(&folder.join("cpu.cfs_period_us"));
                consider(
                    quota
                        .zip(period)
                        .and_then(|(quota, period)| quota_v1(&quota, &period)),
                );
            }
        }
    }
    tightest
}

/// `root/path`, then each of its parents up to `root`.
fn ancestors(root: &Path, path: &str) -> Vec<PathBuf> {
    let mut folders = vec![root.join(path)];
    let mut current = Path::new(path);
    while let Some(parent) = current.parent() {
        folders.push(root.join(parent));
        current = parent;
    }
    folders
}

/// A cgroup v2 `cpu.max` (`max 100000` or `150000 100000`) in CPUs.
fn quota_v2(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let (quota, period) = (fields.next()?, fields.next()?);
    if quota == "max" {
        return None;
    }
    let (quota, period): (f64, f64) = (quota.parse().ok()?, period.parse().ok()?);
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// cgroup v1 `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us`, in CPUs.
fn quota_v1(quota: &str, period: &str) -> Option<f64> {
    let (quota, period): (f64, f64) = (quota.trim().parse().ok()?, period.trim().parse().ok()?);
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpu_list("0-3"), Some(4));
        assert_eq!(count_cpu_list("0-1,4,6-7"), Some(5));
        assert_eq!(count_cpu_list("3"), Some(1));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("a-b"), None);
        let status =
            "Name:\texitwise\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t1\n";
        assert_eq!(affinity_in_status(status), Some(2));
        assert_eq!(affinity_in_status("Name:\tx\n"), None);
    }

    fn files(entries: &[(&str, &str)]) -> HashMap<PathBuf, String> {
        entries
            .iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_string()))
            .collect()
    }

    #[test]
    fn cgroup_v2_quotas_take_the_tightest_of_the_group_and_its_parents() {
        let files = files(&[
            ("/cg/system.slice/exitwise.service/cpu.max", "max 100000\n"),
            ("/cg/system.slice/cpu.max", "150000 100000\n"),
            ("/cg/cpu.max", "max 100000\n"),
        ]);
        let read = |path: &Path| files.get(path).cloned();
        let quota = cgroup_quota(
            "0::/system.slice/exitwise.service\n",
            Path::new("/cg"),
            &read,
        );
        assert_eq!(quota, Some(1.5));
        assert_eq!(cgroup_quota("0::/\n", Path::new("/cg"), &read), None);
        let limits = CpuLimits {
            affinity: Some(4),
            quota,
            available: 4,
        };
        assert_eq!(limits.usable(), 1);
        let tiny = CpuLimits {
            affinity: Some(4),
            quota: Some(0.2),
            available: 4,
        };
        assert_eq!(tiny.usable(), 1, "at least one thread");
    }

    #[test]
    fn cgroup_v1_quotas_are_read_from_the_cpu_controller() {
        let files = files(&[
            ("/cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000\n"),
            ("/cg/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n"),
            ("/cg/cpu,cpuacct/docker/cpu.cfs_quota_us", "-1\n"),
            ("/cg/cpu,cpuacct/docker/cpu.cfs_period_us", "100000\n"),
            ("/cg/cpu,cpuacct/cpu.cfs_period_us", "100000\n"),
        ]);
        let read = |path: &Path| files.get(path).cloned();
        let quota = cgroup_quota(
            "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
            Path::new("/cg"),
            &read,
        );
        assert_eq!(quota, Some(2.0));
        let limits = CpuLimits {
            affinity: None,
            quota,
            available: 8,
        };
        assert_eq!(limits.usable(), 2);
    }

    #[test]
    fn this_process_has_at_least_one_cpu() {
        let limits = CpuLimits::of_this_process();
        assert!(limits.usable() >= 1);
        assert!(limits.usable() <= limits.available.max(limits.affinity.unwrap_or(0)));
    }
}
