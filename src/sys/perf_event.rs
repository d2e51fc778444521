//! perf events for recording: `perf_event_open` with a full attr, the mmap'd ring buffer, the
//! ioctls the recorder uses and `poll(2)`. Stop signals are [`super::signals`]'s, and the
//! command that waits for a go-ahead before it execs (so its events can be opened first, with
//! `enable_on_exec`) is [`super::spawn::HeldChild`].
//!
//! The ring buffer is `1 + 2^n` pages: the first is `struct perf_event_mmap_page`
//! (`data_head` u64 at 1024, `data_tail` at 1032, `data_offset` at 1040, `data_size` at 1048),
//! the rest is the data area. Only the index loads and stores happen here; the arithmetic over
//! the bytes is `perf::ring`'s.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicU64, Ordering};

use super::SyscallError;

/// `perf_event_open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC)`. `attr` is the encoded
/// `perf_event_attr` (its `size` field says how many bytes the kernel reads).
pub fn perf_event_open(
    attr: &[u8],
    pid: i32,
    cpu: i32,
    what: &str,
) -> Result<OwnedFd, SyscallError> {
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
    let size = crate::perf::abi::u32_at(attr, 4).unwrap_or(0) as usize;
    if size < 64 || attr.len() < size {
        return Err(SyscallError {
            call: format!("perf_event_open({what})"),
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    // SAFETY: `attr` holds at least `size` initialised bytes, which is all the kernel reads
    // (it copies `attr.size` bytes and zero-extends); the other arguments are plain integers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            pid as libc::pid_t,
            cpu as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(SyscallError::last(format!("perf_event_open({what})")));
    }
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `PERF_EVENT_IOC_ID`: the event's id, as it appears in samples and the ids table.
pub fn event_id(fd: &OwnedFd) -> Result<u64, SyscallError> {
    let mut id = 0u64;
    // SAFETY: fd is a perf event fd; the ioctl writes one u64 through the pointer.
    let r = unsafe { perf_event_open_sys::ioctls::ID(fd.as_raw_fd(), &mut id) };
    if r < 0 {
        return Err(SyscallError::last("ioctl(PERF_EVENT_IOC_ID)"));
    }
    Ok(id)
}

/// `read(2)` of a perf event fd: `n` u64 words in the layout its `read_format` gives.
pub fn read_words(fd: &OwnedFd, n: usize) -> Result<Vec<u64>, SyscallError> {
    let mut v = vec![0u64; n];
    // SAFETY: v is a writable buffer of n * 8 bytes.
    let r = unsafe { libc::read(fd.as_raw_fd(), v.as_mut_ptr() as *mut libc::c_void, n * 8) };
    if r != (n * 8) as isize {
        return Err(SyscallError::last("read(perf event)"));
    }
    Ok(v)
}

/// `PERF_EVENT_IOC_SET_OUTPUT`: send `fd`'s records to `target`'s ring buffer (same CPU).
pub fn set_output_raw(fd: &OwnedFd, target: RawFd) -> Result<(), SyscallError> {
    // SAFETY: fd is a perf event fd; the argument is an fd number the kernel checks.
    let r = unsafe { perf_event_open_sys::ioctls::SET_OUTPUT(fd.as_raw_fd(), target) };
    if r < 0 {
        return Err(SyscallError::last("ioctl(PERF_EVENT_IOC_SET_OUTPUT)"));
    }
    Ok(())
}

/// `PERF_EVENT_IOC_SET_FILTER`: a tracefs filter expression on a tracepoint event.
pub fn set_filter(fd: &OwnedFd, filter: &str) -> Result<(), SyscallError> {
    let c = CString::new(filter).map_err(|_| SyscallError {
        call: "ioctl(PERF_EVENT_IOC_SET_FILTER)".into(),
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    // SAFETY: the kernel reads a NUL-terminated string through the pointer and does not keep it.
    let r =
        unsafe { perf_event_open_sys::ioctls::SET_FILTER(fd.as_raw_fd(), c.as_ptr() as *mut _) };
    if r < 0 {
        return Err(SyscallError::last("ioctl(PERF_EVENT_IOC_SET_FILTER)"));
    }
    Ok(())
}

/// `PERF_EVENT_IOC_ENABLE` (`on`) or `PERF_EVENT_IOC_DISABLE`.
pub fn set_enabled(fd: &OwnedFd, on: bool) -> Result<(), SyscallError> {
    // SAFETY: fd is a perf event fd; the argument 0 means "this event only".
    let r = unsafe {
        if on {
            perf_event_open_sys::ioctls::ENABLE(fd.as_raw_fd(), 0)
        } else {
            perf_event_open_sys::ioctls::DISABLE(fd.as_raw_fd(), 0)
        }
    };
    if r < 0 {
        return Err(SyscallError::last(if on {
            "ioctl(PERF_EVENT_IOC_ENABLE)"
        } else {
            "ioctl(PERF_EVENT_IOC_DISABLE)"
        }));
    }
    Ok(())
}

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// An mmap'd perf ring buffer: the control page and `2^n` data pages.
#[derive(Debug)]
pub struct RingMap {
    base: *mut u8,
    len: usize,
    page: usize,
}

// SAFETY: the map is owned by this value; the kernel writes the data area concurrently, which
// readers handle through data_head/data_tail with the fences below, as the ABI prescribes.
unsafe impl Send for RingMap {}

impl RingMap {
    /// Map `1 + data_pages` pages of `fd` read-write (writable so that `data_tail` can be
    /// stored, which tells the kernel what was consumed and stops it from overwriting).
    pub fn map(fd: &OwnedFd, data_pages: usize, what: &str) -> Result<RingMap, SyscallError> {
        let page = page_size();
        let len = (data_pages + 1) * page;
        // SAFETY: a fresh shared mapping of a perf event fd; the kernel validates the size.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(SyscallError::last(format!(
                "mmap(ring buffer of {what}, {data_pages} pages)"
            )));
        }
        Ok(RingMap {
            base: p as *mut u8,
            len,
            page,
        })
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        // SAFETY: off is 1024 or 1032, inside the first page, 8-aligned (the map is
        // page-aligned); AtomicU64 has the layout of u64 and the kernel accesses it atomically.
        unsafe { &*(self.base.add(off) as *const AtomicU64) }
    }

    /// `data_head`, with the acquire fence the ABI asks for before reading data.
    pub fn data_head(&self) -> u64 {
        let head = self.word(1024).load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        head
    }

    /// `data_tail` as last stored.
    pub fn data_tail(&self) -> u64 {
        self.word(1032).load(Ordering::Relaxed)
    }

    /// Store `data_tail` after a full fence: everything up to `tail` has been read.
    pub fn set_data_tail(&self, tail: u64) {
        fence(Ordering::SeqCst);
        self.word(1032).store(tail, Ordering::Relaxed);
    }

    /// The data area. The kernel may write the part between `data_head` and `data_tail` +
    /// size at any time; the part between tail and head is stable until the tail moves.
    pub fn data(&self) -> &[u8] {
        // SAFETY: the data area is the mapping minus its first page; it lives as long as self.
        unsafe { std::slice::from_raw_parts(self.base.add(self.page), self.len - self.page) }
    }
}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap returned; nothing borrows the map past self.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// What [`poll_in`] saw on one fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ready {
    /// Readable.
    pub input: bool,
    /// Hung up or in error: for a perf event, its task is gone and it will never have more
    /// input, so polling it again would return at once forever.
    pub hangup: bool,
}

