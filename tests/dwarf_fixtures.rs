//! DWARF module against independent readers of the same fixture binaries: member offsets vs
//! `pahole`, variable locations at function entry vs `gdb info scope`, post-prologue
//! addresses vs `gdb break`, inline instances, line tables, and glibc from `libc6-dbg`.
//!
//! Fixtures: `fixtures/src/dwarf_types.c` compiled at `-O0`/`-O2` with `-gdwarf-4`/`-gdwarf-5`
//! into `target/dwarf-fixtures/<variant>/dwarf_types`, with the compiler and command in a
//! `.flags` file next to each. Tests needing `pahole`, `gdb` or glibc's debug file print
//! `SKIP` and return when the tool is missing.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use rprobe::debuginfo::{CType, Location, TypeId, TypeSource};
use rprobe::dwarf::{debug_candidates, Dwarf};

const SOURCE: &str = "fixtures/src/dwarf_types.c";
const VARIANTS: [(&str, &[&str]); 4] = [
    ("O0-dwarf4", &["-O0", "-gdwarf-4"]),
    ("O0-dwarf5", &["-O0", "-gdwarf-5"]),
    ("O2-dwarf4", &["-O2", "-gdwarf-4"]),
    ("O2-dwarf5", &["-O2", "-gdwarf-5"]),
];

struct Fixture {
    name: &'static str,
    path: PathBuf,
    bytes: Vec<u8>,
}

fn fixtures() -> &'static [Fixture] {
    static F: OnceLock<Vec<Fixture>> = OnceLock::new();
    F.get_or_init(build)
}

fn build() -> Vec<Fixture> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let root = tmp.parent().unwrap_or(&tmp).join("dwarf-fixtures");
    let version = Command::new("gcc")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("gcc")
                .to_string()
        })
        .unwrap_or_else(|e| panic!("cannot run gcc to build {SOURCE}: {e}. Install gcc."));
    let src = manifest.join(SOURCE);
    VARIANTS
        .iter()
        .map(|(name, flags)| {
            let dir = root.join(name);
            fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            let out = dir.join("dwarf_types");
            // Build under a private name, then rename: concurrent test runs never see half a file.
            let part = dir.join(format!("dwarf_types.{}", std::process::id()));
            let mut cmd = Command::new("gcc");
            cmd.args(*flags)
                .args(["-Wall", "-Wextra", "-Werror", "-o"])
                .arg(&part)
                .arg(&src);
            let line = format!(
                "gcc {} -Wall -Wextra -Werror -o {} {}",
                flags.join(" "),
                out.display(),
                src.display()
            );
            let res = cmd.output().unwrap_or_else(|e| panic!("run `{line}`: {e}"));
            assert!(
                res.status.success(),
                "`{line}` failed:\n{}",
                String::from_utf8_lossy(&res.stderr)
            );
            fs::rename(&part, &out).unwrap_or_else(|e| panic!("rename to {}: {e}", out.display()));
            fs::write(
                dir.join("dwarf_types.flags"),
                format!("tool: {version}\ncommand: {line}\n"),
            )
            .unwrap_or_else(|e| panic!("write flags: {e}"));
            let bytes = fs::read(&out).unwrap_or_else(|e| panic!("read {}: {e}", out.display()));
            Fixture {
                name,
                path: out,
                bytes,
            }
        })
        .collect()
}

/// 1-based line number of the first source line containing `text`.
fn source_line(text: &str) -> u64 {
    let src = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(SOURCE))
        .expect("read fixture source");
    let idx = src
        .lines()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("{SOURCE} has no line containing {text:?}"));
    idx as u64 + 1
}

