//! The CPU time this process has used, from `/proc/self/stat`, so that a load run can report what
//! the generator itself cost per request.
//!
//! `/proc/self/stat` fields 14 (utime) and 15 (stime) are the whole process's user and system time
//! (every thread, live or exited) in clock ticks. The tick rate is what `getconf CLK_TCK` prints,
//! asked once; if that fails, 100 per second, which is `USER_HZ` on every Linux architecture
//! devsim builds for (x86, x86-64, ARM, AArch64, RISC-V). Ticks make the figure coarse (10 ms at
//! 100 Hz), so it is meant for runs of seconds, not for single requests.

use std::sync::OnceLock;
use std::time::Duration;

/// User + system CPU time of this process so far; None when `/proc` cannot be read (not Linux).
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = stat_cpu_ticks(&stat)?;
    Some(ticks_to_duration(ticks, clock_ticks_per_second()))
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, in clock ticks. The command name
/// (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    // The first field after the name is field 3 (state): field 14 is the 12th.
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// `ticks` clock ticks at `per_second` ticks per second.
pub fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    let per_second = per_second.max(1);
    Duration::from_secs(ticks / per_second) + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

/// Clock ticks per second (`getconf CLK_TCK`, asked once), else 100 (see the module's notes).
pub fn clock_ticks_per_second() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|&hz| hz > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_the_last_parenthesis() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime …
        let stat = "4242 (dev sim) (x)) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 8 9 20 0 5 0";
        assert_eq!(stat_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(stat_cpu_ticks("4242 (devsim) S 1 2"), None);
        assert_eq!(stat_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn ticks_become_durations() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2_500));
        assert_eq!(ticks_to_duration(3, 1024), Duration::from_nanos(2_929_687));
        assert_eq!(ticks_to_duration(u64::MAX, 100).as_secs(), u64::MAX / 100);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        if cfg!(target_os = "linux") {
            let mut x = 0u64;
            for i in 0..5_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            assert!(process_cpu_time().is_some(), "{x}");
            assert!(clock_ticks_per_second() >= 100);
        }
    }
}
