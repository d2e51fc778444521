//! The fetch-arg AST: what a probe event reads when it fires, and its tracefs spelling.
//!
//! Grammar (kernel `Documentation/trace/kprobetrace.rst`, `uprobetracer.rst`, and the README
//! that tracefs itself serves):
//!
//! ```text
//! FETCHARG := %REG | @ADDR | @SYM[+|-OFFS] | @+FOFFS | $stackN | $stack | $retval | $comm
//!           | $argN | +|-[u]OFFS(FETCHARG) | \IMM | \"STR"
//! TYPE     := u8..u64 | s8..s64 | x8..x64 | char | string | ustring | symbol | symstr
//!           | b<W>@<O>/<C> | %pd | %pD | TYPE[N]
//! ```
//!
//! The kernel stores an argument's text as written and shows it back verbatim in
//! `kprobe_events`/`uprobe_events`, and perf passes raw arguments through untouched, so
//! numbers remember whether they were written in hex: rendering a parsed argument gives back
//! the text a user (or perf) wrote, which is what golden comparisons against perf need.

use super::error::SpecError;
use super::regs;
use std::fmt;

/// A number as written: its value and whether it was spelled `0x…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Num {
    /// The value.
    pub value: i64,
    /// Written in hex.
    pub hex: bool,
}

impl Num {
    /// A decimal number (what rprobe writes for offsets it computes).
    pub fn dec(value: i64) -> Num {
        Num { value, hex: false }
    }

    fn magnitude(&self) -> String {
        if self.hex {
            format!("0x{:x}", self.value.unsigned_abs())
        } else {
            self.value.unsigned_abs().to_string()
        }
    }
}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value < 0 {
            f.write_str("-")?;
        }
        f.write_str(&self.magnitude())
    }
}

/// One fetch argument: a place to read a value from when the probe fires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchArg {
    /// `%di`: a register of `pt_regs` (tracefs spelling).
    Reg(&'static str),
    /// `$stack`: the stack pointer.
    StackPtr,
    /// `$stackN`: the N-th word on the stack.
    Stack(u32),
    /// `$retval`: the return value (return probes only).
    Retval,
    /// `$comm` (or `$COMM`): the current task's command name.
    Comm {
        /// Written `$COMM`.
        upper: bool,
    },
    /// `$argN`: the N-th function argument (kernel function entry only).
    Arg(u32),
    /// `@ADDR`: memory at an absolute address.
    Addr(Num),
    /// `@SYM+OFFS`: memory at a kernel symbol plus an offset (kprobes only).
    Symbol {
        /// The symbol.
        name: String,
        /// The offset (0 when none was written).
        offset: Num,
    },
    /// `@+FOFFS`: memory at a file offset of the probed file (uprobes only).
    FileOffset(Num),
    /// `+OFFS(ARG)`, `-OFFS(ARG)`, `+uOFFS(ARG)`: a load at ARG + OFFS.
    Deref {
        /// Offset added to the inner value.
        offset: Num,
        /// Load from user memory (`+u`).
        user: bool,
        /// The address.
        inner: Box<FetchArg>,
    },
    /// `\IMM`: an immediate value.
    Imm(Num),
    /// `\"STR"`: an immediate string.
    ImmStr(String),
}

impl FetchArg {
    /// Whether the kernel treats this as a memory fetch (strings and arrays need one).
    pub fn is_memory(&self) -> bool {
        matches!(
            self,
            FetchArg::Deref { .. }
                | FetchArg::Addr(_)
                | FetchArg::Symbol { .. }
                | FetchArg::FileOffset(_)
                | FetchArg::Comm { .. }
                | FetchArg::ImmStr(_)
        )
    }

    /// How many loads nest inside this argument.
    pub fn depth(&self) -> usize {
        match self {
            FetchArg::Deref { inner, .. } => 1 + inner.depth(),
            _ => 0,
        }
    }

    /// The innermost argument (the base register or variable of a chain of loads).
    pub fn base(&self) -> &FetchArg {
        match self {
            FetchArg::Deref { inner, .. } => inner.base(),
            other => other,
        }
    }

    /// Wrap in one more load: `+OFFS(self)`.
    pub fn deref(self, offset: i64, user: bool) -> FetchArg {
        FetchArg::Deref {
            offset: Num::dec(offset),
            user,
            inner: Box::new(self),
        }
    }
}

