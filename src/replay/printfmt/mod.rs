//! The text `perf script` 6.1 prints for a tracepoint or probe event: the event's `print fmt`
//! evaluated over a sample's `PERF_SAMPLE_RAW` bytes, as perf's in-tree libtraceevent does
//! (`tep_print_event(.., TEP_PRINT_INFO)`; the plugins in `/usr/lib/traceevent/plugins` are
//! not used by perf 6.1's `perf script`, so e.g. `sys_enter_futex` prints its plain format).
//!
//! A format is compiled once per event ([`Compiled::new`]): the tokenizer (`lex`), the
//! argument parser (`parse`, which rebuilds libtraceevent's tree with its quirks) and the
//! format-string splitter (`spec`) run there; [`Compiled::render`] only walks the tree and
//! appends to the caller's buffer, with no allocation on the common paths.
//!
//! What perf 6.1 (its copy of libtraceevent, frozen around 2020 when it moved out of the
//! kernel tree) does and later libtraceevent versions do differently:
//! - `%c` and `%+d` are not conversions: they print `>c<` / `>+<` and take no argument, so the
//!   arguments after them shift;
//! - `%zu` reads the value as an `int`;
//! - `sizeof()`, `__get_cpumask()`, `__get_sockaddr()`, `__print_symbolic_u64()`,
//!   `__print_flags_u64()` and any other function are unknown, and a function argument with an
//!   operator (`__get_dynamic_array_len(x) / 4`) does not parse: the event prints
//!   `[FAILED TO PARSE]` and ` name=value` for each of its fields (17 of 2329 events on 6.18);
//! - that fallback stops printing a char array as a string for good once its bytes were not
//!   printable (libtraceevent clears the field's flag), so keep one [`Compiled`] per event
//!   for the whole file;
//! - `__rel_loc` is relative for `__get_str`, `__get_bitmask`, the `_len` helpers and the
//!   fallback, but taken as absolute by `__print_hex`, `__print_array`, `%*ph` and `(..)[i]`;
//! - probe-event arrays declared `u16/u32/u64 x[]` have element size 0, so `REC->x[i]` is 0;
//! - `%s` of an 8-byte field that is no array prints the printk string at that address, or
//!   the address in hex without `0x`;
//! - `__print_hex` and `__print_array` take their length as an `int`: negative prints nothing;
//! - `%pS` of an address with no symbol prints `0x` and the hex address; `%p` of 0 `(nil)`;
//!   letters after `%p` other than vsprintf's `S s F f M m I i U h` families stay as text
//!   (`%pK` prints `0xffff...K`).
//!
//! The output is cut at the first NUL, as perf prints the buffer with `%.*s`. `raw` is the
//! whole `PERF_SAMPLE_RAW` payload including the zeros that pad the record to 8 bytes: perf
//! reads them too when a length runs past the event's data.
//!
//! `tests/golden_printfmt.rs` compares all of this with `perf script` 6.1 byte for byte: every
//! event format of the running kernel with random samples in a perf.data file it writes,
//! made-up formats with every construct, recorded tracepoints and recorded uprobes.

mod cfmt;
mod fields;
mod lex;
mod parse;
mod printk;
mod raw;
mod render;
mod spec;

use crate::tracefs::format::EventFormat;

pub use printk::PrintkFormats;

/// Kernel symbols for `%pS`/`%ps`/`%pF`, and kernel strings for `%s` of a pointer field.
///
/// perf resolves through the kernel map of the recording (`machine__resolve_kernel_addr`);
/// without one, `%pS` prints the address in hex.
pub trait KernelSymbols {
    /// The symbol containing `addr` and the offset of `addr` from its start.
    fn find(&self, addr: u64) -> Option<(&str, u64)>;

    /// The constant string at `addr`, from the `printk_formats` section of the tracing data
    /// ([`PrintkFormats`] parses it as perf does). `%s` of a pointer field
    /// (`rcu_utilization`'s `const char *s`) prints it, or the address in hex when there is
    /// none.
    fn find_printk(&self, _addr: u64) -> Option<&str> {
        None
    }
}

/// No symbols at all: `%pS` prints hex, as perf does without a kernel map.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSymbols;

impl KernelSymbols for NoSymbols {
    fn find(&self, _addr: u64) -> Option<(&str, u64)> {
        None
    }
}

/// A print fmt compiled for rendering samples of one event.
#[derive(Debug)]
pub struct Compiled {
    body: Body,
}

#[derive(Debug)]
enum Body {
    Program(render::Program),
    Failed { fields: fields::Fields, why: String },
}

impl Compiled {
    /// Compile `format`'s print fmt. Never fails: a print fmt perf 6.1 cannot parse compiles
    /// to its fallback, `[FAILED TO PARSE]` followed by ` name=value` for each field.
    pub fn new(format: &EventFormat) -> Compiled {
        let fields = fields::Fields::new(format);
        let parsed = parse::parse_print_fmt(&format.print_fmt, &fields)
            .and_then(|(text, tree)| Ok((spec::parse_format(&text, &tree.args)?, tree)));
        let body = match parsed {
            Ok((pieces, tree)) => Body::Program(render::Program::new(fields, tree, pieces)),
            Err(parse::ParseError(why)) => Body::Failed { fields, why },
        };
        Compiled { body }
    }

    /// Why the print fmt fell back to `[FAILED TO PARSE]`, or None when it is evaluated.
    pub fn failure(&self) -> Option<&str> {
        match &self.body {
            Body::Program(_) => None,
            Body::Failed { why, .. } => Some(why),
        }
    }

    /// Append the text of one sample (`raw` is its `PERF_SAMPLE_RAW` payload, common fields
    /// included) to `out`, exactly as perf 6.1 prints it after the event name.
    pub fn render(&self, raw: &[u8], syms: &dyn KernelSymbols, out: &mut Vec<u8>) {
        let start = out.len();
        match &self.body {
            Body::Program(program) => program.render(raw, syms, out),
            Body::Failed { fields, .. } => {
                out.extend_from_slice(b"[FAILED TO PARSE]");
                fields.print_all(raw, out);
            }
        }
        if let Some(nul) = out[start..].iter().position(|&b| b == 0) {
            out.truncate(start + nul);
        }
    }
}

#[cfg(test)]
mod tests;
