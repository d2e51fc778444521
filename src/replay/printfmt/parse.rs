//! The print fmt argument parser of libtraceevent (`process_arg()` and friends in
//! `event-parse.c`, as in perf 6.1's in-tree copy), rebuilt over an arena of nodes.
//!
//! The tree it builds is libtraceevent's, quirks included, because the text perf prints comes
//! from evaluating that tree:
//! - operators group by `get_op_prio()` with a rotation that does not respect parentheses on
//!   the right (`a * (b + c)` evaluates as `a * b + c`) and equal priorities group to the
//!   right (`a - b - c` is `a - (b - c)`);
//! - after `?`, the part after `:` is a single operand, so `c ? x : y + 1` is
//!   `(c ? x : y) + 1`;
//! - a cast is one operand: `(u64)REC->a << 32` casts `REC->a` only, and a cast only masks
//!   (`(int)` keeps the low 32 bits, unsigned);
//! - `__print_hex`, `__print_array` and `__builtin_expect` take a single operand per
//!   argument, so `__print_array(a, __get_dynamic_array_len(a) / 4, 4)` does not parse;
//! - `__get_dynamic_array(x)[i]` never parses (an inverted test in `process_dynamic_array`);
//! - functions other than the `__print_*`/`__get_*` helpers (`sizeof`, `__get_cpumask`,
//!   `jiffies_to_msecs`, ...) are unknown to perf 6.1 and fail the whole event.
//!
//! Any failure makes the event print `[FAILED TO PARSE]` and its fields, as perf does.

use super::fields::Fields;
use super::lex::{Kind, Lexer};

/// Index of a node in [`Tree::nodes`].
pub(crate) type Id = usize;

/// A `{ value, "name" }` pair of `__print_flags`/`__print_symbolic`, with the value already
/// evaluated as `eval_flag()` does (non-numeric names that libtraceevent does not know are -1).
#[derive(Debug, Clone)]
pub(crate) struct FlagSym {
    pub(crate) value: i64,
    pub(crate) name: String,
}

/// `struct tep_print_arg`, one variant per `TEP_PRINT_*` type that can occur.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Null,
    Atom(String),
    Field(Option<usize>),
    Flags {
        field: Id,
        delim: Option<String>,
        flags: Vec<FlagSym>,
    },
    Symbol {
        field: Id,
        symbols: Vec<FlagSym>,
    },
    Hex {
        field: Id,
        size: Id,
        joined: bool,
    },
    IntArray {
        field: Id,
        count: Id,
        el_size: Id,
    },
    Type {
        ty: String,
        item: Id,
    },
    Str(Option<usize>),
    DynArray(usize),
    DynArrayLen(usize),
    Op {
        op: String,
        left: Option<Id>,
        right: Option<Id>,
        prio: i32,
    },
    Bitmask(Option<usize>),
}

impl Arg {
    /// The `TEP_PRINT_*` number, which perf prints in "ARG TYPE NOT FIELD BUT %d".
    pub(crate) fn type_number(&self) -> u32 {
        match self {
            Arg::Null => 0,
            Arg::Atom(_) => 1,
            Arg::Field(_) => 2,
            Arg::Flags { .. } => 3,
            Arg::Symbol { .. } => 4,
            Arg::Hex { joined: false, .. } => 5,
            Arg::IntArray { .. } => 6,
            Arg::Type { .. } => 7,
            Arg::Str(_) => 8,
            Arg::DynArray(_) => 10,
            Arg::Op { .. } => 11,
            Arg::Bitmask(_) => 13,
            Arg::DynArrayLen(_) => 14,
            Arg::Hex { joined: true, .. } => 15,
        }
    }
}

/// The parsed arguments: the nodes and the top-level argument list.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub(crate) nodes: Vec<Arg>,
    pub(crate) args: Vec<Id>,
}

/// Why the print fmt failed (kept for the module docs' statistics and for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError(pub(crate) String);

