//! perf events for recording: `perf_event_open` with a full attr, the mmap'd ring buffer, the
//! ioctls the recorder uses, `poll(2)`, a `signalfd` for SIGINT/SIGTERM/SIGCHLD, and a forked
//! command that waits for a go-ahead before it execs (so its events can be opened first, with
//! `enable_on_exec`).
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

/// SIGINT, SIGTERM and SIGCHLD blocked and delivered through a `signalfd` instead, so the
/// recorder's poll loop sees them as readable input and no handler or global flag is needed.
/// Dropping it restores the previous signal mask.
#[derive(Debug)]
pub struct Signals {
    fd: OwnedFd,
    old: libc::sigset_t,
}

/// What a [`Signals`] read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: stop.
    Stop(i32),
    /// SIGCHLD: a child changed state.
    Child,
}

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        set
    }
}

impl Signals {
    /// Block the three signals in this thread and open a non-blocking signalfd for them.
    pub fn install() -> Result<Signals, SyscallError> {
        let set = stop_set();
        // SAFETY: zeroed sigset_t is a valid out-parameter; set is initialised.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to initialised sigsets.
        if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) } != 0 {
            return Err(SyscallError::last("pthread_sigmask(SIG_BLOCK)"));
        }
        // SAFETY: set is initialised; -1 asks for a new fd.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            let e = SyscallError::last("signalfd(SIGINT, SIGTERM, SIGCHLD)");
            // SAFETY: restoring the mask we just saved.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
            return Err(e);
        }
        Ok(Signals {
            // SAFETY: fresh fd from signalfd, owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            old,
        })
    }

    /// The fd to poll.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The pending signals, without blocking.
    pub fn read(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        loop {
            // SAFETY: signalfd_siginfo is plain data; zeroed is a valid buffer.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let n = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: info is a writable buffer of n bytes.
            let r = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    &mut info as *mut _ as *mut libc::c_void,
                    n,
                )
            };
            if r != n as isize {
                break;
            }
            let sig = info.ssi_signo as i32;
            out.push(if sig == libc::SIGCHLD {
                Signal::Child
            } else {
                Signal::Stop(sig)
            });
        }
        out
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // Take what is still pending out of the queue first: unblocking would deliver a
        // pending SIGINT with its default action.
        let _ = self.read();
        // SAFETY: restoring the mask saved at install.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// A forked command that is parked before `execvp` until [`Child::go`] (perf's scheme: the
/// events are opened on its pid with `enable_on_exec`, then it runs).
#[derive(Debug)]
pub struct Child {
    /// The child's pid.
    pub pid: i32,
    go: Option<OwnedFd>,
    err: OwnedFd,
    reaped: Option<i32>,
}

fn pipe_cloexec(what: &str) -> Result<(OwnedFd, OwnedFd), SyscallError> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a writable array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SyscallError::last(format!("pipe2({what})")));
    }
    // SAFETY: both fds are fresh from pipe2 and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Child {
    /// Fork; the child unblocks all signals, waits for the go byte, and execs `argv[0]`
    /// (looked up in `$PATH`). Nothing is run yet.
    pub fn spawn_parked(argv: &[String]) -> Result<Child, SyscallError> {
        let cargs: Vec<CString> = argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| SyscallError {
                call: "execvp(command with a NUL byte)".into(),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            })?;
        let Some(file) = cargs.first() else {
            return Err(SyscallError {
                call: "execvp(empty command)".into(),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        };
        let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let (go_r, go_w) = pipe_cloexec("go-ahead")?;
        let (err_r, err_w) = pipe_cloexec("exec status")?;
        let go_r_fd = go_r.as_raw_fd();
        let go_w_fd = go_w.as_raw_fd();
        let err_r_fd = err_r.as_raw_fd();
        let err_w_fd = err_w.as_raw_fd();
        // SAFETY: after fork the child calls only async-signal-safe functions (sigprocmask,
        // read, execvp, write, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(SyscallError::last("fork(command)"));
        }
        if pid == 0 {
            // SAFETY: see above; the child never returns from this block.
            unsafe {
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                // Our copies of the parent's ends: with go_w open here, a parent that gives
                // up (drops go_w without writing) would never make this read return.
                libc::close(go_w_fd);
                libc::close(err_r_fd);
                let mut b = 0u8;
                let r = libc::read(go_r_fd, &mut b as *mut u8 as *mut libc::c_void, 1);
                if r == 1 {
                    libc::execvp(file.as_ptr(), ptrs.as_ptr());
                    let errno = *libc::__errno_location();
                    libc::write(err_w_fd, &errno as *const i32 as *const libc::c_void, 4);
                }
                libc::_exit(127);
            }
        }
        drop(go_r);
        drop(err_w);
        Ok(Child {
            pid,
            go: Some(go_w),
            err: err_r,
            reaped: None,
        })
    }

    /// Let the child exec. An exec failure comes back as the child's errno.
    pub fn go(&mut self, what: &str) -> Result<(), SyscallError> {
        if let Some(w) = self.go.take() {
            let b = 1u8;
            // SAFETY: writing one byte from a local to our pipe end.
            unsafe { libc::write(w.as_raw_fd(), &b as *const u8 as *const libc::c_void, 1) };
        }
        let mut errno = 0i32;
        // SAFETY: reading up to 4 bytes into a local; EOF (exec succeeded) returns 0.
        let r = unsafe {
            libc::read(
                self.err.as_raw_fd(),
                &mut errno as *mut i32 as *mut libc::c_void,
                4,
            )
        };
        if r == 4 {
            let _ = self.wait(true);
            return Err(SyscallError {
                call: format!("execvp({what})"),
                source: std::io::Error::from_raw_os_error(errno),
            });
        }
        Ok(())
    }

    /// Reap the child: `Some(status)` once it has exited (`block` waits for it).
    pub fn wait(&mut self, block: bool) -> Option<i32> {
        if self.reaped.is_some() {
            return self.reaped;
        }
        let mut status = 0;
        let flags = if block { 0 } else { libc::WNOHANG };
        // SAFETY: waitpid on our own child with a local status word.
        let r = unsafe { libc::waitpid(self.pid, &mut status, flags) };
        if r == self.pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                return None;
            };
            self.reaped = Some(code);
        }
        self.reaped
    }

    /// Send `sig` to the child if it is still running.
    pub fn kill(&self, sig: i32) {
        if self.reaped.is_none() {
            // SAFETY: kill(2) of our own unreaped child's pid.
            unsafe { libc::kill(self.pid, sig) };
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            if self.go.take().is_none() {
                // It runs: the recording ended early (an error), so end it too.
                self.kill(libc::SIGTERM);
            }
            // Otherwise closing the go pipe makes the parked child _exit(127). Reap it.
            let _ = self.wait(true);
        }
    }
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