/// `poll(2)` for input on `fds`, up to `timeout_ms` (−1: forever). EINTR is an empty answer.
pub fn poll_in(fds: &[RawFd], timeout_ms: i32) -> Result<Vec<Ready>, SyscallError> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: p is a valid array of p.len() pollfd structs.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(vec![Ready::default(); fds.len()]);
        }
        return Err(SyscallError {
            call: "poll(ring buffers)".into(),
            source: e,
        });
    }
    Ok(p.iter()
        .map(|x| Ready {
            input: x.revents & libc::POLLIN != 0,
            hangup: x.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0,
        })
        .collect())
}

/// `RLIMIT_NOFILE` (soft, hard).
pub fn nofile_limit() -> Option<(u64, u64)> {
    // SAFETY: zeroed rlimit is a valid out-parameter.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return None;
    }
    Some((r.rlim_cur, r.rlim_max))
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (perf does the same on EMFILE).
pub fn raise_nofile_limit() -> bool {
    let Some((cur, max)) = nofile_limit() else {
        return false;
    };
    if cur >= max {
        return false;
    }
    let r = libc::rlimit {
        rlim_cur: max,
        rlim_max: max,
    };
    // SAFETY: valid pointer to a local rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 }
}

/// Process CPU time of this process (user + system), in nanoseconds.
pub fn own_cpu_time_ns() -> u64 {
    // SAFETY: zeroed timespec is a valid out-parameter.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock perf sample times use by default.
pub fn monotonic_ns() -> u64 {
    // SAFETY: zeroed timespec is a valid out-parameter.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether stderr is a terminal.
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(2) == 1 }
}
