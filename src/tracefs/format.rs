//! Event `format` files: `events/GROUP/EVENT/format`, the layout of an event's raw record.
//!
//! Printed by `f_show()` in `kernel/trace/trace_events.c`; described in
//! `Documentation/trace/events.rst` ("Event formats"). The header gives the name and the id
//! (which is also `perf_event_attr.config` for `PERF_TYPE_TRACEPOINT`); then one line per field,
//! the common fields first and a blank line before the event's own fields; then the print
//! format. Field lines are `\tfield:DECL;\toffset:N;\tsize:N;\tsigned:N;` where DECL is a C
//! declaration. Kernels before 2.6.32 had no `signed:` (it reads as unsigned here); unknown
//! `key:value` parts are ignored so a new one does not break parsing.
//!
//! Probe events (kprobe/uprobe) pack their args with no alignment and declare arrays as
//! `u8 arr[]` with the whole array's `size` (count = size / element size, see
//! [`FormatField::elem_count`]). Strings are `__data_loc char[]`: a u32 holding
//! `len << 16 | offset`. Linux 5.19+ also has `__rel_loc`, an offset from the field's end.
//!
//! A real uprobe event (`p:rptest_4209/ev /usr/bin/true:0x23d0 a=%di:u32 s=+0(%si):string
//! arr=+0(%di):x8[4]`) on Linux 6.18 (the kernel separates the parts of a field line with tabs,
//! shown here as spaces):
//!
//! ```text
//! name: ev
//! ID: 2326
//! format:
//!     field:unsigned short common_type;    offset:0;    size:2;    signed:0;
//!     field:unsigned char common_flags;    offset:2;    size:1;    signed:0;
//!     field:unsigned char common_preempt_count;    offset:3;    size:1;    signed:0;
//!     field:int common_pid;    offset:4;    size:4;    signed:1;
//!
//!     field:unsigned long __probe_ip;    offset:8;    size:8;    signed:0;
//!     field:u32 a;    offset:16;    size:4;    signed:0;
//!     field:__data_loc char[] s;    offset:20;    size:4;    signed:1;
//!     field:u8 arr[];    offset:24;    size:4;    signed:0;
//!
//! print fmt: "(%lx) a=%u s=\"%s\" arr={0x%x,0x%x,0x%x,0x%x}", REC->__probe_ip, REC->a, __get_str(s), REC->arr[0], REC->arr[1], REC->arr[2], REC->arr[3]
//! ```

/// The parsed `format` file of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormat {
    /// The event name (`name:` line), without the group.
    pub name: String,
    /// The event id (`ID:` line).
    pub id: u32,
    /// Common fields then the event's own fields, in file order; see [`FormatField::common`].
    pub fields: Vec<FormatField>,
    /// The text after `print fmt: `, verbatim, up to the end of the file (without the final
    /// newline): a print fmt can span lines.
    pub print_fmt: String,
}

impl EventFormat {
    /// The fields every event shares (`common_type`, `common_pid`, ...).
    pub fn common_fields(&self) -> impl Iterator<Item = &FormatField> {
        self.fields.iter().filter(|f| f.common)
    }

    /// The fields of this event, after the common ones.
    pub fn event_fields(&self) -> impl Iterator<Item = &FormatField> {
        self.fields.iter().filter(|f| !f.common)
    }

