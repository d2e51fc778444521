//! Latency between paired events (`rprobe stat --latency ENTRY,EXIT`): the time from an entry
//! event to the next exit event with the same key, into a log2 histogram.
//!
//! The key is the thread for function entry/return probes (a thread is in one call of a
//! function at a time, unless it recurses: the innermost entry is paired, as bcc's
//! `funclatency` does by overwriting its start map), and the woken pid for run-queue latency
//! (`sched:sched_wakeup` `pid` → `sched:sched_switch` `next_pid`). Events must arrive in time
//! order; an exit with no entry (the entry happened before tracing began) is counted as
//! unpaired, and so is an entry still open at the end.

use super::hist::Log2Hist;
use std::collections::HashMap;

/// The unit a latency histogram is printed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds (`nsecs`).
    Nsecs,
    /// Microseconds (`usecs`), bcc's default.
    Usecs,
    /// Milliseconds (`msecs`).
    Msecs,
}

impl Unit {
    /// bcc's column header for the unit.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Nsecs => "nsecs",
            Unit::Usecs => "usecs",
            Unit::Msecs => "msecs",
        }
    }

    fn scale(self, ns: u64) -> u64 {
        match self {
            Unit::Nsecs => ns,
            Unit::Usecs => ns / 1_000,
            Unit::Msecs => ns / 1_000_000,
        }
    }
}

/// Pairs entries with exits and histograms the differences.
#[derive(Debug, Clone)]
pub struct Latency {
    unit: Unit,
    open: HashMap<u64, u64>,
    /// The histogram of paired latencies, in `unit`.
    pub hist: Log2Hist,
    /// Exits with no entry before them.
    pub unpaired_exits: u64,
    /// Entries overwritten by a later entry of the same key before their exit.
    pub overwritten: u64,
    /// Paired latencies, summed in nanoseconds (for the average).
    pub total_ns: u128,
}

impl Latency {
    /// An empty pairing table printing in `unit`.
    pub fn new(unit: Unit) -> Latency {
        Latency {
            unit,
            open: HashMap::new(),
            hist: Log2Hist::default(),
            unpaired_exits: 0,
            overwritten: 0,
            total_ns: 0,
        }
    }

    /// An entry event for `key` at `time_ns`.
    pub fn entry(&mut self, key: u64, time_ns: u64) {
        if self.open.insert(key, time_ns).is_some() {
            self.overwritten += 1;
        }
    }

    /// An exit event for `key` at `time_ns`; the latency in nanoseconds when it pairs.
    pub fn exit(&mut self, key: u64, time_ns: u64) -> Option<u64> {
        let Some(start) = self.open.remove(&key) else {
            self.unpaired_exits += 1;
            return None;
        };
        let ns = time_ns.saturating_sub(start);
        self.hist.add(self.unit.scale(ns));
        self.total_ns += u128::from(ns);
        Some(ns)
    }

    /// Entries still waiting for their exit.
    pub fn open_entries(&self) -> usize {
        self.open.len()
    }

    /// Paired events.
    pub fn count(&self) -> u64 {
        self.hist.total()
    }

    /// The histogram as bcc prints it, then bcc's `funclatency` summary line
    /// (`avg = 16 usecs, total: 5 usecs, count: 3`) when anything paired.
    pub fn render(&self) -> String {
        let mut out = self.hist.render(self.unit.label());
        let count = self.count();
        if count > 0 {
            let total = self
                .unit
                .scale(u64::try_from(self.total_ns).unwrap_or(u64::MAX));
            let avg = self.total_ns / u128::from(count);
            let avg = self.unit.scale(u64::try_from(avg).unwrap_or(u64::MAX));
            out.push_str(&format!(
                "\navg = {avg} {}, total: {total} {}, count: {count}\n",
                self.unit.label(),
                self.unit.label()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_by_key_in_time_order() {
        let mut l = Latency::new(Unit::Usecs);
        l.entry(10, 1_000);
        l.entry(11, 2_000);
        assert_eq!(l.exit(10, 6_000), Some(5_000));
        assert_eq!(l.exit(12, 7_000), None);
        assert_eq!(l.exit(11, 102_000), Some(100_000));
        assert_eq!((l.count(), l.unpaired_exits, l.open_entries()), (2, 1, 0));
        // 5 us lands in 4..7, 100 us in 64..127.
        assert_eq!(l.hist.slots[3], 1);
        assert_eq!(l.hist.slots[7], 1);
        assert!(l
            .render()
            .ends_with("\navg = 52 usecs, total: 105 usecs, count: 2\n"));
    }

    #[test]
    fn recursion_pairs_the_innermost_entry() {
        let mut l = Latency::new(Unit::Nsecs);
        l.entry(1, 100);
        l.entry(1, 150);
        assert_eq!(l.exit(1, 160), Some(10));
        assert_eq!(l.exit(1, 200), None);
        assert_eq!((l.overwritten, l.unpaired_exits), (1, 1));
    }

    #[test]
    fn nothing_paired_prints_nothing() {
        assert_eq!(Latency::new(Unit::Msecs).render(), "");
    }
}
