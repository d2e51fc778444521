//! The format string split into literal text and conversions, each bound to its argument
//! (`parse_args()`, `parse_arg_format()` and `parse_arg_string()` of libtraceevent).
//!
//! perf 6.1's copy accepts only `d i u x X o` (integers), `s` and `p` (with its letters) as
//! conversions, with `#`, `h`, `l`, `L`, `z`, `Z`, `.`, digits, `-` and `*` before them.
//! Anything else, `%c` and `%+d` included, prints as `>c<` / `>+<` and takes no argument (later
//! libtraceevent versions learned `%c`). After `%p` only the letters the kernel's vsprintf uses
//! are part of the conversion (`S s F f`, `M m` + `R F`, `I i` + `4 6 S` ..., `U` + `L l B b`,
//! `h` + `C D N`): `%pK` prints the pointer and then the letter `K`.

use super::cfmt::Spec;
use super::parse::{Id, ParseError};

/// One piece of the output.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    /// Literal text, escapes already applied.
    Text(Vec<u8>),
    /// `%d`-style: `ls` is libtraceevent's length count (-2 `hh` .. 2 `ll`).
    Number {
        spec: Spec,
        ls: i32,
        arg: Id,
        len_arg: Option<Id>,
    },
    /// `%s`.
    Str {
        spec: Spec,
        arg: Id,
        len_arg: Option<Id>,
    },
    /// `%p` and its extensions: `ext` holds the letters after `p`.
    Pointer {
        ext: Vec<u8>,
        arg: Id,
        len_arg: Option<Id>,
    },
}

// parse_arg_format_pointer(): how many letters after `p` belong to the conversion.
fn pointer_letters(f: &[u8]) -> usize {
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let mut ret = 0;
    match at(0) {
        b'F' | b'S' | b'f' | b's' => ret += 1,
        b'M' | b'm' => {
            if matches!(at(1), b'R' | b'F') {
                ret += 1;
            }
            ret += 1;
        }
        b'I' | b'i' => {
            let mut index = 2;
            let kind = at(1);
            if kind == b'S' {
                while matches!(at(index), b'p' | b'f' | b's') {
                    ret += 1;
                    index += 1;
                }
            }
            if kind == b'S' || kind == b'4' {
                if matches!(at(index), b'h' | b'n' | b'l' | b'b') {
                    ret += 1;
                    index += 1;
                }
                if kind == b'4' {
                    ret += 1;
                    return ret + 1;
                }
            }
            if matches!(kind, b'S' | b'6') {
                if at(index) == b'c' {
                    ret += 1;
                }
                ret += 1;
            }
            ret += 1;
        }
        b'U' => {
            if matches!(at(1), b'L' | b'l' | b'B' | b'b') {
                ret += 1;
            }
            ret += 1;
        }
        b'h' => {
            if matches!(at(1), b'C' | b'D' | b'N') {
                ret += 1;
            }
            ret += 1;
        }
        _ => {}
    }
    ret
}

/// Split `format` (the print fmt string as the tokenizer left it) and bind `args` in order.
pub(crate) fn parse_format(format: &str, args: &[Id]) -> Result<Vec<Piece>, ParseError> {
    let f = format.as_bytes();
    let mut pieces = Vec::new();
    let mut args = args.iter().copied();
    let mut pos = 0;
    while pos < f.len() {
        if f[pos] == b'%' && f.get(pos + 1) != Some(&b'%') {
            pos = conversion(f, pos, &mut args, &mut pieces)?;
        } else {
            pos = text(f, pos, &mut pieces);
        }
    }
    // Adjacent text pieces are joined, which changes nothing in the output.
    let mut joined: Vec<Piece> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        if let (Some(Piece::Text(prev)), Piece::Text(next)) = (joined.last_mut(), &piece) {
            prev.extend_from_slice(next);
            continue;
        }
        joined.push(piece);
    }
    Ok(joined)
}

// parse_arg_string(): text up to the next conversion, with `\n \t \r \\` and `\X` -> X.
fn text(f: &[u8], mut pos: usize, pieces: &mut Vec<Piece>) -> usize {
    let mut out = Vec::new();
    while pos < f.len() {
        match f[pos] {
            b'\\' => {
                pos += 1;
                match f.get(pos) {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(&c) => out.push(c),
                    // A trailing backslash: libtraceevent copies the NUL, which ends the text.
                    None => {}
                }
            }
            b'%' if f.get(pos + 1) == Some(&b'%') => {
                out.push(b'%');
                pos += 1;
            }
            b'%' => break,
            c => out.push(c),
        }
        pos += 1;
    }
    pieces.push(Piece::Text(out));
    pos
}

fn conversion(
    f: &[u8],
    start: usize,
    args: &mut impl Iterator<Item = Id>,
    pieces: &mut Vec<Piece>,
) -> Result<usize, ParseError> {
    let mut ls: i32 = 0;
    let mut len_arg = None;
    let mut pos = start + 1;
    let spec_text = |end: usize| String::from_utf8_lossy(&f[start..end]).into_owned();
    while let Some(&c) = f.get(pos) {
        match c {
            b'#' | b'.' | b'z' | b'Z' | b'0'..=b'9' | b'-' => {}
            b'h' => ls -= 1,
            b'l' => ls += 1,
            b'L' => ls = 2,
            b'*' => {
                if len_arg.is_some() {
                    return Err(ParseError("argument already matched".into()));
                }
                len_arg = Some(args.next().ok_or_else(no_arg)?);
            }
            b'p' => {
                let arg = args.next().ok_or_else(no_arg)?;
                let letters = pointer_letters(&f[pos + 1..]);
                let end = pos + 1 + letters;
                if end - start > 31 {
                    return Err(ParseError("bad format".into()));
                }
                pieces.push(Piece::Pointer {
                    ext: f[pos + 1..end].to_vec(),
                    arg,
                    len_arg,
                });
                return Ok(end);
            }
            b'd' | b'u' | b'i' | b'x' | b'X' | b'o' => {
                let arg = args.next().ok_or_else(no_arg)?;
                if pos + 1 - start > 30 {
                    return Err(ParseError("bad format".into()));
                }
                if !(-2..=2).contains(&ls) {
                    return Err(ParseError(format!("bad count ({ls})")));
                }
                pieces.push(Piece::Number {
                    spec: Spec::parse(&spec_text(pos + 1)),
                    ls,
                    arg,
                    len_arg,
                });
                return Ok(pos + 1);
            }
            b's' => {
                let arg = args.next().ok_or_else(no_arg)?;
                if pos + 1 - start > 31 {
                    return Err(ParseError("bad format".into()));
                }
                pieces.push(Piece::Str {
                    spec: Spec::parse(&spec_text(pos + 1)),
                    arg,
                    len_arg,
                });
                return Ok(pos + 1);
            }
            other => {
                pieces.push(Piece::Text(vec![b'>', other, b'<']));
                return Ok(pos + 1);
            }
        }
        pos += 1;
    }
    Ok(pos)
}

fn no_arg() -> ParseError {
    ParseError("no argument match".into())
}