    /// The field called `name`, if there is one.
    pub fn find_field(&self, name: &str) -> Option<&FormatField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One `field:` line of a format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatField {
    /// The declaration as written, e.g. `"__data_loc char[] path"`, `"char prev_comm[16]"`.
    pub decl: String,
    /// The type without the name, array suffix or `__data_loc`/`__rel_loc`: `"char[]"` for
    /// `__data_loc char[] s`, `"u8"` for `u8 arr[]`, `"const char *"` for
    /// `const char * filename`.
    pub type_name: String,
    /// The field name: `"prev_comm"`, `"s"`.
    pub name: String,
    /// Byte offset in the raw record.
    pub offset: u32,
    /// Size in bytes (for arrays, the whole array; for data_loc, the 4-byte locator).
    pub size: u32,
    /// `signed:1`.
    pub signed: bool,
    /// A `__data_loc` or `__rel_loc` field: the record holds a u32 `len << 16 | offset`.
    pub data_loc: bool,
    /// A `__rel_loc` field: the offset counts from the end of this field (Linux 5.19+).
    pub rel_loc: bool,
    /// The name had an array suffix, `[N]` or `[]`.
    pub array: bool,
    /// N for `u8 arr[4]`; None for `arr[]` (a probe-event array, sized by `size`) and for
    /// non-arrays.
    pub array_len: Option<u32>,
    /// In the common section (before the blank line): `common_type`, `common_pid`, ...
    pub common: bool,
}

impl FormatField {
    /// How many elements an array field holds: `[N]` as declared, or for `[]` probe-event
    /// arrays `size` divided by the element size when the element type is a fixed-width
    /// integer. None for a non-array, a data_loc field or an unknown element type.
    pub fn elem_count(&self) -> Option<u32> {
        if !self.array || self.data_loc {
            return None;
        }
        if let Some(n) = self.array_len {
            return Some(n);
        }
        let elem = scalar_size(&self.type_name)?;
        (elem > 0).then(|| self.size / elem)
    }
}

/// Sizes of the scalar type names probe events and common fields use.
fn scalar_size(type_name: &str) -> Option<u32> {
    Some(match type_name {
        "u8" | "s8" | "char" | "unsigned char" | "signed char" | "bool" => 1,
        "u16" | "s16" | "short" | "unsigned short" => 2,
        "u32" | "s32" | "int" | "unsigned int" | "unsigned" | "pid_t" => 4,
        "u64" | "s64" | "long long" | "unsigned long long" => 8,
        "long" | "unsigned long" => 8,
        _ => return None,
    })
}

/// Why a format file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// A header line (`name:`, `ID:`, `format:`, `print fmt:`) is missing.
    #[error("no `{0}` line (file cut short?)")]
    Missing(&'static str),
    /// The `ID:` line does not hold a u32.
    #[error("line {line}: bad ID {text:?}")]
    BadId {
        /// 1-based line number.
        line: usize,
        /// The text after `ID:`.
        text: String,
    },
    /// A `field:` line could not be read.
    #[error("line {line}: bad field line ({reason}): {text:?}")]
    BadField {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: &'static str,
        /// The line.
        text: String,
    },
}

/// Parse a whole `format` file.
pub fn parse_format(text: &str) -> Result<EventFormat, FormatError> {
    let mut name = None;
    let mut id = None;
    let mut seen_format = false;
    let mut in_common = true;
    let mut fields = Vec::new();
    let mut print_fmt = None;
    let mut lines = text.lines().enumerate();
    while let Some((index, raw)) = lines.next() {
        let number = index + 1;
        let line = raw.trim();
        if let Some(rest) = raw.strip_prefix("name:") {
            name = Some(rest.trim().to_owned());
        } else if let Some(rest) = raw.strip_prefix("ID:") {
            let text = rest.trim();
            let value = text.parse::<u32>().map_err(|_| FormatError::BadId {
                line: number,
                text: text.to_owned(),
            })?;
            id = Some(value);
        } else if raw.trim_end() == "format:" {
            seen_format = true;
        } else if let Some(rest) = raw.strip_prefix("print fmt:") {
            // The print fmt is the last part of the file and may span lines: a few kernel
            // formats have a raw newline inside their string (ext4_fc_stats, ext4_fsmap_*).
            let mut fmt = rest.strip_prefix(' ').unwrap_or(rest).to_owned();
            for (_, more) in lines.by_ref() {
                fmt.push('\n');
                fmt.push_str(more);
            }
            print_fmt = Some(fmt);
        } else if line.starts_with("field:") || line.starts_with("field special:") {
            let mut field = parse_field_line(line).map_err(|reason| FormatError::BadField {
                line: number,
                reason,
                text: line.to_owned(),
            })?;
            field.common = in_common;
            fields.push(field);
        } else if line.is_empty() && seen_format && !fields.is_empty() {
            in_common = false;
        }
    }
    Ok(EventFormat {
        name: name.ok_or(FormatError::Missing("name:"))?,
        id: id.ok_or(FormatError::Missing("ID:"))?,
        fields,
        print_fmt: print_fmt.ok_or(FormatError::Missing("print fmt:"))?,
    })
}

// field:__data_loc char[] s;	offset:20;	size:4;	signed:1;
fn parse_field_line(line: &str) -> Result<FormatField, &'static str> {
    let mut parts = line.split(';').map(str::trim);
    let decl_part = parts.next().ok_or("empty")?;
    let decl = decl_part
        .strip_prefix("field special:")
        .or_else(|| decl_part.strip_prefix("field:"))
        .ok_or("no `field:`")?
        .trim();
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for part in parts {
        let Some((key, value)) = part.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "offset" => offset = Some(value.parse::<u32>().map_err(|_| "bad offset")?),
            "size" => size = Some(value.parse::<u32>().map_err(|_| "bad size")?),
            "signed" => signed = value == "1",
            _ => {}
        }
    }
    let mut field = parse_decl(decl)?;
    field.offset = offset.ok_or("no offset")?;
    field.size = size.ok_or("no size")?;
    field.signed = signed;
    Ok(field)
}

