//! Probe specs: the perf-probe language, the fetch-arg AST, and the resolved definitions that
//! are written to `kprobe_events`/`uprobe_events`.
//!
//! The pipeline is `spec::parse_spec` (text → [`ProbeSpec`]), `resolve::resolve` (spec +
//! symbols → [`ProbeDef`]s) and [`ProbeDef::line`] (→ the one-line tracefs definition). All of
//! it is pure, so every step is tested without a kernel; see `reference/probe-events.md` for
//! the kernel and perf facts it implements.

pub mod chain;
pub mod def;
pub mod error;
pub mod fetch;
pub mod regs;
pub mod resolve;
pub mod sdt;
pub mod session;
pub mod spec;
pub mod usdt;

pub use def::{DefArg, Place, ProbeDef, ProbeKind};
pub use error::SpecError;
pub use fetch::{FetchArg, FetchType};
pub use resolve::{resolve, Caps, ResolveOptions, Target};
pub use spec::{parse_spec, ProbeSpec};
