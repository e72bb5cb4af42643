//! How many threads a session runs: the CPUs this process may use, as the standard library
//! counts them (`std::thread::available_parallelism`: the affinity mask — `taskset`, systemd's
//! `CPUAffinity=` — capped by the cgroup v1 or v2 CPU quota, `CPUQuota=` or a container's
//! `--cpus`, rounded down), then at run time what other processes leave free
//! ([`ThreadGovernor`]), split among the sessions of one process ([`SessionPlan`]). llama.cpp's
//! threads spin while they wait for each other, so a pool larger than the CPUs the process gets
//! burns its time slices waiting for threads that cannot run.

/// CPUs this process may use, the default thread count (at least one).
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A moment's CPU counters: the whole system's (`/proc/stat`, in clock ticks summed over its
/// CPUs) and this process's own (`/proc/self/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// Ticks of every CPU, busy or idle.
    pub total: u64,
    /// Idle (and I/O-wait) ticks of every CPU.
    pub idle: u64,
    /// Ticks this process ran (user and system, every thread).
    pub own: u64,
    /// CPUs the system counts.
    pub cpus: usize,
}

impl CpuSample {
    /// The counters now (`None` where `/proc` cannot tell).
    pub fn now() -> Option<Self> {
        let system = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        CpuSample::parse(&system, &own)
    }

    /// The counters from the texts of `/proc/stat` and `/proc/self/stat`.
    pub fn parse(system: &str, own: &str) -> Option<Self> {
        let mut lines = system.lines();
        let aggregate: Vec<u64> = lines
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|field| field.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total = aggregate.iter().take(8).sum();
        let idle = aggregate.get(3)? + aggregate.get(4).copied().unwrap_or(0);
        let cpus = lines
            .filter(|line| {
                line.strip_prefix("cpu")
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count()
            .max(1);
        // The command name may hold spaces and parentheses: the fields follow the last `)`.
        let fields: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
        // After the name: state is field 3 of the file, utime 14, stime 15.
        let (utime, stime): (u64, u64) =
            (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
        Some(CpuSample {
            total,
            idle,
            own: utime + stime,
            cpus,
        })
    }

    /// CPUs other processes kept busy between `earlier` and this sample.
    pub fn others_busy_since(&self, earlier: &CpuSample) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        let busy = total.saturating_sub(self.idle.saturating_sub(earlier.idle));
        let own = self.own.saturating_sub(earlier.own);
        busy.saturating_sub(own) as f64 / total as f64 * self.cpus as f64
    }
}

/// Chooses a session's thread count from what other processes leave free: every so often it
/// compares the system's busy time with this process's own, and answers the CPUs the others
/// did not use, between 1 and the CPUs this process may use. llama.cpp's threads spin at every
/// barrier of a graph; a thread whose partner has no CPU spins away its time slice, so fewer
/// threads than free CPUs is far better than more.
#[derive(Debug, Clone)]
pub struct ThreadGovernor {
    most: usize,
    sessions: usize,
    last: Option<(std::time::Instant, CpuSample)>,
    current: usize,
}

impl ThreadGovernor {
    /// Samples at most this often: `/proc/stat` counts in 10 ms ticks.
    pub const INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

    /// A governor for at most `most` threads, starting with all of them, for one of `sessions`
    /// sessions of this process that share what other processes leave free (each takes an
    /// equal share: the others of this process count as this process, not as other processes).
    pub fn new(most: usize, sessions: usize) -> Self {
        let most = most.max(1);
        ThreadGovernor {
            most,
            sessions: sessions.max(1),
            last: CpuSample::now().map(|sample| (std::time::Instant::now(), sample)),
            current: most,
        }
    }

    /// The thread count to use now; changes only once [`Self::INTERVAL`] has passed since the
    /// last sample.
    pub fn threads(&mut self) -> usize {
        let now = std::time::Instant::now();
        if self
            .last
            .as_ref()
            .is_some_and(|(at, _)| now.duration_since(*at) < Self::INTERVAL)
        {
            return self.current;
        }
        if let Some(sample) = CpuSample::now() {
            if let Some((_, earlier)) = &self.last {
                let others_busy = sample.others_busy_since(earlier);
                self.current = threads_for(self.most, sample.cpus, others_busy, self.sessions);
                tracing::debug!(
                    "other processes kept {others_busy:.2} of {} CPUs busy: {} thread(s)",
                    sample.cpus,
                    self.current
                );
            }
            self.last = Some((now, sample));
        }
        self.current
    }
}

/// Threads one of `sessions` sessions runs when other processes keep `others_busy` of the
/// system's `cpus` CPUs busy: its equal share of the free CPUs, between 1 and `most`.
pub fn threads_for(most: usize, cpus: usize, others_busy: f64, sessions: usize) -> usize {
    let free = (cpus as f64 - others_busy).max(0.0) / sessions.max(1) as f64;
    // A CPU counts as free when at least three quarters of it is.
    ((free + 0.25).floor() as usize).clamp(1, most.max(1))
}

/// How a process spreads its CPUs over documents: `sessions` llama.cpp sessions over one
/// loaded model, each classifying its own document with `threads_per_session` threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPlan {
    /// Sessions, each with its own context (KV cache) and thread pool.
    pub sessions: usize,
    /// Threads of each session; `None`: chosen by each session's [`ThreadGovernor`] (its
    /// share of the CPUs other processes leave free, at most its share of `cpus`).
    pub threads_per_session: Option<usize>,
}

impl SessionPlan {
    /// The plan for `documents` documents (`None`: unknown, a stream) on `cpus` usable CPUs,
    /// given what the user asked: `sessions` (`--jobs`) and `threads` (`--threads`, the
    /// process's threads over all its sessions).
    ///
    /// By default one session per CPU with one thread each: a sentence pass of a few dozen
    /// tokens keeps one thread busy, while several threads on it wait at each layer's
    /// barrier, more of them the more threads (on 2 cores the gain is small, 1.04–1.17×:
    /// docs/results.md, "Scaling"). Never more sessions than documents: one document gets
    /// every thread, as fast as it can be answered. With `--threads` alone, that many
    /// sessions of one thread; with both, the threads are split evenly (at least one each).
    pub fn choose(
        sessions: Option<usize>,
        threads: Option<usize>,
        cpus: usize,
        documents: Option<usize>,
    ) -> SessionPlan {
        let cpus = cpus.max(1);
        let budget = threads.filter(|&threads| threads > 0);
        let sessions = sessions
            .filter(|&sessions| sessions > 0)
            .unwrap_or_else(|| {
                let wanted = budget.unwrap_or(cpus);
                documents.map_or(wanted, |documents| wanted.min(documents.max(1)))
            });
        SessionPlan {
            sessions,
            threads_per_session: budget.map(|threads| (threads / sessions).max(1)),
        }
    }

