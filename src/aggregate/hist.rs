//! Histograms as bcc prints them: log2 buckets (`print_log2_hist`) and linear buckets
//! (`print_linear_hist`), so users of `funclatency`, `biolatency` and `argdist` read rprobe's
//! tables the same way.
//!
//! bcc's buckets come from `bpf_log2l(v)`, which is `floor(log2(v)) + 1` for `v ≥ 1` and also 1
//! for `v = 0`: bucket 1 holds 0 and 1 (printed `0 -> 1`), bucket `i > 1` holds
//! `2^(i-1) ..= 2^i - 1`. Slot 0 is never used. Printing (`table.py`, `_print_log2_hist`) runs
//! from bucket 1 to the last non-empty one, with a 40-star bar scaled to the largest count;
//! past bucket 32 the columns widen and the bar halves to 20 stars.

use std::fmt::Write;

/// Number of log2 slots: bucket 64 holds values from 2^63.
pub const LOG2_SLOTS: usize = 65;

/// A log2 histogram with bcc's bucket numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log2Hist {
    /// Counts per bucket, indexed as `bpf_log2l` numbers them (slot 0 unused).
    pub slots: [u64; LOG2_SLOTS],
}

impl Default for Log2Hist {
    fn default() -> Self {
        Log2Hist {
            slots: [0; LOG2_SLOTS],
        }
    }
}

/// bcc's `bpf_log2l`: the bucket of `v`.
pub fn log2_bucket(v: u64) -> usize {
    if v == 0 {
        1
    } else {
        (64 - v.leading_zeros()) as usize
    }
}

impl Log2Hist {
    /// Counts one value.
    pub fn add(&mut self, v: u64) {
        self.add_n(v, 1);
    }

    /// Counts `n` occurrences of a value.
    pub fn add_n(&mut self, v: u64, n: u64) {
        let slot = &mut self.slots[log2_bucket(v)];
        *slot = slot.saturating_add(n);
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.slots.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Log2Hist) {
        for (a, b) in self.slots.iter_mut().zip(other.slots.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// The table exactly as bcc's `print_log2_hist(val_type)` prints it, each line ending in
    /// `\n`; empty when every count is zero (bcc prints nothing then either).
    pub fn render(&self, val_type: &str) -> String {
        let mut out = String::new();
        let idx_max = self.slots.iter().rposition(|v| *v > 0).unwrap_or(0);
        let val_max = self.slots.iter().copied().max().unwrap_or(0);
        if idx_max == 0 {
            return out;
        }
        let wide = idx_max > 32;
        let stars = if wide { STARS_MAX / 2 } else { STARS_MAX };
        if wide {
            let _ = writeln!(
                out,
                "               {val_type:<29} : count     distribution"
            );
        } else {
            let _ = writeln!(out, "     {val_type:<19} : count     distribution");
        }
        for i in 1..=idx_max {
            let mut low = (1u128 << i) >> 1;
            let high = (1u128 << i) - 1;
            if low == high {
                low -= 1;
            }
            let val = self.slots[i];
            let bar = stars_bar(val, val_max, stars);
            if wide {
                let _ = writeln!(out, "{low:>20} -> {high:<20} : {val:<8} |{bar:<stars$}|");
            } else {
                let _ = writeln!(out, "{low:>10} -> {high:<10} : {val:<8} |{bar:<stars$}|");
            }
        }
        out
    }
}

/// Width of bcc's distribution bar.
const STARS_MAX: usize = 40;

/// bcc's `_stars`: `floor(width * val / val_max)` stars, at most `width`. (Its loop adds a
/// star while `i <= width*val/val_max - 1` in float arithmetic.)
fn stars_bar(val: u64, val_max: u64, width: usize) -> String {
    if val_max == 0 {
        return String::new();
    }
    let n = ((width as f64 * val as f64 / val_max as f64).floor() as usize).min(width);
    "*".repeat(n)
}

/// A linear histogram: buckets of `step` starting at 0, as bcc's `print_linear_hist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearHist {
    /// Bucket width (at least 1).
    pub step: u64,
    /// Counts per bucket; bucket `i` holds `i*step ..= (i+1)*step - 1`.
    pub buckets: std::collections::BTreeMap<u64, u64>,
}

impl LinearHist {
    /// An empty histogram with buckets of `step` (0 is taken as 1).
    pub fn new(step: u64) -> LinearHist {
        LinearHist {
            step: step.max(1),
            buckets: Default::default(),
        }
    }

