//! Tracepoint field text for `perf script`'s `trace` field: each event's print fmt compiled
//! once by [`super::printfmt`], rendered per sample, with kernel symbols for `%pS`.

use super::symbols::SymbolMap;
use crate::tracefs::format::EventFormat;

/// Kernel symbols for the print-fmt evaluator: the kallsyms map and the relocation between the
/// recording kernel and those symbols.
#[derive(Debug, Clone, Copy)]
pub struct KernelSyms<'a> {
    /// The symbols, when the file has a kernel map to relocate against.
    pub map: Option<&'a SymbolMap>,
    /// Added to an address before the lookup.
    pub delta: u64,
}

impl KernelSyms<'_> {
    /// The symbol holding `addr` and the offset into it.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let a = addr.wrapping_add(self.delta);
        let s = self.map?.find(a)?;
        Some((s.name(), a - s.start))
    }
}

/// The compiled print fmts of a file's events, by evsel index.
#[derive(Debug, Default)]
pub struct TraceFormatter {
    compiled: Vec<Option<Stopgap>>,
}

/// Until the print-fmt evaluator is merged: the fields as `name=value`.
#[derive(Debug)]
struct Stopgap {
    format: EventFormat,
}

impl TraceFormatter {
    /// Compile the formats (None for events without one).
    pub fn new<'a>(formats: impl Iterator<Item = Option<&'a EventFormat>>) -> TraceFormatter {
        TraceFormatter {
            compiled: formats
                .map(|f| f.map(|f| Stopgap { format: f.clone() }))
                .collect(),
        }
    }

    /// Append the field text of evsel `evsel`'s raw record.
    pub fn render(&self, evsel: usize, raw: &[u8], _syms: &KernelSyms<'_>, out: &mut Vec<u8>) {
        if let Some(Some(c)) = self.compiled.get(evsel) {
            stopgap_field_values(&c.format, raw, out);
        }
    }
}

fn stopgap_field_values(f: &EventFormat, raw: &[u8], out: &mut Vec<u8>) {
    use std::io::Write;
    let mut first = true;
    for field in f.event_fields() {
        if !first {
            out.push(b' ');
        }
        first = false;
        let at = field.offset as usize;
        let Some(b) = raw.get(at..at + field.size as usize) else {
            continue;
        };
        let _ = write!(out, "{}=", field.name);
        if field.array && field.type_name == "char" {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            out.extend_from_slice(&b[..end]);
        } else {
            let mut v = 0u64;
            for (i, byte) in b.iter().take(8).enumerate() {
                v |= u64::from(*byte) << (8 * i);
            }
            let _ = write!(out, "{v}");
        }
    }
}
