//! The `rprobe` command line against a tracefs-shaped temporary tree (`RPROBE_TRACEFS`): what
//! `add` computes and writes, its errors, and `--help`, with no kernel involved. The offsets
//! rprobe computes are checked against binutils' `readelf` on the same fixture binaries.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary tree with the real 6.18 README and empty probe-event files.
fn fake_tracefs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tracefs/README");
    std::fs::copy(readme, dir.path().join("README")).expect("copy README");
    std::fs::write(dir.path().join("uprobe_events"), "").expect("uprobe_events");
    std::fs::create_dir(dir.path().join("events")).expect("events/");
    dir
}

fn rprobe(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rprobe"))
        .args(args)
        .env("RPROBE_TRACEFS", root)
        .output()
        .expect("run rprobe")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// File offset of a function according to `readelf -sW` and `readelf -lW`.
fn readelf_offset(bin: &Path, func: &str) -> u64 {
    let run = |flag: &str| {
        let o = Command::new("readelf")
            .arg(flag)
            .arg(bin)
            .output()
            .expect("readelf");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let syms = run("-sW");
    let value = syms
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[3] == "FUNC" && f[7].split('@').next() == Some(func))
                .then(|| u64::from_str_radix(f[1], 16).expect("symbol value"))
        })
        .unwrap_or_else(|| panic!("readelf finds no {func} in {}", bin.display()));
    let phdrs = run("-lW");
    for l in phdrs.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first() != Some(&"LOAD") {
            continue;
        }
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
        let (off, vaddr, filesz) = (hex(f[1]), hex(f[2]), hex(f[4]));
        if value >= vaddr && value < vaddr + filesz {
            return value - vaddr + off;
        }
    }
    panic!("{func} is in no PT_LOAD of {}", bin.display());
}

fn real(p: &Path) -> String {
    std::fs::canonicalize(p)
        .expect("canonicalize")
        .display()
        .to_string()
}

#[test]
fn dry_run_lines_match_readelf_offsets() {
    let fx = common::fixtures();
    let t = fake_tracefs();
    let cases: Vec<(&PathBuf, &str, String)> = vec![
        (
            &fx.o0,
            "work id=%di:s32 name=+0(%dx):string",
            "p:probe_probe_args/work {P}:{O} id=%di:s32 name=+0(%dx):string".into(),
        ),
        (
            &fx.o0,
            "work%return $retval",
            "r:probe_probe_args/work__return {P}:{O} arg1=$retval".into(),
        ),
        (
            &fx.o2,
            "answer%return r=$retval:s32",
            "r:probe_probe_args/answer__return {P}:{O} r=$retval:s32".into(),
        ),
        (
            &fx.nopie,
            "add6 arg1 arg2 arg6:s64",
            "p:probe_probe_args/add6 {P}:{O} arg1=%di arg2=%si arg6_s64=%r9:s64".into(),
        ),
        (
            &fx.link,
            "greeting%return +0($retval):string",
            "r:probe_probe_args/greeting__return {P}:{O} arg1=+0($retval):string".into(),
        ),
        (
            &fx.lib_stripped,
            "lib_compute a=%di:s32",
            "p:probe_libprobe/lib_compute {P}:{O} a=%di:s32".into(),
        ),
        (
            &fx.o0,
            "g1:e1=point_sum y=+8(%di):s64 $comm",
            "p:g1/e1 {P}:{O} y=+8(%di):s64 arg2=$comm".into(),
        ),
    ];
    for (bin, spec, want) in cases {
        let func = spec.split([' ', '%', '+']).next().unwrap_or_default();
        let func = func.rsplit('=').next().unwrap_or(func);
        let off = readelf_offset(bin, func);
        let want = want
            .replace("{P}", &real(bin))
            .replace("{O}", &format!("0x{off:016x}"));
        let o = rprobe(
            t.path(),
            &["add", "-n", "-x", &bin.display().to_string(), spec],
        );
        assert!(o.status.success(), "{spec}: {}", stderr(&o));
        assert_eq!(
            stdout(&o),
            format!("{want}\n"),
            "spec {spec} on {}",
            bin.display()
        );
    }
    // +OFFS adds to the function's file offset.
    let off = readelf_offset(&fx.o0, "work");
    let o = rprobe(
        t.path(),
        &["add", "-n", "-x", &fx.o0.display().to_string(), "work+4"],
    );
    assert_eq!(
        stdout(&o),
        format!(
            "p:probe_probe_args/work {}:0x{:016x}\n",
            real(&fx.o0),
            off + 4
        )
    );
}

