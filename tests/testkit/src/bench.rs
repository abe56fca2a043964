//! Clocks and gauges the benchmarks share.
//!
//! The project's machines are small and shared, so benchmarks report rates
//! per CPU-second of the measuring thread rather than per wall-clock second:
//! another process taking a core then does not make the code look slower.

use std::time::Duration;

/// CPU time this thread has used so far.
pub fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        // Not on a Linux-like system: no thread clock; nothing to measure.
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Resident memory of this process now, in MB (0 when unknown).
pub fn resident_mb() -> u64 {
    status_kib("VmRSS:").map_or(0, |k| k / 1000)
}

/// Peak resident memory of this process so far, in MB (0 when unknown).
pub fn peak_resident_mb() -> u64 {
    status_kib("VmHWM:").map_or(0, |k| k / 1000)
}

fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_clock_advances_with_work_and_memory_is_known() {
        let start = thread_cpu();
        let mut x = 0u64;
        while thread_cpu() - start < Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(thread_cpu() > start);
        assert!(resident_mb() > 0);
        assert!(peak_resident_mb() >= resident_mb());
    }
}
