//! `process_*` metrics (the names Prometheus' own client libraries use)
//! read from `/proc/self` on each scrape, and `switchyard_build_info`.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::EncodeMetric;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Kernel clock ticks per second in `/proc` (`USER_HZ`: 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc/self` says about this process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
    pub threads: u64,
}

impl ProcessStats {
    /// Read `/proc/self` (`None` where there is no procfs).
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
            resident_bytes: kib("VmRSS:"),
            virtual_bytes: kib("VmSize:"),
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
            max_fds: max_open_files(),
            start_time_seconds: boot.zip(field(22)).map(|(b, t)| b + t / TICKS_PER_SECOND),
            threads: field(20).map_or(0, |t| t as u64),
        })
    }
}

fn max_open_files() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Encode the process metrics and the build info.
pub fn encode(encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let info = ConstGauge::new(1i64);
    let version = env!("CARGO_PKG_VERSION");
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    info.encode(
        encoder
            .encode_descriptor(
                "switchyard_build_info",
                "The running build: version and profile (always 1)",
                None,
                info.metric_type(),
            )?
            .encode_family(&[("version", version), ("profile", profile)])?,
    )?;

    let Some(stats) = ProcessStats::read() else {
        return Ok(());
    };
    let cpu = ConstCounter::new(stats.cpu_seconds);
    cpu.encode(encoder.encode_descriptor(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        None,
        cpu.metric_type(),
    )?)?;
    let gauges: [(&str, &str, Option<f64>); 6] = [
        (
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            Some(stats.resident_bytes as f64),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            Some(stats.virtual_bytes as f64),
        ),
        (
            "process_open_fds",
            "Number of open file descriptors",
            Some(stats.open_fds as f64),
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors",
            stats.max_fds.map(|m| m as f64),
        ),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            stats.start_time_seconds,
        ),
        (
            "process_threads",
            "Number of OS threads in the process",
            Some(stats.threads as f64),
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(value) = value {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_threads_and_open_files() {
        let stats = ProcessStats::read().expect("procfs");
        assert!(stats.resident_bytes > 1024 * 1024, "{stats:?}");
        assert!(stats.virtual_bytes >= stats.resident_bytes);
        assert!(stats.open_fds >= 3 && stats.threads >= 1);
        assert!(stats.max_fds.unwrap() >= stats.open_fds);
        let started = stats.start_time_seconds.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0 * 365.0,
            "{started}"
        );
    }
}
