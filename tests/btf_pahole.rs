//! rprobe's BTF reader against pahole on the running kernel's `/sys/kernel/btf/vmlinux`: every
//! member offset, bit offset, bitfield width and size of the structs probes use, as `pahole -C`
//! prints them, and the prototypes of the kernel functions that take pointers to those structs,
//! as `pfunct --prototypes` prints them; also every struct of a module's split BTF.
//!
//! Other kernels: `RPROBE_BTF=path/to/vmlinux` (raw BTF or an ELF with `.BTF`, e.g. unpacked
//! from a lab kernel's vmlinuz) and `RPROBE_BTF_MODULE=path/to/module.ko` on top of it;
//! `RPROBE_PFUNCT_ALL=1` compares every prototype (pfunct needs 15 s to list them).

use std::path::Path;
use std::process::Command;

use rprobe::btf::{Btf, Kind};
use rprobe::debuginfo::{CType, TypeId, TypeSource};

/// The BTF compared: the running kernel's, or the file `RPROBE_BTF` names (raw BTF or an ELF
/// `vmlinux` with `.BTF`, such as one unpacked from a lab kernel's vmlinuz).
fn vmlinux() -> String {
    std::env::var("RPROBE_BTF").unwrap_or_else(|_| "/sys/kernel/btf/vmlinux".to_string())
}

/// Structs that kernel probes dereference.
const STRUCTS: &[&str] = &[
    "file",
    "path",
    "dentry",
    "qstr",
    "inode",
    "task_struct",
    "sock",
    "sock_common",
    "sk_buff",
    "msghdr",
    "iov_iter",
    "super_block",
    "mm_struct",
    "vm_area_struct",
    "pt_regs",
    // what tests/golden_kernel.rs reads through
    "open_how",
    "kernel_clone_args",
    "net_device",
    "sched_entity",
    "cred",
    "vfsmount",
    "socket",
    "filename",
];

/// The kernel's BTF, or `None` after printing why the test skips (a failure when `CI` is set).
fn setup(test: &str, tool: &str) -> Option<Btf> {
    let vmlinux = vmlinux();
    let why = if !Path::new(&vmlinux).exists() {
        format!(
            "SKIP btf_pahole::{test}: {vmlinux} is missing (kernel without CONFIG_DEBUG_INFO_BTF)"
        )
    } else if Command::new(tool).arg("--version").output().is_err() {
        format!("SKIP btf_pahole::{test}: {tool} is not installed (apt install dwarves)")
    } else {
        return Some(Btf::load(&vmlinux).expect("parse vmlinux BTF"));
    };
    assert!(std::env::var_os("CI").is_none(), "{why}");
    println!("{why}");
    None
}

/// One member as pahole prints it, or a block (`union {`, `struct {`) with its members.
#[derive(Debug, Clone, PartialEq)]
struct Field {
    /// Empty for anonymous blocks.
    name: String,
    /// From the start of the outermost struct, in bits.
    bit_offset: u64,
    bitfield: Option<u32>,
    /// Bytes; for a bitfield, the size of its declared type.
    size: u64,
    children: Vec<Field>,
}

/// `/*   126: 0  1 */` → (bit offset 1008, size 1); `/*    16     8 */` → (128, 8).
fn parse_offset_comment(comment: &str) -> Option<(u64, u64)> {
    let inner = comment
        .trim()
        .strip_prefix("/*")?
        .strip_suffix("*/")?
        .trim();
    let (offset, size) = inner.rsplit_once(char::is_whitespace)?;
    let size = size.parse().ok()?;
    let bits = match offset.split_once(':') {
        Some((byte, bit)) => {
            byte.trim().parse::<u64>().ok()? * 8 + bit.trim().parse::<u64>().ok()?
        }
        None => offset.trim().parse::<u64>().ok()? * 8,
    };
    Some((bits, size))
}