#[test]
fn add_writes_exactly_the_dry_run_lines_all_or_none() {
    let fx = common::fixtures();
    let t = fake_tracefs();
    let bin = fx.o0.display().to_string();
    let dry = rprobe(
        t.path(),
        &[
            "add",
            "-n",
            "-x",
            &bin,
            "work %di",
            "-a",
            "answer%return $retval",
        ],
    );
    assert!(dry.status.success(), "{}", stderr(&dry));
    let o = rprobe(
        t.path(),
        &["add", "-x", &bin, "work %di", "-a", "answer%return $retval"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let written = std::fs::read_to_string(t.path().join("uprobe_events")).expect("read");
    assert_eq!(written, stdout(&dry));
    let out = stdout(&o);
    assert!(
        out.starts_with("Added new events:\n  probe_probe_args:work (on work in "),
        "{out}"
    );
    assert!(out.contains("(on answer%return in "), "{out}");
    assert!(
        out.contains("perf record -e probe_probe_args:answer__return -aR sleep 1"),
        "{out}"
    );

    // The names are taken now: a second add refuses, -f adds _1.
    let again = rprobe(t.path(), &["add", "-x", &bin, "work"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("probe_probe_args:work already exists"),
        "{}",
        stderr(&again)
    );
    let forced = rprobe(t.path(), &["add", "-n", "-f", "-x", &bin, "work"]);
    assert!(
        stdout(&forced).starts_with("p:probe_probe_args/work_1 "),
        "{}",
        stdout(&forced)
    );

    // One bad spec among good ones: nothing is written.
    let before = std::fs::read_to_string(t.path().join("uprobe_events")).expect("read");
    let bad = rprobe(
        t.path(),
        &["add", "-x", &bin, "g:a=add6 %di", "-a", "g:b=add6 %rdi"],
    );
    assert!(!bad.status.success());
    assert_eq!(
        std::fs::read_to_string(t.path().join("uprobe_events")).expect("read"),
        before
    );
}

#[test]
fn bad_input_is_one_line_and_leaves_the_tree_alone() {
    let fx = common::fixtures();
    let t = fake_tracefs();
    let bin = fx.o0.display().to_string();
    let stripped = fx.stripped.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["add", "-x", &bin, "work\np:evil/x /bin/true:0x1"],
            "control character '\\n' in probe spec at column 5",
        ),
        (vec!["add", "-x", &bin, "wrok"], "no function 'wrok'"),
        (
            vec!["add", "-x", &bin, "work x=%rdi"],
            "unknown register %rdi at column 8: tracefs names it %di",
        ),
        (
            vec!["add", "-x", &bin, "work +0(%di):strin"],
            "unknown type 'strin' at column 14",
        ),
        (
            vec!["add", "-x", "/no/such/binary", "work"],
            "no such file: /no/such/binary",
        ),
        (
            vec!["add", "-x", &stripped, "work"],
            "the binary is stripped",
        ),
        (
            vec!["add", "-x", &bin, "work $retval"],
            "$retval exists only in return probes",
        ),
        (
            vec!["add", "-x", &bin, "work %di:string"],
            "a string needs a memory fetch",
        ),
        (
            vec!["add", "-x", &bin, "work+100000"],
            "beyond the end of work",
        ),
        (
            vec![
                "add",
                "-x",
                &bin,
                &"work a=+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(%di))))))))))))))))",
            ],
            "characters long",
        ),
        (
            vec!["add", "-x", &bin, "work 1a=%di"],
            "'1a' is not a valid argument name",
        ),
        (vec!["add", "-x", &bin], "no probe spec given"),
    ];
    for (args, needle) in cases {
        let o = rprobe(t.path(), &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: wanted {needle:?} in {err:?}"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {err:?}"
        );
        assert!(err.starts_with("rprobe: "), "{err}");
        let events = std::fs::read_to_string(t.path().join("uprobe_events")).expect("read");
        assert_eq!(events, "", "{args:?} wrote something");
    }
}

#[test]
fn kprobes_dry_run_without_kprobe_events() {
    // The README of a kernel without kprobes: --dry-run still prints, a real add says why not.
    let t = fake_tracefs();
    let o = rprobe(
        t.path(),
        &[
            "add",
            "-n",
            "probe:do_sys=do_sys_openat2 dfd=%di:s32 filename=+0(%si):string",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o)
            .starts_with("p:probe/do_sys do_sys_openat2+0 dfd=%di:s32 filename=+0(%si):string"),
        "{}",
        stdout(&o)
    );
    let o = rprobe(t.path(), &["add", "do_sys_openat2"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no kprobe_events (built without CONFIG_KPROBE_EVENTS)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_explains_itself_with_examples() {
    let t = fake_tracefs();
    let top = rprobe(t.path(), &["--help"]);
    assert!(stdout(&top).contains("Examples:"), "{}", stdout(&top));
    for cmd in ["add", "list", "del", "funcs", "doctor", "stat"] {
        let o = rprobe(t.path(), &[cmd, "--help"]);
        assert!(o.status.success(), "{cmd}");
        let text = stdout(&o);
        assert!(
            text.contains("Examples:") && text.contains(&format!("rprobe {cmd}")),
            "{cmd}: {text}"
        );
    }
}

#[test]
fn funcs_lists_the_symbol_table() {
    let fx = common::fixtures();
    let t = fake_tracefs();
    let o = rprobe(t.path(), &["funcs", "-x", &fx.o0.display().to_string()]);
    let names: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    for f in [
        "add6",
        "add8",
        "answer",
        "greeting",
        "main",
        "point_sum",
        "work",
    ] {
        assert!(names.iter().any(|n| n == f), "{f} missing from {names:?}");
    }
    assert!(names.iter().all(|n| !n.starts_with('_')), "{names:?}");
    let o = rprobe(
        t.path(),
        &["funcs", "-x", &fx.o0.display().to_string(), "add*"],
    );
    assert_eq!(stdout(&o), "add6\nadd8\n");
}

/// Byte offset of `member` in `struct name` according to pahole (reading the running
/// kernel's BTF): the first `/* OFFSET SIZE */` comment on the member's line.
fn pahole_offset(name: &str, member: &str) -> u64 {
    let o = Command::new("pahole")
        .args(["-C", name])
        .output()
        .expect("run pahole");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.lines()
        .find_map(|l| {
            let (decl, comment) = l.split_once("/*")?;
            let decl = decl.trim_end().trim_end_matches(';');
            let ident = decl
                .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()?;
            (ident == member).then(|| {
                comment
                    .split_whitespace()
                    .next()?
                    .trim_end_matches(':')
                    .parse()
                    .ok()
            })?
        })
        .unwrap_or_else(|| panic!("pahole shows no {member} in struct {name}:\n{text}"))
}

#[test]
fn kernel_field_chains_from_btf_agree_with_pahole() {
    if !Path::new("/sys/kernel/btf/vmlinux").exists()
        || Command::new("pahole").arg("--version").output().is_err()
    {
        let why = "SKIP cli_offline::kernel_field_chains_from_btf_agree_with_pahole: no kernel BTF or no pahole";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        println!("{why}");
        return;
    }
    let t = fake_tracefs();
    let f_path = pahole_offset("file", "f_path");
    let dentry = pahole_offset("path", "dentry");
    let d_name = pahole_offset("dentry", "d_name");
    let name = pahole_offset("qstr", "name");
    let f_inode = pahole_offset("file", "f_inode");
    let i_ino = pahole_offset("inode", "i_ino");
    let o = rprobe(
        t.path(),
        &[
            "add",
            "-n",
            "vfs_read file->f_path.dentry->d_name.name:string count",
            "-a",
            "vfs_write file->f_inode->i_ino",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "p:probe/vfs_read vfs_read+0 name=+0(+{}(+{}(%di))):string count=%dx:x64\n\
             p:probe/vfs_write vfs_write+0 i_ino=+{i_ino}(+{f_inode}(%di)):x64\n",
            d_name + name,
            f_path + dentry
        )
    );
    let o = rprobe(t.path(), &["add", "-n", "vfs_read file.f_path"]);
    assert!(stderr(&o).contains("write file->f_path"), "{}", stderr(&o));
    let o = rprobe(t.path(), &["add", "-n", "vfs_read file->f_pth"]);
    assert!(
        stderr(&o).contains("struct file has no member 'f_pth'") && stderr(&o).contains("f_path"),
        "{}",
        stderr(&o)
    );
}

/// Build `fixtures/src/dwarf_probe.c` with `flags` into a temporary directory.
fn build_dwarf_fixture(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/src/dwarf_probe.c");
    let out = dir.join(name);
    let st = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success(), "gcc {flags:?} failed");
    std::fs::write(
        dir.join(format!("{name}.flags")),
        format!("gcc {}\n", flags.join(" ")),
    )
    .expect("flags file");
    out
}

/// `DW_OP_fbreg N` of each variable of `func`, from gdb's `info scope`.
fn gdb_fbreg(bin: &Path, func: &str) -> std::collections::BTreeMap<String, i64> {
    let o = Command::new("gdb")
        .args(["-batch", "-ex", &format!("info scope {func}")])
        .arg(bin)
        .output()
        .expect("run gdb");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut out = std::collections::BTreeMap::new();
    let mut current = None;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("Symbol ") {
            current = rest.split_whitespace().next().map(str::to_string);
        }
        if let (Some(v), Some(n)) = (&current, l.split("DW_OP_fbreg ").nth(1)) {
            out.insert(v.clone(), n.trim().parse().expect("fbreg offset"));
        }
    }
    out
}

/// The address gdb breaks at for `func` (perf's prologue end).
fn gdb_break_addr(bin: &Path, func: &str) -> u64 {
    let o = Command::new("gdb")
        .args(["-batch", "-ex", &format!("break {func}")])
        .arg(bin)
        .output()
        .expect("gdb");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let hex = text
        .split("at 0x")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .expect("breakpoint address");
    u64::from_str_radix(hex, 16).expect("hex")
}

fn symbol_value(bin: &Path, func: &str) -> u64 {
    let o = Command::new("nm").arg(bin).output().expect("nm");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[2] == func).then(|| u64::from_str_radix(f[0], 16).expect("hex"))
        })
        .expect("symbol")
}

