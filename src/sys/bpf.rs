//! `bpf(2)`: maps, program loading with the verifier's log, and attaching a program to a perf
//! event (`PERF_EVENT_IOC_SET_BPF`). Only what rprobe's in-kernel counting needs.
//!
//! `union bpf_attr` layouts (`include/uapi/linux/bpf.h`) are written as byte buffers at the
//! documented offsets; the kernel zero-extends a shorter attr and requires unused tail bytes to
//! be zero, so each command passes exactly the prefix it uses.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::SyscallError;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_PROG_LOAD: libc::c_long = 5;

/// `BPF_MAP_TYPE_HASH`.
pub const MAP_TYPE_HASH: u32 = 1;
/// `BPF_MAP_TYPE_ARRAY`.
pub const MAP_TYPE_ARRAY: u32 = 2;
/// `BPF_PROG_TYPE_KPROBE`: programs on kprobe and uprobe events (context: `struct pt_regs`).
pub const PROG_TYPE_KPROBE: u32 = 2;
/// `BPF_PROG_TYPE_TRACEPOINT`: programs on tracepoints (context: the raw trace record).
pub const PROG_TYPE_TRACEPOINT: u32 = 5;

fn bpf(cmd: libc::c_long, attr: &mut [u8], what: &str) -> Result<i64, SyscallError> {
    // SAFETY: `attr` is a live, writable buffer of `attr.len()` bytes laid out as the command's
    // part of `union bpf_attr`; the kernel reads (and for lookups writes through pointers in
    // it that the callers below point at live buffers) at most that many bytes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            attr.len() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(SyscallError::last(what.to_owned()));
    }
    Ok(r)
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// A BPF map.
#[derive(Debug)]
pub struct Map {
    fd: OwnedFd,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
}

impl Map {
    /// `BPF_MAP_CREATE`.
    pub fn create(
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> Result<Map, SyscallError> {
        let mut attr = [0u8; 20];
        put_u32(&mut attr, 0, map_type);
        put_u32(&mut attr, 4, key_size);
        put_u32(&mut attr, 8, value_size);
        put_u32(&mut attr, 12, max_entries);
        let fd = bpf(BPF_MAP_CREATE, &mut attr, "bpf(BPF_MAP_CREATE)")?;
        Ok(Map {
            // SAFETY: the kernel just returned this fd; nothing else owns it.
            fd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
            key_size,
            value_size,
        })
    }

    /// The map's fd, for `ld_map_fd` in a program.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// `BPF_MAP_LOOKUP_ELEM`: the value of `key`, or `None` when it is absent.
    pub fn lookup(&self, key: &[u8]) -> Option<Vec<u8>> {
        if key.len() != self.key_size as usize {
            return None;
        }
        let mut value = vec![0u8; self.value_size as usize];
        let mut attr = [0u8; 32];
        put_u32(&mut attr, 0, self.fd.as_raw_fd() as u32);
        put_u64(&mut attr, 8, key.as_ptr() as u64);
        put_u64(&mut attr, 16, value.as_mut_ptr() as u64);
        bpf(BPF_MAP_LOOKUP_ELEM, &mut attr, "bpf(BPF_MAP_LOOKUP_ELEM)").ok()?;
        Some(value)
    }

    /// `BPF_MAP_UPDATE_ELEM` with `BPF_ANY`.
    pub fn update(&self, key: &[u8], value: &[u8]) -> Result<(), SyscallError> {
        let bad = || SyscallError {
            call: "bpf(BPF_MAP_UPDATE_ELEM)".into(),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        };
        if key.len() != self.key_size as usize || value.len() != self.value_size as usize {
            return Err(bad());
        }
        let mut attr = [0u8; 32];
        put_u32(&mut attr, 0, self.fd.as_raw_fd() as u32);
        put_u64(&mut attr, 8, key.as_ptr() as u64);
        put_u64(&mut attr, 16, value.as_ptr() as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr, "bpf(BPF_MAP_UPDATE_ELEM)").map(|_| ())
    }

    /// `BPF_MAP_DELETE_ELEM`; false when the key was absent.
    pub fn delete(&self, key: &[u8]) -> bool {
        if key.len() != self.key_size as usize {
            return false;
        }
        let mut attr = [0u8; 16];
        put_u32(&mut attr, 0, self.fd.as_raw_fd() as u32);
        put_u64(&mut attr, 8, key.as_ptr() as u64);
        bpf(BPF_MAP_DELETE_ELEM, &mut attr, "bpf(BPF_MAP_DELETE_ELEM)").is_ok()
    }

    /// Every key, through `BPF_MAP_GET_NEXT_KEY` (a hash map's keys in the kernel's order).
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        let mut prev: Option<Vec<u8>> = None;
        loop {
            let mut next = vec![0u8; self.key_size as usize];
            let mut attr = [0u8; 24];
            put_u32(&mut attr, 0, self.fd.as_raw_fd() as u32);
            // A NULL key asks for the first one.
            put_u64(&mut attr, 8, prev.as_ref().map_or(0, |k| k.as_ptr() as u64));
            put_u64(&mut attr, 16, next.as_mut_ptr() as u64);
            if bpf(BPF_MAP_GET_NEXT_KEY, &mut attr, "bpf(BPF_MAP_GET_NEXT_KEY)").is_err() {
                break;
            }
            keys.push(next.clone());
            prev = Some(next);
            if keys.len() > 1 << 24 {
                break;
            }
        }
        keys
    }
}

