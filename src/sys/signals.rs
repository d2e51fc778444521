//! Stop requests as a file descriptor: SIGINT, SIGTERM, SIGHUP (and SIGCHLD, for commands
//! rprobe runs) delivered through `signalfd(2)`.
//!
//! Why signalfd and not a handler with a self-pipe: a handler needs the pipe's write end in a
//! `static` (the one piece of global mutable state a handler cannot avoid), and every blocking
//! call must cope with EINTR. With signalfd the signals are blocked in this thread
//! (`pthread_sigmask`), stay pending, and are read as records from an fd that the event loop
//! polls next to `trace_pipe`; nothing global is written and no code runs asynchronously. The
//! cost: the mask must be set before other threads start (threads inherit it; rprobe blocks
//! them in its single thread at the start of the command), and it is inherited across
//! `fork`/`exec`, so a child must restore the mask before `exec` ([`super::spawn`] does, and
//! std's `Command` resets it too).
//!
//! A signal this process inherited as ignored (SIGHUP under `nohup`, SIGINT in a background
//! job of a non-interactive shell) stays ignored: the kernel discards an ignored signal when it
//! is sent, before signalfd can see it, which is what the starter asked for.
//!
//! SIGPIPE is not among them: the Rust runtime ignores it, so a closed output pipe shows up as
//! `EPIPE` from `write`, which the caller treats as a stop request of its own.
//!
//! [`StopSignals`] restores the previous mask when dropped, after reading (and so discarding)
//! nothing: a signal still pending then is delivered with its default action once unblocked.
//! Callers that want it gone read it first with [`StopSignals::read`].
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::SyscallError;

/// Why the caller is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP (the terminal went away).
    Hangup,
    /// SIGCHLD: a child changed state (reap it to learn which).
    Child,
}

impl Stop {
    /// The signal's name, `SIGINT`.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
            Stop::Hangup => "SIGHUP",
            Stop::Child => "SIGCHLD",
        }
    }

    /// The signal number.
    pub fn number(self) -> i32 {
        match self {
            Stop::Interrupt => libc::SIGINT,
            Stop::Terminate => libc::SIGTERM,
            Stop::Hangup => libc::SIGHUP,
            Stop::Child => libc::SIGCHLD,
        }
    }

    fn from_number(n: u32) -> Option<Stop> {
        match n as i32 {
            libc::SIGINT => Some(Stop::Interrupt),
            libc::SIGTERM => Some(Stop::Terminate),
            libc::SIGHUP => Some(Stop::Hangup),
            libc::SIGCHLD => Some(Stop::Child),
            _ => None,
        }
    }
}

/// SIGINT, SIGTERM, SIGHUP and SIGCHLD blocked and readable from a signalfd.
#[derive(Debug)]
pub struct StopSignals {
    fd: OwnedFd,
    old_mask: libc::sigset_t,
}

impl StopSignals {
    /// Block the four signals in this thread and open a non-blocking signalfd for them.
    pub fn block() -> Result<StopSignals, SyscallError> {
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it fully.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: set points to a live sigset_t; the signal numbers are valid.
        unsafe {
            libc::sigemptyset(&mut set);
            for s in [Stop::Interrupt, Stop::Terminate, Stop::Hangup, Stop::Child] {
                libc::sigaddset(&mut set, s.number());
            }
        }
        // SAFETY: both pointers refer to live sigset_t values.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old_mask) };
        if rc != 0 {
            return Err(SyscallError {
                call: "pthread_sigmask(SIG_BLOCK)".into(),
                source: std::io::Error::from_raw_os_error(rc),
            });
        }
        // SAFETY: set is initialised; -1 asks for a new fd.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            let err = SyscallError::last("signalfd");
            // SAFETY: restores the mask saved above.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
            return Err(err);
        }
        // SAFETY: fd was just returned by signalfd and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(StopSignals { fd, old_mask })
    }

    /// The next pending signal, or None when none is pending.
    pub fn read(&self) -> Result<Option<Stop>, SyscallError> {
        loop {
            // SAFETY: signalfd_siginfo is plain data.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: info is a live buffer of `size` bytes.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                return match err.kind() {
                    std::io::ErrorKind::WouldBlock => Ok(None),
                    std::io::ErrorKind::Interrupted => continue,
                    _ => Err(SyscallError {
                        call: "read(signalfd)".into(),
                        source: err,
                    }),
                };
            }
            if n as usize != size {
                return Ok(None);
            }
            if let Some(stop) = Stop::from_number(info.ssi_signo) {
                return Ok(Some(stop));
            }
        }
    }

    /// The fd to poll for readability.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in block().
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut()) };
    }
}