impl fmt::Display for FetchArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchArg::Reg(r) => write!(f, "%{r}"),
            FetchArg::StackPtr => f.write_str("$stack"),
            FetchArg::Stack(n) => write!(f, "$stack{n}"),
            FetchArg::Retval => f.write_str("$retval"),
            FetchArg::Comm { upper: false } => f.write_str("$comm"),
            FetchArg::Comm { upper: true } => f.write_str("$COMM"),
            FetchArg::Arg(n) => write!(f, "$arg{n}"),
            FetchArg::Addr(a) => write!(f, "@{a}"),
            FetchArg::Symbol { name, offset } => {
                if offset.value == 0 && !offset.hex {
                    write!(f, "@{name}")
                } else if offset.value < 0 {
                    write!(f, "@{name}{offset}")
                } else {
                    write!(f, "@{name}+{offset}")
                }
            }
            FetchArg::FileOffset(o) => write!(f, "@+{o}"),
            FetchArg::Deref {
                offset,
                user,
                inner,
            } => {
                let sign = if offset.value < 0 { '-' } else { '+' };
                let u = if *user { "u" } else { "" };
                write!(f, "{sign}{u}{}({inner})", offset.magnitude())
            }
            FetchArg::Imm(n) => write!(f, "\\{n}"),
            FetchArg::ImmStr(s) => write!(f, "\\\"{s}\""),
        }
    }
}

/// The type a fetched value is stored and printed as.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchType {
    /// `uNN`: unsigned decimal.
    U(u8),
    /// `sNN`: signed decimal.
    S(u8),
    /// `xNN`: hexadecimal.
    X(u8),
    /// `char` (6.4+).
    Char,
    /// `string`: NUL-terminated kernel string.
    String,
    /// `ustring`: NUL-terminated user string (5.3+).
    Ustring,
    /// `symbol`: an address printed as `sym+off` (kprobes).
    Symbol,
    /// `symstr`: `sym+off/size` captured as a string (6.2+).
    Symstr,
    /// `b<W>@<O>/<C>`: a bitfield of W bits at bit O (from the LSB) of a C-bit container.
    Bitfield {
        /// Width in bits.
        width: u8,
        /// Bit offset from the least significant bit.
        offset: u8,
        /// Container size in bits (8, 16, 32, 64).
        container: u8,
    },
    /// `%pd`: the name of a `struct dentry *` (6.11+).
    Dentry,
    /// `%pD`: the name of a `struct file *` (6.11+).
    File,
    /// `T[N]`: N consecutive values of type T (memory fetch only, 1 ≤ N ≤ 64).
    Array(Box<FetchType>, u32),
}

/// Longest array the kernel accepts (`MAX_ARRAY_LEN`).
pub const MAX_ARRAY_LEN: u32 = 64;

impl FetchType {
    /// Parse a type as written after the `:` of an argument. `pos` is where the type starts in
    /// the spec, for errors.
    pub fn parse(text: &str, pos: usize) -> Result<FetchType, SpecError> {
        if let Some(open) = text.find('[') {
            let inner = text.get(..open).unwrap_or_default();
            let rest = text.get(open + 1..).unwrap_or_default();
            let Some(num) = rest.strip_suffix(']') else {
                return Err(SpecError::at(
                    pos + open,
                    format!("unterminated array type '{text}'"),
                    "write TYPE[N], for example x8[16]",
                ));
            };
            let n: u32 = num.parse().map_err(|_| {
                SpecError::at(
                    pos + open + 1,
                    format!("bad array length '{num}'"),
                    "the length is a decimal number from 1 to 64",
                )
            })?;
            if n == 0 || n > MAX_ARRAY_LEN {
                return Err(SpecError::at(
                    pos + open + 1,
                    format!("array length {n} is out of range"),
                    "the kernel accepts 1 to 64 elements (MAX_ARRAY_LEN)",
                ));
            }
            let elem = FetchType::parse(inner, pos)?;
            if matches!(
                elem,
                FetchType::Array(..) | FetchType::Dentry | FetchType::File
            ) {
                return Err(SpecError::at(
                    pos,
                    format!("'{inner}' cannot be an array element"),
                    "use an integer, char or string element type",
                ));
            }
            return Ok(FetchType::Array(Box::new(elem), n));
        }
        let sized = |t: &str, mk: fn(u8) -> FetchType| -> Option<Result<FetchType, SpecError>> {
            let bits: u8 = t.parse().ok()?;
            Some(match bits {
                8 | 16 | 32 | 64 => Ok(mk(bits)),
                _ => Err(SpecError::at(
                    pos + 1,
                    format!("bad type size '{text}'"),
                    "integer types are 8, 16, 32 or 64 bits wide (u32, s64, x8, …)",
                )),
            })
        };
        let simple = match text {
            "char" => Some(FetchType::Char),
            "string" => Some(FetchType::String),
            "ustring" => Some(FetchType::Ustring),
            "symbol" => Some(FetchType::Symbol),
            "symstr" => Some(FetchType::Symstr),
            "%pd" => Some(FetchType::Dentry),
            "%pD" => Some(FetchType::File),
            _ => None,
        };
        if let Some(t) = simple {
            return Ok(t);
        }
        if let Some(rest) = text.strip_prefix('b') {
            if let Some(b) = parse_bitfield(rest) {
                return b.map_err(|(off, msg)| {
                    SpecError::at(
                        pos + 1 + off,
                        msg,
                        "write b<width>@<bit offset>/<container>",
                    )
                });
            }
        }
        let parsed = match text.split_at_checked(1) {
            Some(("u", n)) => sized(n, FetchType::U),
            Some(("s", n)) => sized(n, FetchType::S),
            Some(("x", n)) => sized(n, FetchType::X),
            _ => None,
        };
        match parsed {
            Some(r) => r,
            None => Err(SpecError::at(
                pos,
                format!("unknown type '{text}'"),
                "types are u8..u64, s8..s64, x8..x64, char, string, ustring, symbol, symstr, \
                 b<W>@<O>/<C>, %pd, %pD, or TYPE[N]",
            )),
        }
    }

