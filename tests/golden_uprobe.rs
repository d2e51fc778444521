//! Golden comparison of `rprobe add -x BIN --dry-run SPEC` with the line `perf probe -x BIN SPEC`
//! makes the kernel show in `uprobe_events`, over the fixture programs, libc and bash.
//!
//! Each case runs perf for real (root, tracefs, perf), reads the new definition back from
//! `uprobe_events` (the kernel's normalised form: `r:` for returns, `0x%016x` offsets, `argN` for
//! unnamed args), deletes it with `perf probe -d`, then asks rprobe for its dry-run line and
//! compares byte for byte. perf names events by default (`probe_<exe>:<func>`), so a case first
//! checks that no event of that name exists: it never deletes an event it did not create.
//! rprobe's `arg1..arg6` (no debuginfo) have no perf spelling, so those cases give perf the
//! register form (`arg1=%di`).

mod common;

use common::{
    fixtures, live_or_skip, show_cmd, show_output, tracefs_lock, EventGuard, Needs, Snapshot, BASH,
    LIBC,
};
use std::path::{Path, PathBuf};

/// The binary a case probes.
#[derive(Clone, Copy, Debug)]
enum Bin {
    /// `O0/probe_args`: -O0, no debuginfo, PIE.
    O0,
    /// `O2/probe_args`.
    O2,
    /// `nopie/probe_args`.
    NoPie,
    /// `debug/probe_args` (-O0 -g).
    Debug,
    /// `link/args_link` -> `../O0/probe_args`.
    Link,
    /// `O0/probe_args` as a path relative to the current directory.
    Relative,
    /// `lib/libprobe.so`.
    Lib,
    /// `lib-stripped/libprobe.so`: `.dynsym` only.
    LibStripped,
    /// `lib/probe_lib`, linked against libprobe.so.
    LibMain,
    /// glibc, through the `/lib` symlink.
    Libc,
    /// glibc, but the case's answer from perf depends on libc's debuginfo (see [`run`]).
    LibcNeedsDebuginfo,
    /// `/bin/bash` (-> `/usr/bin/bash`).
    Bash,
}

impl Bin {
    fn path(self) -> PathBuf {
        let fx = fixtures();
        match self {
            Bin::O0 => fx.o0.clone(),
            Bin::O2 => fx.o2.clone(),
            Bin::NoPie => fx.nopie.clone(),
            Bin::Debug => fx.debug.clone(),
            Bin::Link => fx.link.clone(),
            Bin::Relative => relative_to_cwd(&fx.o0),
            Bin::Lib => fx.lib.clone(),
            Bin::LibStripped => fx.lib_stripped.clone(),
            Bin::LibMain => fx.lib_main.clone(),
            Bin::Libc | Bin::LibcNeedsDebuginfo => PathBuf::from(LIBC),
            Bin::Bash => PathBuf::from(BASH),
        }
    }
}

/// `path` relative to the current directory (`../` where needed).
fn relative_to_cwd(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().expect("current dir");
    let cwd: Vec<_> = cwd.components().collect();
    let target: Vec<_> = path.components().collect();
    let common = cwd.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..cwd.len() {
        rel.push("..");
    }
    for c in &target[common..] {
        rel.push(c);
    }
    rel
}

/// Where perf finds libc's DWARF (`libc6-dbg`), by build-id.
fn libc_debuginfo() -> Option<PathBuf> {
    let out = std::process::Command::new("readelf")
        .args(["-n", LIBC])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))?;
    let (head, tail) = (id.get(..2)?, id.get(2..)?);
    let path = PathBuf::from(format!("/usr/lib/debug/.build-id/{head}/{tail}.debug"));
    path.exists().then_some(path)
}

/// Same spec for perf and rprobe.
fn same(test: &str, bin: Bin, spec: &str, event: &str) {
    run(test, bin, spec, spec, event);
}