/// Open a file read-only and non-blocking (`O_NONBLOCK`), for polling next to the signals:
/// an empty `trace_pipe` then answers EAGAIN instead of blocking.
pub fn open_nonblocking(path: &std::path::Path) -> Result<std::fs::File, SyscallError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| SyscallError {
            call: format!("open({})", path.display()),
            source,
        })
}

/// What [`wait_readable`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The data fd is readable (or at end of file, or in error).
    pub data: bool,
    /// The signal fd is readable.
    pub signal: bool,
    /// The watched output fd has no reader left (POLLERR/POLLHUP on a pipe's write end).
    pub hangup: bool,
}

/// `poll(2)` on `data` (when given), the signal fd and, for hangups only, `output`, for at
/// most `timeout_ms`. Watching the output lets a reader that went away (`| head`) stop the
/// caller even while it has nothing to write, where a write would fail with EPIPE.
pub fn wait_readable(
    data: Option<RawFd>,
    signals: &StopSignals,
    output: Option<RawFd>,
    timeout_ms: i32,
) -> Result<Ready, SyscallError> {
    let mut fds = [
        libc::pollfd {
            fd: signals.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: data.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: output.unwrap_or(-1),
            events: 0,
            revents: 0,
        },
    ];
    // SAFETY: fds is a live array of three pollfd; a negative fd is ignored by poll.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout_ms) };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() == std::io::ErrorKind::Interrupted {
            return Ok(Ready {
                data: false,
                signal: false,
                hangup: false,
            });
        }
        return Err(SyscallError {
            call: "poll".into(),
            source: err,
        });
    }
    Ok(Ready {
        signal: fds[0].revents != 0,
        data: data.is_some() && fds[1].revents != 0,
        hangup: output.is_some() && fds[2].revents & (libc::POLLERR | libc::POLLHUP) != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raised_signal_is_read_from_the_fd_not_delivered() {
        let signals = StopSignals::block().expect("signalfd");
        assert_eq!(signals.read().expect("read"), None);
        // SAFETY: raise sends SIGHUP to this thread, where it is blocked.
        unsafe { libc::raise(libc::SIGHUP) };
        let ready = wait_readable(None, &signals, None, 1000).expect("poll");
        assert!(ready.signal && !ready.data && !ready.hangup);
        assert_eq!(signals.read().expect("read"), Some(Stop::Hangup));
        assert_eq!(signals.read().expect("read"), None);
        assert_eq!(Stop::Hangup.name(), "SIGHUP");
    }

    #[test]
    fn a_pipe_without_reader_is_a_hangup() {
        use std::os::fd::AsRawFd;
        let signals = StopSignals::block().expect("signalfd");
        let (reader, writer) = std::io::pipe().expect("pipe");
        let ready = wait_readable(None, &signals, Some(writer.as_raw_fd()), 0).expect("poll");
        assert!(!ready.hangup, "a reader is there");
        drop(reader);
        let ready = wait_readable(None, &signals, Some(writer.as_raw_fd()), 1000).expect("poll");
        assert!(ready.hangup && !ready.signal);
    }
}
