//! Aggregation in user space: counts by key and histograms printed as bcc prints them, for
//! `rprobe stat`. Pure: values in, tables out.

pub mod bpf;
pub mod count;
pub mod hist;
pub mod latency;
