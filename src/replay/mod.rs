//! Replay: decoding recorded samples into the text and structures users read.
//!
//! [`printfmt`] renders tracepoint and probe-event samples as `perf script` 6.1 does; the
//! rest replays perf.data files: the recorded machine (threads, maps, DSOs), symbolization as
//! perf 6.1 does it, and the `perf script` writer.

pub mod dso;
pub mod flame;
pub mod hash;
pub mod inline;
pub mod json;
pub mod machine;
pub mod printfmt;
pub mod report;
pub mod script;
pub mod session;
pub mod symbols;
pub mod trace;
pub mod unwind;
