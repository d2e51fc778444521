//! Tracepoint field text for `perf script`'s `trace` field: each event's print fmt compiled
//! once by [`super::printfmt`], rendered per sample, with kernel symbols for `%pS`.

use super::printfmt::{Compiled, PrintkFormats};
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
    /// The tracing data's `printk_formats`.
    pub printk: Option<&'a PrintkFormats>,
}

impl KernelSyms<'_> {
    /// The symbol holding `addr` and the offset into it.
    pub fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let a = addr.wrapping_add(self.delta);
        let s = self.map?.find(a)?;
        Some((s.name(), a - s.start))
    }
}

impl super::printfmt::KernelSymbols for KernelSyms<'_> {
    fn find(&self, addr: u64) -> Option<(&str, u64)> {
        self.lookup(addr)
    }

    fn find_printk(&self, addr: u64) -> Option<&str> {
        self.printk?.find(addr)
    }
}

/// The compiled print fmts of a file's events, by evsel index.
#[derive(Debug, Default)]
pub struct TraceFormatter {
    compiled: Vec<Option<Compiled>>,
    /// The tracing data's `printk_formats`, for `%s` of pointers into kernel rodata.
    pub printk: PrintkFormats,
}

impl TraceFormatter {
    /// Compile the formats (None for events without one).
    pub fn new<'a>(formats: impl Iterator<Item = Option<&'a EventFormat>>) -> TraceFormatter {
        TraceFormatter {
            compiled: formats.map(|f| f.map(Compiled::new)).collect(),
            printk: PrintkFormats::parse(""),
        }
    }

    /// Append the field text of evsel `evsel`'s raw record.
    pub fn render(&self, evsel: usize, raw: &[u8], syms: &KernelSyms<'_>, out: &mut Vec<u8>) {
        if let Some(Some(c)) = self.compiled.get(evsel) {
            c.render(raw, syms, out);
        }
    }
}