/// Runs one case. `event` is the `GROUP:EVENT` perf must create; `{G}` in the specs and in
/// `event` stands for this test's private group.
fn run(test: &str, bin: Bin, perf_spec: &str, rprobe_spec: &str, event: &str) {
    let test = format!("golden_uprobe::{test}");
    if !live_or_skip(&test, Needs::TracefsAndPerf) {
        return;
    }
    if matches!(bin, Bin::LibcNeedsDebuginfo) && libc_debuginfo().is_none() {
        // Without libc's DWARF perf falls back to the symbol table and answers differently:
        // every versioned definition of a name becomes a probe point, and IFUNC-only names
        // (strlen) are refused. The expected lines here are perf's answer with debuginfo.
        common::skip(
            &test,
            "perf's answer needs libc debuginfo (Debian: apt-get install libc6-dbg)",
        );
        return;
    }
    let _lock = tracefs_lock();
    let fx = fixtures();
    let bin_path = bin.path();
    let bin_arg = bin_path.to_string_lossy().into_owned();
    let grp = common::group(test.rsplit("::").next().unwrap_or("golden"));
    let perf_spec = perf_spec.replace("{G}", &grp);
    let rprobe_spec = rprobe_spec.replace("{G}", &grp);
    let event = event.replace("{G}", &grp);
    let (group, name) = event.split_once(':').expect("event is GROUP:EVENT");

    let before = Snapshot::take();
    let mut guard = EventGuard::with_perf(&fx.perf_home);
    guard.expect_new(group, name);

    let perf_args = ["probe", "-x", bin_arg.as_str(), perf_spec.as_str()];
    let perf_out = common::perf(&fx.perf_home)
        .args(perf_args)
        .output()
        .unwrap_or_else(|e| panic!("{test}: run perf: {e}"));
    let perf_cmd = show_cmd("perf", &perf_args);
    assert!(
        perf_out.status.success(),
        "{test}: `{perf_cmd}` failed; the case is wrong or perf changed\n{}",
        show_output(&perf_out)
    );
    let added = String::from_utf8_lossy(&perf_out.stderr).into_owned()
        + &String::from_utf8_lossy(&perf_out.stdout);
    let after_add = common::uprobe_events();
    let new_lines: Vec<&str> = after_add
        .lines()
        .filter(|l| !before.events.iter().any(|b| b == l))
        .filter(|l| common::line_event(l) == Some((group, name)))
        .collect();
    assert!(
        !new_lines.is_empty(),
        "{test}: `{perf_cmd}` did not create {event}; perf said:\n{added}\nuprobe_events:\n{after_add}"
    );
    let expected: String = new_lines.iter().map(|l| format!("{l}\n")).collect();
    // Printed so that `cargo test -- --nocapture` collects perf's lines.
    println!("{test}: {perf_cmd}\n{expected}");
    let deleted = guard.delete_all();
    assert_eq!(
        deleted,
        [format!("{group}:{name}")],
        "{test}: perf probe -d"
    );

    let rprobe_args = [
        "add",
        "-x",
        bin_arg.as_str(),
        "--dry-run",
        rprobe_spec.as_str(),
    ];
    let out = common::rprobe(&rprobe_args);
    let rprobe_cmd = show_cmd("rprobe", &rprobe_args);
    let got = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && got == expected,
        "{test}: rprobe's dry-run line differs from the kernel's read-back of perf's probe\n  \
         case:   {rprobe_cmd}\n  perf:   {perf_cmd}\n  \
         kernel: {}\n  rprobe: {}\n{}",
        expected.trim_end(),
        got.trim_end(),
        show_output(&out)
    );
    before.assert_restored(&test, &|line| {
        common::line_event(line).is_some_and(|(g, e)| (g, e) == (group, name) || g == grp)
    });
}

// --- probe_args at -O0, PIE, no debuginfo ------------------------------------------------------

#[test]
fn o0_entry() {
    same("o0_entry", Bin::O0, "work", "probe_probe_args:work");
}

#[test]
fn o0_entry_named_typed_args() {
    same(
        "o0_entry_named_typed_args",
        Bin::O0,
        "work id=%di:s32 len=%si:s64 name=+0(%dx):string",
        "probe_probe_args:work",
    );
}

#[test]
fn o0_entry_untyped_register() {
    // Read back as `arg1=%di`: no type is shown for a type-less arg (x64 is implied).
    same(
        "o0_entry_untyped_register",
        Bin::O0,
        "work %di",
        "probe_probe_args:work",
    );
}

#[test]
fn o0_entry_explicit_x64_and_renamed_s32() {
    same(
        "o0_entry_explicit_x64_and_renamed_s32",
        Bin::O0,
        "work %di:x64 x=%si:s32",
        "probe_probe_args:work",
    );
}

#[test]
fn o0_offset() {
    // perf names `FUNC+OFFS` probes after FUNC alone.
    same("o0_offset", Bin::O0, "work+4", "probe_probe_args:work");
}

#[test]
fn o0_offset_with_arg() {
    same(
        "o0_offset_with_arg",
        Bin::O0,
        "work+4 %di:s32",
        "probe_probe_args:work",
    );
}