    /// Whether this type reads a string (needs a memory fetch).
    pub fn is_string(&self) -> bool {
        match self {
            FetchType::String | FetchType::Ustring => true,
            FetchType::Array(t, _) => t.is_string(),
            _ => false,
        }
    }
}

/// `W@O/C` after the `b`; `None` when it does not look like a bitfield at all.
fn parse_bitfield(rest: &str) -> Option<Result<FetchType, (usize, String)>> {
    let (w, oc) = rest.split_once('@')?;
    let (o, c) = oc.split_once('/')?;
    let width: u8 = w.parse().ok()?;
    let Ok(offset) = o.parse::<u8>() else {
        return Some(Err((w.len() + 1, format!("bad bitfield offset '{o}'"))));
    };
    let Ok(container) = c.parse::<u8>() else {
        return Some(Err((
            w.len() + o.len() + 2,
            format!("bad bitfield container '{c}'"),
        )));
    };
    if !matches!(container, 8 | 16 | 32 | 64) {
        return Some(Err((
            w.len() + o.len() + 2,
            format!("bitfield container of {container} bits"),
        )));
    }
    if width == 0 || u16::from(width) + u16::from(offset) > u16::from(container) {
        return Some(Err((
            0,
            format!("bitfield b{rest} does not fit its container"),
        )));
    }
    Some(Ok(FetchType::Bitfield {
        width,
        offset,
        container,
    }))
}

impl fmt::Display for FetchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchType::U(n) => write!(f, "u{n}"),
            FetchType::S(n) => write!(f, "s{n}"),
            FetchType::X(n) => write!(f, "x{n}"),
            FetchType::Char => f.write_str("char"),
            FetchType::String => f.write_str("string"),
            FetchType::Ustring => f.write_str("ustring"),
            FetchType::Symbol => f.write_str("symbol"),
            FetchType::Symstr => f.write_str("symstr"),
            FetchType::Bitfield {
                width,
                offset,
                container,
            } => {
                write!(f, "b{width}@{offset}/{container}")
            }
            FetchType::Dentry => f.write_str("%pd"),
            FetchType::File => f.write_str("%pD"),
            FetchType::Array(t, n) => write!(f, "{t}[{n}]"),
        }
    }
}

