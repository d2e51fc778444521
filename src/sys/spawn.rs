//! Starting a command that waits for a go-ahead: fork, let the parent set up tracing for the
//! child's pid, then exec.
//!
//! std's `Command::spawn` returns only after the child has exec'd (it waits on a close-on-exec
//! pipe for an exec error), so a child that waits for its parent before exec would deadlock
//! it. Here the child blocks reading a pipe until [`HeldChild::release`] writes to it, and
//! reports an `execve` error through a second, close-on-exec pipe, which [`HeldChild::release`]
//! reads: end of file means the exec succeeded.
//!
//! Everything the child needs (the resolved path, argv, envp) is built before `fork`, so the
//! child calls only async-signal-safe functions (`read`, `write`, `sigprocmask`, `signal`,
//! `execve`, `_exit`). The child restores an empty signal mask and SIGPIPE's default action,
//! which the Rust runtime and [`super::signals`] change in the parent.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::SyscallError;

/// A forked child waiting to exec its command.
#[derive(Debug)]
pub struct HeldChild {
    pid: i32,
    go: Option<OwnedFd>,
    exec_error: OwnedFd,
    reaped: bool,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

impl ExitStatus {
    /// The status as a shell reports it: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit status {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// The file `$PATH` lookup finds for `program`, as `execvp` would (a name with `/` is taken
/// as it is), or None.
pub fn find_program(program: &OsStr) -> Option<PathBuf> {
    let p = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| c.is_file())
}

fn cstring(what: &str, s: &OsStr) -> Result<CString, SyscallError> {
    CString::new(s.as_bytes()).map_err(|_| SyscallError {
        call: format!("execve: {what} holds a NUL byte"),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SyscallError> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a live array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(SyscallError::last("pipe2"));
    }
    // SAFETY: both fds were just returned by pipe2 and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl HeldChild {
    /// [`HeldChild::fork`] of a command line: `argv[0]` looked up in `$PATH` as `execvp`
    /// would; a program not found is the `execve` error ENOENT.
    pub fn command(argv: &[String]) -> Result<HeldChild, SyscallError> {
        let not_found = |what: &str| SyscallError {
            call: format!("execve({what})"),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        let program = argv.first().ok_or_else(|| not_found("an empty command"))?;
        let path = find_program(OsStr::new(program)).ok_or_else(|| not_found(program))?;
        let args: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
        HeldChild::fork(&path, &args)
    }

    /// Fork a child that will run `path` with `args` (argv[0] included) once released.
    pub fn fork(path: &Path, args: &[&OsStr]) -> Result<HeldChild, SyscallError> {
        let c_path = cstring("the program path", path.as_os_str())?;
        let c_args = args
            .iter()
            .map(|a| cstring("an argument", a))
            .collect::<Result<Vec<_>, _>>()?;
        let c_env = std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv)
            })
            .filter_map(Result::ok)
            .collect::<Vec<_>>();
        // The comm the command will have after exec (its file name, cut to 15 bytes), set in
        // the child while it waits: tracers that saved the comm before the exec (ftrace's
        // saved_cmdlines on 6.1) then show the command's name, not "rprobe".
        let base = path.file_name().map_or(&b""[..], |n| n.as_bytes());
        let comm = CString::new(base.get(..base.len().min(15)).unwrap_or_default()).ok();
        let mut argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = c_env.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        let (go_read, go_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        // SAFETY: fork has no memory-safety preconditions; the child below only calls
        // async-signal-safe functions on data prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(SyscallError::last("fork"));
        }
        if pid == 0 {
            // SAFETY: child side of fork: only async-signal-safe calls, then execve or _exit.
            unsafe {
                // This process's own copies of the parent's ends: with them open the
                // go-ahead pipe would never reach end of file.
                libc::close(go_write.as_raw_fd());
                libc::close(err_read.as_raw_fd());
                if let Some(c) = &comm {
                    libc::prctl(libc::PR_SET_NAME, c.as_ptr());
                }
                let mut byte = 0u8;
                let n = libc::read(go_read.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
                if n != 1 {
                    // The parent went away or gave up: do not run the command untraced.
                    libc::_exit(126);
                }
                let mut empty: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut empty);
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::execve(c_path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                let errno = *libc::__errno_location();
                let bytes = errno.to_ne_bytes();
                libc::write(err_write.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
                libc::_exit(127);
            }
        }
        drop(go_read);
        drop(err_write);
        Ok(HeldChild {
            pid,
            go: Some(go_write),
            exec_error: err_read,
            reaped: false,
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Let the child exec, and wait until it has: the error is the `execve` failure.
    pub fn release(&mut self) -> Result<(), SyscallError> {
        let Some(go) = self.go.take() else {
            return Ok(());
        };
        let byte = 1u8;
        // SAFETY: writes one byte from a live local.
        let n = unsafe { libc::write(go.as_raw_fd(), (&byte as *const u8).cast(), 1) };
        if n != 1 {
            return Err(SyscallError::last("write(go-ahead pipe)"));
        }
        drop(go);
        let mut buf = [0u8; 4];
        let n = loop {
            // SAFETY: buf is a live 4-byte buffer.
            let n = unsafe { libc::read(self.exec_error.as_raw_fd(), buf.as_mut_ptr().cast(), 4) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break n;
        };
        if n == 4 {
            let _ = self.wait();
            return Err(SyscallError {
                call: "execve".into(),
                source: std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf)),
            });
        }
        Ok(())
    }

    /// Reap the child if it has exited (`waitpid(WNOHANG)`).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, SyscallError> {
        self.waitpid(libc::WNOHANG)
    }

    /// Wait for the child to exit.
    pub fn wait(&mut self) -> Result<Option<ExitStatus>, SyscallError> {
        self.waitpid(0)
    }

    fn waitpid(&mut self, flags: i32) -> Result<Option<ExitStatus>, SyscallError> {
        if self.reaped {
            return Ok(None);
        }
        let mut status = 0;
        loop {
            // SAFETY: status is a live int; pid is our own child.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, flags) };
            if rc < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(SyscallError {
                    call: "waitpid".into(),
                    source: err,
                });
            }
            if rc == 0 {
                return Ok(None);
            }
            break;
        }
        if libc::WIFEXITED(status) {
            self.reaped = true;
            Ok(Some(ExitStatus::Code(libc::WEXITSTATUS(status))))
        } else if libc::WIFSIGNALED(status) {
            self.reaped = true;
            Ok(Some(ExitStatus::Signal(libc::WTERMSIG(status))))
        } else {
            Ok(None)
        }
    }

    /// Send `signal` to the child (while it has not been reaped).
    pub fn kill(&self, signal: i32) {
        if !self.reaped {
            // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { libc::kill(self.pid, signal) };
        }
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        // A child never released exits on its own when the go-ahead pipe closes; one that
        // runs is ended (the caller stopped early, on an error).
        let released = self.go.take().is_none();
        if !self.reaped {
            if released {
                self.kill(libc::SIGTERM);
            }
            let _ = self.wait();
        }
    }
}

/// Whether a process with this pid exists (`kill(pid, 0)` succeeds or fails with EPERM).
pub fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A held child keeps every fd open at its fork until it execs, including another test's
    /// go-ahead pipe, so two held children forked at once by parallel tests can wait on each
    /// other for ever. rprobe forks from one thread; the tests take turns.
    fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
        TURN.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn a_held_child_runs_only_after_release_and_reports_its_status() {
        let _turn = one_at_a_time();
        let sh = find_program(OsStr::new("sh")).expect("sh in PATH");
        let args = [OsStr::new("sh"), OsStr::new("-c"), OsStr::new("exit 7")];
        let mut child = HeldChild::fork(&sh, &args).expect("fork");
        assert!(process_exists(child.pid()));
        // The child renames itself before it waits; give it a moment to get there.
        let comm_of = || std::fs::read_to_string(format!("/proc/{}/comm", child.pid()));
        let mut comm = comm_of().unwrap_or_default();
        for _ in 0..200 {
            if comm.trim() == "sh" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            comm = comm_of().unwrap_or_default();
        }
        assert_eq!(
            comm.trim(),
            "sh",
            "the held child is named after its command"
        );
        assert_eq!(
            child.try_wait().expect("wait"),
            None,
            "exited before release"
        );
        child.release().expect("exec");
        assert_eq!(child.wait().expect("wait"), Some(ExitStatus::Code(7)));
    }

    #[test]
    fn an_exec_failure_comes_back_from_release() {
        let _turn = one_at_a_time();
        let args = [OsStr::new("x")];
        let mut child = HeldChild::fork(Path::new("/"), &args).expect("fork");
        let err = child.release().expect_err("/ is not executable");
        assert_eq!(err.errno(), Some(libc::EACCES), "{err}");
        assert!(find_program(OsStr::new("no-such-program-rprobe")).is_none());
        assert!(!process_exists(0) && !process_exists(u32::MAX));
    }

    #[test]
    fn a_child_never_released_exits_without_running() {
        let _turn = one_at_a_time();
        let sh = find_program(OsStr::new("sh")).expect("sh in PATH");
        let args = [OsStr::new("sh"), OsStr::new("-c"), OsStr::new("exit 0")];
        let mut child = HeldChild::fork(&sh, &args).expect("fork");
        child.go = None;
        assert_eq!(child.wait().expect("wait"), Some(ExitStatus::Code(126)));
    }
}
