//! The machine and build a measurement ran on, recorded with every report: figures are only
//! comparable on the same processor, threads and build.

use serde::Serialize;

/// The machine and build the figures were measured on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineFacts {
    /// The processor's model name.
    pub cpu: String,
    /// Logical CPUs the system has.
    pub logical_cpus: usize,
    /// llama.cpp threads used.
    pub threads: usize,
    /// llama.cpp back ends built in ([`crate::engine::compiled_backends`]).
    pub build_features: Vec<&'static str>,
    /// Where the model's layers ran ([`crate::engine::Model::placement`]; empty for several
    /// models).
    pub placement: String,
    /// exitwise's version.
    pub exitwise_version: &'static str,
    /// The commit it was built from.
    pub commit: &'static str,
    /// The model file(s), comma-separated.
    pub model: String,
    /// The model file's sha256 (empty for several models).
    pub model_sha256: String,
    /// Its quantization (empty for several models).
    pub model_quantization: String,
    /// The adapter pack.
    pub pack: String,
}

impl MachineFacts {
    /// This machine and build, with the run's `threads`, model and pack.
    pub fn collect(
        threads: usize,
        model: String,
        model_sha256: String,
        model_quantization: String,
        pack: String,
    ) -> Self {
        MachineFacts {
            cpu: cpu_model(),
            logical_cpus: std::thread::available_parallelism().map_or(1, usize::from),
            threads,
            build_features: crate::engine::compiled_backends(),
            placement: String::new(),
            exitwise_version: env!("CARGO_PKG_VERSION"),
            commit: env!("EXITWISE_BUILD_COMMIT"),
            model,
            model_sha256,
            model_quantization,
            pack,
        }
    }
}

/// The processor's model name (Linux), else the architecture.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| cpu_model_in(&info))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn cpu_model_in(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, name)| name.trim().to_string())
}

/// Resident and peak resident memory of this process in MB (Linux; 0 elsewhere).
pub fn resident_memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    memory_in(&status)
}

fn memory_in(status: &str) -> (f64, f64) {
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kilobytes| kilobytes.parse::<f64>().ok())
            .map_or(0.0, |kilobytes| kilobytes / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processor_and_memory_are_read_from_proc_files() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.10GHz\nflags\t: fpu\n";
        assert_eq!(
            cpu_model_in(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.10GHz")
        );
        assert_eq!(cpu_model_in("processor\t: 0\n"), None);
        let status = "Name:\texitwise\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(memory_in(status), (1.0, 2.0));
        assert_eq!(memory_in(""), (0.0, 0.0));
    }
}