type Step = Result<(Kind, String), ParseError>;

/// Nesting deeper than this is refused; real formats stay below 20.
const MAX_DEPTH: usize = 200;
/// More nodes than this is refused (a format is a few hundred nodes at most).
const MAX_NODES: usize = 100_000;

struct Parser<'a> {
    lex: Lexer<'a>,
    fields: &'a Fields,
    tree: Tree,
    depth: usize,
}

fn fail<T>(why: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(why.into()))
}

/// `test_type_token()`: the token read must be `text` of `kind`.
fn want((k, t): (Kind, &str), kind: Kind, text: &str) -> Result<(), ParseError> {
    if k != kind || t != text {
        return fail(format!("expected `{text}`, found `{t}`"));
    }
    Ok(())
}

/// `get_op_prio()`: smaller binds tighter; -1 for an operator it does not know.
pub(crate) fn op_prio(op: &str) -> i32 {
    match op {
        "~" | "!" => 4,
        "*" | "/" | "%" => 6,
        "+" | "-" => 7,
        "<" | ">" => 9,
        "&" => 11,
        "^" => 12,
        "|" => 13,
        "?" => 16,
        "++" | "--" => 3,
        ">>" | "<<" => 8,
        ">=" | "<=" => 9,
        "==" | "!=" => 10,
        "&&" => 14,
        "||" => 15,
        _ => -1,
    }
}

const BINARY: &[&str] = &[
    ">>", "<<", "&", "|", "&&", "||", "-", "+", "*", "^", "/", "%", "<", ">", "<=", ">=", "==",
    "!=",
];

