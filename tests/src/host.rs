//! The host's CPU accounting for the benchmarks: steal time (taken by the hypervisor's other
//! guests) and busy time, from the first line of `/proc/stat`, so that every benchmark prints how
//! noisy the machine was while it measured.

/// Cumulative CPU time of the host, in ticks, from the first line of `/proc/stat`.
#[derive(Clone, Copy, Debug)]
pub struct CpuTimes {
    steal: u64,
    /// idle + iowait
    idle: u64,
    total: u64,
}

impl CpuTimes {
    /// Reads `/proc/stat` now; `None` where it cannot be read or parsed.
    pub fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        parse(stat.lines().next()?)
    }
}

fn parse(line: &str) -> Option<CpuTimes> {
    let fields: Vec<u64> = line
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest and guest_nice are already counted in
    // user and nice).
    (fields.len() >= 8).then(|| CpuTimes {
        steal: fields[7],
        idle: fields[3] + fields[4],
        total: fields[..8].iter().sum(),
    })
}

/// Between two readings, as percentages of all CPU time in the interval: steal time, and busy
/// time (neither idle nor waiting for I/O, steal included: every process of this host, the
/// benchmark's own included).
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// Steal, in percent of all CPU time in the interval.
    pub steal: f64,
    /// Busy, in percent of all CPU time in the interval.
    pub busy: f64,
}

impl Cpu {
    /// The shares between two readings; `None` when either is missing or no time passed.
    pub fn between(from: Option<CpuTimes>, to: Option<CpuTimes>) -> Option<Cpu> {
        let (a, b) = (from?, to?);
        let total = b.total.checked_sub(a.total)?;
        let share = |x: u64| 100.0 * x as f64 / total as f64;
        (total > 0).then(|| Cpu {
            steal: share(b.steal.saturating_sub(a.steal)),
            busy: share(total.saturating_sub(b.idle.saturating_sub(a.idle))),
        })
    }

    /// `steal 1.2%, CPU busy 97%`, or `steal n/a`.
    pub fn text(c: Option<Cpu>) -> String {
        c.map_or("steal n/a".into(), |c| {
            format!("steal {:.1}%, CPU busy {:.0}%", c.steal, c.busy)
        })
    }

    /// `"steal_pct": 1.234, "busy_pct": 97.000` (or nulls), for a JSON object.
    pub fn json(c: Option<Cpu>) -> String {
        c.map_or("\"steal_pct\": null, \"busy_pct\": null".into(), |c| {
            format!("\"steal_pct\": {:.3}, \"busy_pct\": {:.3}", c.steal, c.busy)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_between_two_readings() {
        let a = parse("cpu  100 0 100 700 100 0 0 0 0 0").unwrap();
        let b = parse("cpu  200 0 200 800 100 0 0 100 50 0").unwrap();
        let c = Cpu::between(Some(a), Some(b)).unwrap();
        // 400 ticks passed: 100 steal, 100 idle.
        assert_eq!(c.steal, 25.0);
        assert_eq!(c.busy, 75.0);
        assert!(Cpu::between(Some(b), Some(b)).is_none());
        assert!(parse("intr 1 2 3").is_none());
    }
}