    /// The most threads one session may run: its fixed count, else its share of `cpus`.
    pub fn most_threads(&self, cpus: usize) -> usize {
        self.threads_per_session
            .unwrap_or_else(|| (cpus / self.sessions.max(1)).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_counters_are_read_from_proc_files() {
        let system = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n";
        let own =
            "4242 (exit wise) R 1 4242 4242 0 -1 4194304 100 0 0 0 30 10 0 0 20 0 3 0 100 1000 100";
        let sample = CpuSample::parse(system, own).expect("parsed");
        assert_eq!(
            sample,
            CpuSample {
                total: 1000,
                idle: 850,
                own: 40,
                cpus: 2
            }
        );
        // 200 more ticks on two CPUs (one second each... of ticks): 150 busy, 50 of them ours,
        // so the others kept 100 of 200 ticks busy: one CPU.
        let later = CpuSample {
            total: 1200,
            idle: 900,
            own: 90,
            cpus: 2,
        };
        assert!((later.others_busy_since(&sample) - 1.0).abs() < 1e-12);
        assert_eq!(CpuSample::parse("intr 1\n", own), None);
    }

    #[test]
    fn threads_follow_what_others_leave_free() {
        assert_eq!(threads_for(2, 2, 0.0, 1), 2);
        assert_eq!(threads_for(2, 2, 0.2, 1), 2);
        assert_eq!(threads_for(2, 2, 1.0, 1), 1);
        assert_eq!(threads_for(2, 2, 2.0, 1), 1, "never fewer than one");
        assert_eq!(threads_for(8, 16, 3.0, 1), 8, "never more than allowed");
        assert_eq!(threads_for(4, 4, 1.6, 1), 2);
        // Sessions of one process share what the others leave.
        assert_eq!(threads_for(8, 16, 0.0, 2), 8);
        assert_eq!(threads_for(8, 16, 8.0, 2), 4);
        assert_eq!(threads_for(4, 16, 2.0, 4), 3);
        assert_eq!(threads_for(1, 2, 1.5, 2), 1, "never fewer than one");
    }

    #[test]
    fn plans_give_documents_sessions_before_threads() {
        let plan = |sessions, threads, cpus, documents| {
            let plan = SessionPlan::choose(sessions, threads, cpus, documents);
            (
                plan.sessions,
                plan.threads_per_session,
                plan.most_threads(cpus),
            )
        };
        // Default: one single-threaded session per CPU, fewer for fewer documents.
        assert_eq!(plan(None, None, 2, None), (2, None, 1));
        assert_eq!(plan(None, None, 16, Some(500)), (16, None, 1));
        assert_eq!(plan(None, None, 16, Some(1)), (1, None, 16));
        assert_eq!(plan(None, None, 16, Some(4)), (4, None, 4));
        // --threads alone: that many sessions of one thread.
        assert_eq!(plan(None, Some(4), 16, None), (4, Some(1), 1));
        assert_eq!(plan(None, Some(8), 16, Some(1)), (1, Some(8), 8));
        // --jobs alone: the CPUs split between them.
        assert_eq!(plan(Some(1), None, 2, None), (1, None, 2));
        assert_eq!(plan(Some(4), None, 16, None), (4, None, 4));
        assert_eq!(plan(Some(4), None, 2, None), (4, None, 1));
        // Both: the threads split evenly, at least one each.
        assert_eq!(plan(Some(1), Some(2), 2, None), (1, Some(2), 2));
        assert_eq!(plan(Some(2), Some(2), 2, None), (2, Some(1), 1));
        assert_eq!(plan(Some(3), Some(2), 2, None), (3, Some(1), 1));
        assert_eq!(
            plan(Some(0), Some(0), 2, None),
            (2, None, 1),
            "zero means unset"
        );
    }

    #[test]
    fn this_process_has_at_least_one_cpu() {
        assert!(usable_cpus() >= 1);
    }
}
