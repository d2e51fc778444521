//! The optional in-kernel engine of `rprobe stat`: BPF programs emitted by rprobe itself (no
//! compiler, no object files) that count or histogram events into a BPF hash map, which
//! rprobe reads back into the same tables as the user-space engine.

#[cfg(target_os = "linux")]
pub mod engine;
pub mod insn;
pub mod prog;
