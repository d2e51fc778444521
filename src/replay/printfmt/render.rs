//! Evaluating a compiled print fmt over one raw sample (`eval_num_arg()`, `print_str_arg()`,
//! `print_arg_pointer()` and the `%p` extension printers of libtraceevent).
//!
//! Values are `unsigned long long` throughout, as in libtraceevent: comparisons are unsigned,
//! `^` evaluates to 0 (it is missing from `eval_num_arg`), a division by zero gives 0 here
//! where perf would crash. Reads outside the sample give zeros.

use super::cfmt::{self, Spec};
use super::fields::{Field, Fields};
use super::parse::{c_strtoull, eval_type_str, Arg, Id, Tree};
use super::raw;
use super::spec::Piece;
use super::KernelSymbols;

/// Evaluation deeper than this gives 0 (parsing already bounds the depth; this is a second
/// guard so no input can overflow the stack).
const MAX_DEPTH: u32 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Not,
    BitNot,
    Or,
    LogOr,
    And,
    LogAnd,
    Lt,
    Shl,
    Le,
    Gt,
    Shr,
    Ge,
    Eq,
    Ne,
    Sub,
    Add,
    Div,
    Mod,
    Mul,
    Index,
    Cond,
    /// `^`, `:` and anything else `eval_num_arg` does not know: evaluates to 0.
    Unknown,
}

impl OpKind {
    fn of(op: &str) -> OpKind {
        match op {
            "!" => OpKind::Not,
            "!=" => OpKind::Ne,
            "~" => OpKind::BitNot,
            "|" => OpKind::Or,
            "||" => OpKind::LogOr,
            "&" => OpKind::And,
            "&&" => OpKind::LogAnd,
            "<" => OpKind::Lt,
            "<<" => OpKind::Shl,
            "<=" => OpKind::Le,
            ">" => OpKind::Gt,
            ">>" => OpKind::Shr,
            ">=" => OpKind::Ge,
            "==" => OpKind::Eq,
            "-" => OpKind::Sub,
            "+" => OpKind::Add,
            "/" => OpKind::Div,
            "%" => OpKind::Mod,
            "*" => OpKind::Mul,
            "[" => OpKind::Index,
            "?" => OpKind::Cond,
            _ => OpKind::Unknown,
        }
    }
}

/// A node with what a sample needs precomputed: atom values, cast masks, operators; the
/// other kinds stay as parsed.
#[derive(Debug)]
enum Node {
    Atom {
        text: Vec<u8>,
        value: u64,
    },
    Type {
        item: Id,
        /// What the cast does to a value (`eval_type_str(.., 0)`).
        mask: u64,
        /// What it does to an element read through it (`eval_type_str(.., 1)`).
        ptr_mask: u64,
    },
    Op {
        op: OpKind,
        left: Option<Id>,
        right: Option<Id>,
    },
    Arg(Arg),
}

/// A print fmt ready to render samples.
#[derive(Debug)]
pub(crate) struct Program {
    fields: Fields,
    nodes: Vec<Node>,
    type_numbers: Vec<u32>,
    pieces: Vec<Piece>,
    /// The value of each node whose value depends on no field (`eval_num_arg` of
    /// constants): sched_switch's print fmt computes `((((0x0 | 0x1 | ... | 0x40) + 1) << 1)
    /// - 1)` twice per sample otherwise.
    consts: Vec<Option<u64>>,
}

fn cast_mask(ty: &str, pointer: bool) -> u64 {
    eval_type_str(u64::MAX, ty, pointer)
}