#[test]
fn o0_return() {
    same(
        "o0_return",
        Bin::O0,
        "work%return",
        "probe_probe_args:work__return",
    );
}

#[test]
fn o0_return_retval_untyped() {
    same(
        "o0_return_retval_untyped",
        Bin::O0,
        "work%return $retval",
        "probe_probe_args:work__return",
    );
}

#[test]
fn o0_return_retval_named_s64() {
    same(
        "o0_return_retval_named_s64",
        Bin::O0,
        "work%return ret=$retval:s64",
        "probe_probe_args:work__return",
    );
}

#[test]
fn o0_return_retval_string() {
    same(
        "o0_return_retval_string",
        Bin::O0,
        "greeting%return +0($retval):string",
        "probe_probe_args:greeting__return",
    );
}

#[test]
fn o0_struct_derefs() {
    same(
        "o0_struct_derefs",
        Bin::O0,
        "point_sum +8(%di):u64 y=+8(%di):s64 label=+0(+16(%di)):string",
        "probe_probe_args:point_sum",
    );
}

#[test]
fn o0_stack_args() {
    same(
        "o0_stack_args",
        Bin::O0,
        "add8 $stack1 h=$stack2:s64 sp=$stack",
        "probe_probe_args:add8",
    );
}

#[test]
fn o0_comm() {
    same(
        "o0_comm",
        Bin::O0,
        "work $comm c=$comm:string",
        "probe_probe_args:work",
    );
}

#[test]
fn o0_immediates() {
    same(
        "o0_immediates",
        Bin::O0,
        r#"work \123 k=\0x7b:x32 s=\"hi":string"#,
        "probe_probe_args:work",
    );
}

#[test]
fn o0_user_string_and_user_deref() {
    same(
        "o0_user_string_and_user_deref",
        Bin::O0,
        "point_sum +0(+16(%di)):ustring +u8(%di):s64",
        "probe_probe_args:point_sum",
    );
}

#[test]
fn o0_file_offset_fetch() {
    same(
        "o0_file_offset_fetch",
        Bin::O0,
        "work @+0x3010:u64",
        "probe_probe_args:work",
    );
}

#[test]
fn o0_array_bitfield_char() {
    same(
        "o0_array_bitfield_char",
        Bin::O0,
        "point_sum +0(%di):x8[4] +0(%di):b3@2/32 +0(+16(%di)):char",
        "probe_probe_args:point_sum",
    );
}

#[test]
fn o0_more_registers() {
    same(
        "o0_more_registers",
        Bin::O0,
        "work %ip %sp %ax %bx %bp %r12 %flags",
        "probe_probe_args:work",
    );
}

#[test]
fn o0_explicit_group_and_event() {
    same(
        "o0_explicit_group_and_event",
        Bin::O0,
        "{G}:myev=work id=%di:s32",
        "{G}:myev",
    );
}

#[test]
fn o0_explicit_names_return() {
    // perf appends `__return` to a return probe's event name even when the name is given.
    same(
        "o0_explicit_names_return",
        Bin::O0,
        "{G}:myret=work%return $retval",
        "{G}:myret__return",
    );
}

#[test]
fn o0_explicit_event() {
    same(
        "o0_explicit_event",
        Bin::O0,
        "myev=work %di",
        "probe_probe_args:myev",
    );
}

#[test]
fn o0_arg1_to_arg6() {
    run(
        "o0_arg1_to_arg6",
        Bin::O0,
        "add6 arg1=%di arg2=%si arg3=%dx arg4=%cx arg5=%r8 arg6=%r9",
        "add6 arg1 arg2 arg3 arg4 arg5 arg6",
        "probe_probe_args:add6",
    );
}

// --- other builds of probe_args ----------------------------------------------------------------

#[test]
fn o2_entry() {
    same("o2_entry", Bin::O2, "work", "probe_probe_args:work");
}

#[test]
fn o2_return_s32() {
    same(
        "o2_return_s32",
        Bin::O2,
        "answer%return $retval:s32",
        "probe_probe_args:answer__return",
    );
}

#[test]
fn nopie_entry() {
    // Offsets are file offsets: vaddr 0x401136 in the PT_LOAD at 0x400000 is 0x1136.
    same("nopie_entry", Bin::NoPie, "work", "probe_probe_args:work");
}