    /// Counts one value.
    pub fn add(&mut self, v: u64) {
        let slot = self.buckets.entry(v / self.step).or_insert(0);
        *slot = slot.saturating_add(1);
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.buckets
            .values()
            .fold(0u64, |a, b| a.saturating_add(*b))
    }

    /// The table as bcc's `print_linear_hist(val_type, strip_leading_zero=True)` prints it:
    /// every bucket from the first non-empty one to the last, labelled by its lower bound
    /// (bcc's label is the bucket number, which is the same for `step` 1).
    pub fn render(&self, val_type: &str) -> String {
        let mut out = String::new();
        let (Some((&first, _)), Some((&last, _))) = (
            self.buckets.first_key_value(),
            self.buckets.last_key_value(),
        ) else {
            return out;
        };
        let val_max = self.buckets.values().copied().max().unwrap_or(0);
        let _ = writeln!(out, "     {val_type:<13} : count     distribution");
        for b in first..=last {
            let val = self.buckets.get(&b).copied().unwrap_or(0);
            let bar = stars_bar(val, val_max, STARS_MAX);
            let low = b.saturating_mul(self.step);
            let _ = writeln!(out, "        {low:<10} : {val:<8} |{bar:<40}|");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_as_bpf_log2l() {
        assert_eq!(log2_bucket(0), 1);
        assert_eq!(log2_bucket(1), 1);
        assert_eq!(log2_bucket(2), 2);
        assert_eq!(log2_bucket(3), 2);
        assert_eq!(log2_bucket(4), 3);
        assert_eq!(log2_bucket(1023), 10);
        assert_eq!(log2_bucket(1024), 11);
        assert_eq!(log2_bucket(u64::MAX), 64);
    }

    #[test]
    fn renders_like_bcc() {
        // What bcc 0.26's table.py _print_log2_hist printed for the same slots
        // (tests/bcc_hist.rs compares against bcc itself on random histograms).
        let mut h = Log2Hist::default();
        h.add_n(1, 3);
        h.add_n(5, 12);
        h.add_n(100, 40);
        let want = "     usecs               : count     distribution
         0 -> 1          : 3        |***                                     |
         2 -> 3          : 0        |                                        |
         4 -> 7          : 12       |************                            |
         8 -> 15         : 0        |                                        |
        16 -> 31         : 0        |                                        |
        32 -> 63         : 0        |                                        |
        64 -> 127        : 40       |****************************************|
";
        assert_eq!(h.render("usecs"), want);
        assert_eq!(h.total(), 55);
        assert_eq!(Log2Hist::default().render("usecs"), "");
    }

    #[test]
    fn wide_tables_past_bucket_32() {
        let mut h = Log2Hist::default();
        h.add(1 << 40);
        h.add(1);
        let text = h.render("nsecs");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 41);
        assert_eq!(
            lines[0],
            "               nsecs                         : count     distribution"
        );
        assert_eq!(
            lines[41],
            "       1099511627776 -> 2199023255551        : 1        |********************|"
        );
    }

    #[test]
    fn star_rounding_matches_python() {
        // width*val/val_max = 40*1/3 = 13.33: Python's loop stops at i = 13.
        assert_eq!(stars_bar(1, 3, 40).len(), 13);
        assert_eq!(stars_bar(3, 3, 40).len(), 40);
        assert_eq!(stars_bar(0, 3, 40).len(), 0);
    }

    #[test]
    fn linear_buckets() {
        let mut h = LinearHist::new(10);
        for v in [0, 5, 9, 10, 35] {
            h.add(v);
        }
        let text = h.render("bytes");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "     bytes         : count     distribution");
        assert_eq!(
            lines[1],
            "        0          : 3        |****************************************|"
        );
        assert_eq!(lines.len(), 1 + 4);
        assert!(lines[3].starts_with("        20         : 0 "));
        assert_eq!(h.total(), 5);
    }
}
