//! rprobe: a Linux tracer that needs no compiled BPF.
//!
//! It writes kprobe/uprobe events to tracefs, records perf ring buffers into perf.data and
//! replays them as `perf script` does. The layout follows `DESIGN.md`: pure modules
//! (`probes`, `tracefs`, `elf`) take bytes, strings or paths and return typed values; `sys`
//! holds every raw syscall and all `unsafe`; `cli` orchestrates and is the only module that
//! prints.

pub mod aggregate;
pub mod btf;
pub mod cli;
pub mod debuginfo;
pub mod dwarf;
pub mod elf;
pub mod perf;
pub mod probes;
pub mod replay;
#[cfg(target_os = "linux")]
pub mod sys;
pub mod tracefs;
pub mod unwind;