/// The name declared by `decl` (text before `;`) and its bitfield width:
/// `struct sk_buff *   next` → next; `__u8 cloned:1` → (cloned, 1); `char cb[48]` → cb;
/// `void (*destructor)(struct sk_buff *)` → destructor.
fn declared_name(decl: &str) -> (String, Option<u32>) {
    let decl = decl.trim();
    if let Some(start) = decl.find("(*") {
        let rest = &decl[start + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let name = rest[..end].split('[').next().unwrap_or("");
        return (name.trim().to_string(), None);
    }
    let (decl, width) = match decl.rsplit_once(':') {
        Some((d, w)) if w.trim().chars().all(|c| c.is_ascii_digit()) => (d, w.trim().parse().ok()),
        _ => (decl, None),
    };
    let last = decl
        .rsplit(|c: char| c.is_whitespace() || c == '*')
        .next()
        .unwrap_or("");
    (last.split('[').next().unwrap_or("").to_string(), width)
}

/// `text` without its `__attribute__((...))` parts.
fn strip_attributes(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("__attribute__") {
        out.push_str(&rest[..at]);
        // Skip the balanced parentheses after the keyword.
        let after = &rest[at + "__attribute__".len()..];
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The name in a closing `} name __attribute__((...));`, empty for an anonymous block.
fn closing_name(line: &str) -> String {
    let body = line.trim().trim_start_matches('}');
    // `} redirtbl[24];`, `} * ooo;`: the name without array suffix or pointer star.
    let name = strip_attributes(body.split(';').next().unwrap_or(""));
    let name = name.split('[').next().unwrap_or("");
    name.trim().trim_start_matches('*').trim().to_string()
}

/// `pahole -C NAME` output as a tree of fields.
fn parse_pahole(text: &str) -> Result<Field, String> {
    let mut stack: Vec<Field> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("/*") {
            continue;
        }
        let (decl, comment) = match t.rfind("/*") {
            Some(at) if t.ends_with("*/") => (&t[..at], Some(&t[at..])),
            _ => (t, None),
        };
        let decl = decl.trim();
        if decl.ends_with('{') {
            stack.push(Field {
                name: String::new(),
                bit_offset: 0,
                bitfield: None,
                size: 0,
                children: Vec::new(),
            });
        } else if decl.starts_with('}') {
            let mut block = stack
                .pop()
                .ok_or(format!("line {}: unbalanced '}}'", n + 1))?;
            block.name = closing_name(decl);
            // `} rtnl_link_state:16;`: a bitfield of an anonymous enum type.
            if let Some((name, width)) = block.name.clone().split_once(':') {
                if let Ok(w) = width.trim().parse() {
                    block.name = name.trim().to_string();
                    block.bitfield = Some(w);
                }
            }
            if let Some((bits, size)) = comment.and_then(parse_offset_comment) {
                block.bit_offset = bits;
                block.size = size;
            }
            match stack.last_mut() {
                Some(parent) => parent.children.push(block),
                None => return Ok(block),
            }
        } else if let Some((bits, size)) = comment.and_then(parse_offset_comment) {
            let decl = strip_attributes(decl.trim_end_matches(';'));
            let (name, bitfield) = declared_name(&decl);
            stack
                .last_mut()
                .ok_or(format!("line {}: member outside a struct", n + 1))?
                .children
                .push(Field {
                    name,
                    bit_offset: bits,
                    bitfield,
                    size,
                    children: Vec::new(),
                });
        }
        // Anything else (`unsigned int :0;`, which BTF does not record) is skipped.
    }
    Err("no closing '};'".into())
}

/// Where pahole prints a member's anonymous struct or union inline: for a member of
/// anonymous struct type, an array of them (`} encap[2];`) or a pointer to one (`} * ooo;`).
/// Returns the struct and whether it is reached through a pointer. `None` for named types and
/// typedefs of anonymous ones, which pahole does not expand.
fn inline_struct(btf: &Btf, ty: TypeId) -> Option<(TypeId, bool)> {
    if !btf.type_name(ty).contains("{...}") {
        return None;
    }
    let (mut cur, mut through_pointer) = (ty, false);
    for _ in 0..8 {
        match btf.peel(cur).ok()? {
            CType::Struct { name, .. } if name.is_empty() => return Some((cur, through_pointer)),
            CType::Array { elem, .. } => cur = elem,
            CType::Pointer { target } => (cur, through_pointer) = (target, true),
            _ => return None,
        }
    }
    None
}

/// The same tree from BTF, with anonymous structs and unions expanded where pahole expands
/// them ([`inline_struct`]). pahole prints the offsets of expanded members from the outermost
/// struct (`absolute`), except below a pointer, where each level counts from its own start.
fn btf_fields(btf: &Btf, ty: TypeId, base: u64, absolute: bool, depth: usize) -> Vec<Field> {
    assert!(depth < 16, "nesting too deep at {ty:?}");
    let members = btf
        .members(ty)
        .unwrap_or_else(|e| panic!("members of {ty:?}: {e}"));
    members
        .into_iter()
        .map(|m| {
            let bit_offset = base + m.bit_offset;
            let children = match inline_struct(btf, m.ty) {
                Some((inner, false)) if absolute => {
                    btf_fields(btf, inner, bit_offset, true, depth + 1)
                }
                Some((inner, _)) => btf_fields(btf, inner, 0, false, depth + 1),
                None => Vec::new(),
            };
            Field {
                name: m.name,
                bit_offset,
                bitfield: m.bitfield_size,
                size: btf.size_of(m.ty).expect("size_of member"),
                children,
            }
        })
        .collect()
}

/// Differences between pahole's fields and ours, one line each.
fn compare(path: &str, pahole: &[Field], ours: &[Field], out: &mut Vec<String>) {
    if pahole.len() != ours.len() {
        let names = |f: &[Field]| {
            f.iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push(format!(
            "{path}: pahole has {} members [{}], BTF {} [{}]",
            pahole.len(),
            names(pahole),
            ours.len(),
            names(ours)
        ));
        return;
    }
    for (p, o) in pahole.iter().zip(ours) {
        let here = format!(
            "{path}.{}",
            if p.name.is_empty() { "<anon>" } else { &p.name }
        );
        let pahole_view = (&p.name, p.bit_offset, p.bitfield, p.size);
        let our_view = (&o.name, o.bit_offset, o.bitfield, o.size);
        if pahole_view != our_view {
            out.push(format!(
                "{here}: (name, bit offset, bitfield, size) pahole {pahole_view:?}, \
                 BTF {our_view:?}"
            ));
        }
        compare(&here, &p.children, &o.children, out);
    }
}

fn count(fields: &[Field]) -> usize {
    fields.iter().map(|f| 1 + count(&f.children)).sum()
}

/// Compare struct `name` of `btf` with `pahole ARGS -C name FILE`; returns members compared.
fn compare_with_pahole(
    btf: &Btf,
    ty: TypeId,
    name: &str,
    args: &[&str],
    diffs: &mut Vec<String>,
) -> usize {
    let out = Command::new("pahole")
        .args(["-F", "btf"])
        .args(&args[..args.len() - 1])
        .args(["-C", name])
        .args(&args[args.len() - 1..])
        .output()
        .expect("run pahole");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.is_empty(),
        "pahole {args:?} -C {name} printed nothing"
    );
    if !text.starts_with("struct ") {
        // An enum or typedef of the same name (`typedef struct mac_addr mac_addr;`) is what
        // pahole -C prints then.
        return 0;
    }
    let pahole = parse_pahole(&text).unwrap_or_else(|e| panic!("pahole -C {name}: {e}\n{text}"));
    let ours = btf_fields(btf, ty, 0, true, 0);
    compare(name, &pahole.children, &ours, diffs);
    let size_line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("/* size: "))
        .and_then(|l| l.split(',').next())
        .and_then(|s| s.parse::<u64>().ok());
    if size_line != btf.size_of(ty).ok() {
        diffs.push(format!(
            "{name}: pahole size {size_line:?}, BTF {:?}",
            btf.size_of(ty)
        ));
    }
    count(&pahole.children)
}

#[test]
fn struct_layouts_match_pahole() {
    let Some(btf) = setup("struct_layouts_match_pahole", "pahole") else {
        return;
    };
    let mut diffs = Vec::new();
    let mut checked = 0;
    let file = vmlinux();
    for name in STRUCTS {
        let ty = btf
            .find_struct(name)
            .unwrap_or_else(|| panic!("struct {name} not in BTF"));
        checked += compare_with_pahole(&btf, ty, name, &[&file], &mut diffs);
    }
    println!(
        "compared {checked} members of {} structs with pahole",
        STRUCTS.len()
    );
    assert!(checked > 800, "only {checked} members parsed from pahole");
    assert!(
        diffs.is_empty(),
        "BTF and pahole disagree:\n{}",
        diffs.join("\n")
    );
}

/// A module's split BTF: `RPROBE_BTF_MODULE` (a `.ko` or a `/sys/kernel/btf/<module>` file),
/// else the first module under `/sys/kernel/btf` when the base is the running kernel's.
fn module_btf() -> Option<String> {
    if let Ok(path) = std::env::var("RPROBE_BTF_MODULE") {
        return Some(path);
    }
    if std::env::var_os("RPROBE_BTF").is_some() {
        return None;
    }
    let mut mods: Vec<String> = std::fs::read_dir("/sys/kernel/btf")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().display().to_string())
        .filter(|p| !p.ends_with("/vmlinux"))
        .collect();
    mods.sort();
    mods.into_iter().next()
}

