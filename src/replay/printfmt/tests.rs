//! Unit tests of the print-fmt evaluator on format files and samples from a 6.18 kernel.

use super::*;
use crate::tracefs::format::parse_format;

const SCHED_SWITCH: &str = include_str!("../../../fixtures/tracefs/sched_switch.format");
const UPROBE_TYPES: &str = include_str!("../../../fixtures/tracefs/uprobe_ev2.format");
const URETPROBE: &str = include_str!("../../../fixtures/tracefs/uretprobe_ret.format");

/// A raw sample: common header, then bytes placed at offsets.
struct Raw(Vec<u8>);

impl Raw {
    fn new(len: usize) -> Raw {
        Raw(vec![0; len])
    }
    fn put(mut self, offset: usize, bytes: &[u8]) -> Raw {
        if self.0.len() < offset + bytes.len() {
            self.0.resize(offset + bytes.len(), 0);
        }
        self.0[offset..offset + bytes.len()].copy_from_slice(bytes);
        self
    }
    fn u32(self, offset: usize, v: u32) -> Raw {
        self.put(offset, &v.to_le_bytes())
    }
    fn u64(self, offset: usize, v: u64) -> Raw {
        self.put(offset, &v.to_le_bytes())
    }
    /// A `__data_loc` word at `offset` for `text` (with its NUL) stored at `at`.
    fn loc(self, offset: usize, at: usize, text: &str) -> Raw {
        let len = text.len() + 1;
        self.u32(offset, (len as u32) << 16 | at as u32)
            .put(at, text.as_bytes())
            .put(at + text.len(), &[0])
    }
}

struct Syms;

impl KernelSymbols for Syms {
    fn find(&self, addr: u64) -> Option<(&str, u64)> {
        (0xffff_ffff_8100_0000..0xffff_ffff_8100_1000)
            .contains(&addr)
            .then(|| ("tick_nohz_handler", addr - 0xffff_ffff_8100_0000))
    }
}

