//! The `HEADER_TRACING_DATA` payload: the tracefs text perf needs to decode tracepoint and
//! probe samples (`tools/perf/util/trace-event-info.c` writes it, `trace-event-read.c` reads
//! it).
//!
//! ```text
//! "\x17\x08\x44tracing" "0.6\0" u8 big_endian u8 long_size u32 page_size
//! "header_page\0" u64 len text      "header_event\0" u64 len text     (both non-empty)
//! u32 nr_ftrace_formats (0)
//! u32 nr_systems { "system\0" u32 nr_events { u64 len format-text }* }*
//! u32 kallsyms_len (0)  u32 printk_len printk-text  u64 saved_cmdlines_len (0)
//! ```
//! Built from the running tracefs this is byte-identical to perf 6.1's for the same events.
//! Format texts are self-contained, so a file stays decodable after its probes are deleted.

use std::collections::BTreeMap;
use std::path::Path;

/// The texts the payload is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracingTexts {
    /// `events/header_page`.
    pub header_page: String,
    /// `events/header_event`.
    pub header_event: String,
    /// `system -> [format text]` in the order to write (perf: systems and events as given).
    pub systems: Vec<(String, Vec<String>)>,
    /// `printk_formats` (may be empty).
    pub printk: String,
}

/// Encode the payload (little-endian host, 8-byte longs, `page_size`).
pub fn encode(t: &TracingTexts, page_size: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"\x17\x08\x44tracing0.6\0");
    b.push(0); // big_endian
    b.push(8); // long_size
    b.extend_from_slice(&page_size.to_ne_bytes());
    b.extend_from_slice(b"header_page\0");
    b.extend_from_slice(&(t.header_page.len() as u64).to_ne_bytes());
    b.extend_from_slice(t.header_page.as_bytes());
    b.extend_from_slice(b"header_event\0");
    b.extend_from_slice(&(t.header_event.len() as u64).to_ne_bytes());
    b.extend_from_slice(t.header_event.as_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // ftrace formats
    b.extend_from_slice(&(t.systems.len() as u32).to_ne_bytes());
    for (sys, formats) in &t.systems {
        b.extend_from_slice(sys.as_bytes());
        b.push(0);
        b.extend_from_slice(&(formats.len() as u32).to_ne_bytes());
        for f in formats {
            b.extend_from_slice(&(f.len() as u64).to_ne_bytes());
            b.extend_from_slice(f.as_bytes());
        }
    }
    b.extend_from_slice(&0u32.to_ne_bytes()); // kallsyms
    b.extend_from_slice(&(t.printk.len() as u32).to_ne_bytes());
    b.extend_from_slice(t.printk.as_bytes());
    b.extend_from_slice(&0u64.to_ne_bytes()); // saved_cmdlines
    b
}

/// Why the texts could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path} for the trace data: {source}")]
pub struct TracingDataError {
    /// The tracefs file.
    pub path: std::path::PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Read the texts for `events` (`(group, event)`, grouped by system in first-seen order) from
/// the tracefs at `root`. `printk_formats` is optional (unreadable → empty).
pub fn read_texts(
    root: &Path,
    events: &[(String, String)],
) -> Result<TracingTexts, TracingDataError> {
    // One large read(2): `events/header_page` answers only a read at position 0, so the
    // 32-byte probe read that std::fs::read starts with would cut it to 32 bytes.
    let read = |rel: &Path| {
        let path = root.join(rel);
        crate::tracefs::events::read_in_one_call(&path)
            .map_err(|source| TracingDataError { path, source })
    };
    let mut order: Vec<String> = Vec::new();
    let mut by_sys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (group, event) in events {
        let text = read(&Path::new("events").join(group).join(event).join("format"))?;
        if !by_sys.contains_key(group) {
            order.push(group.clone());
        }
        by_sys.entry(group.clone()).or_default().push(text);
    }
    Ok(TracingTexts {
        header_page: read(Path::new("events/header_page"))?,
        header_event: read(Path::new("events/header_event"))?,
        systems: order
            .into_iter()
            .map(|s| {
                let f = by_sys.remove(&s).unwrap_or_default();
                (s, f)
            })
            .collect(),
        printk: std::fs::read(root.join("printk_formats"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let t = TracingTexts {
            header_page: "hp".into(),
            header_event: "he".into(),
            systems: vec![("sched".into(), vec!["f1".into(), "f22".into()])],
            printk: String::new(),
        };
        let b = encode(&t, 4096);
        let mut want = b"\x17\x08\x44tracing0.6\0\0\x08".to_vec();
        want.extend_from_slice(&4096u32.to_le_bytes());
        want.extend_from_slice(b"header_page\0");
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(b"hp");
        want.extend_from_slice(b"header_event\0");
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(b"he");
        want.extend_from_slice(&0u32.to_le_bytes());
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(b"sched\0");
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(b"f1");
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"f22");
        want.extend_from_slice(&0u32.to_le_bytes());
        want.extend_from_slice(&0u32.to_le_bytes());
        want.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(b, want);
    }

    #[test]
    fn texts_from_a_tracefs_tree() {
        let (dir, _t) = crate::tracefs::fake::tree();
        let events = dir.path().join("events");
        std::fs::write(events.join("header_page"), "field: u64 timestamp;").expect("w");
        std::fs::write(events.join("header_event"), "# compressed entry header").expect("w");
        let t = read_texts(dir.path(), &[("rptest".into(), "ev".into())]).expect("texts");
        assert_eq!(t.systems.len(), 1);
        assert!(t.systems[0].1[0].contains("name: ev"), "{:?}", t.systems);
        assert!(t.printk.is_empty());
        let err = read_texts(dir.path(), &[("nope".into(), "ev".into())]).expect_err("missing");
        assert!(err.to_string().contains("events/nope/ev/format"), "{err}");
    }
}