/// Every named struct a module defines, on top of the base BTF, against
/// `pahole --btf_base BASE -C NAME MODULE`.
#[test]
fn module_struct_layouts_match_pahole() {
    let Some(base) = setup("module_struct_layouts_match_pahole", "pahole") else {
        return;
    };
    let Some(module) = module_btf() else {
        // Not a missing privilege: a kernel with every driver built in has no module BTF, so
        // this skip does not fail CI.
        println!(
            "SKIP btf_pahole::module_struct_layouts_match_pahole: no module BTF under \
             /sys/kernel/btf (set RPROBE_BTF_MODULE=path.ko)"
        );
        return;
    };
    let btf = Btf::load_split(&module, &base).expect("parse module BTF");
    let (mut diffs, mut checked, mut structs) = (Vec::new(), 0, 0);
    let base_file = vmlinux();
    for id in btf.first_own_id()..=btf.last_id() {
        let ty = TypeId(u64::from(id));
        let name = btf.name(ty).unwrap_or("").to_string();
        if name.is_empty() || btf.kind(ty).unwrap() != Some(Kind::Struct) {
            continue;
        }
        let same_name = btf
            .find_named(&name)
            .filter(|&t| btf.kind(t).unwrap() == Some(Kind::Struct));
        if same_name.count() > 1 {
            // pahole -C shows the base's, or the first of the module's.
            continue;
        }
        let args = ["--btf_base", &base_file, &module];
        checked += compare_with_pahole(&btf, ty, &name, &args, &mut diffs);
        structs += 1;
    }
    println!("compared {checked} members of {structs} structs of {module} with pahole");
    assert!(
        diffs.is_empty(),
        "BTF and pahole disagree:\n{}",
        diffs.join("\n")
    );
}

