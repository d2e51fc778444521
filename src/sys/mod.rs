//! The only module with raw syscalls and `unsafe`: every call is wrapped so its error names
//! the call, and every `unsafe` block says why it is sound.
//!
//! Submodules: [`signals`] (stop requests through a signalfd, polled next to data) and
//! [`spawn`] (a command forked and held before exec, so tracing can be set up for its pid).
//!
//! It also owns the `/proc` and `/sys` paths that describe the running system (capabilities,
//! sysctls, lockdown), so the rest of the crate can be tested without them.
#![allow(unsafe_code)]

pub mod signals;
pub mod spawn;

use std::io;
use std::path::Path;

pub mod bpf;
pub mod perf_event;

/// A failed system call, named.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct SyscallError {
    /// The call and what it was for, e.g. `perf_event_open(cpu-clock)`.
    pub call: String,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl SyscallError {
    fn last(call: impl Into<String>) -> SyscallError {
        SyscallError {
            call: call.into(),
            source: io::Error::last_os_error(),
        }
    }

    /// The errno, when there is one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// An anonymous in-memory file (`memfd_create`), removed when its last fd closes.
pub fn memory_file(name: &str) -> Result<std::fs::File, SyscallError> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    memfd_create(name, MFdFlags::MFD_CLOEXEC)
        .map(std::fs::File::from)
        .map_err(|e| SyscallError {
            call: format!("memfd_create({name})"),
            source: io::Error::from_raw_os_error(e as i32),
        })
}

/// Effective user id is 0.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Mount tracefs at `target` (`mount -t tracefs nodev TARGET`).
pub fn mount_tracefs(target: &Path) -> Result<(), SyscallError> {
    nix::mount::mount(
        Some("nodev"),
        target,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| SyscallError {
        call: format!("mount(tracefs, {})", target.display()),
        source: io::Error::from_raw_os_error(e as i32),
    })
}

/// Capability numbers used by rprobe (`include/uapi/linux/capability.h`).
pub mod caps {
    /// `CAP_SYS_ADMIN`.
    pub const SYS_ADMIN: u32 = 21;
    /// `CAP_PERFMON` (5.8+).
    pub const PERFMON: u32 = 38;
    /// `CAP_BPF` (5.8+).
    pub const BPF: u32 = 39;
}

/// The effective capability mask of this process, from `/proc/self/status` (`CapEff:`).
pub fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_cap_eff(&status)
}

// CapEff:	000001ffffffffff
fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// Whether the effective set holds capability `cap`.
pub fn has_cap(cap: u32) -> bool {
    effective_caps().is_some_and(|m| m & (1u64 << cap) != 0)
}