/// `strtoull(s, NULL, 0)` (and `strtoll` when `signed`): leading blanks, a sign, a base prefix,
/// digits up to the first that does not fit; saturating as glibc does.
pub(crate) fn c_strtoull(text: &str, signed: bool) -> u64 {
    let b = text.as_bytes();
    let mut i = 0;
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    let mut negative = false;
    if let Some(&c @ (b'+' | b'-')) = b.get(i) {
        negative = c == b'-';
        i += 1;
    }
    let mut base = 10u64;
    if b.get(i) == Some(&b'0') {
        if matches!(b.get(i + 1), Some(b'x' | b'X'))
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            base = 16;
            i += 2;
        } else {
            base = 8;
        }
    }
    let mut value = 0u64;
    let mut overflow = false;
    while let Some(d) = b.get(i).and_then(|&c| (c as char).to_digit(base as u32)) {
        match value
            .checked_mul(base)
            .and_then(|v| v.checked_add(u64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if signed {
        let limit = if negative {
            1u64 << 63
        } else {
            i64::MAX as u64
        };
        if overflow || value > limit {
            return if negative {
                1u64 << 63
            } else {
                i64::MAX as u64
            };
        }
        return if negative {
            value.wrapping_neg()
        } else {
            value
        };
    }
    if overflow {
        return u64::MAX;
    }
    if negative {
        value.wrapping_neg()
    } else {
        value
    }
}

/// `strtoull(s, NULL, 16)`: an optional `0x`, hex digits up to the first that is not one.
pub(crate) fn c_strtoull_radix16(text: &str) -> u64 {
    let t = text.trim_start();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .filter(|r| r.starts_with(|c: char| c.is_ascii_hexdigit()))
        .unwrap_or(t);
    t.chars().map_while(|c| c.to_digit(16)).fold(0u64, |v, d| {
        v.saturating_mul(16).saturating_add(u64::from(d))
    })
}

/// `eval_flag()`: a number when the text starts with a digit, the few softirq and hrtimer
/// names libtraceevent knows, else -1.
fn eval_flag(text: &str) -> i64 {
    if text.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return c_strtoull(text, false) as i64;
    }
    const NAMES: &[(&str, i64)] = &[
        ("HI_SOFTIRQ", 0),
        ("TIMER_SOFTIRQ", 1),
        ("NET_TX_SOFTIRQ", 2),
        ("NET_RX_SOFTIRQ", 3),
        ("BLOCK_SOFTIRQ", 4),
        ("IRQ_POLL_SOFTIRQ", 5),
        ("TASKLET_SOFTIRQ", 6),
        ("SCHED_SOFTIRQ", 7),
        ("HRTIMER_SOFTIRQ", 8),
        ("RCU_SOFTIRQ", 9),
        ("HRTIMER_NORESTART", 0),
        ("HRTIMER_RESTART", 1),
    ];
    NAMES
        .iter()
        .find(|(name, _)| *name == text)
        .map_or(-1, |&(_, v)| v)
}

/// `eval_type_str()`: what a cast does to a value. Only the unsigned fixed widths and
/// `char`/`short`/`int` mask; the signed variants mask too (libtraceevent never sets `sign`).
pub(crate) fn eval_type_str(val: u64, ty: &str, pointer: bool) -> u64 {
    if pointer {
        if !ty.ends_with('*') || ty.len() < 2 {
            return val;
        }
        return eval_type_str(val, &ty[..ty.len() - 2], false);
    }
    if ty.ends_with('*') || ty.starts_with("struct") {
        return val;
    }
    let ty = ty.strip_prefix("unsigned ").unwrap_or(ty);
    match ty {
        "u8" | "s8" | "char" => val & 0xff,
        "u16" | "s16" | "short" => val & 0xffff,
        "u32" | "s32" | "int" => val & 0xffff_ffff,
        _ => val,
    }
}

impl<'a> Parser<'a> {
    fn push(&mut self, arg: Arg) -> Result<Id, ParseError> {
        if self.tree.nodes.len() >= MAX_NODES {
            return fail("too many nodes");
        }
        self.tree.nodes.push(arg);
        Ok(self.tree.nodes.len() - 1)
    }

    fn set(&mut self, id: Id, arg: Arg) {
        self.tree.nodes[id] = arg;
    }

    /// Store a helper's node, then read the token after its `)`.
    fn finish(&mut self, id: Id, arg: Arg) -> Step {
        self.set(id, arg);
        Ok(self.lex.token_item())
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return fail("nested too deeply");
        }
        Ok(())
    }

    fn expect(&mut self, kind: Kind, text: &str) -> Result<(), ParseError> {
        let (k, t) = self.lex.token();
        want((k, &t), kind, text)
    }

    fn expect_kind(&mut self, kind: Kind) -> Result<String, ParseError> {
        let (k, t) = self.lex.token();
        if k != kind {
            return fail(format!("unexpected `{t}`"));
        }
        Ok(t)
    }

    // process_arg()
    fn arg(&mut self, id: Id) -> Step {
        let (kind, tok) = self.lex.token();
        self.arg_token(id, kind, tok)
    }

    // process_arg_token()
    fn arg_token(&mut self, id: Id, kind: Kind, tok: String) -> Step {
        self.enter()?;
        let step = self.arg_token_inner(id, kind, tok);
        self.depth -= 1;
        step
    }

    fn arg_token_inner(&mut self, id: Id, kind: Kind, tok: String) -> Step {
        match kind {
            Kind::Item => {
                if tok == "REC" {
                    return self.entry(id);
                }
                let mut atom = tok;
                let (mut k, mut t) = self.lex.token_item();
                if k == Kind::Delim && t == "(" {
                    return self.function(id, &atom);
                }
                while k == Kind::Item {
                    atom.push(' ');
                    atom.push_str(&t);
                    (k, t) = self.lex.token_item();
                }
                self.set(id, Arg::Atom(atom));
                Ok((k, t))
            }
            Kind::Dquote | Kind::Squote => {
                self.set(id, Arg::Atom(tok));
                Ok(self.lex.token_item())
            }
            Kind::Delim if tok == "(" => self.paren(id),
            Kind::Delim | Kind::Op => {
                self.set(
                    id,
                    Arg::Op {
                        op: tok.clone(),
                        left: None,
                        right: None,
                        prio: 0,
                    },
                );
                self.op(id, tok)
            }
            _ => fail(format!("unexpected token `{tok}`")),
        }
    }

    // process_entry(): `REC->name`
    fn entry(&mut self, id: Id) -> Step {
        self.expect(Kind::Op, "->")?;
        let name = self.expect_kind(Kind::Item)?;
        let field = self.fields.find_any(&name);
        self.set(id, Arg::Field(field));
        Ok(self.lex.token())
    }

    // process_field_arg(): an operand and the operators after it.
    fn field_arg(&mut self, id: Id) -> Step {
        let (mut k, mut t) = self.arg(id)?;
        while k == Kind::Op {
            (k, t) = self.op(id, t)?;
        }
        Ok((k, t))
    }

    // process_op(): `tok` is the operator just read; `id` becomes the operator node.
    fn op(&mut self, id: Id, tok: String) -> Step {
        self.enter()?;
        let step = self.op_inner(id, tok);
        self.depth -= 1;
        step
    }

    fn op_inner(&mut self, id: Id, tok: String) -> Step {
        let mut right_id = None;
        let (kind, next);
        let unary = matches!(self.tree.nodes[id], Arg::Op { left: None, .. });
        if unary {
            if !matches!(tok.as_str(), "~" | "!" | "+" | "-") {
                return fail(format!("bad op token {tok}"));
            }
            let left = self.push(Arg::Null)?;
            let right = self.push(Arg::Null)?;
            self.set(
                id,
                Arg::Op {
                    op: tok,
                    left: Some(left),
                    right: Some(right),
                    prio: 0,
                },
            );
            right_id = Some(right);
            (kind, next) = self.arg(right)?;
        } else if tok == "?" {
            let left = self.push(self.tree.nodes[id].clone())?;
            self.set(
                id,
                Arg::Op {
                    op: tok,
                    left: Some(left),
                    right: None,
                    prio: 0,
                },
            );
            (kind, next) = self.cond(id)?;
        } else if BINARY.contains(&tok.as_str()) {
            let left_arg = self.tree.nodes[id].clone();
            let prio = if matches!(left_arg, Arg::Null) {
                0
            } else {
                op_prio(&tok)
            };
            let left = self.push(left_arg)?;
            let (k, t) = self.lex.token_item();
            if tok == "*" && k == Kind::Delim && t == ")" {
                // `(char *)`: a pointer type, not a multiplication.
                let Arg::Atom(atom) = &self.tree.nodes[left] else {
                    return fail("bad pointer type");
                };
                let atom = format!("{atom} *");
                self.set(id, Arg::Atom(atom));
                return Ok((k, t));
            }
            self.set(
                id,
                Arg::Op {
                    op: tok.clone(),
                    left: Some(left),
                    right: None,
                    prio,
                },
            );
            let right = self.push(Arg::Null)?;
            let (k, t) = self.arg_token(right, k, t)?;
            let rotate = match &self.tree.nodes[right] {
                Arg::Op { op, .. } => op_prio(&tok) < op_prio(op),
                _ => false,
            };
            if rotate {
                let right_left = match &self.tree.nodes[right] {
                    Arg::Op { left, .. } => *left,
                    _ => None,
                };
                if let Arg::Op { right: r, .. } = &mut self.tree.nodes[id] {
                    *r = right_left;
                }
                self.tree.nodes.swap(id, right);
                if let Arg::Op { left: l, .. } = &mut self.tree.nodes[id] {
                    *l = Some(right);
                }
            } else if let Arg::Op { right: r, .. } = &mut self.tree.nodes[id] {
                *r = Some(right);
            }
            right_id = Some(right);
            (kind, next) = (k, t);
        } else if tok == "[" {
            let left = self.push(self.tree.nodes[id].clone())?;
            self.set(
                id,
                Arg::Op {
                    op: tok,
                    left: Some(left),
                    right: None,
                    prio: 0,
                },
            );
            (kind, next) = self.array(id)?;
        } else {
            return fail(format!("unknown op '{tok}'"));
        }
        if kind == Kind::Op && next != ":" {
            let prio = op_prio(&next);
            let own = match &self.tree.nodes[id] {
                Arg::Op { prio, .. } => *prio,
                _ => 0,
            };
            if prio > own {
                return self.op(id, next);
            }
            let Some(right) = right_id else {
                return fail(format!("unknown op '{next}'"));
            };
            return self.op(right, next);
        }
        Ok((kind, next))
    }

    // process_cond(): `top` is the `?` node; its right becomes a `:` node.
    fn cond(&mut self, top: Id) -> Step {
        let left = self.push(Arg::Null)?;
        let right = self.push(Arg::Null)?;
        let colon = self.push(Arg::Null)?;
        let (mut k, mut t) = self.arg(left)?;
        while k == Kind::Op && t != ":" {
            (k, t) = self.op(left, t)?;
        }
        want((k, &t), Kind::Op, ":")?;
        let step = self.arg(right)?;
        self.set(
            colon,
            Arg::Op {
                op: ":".to_owned(),
                left: Some(left),
                right: Some(right),
                prio: 0,
            },
        );
        if let Arg::Op { right: r, .. } = &mut self.tree.nodes[top] {
            *r = Some(colon);
        }
        Ok(step)
    }

    // process_array(): the index of `[`.
    fn array(&mut self, top: Id) -> Step {
        let index = self.push(Arg::Null)?;
        let (k, t) = self.arg(index)?;
        want((k, &t), Kind::Op, "]")?;
        if let Arg::Op { right: r, .. } = &mut self.tree.nodes[top] {
            *r = Some(index);
        }
        Ok(self.lex.token_item())
    }

    // process_paren(): a parenthesized expression, or a cast.
    fn paren(&mut self, id: Id) -> Step {
        let (mut k, mut t) = self.arg(id)?;
        if k == Kind::Op {
            (k, t) = self.op(id, t)?;
        }
        want((k, &t), Kind::Delim, ")")?;
        let (k, t) = self.lex.token_item();
        if k.is_item() || (k == Kind::Delim && t == "(") {
            let Arg::Atom(ty) = self.tree.nodes[id].clone() else {
                return fail("a cast needs a type name");
            };
            let item = self.push(Arg::Null)?;
            self.set(id, Arg::Type { ty, item });
            return self.arg_token(item, k, t);
        }
        Ok((k, t))
    }

    // process_function()
    fn function(&mut self, id: Id, name: &str) -> Step {
        match name {
            "__print_flags" => self.flags(id),
            "__print_symbolic" => self.symbols(id),
            "__print_hex" => self.hex(id, false),
            "__print_hex_str" => self.hex(id, true),
            "__print_array" => {
                let field = self.delimited(",")?;
                let count = self.delimited(",")?;
                let el_size = self.delimited(")")?;
                self.finish(
                    id,
                    Arg::IntArray {
                        field,
                        count,
                        el_size,
                    },
                )
            }
            "__get_str" | "__get_rel_str" => {
                let name = self.expect_kind(Kind::Item)?;
                self.expect(Kind::Delim, ")")?;
                self.set(id, Arg::Str(self.fields.find_any(&name)));
                Ok(self.lex.token())
            }
            "__get_bitmask" | "__get_rel_bitmask" => {
                let name = self.expect_kind(Kind::Item)?;
                self.expect(Kind::Delim, ")")?;
                self.set(id, Arg::Bitmask(self.fields.find_any(&name)));
                Ok(self.lex.token())
            }
            "__get_dynamic_array" | "__get_rel_dynamic_array" => {
                let (k, t) = self.lex.token();
                if k != Kind::Item {
                    return fail(format!("unexpected `{t}`"));
                }
                let Some(field) = self.fields.find(&t) else {
                    return fail(format!("no field {t}"));
                };
                self.expect(Kind::Delim, ")")?;
                self.set(id, Arg::DynArray(field));
                let (k, t) = self.lex.token_item();
                if k == Kind::Op && t == "[" {
                    return fail("__get_dynamic_array()[...] does not parse in perf 6.1");
                }
                Ok((k, t))
            }
            "__get_dynamic_array_len" | "__get_rel_dynamic_array_len" => {
                let t = self.expect_kind(Kind::Item)?;
                let Some(field) = self.fields.find(&t) else {
                    return fail(format!("no field {t}"));
                };
                self.expect(Kind::Delim, ")")?;
                self.set(id, Arg::DynArrayLen(field));
                Ok(self.lex.token())
            }
            "__builtin_expect" => {
                let (k, t) = self.arg(id)?;
                if k != Kind::Delim || t != "," {
                    return fail("__builtin_expect needs two arguments");
                }
                self.expect_kind(Kind::Item)?;
                self.expect(Kind::Delim, ")")?;
                Ok(self.lex.token_item())
            }
            _ => fail(format!("function {name} not defined")),
        }
    }

    // alloc_and_process_delim(): one operand, then `delim`.
    fn delimited(&mut self, delim: &str) -> Result<Id, ParseError> {
        let id = self.push(Arg::Null)?;
        let (k, t) = self.arg(id)?;
        if k != Kind::Delim || t != delim {
            return fail(format!("expected `{delim}`, found `{t}`"));
        }
        Ok(id)
    }

    fn hex(&mut self, id: Id, joined: bool) -> Step {
        let field = self.delimited(",")?;
        let size = self.delimited(")")?;
        self.finish(
            id,
            Arg::Hex {
                field,
                size,
                joined,
            },
        )
    }

    // process_flags()
    fn flags(&mut self, id: Id) -> Step {
        let field = self.push(Arg::Null)?;
        let (mut k, mut t) = self.field_arg(field)?;
        while k == Kind::Op {
            (k, t) = self.op(field, t)?;
        }
        want((k, &t), Kind::Delim, ",")?;
        let (mut k, mut t) = self.lex.token_item();
        let mut delim = None;
        if k.is_item() {
            delim = Some(t);
            (k, t) = self.lex.token_item();
        }
        want((k, &t), Kind::Delim, ",")?;
        let mut flags = Vec::new();
        let (k, t) = self.fields_list(&mut flags)?;
        want((k, &t), Kind::Delim, ")")?;
        self.finish(
            id,
            Arg::Flags {
                field,
                delim,
                flags,
            },
        )
    }

    // process_symbols()
    fn symbols(&mut self, id: Id) -> Step {
        let field = self.push(Arg::Null)?;
        let (k, t) = self.field_arg(field)?;
        want((k, &t), Kind::Delim, ",")?;
        let mut symbols = Vec::new();
        let (k, t) = self.fields_list(&mut symbols)?;
        want((k, &t), Kind::Delim, ")")?;
        self.finish(id, Arg::Symbol { field, symbols })
    }

    // process_fields(): `{ value, "name" }, ...`
    fn fields_list(&mut self, list: &mut Vec<FlagSym>) -> Step {
        loop {
            let (k, t) = self.lex.token_item();
            if k != Kind::Op || t != "{" {
                return Ok((k, t));
            }
            let value = self.push(Arg::Null)?;
            let (mut k, mut t) = self.arg(value)?;
            if k == Kind::Op {
                (k, t) = self.op(value, t)?;
            }
            want((k, &t), Kind::Delim, ",")?;
            let value = self.arg_eval(value)?;
            let name = self.push(Arg::Null)?;
            let (k, t) = self.arg(name)?;
            want((k, &t), Kind::Op, "}")?;
            let name = self.arg_eval(name)?;
            list.push(FlagSym {
                value: eval_flag(&value),
                name,
            });
            let (k, t) = self.lex.token_item();
            if k != Kind::Delim || t != "," {
                return Ok((k, t));
            }
        }
    }

    // arg_eval(): the text of a constant operand.
    fn arg_eval(&self, id: Id) -> Result<String, ParseError> {
        match &self.tree.nodes[id] {
            Arg::Atom(atom) => Ok(atom.clone()),
            Arg::Type { item, .. } => self.arg_eval(*item),
            Arg::Op { .. } => Ok(self.num_eval(id, 0)?.to_string()),
            _ => fail("not a constant"),
        }
    }

    // arg_num_eval(): constant folding with `long long` arithmetic.
    fn num_eval(&self, id: Id, depth: usize) -> Result<i64, ParseError> {
        if depth > MAX_DEPTH {
            return fail("nested too deeply");
        }
        let sub = |child: Option<Id>| -> Result<i64, ParseError> {
            match child {
                Some(c) => self.num_eval(c, depth + 1),
                None => fail("missing operand"),
            }
        };
        match &self.tree.nodes[id] {
            Arg::Atom(atom) => Ok(c_strtoull(atom, true) as i64),
            Arg::Type { ty, item } => {
                let v = self.num_eval(*item, depth + 1)?;
                Ok(eval_type_str(v as u64, ty, false) as i64)
            }
            Arg::Op {
                op, left, right, ..
            } => {
                let is_null =
                    |c: &Option<Id>| matches!(c.map(|c| &self.tree.nodes[c]), Some(Arg::Null));
                match op.as_str() {
                    "-" | "+" => {
                        let l = if is_null(left) { 0 } else { sub(*left)? };
                        let r = sub(*right)?;
                        Ok(if op == "-" {
                            l.wrapping_sub(r)
                        } else {
                            l.wrapping_add(r)
                        })
                    }
                    "~" => Ok(!sub(*right)?),
                    _ => {
                        let l = sub(*left)?;
                        let r = sub(*right)?;
                        Ok(match op.as_str() {
                            "|" => l | r,
                            "||" => i64::from(l != 0 || r != 0),
                            "&" => l & r,
                            "&&" => i64::from(l != 0 && r != 0),
                            "<" => i64::from(l < r),
                            "<<" => l.wrapping_shl(r as u32),
                            "<=" => i64::from(l <= r),
                            ">" => i64::from(l > r),
                            ">>" => l.wrapping_shr(r as u32),
                            ">=" => i64::from(l >= r),
                            "==" => i64::from(l == r),
                            "!=" => i64::from(l != r),
                            _ => return fail(format!("unknown op '{op}'")),
                        })
                    }
                }
            }
            _ => fail("not a constant"),
        }
    }
}

/// Parse a whole print fmt: the format string and the argument trees.
pub(crate) fn parse_print_fmt(text: &str, fields: &Fields) -> Result<(String, Tree), ParseError> {
    let mut p = Parser {
        lex: Lexer::new(text),
        fields,
        tree: Tree::default(),
        depth: 0,
    };
    let (k, format) = p.lex.token();
    if k != Kind::Dquote {
        return fail("the print fmt does not start with a string");
    }
    let (k, t) = p.lex.token_item();
    match k {
        Kind::None => return Ok((format, p.tree)),
        Kind::Delim if t == "," => {}
        _ => return fail(format!("expected `,` after the format, found `{t}`")),
    }
    // event_read_print_args()
    let mut kind = Kind::Error;
    loop {
        if kind == Kind::Newline {
            (kind, _) = p.lex.token_item();
        } else {
            let id = p.push(Arg::Null)?;
            let (k, t) = p.arg(id)?;
            p.tree.args.push(id);
            kind = k;
            if k == Kind::Op {
                let (k, _) = p.op(id, t)?;
                kind = k;
            } else if !(k == Kind::Delim && t == ",") {
                break;
            }
        }
        if kind == Kind::None {
            break;
        }
    }
    Ok((format, p.tree))
}
