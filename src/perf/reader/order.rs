//! Delivery order of records, as perf 6.1's `ordered_events` (`util/ordered-events.c`) gives
//! it to `perf script`.
//!
//! - A kernel record with a timestamp (a sample's TIME, or the `sample_id_all` trailer's) is
//!   queued; one without a timestamp, or with time 0 (perf's synthesized MMAP/COMM records),
//!   is delivered at once, in file order.
//! - `FINISHED_ROUND` flushes every queued record with a timestamp at or below the limit set by
//!   the previous round (the maximum timestamp queued when that round ended), then sets the
//!   limit to the maximum queued so far. The first round's limit is 0.
//! - At the end of the data everything left is flushed.
//! - Queued records come out sorted by timestamp; equal timestamps keep file order (perf's
//!   list insertion is stable).
//!
//! Memory: the queue holds 24 bytes per pending record (timestamp, sequence, file offset);
//! the record bytes stay in the mapped file. With rounds, the queue holds about two rounds.

use super::RawRecord;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Records in perf's delivery order. Feed it the records of the file in file order with
/// [`Orderer::push`], then [`Orderer::finish`]; each call hands records to `deliver` as they
/// become due. `time_of` says a record's timestamp (None: no timestamp).
#[derive(Debug, Default)]
pub struct Orderer {
    queue: BinaryHeap<Reverse<(u64, u64, u64)>>,
    seq: u64,
    max_timestamp: u64,
    next_flush: u64,
    /// Records queued after their timestamp's slice was flushed (perf's "out of order event").
    pub unordered: u64,
    last_flush: u64,
    /// The largest number of records queued at once.
    pub peak: usize,
}

/// What [`Orderer::push`] says to do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Deliver this record now (no timestamp, or a user record).
    Now,
    /// The record was queued.
    Queued,
    /// A FINISHED_ROUND: call [`Orderer::flush_round`].
    Round,
}

impl Orderer {
    /// A new, empty queue.
    pub fn new() -> Orderer {
        Orderer::default()
    }

    /// Take one record in file order.
    pub fn push(&mut self, rec: &RawRecord<'_>, time: Option<u64>) -> Step {
        if rec.type_ == crate::perf::abi::record::FINISHED_ROUND {
            return Step::Round;
        }
        match time {
            Some(t) if t != 0 && t != u64::MAX && rec.type_ < 64 => {
                if t < self.last_flush {
                    self.unordered += 1;
                }
                self.queue.push(Reverse((t, self.seq, rec.offset)));
                self.seq += 1;
                self.max_timestamp = self.max_timestamp.max(t);
                self.peak = self.peak.max(self.queue.len());
                Step::Queued
            }
            _ => Step::Now,
        }
    }

    /// The file offsets due at a FINISHED_ROUND, in delivery order, passed to `deliver`.
    pub fn flush_round(&mut self, mut deliver: impl FnMut(u64)) {
        let limit = self.next_flush;
        self.flush_to(limit, &mut deliver);
        self.next_flush = self.max_timestamp;
    }

    /// Everything still queued, at the end of the data.
    pub fn finish(&mut self, mut deliver: impl FnMut(u64)) {
        self.flush_to(u64::MAX, &mut deliver);
    }

    fn flush_to(&mut self, limit: u64, deliver: &mut impl FnMut(u64)) {
        while let Some(Reverse((t, _, off))) = self.queue.peek().copied() {
            if t > limit {
                break;
            }
            self.queue.pop();
            self.last_flush = t;
            deliver(off);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::abi::record;

    fn r(offset: u64, type_: u32) -> RawRecord<'static> {
        RawRecord {
            offset,
            type_,
            misc: 0,
            body: &[],
        }
    }

    /// Runs records (offset, type, time) through an Orderer; returns delivered offsets.
    fn run(recs: &[(u64, u32, Option<u64>)]) -> Vec<u64> {
        let mut o = Orderer::new();
        let mut out = Vec::new();
        for &(off, ty, t) in recs {
            match o.push(&r(off, ty), t) {
                Step::Now => out.push(off),
                Step::Queued => {}
                Step::Round => o.flush_round(|x| out.push(x)),
            }
        }
        o.finish(|x| out.push(x));
        out
    }

    #[test]
    fn sorted_by_time_stable_and_untimed_at_once() {
        let s = record::SAMPLE;
        let got = run(&[
            (1, record::MMAP, Some(0)),
            (2, s, Some(30)),
            (3, s, Some(10)),
            (4, s, Some(30)),
            (5, record::COMM, None),
            (6, s, Some(20)),
        ]);
        assert_eq!(got, vec![1, 5, 3, 6, 2, 4]);
    }

    #[test]
    fn rounds_flush_up_to_the_previous_rounds_maximum() {
        let s = record::SAMPLE;
        let fr = record::FINISHED_ROUND;
        let got = run(&[
            (1, s, Some(10)),
            (2, s, Some(50)),
            (3, fr, None), // limit 0: nothing; next limit 50
            (4, s, Some(40)),
            (5, s, Some(60)),
            (6, fr, None), // flush <= 50: 1, 4, 2; next limit 60
            (7, s, Some(55)),
            (8, fr, None),    // flush <= 60: 7, 5
            (9, s, Some(45)), // below the last flush: still delivered, counted
        ]);
        assert_eq!(got, vec![1, 4, 2, 7, 5, 9]);
        let mut o = Orderer::new();
        for &(off, t) in &[(1u64, 10u64), (2, 20)] {
            o.push(&r(off, s), Some(t));
        }
        o.push(&r(3, fr), None);
        o.flush_round(|_| {});
        o.push(&r(4, fr), None);
        o.flush_round(|_| {});
        o.push(&r(5, s), Some(5));
        assert_eq!(o.unordered, 1);
        assert_eq!(o.peak, 2);
    }
}