/// Read a small text file of the running system (`/proc/sys/...`, `/sys/...`), trimmed.
pub fn read_sys_text(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// This process's `[vdso]` image (every process of a kernel maps the same one), read through
/// `/proc/self/maps` and `/proc/self/mem`; None when either cannot be read.
pub fn own_vdso() -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps.lines().find(|l| l.ends_with("[vdso]"))?;
    let range = line.split_whitespace().next()?;
    let (a, b) = range.split_once('-')?;
    let (start, end) = (
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    );
    let mut mem = std::fs::File::open("/proc/self/mem").ok()?;
    mem.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = vec![0u8; end.checked_sub(start)? as usize];
    mem.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// `kernel.perf_event_paranoid`.
pub fn perf_event_paranoid() -> Option<i32> {
    read_sys_text("/proc/sys/kernel/perf_event_paranoid")?
        .parse()
        .ok()
}

/// The running kernel's config: `/proc/config.gz` when the kernel exposes it, else
/// `/boot/config-$(uname -r)` as distributions install it.
pub fn kernel_config() -> Option<String> {
    use std::io::Read;
    if let Ok(gz) = std::fs::read("/proc/config.gz") {
        let mut s = String::new();
        if flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_string(&mut s)
            .is_ok()
        {
            return Some(s);
        }
    }
    let release = nix::sys::utsname::uname()
        .ok()?
        .release()
        .to_string_lossy()
        .into_owned();
    std::fs::read_to_string(format!("/boot/config-{release}")).ok()
}

/// Open and close one counting perf event on this process (`pid 0, cpu -1`), to learn
/// whether the kernel and the CPU support it. `type_`/`config` as in `perf_event_attr`.
pub fn try_perf_event(type_: u32, config: u64, what: &str) -> Result<(), SyscallError> {
    use perf_event_open_sys::bindings::perf_event_attr;
    let mut attr = perf_event_attr {
        type_,
        size: std::mem::size_of::<perf_event_attr>() as u32,
        config,
        ..Default::default()
    };
    attr.set_disabled(1);
    attr.set_exclude_kernel(1);
    attr.set_exclude_hv(1);
    // SAFETY: attr is a fully initialised perf_event_attr whose size field matches its
    // type; pid 0 / cpu -1 / group -1 / flags 0 is a valid combination.
    let fd = unsafe { perf_event_open_sys::perf_event_open(&mut attr, 0, -1, -1, 0) };
    if fd < 0 {
        return Err(SyscallError::last(format!("perf_event_open({what})")));
    }
    // SAFETY: fd was just returned by perf_event_open and is owned by nothing else.
    unsafe { libc::close(fd) };
    Ok(())
}

/// `perf_event_attr.type` for hardware events.
pub const PERF_TYPE_HARDWARE: u32 = perf_event_open_sys::bindings::PERF_TYPE_HARDWARE;
/// `perf_event_attr.type` for software events.
pub const PERF_TYPE_SOFTWARE: u32 = perf_event_open_sys::bindings::PERF_TYPE_SOFTWARE;
/// `PERF_COUNT_HW_CPU_CYCLES`.
pub const PERF_COUNT_HW_CPU_CYCLES: u64 =
    perf_event_open_sys::bindings::PERF_COUNT_HW_CPU_CYCLES as u64;
/// `PERF_COUNT_SW_CPU_CLOCK`.
pub const PERF_COUNT_SW_CPU_CLOCK: u64 =
    perf_event_open_sys::bindings::PERF_COUNT_SW_CPU_CLOCK as u64;

/// Load the smallest valid BPF program (`r0 = 0; exit`, a socket filter) and close it: the
/// cheapest proof that `bpf(2)` works for this process.
pub fn try_bpf_prog_load() -> Result<(), SyscallError> {
    #[repr(C)]
    struct ProgLoadAttr {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        rest: [u8; 80],
    }
    // BPF_MOV64_IMM(BPF_REG_0, 0); BPF_EXIT_INSN()
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, 0, 0, 0, 0]),
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),
    ];
    let license = c"GPL";
    let attr = ProgLoadAttr {
        prog_type: 1, // BPF_PROG_TYPE_SOCKET_FILTER
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        rest: [0; 80],
    };
    const BPF_PROG_LOAD: libc::c_long = 5;
    // SAFETY: attr is a repr(C) prefix of union bpf_attr with every other byte zero; the
    // pointers inside it refer to live locals for the duration of the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(SyscallError::last("bpf(BPF_PROG_LOAD)"));
    }
    // SAFETY: fd was just returned by bpf(2) and is owned by nothing else.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// Map a file read-only. The map stays valid if the file is replaced on disk (a new inode),
/// but not if it is truncated in place; binaries and libraries are replaced, not truncated.
pub fn map_file(path: &Path) -> Result<memmap2::Mmap, SyscallError> {
    let file = std::fs::File::open(path).map_err(|source| SyscallError {
        call: format!("open({})", path.display()),
        source,
    })?;
    // SAFETY: the map is read-only and private to this process; see the doc comment for the
    // one way another process could change its contents.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|source| SyscallError {
        call: format!("mmap({})", path.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_cap_eff(s), Some(0x1ffffffffff));
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
        assert_eq!(parse_cap_eff(""), None);
    }

    #[test]
    fn software_clock_opens() {
        // cpu-clock exists on every kernel with perf events; this machine's CI has them.
        if let Err(e) = try_perf_event(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, "cpu-clock") {
            assert!(std::env::var_os("CI").is_none(), "{e}");
            println!("SKIP sys::software_clock_opens: {e}");
        }
    }
}
