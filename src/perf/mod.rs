//! perf events and the perf.data format: the ABI shared by the recorder, the perf.data writer
//! and the reader (`abi`), and, as they land, `perf_event_attr` building, ring-buffer reading
//! over byte slices, typed records, the writer, the reader and the recorder loop.
//!
//! Pure: nothing here makes a syscall; `crate::sys` opens events and maps ring buffers and
//! hands this module plain bytes.

pub mod abi;
pub mod attr;
pub mod reader;
#[cfg(target_os = "linux")]
pub mod recorder;
pub mod ring;
pub mod stream;
pub mod synth;
pub mod tracing_data;
pub mod writer;