fn tool(name: &str) -> bool {
    let ok = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIP: {name} is not installed");
    }
    ok
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd} {args:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The type a parameter of `func` points to (`mix(node_t *n)` → `node_t`).
fn pointee(dw: &Dwarf<'_>, func: &str, param: &str) -> TypeId {
    let proto = dw
        .function(func)
        .unwrap_or_else(|e| panic!("function {func}: {e}"));
    let p = proto
        .params
        .iter()
        .find(|p| p.name == param)
        .unwrap_or_else(|| panic!("{func} has no parameter {param}: {proto:?}"));
    match dw.peel(p.ty).expect("peel") {
        CType::Pointer { target } => target,
        other => panic!("{func}({param}) is {other:?}, not a pointer"),
    }
}

fn member(dw: &Dwarf<'_>, ty: TypeId, name: &str) -> rprobe::debuginfo::Member {
    dw.members(ty)
        .expect("members")
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no member {name} in {}", dw.type_name(ty)))
}

/// `(name, bit offset)` of the top-level members in `pahole -C NAME` output. Anonymous
/// struct/union members appear as their closing `};  /* OFF SIZE */` line, with name "".
fn pahole_members(text: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut depth = 0;
    for line in text.lines() {
        let code = line.split("/*").next().unwrap_or("").trim();
        let comment = line
            .split("/*")
            .nth(1)
            .map(|c| c.trim_end_matches("*/").trim());
        if code.ends_with('{') {
            depth += 1;
            continue;
        }
        if code.starts_with('}') {
            depth -= 1;
            if depth == 1 {
                if let Some(c) = comment {
                    out.push((String::new(), offset_bits(c)));
                }
            }
            continue;
        }
        if depth != 1 || code.is_empty() || !code.ends_with(';') {
            continue;
        }
        let Some(c) = comment else { continue };
        let decl = code.trim_end_matches(';');
        let name = if let Some(start) = decl.find("(*") {
            decl[start + 2..]
                .split(')')
                .next()
                .unwrap_or("")
                .to_string()
        } else {
            let last = decl.split_whitespace().last().unwrap_or("");
            last.trim_start_matches('*')
                .split(['[', ':'])
                .next()
                .unwrap_or("")
                .to_string()
        };
        out.push((name, offset_bits(c)));
    }
    out
}

/// `"    0: 3  4"` (byte:bit size) or `"   16    24"` (byte size) → bits from the start.
fn offset_bits(comment: &str) -> u64 {
    let first = comment.split_whitespace().next().unwrap_or("0");
    if let Some(byte) = first.strip_suffix(':') {
        let bit: u64 = comment
            .split_whitespace()
            .nth(1)
            .and_then(|b| b.parse().ok())
            .unwrap_or(0);
        return byte.parse::<u64>().unwrap_or(0) * 8 + bit;
    }
    if let Some((byte, bit)) = first.split_once(':') {
        return byte.parse::<u64>().unwrap_or(0) * 8 + bit.parse::<u64>().unwrap_or(0);
    }
    first.parse::<u64>().unwrap_or(0) * 8
}

#[test]
fn members_match_pahole() {
    if !tool("pahole") {
        return;
    }
    for f in fixtures() {
        let dw = Dwarf::parse(&f.bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let node = pointee(&dw, "mix", "n");
        let where_ty = member(&dw, node, "where").ty;
        let types = [
            ("node", node),
            ("point", where_ty),
            ("flags", pointee(&dw, "sum_flags", "f")),
            ("value", pointee(&dw, "sum_flags", "v")),
        ];
        for (name, ty) in types {
            let expected = pahole_members(&run("pahole", &["-C", name, &f.path.to_string_lossy()]));
            assert!(
                !expected.is_empty(),
                "{}: pahole printed nothing for {name}",
                f.name
            );
            let got: Vec<(String, u64)> = dw
                .members(ty)
                .unwrap_or_else(|e| panic!("{}: members of {name}: {e}", f.name))
                .into_iter()
                .map(|m| (m.name, m.bit_offset))
                .collect();
            assert_eq!(got, expected, "{}: struct {name} vs pahole", f.name);
        }
    }
}

#[test]
fn types_peel_size_and_spell() {
    for f in fixtures() {
        let dw = Dwarf::parse(&f.bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let ctx = f.name;
        let proto = dw.function("mix").expect("mix");
        let names: Vec<String> = proto
            .params
            .iter()
            .map(|p| format!("{} {}", dw.type_name(p.ty), p.name))
            .collect();
        assert_eq!(names, ["node_t * n", "const char * tag", "int k"], "{ctx}");
        assert_eq!(
            proto.ret.map(|t| dw.type_name(t)).as_deref(),
            Some("long int"),
            "{ctx}"
        );
        let node = pointee(&dw, "mix", "n");
        assert_eq!(dw.type_name(node), "node_t", "{ctx}");
        assert!(
            matches!(dw.peel(node), Ok(CType::Struct { ref name, size: 176, is_union: false }) if name == "node"),
            "{ctx}: {:?}",
            dw.peel(node)
        );
        assert_eq!(dw.size_of(node).ok(), Some(176), "{ctx}");
        let spell = |m: &str| dw.type_name(member(&dw, node, m).ty);
        assert_eq!(spell("path"), "struct point *[4]", "{ctx}");
        assert_eq!(spell("grid"), "int[2][3]", "{ctx}");
        assert_eq!(spell("slot"), "struct node **", "{ctx}");
        assert_eq!(spell("name"), "char[16]", "{ctx}");
        assert_eq!(spell("callback"), "void (*)(int)", "{ctx}");
        assert_eq!(spell("color"), "enum color", "{ctx}");
        assert_eq!(spell("ok"), "_Bool", "{ctx}");
        assert!(
            spell("counter").contains("const") && spell("counter").contains("volatile"),
            "{ctx}"
        );

        let grid = member(&dw, node, "grid").ty;
        assert_eq!(dw.size_of(grid).ok(), Some(24), "{ctx}");
        let Ok(CType::Array {
            elem,
            count: Some(2),
        }) = dw.peel(grid)
        else {
            panic!("{ctx}: grid is {:?}", dw.peel(grid));
        };
        assert_eq!(dw.type_name(elem), "int[3]", "{ctx}");
        assert_eq!(dw.size_of(elem).ok(), Some(12), "{ctx}");
        assert!(
            matches!(dw.peel(elem), Ok(CType::Array { count: Some(3), .. })),
            "{ctx}"
        );
        let name = member(&dw, node, "name").ty;
        assert!(
            matches!(dw.peel(name), Ok(CType::Array { count: Some(16), elem }) if matches!(dw.peel(elem), Ok(CType::Int { size: 1, is_char: true, .. }))),
            "{ctx}"
        );
        assert_eq!(
            dw.peel(member(&dw, node, "color").ty).ok(),
            Some(CType::Enum {
                size: 4,
                signed: true
            }),
            "{ctx}"
        );
        assert_eq!(
            dw.peel(member(&dw, node, "ratio").ty).ok(),
            Some(CType::Float { size: 4 }),
            "{ctx}"
        );
        assert!(
            matches!(
                dw.peel(member(&dw, node, "counter").ty),
                Ok(CType::Int {
                    size: 8,
                    signed: false,
                    ..
                })
            ),
            "{ctx}"
        );
        let slot = member(&dw, node, "slot").ty;
        let Ok(CType::Pointer { target }) = dw.peel(slot) else {
            panic!("{ctx}: slot")
        };
        assert_eq!(dw.type_name(target), "struct node *", "{ctx}");
        assert_eq!(dw.size_of(slot).ok(), Some(8), "{ctx}");
        let anon: Vec<_> = dw
            .members(node)
            .expect("members")
            .into_iter()
            .filter(|m| m.name.is_empty())
            .collect();
        assert_eq!(anon.len(), 2, "{ctx}");
        assert_eq!(
            dw.members(anon[0].ty).expect("anon struct")[1].name,
            "hi",
            "{ctx}"
        );
        assert!(
            matches!(
                dw.peel(anon[1].ty),
                Ok(CType::Struct { is_union: true, .. })
            ),
            "{ctx}"
        );

        let flags = pointee(&dw, "sum_flags", "f");
        let e = member(&dw, flags, "e");
        assert_eq!((e.bit_offset, e.bitfield_size), (24, Some(40)), "{ctx}");
        let c = member(&dw, flags, "c");
        assert_eq!((c.bit_offset, c.bitfield_size), (8, Some(7)), "{ctx}");
        assert!(
            matches!(
                dw.peel(c.ty),
                Ok(CType::Int {
                    signed: true,
                    size: 4,
                    ..
                })
            ),
            "{ctx}"
        );
        assert_eq!(dw.type_name(TypeId(0)), "void");
        assert_eq!(dw.peel(TypeId(0)).ok(), Some(CType::Void));
        assert!(dw.members(TypeId(0)).is_err());
        assert!(dw.peel(TypeId(u64::MAX >> 20)).is_err());
        assert!(dw.function("no_such_function").is_err());
    }
}

#[test]
fn functions_and_inline_instances() {
    let mix_line = source_line("long mix(node_t *n");
    let scale_line = source_line("long scale(long v, int k)");
    let call_lines = [
        source_line("acc += scale(inner, k);"),
        source_line("acc += scale(n->as_long, k);"),
    ];
    for f in fixtures() {
        let dw = Dwarf::parse(&f.bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let ctx = f.name;
        let mix = dw.functions("mix").expect("functions");
        assert_eq!(mix.len(), 1, "{ctx}: {mix:?}");
        let m = &mix[0];
        assert!(!m.inlined && m.contains(m.entry_pc), "{ctx}: {m:?}");
        assert_eq!(dw.function_line(m), Some(mix_line), "{ctx}");
        assert!(
            m.decl_file.as_deref().is_some_and(|p| p.ends_with(SOURCE)),
            "{ctx}: {:?}",
            m.decl_file
        );
        assert_eq!(m.optimized, f.name.starts_with("O2"), "{ctx}");
        // always_inline: both calls are inlined even at -O0, and no out-of-line copy exists.
        let scale = dw.functions("scale").expect("functions");
        assert_eq!(scale.len(), 2, "{ctx}: {scale:?}");
        let mut calls: Vec<u64> = scale
            .iter()
            .map(|s| {
                assert!(
                    s.inlined && s.frame_die == m.die && s.prologue_end.is_none(),
                    "{ctx}: {s:?}"
                );
                assert_eq!(s.decl_line, Some(scale_line), "{ctx}");
                assert!(m.contains(s.entry_pc), "{ctx}: inline entry outside mix");
                s.call_site.as_ref().expect("call site").1
            })
            .collect();
        calls.sort_unstable();
        assert_eq!(calls, call_lines, "{ctx}");
        assert!(dw.functions("nope").expect("functions").is_empty());
        assert!(
            dw.function_names().expect("names").contains(&"sum_flags"),
            "{ctx}"
        );
        assert!(dw.index_errors().expect("index").is_empty(), "{ctx}");
    }
}

#[test]
fn prologue_end_matches_gdb_breakpoint() {
    if !tool("gdb") {
        return;
    }
    for f in fixtures() {
        let dw = Dwarf::parse(&f.bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        for func in ["mix", "sum_flags", "main"] {
            let inst = &dw.functions(func).expect("functions")[0];
            let text = run(
                "gdb",
                &[
                    "-nx",
                    "-batch",
                    "-ex",
                    &format!("break {func}"),
                    &f.path.to_string_lossy(),
                ],
            );
            // Breakpoint 1 at 0x1138: file /work/main/fixtures/src/dwarf_types.c, line 75.
            let addr = text
                .split("Breakpoint 1 at 0x")
                .nth(1)
                .and_then(|t| t.split(':').next())
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .unwrap_or_else(|| {
                    panic!("{}: no breakpoint address in gdb output: {text}", f.name)
                });
            assert_eq!(
                inst.prologue_end,
                Some(addr),
                "{} {func}: gdb says {text}",
                f.name
            );
        }
    }
}

/// DWARF register numbers of gdb's x86_64 register names.
fn dwarf_reg(name: &str) -> u16 {
    let names = [
        "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    names
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("unknown register {name}")) as u16
}

/// Locations at `pc` from `gdb info scope FUNC`, for the forms the fixture produces.
fn gdb_scope(text: &str, pc: u64) -> BTreeMap<String, Location> {
    let mut out = BTreeMap::new();
    for block in text.split("Symbol ").skip(1) {
        let Some((name, rest)) = block.split_once(" is ") else {
            continue;
        };
        let reg_in = |s: &str| {
            s.split("a variable in $").nth(1).map(|r| {
                Location::Reg(dwarf_reg(
                    r.split(|c: char| !c.is_alphanumeric()).next().unwrap_or(""),
                ))
            })
        };
        let loc = if rest.starts_with("multi-location") {
            let mut found = Location::OptimizedOut;
            for part in rest.split("Range 0x").skip(1) {
                let (range, what) = part.split_once(": ").unwrap_or(("", ""));
                let (b, e) = range.split_once("-0x").unwrap_or(("0", "0"));
                let (b, e) = (
                    u64::from_str_radix(b, 16).unwrap_or(0),
                    u64::from_str_radix(e, 16).unwrap_or(0),
                );
                if (b..e).contains(&pc) {
                    found = reg_in(what).unwrap_or_else(|| {
                        Location::Unsupported(what.lines().nth(1).unwrap_or("").trim().to_string())
                    });
                }
            }
            found
        } else if let Some(l) = reg_in(rest) {
            l
        } else if let Some(n) = rest.split("DW_OP_fbreg ").nth(1) {
            let n: i64 = n
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .expect("fbreg offset");
            // At entry the CFA is %rsp + 8.
            Location::Mem {
                reg: 7,
                offset: n + 8,
            }
        } else if rest.starts_with("optimized out") {
            Location::OptimizedOut
        } else {
            continue;
        };
        out.insert(name.to_string(), loc);
    }
    out
}

#[test]
fn locations_at_entry_match_gdb() {
    if !tool("gdb") {
        return;
    }
    for f in fixtures() {
        let dw = Dwarf::parse(&f.bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        for func in ["mix", "sum_flags", "main"] {
            let inst = &dw.functions(func).expect("functions")[0];
            let text = run(
                "gdb",
                &[
                    "-nx",
                    "-batch",
                    "-ex",
                    &format!("info scope {func}"),
                    &f.path.to_string_lossy(),
                ],
            );
            let expected = gdb_scope(&text, inst.entry_pc);
            let vars = dw.variables_at(inst, inst.entry_pc).expect("variables");
            for v in &vars {
                let Some(want) = expected.get(&v.name) else {
                    continue;
                };
                let ok = match (want, &v.location) {
                    // gdb prints the whole expression; we name the first two operations.
                    (Location::Unsupported(a), Location::Unsupported(b)) => {
                        b.starts_with(a.split_whitespace().nth(1).unwrap_or(""))
                    }
                    (a, b) => a == b,
                };
                assert!(
                    ok,
                    "{} {func} {}: gdb {want:?}, rprobe {:?}\n{text}",
                    f.name, v.name, v.location
                );
            }
            let params: Vec<&str> = vars
                .iter()
                .filter(|v| v.is_param)
                .map(|v| v.name.as_str())
                .collect();
            let want_params: &[&str] = match func {
                "mix" => &["n", "tag", "k"],
                "sum_flags" => &["f", "v", "c"],
                _ => &["argc", "argv"],
            };
            assert_eq!(params, want_params, "{} {func}", f.name);
            assert!(
                vars.iter()
                    .filter(|v| !v.is_param)
                    .all(|v| v.name != "inner"),
                "{}: nested block var at entry",
                f.name
            );
        }
    }
}

#[test]
fn nested_block_and_inline_variables() {
    let inner_line = source_line("int inner = k * 3;");
    for f in fixtures() {
        let dw = Dwarf::parse(&f.bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let m = &dw.functions("mix").expect("functions")[0];
        let addrs = dw.lines_for("dwarf_types.c", inner_line);
        assert!(
            !addrs.is_empty(),
            "{}: no rows for line {inner_line}",
            f.name
        );
        assert!(
            addrs.iter().all(|a| m.contains(*a)),
            "{}: {addrs:x?} outside mix",
            f.name
        );
        let vars = dw.variables_at(m, addrs[0]).expect("variables");
        let inner = vars.iter().find(|v| v.name == "inner");
        assert!(
            inner.is_some_and(|v| !v.is_param && dw.type_name(v.ty) == "int"),
            "{}: {vars:?}",
            f.name
        );
        if f.name.starts_with("O0") {
            assert!(
                matches!(
                    inner.map(|v| &v.location),
                    Some(Location::Mem { reg: 6, .. } | Location::Mem { reg: 7, .. })
                ),
                "{}: {inner:?}",
                f.name
            );
        }
        for s in dw.functions("scale").expect("functions") {
            let vars = dw.variables_at(&s, s.entry_pc).expect("inline variables");
            let mut names: Vec<&str> = vars
                .iter()
                .filter(|v| v.is_param)
                .map(|v| v.name.as_str())
                .collect();
            // gcc lists an inlined instance's parameters in no particular order.
            names.sort_unstable();
            assert_eq!(names, ["k", "v"], "{}", f.name);
        }
        // Suffix matching is by whole path components.
        assert!(dw.lines_for("types.c", inner_line).is_empty(), "{}", f.name);
        assert_eq!(
            dw.lines_for("src/dwarf_types.c", inner_line),
            addrs,
            "{}",
            f.name
        );
    }
}

#[test]
fn static_locals_are_addresses() {
    use object::{Object, ObjectSymbol};
    for f in fixtures() {
        let dw = Dwarf::parse(&f.bytes).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let file = object::File::parse(&*f.bytes).expect("ELF");
        // gcc names the symbol of `static int calls` in sum_flags `calls.0`.
        let sym = file
            .symbols()
            .find(|s| s.name().is_ok_and(|n| n.starts_with("calls.")))
            .unwrap_or_else(|| panic!("{}: no calls.N symbol", f.name));
        let inst = &dw.functions("sum_flags").expect("functions")[0];
        let vars = dw.variables_at(inst, inst.entry_pc).expect("variables");
        let calls = vars
            .iter()
            .find(|v| v.name == "calls")
            .unwrap_or_else(|| panic!("{}: {vars:?}", f.name));
        assert_eq!(calls.location, Location::Addr(sym.address()), "{}", f.name);
        assert!(!calls.is_param);
        let main = &dw.functions("main").expect("functions")[0];
        assert!(
            dw.variables_at(main, main.entry_pc)
                .expect("vars")
                .iter()
                .all(|v| v.is_param),
            "{}",
            f.name
        );
    }
}

#[test]
fn debug_candidates_of_fixture_and_libc() {
    let f = &fixtures()[0];
    assert_eq!(debug_candidates(&f.bytes, &f.path).first(), Some(&f.path));
    assert!(debug_candidates(b"not elf", Path::new("/x")).is_empty());
    let libc = Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6");
    let Ok(bytes) = fs::read(libc) else {
        println!("SKIP: no {}", libc.display());
        return;
    };
    let cands = debug_candidates(&bytes, libc);
    assert!(!cands.contains(&libc.to_path_buf()), "{cands:?}");
    assert!(
        cands
            .iter()
            .any(|c| c.to_string_lossy().contains("/usr/lib/debug/.build-id/")),
        "{cands:?}"
    );
    let link = debuglink_name(libc);
    for dir in [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu/.debug",
        "/usr/lib/debug/usr/lib/x86_64-linux-gnu",
    ] {
        let want = Path::new(dir).join(&link);
        assert!(
            cands.contains(&want),
            "{} missing from {cands:?}",
            want.display()
        );
    }
}

/// The `.gnu_debuglink` file name, as `readelf -p .gnu_debuglink` prints it.
fn debuglink_name(path: &Path) -> String {
    let text = run(
        "readelf",
        &["-p", ".gnu_debuglink", &path.to_string_lossy()],
    );
    // "  [     0]  93ac61ec....debug"
    text.lines()
        .find_map(|l| l.split_once("]  ").map(|(_, n)| n.trim().to_string()))
        .unwrap_or_else(|| panic!("no .gnu_debuglink in readelf output: {text}"))
}

#[test]
fn libc_from_libc6_dbg() {
    let libc = Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6");
    let Ok(bin) = fs::read(libc) else {
        println!("SKIP: no {}", libc.display());
        return;
    };
    let Some(debug) = debug_candidates(&bin, libc)
        .into_iter()
        .find(|p| p.to_string_lossy().contains(".build-id") && p.exists())
    else {
        println!("SKIP: glibc debug file not installed (Debian: apt-get install libc6-dbg)");
        return;
    };
    let bytes = fs::read(&debug).expect("read debug file");
    let t = Instant::now();
    let mut dw = Dwarf::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", debug.display()));
    let parse = t.elapsed();
    dw.use_frames_of(&bin).expect("frames of libc");
    let t = Instant::now();
    // glibc's malloc is an alias: its DWARF name is __libc_malloc.
    let malloc = dw.functions("__libc_malloc").expect("functions");
    let index = t.elapsed();
    let t = Instant::now();
    let again = dw.functions("__libc_free").expect("functions");
    let lookup = t.elapsed();
    println!(
        "libc: {} units, parse (inflate + headers) {parse:?}, first lookup (index) {index:?}, next lookup {lookup:?}, {} names",
        dw.unit_count(),
        dw.function_names().expect("names").len()
    );
    assert!(!malloc.is_empty() && !again.is_empty());
    let concrete = malloc.iter().find(|m| !m.inlined).expect("concrete malloc");
    assert!(
        concrete
            .decl_file
            .as_deref()
            .is_some_and(|p| p.ends_with("malloc.c")),
        "{concrete:?}"
    );
    assert!(concrete.optimized);
    let vars = dw
        .variables_at(concrete, concrete.entry_pc)
        .expect("variables");
    let bytes_param = vars.iter().find(|v| v.is_param).expect("a parameter");
    assert_eq!(
        bytes_param.location,
        Location::Reg(5),
        "malloc's first parameter in %rdi: {vars:?}"
    );
    let proto = dw.function("__libc_malloc").expect("proto");
    assert_eq!(proto.params.len(), 1);
    assert_eq!(dw.type_name(proto.params[0].ty), "size_t");
}

/// File ranges of the sections a mutation should hit: DWARF and call frame information.
fn dwarf_ranges(elf: &[u8]) -> Vec<(usize, usize)> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).expect("fixture is ELF");
    file.sections()
        .filter(|s| {
            s.name()
                .is_ok_and(|n| n.starts_with(".debug") || n.starts_with(".eh_frame"))
        })
        .filter_map(|s| s.file_range())
        .map(|(off, len)| (off as usize, (off + len) as usize))
        .filter(|(b, e)| b < e)
        .collect()
}

/// Every query the DWARF module answers, on whatever `bytes` parse to. Results are ignored:
/// only panics and hangs matter.
fn exercise(bytes: &[u8]) {
    let Ok(dw) = Dwarf::parse(bytes) else { return };
    let _ = dw.function_names();
    for name in ["mix", "scale", "sum_flags", "main"] {
        if let Ok(proto) = dw.function(name) {
            for p in proto.params.iter().take(4) {
                let mut ty = p.ty;
                for _ in 0..6 {
                    let _ = dw.type_name(ty);
                    let _ = dw.size_of(ty);
                    if let Ok(ms) = dw.members(ty) {
                        for m in ms.iter().take(20) {
                            let _ = dw.type_name(m.ty);
                            let _ = dw.peel(m.ty);
                        }
                    }
                    ty = match dw.peel(ty) {
                        Ok(CType::Pointer { target }) => target,
                        Ok(CType::Array { elem, .. }) => elem,
                        _ => break,
                    };
                }
            }
        }
        for inst in dw.functions(name).unwrap_or_default().iter().take(4) {
            let _ = dw.variables_at(inst, inst.entry_pc);
            if let Some(pc) = inst.prologue_end {
                let _ = dw.variables_at(inst, pc);
            }
            let _ = dw.function_line(inst);
        }
    }
    let _ = dw.lines_for("dwarf_types.c", 80);
    // The by-address path a vmlinux takes: .debug_aranges (or unit ranges), one unit's names.
    for name in ["mix", "scale", "main"] {
        let entry = dw
            .functions(name)
            .ok()
            .and_then(|v| v.first().map(|f| f.entry_pc))
            .unwrap_or(0x1139);
        let _ = dw.units_at(entry);
        for inst in dw
            .functions_at(name, entry)
            .unwrap_or_default()
            .iter()
            .take(4)
        {
            let _ = dw.variables_at(inst, inst.entry_pc + 4);
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Random byte changes inside the DWARF sections of every fixture never panic.
    #[test]
    fn mutated_fixtures_never_panic(
        variant in 0usize..4,
        edits in proptest::collection::vec((0usize..usize::MAX, 0u8..=255), 1..24),
    ) {
        let f = &fixtures()[variant];
        let ranges = dwarf_ranges(&f.bytes);
        let total: usize = ranges.iter().map(|(b, e)| e - b).sum();
        let mut bytes = f.bytes.clone();
        for (pos, val) in edits {
            let mut at = pos % total.max(1);
            for (b, e) in &ranges {
                if at < e - b {
                    bytes[b + at] = val;
                    break;
                }
                at -= e - b;
            }
        }
        exercise(&bytes);
    }

    /// Any prefix of a fixture parses or fails cleanly.
    #[test]
    fn truncated_fixtures_never_panic(variant in 0usize..4, cut in 0usize..usize::MAX) {
        let f = &fixtures()[variant];
        exercise(&f.bytes[..cut % f.bytes.len()]);
    }
}

/// The by-address lookup (a vmlinux's path: `.debug_aranges`, one unit walked) finds what
/// the whole-file name index finds, for every function of every fixture.
#[test]
fn lookup_by_address_agrees_with_the_name_index() {
    for f in fixtures() {
        let dw = Dwarf::parse(&f.bytes).expect("parse");
        let names: Vec<String> = dw
            .function_names()
            .expect("names")
            .into_iter()
            .map(str::to_string)
            .collect();
        assert!(!names.is_empty(), "{}: no functions", f.name);
        for name in &names {
            let all = dw.functions(name).expect("functions");
            for concrete in all.iter().filter(|i| !i.inlined) {
                assert!(
                    !dw.units_at(concrete.entry_pc).is_empty(),
                    "{}: no unit covers {name} at {:#x}",
                    f.name,
                    concrete.entry_pc
                );
                let by_addr = dw
                    .functions_at(name, concrete.entry_pc)
                    .expect("functions_at");
                assert!(
                    by_addr.contains(concrete),
                    "{}: {name} at {:#x}: by address {by_addr:?}",
                    f.name,
                    concrete.entry_pc
                );
                for i in &by_addr {
                    assert!(all.contains(i), "{}: {name}: extra instance {i:?}", f.name);
                }
            }
        }
    }
}