/// Parse one raw fetch argument such as `+0(+40(+24(%di)))`. `pos` is where `text` starts
/// inside the spec, so errors point at the right column.
pub fn parse_fetch_arg(text: &str, pos: usize) -> Result<FetchArg, SpecError> {
    let mut p = Cursor {
        s: text,
        i: 0,
        base: pos,
    };
    let arg = p.fetch_arg()?;
    if p.i < text.len() {
        return Err(p.err(format!("unexpected '{}' after the argument", p.rest()), ""));
    }
    Ok(arg)
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.i..).unwrap_or_default()
    }

    fn err(&self, problem: String, fix: &str) -> SpecError {
        SpecError::at(self.base + self.i, problem, fix)
    }

    fn eat(&mut self, prefix: &str) -> bool {
        if self.rest().starts_with(prefix) {
            self.i += prefix.len();
            true
        } else {
            false
        }
    }

    /// A run of identifier characters.
    fn word(&mut self) -> &'a str {
        let rest = self.rest();
        let n = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        self.i += n;
        rest.get(..n).unwrap_or_default()
    }

    /// An unsigned number, decimal or `0x` hex.
    fn number(&mut self) -> Result<Num, SpecError> {
        let start = self.i;
        let rest = self.rest();
        let (hex, digits) = match rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            Some(h) => (true, h),
            None => (false, rest),
        };
        let n = digits
            .bytes()
            .take_while(|b| {
                if hex {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_digit()
                }
            })
            .count();
        let d = digits.get(..n).unwrap_or_default();
        let value = if hex {
            i64::from_str_radix(d, 16)
        } else {
            d.parse::<i64>()
        };
        match value {
            Ok(v) if n > 0 => {
                self.i += n + if hex { 2 } else { 0 };
                Ok(Num { value: v, hex })
            }
            _ => {
                self.i = start;
                Err(self.err(
                    format!("expected a number at '{}'", self.rest()),
                    "offsets are decimal or 0x-hex numbers",
                ))
            }
        }
    }

    fn signed_number(&mut self) -> Result<Num, SpecError> {
        let neg = self.eat("-");
        if !neg {
            self.eat("+");
        }
        let n = self.number()?;
        Ok(Num {
            value: if neg { -n.value } else { n.value },
            hex: n.hex,
        })
    }

    fn fetch_arg(&mut self) -> Result<FetchArg, SpecError> {
        let start = self.i;
        let rest = self.rest();
        if rest.is_empty() {
            return Err(self.err(
                "empty argument".into(),
                "write a register (%di), a load (+8(%di)), $retval, $stackN, $comm, @ADDR or \\IMM",
            ));
        }
        if self.eat("%") {
            let name = self.word();
            if regs::is_register(name) {
                let canon = regs::REGISTERS
                    .iter()
                    .copied()
                    .find(|r| *r == name)
                    .unwrap_or("di");
                return Ok(FetchArg::Reg(canon));
            }
            let name = name.to_string();
            self.i = start;
            let fix = match regs::canonical_register(&name) {
                Some(c) => format!("tracefs names it %{c}"),
                None => format!("x86_64 registers are %{}", regs::REGISTERS.join(" %")),
            };
            return Err(self.err(format!("unknown register %{name}"), &fix));
        }
        if self.eat("$") {
            let name = self.word().to_string();
            return match name.as_str() {
                "retval" => Ok(FetchArg::Retval),
                "comm" => Ok(FetchArg::Comm { upper: false }),
                "COMM" => Ok(FetchArg::Comm { upper: true }),
                "stack" => Ok(FetchArg::StackPtr),
                _ => {
                    if let Some(n) = name.strip_prefix("stack").and_then(|n| n.parse().ok()) {
                        return Ok(FetchArg::Stack(n));
                    }
                    if let Some(n) = name.strip_prefix("arg").and_then(|n| n.parse::<u32>().ok()) {
                        if n >= 1 {
                            return Ok(FetchArg::Arg(n));
                        }
                    }
                    self.i = start;
                    Err(self.err(
                        format!("unknown variable ${name}"),
                        "special variables are $retval, $comm, $stack, $stackN, $argN, \
                         $params and $vars",
                    ))
                }
            };
        }
        if self.eat("@") {
            if self.eat("+") {
                return Ok(FetchArg::FileOffset(self.number()?));
            }
            if self.rest().starts_with(|c: char| c.is_ascii_digit()) {
                return Ok(FetchArg::Addr(self.number()?));
            }
            let name = self.symbol_name().to_string();
            if name.is_empty() {
                return Err(self.err(
                    "expected an address or symbol after '@'".into(),
                    "write @0xADDR, @symbol, @symbol+OFFS or @+FILEOFFSET",
                ));
            }
            let offset = if self.rest().starts_with(['+', '-']) {
                self.signed_number()?
            } else {
                Num::dec(0)
            };
            return Ok(FetchArg::Symbol { name, offset });
        }
        if self.eat("\\") {
            if self.eat("\"") {
                let body = self.rest();
                let Some(end) = body.find('"') else {
                    return Err(self.err(
                        "unterminated immediate string".into(),
                        "close it with a double quote: \\\"text\"",
                    ));
                };
                let s = body.get(..end).unwrap_or_default().to_string();
                self.i += end + 1;
                return Ok(FetchArg::ImmStr(s));
            }
            return Ok(FetchArg::Imm(self.signed_number()?));
        }
        if rest.starts_with(['+', '-']) {
            let neg = rest.starts_with('-');
            self.i += 1;
            let user = self.eat("u");
            let n = self.number()?;
            let offset = Num {
                value: if neg { -n.value } else { n.value },
                hex: n.hex,
            };
            if !self.eat("(") {
                return Err(self.err(
                    format!("expected '(' after the offset, found '{}'", self.rest()),
                    "a load is written +OFFS(ARG), for example +8(%di)",
                ));
            }
            let inner = self.fetch_arg()?;
            if !self.eat(")") {
                return Err(self.err(
                    "missing ')'".into(),
                    "every +OFFS( needs its closing parenthesis",
                ));
            }
            return Ok(FetchArg::Deref {
                offset,
                user,
                inner: Box::new(inner),
            });
        }
        Err(self.err(
            format!("cannot read '{rest}' as a fetch argument"),
            "write a register (%di), a load (+8(%di)), $retval, $stackN, $comm, @ADDR or \\IMM",
        ))
    }

    fn symbol_name(&mut self) -> &'a str {
        let rest = self.rest();
        let n = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
            .count();
        self.i += n;
        rest.get(..n).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(s: &str) {
        let a = parse_fetch_arg(s, 0).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(a.to_string(), s);
    }

    #[test]
    fn raw_args_render_as_written() {
        for s in [
            "%di",
            "%r15",
            "$retval",
            "$comm",
            "$COMM",
            "$stack",
            "$stack3",
            "$arg2",
            "@0x1234",
            "@jiffies",
            "@jiffies+8",
            "@jiffies-0x10",
            "@+16",
            "+0(%di)",
            "+0(+40(+24(%di)))",
            "-8(%bp)",
            "+u8(%si)",
            "+0x10(%di)",
            "\\123",
            "\\-5",
            "\\0xff",
            "\\\"hello\"",
            "+0(+104(%di))",
        ] {
            roundtrip(s);
        }
    }

    #[test]
    fn structure_of_a_chain() {
        let a = parse_fetch_arg("+0(+40(+24(%di)))", 0).unwrap();
        assert_eq!(a.depth(), 3);
        assert_eq!(a.base(), &FetchArg::Reg("di"));
        assert!(a.is_memory());
        assert!(!FetchArg::Reg("di").is_memory());
        let built = FetchArg::Reg("di")
            .deref(24, false)
            .deref(40, false)
            .deref(0, false);
        assert_eq!(built, a);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse_fetch_arg("+0(%rdi)", 10).unwrap_err();
        assert_eq!(e.column, 14);
        assert!(e.to_string().contains("unknown register %rdi"), "{e}");
        assert!(e.fix.contains("%di"));
        let e = parse_fetch_arg("+8(%di", 0).unwrap_err();
        assert!(e.problem.contains("missing ')'"));
        assert_eq!(e.column, 7);
        assert!(parse_fetch_arg("+x(%di)", 0).is_err());
        assert!(parse_fetch_arg("8(%di)", 0).is_err());
        assert!(parse_fetch_arg("$foo", 0)
            .unwrap_err()
            .problem
            .contains("$foo"));
        assert!(parse_fetch_arg("$arg0", 0).is_err());
        assert!(parse_fetch_arg("%di)", 0).is_err());
        assert!(parse_fetch_arg("", 0).is_err());
        assert!(parse_fetch_arg("\\\"abc", 0).is_err());
        assert!(parse_fetch_arg("@", 0).is_err());
        assert!(parse_fetch_arg("+99999999999999999999(%di)", 0).is_err());
    }

    #[test]
    fn types() {
        for s in [
            "u8",
            "u16",
            "u32",
            "u64",
            "s8",
            "s64",
            "x8",
            "x64",
            "char",
            "string",
            "ustring",
            "symbol",
            "symstr",
            "b3@2/32",
            "b1@7/8",
            "%pd",
            "%pD",
            "x8[16]",
            "string[2]",
            "u32[64]",
        ] {
            assert_eq!(FetchType::parse(s, 0).unwrap().to_string(), s);
        }
        for s in [
            "u7", "u128", "int", "x8[0]", "x8[65]", "x8[", "b9@0/8", "b1@0/7", "", "u", "%pd[2]",
        ] {
            assert!(FetchType::parse(s, 0).is_err(), "{s} should be refused");
        }
        assert!(FetchType::parse("string", 0).unwrap().is_string());
        assert!(FetchType::parse("ustring[3]", 0).unwrap().is_string());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_fetch_arg(&s, 0);
            let _ = FetchType::parse(&s, 0);
        }

        #[test]
        fn never_panics_on_likely_text(s in "[-+u0-9x()%$@a-z\\\\\"]{0,30}") {
            if let Ok(a) = parse_fetch_arg(&s, 0) {
                // Whatever parses renders to something that parses to the same thing.
                let again = parse_fetch_arg(&a.to_string(), 0).unwrap();
                proptest::prop_assert_eq!(again, a);
            }
        }
    }
}