/// Collapse the spacing pfunct puts around `*` and between words, so `const char  * buf` and
/// `const char *buf` compare equal.
fn normalize(s: &str) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    words.join(" ").replace(" *", "*").replace("* ", "*")
}

/// What pfunct 1.24 loses: it prints a const pointer `X *const p` as `const X *p` (and
/// `const X *const p` as `const const X *p`), and a pointer to an array `T (*p)[N]` as `T *p`.
/// For prototypes that differ only there: both without `const`, pointers to arrays as pointers.
fn without_pfunct_losses(s: &str) -> String {
    let s = normalize(s);
    let mut out = String::new();
    let mut rest = s.as_str();
    // `(*name)[N]` → `*name`
    while let Some(at) = rest.find("(*") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match (after.find(")["), after.find(']')) {
            (Some(close), Some(end)) if close < end && !after[..close].contains('(') => {
                out.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("(*");
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
    let words: Vec<String> = tokenize(&out)
        .into_iter()
        .filter(|t| t != "const")
        .collect();
    normalize(&words.join(" "))
}

/// Identifiers and single punctuation characters.
fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Our prototype of FUNC `id`, laid out as pfunct's:
/// `ssize_t vfs_read(struct file *file, char *buf, size_t count, loff_t *pos);`.
fn our_prototype(btf: &Btf, id: TypeId) -> Option<String> {
    let name = btf.name(id).ok()?;
    let f = btf.func_proto(id).ok()?;
    let ret = f
        .ret
        .map(|r| btf.type_name(r))
        .unwrap_or_else(|| "void".into());
    let params: Vec<String> = f
        .params
        .iter()
        .map(|p| btf.declaration(p.ty, &p.name))
        .collect();
    let params = if params.is_empty() {
        "void".to_string()
    } else {
        params.join(", ")
    };
    Some(format!("{ret} {name}({params});"))
}

#[test]
fn vfs_read_prototype() {
    let Some(btf) = setup("vfs_read_prototype", "pahole") else {
        return;
    };
    let f = btf.function("vfs_read").expect("vfs_read");
    let got: Vec<(String, String)> = f
        .params
        .iter()
        .map(|p| (p.name.clone(), btf.type_name(p.ty)))
        .collect();
    let want = [
        ("file", "struct file *"),
        ("buf", "char *"),
        ("count", "size_t"),
        ("pos", "loff_t *"),
    ]
    .map(|(n, t)| (n.to_string(), t.to_string()));
    assert_eq!(got, want);
    assert_eq!(f.ret.map(|r| btf.type_name(r)).as_deref(), Some("ssize_t"));
}

/// Functions kprobes are commonly put on, always compared.
const FUNCTIONS: &[&str] = &[
    "vfs_read",
    "vfs_write",
    "vfs_open",
    "do_sys_openat2",
    "do_filp_open",
    "ksys_read",
    "tcp_sendmsg",
    "tcp_recvmsg",
    "tcp_v4_connect",
    "udp_sendmsg",
    "inet_sendmsg",
    "security_file_open",
    "kernel_clone",
    "wake_up_process",
    "do_exit",
    "filp_close",
    "do_unlinkat",
    "schedule",
];

/// pfunct's prototypes: of [`FUNCTIONS`] and of every 100th function taking a pointer to one of
/// [`STRUCTS`] (`pfunct -c`), or of all functions when `RPROBE_PFUNCT_ALL` is set (pfunct
/// takes 15 s for that; 50 ms a function otherwise, run on 4 threads).
fn pfunct_prototypes() -> Vec<String> {
    let pfunct = |args: &[&str]| {
        let out = Command::new("pfunct")
            .args(["-F", "btf"])
            .args(args)
            .arg(vmlinux())
            .output()
            .expect("run pfunct");
        assert!(out.status.success(), "pfunct {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    if std::env::var_os("RPROBE_PFUNCT_ALL").is_some() {
        return pfunct(&["--prototypes"])
            .lines()
            .map(str::to_string)
            .collect();
    }
    let mut names = std::collections::BTreeSet::new();
    for class in STRUCTS {
        names.extend(pfunct(&["-c", class]).lines().map(str::to_string));
    }
    let mut names: Vec<String> = names.into_iter().step_by(100).collect();
    names.extend(FUNCTIONS.iter().map(|f| f.to_string()));
    let chunks: Vec<&[String]> = names.chunks(names.len().div_ceil(4)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .flat_map(|name| {
                            pfunct(&["--prototypes", "-f", name])
                                .lines()
                                .map(str::to_string)
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("pfunct thread"))
            .collect()
    })
}

#[test]
fn prototypes_match_pfunct() {
    let Some(btf) = setup("prototypes_match_pfunct", "pfunct") else {
        return;
    };
    let lines = pfunct_prototypes();
    let mut diffs = Vec::new();
    let (mut checked, mut lossy, mut unprintable) = (0, 0, 0);
    for line in &lines {
        let line = line.as_str();
        if !line.ends_with(");") {
            continue;
        }
        let Some(open) = line.find('(') else { continue };
        let head = &line[..open];
        let name = head
            .rsplit(|c: char| c.is_whitespace() || c == '*')
            .next()
            .unwrap_or("");
        if line.contains("...") {
            // Our FuncProto drops the varargs marker.
            continue;
        }
        if line.contains("<ERROR") || line.contains("()(") {
            // pfunct 1.24 cannot print TYPE_TAG (kind 18, `<ERROR…: N not found!>`) nor a
            // pointer to a function pointer (`int ()(T *) * const * op`).
            unprintable += 1;
            continue;
        }
        // Static functions may share a name (more so in BTF from pahole before 1.25): any of
        // them may be the one pfunct printed.
        let ours: Vec<String> = btf
            .find_funcs(name)
            .into_iter()
            .filter_map(|id| our_prototype(&btf, id))
            .collect();
        if ours.is_empty() {
            diffs.push(format!("{name}: in pfunct, not found in BTF"));
            continue;
        }
        checked += 1;
        if ours.iter().any(|o| normalize(o) == normalize(line)) {
            continue;
        }
        let pfunct_loss = |o: &String| o.contains("*const") || o.contains("(*");
        if ours
            .iter()
            .any(|o| pfunct_loss(o) && without_pfunct_losses(o) == without_pfunct_losses(line))
        {
            lossy += 1;
            continue;
        }
        let ours = ours.join("\n        ");
        diffs.push(format!("pfunct: {line}\nrprobe: {ours}"));
    }
    println!(
        "compared {checked} prototypes with pfunct ({lossy} equal up to const pointers and \
         pointers to arrays, which pfunct does not print; {unprintable} pfunct could not print)"
    );
    assert!(checked > 50, "only {checked} prototypes parsed from pfunct");
    assert!(
        diffs.is_empty(),
        "{} prototypes differ:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
