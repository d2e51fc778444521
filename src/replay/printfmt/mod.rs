//! The text `perf script` 6.1 prints for a tracepoint or probe event: the event's `print fmt`
//! evaluated over a sample's `PERF_SAMPLE_RAW` bytes, as perf's in-tree libtraceevent does
//! (`tep_print_event(.., TEP_PRINT_INFO)`; the plugins in `/usr/lib/traceevent/plugins` are
//! not used by perf 6.1's `perf script`, so e.g. `sys_enter_futex` prints its plain format).
//!
//! A format is compiled once per event ([`Compiled::new`]): the tokenizer ([`lex`]), the
//! argument parser ([`parse`], which rebuilds libtraceevent's tree with its quirks) and the
//! format-string splitter ([`spec`]) run there; [`Compiled::render`] only walks the tree and
//! appends to the caller's buffer, with no allocation on the common paths.
//!
//! What perf 6.1 (its copy of libtraceevent, frozen around 2020 when it moved out of the
//! kernel tree) does and later libtraceevent versions do differently:
//! - `%c` and `%+d` are not conversions: they print `>c<` / `>+<` and take no argument, so the
//!   arguments after them shift;
//! - `%zu` reads the value as an `int`;
//! - `sizeof()`, `__get_cpumask()`, `__get_sockaddr()` and any other function are unknown, and
//!   a function argument with an operator (`__get_dynamic_array_len(x) / 4`) does not parse:
//!   the event prints `[FAILED TO PARSE]` and ` name=value` for each of its fields;
//! - probe-event arrays declared `u16/u32/u64 x[]` have element size 0, so `REC->x[i]` is 0;
//! - `%s` of a pointer field (`const char *`) prints the pointer's 8 bytes as a string, not
//!   the printk string or the address (perf 6.1 never sets the long size this check needs);
//! - `__print_hex` and `__print_array` take their length as an `int`: negative prints nothing;
//! - `%pS` of an address with no symbol prints `0x` and the hex address; `%p` of 0 `(nil)`;
//!   letters after `%p` other than vsprintf's `S s F f M m I i U h` families stay as text
//!   (`%pK` prints `0xffff...K`).
//!
//! The output is cut at the first NUL, as perf prints the buffer with `%.*s`.

mod cfmt;
mod fields;
mod lex;
mod parse;
mod raw;
mod render;
mod spec;

use crate::tracefs::format::EventFormat;

/// Kernel symbols for `%pS`/`%ps`/`%pF`.
///
/// perf resolves through the kernel map of the recording (`machine__resolve_kernel_addr`);
/// without one, `%pS` prints the address in hex.
pub trait KernelSymbols {
    /// The symbol containing `addr` and the offset of `addr` from its start.
    fn find(&self, addr: u64) -> Option<(&str, u64)>;
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