#[test]
fn user_arguments_from_dwarf_agree_with_gdb() {
    if Command::new("gdb").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "gdb is missing");
        println!("SKIP cli_offline::user_arguments_from_dwarf_agree_with_gdb: no gdb");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let t = fake_tracefs();
    // -O0: variables live in the frame; perf's rule moves the probe past the prologue, to
    // where gdb breaks, and the frame base (the CFA) is %bp + 16 there.
    let o0 = build_dwarf_fixture(dir.path(), "dw_o0", &["-g", "-O0"]);
    let fb = gdb_fbreg(&o0, "work");
    let off = readelf_offset(&o0, "work") + gdb_break_addr(&o0, "work") - symbol_value(&o0, "work");
    let (h, id, name) = (fb["h"] + 16, fb["id"] + 16, fb["name"] + 16);
    let spec = "work h->p->x h->inline_pt.label:string h->arr[1] h->p->flag name:string id";
    let o = rprobe(
        t.path(),
        &["add", "-n", "-x", &o0.display().to_string(), spec],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!(
            "p:probe_dw_o0/work {}:0x{off:016x} x=+0(+0({h}(%bp))):s32 label=+0(+16({h}(%bp))):string \
             arr=+40({h}(%bp)):s64 flag=+16(+0({h}(%bp))):b3@0/32 name_string=+0({name}(%bp)):string \
             id={id}(%bp):s32\n",
            real(&o0)
        )
    );
    // `vars` lists them at the same point, with their C types.
    let skip = gdb_break_addr(&o0, "work") - symbol_value(&o0, "work");
    let o = rprobe(t.path(), &["vars", "-x", &o0.display().to_string(), "work"]);
    assert_eq!(
        stdout(&o),
        format!(
            "Available variables at work\n        @<work+{skip}>\n                struct holder *\th\n\
             \x20               int\tid\n                const char *\tname\n                long int\tlocal\n"
        ),
        "{}",
        stderr(&o)
    );
    // -O2: parameters are still in their registers at the entry, and no prologue is skipped.
    let o2 = build_dwarf_fixture(dir.path(), "dw_o2", &["-g", "-O2"]);
    let o = rprobe(
        t.path(),
        &["add", "-n", "-x", &o2.display().to_string(), "work $params"],
    );
    assert_eq!(
        stdout(&o),
        format!(
            "p:probe_dw_o2/work {}:0x{:016x} h=%di:x64 id=%si:s32 name=%dx:x64\n",
            real(&o2),
            readelf_offset(&o2, "work")
        ),
        "{}",
        stderr(&o)
    );
    for (spec, needle) in [
        (
            "work local",
            "cannot read 'local' in work: it is optimized out",
        ),
        (
            "work nosuch",
            "work has no variable 'nosuch' here; DWARF knows: h, id, name, local",
        ),
        ("work h.p", "write h->p"),
        ("work h->q", "has no member 'q'"),
    ] {
        let o = rprobe(
            t.path(),
            &["add", "-n", "-x", &o2.display().to_string(), spec],
        );
        assert!(
            !o.status.success() && stderr(&o).contains(needle),
            "{spec}: {}",
            stderr(&o)
        );
    }
}