fn render(format: &str, raw: &[u8]) -> String {
    let format = parse_format(format).expect("format parses");
    let compiled = Compiled::new(&format);
    let mut out = Vec::new();
    compiled.render(raw, &Syms, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn event(fields: &str, print_fmt: &str) -> String {
    format!(
        "name: t\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n{fields}\nprint fmt: {print_fmt}\n"
    )
}

fn sched_switch(state: u64) -> Vec<u8> {
    Raw::new(64)
        .put(8, b"perf\0")
        .u32(24, 6101)
        .u32(28, 120)
        .u64(32, state)
        .put(40, b"migration/0\0")
        .u32(56, 18)
        .u32(60, 0)
        .0
}

#[test]
fn sched_switch_states() {
    let expect = |state: &str| {
        format!("prev_comm=perf prev_pid=6101 prev_prio=120 prev_state={state} ==> next_comm=migration/0 next_pid=18 next_prio=0")
    };
    assert_eq!(render(SCHED_SWITCH, &sched_switch(2)), expect("D"));
    assert_eq!(render(SCHED_SWITCH, &sched_switch(0)), expect("R"));
    assert_eq!(render(SCHED_SWITCH, &sched_switch(1)), expect("S"));
    assert_eq!(render(SCHED_SWITCH, &sched_switch(0x100)), expect("R+"));
    assert_eq!(render(SCHED_SWITCH, &sched_switch(0x81)), expect("S|I"));
}

#[test]
fn uprobe_char_is_not_a_conversion_in_perf_6_1() {
    let raw = Raw::new(40)
        .u64(8, 0x401126)
        .u32(16, 8)
        .put(20, b"A")
        .loc(21, 28, "hi")
        .0;
    assert_eq!(render(UPROBE_TYPES, &raw), "(401126) b=8 ch='>c<' u=\"A\"");
}

#[test]
fn uretprobe_signed_and_string() {
    let raw = Raw::new(48)
        .u64(8, 0x401126)
        .u64(16, 0x401200)
        .u64(24, (-5i64) as u64)
        .loc(32, 36, "x y")
        .0;
    assert_eq!(
        render(URETPROBE, &raw),
        "(401126 <- 401200) ret=-5 c=\"x y\""
    );
}

#[test]
fn symbols_pointers_and_fallback() {
    let fields = "\tfield:void * function;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:void * p;\toffset:16;\tsize:8;\tsigned:0;\n";
    let f = event(
        fields,
        r#""function=%ps at=%pS p=%p q=%pK", REC->function, REC->function, REC->p, REC->p"#,
    );
    let raw = Raw::new(24).u64(8, 0xffff_ffff_8100_0010).u64(16, 0).0;
    assert_eq!(
        render(&f, &raw),
        "function=tick_nohz_handler at=tick_nohz_handler+0x10 p=(nil) q=(nil)K"
    );
    let raw = Raw::new(24)
        .u64(8, 0xffff_ffff_9000_0000)
        .u64(16, 0xffff_8881_02dc_0c20)
        .0;
    assert_eq!(
        render(&f, &raw),
        "function=0xffffffff90000000 at=0xffffffff90000000 p=0xffff888102dc0c20 q=0xffff888102dc0c20K"
    );
    let bad = event(fields, r#""x=%d", sizeof(int)"#);
    assert_eq!(
        render(&bad, &raw),
        "[FAILED TO PARSE] function=0xffffffff90000000 p=0xffff888102dc0c20"
    );
}

#[test]
fn symbolic_flags_and_widths() {
    let fields = "\tfield:unsigned int vec;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:int cpu;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:char comm[16];\toffset:16;\tsize:16;\tsigned:0;\n";
    let f = event(
        fields,
        r#""vec=%u [action=%s] cpu=%03d comm=%-8s| f=%s", REC->vec, __print_symbolic(REC->vec, { 0, "HI" }, { 9, "RCU" }), REC->cpu, REC->comm, __print_flags(REC->vec, "|", { 1, "A" }, { 8, "B" })"#,
    );
    let raw = Raw::new(32).u32(8, 9).u32(12, 7).put(16, b"sh\0").0;
    assert_eq!(
        render(&f, &raw),
        "vec=9 [action=RCU] cpu=007 comm=sh      | f=A|B"
    );
    let raw = Raw::new(32).u32(8, 0x13).u32(12, 7).put(16, b"sh\0").0;
    assert_eq!(
        render(&f, &raw),
        "vec=19 [action=0x13] cpu=007 comm=sh      | f=A|0x12"
    );
}

#[test]
fn libtraceevent_operator_quirks() {
    let fields = "\tfield:u32 a;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:u32 b;\toffset:12;\tsize:4;\tsigned:0;\n";
    // a - b - 1 groups as a - (b - 1); 2 * (a + b) evaluates as 2 * a + b; ?: takes one
    // operand after the colon; ^ evaluates to 0; comparisons are unsigned.
    let f = event(
        fields,
        r#""%d %d %d %d %d %d", REC->a - REC->b - 1, 2 * (REC->a + REC->b), REC->a ? 1 : 2 + 10, REC->a ^ REC->b, -1 < REC->a, (u8)(REC->a << 4)"#,
    );
    let raw = Raw::new(16).u32(8, 10).u32(12, 3).0;
    assert_eq!(render(&f, &raw), "8 23 11 0 0 160");
}

#[test]
fn arrays_hex_and_dynamic() {
    let fields = "\tfield:u8 arr[];\toffset:8;\tsize:4;\tsigned:0;\n\tfield:u32 w[];\toffset:12;\tsize:8;\tsigned:0;\n\tfield:__data_loc u8[] buf;\toffset:20;\tsize:4;\tsigned:0;\n";
    let f = event(
        fields,
        r#""arr={0x%x,0x%x} w={0x%x,0x%x} hex=%s str=%s arr2=%s len=%u", REC->arr[0], REC->arr[3], REC->w[0], REC->w[1], __print_hex(__get_dynamic_array(buf), __get_dynamic_array_len(buf)), __print_hex_str(__get_dynamic_array(buf), 2), __print_array(__get_dynamic_array(buf), 3, 1), __get_dynamic_array_len(buf)"#,
    );
    let raw = Raw::new(24)
        .put(8, &[0xfb, 0xa1, 0x1d, 0xea])
        .u32(12, 7)
        .u32(16, 9)
        .u32(20, 3 << 16 | 24)
        .put(24, &[1, 0xab, 3])
        .0;
    assert_eq!(
        render(&f, &raw),
        "arr={0xfb,0xea} w={0x0,0x0} hex=01 ab 03 str=01ab arr2=1 171 3 len=3"
    );
}

#[test]
fn cut_and_mutated_samples_do_not_panic() {
    let full = sched_switch(2);
    for len in 0..full.len() {
        let _ = render(SCHED_SWITCH, &full[..len]);
    }
}

/// A format using every construct the evaluator knows, for the fuzz tests.
fn everything() -> String {
    let fields = "\tfield:u32 a;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:s64 b;\toffset:12;\tsize:8;\tsigned:1;\n\tfield:char comm[16];\toffset:20;\tsize:16;\tsigned:0;\n\tfield:__data_loc char[] s;\toffset:36;\tsize:4;\tsigned:0;\n\tfield:__data_loc u8[] buf;\toffset:40;\tsize:4;\tsigned:0;\n\tfield:u8 mac[6];\toffset:44;\tsize:6;\tsigned:0;\n\tfield:u8 ip4[4];\toffset:50;\tsize:4;\tsigned:0;\n\tfield:u8 ip6[16];\toffset:54;\tsize:16;\tsigned:0;\n\tfield:u8 sa[28];\toffset:70;\tsize:28;\tsigned:0;\n\tfield:__data_loc unsigned long[] mask;\toffset:98;\tsize:4;\tsigned:0;\n\tfield:void * fn;\toffset:102;\tsize:8;\tsigned:0;\n\tfield:u16 w[];\toffset:110;\tsize:4;\tsigned:0;\n";
    event(
        fields,
        r#""a=%d b=%lld %-8s|%*s %.3s s=%s %pM %pMR %pm %pI4 %pi4 %pI6 %pI6c %pISpc %pU %pUb %*ph %pS %ps %p %x %03o %#x %hhd %hu %zu %Lu hex=%s hs=%s arr=%s bits=%s fl=%s sym=%s %s %s %c %d", REC->a, REC->b, REC->comm, REC->a, __get_str(s), REC->comm, __get_str(s), REC->mac, REC->mac, REC->mac, REC->ip4, REC->ip4, REC->ip6, REC->ip6, REC->sa, REC->ip6, REC->ip6, 4, __get_dynamic_array(buf), REC->fn, REC->fn, REC->fn, REC->a << 3 | REC->b >> 1, REC->a % 7, ~REC->a, -REC->a, !REC->a, REC->a * 3 / (REC->b + 1), (u64)REC->b, __print_hex(__get_dynamic_array(buf), __get_dynamic_array_len(buf)), __print_hex_str(REC->mac, 6), __print_array(__get_dynamic_array(buf), 2, 2), __get_bitmask(mask), __print_flags(REC->a, "|", { 1, "A" }, { 0x10, "B" }), __print_symbolic(REC->b, { 0, "ZERO" }, { 1, "ONE" }), REC->a ? "yes" : "no", REC->a > 3 && REC->b <= 2 ? REC->comm : __get_str(s), REC->w[1], REC->comm[2] == 'x'"#,
    )
}

// `a * 3 / (b + 1)` is `a * ((3 / b) + 1)` in libtraceevent's tree; `x > 3 && y ? p : q` puts
// the `?:` under `&&`, which prints nothing as a string; `%c` is no conversion, so `%d` takes
// `REC->w[1]`, an element of a `u16 []` probe array, read as 0.
#[test]
fn everything_renders() {
    let raw = Raw::new(120)
        .u32(8, 0x11)
        .u64(12, 1)
        .put(20, b"comm-name\0")
        .loc(36, 114, "str")
        .u32(40, 4 << 16 | 118)
        .put(44, &[0, 0x1b, 0x21, 0xa, 0xb, 0xc])
        .put(50, &[192, 168, 0, 1])
        .put(
            54,
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        )
        .put(70, &[2, 0, 0x1f, 0x90, 127, 0, 0, 1])
        .u32(98, 0)
        .u64(102, 0xffff_ffff_8100_0008)
        .put(118, &[0xde, 0xad, 0xbe, 0xef])
        .0;
    let text = render(&everything(), &raw);
    assert_eq!(
        text,
        "a=17 b=1 comm-name|              str com s=str 00:1b:21:0a:0b:0c 0c:0b:0a:21:1b:00 \
         001b210a0b0c 192.168.0.1 192.168.000.001 2001:0db8:0000:0000:0000:0000:0000:0001 \
         2001:db8::1 127.0.0.1:8080 20010db8-0000-0000-0000-000000000001 \
         20010db8-0000-0000-0000-000000000001 de ad be ef tick_nohz_handler+0x8 \
         tick_nohz_handler 0xffffffff81000008 88 003 0xffffffee -17 0 68 1 \
         hex=de ad be ef hs=001b210a0b0c arr=44510 61374 bits= fl=A|B sym=ONE yes  >c< 0"
    );
}

proptest::proptest! {
    #[test]
    fn random_samples_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        for format in [SCHED_SWITCH.to_owned(), UPROBE_TYPES.to_owned(), URETPROBE.to_owned(), everything()] {
            let _ = render(&format, &bytes);
        }
    }

    #[test]
    fn mutated_print_fmts_never_panic(
        at in 0usize..2000,
        cut in 0usize..40,
        junk in "(\\PC|[(){}\\[\\]?:,\"'%*\\\\-]){0,8}",
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..160),
    ) {
        for base in [SCHED_SWITCH.to_owned(), everything()] {
            let Ok(mut format) = parse_format(&base) else { continue };
            let fmt = &mut format.print_fmt;
            let at = at.min(fmt.len());
            if !fmt.is_char_boundary(at) {
                continue;
            }
            let end = (at + cut).min(fmt.len());
            if fmt.is_char_boundary(end) {
                fmt.replace_range(at..end, &junk);
            }
            let compiled = Compiled::new(&format);
            let mut out = Vec::new();
            compiled.render(&bytes, &Syms, &mut out);
        }
    }
}

proptest::proptest! {
    #[test]
    fn token_soup_never_panics(
        fmt in "\"(%[-#0-9.*hlLz]{0,3}[dsxpcu]|%p[SsMmIiUh46cpRF]{0,3}|[a-z= ]){0,8}\"",
        args in proptest::collection::vec(proptest::sample::select(vec![
            "REC->a", "REC->comm", "REC->comm[1]", "__get_str(s)", "__get_dynamic_array(buf)",
            "__get_dynamic_array_len(buf)", "(", ")", ",", "?", ":", "+", "-", "*", "/", "<<",
            "&&", "!", "~", "(u8)", "(char *)", "1", "0x10", "\"x\"", "'c'", "{", "}",
            "__print_flags(", "__print_symbolic(", "__print_hex(", "__print_array(",
            "__get_bitmask(mask)", "[", "]", "REC", "->", "sizeof(", "__builtin_expect(",
        ]), 0..24),
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..140),
    ) {
        let print_fmt = format!("{fmt}, {}", args.join(" "));
        let text = everything();
        let Ok(mut format) = parse_format(&text) else { return Ok(()) };
        format.print_fmt = print_fmt;
        let mut out = Vec::new();
        Compiled::new(&format).render(&bytes, &Syms, &mut out);
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let fields = "\tfield:u32 a;\toffset:8;\tsize:4;\tsigned:0;\n";
    for open in ["(", "-", "!", "REC->a + ", "REC->a ? 1 : "] {
        let deep = format!(
            "\"%d\", {}REC->a{}",
            open.repeat(5000),
            ")".repeat(if open == "(" { 5000 } else { 0 })
        );
        let text = render(&event(fields, &deep), &Raw::new(12).u32(8, 1).0);
        assert!(
            text.starts_with("[FAILED TO PARSE]") || !text.is_empty(),
            "{open}: {text}"
        );
    }
}
