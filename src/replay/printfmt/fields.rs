//! Fields as libtraceevent sees them (`event_read_fields()`), and the `field=value` text it
//! prints when a print fmt did not parse (`tep_print_fields()`, perf 6.1's in-tree copy).
//!
//! The flags come from the declaration text, not from `signed:` alone: a type containing
//! `char`, `u8` or `s8` with `[...]` is a string, one containing `long` is "long" (printed in
//! hex in the fallback), one with `*` a pointer. The element size of an array decides what
//! `REC->arr[i]` reads: `[N]` gives `size / N`; `[]` (probe-event arrays) gives 1 for strings,
//! 8 for longs and **0 otherwise**, so perf 6.1 reads `u32 arr[]` elements as 0.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::tracefs::format::{EventFormat, FormatField};

use super::cfmt;
use super::raw;

/// One field with the flags libtraceevent derives from its declaration.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) offset: usize,
    pub(crate) size: usize,
    pub(crate) elementsize: usize,
    pub(crate) common: bool,
    pub(crate) array: bool,
    pub(crate) pointer: bool,
    pub(crate) signed: bool,
    pub(crate) long: bool,
    pub(crate) dynamic: bool,
    pub(crate) relative: bool,
    /// `TEP_FIELD_IS_STRING`; the fallback printer clears it for good the first time the
    /// bytes are not printable (libtraceevent mutates the field), hence the atomic.
    string: AtomicBool,
}

impl Field {
    fn from_format(f: &FormatField) -> Field {
        let ty = f.type_name.as_str();
        // `__data_loc cpumask_t mask` is dynamic but, without `[]`, not an array.
        let array = f.array || ty.contains('[');
        let string = array && (ty.contains("char") || ty.contains("u8") || ty.contains("s8"));
        let long = ty.contains("long");
        let offset = f.offset as usize;
        let size = f.size as usize;
        let elementsize = if !array {
            size
        } else if let Some(n) = f.array_len.filter(|&n| n > 0) {
            size / n as usize
        } else if f.data_loc {
            // `type_size()` of the element type, which only knows these names.
            let elem = ty.trim_end_matches("[]").trim();
            match elem {
                "u8" | "s8" | "char" => 1,
                "u16" | "s16" => 2,
                "u32" | "s32" => 4,
                "u64" | "s64" => 8,
                _ => 0,
            }
        } else if string {
            1
        } else if long {
            8
        } else {
            0
        };
        Field {
            name: f.name.clone(),
            offset,
            size,
            elementsize,
            common: f.common,
            array,
            pointer: ty.contains('*'),
            signed: f.signed,
            long,
            dynamic: f.data_loc,
            relative: f.rel_loc,
            string: AtomicBool::new(string),
        }
    }

    /// The offset in a `__data_loc`/`__rel_loc` word, taken as absolute even for `__rel_loc`:
    /// perf 6.1 does so for `__print_hex`, `__print_array`, `%*ph` and `(...)[i]` of a dynamic
    /// array (`__get_str`, `__get_bitmask`, the `_len` helpers and the fallback printer know
    /// `__rel_loc`).
    pub(crate) fn absolute_at(&self, data: &[u8]) -> usize {
        (raw::read_number(data, self.offset, self.size) & 0xffff) as usize
    }

    /// The (offset, len) a `__data_loc`/`__rel_loc` word points at (`dynamic_offset_field`).
    pub(crate) fn dynamic_at(&self, data: &[u8]) -> (usize, usize) {
        let word = raw::read_number(data, self.offset, self.size);
        let mut offset = (word & 0xffff) as usize;
        let len = ((word >> 16) & 0xffff) as usize;
        if self.relative {
            offset += self.offset + self.size;
        }
        (offset, len)
    }
}

/// All fields of an event, common ones first.
#[derive(Debug)]
pub(crate) struct Fields {
    pub(crate) all: Vec<Field>,
}

impl Fields {
    pub(crate) fn new(format: &EventFormat) -> Fields {
        let mut all: Vec<Field> = format
            .fields
            .iter()
            .filter(|f| f.common)
            .map(Field::from_format)
            .collect();
        all.extend(
            format
                .fields
                .iter()
                .filter(|f| !f.common)
                .map(Field::from_format),
        );
        Fields { all }
    }

    /// `tep_find_any_field()`: common fields, then the event's.
    pub(crate) fn find_any(&self, name: &str) -> Option<usize> {
        self.all.iter().position(|f| f.name == name)
    }

    /// `tep_find_field()`: the event's own fields only.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.all.iter().position(|f| !f.common && f.name == name)
    }

    /// `tep_print_fields()`: ` name=value` for each of the event's own fields.
    pub(crate) fn print_all(&self, data: &[u8], out: &mut Vec<u8>) {
        for field in self.all.iter().filter(|f| !f.common) {
            out.push(b' ');
            out.extend_from_slice(field.name.as_bytes());
            out.push(b'=');
            print_field(field, data, out);
        }
    }
}

/// `isprint() || isspace()` up to `len` bytes or a NUL, as `is_printable_array()` checks.
fn printable(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .take_while(|&&b| b != 0)
        .all(|&b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
}

// tep_print_field() of perf 6.1's in-tree libtraceevent.
fn print_field(field: &Field, data: &[u8], out: &mut Vec<u8>) {
    if field.array {
        let (offset, len) = if field.dynamic {
            field.dynamic_at(data)
        } else {
            (field.offset, field.size)
        };
        let bytes = raw::slice(data, offset, len);
        if field.string.load(Ordering::Relaxed) && printable(bytes) {
            out.extend_from_slice(raw::c_str(raw::tail(data, offset)));
        } else {
            out.extend_from_slice(b"ARRAY[");
            for i in 0..len {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                let byte = data.get(offset + i).copied().unwrap_or(0);
                cfmt::hex2(out, byte);
            }
            out.push(b']');
            field.string.store(false, Ordering::Relaxed);
        }
        return;
    }
    let val = raw::read_number(data, field.offset, field.size);
    if field.pointer {
        out.extend_from_slice(b"0x");
        cfmt::hex(out, val);
    } else if field.signed {
        match field.size {
            4 if field.long => {
                out.extend_from_slice(b"0x");
                cfmt::hex(out, u64::from(val as u32));
            }
            4 => cfmt::dec_signed(out, i64::from(val as i32)),
            2 => cfmt::dec_signed_width(out, i64::from(val as i16), 2),
            1 => cfmt::dec_signed(out, i64::from(val as i8)),
            _ => cfmt::dec_signed(out, val as i64),
        }
    } else if field.long {
        out.extend_from_slice(b"0x");
        cfmt::hex(out, val);
    } else {
        cfmt::dec(out, val);
    }
}
