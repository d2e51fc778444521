//! Golden comparison of kernel probe definitions from DWARF and BTF with perf's, on Debian's
//! 6.1 cloud kernel debug vmlinux (590 MB, DWARF 5), fetched and cached by
//! `scripts/fetch-vmlinux` (`~/.cache/rprobe-lab/vmlinux/`; `RPROBE_VMLINUX` names another).
//!
//! For every spec, `perf probe -k V -D SPEC` (offline: no kprobes needed) and
//! `rprobe add --vmlinux V --dry-run SPEC` must print the same definition. perf leaves raw
//! arguments (`$retval`) unnamed, and the kernel names the N-th unnamed argument `argN`,
//! which is the form rprobe prints (its dry run prints what the kernel will read back): so
//! perf's unnamed N-th argument is compared as `argN=`. Then the same spec through BTF
//! (`--btf V`, the vmlinux's `.BTF` section) must give the same line wherever BTF can answer
//! (at a function's entry), and refuse where it cannot.
//!
//! Bitfields, where perf 6.1 fails on DWARF 5 ("Failed to get the offset of ..."): rprobe's
//! bit offsets must agree with `pahole -F dwarf` on the same vmlinux, from DWARF and BTF.

mod common;

use common::{rprobe, show_output, skip};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What BTF can say about a spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Btf {
    /// BTF answers it, with the same line as DWARF.
    Same,
    /// BTF refuses it (variables away from the entry).
    Refuses,
    /// An inlined function: BTF knows only the out-of-line copy, perf's last line.
    OutOfLine,
    /// A source line: BTF has no line tables.
    NoLines,
}

/// The suite: specs perf 6.1 resolves from the 6.1 vmlinux's DWARF.
const SPECS: &[(&str, Btf)] = &[
    // parameters
    ("do_exit code", Btf::Same),
    ("ksys_read fd count", Btf::Same),
    ("tcp_v4_connect sk uaddr addr_len", Btf::Same),
    ("tcp_close sk timeout", Btf::Same),
    ("schedule_timeout timeout", Btf::Same),
    ("do_sys_openat2 filename:string", Btf::Same),
    ("vfs_read cnt=count buf", Btf::Same),
    ("vfs_read count:u32", Btf::Same),
    ("vfs_read $params", Btf::Same),
    ("tcp_sendmsg $params", Btf::Same),
    // -> and . chains
    (
        "vfs_read file->f_path.dentry->d_name.name:string",
        Btf::Same,
    ),
    (
        "tcp_sendmsg size dest=sk->__sk_common.skc_daddr:u32",
        Btf::Same,
    ),
    ("vfs_write file->f_inode->i_ino count", Btf::Same),
    ("do_sys_openat2 dfd how->flags how->mode", Btf::Same),
    ("do_sys_openat2 how->resolve:x64", Btf::Same),
    ("tcp_sendmsg sk->sk_sndbuf sk->sk_rcvbuf", Btf::Same),
    ("tcp_sendmsg sk->__sk_common.skc_dport", Btf::Same),
    ("tcp_sendmsg msg->msg_iter.count", Btf::Same),
    ("wake_up_new_task p->pid p->comm:string", Btf::Same),
    ("wake_up_new_task p->se.vruntime", Btf::Same),
    ("do_filp_open dfd pathname->name:string", Btf::Same),
    ("security_file_open file->f_flags", Btf::Same),
    ("kernel_clone args->flags args->exit_signal", Btf::Same),
    ("__x64_sys_openat regs->di regs->si", Btf::Same),
    ("tcp_rcv_established sk skb->len", Btf::Same),
    ("ip_rcv skb->len skb->dev->name:string", Btf::Same),
    ("ip_rcv dev->ifindex", Btf::Same),
    ("filp_close filp->f_mode", Btf::Same),
    ("vfs_unlink dentry->d_name.name:string", Btf::Same),
    ("vfs_read file->f_pos", Btf::Same),
    ("vfs_read file->f_cred->uid.val", Btf::Same),
    ("vfs_write file->f_path.mnt->mnt_flags", Btf::Same),
    ("inet_sendmsg sock->sk->__sk_common.skc_family", Btf::Same),
    // arrays: in place and through a pointer
    ("wake_up_new_task p->comm[1]", Btf::Same),
    ("ip_rcv skb->cb[0]", Btf::Same),
    ("do_filp_open pathname->name[0]", Btf::Same),
    // a function also inlined: every instance is a probe point
    ("vfs_open path->dentry->d_inode->i_mode", Btf::OutOfLine),
    // return probes
    ("vfs_read%return $retval", Btf::Same),
    ("do_sys_openat2%return $retval", Btf::Same),
    // +OFFS: locations from DWARF's location lists at that address
    ("vfs_read+4 count", Btf::Refuses),
    ("ksys_write+8 fd", Btf::Refuses),
    ("vfs_read+114 ret", Btf::Refuses),
    // FUNC:RLN: statement rows of that line (and inlined call sites on it), variables of
    // the function even inside code inlined into it
    ("vfs_read:20 ret", Btf::NoLines),
    ("ksys_read:6 file", Btf::NoLines),
    ("do_sys_openat2:8 fd", Btf::NoLines),
];