/// A fake tree with `sched:sched_switch` (the real 6.18 format), readable by everyone.
fn stat_tracefs() -> tempfile::TempDir {
    let t = fake_tracefs();
    let dir = t.path().join("events/sched/sched_switch");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let format = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tracefs/sched_switch.format");
    std::fs::copy(format, dir.join("format")).expect("format");
    std::fs::write(dir.join("id"), "372\n").expect("id");
    use std::os::unix::fs::PermissionsExt;
    for d in [
        t.path().to_path_buf(),
        t.path().join("events"),
        t.path().join("events/sched"),
        dir,
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    t
}

#[test]
fn stat_bad_input_is_one_line_and_names_the_fix() {
    let t = stat_tracefs();
    let ev = "sched:sched_switch";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["stat", ev, "--count", "prev_comm,nope"],
            "--count nope: sched:sched_switch has no field 'nope'; its fields: prev_comm, prev_pid, prev_prio, prev_state, next_comm, next_pid, next_prio; and comm, pid, tid, stack",
        ),
        (
            vec!["stat", ev, "--hist", "prev_comm"],
            "--hist prev_comm: sched:sched_switch's prev_comm is not a number (char prev_comm[16]); histogram a numeric field (prev_pid, prev_prio, prev_state, next_pid, next_prio), or count it: --count prev_comm",
        ),
        (
            vec!["stat", ev, "--hist", "prev_pid", "--by", "nope"],
            "--by nope: sched:sched_switch has no field 'nope'",
        ),
        (
            vec!["stat", "--latency", ev],
            "--latency sched:sched_switch: unpaired; give the entry and the exit event as ENTRY,EXIT (e.g. sched:sched_wakeup,sched:sched_switch)",
        ),
        (
            vec!["stat", "--latency", "sched:sched_switch,sched:sched_switch"],
            "unpaired; give two different events",
        ),
        (
            vec!["stat", "--latency", "work%return"],
            "--latency work%return: unpaired; give ENTRY,EXIT",
        ),
        (
            vec!["stat", ev, "--by", "comm"],
            "--by KEY needs --hist FIELD",
        ),
        (
            vec!["stat", ev, "--count", "comm", "--hist", "prev_pid"],
            "give one of them",
        ),
        (vec!["stat", ev, "--bpf=maybe"], "--bpf=maybe: give --bpf"),
        (vec!["stat", ev, "--unit", "hours", "--latency", "a,b"], "--unit hours: give nsecs, usecs or msecs"),
        (vec!["stat", ev, "-i", "0"], "-i 0: give a positive number of seconds"),
        (vec!["stat", "--count", "comm"], "no event given"),
    ];
    let before = std::fs::read_to_string(t.path().join("uprobe_events")).expect("read");
    for (args, needle) in cases {
        let o = rprobe(t.path(), &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: wanted {needle:?} in {err:?}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert_eq!(
            std::fs::read_to_string(t.path().join("uprobe_events")).expect("read"),
            before
        );
    }
}