impl Program {
    pub(crate) fn new(fields: Fields, tree: Tree, pieces: Vec<Piece>) -> Program {
        let type_numbers = tree.nodes.iter().map(Arg::type_number).collect();
        let nodes = tree
            .nodes
            .into_iter()
            .map(|arg| match arg {
                Arg::Atom(text) => Node::Atom {
                    value: c_strtoull(&text, false),
                    text: text.into_bytes(),
                },
                Arg::Type { ty, item } => Node::Type {
                    item,
                    mask: cast_mask(&ty, false),
                    ptr_mask: cast_mask(&ty, true),
                },
                Arg::Op {
                    op, left, right, ..
                } => Node::Op {
                    op: OpKind::of(&op),
                    left,
                    right,
                },
                other => Node::Arg(other),
            })
            .collect();
        let mut p = Program {
            fields,
            nodes,
            type_numbers,
            pieces,
            consts: Vec::new(),
        };
        let mut known = vec![None; p.nodes.len()];
        for id in 0..p.nodes.len() {
            p.constant(id, &mut known, 0);
        }
        p.consts = known.into_iter().map(Option::flatten).collect();
        p
    }

    /// Whether node `id` evaluates to the same number for every sample, and that number
    /// (memoized in `known`: `Some(None)` for a node that reads the sample).
    fn constant(&self, id: Id, known: &mut [Option<Option<u64>>], depth: u32) -> Option<u64> {
        if let Some(k) = known.get(id).copied().flatten() {
            return k;
        }
        if depth > MAX_DEPTH {
            return None;
        }
        let mut child = |c: Option<Id>| c.map_or(Some(0), |c| self.constant(c, known, depth + 1));
        let is_const = match self.nodes.get(id)? {
            Node::Atom { .. } => true,
            Node::Type { item, .. } => child(Some(*item)).is_some(),
            Node::Op { op, left, right } => {
                *op != OpKind::Index && child(*left).is_some() && child(*right).is_some()
            }
            Node::Arg(_) => false,
        };
        // A constant node reads no data: evaluating it over nothing gives its value.
        let v = is_const.then(|| self.num_eval(id, &[], 0));
        if let Some(slot) = known.get_mut(id) {
            *slot = Some(v);
        }
        v
    }

    fn field(&self, index: usize) -> &Field {
        &self.fields.all[index]
    }

