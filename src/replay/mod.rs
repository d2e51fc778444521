//! Replay: decoding recorded samples into the text and structures users read.
//!
//! [`printfmt`] renders tracepoint and probe-event samples as `perf script` 6.1 does.

pub mod printfmt;