#[test]
fn nopie_arg1_arg2() {
    run(
        "nopie_arg1_arg2",
        Bin::NoPie,
        "add6 arg1=%di arg2=%si",
        "add6 arg1 arg2",
        "probe_probe_args:add6",
    );
}

#[test]
fn nopie_return() {
    same(
        "nopie_return",
        Bin::NoPie,
        "point_sum%return $retval:s64",
        "probe_probe_args:point_sum__return",
    );
}

#[test]
fn debuginfo_entry_raw_arg() {
    // With DWARF but no C variable perf keeps the entry address (no prologue skip).
    same(
        "debuginfo_entry_raw_arg",
        Bin::Debug,
        "work %di:s32",
        "probe_probe_args:work",
    );
}

#[test]
fn symlinked_fixture() {
    // perf resolves the link: the path and the group come from the target's name.
    same(
        "symlinked_fixture",
        Bin::Link,
        "answer",
        "probe_probe_args:answer",
    );
}

#[test]
fn relative_path() {
    same(
        "relative_path",
        Bin::Relative,
        "greeting",
        "probe_probe_args:greeting",
    );
}

// --- shared library ----------------------------------------------------------------------------

#[test]
fn lib_entry() {
    same(
        "lib_entry",
        Bin::Lib,
        "lib_compute a=%di:s32 b=%si:s64",
        "probe_libprobe:lib_compute",
    );
}

#[test]
fn lib_return_string() {
    same(
        "lib_return_string",
        Bin::Lib,
        "lib_label%return +0($retval):string",
        "probe_libprobe:lib_label__return",
    );
}

#[test]
fn lib_stripped_dynsym() {
    same(
        "lib_stripped_dynsym",
        Bin::LibStripped,
        "lib_compute %di",
        "probe_libprobe:lib_compute",
    );
}

#[test]
fn lib_main_entry() {
    same(
        "lib_main_entry",
        Bin::LibMain,
        "main",
        "probe_probe_lib:main",
    );
}

// --- glibc and bash ----------------------------------------------------------------------------

#[test]
fn libc_malloc_size() {
    // malloc is `malloc@@GLIBC_2.2.5` in .dynsym; the event name drops the version.
    same(
        "libc_malloc_size",
        Bin::Libc,
        "malloc size=%di:u64",
        "probe_libc:malloc",
    );
}

#[test]
fn libc_malloc_return() {
    same(
        "libc_malloc_return",
        Bin::Libc,
        "malloc%return $retval:x64",
        "probe_libc:malloc__return",
    );
}

#[test]
fn libc_malloc_offset() {
    same(
        "libc_malloc_offset",
        Bin::Libc,
        "malloc+4 %di",
        "probe_libc:malloc",
    );
}

#[test]
fn libc_free() {
    same("libc_free", Bin::Libc, "free %di", "probe_libc:free");
}

#[test]
fn libc_puts_string() {
    same(
        "libc_puts_string",
        Bin::Libc,
        "puts +0(%di):string",
        "probe_libc:puts",
    );
}

#[test]
fn libc_getenv_return_string() {
    same(
        "libc_getenv_return_string",
        Bin::Libc,
        "getenv%return +0($retval):string",
        "probe_libc:getenv__return",
    );
}

#[test]
fn libc_strlen_ifunc() {
    // strlen@@GLIBC_2.2.5 is an IFUNC: perf (with libc debuginfo) warns and probes the resolver.
    same(
        "libc_strlen_ifunc",
        Bin::LibcNeedsDebuginfo,
        "strlen",
        "probe_libc:strlen",
    );
}

#[test]
fn libc_memcpy_default_version() {
    // memcpy@GLIBC_2.2.5 (FUNC) and memcpy@@GLIBC_2.14 (IFUNC): the default version wins.
    same(
        "libc_memcpy_default_version",
        Bin::LibcNeedsDebuginfo,
        "memcpy",
        "probe_libc:memcpy",
    );
}

#[test]
fn libc_pthread_cond_init_default_version() {
    // pthread_cond_init@GLIBC_2.2.5 and @@GLIBC_2.3.2 are different functions: one probe, on
    // the default version.
    same(
        "libc_pthread_cond_init_default_version",
        Bin::LibcNeedsDebuginfo,
        "pthread_cond_init",
        "probe_libc:pthread_cond_init",
    );
}

#[test]
fn bash_readline_return_string() {
    same(
        "bash_readline_return_string",
        Bin::Bash,
        "readline%return +0($retval):string",
        "probe_bash:readline__return",
    );
}