/// Bitfields perf 6.1 cannot resolve on DWARF 5: (spec, struct for pahole, members).
const BITFIELDS: &[(&str, &str, &[&str])] = &[
    (
        "tcp_sendmsg sk->sk_gso_disabled sk->sk_userlocks sk->sk_no_check_tx",
        "sock",
        &["sk_gso_disabled", "sk_userlocks", "sk_no_check_tx"],
    ),
    (
        "ip_rcv skb->pkt_type skb->cloned skb->nohdr skb->ignore_df",
        "sk_buff",
        &["pkt_type", "cloned", "nohdr", "ignore_df"],
    ),
];

/// The debug vmlinux, or why there is none.
fn vmlinux() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("RPROBE_VMLINUX") {
        return Ok(PathBuf::from(p));
    }
    let cache = std::env::var_os("RPROBE_LAB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/rprobe-lab")))
        .ok_or("no HOME")?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache.join("vmlinux"))
        .map_err(|_| "no cached vmlinux: run scripts/fetch-vmlinux".to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("vmlinux"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "no cached vmlinux: run scripts/fetch-vmlinux".to_string())
}

/// perf's definition lines for `spec`, with unnamed arguments named as the kernel names them.
/// `-D` only prints: it changes no kernel state, so it needs no lock.
fn perf_definition(v: &Path, spec: &str, home: &Path) -> Result<String, String> {
    let out = Command::new("perf")
        .args(["probe", "-k"])
        .arg(v)
        .args(["-D", spec])
        .env("HOME", home)
        .output()
        .map_err(|e| format!("run perf: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.trim().is_empty() {
        return Err(format!(
            "perf probe -D '{spec}' failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(name_unnamed)
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `r:probe/e f+0 $retval` → `r:probe/e f+0 arg1=$retval`.
fn name_unnamed(line: &str) -> String {
    let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
    for (i, w) in words.iter_mut().enumerate().skip(2) {
        if !w.contains('=') {
            *w = format!("arg{}={w}", i - 1);
        }
    }
    words.join(" ")
}

fn rprobe_definition(flag: &str, v: &Path, spec: &str) -> Result<String, String> {
    let v = v.to_string_lossy();
    let out = rprobe(&["add", flag, &v, "--dry-run", spec]);
    if !out.status.success() {
        return Err(show_output(&out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

fn setup(test: &str) -> Option<(PathBuf, tempfile::TempDir)> {
    let v = match vmlinux() {
        Ok(v) => v,
        Err(why) => {
            skip(test, &why);
            return None;
        }
    };
    if Command::new("perf").arg("--version").output().is_err() {
        skip(test, "needs perf");
        return None;
    }
    Some((v, tempfile::tempdir().expect("tempdir")))
}

#[test]
fn dwarf_and_btf_definitions_equal_perfs() {
    let Some((v, home)) = setup("dwarf_and_btf_definitions_equal_perfs") else {
        return;
    };
    assert!(SPECS.len() >= 30);
    // perf in this thread, rprobe in another.
    let ours: Vec<_> = std::thread::scope(|s| {
        let rp = s.spawn(|| {
            SPECS
                .iter()
                .map(|(spec, _)| {
                    (
                        rprobe_definition("--vmlinux", &v, spec),
                        rprobe_definition("--btf", &v, spec),
                    )
                })
                .collect::<Vec<_>>()
        });
        let perf: Vec<_> = SPECS
            .iter()
            .map(|(spec, _)| perf_definition(&v, spec, home.path()))
            .collect();
        perf.into_iter()
            .zip(rp.join().expect("rprobe thread"))
            .collect()
    });
    let mut failures = Vec::new();
    for ((spec, btf), (want, (dwarf, from_btf))) in SPECS.iter().zip(ours) {
        let want = match want {
            Ok(w) => w,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        match dwarf {
            Ok(got) if got == want => {}
            Ok(got) => failures.push(format!("{spec}: DWARF\n  perf:   {want}\n  rprobe: {got}")),
            Err(e) => failures.push(format!("{spec}: DWARF: rprobe failed\n{e}")),
        }
        match (btf, from_btf) {
            (Btf::Same, Ok(got)) if got == want => {}
            (Btf::Same, Ok(got)) => {
                failures.push(format!("{spec}: BTF\n  perf:   {want}\n  rprobe: {got}"))
            }
            (Btf::Same, Err(e)) => failures.push(format!("{spec}: BTF: rprobe failed\n{e}")),
            (Btf::Refuses, Err(e)) => assert!(
                e.contains("only at the function's entry")
                    || e.contains("BTF has no local variables"),
                "{spec}: BTF refuses for the wrong reason:\n{e}"
            ),
            (Btf::OutOfLine, Ok(got)) if Some(got.as_str()) == want.lines().last() => {}
            (Btf::OutOfLine, got) => failures.push(format!(
                "{spec}: BTF\n  perf's out-of-line point: {:?}\n  rprobe: {got:?}",
                want.lines().last()
            )),
            (Btf::NoLines, Err(e)) => assert!(
                e.contains("line numbers need DWARF"),
                "{spec}: BTF refuses for the wrong reason:\n{e}"
            ),
            (Btf::NoLines, Ok(got)) => {
                failures.push(format!("{spec}: BTF answered a line probe: {got}"))
            }
            (Btf::Refuses, Ok(got)) => {
                failures.push(format!("{spec}: BTF answered where it cannot: {got}"))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} specs differ:\n{}",
        failures.len(),
        SPECS.len(),
        failures.join("\n")
    );
}

/// `(byte offset, bit offset in that byte, width)` of `member` in pahole's DWARF view of
/// `strukt` (`u8 sk_userlocks:4; /* 512: 4 1 */`).
fn pahole_bits(pahole: &str, member: &str) -> Option<(u64, u64, u64)> {
    pahole.lines().find_map(|l| {
        let (decl, comment) = l.split_once("/*")?;
        let (name, width) = decl.trim().trim_end_matches(';').rsplit_once(':')?;
        if name.split_whitespace().last()? != member {
            return None;
        }
        let (byte, rest) = comment.split_once(':')?;
        let bit = rest.split_whitespace().next()?;
        Some((
            byte.trim().parse().ok()?,
            bit.parse().ok()?,
            width.trim().parse().ok()?,
        ))
    })
}

#[test]
fn bitfields_agree_with_pahole() {
    let Some((v, home)) = setup("bitfields_agree_with_pahole") else {
        return;
    };
    for (spec, strukt, members) in BITFIELDS {
        // perf 6.1 cannot place bitfields described by DWARF 5's DW_AT_data_bit_offset.
        let e = perf_definition(&v, spec, home.path()).expect_err("perf 6.1 fails here");
        assert!(e.contains("Failed to get the offset of"), "{e}");
        let out = Command::new("pahole")
            .args(["-F", "dwarf", "-C", strukt])
            .arg(&v)
            .output()
            .expect("run pahole");
        let pahole = String::from_utf8_lossy(&out.stdout);
        let dwarf = rprobe_definition("--vmlinux", &v, spec).expect("rprobe --vmlinux");
        let btf = rprobe_definition("--btf", &v, spec).expect("rprobe --btf");
        assert_eq!(dwarf, btf, "{spec}: DWARF and BTF differ");
        for m in *members {
            let (byte, bit, width) = pahole_bits(&pahole, m)
                .unwrap_or_else(|| panic!("pahole shows no bitfield {m} in {strukt}:\n{pahole}"));
            let want = format!(" {m}=+{byte}(%di):b{width}@{bit}/8");
            assert!(
                dwarf.split(' ').any(|w| format!(" {w}") == want),
                "{spec}: want{want} (pahole), rprobe: {dwarf}"
            );
        }
    }
}

#[test]
fn bad_input_names_the_problem() {
    let v = match vmlinux() {
        Ok(v) => v,
        Err(why) => return skip("bad_input_names_the_problem", &why),
    };
    let v = v.to_string_lossy();
    let deep = "->d_parent".repeat(11);
    let cases: &[(&str, &[&str])] = &[
        // unknown variable: what exists at that point
        (
            "vfs_read nosuch",
            &["no variable 'nosuch'", "file, buf, count, pos, ret"],
        ),
        // optimized out at the entry: where it is readable
        (
            "vfs_read ret",
            &["optimized out", "readable at vfs_read+114..+173"],
        ),
        // a return probe reads no variables
        (
            "vfs_read%return count",
            &["return probe cannot read variables"],
        ),
        // unknown field: the struct's fields
        (
            "vfs_read file->nosuch",
            &["struct file has no member 'nosuch'", "f_path, f_inode"],
        ),
        // the wrong operator: the right one
        ("vfs_read file.f_path", &["write file->f_path"]),
        (
            "vfs_read file->f_path->dentry",
            &["write file->f_path.dentry"],
        ),
        ("vfs_read count->x", &["count is size_t, not a struct"]),
        (
            "nosuch_function_xyz count",
            &["no kernel function 'nosuch_function_xyz'"],
        ),
    ];
    let long = format!("vfs_read file->f_path.dentry{deep}->d_name.name:string");
    let long_case: (&str, &[&str]) = (&long, &["characters long", "at most 63"]);
    for (spec, want) in cases.iter().chain(std::iter::once(&long_case)) {
        let out = rprobe(&["add", "--vmlinux", &v, "--dry-run", spec]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{spec}: accepted\n{}",
            show_output(&out)
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{spec}: one line\n{err}");
        for w in *want {
            assert!(err.contains(w), "{spec}: want '{w}' in\n{err}");
        }
    }
}

#[test]
fn name_unnamed_follows_the_kernel() {
    assert_eq!(
        name_unnamed("r:probe/vfs_read__return vfs_read+0 $retval"),
        "r:probe/vfs_read__return vfs_read+0 arg1=$retval"
    );
    assert_eq!(
        name_unnamed("p:probe/f f+0 a=%di %si"),
        "p:probe/f f+0 a=%di arg2=%si"
    );
    let p = "\tu8                         sk_userlocks:4;       /*   512: 4  1 */";
    assert_eq!(pahole_bits(p, "sk_userlocks"), Some((512, 4, 4)));
    assert_eq!(pahole_bits(p, "sk_user"), None);
}