/// A loaded BPF program.
#[derive(Debug)]
pub struct Prog {
    fd: OwnedFd,
}

/// A program the kernel refused, with the verifier's log.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct LoadError {
    /// The failed call.
    pub error: SyscallError,
    /// The verifier's log (empty when the kernel refused before verifying).
    pub log: String,
}

impl Prog {
    /// `BPF_PROG_LOAD` of `insns` (encoded instructions) with license "GPL" (needed for the
    /// probe_read helpers). On failure the load is retried with the verifier log on, so the
    /// error carries the log.
    pub fn load(prog_type: u32, insns: &[u8], name: &str) -> Result<Prog, LoadError> {
        match Prog::load_with_log(prog_type, insns, name, 0) {
            Ok(p) => Ok(p),
            Err(first) => match Prog::load_with_log(prog_type, insns, name, 1) {
                Ok(p) => Ok(p),
                Err(with_log) if !with_log.log.is_empty() => Err(with_log),
                Err(_) => Err(first),
            },
        }
    }

    fn load_with_log(
        prog_type: u32,
        insns: &[u8],
        name: &str,
        log_level: u32,
    ) -> Result<Prog, LoadError> {
        let license = c"GPL";
        let mut log = vec![0u8; if log_level > 0 { 1 << 20 } else { 0 }];
        // prog_type u32@0, insn_cnt u32@4, insns u64@8, license u64@16, log_level u32@24,
        // log_size u32@28, log_buf u64@32, kern_version u32@40, prog_flags u32@44,
        // prog_name char[16]@48.
        let mut attr = [0u8; 64];
        put_u32(&mut attr, 0, prog_type);
        put_u32(&mut attr, 4, (insns.len() / 8) as u32);
        put_u64(&mut attr, 8, insns.as_ptr() as u64);
        put_u64(&mut attr, 16, license.as_ptr() as u64);
        put_u32(&mut attr, 24, log_level);
        put_u32(&mut attr, 28, log.len() as u32);
        put_u64(
            &mut attr,
            32,
            if log.is_empty() {
                0
            } else {
                log.as_mut_ptr() as u64
            },
        );
        let n = name.len().min(15);
        attr[48..48 + n].copy_from_slice(&name.as_bytes()[..n]);
        match bpf(BPF_PROG_LOAD, &mut attr, "bpf(BPF_PROG_LOAD)") {
            Ok(fd) => Ok(Prog {
                // SAFETY: the kernel just returned this fd; nothing else owns it.
                fd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
            }),
            Err(error) => {
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                Err(LoadError {
                    error,
                    log: String::from_utf8_lossy(&log[..end]).into_owned(),
                })
            }
        }
    }

    /// `PERF_EVENT_IOC_SET_BPF`: run this program on every hit of the perf event `event`.
    pub fn attach(&self, event: &OwnedFd) -> Result<(), SyscallError> {
        // SAFETY: both are live fds; the ioctl takes the program fd as its integer argument.
        let r = unsafe {
            perf_event_open_sys::ioctls::SET_BPF(event.as_raw_fd(), self.fd.as_raw_fd() as u32)
        };
        if r < 0 {
            return Err(SyscallError::last("ioctl(PERF_EVENT_IOC_SET_BPF)"));
        }
        Ok(())
    }
}