// __data_loc char[] s | char prev_comm[16] | const char * filename | u8 arr[]
fn parse_decl(decl: &str) -> Result<FormatField, &'static str> {
    let split = decl
        .rfind(|c: char| c.is_whitespace() || c == '*')
        .ok_or("declaration has no type")?;
    let (ty, name_part) = (decl.get(..=split).unwrap_or(""), decl.get(split + 1..));
    let name_part = name_part.unwrap_or("").trim();
    let (name, array, array_len) = match name_part.split_once('[') {
        Some((name, dims)) => {
            let dims = dims.strip_suffix(']').ok_or("unclosed `[`")?;
            // `[]` is a probe-event array; a length that is not a number (a macro name on
            // some old kernels) is treated the same way rather than failing the event.
            let len = dims.trim().parse::<u32>().ok();
            (name, true, len)
        }
        None => (name_part, false, None),
    };
    if name.is_empty() {
        return Err("declaration has no name");
    }
    let mut type_name = ty.trim();
    let (data_loc, rel_loc) = if let Some(rest) = type_name.strip_prefix("__data_loc") {
        type_name = rest.trim_start();
        (true, false)
    } else if let Some(rest) = type_name.strip_prefix("__rel_loc") {
        type_name = rest.trim_start();
        (true, true)
    } else {
        (false, false)
    };
    if type_name.is_empty() {
        return Err("declaration has no type");
    }
    Ok(FormatField {
        decl: decl.to_owned(),
        type_name: type_name.to_owned(),
        name: name.to_owned(),
        offset: 0,
        size: 0,
        signed: false,
        data_loc,
        rel_loc,
        array,
        array_len,
        common: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SCHED_SWITCH: &str = include_str!("../../fixtures/tracefs/sched_switch.format");
    const SYS_ENTER_OPENAT: &str = include_str!("../../fixtures/tracefs/sys_enter_openat.format");
    const UPROBE: &str = include_str!("../../fixtures/tracefs/uprobe_ev.format");
    const URETPROBE: &str = include_str!("../../fixtures/tracefs/uretprobe_ret.format");
    const UPROBE_TYPES: &str = include_str!("../../fixtures/tracefs/uprobe_ev2.format");

    fn field<'a>(f: &'a EventFormat, name: &str) -> &'a FormatField {
        f.find_field(name).expect(name)
    }

    #[test]
    fn sched_switch() {
        let f = parse_format(SCHED_SWITCH).expect("parses");
        assert_eq!(f.name, "sched_switch");
        assert_eq!(f.id, 372);
        assert_eq!(f.common_fields().count(), 4);
        assert_eq!(f.event_fields().count(), 7);
        let pid = field(&f, "common_pid");
        assert!(pid.common && pid.signed);
        assert_eq!(
            (pid.type_name.as_str(), pid.offset, pid.size),
            ("int", 4, 4)
        );
        let comm = field(&f, "prev_comm");
        assert_eq!(comm.decl, "char prev_comm[16]");
        assert_eq!(comm.type_name, "char");
        assert_eq!((comm.offset, comm.size, comm.array_len), (8, 16, Some(16)));
        assert_eq!(comm.elem_count(), Some(16));
        assert!(!comm.common && !comm.signed);
        let state = field(&f, "prev_state");
        assert_eq!(
            (state.type_name.as_str(), state.offset, state.size),
            ("long", 32, 8)
        );
        assert!(f.print_fmt.starts_with("\"prev_comm=%s prev_pid=%d"));
        assert!(f.print_fmt.ends_with("REC->next_prio"));
    }

    #[test]
    fn syscall_pointer_decl() {
        let f = parse_format(SYS_ENTER_OPENAT).expect("parses");
        assert_eq!((f.name.as_str(), f.id), ("sys_enter_openat", 782));
        let name = field(&f, "filename");
        assert_eq!(name.decl, "const char * filename");
        assert_eq!(name.type_name, "const char *");
        assert_eq!((name.offset, name.size), (24, 8));
        assert_eq!(field(&f, "__syscall_nr").offset, 8);
        assert_eq!(field(&f, "mode").type_name, "umode_t");
        assert_eq!(f.event_fields().count(), 5);
    }

    #[test]
    fn uprobe_string_and_array() {
        let f = parse_format(UPROBE).expect("parses");
        assert_eq!((f.name.as_str(), f.id), ("ev", 2326));
        assert_eq!(field(&f, "__probe_ip").offset, 8);
        let a = field(&f, "a");
        assert_eq!((a.type_name.as_str(), a.offset, a.size), ("u32", 16, 4));
        let s = field(&f, "s");
        assert!(s.data_loc && !s.rel_loc && s.signed);
        assert_eq!(s.type_name, "char[]");
        assert_eq!((s.offset, s.size, s.array), (20, 4, false));
        assert_eq!(s.elem_count(), None);
        let arr = field(&f, "arr");
        assert_eq!(arr.decl, "u8 arr[]");
        assert_eq!(
            (arr.type_name.as_str(), arr.array, arr.array_len),
            ("u8", true, None)
        );
        assert_eq!(arr.elem_count(), Some(4));
        assert!(f.print_fmt.starts_with("\"(%lx) a=%u s=\\\"%s\\\""));
    }

    #[test]
    fn uretprobe_and_packed_args() {
        let f = parse_format(URETPROBE).expect("parses");
        let names: Vec<&str> = f.event_fields().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["__probe_func", "__probe_ret_ip", "ret", "c"]);
        assert_eq!(field(&f, "ret").offset, 24);
        assert!(field(&f, "ret").signed);
        let g = parse_format(UPROBE_TYPES).expect("parses");
        // b3@2/32 is stored as its u32 container; char as u8; the string after it unaligned.
        assert_eq!(field(&g, "b").type_name, "u32");
        assert_eq!(field(&g, "ch").size, 1);
        assert_eq!(field(&g, "u").offset, 21);
        assert!(g.print_fmt.contains("ch='%c'"));
    }

    #[test]
    fn print_fmt_with_a_newline_inside_its_string() {
        // ext4:ext4_fsmap_high_key on Linux 6.18 (abridged).
        let text = "name: e\nID: 1\nformat:\n\tfield:u32 agno;\toffset:8;\tsize:4;\tsigned:0;\n\nprint fmt: \"agno %u owner\n\", REC->agno\n";
        let f = parse_format(text).expect("parses");
        assert_eq!(f.print_fmt, "\"agno %u owner\n\", REC->agno");
    }

    #[test]
    fn cut_short_at_each_line_is_an_error_not_a_panic() {
        for (index, _) in UPROBE.match_indices('\n') {
            let cut = &UPROBE[..index];
            // Every prefix ending before `print fmt:` lacks it; longer ones parse.
            let result = parse_format(cut);
            if cut.contains("print fmt:") {
                assert!(result.is_ok(), "cut at {index}: {result:?}");
            } else {
                assert!(result.is_err(), "cut at {index}");
            }
        }
        assert_eq!(parse_format(""), Err(FormatError::Missing("name:")));
        assert_eq!(
            parse_format("name: x\nprint fmt: \"\"\n"),
            Err(FormatError::Missing("ID:"))
        );
    }

    #[test]
    fn field_line_cut_short_at_each_part() {
        let line = "\tfield:u32 a;\toffset:16;\tsize:4;\tsigned:0;";
        for cut in [
            "\tfield:",
            "\tfield:u32",
            "\tfield:u32 a;\toffset:16;",
            "\tfield:u32 a;\toffset:1",
        ] {
            let text = format!("name: e\nID: 1\nformat:\n{cut}\n\nprint fmt: \"\"\n");
            assert!(
                matches!(
                    parse_format(&text),
                    Err(FormatError::BadField { line: 4, .. })
                ),
                "{cut:?}"
            );
        }
        let text = format!("name: e\nID: 1\nformat:\n{line}\n\nprint fmt: \"\"\n");
        assert!(parse_format(&text).is_ok());
    }

    #[test]
    fn unknown_values() {
        let text = "name: e\nID: 7\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\talign:2;\n\n\tfield:__rel_loc char[] path;\toffset:8;\tsize:4;\n\tfield:struct foo bar[3];\toffset:12;\tsize:24;\tsigned:0;\nsomething new: 1\nprint fmt: \"x\"\n";
        let f = parse_format(text).expect("parses");
        let path = field(&f, "path");
        assert!(path.data_loc && path.rel_loc && !path.signed);
        let bar = field(&f, "bar");
        assert_eq!(bar.type_name, "struct foo");
        assert_eq!(bar.elem_count(), Some(3));
        assert!(field(&f, "common_type").common && !bar.common);
        assert!(matches!(
            parse_format("name: e\nID: lots\n"),
            Err(FormatError::BadId { line: 2, .. })
        ));
        let macro_len =
            "name: e\nID: 1\nformat:\n\tfield:char x[LEN];\toffset:0;\tsize:16;\nprint fmt: \"\"\n";
        let x = parse_format(macro_len).expect("parses");
        assert_eq!(
            (x.fields[0].array_len, x.fields[0].elem_count()),
            (None, Some(16))
        );
        let unclosed =
            "name: e\nID: 1\nformat:\n\tfield:u8 x[4;\toffset:0;\tsize:1;\nprint fmt: \"\"\n";
        assert!(parse_format(unclosed).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(text in "(\\PC|\n|\t|;|:|\\[|\\]){0,400}") {
            let _ = parse_format(&text);
        }

        #[test]
        fn never_panics_on_mutated_fixture(at in 0usize..1200, junk in "(\\PC|;|\\[|\n){0,6}") {
            let mut text = UPROBE.to_owned();
            let at = at.min(text.len());
            if text.is_char_boundary(at) {
                text.insert_str(at, &junk);
            }
            if let Ok(f) = parse_format(&text) {
                for field in &f.fields {
                    let _ = field.elem_count();
                }
            }
        }
    }
}
