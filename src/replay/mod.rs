//! Replay of perf.data files: the recorded machine (threads, maps, DSOs), symbolization as
//! perf 6.1 does it, tracepoint text, and the `perf script` writer.

pub mod dso;
pub mod machine;
pub mod script;
pub mod session;
pub mod symbols;
pub mod trace;