    /// The whole text of one sample.
    pub(crate) fn render(&self, data: &[u8], syms: &dyn KernelSymbols, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text),
                Piece::Number {
                    spec,
                    ls,
                    arg,
                    len_arg,
                } => {
                    let star = len_arg.map(|a| i64::from(self.num(a, data, 0) as i32));
                    let val = self.num(*arg, data, 0);
                    // The C argument is (char), (short), (int), (long) or (long long) of the
                    // value; an int travels zero-extended in its 64-bit register.
                    let passed = match ls {
                        -2 => u64::from((val as i8) as i32 as u32),
                        -1 => u64::from((val as i16) as i32 as u32),
                        0 => u64::from(val as u32),
                        _ => val,
                    };
                    // A negative `*` argument is not passed at all (print_arg_number), so the
                    // width is taken from the value; what perf prints for the number is then
                    // the next register, which held the value too when tested.
                    let star = match star {
                        Some(w) if w < 0 => Some(i64::from(passed as u32 as i32)),
                        other => other,
                    };
                    cfmt::int(out, spec, star, passed);
                }
                Piece::Str { spec, arg, len_arg } => {
                    let star = len_arg.map(|a| i64::from(self.num(a, data, 0) as i32));
                    // print_arg_string() prints into a helper buffer and copies it up to a NUL.
                    let start = out.len();
                    self.print_str(out, spec, star, *arg, data, syms, 0);
                    if let Some(nul) = out[start..].iter().position(|&b| b == 0) {
                        out.truncate(start + nul);
                    }
                }
                Piece::Pointer { ext, arg, len_arg } => {
                    let plen = len_arg.map_or(1, |a| self.num(a, data, 0) as i32);
                    self.print_pointer(out, ext, plen, *arg, data, syms);
                }
            }
        }
    }

    // eval_num_arg()
    fn num(&self, id: Id, data: &[u8], depth: u32) -> u64 {
        if let Some(Some(v)) = self.consts.get(id) {
            return *v;
        }
        self.num_eval(id, data, depth)
    }

    fn num_eval(&self, id: Id, data: &[u8], depth: u32) -> u64 {
        if depth > MAX_DEPTH {
            return 0;
        }
        let depth = depth + 1;
        let sub = |child: Option<Id>| child.map_or(0, |c| self.num(c, data, depth));
        match &self.nodes[id] {
            Node::Atom { value, .. } => *value,
            Node::Arg(Arg::Field(Some(f))) => {
                let f = self.field(*f);
                raw::read_number(data, f.offset, f.size)
            }
            Node::Arg(Arg::DynArrayLen(f)) => self.field(*f).dynamic_at(data).1 as u64,
            // libtraceevent gives the host address of the data; the offset is the part of it
            // that depends on the sample.
            Node::Arg(Arg::DynArray(f)) => self.field(*f).dynamic_at(data).0 as u64,
            // Null, a missing field, flags, symbols, arrays, strings, bitmasks: 0.
            Node::Arg(_) => 0,
            Node::Type { item, mask, .. } => self.num(*item, data, depth) & mask,
            Node::Op { op, left, right } => match op {
                OpKind::Index => self.index(*left, *right, data, depth),
                OpKind::Cond => {
                    let cond = sub(*left);
                    let Some(Node::Op {
                        left: yes,
                        right: no,
                        ..
                    }) = right.map(|r| &self.nodes[r])
                    else {
                        return 0;
                    };
                    if cond != 0 {
                        sub(*yes)
                    } else {
                        sub(*no)
                    }
                }
                _ => {
                    let l = sub(*left);
                    let r = sub(*right);
                    match op {
                        OpKind::Not => u64::from(r == 0),
                        OpKind::Ne => u64::from(l != r),
                        OpKind::BitNot => !r,
                        OpKind::Or => l | r,
                        OpKind::LogOr => u64::from(l != 0 || r != 0),
                        OpKind::And => l & r,
                        OpKind::LogAnd => u64::from(l != 0 && r != 0),
                        OpKind::Lt => u64::from(l < r),
                        OpKind::Shl => l.wrapping_shl(r as u32),
                        OpKind::Le => u64::from(l <= r),
                        OpKind::Gt => u64::from(l > r),
                        OpKind::Shr => l.wrapping_shr(r as u32),
                        OpKind::Ge => u64::from(l >= r),
                        OpKind::Eq => u64::from(l == r),
                        OpKind::Sub => l.wrapping_sub(r),
                        OpKind::Add => l.wrapping_add(r),
                        OpKind::Div => l.checked_div(r).unwrap_or(0),
                        OpKind::Mod => l.checked_rem(r).unwrap_or(0),
                        OpKind::Mul => l.wrapping_mul(r),
                        OpKind::Index | OpKind::Cond | OpKind::Unknown => 0,
                    }
                }
            },
        }
    }

    // The `[` case of eval_num_arg(): an element of a field or dynamic array.
    fn index(&self, left: Option<Id>, right: Option<Id>, data: &[u8], depth: u32) -> u64 {
        let at = right.map_or(0, |r| self.num(r, data, depth));
        let mut larg = left;
        let mut ptr_mask = None;
        for _ in 0..MAX_DEPTH {
            match larg.map(|l| &self.nodes[l]) {
                Some(Node::Type {
                    item, ptr_mask: m, ..
                }) => {
                    ptr_mask.get_or_insert(*m);
                    larg = Some(*item);
                }
                _ => break,
            }
        }
        let (offset, size) = match larg.map(|l| &self.nodes[l]) {
            Some(Node::Arg(Arg::DynArray(f))) => {
                let f = self.field(*f);
                let size = if f.elementsize > 0 { f.elementsize } else { 8 };
                ((f.absolute_at(data) as u64).wrapping_add(at), size)
            }
            Some(Node::Arg(Arg::Field(Some(f)))) => {
                let f = self.field(*f);
                let size = f.elementsize;
                (
                    (f.offset as u64).wrapping_add(at.wrapping_mul(size as u64)),
                    size,
                )
            }
            _ => return 0,
        };
        let val = usize::try_from(offset).map_or(0, |o| raw::read_number(data, o, size));
        val & ptr_mask.unwrap_or(u64::MAX)
    }

    // print_str_arg()
    #[allow(clippy::too_many_arguments)]
    fn print_str(
        &self,
        out: &mut Vec<u8>,
        spec: &Spec,
        star: Option<i64>,
        id: Id,
        data: &[u8],
        syms: &dyn KernelSymbols,
        depth: u32,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        match &self.nodes[id] {
            Node::Atom { text, .. } => cfmt::string(out, spec, star, text),
            Node::Arg(Arg::Field(Some(f))) => {
                let f = self.field(*f);
                // A pointer-sized field that is no array is taken for a pointer: the printk
                // string it points at (`rcu_utilization`), or its address in hex.
                if !f.array && f.size == 8 {
                    let addr = raw::read_number(data, f.offset, 8);
                    match syms.find_printk(addr) {
                        Some(text) => out.extend_from_slice(text.as_bytes()),
                        None => cfmt::hex(out, addr),
                    }
                    return;
                }
                let len = if f.size > 0 {
                    f.size
                } else {
                    data.len().saturating_sub(f.offset)
                };
                cfmt::string(out, spec, star, raw::slice(data, f.offset, len));
            }
            Node::Arg(Arg::Flags {
                field,
                delim,
                flags,
            }) => {
                let mut val = self.num(*field, data, depth + 1) as i64;
                let mut printed = false;
                for flag in flags {
                    if val == 0 && flag.value < 0 {
                        cfmt::string(out, spec, star, flag.name.as_bytes());
                        break;
                    }
                    if flag.value > 0 && (val & flag.value) == flag.value {
                        if printed {
                            if let Some(d) = delim {
                                out.extend_from_slice(d.as_bytes());
                            }
                        }
                        cfmt::string(out, spec, star, flag.name.as_bytes());
                        printed = true;
                        val &= !flag.value;
                    }
                }
                if val != 0 {
                    if printed {
                        if let Some(d) = delim {
                            out.extend_from_slice(d.as_bytes());
                        }
                    }
                    out.extend_from_slice(b"0x");
                    cfmt::hex(out, val as u64);
                }
            }
            Node::Arg(Arg::Symbol { field, symbols }) => {
                let val = self.num(*field, data, depth + 1) as i64;
                match symbols.iter().find(|s| s.value == val) {
                    Some(s) => cfmt::string(out, spec, star, s.name.as_bytes()),
                    None => {
                        out.extend_from_slice(b"0x");
                        cfmt::hex(out, val as u64);
                    }
                }
            }
            Node::Arg(Arg::Hex {
                field,
                size,
                joined,
            }) => {
                let Some(start) = self.array_start(*field, data) else {
                    return;
                };
                // An `int` in perf 6.1's copy: a negative length prints nothing.
                let len = usize::try_from(self.num(*size, data, depth + 1) as i32).unwrap_or(0);
                for (i, byte) in raw::slice(data, start, len).iter().enumerate() {
                    if i > 0 && !joined {
                        out.push(b' ');
                    }
                    cfmt::hex2(out, *byte);
                }
            }
            Node::Arg(Arg::IntArray {
                field,
                count,
                el_size,
            }) => {
                let Some(mut at) = self.array_start(*field, data) else {
                    return;
                };
                let len = (self.num(*count, data, depth + 1) as i32).max(0);
                let el_size = self.num(*el_size, data, depth + 1) as i32;
                for i in 0..len {
                    let size = match el_size {
                        1 | 2 | 4 | 8 => el_size as usize,
                        _ => 1,
                    };
                    if at.saturating_add(size) > data.len() {
                        break;
                    }
                    if i > 0 {
                        out.push(b' ');
                    }
                    if size == el_size as usize {
                        cfmt::dec(out, raw::read_number(data, at, size));
                    } else {
                        out.extend_from_slice(b"BAD SIZE:");
                        cfmt::dec_signed(out, i64::from(el_size));
                        out.extend_from_slice(b" 0x");
                        cfmt::hex(out, raw::read_number(data, at, 1));
                    }
                    at += size;
                }
            }
            Node::Arg(Arg::Str(Some(f))) => {
                let (offset, _) = self.field(*f).dynamic_at(data);
                cfmt::string(out, spec, star, raw::tail(data, offset));
            }
            Node::Arg(Arg::Bitmask(Some(f))) => {
                let (offset, len) = self.field(*f).dynamic_at(data);
                bitmask(out, spec, star, data, offset, len);
            }
            Node::Op {
                op: OpKind::Cond,
                left,
                right,
            } => {
                let cond = left.map_or(0, |l| self.num(l, data, depth + 1));
                if let Some(Node::Op {
                    left: yes,
                    right: no,
                    ..
                }) = right.map(|r| &self.nodes[r])
                {
                    let pick = if cond != 0 { yes } else { no };
                    if let Some(p) = pick {
                        self.print_str(out, spec, star, *p, data, syms, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }

    /// Where the bytes of a `__print_hex`/`__print_array` operand start: a dynamic array's
    /// data or a field's offset.
    fn array_start(&self, id: Id, data: &[u8]) -> Option<usize> {
        match &self.nodes[id] {
            Node::Arg(Arg::DynArray(f)) => Some(self.field(*f).absolute_at(data)),
            Node::Arg(Arg::Field(Some(f))) => Some(self.field(*f).offset),
            _ => None,
        }
    }

    /// The field of an operand that must be `REC->field`; otherwise the text perf prints.
    fn field_operand(&self, out: &mut Vec<u8>, id: Id) -> Option<&Field> {
        match &self.nodes[id] {
            Node::Arg(Arg::Field(f)) => f.map(|f| self.field(f)),
            _ => {
                out.extend_from_slice(b"ARG TYPE NOT FIELD BUT ");
                cfmt::dec(out, u64::from(self.type_numbers[id]));
                None
            }
        }
    }

    // print_arg_pointer()
    fn print_pointer(
        &self,
        out: &mut Vec<u8>,
        ext: &[u8],
        plen: i32,
        id: Id,
        data: &[u8],
        syms: &dyn KernelSymbols,
    ) {
        let at = |i: usize| ext.get(i).copied().unwrap_or(0);
        match at(0) {
            b'F' | b'f' | b'S' | b's' => {
                let val = self.num(id, data, 0);
                match syms.find(val) {
                    Some((name, offset)) => {
                        out.extend_from_slice(name.as_bytes());
                        if matches!(at(0), b'F' | b'S') {
                            out.extend_from_slice(b"+0x");
                            cfmt::hex(out, offset);
                        }
                    }
                    None => {
                        out.extend_from_slice(b"0x");
                        cfmt::hex(out, val);
                    }
                }
            }
            b'M' | b'm' => {
                let Some(f) = self.field_operand(out, id) else {
                    return;
                };
                if f.size != 6 {
                    out.extend_from_slice(b"INVALIDMAC");
                    return;
                }
                let sep: &[u8] = match (at(0), at(1)) {
                    (b'm', _) => b"",
                    (_, b'F') => b"-",
                    _ => b":",
                };
                let mut bytes = [0u8; 6];
                bytes.copy_from_slice(&pad_to::<6>(raw::slice(data, f.offset, 6)));
                if at(1) == b'R' {
                    bytes.reverse();
                }
                for (i, b) in bytes.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(sep);
                    }
                    cfmt::hex2(out, *b);
                }
            }
            b'I' | b'i' => self.print_ip(out, ext, id, data),
            b'U' => {
                let Some(f) = self.field_operand(out, id) else {
                    return;
                };
                if f.size != 16 {
                    out.extend_from_slice(b"INVALIDUUID");
                    return;
                }
                const GUID: [usize; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
                let bytes = pad_to::<16>(raw::slice(data, f.offset, 16));
                let guid = matches!(at(1), b'L' | b'l');
                let upper = matches!(at(1), b'L' | b'B');
                for i in 0..16 {
                    let b = bytes[if guid { GUID[i] } else { i }];
                    let at = out.len();
                    cfmt::hex2(out, b);
                    if upper {
                        out[at..].make_ascii_uppercase();
                    }
                    if matches!(i, 3 | 5 | 7 | 9) {
                        out.push(b'-');
                    }
                }
            }
            b'h' => {
                let delim: &[u8] = match at(1) {
                    b'C' => b":",
                    b'D' => b"-",
                    b'N' => b"",
                    _ => b" ",
                };
                let Node::Arg(Arg::DynArray(f)) = &self.nodes[id] else {
                    out.extend_from_slice(b"ARG TYPE NOT FIELD BUT ");
                    cfmt::dec(out, u64::from(self.type_numbers[id]));
                    return;
                };
                let f = self.field(*f);
                let word = raw::read_number(data, f.offset, f.size);
                let len = (word >> 16) as i64;
                let plen = i64::from(plen).min(len);
                if plen < 1 {
                    return;
                }
                let bytes = raw::slice(data, (word & 0xffff) as usize, plen as usize);
                for (i, b) in bytes.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(delim);
                    }
                    cfmt::hex2(out, *b);
                }
            }
            _ => {
                let val = self.num(id, data, 0);
                if val == 0 {
                    out.extend_from_slice(b"(nil)");
                } else {
                    out.extend_from_slice(b"0x");
                    cfmt::hex(out, val);
                }
            }
        }
    }

    // print_ip_arg() and the v4, v6 and sockaddr printers.
    fn print_ip(&self, out: &mut Vec<u8>, ext: &[u8], id: Id, data: &[u8]) {
        let at = |i: usize| ext.get(i).copied().unwrap_or(0);
        let i = at(0);
        // parse_ip4_print_args(): `h` (host order, little-endian files) and `l` reverse.
        let reverse_at = |p: usize| matches!(at(p), b'h' | b'l');
        match at(1) {
            b'4' => {
                let Some(f) = self.field_operand(out, id) else {
                    return;
                };
                if f.size != 4 {
                    out.extend_from_slice(b"INVALIDIPv4");
                    return;
                }
                ip4(
                    out,
                    i,
                    reverse_at(2),
                    &pad_to::<4>(raw::slice(data, f.offset, 4)),
                );
            }
            b'6' => {
                let compressed = i == b'I' && at(2) == b'c';
                let Some(f) = self.field_operand(out, id) else {
                    return;
                };
                if f.size != 16 {
                    out.extend_from_slice(b"INVALIDIPv6");
                    return;
                }
                let addr = pad_to::<16>(raw::slice(data, f.offset, 16));
                if compressed {
                    ip6_compressed(out, &addr);
                } else {
                    ip6(out, i, &addr);
                }
            }
            b'S' => {
                let mut p = 2;
                let (mut port, mut compressed) = (false, false);
                if i == b'I' {
                    if at(p) == b'p' {
                        port = true;
                        p += 1;
                    }
                    if at(p) == b'c' {
                        compressed = true;
                        p += 1;
                    }
                }
                let reverse = reverse_at(p);
                let Some(f) = self.field_operand(out, id) else {
                    return;
                };
                let sa = pad_to::<28>(raw::slice(data, f.offset, 28));
                match u16::from_le_bytes([sa[0], sa[1]]) {
                    2 => {
                        if f.size < 16 {
                            out.extend_from_slice(b"INVALIDIPv4");
                            return;
                        }
                        ip4(out, i, reverse, &[sa[4], sa[5], sa[6], sa[7]]);
                        if port {
                            out.push(b':');
                            cfmt::dec(out, u64::from(u16::from_be_bytes([sa[2], sa[3]])));
                        }
                    }
                    10 => {
                        if f.size < 28 {
                            out.extend_from_slice(b"INVALIDIPv6");
                            return;
                        }
                        if port {
                            out.push(b'[');
                        }
                        let mut addr = [0u8; 16];
                        addr.copy_from_slice(&sa[8..24]);
                        if compressed {
                            ip6_compressed(out, &addr);
                        } else {
                            ip6(out, i, &addr);
                        }
                        if port {
                            out.extend_from_slice(b"]:");
                            cfmt::dec(out, u64::from(u16::from_be_bytes([sa[2], sa[3]])));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

fn pad_to<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out[..bytes.len().min(N)].copy_from_slice(&bytes[..bytes.len().min(N)]);
    out
}

fn ip4(out: &mut Vec<u8>, i: u8, reverse: bool, b: &[u8; 4]) {
    let order = if reverse { [3, 2, 1, 0] } else { [0, 1, 2, 3] };
    let spec = Spec::parse(if i == b'i' { "%03d" } else { "%d" });
    for (n, &k) in order.iter().enumerate() {
        if n > 0 {
            out.push(b'.');
        }
        cfmt::int(out, &spec, None, u64::from(b[k]));
    }
}

fn ip6(out: &mut Vec<u8>, i: u8, b: &[u8; 16]) {
    for j in (0..16).step_by(2) {
        cfmt::hex2(out, b[j]);
        cfmt::hex2(out, b[j + 1]);
        if i == b'I' && j < 14 {
            out.push(b':');
        }
    }
}

// print_ip6c_addr(): the longest run of zero words as `::`, v4-mapped and ISATAP tails as v4.
fn ip6_compressed(out: &mut Vec<u8>, b: &[u8; 16]) {
    let word = |i: usize| u16::from_be_bytes([b[2 * i], b[2 * i + 1]]);
    let v4mapped = b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff;
    let isatap = (b[8] | 0x02) == 0x02 && b[9] == 0 && b[10] == 0x5e && b[11] == 0xfe;
    let use_v4 = v4mapped || isatap;
    let range = if use_v4 { 6 } else { 8 };
    let mut longest = 1;
    let mut colonpos: Option<usize> = None;
    for i in 0..range {
        let zeros = (i..range).take_while(|&j| word(j) == 0).count();
        if zeros > longest {
            longest = zeros;
            colonpos = Some(i);
        }
    }
    let mut needcolon = false;
    let mut i = 0;
    while i < range {
        if Some(i) == colonpos {
            if needcolon || i == 0 {
                out.push(b':');
            }
            out.push(b':');
            needcolon = false;
            i += longest;
            continue;
        }
        if needcolon {
            out.push(b':');
        }
        let w = word(i);
        let (hi, lo) = ((w >> 8) as u8, (w & 0xff) as u8);
        let spec_x = Spec::parse("%x");
        if hi != 0 {
            cfmt::int(out, &spec_x, None, u64::from(hi));
            cfmt::hex2(out, lo);
        } else {
            cfmt::int(out, &spec_x, None, u64::from(lo));
        }
        needcolon = true;
        i += 1;
    }
    if use_v4 {
        if needcolon {
            out.push(b':');
        }
        ip4(out, b'I', false, &[b[12], b[13], b[14], b[15]]);
    }
}

// print_bitmask_to_seq(): hex of the bytes, most significant first, `,` every 32 bits.
fn bitmask(
    out: &mut Vec<u8>,
    spec: &Spec,
    star: Option<i64>,
    data: &[u8],
    offset: usize,
    size: usize,
) {
    let nr_bits = size.saturating_mul(8);
    let str_size = nr_bits.div_ceil(4) + nr_bits.saturating_sub(1) / 32;
    let mut text = vec![0u8; str_size];
    let mut len = 0usize;
    let mut i = str_size as isize - 2;
    while i >= 0 {
        let byte = data.get(offset + len).copied().unwrap_or(0);
        let mut hex = Vec::with_capacity(2);
        cfmt::hex2(&mut hex, byte);
        let at = i as usize;
        text[at..at + 2].copy_from_slice(&hex[..2]);
        len += 1;
        if len & 3 == 0 && i > 0 {
            i -= 1;
            text[i as usize] = b',';
        }
        i -= 2;
    }
    cfmt::string(out, spec, star, &text);
}