/// `--bpf` where bpf(2) is refused (an unprivileged user: kernel.unprivileged_bpf_disabled)
/// says why and what to do; `--bpf=auto` falls back with one line.
#[test]
fn stat_bpf_refused_says_why() {
    if !nix::unistd::Uid::effective().is_root() {
        common::skip(
            "cli_offline::stat_bpf_refused_says_why",
            "needs root to become nobody",
        );
        return;
    }
    let t = stat_tracefs();
    let nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_rprobe"))
            .args(args)
            .env("RPROBE_TRACEFS", t.path())
            .output()
            .expect("run setpriv")
    };
    let o = nobody(&[
        "stat",
        "sched:sched_switch",
        "--count",
        "prev_comm",
        "--bpf",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("rprobe: --bpf: bpf(")
            && err.contains("BPF needs CAP_BPF and CAP_PERFMON (or root)")
            && err.contains("the user-space engine (without --bpf) needs none of this"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // The fallback says so in one line, then goes on in user space (and fails there on
    // the fake tree's event, which is not the kernel's).
    let o = nobody(&[
        "stat",
        "sched:sched_switch",
        "--count",
        "prev_comm",
        "--bpf=auto",
    ]);
    let err = stderr(&o);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("rprobe stat: counting in user space: bpf(")
            && first.contains("BPF needs CAP_BPF"),
        "{err}"
    );
}
