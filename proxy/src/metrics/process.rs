//! The proxy process's own use of the machine, read from `/proc/self` when `/metrics` is
//! scraped (Linux; elsewhere nothing is read and the gauges stay at 0): CPU time, resident
//! memory, open file descriptors and their limit. Enough to tell a proxy near its saturation
//! from an origin near its own.

/// `USER_HZ`: the unit of `utime`/`stime` in `/proc/<pid>/stat`, 100 on every Linux ABI.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// One reading.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time of all threads, seconds.
    pub cpu_seconds: f64,
    /// Resident memory, bytes.
    pub resident_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors.
    pub max_fds: u64,
}

impl ProcessStats {
    /// Reads `/proc/self`; a field that cannot be read is 0.
    #[must_use]
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        Self {
            cpu_seconds: cpu_seconds(&stat),
            resident_bytes: resident_bytes(&status),
            open_fds,
            max_fds: max_fds(&limits),
        }
    }
}

/// `utime + stime` of `/proc/self/stat`, whose fields after the command (which may hold
/// spaces, so split after its closing parenthesis) start with the state, field 3.
fn cpu_seconds(stat: &str) -> f64 {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `fields[0]` is field 3.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / CLOCK_TICKS_PER_SECOND
}

/// `VmRSS:   1234 kB` of `/proc/self/status`.
fn resident_bytes(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb.saturating_mul(1024))
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_fds(limits: &str) -> u64 {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "4242 (shouhu (x) y) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 50 0 0 20 0 9 0";
        assert!((cpu_seconds(stat) - 3.0).abs() < 1e-9);
        assert_eq!(
            resident_bytes("Name:\tshouhu\nVmRSS:\t  2048 kB\n"),
            2048 * 1024
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_fds(limits), 1024);
        assert_eq!(cpu_seconds(""), 0.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let s = ProcessStats::read();
        assert!(s.open_fds > 0 && s.max_fds >= s.open_fds, "{s:?}");
        assert!(s.resident_bytes > 0);
    }
}
