//! Pseudo-terminals for `srun --pty`: task 0 runs with one as its controlling terminal, and
//! the node part relays its master side to srun.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use gangway_api::slurm_step::WindowSize;

/// Both sides of a new pseudo-terminal.
pub struct Pty {
    /// The side the part reads and writes.
    pub master: OwnedFd,
    /// The task's terminal.
    pub slave: OwnedFd,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A pseudo-terminal of `size`.
pub fn open(size: WindowSize) -> io::Result<Pty> {
    // SAFETY: posix_openpt/grantpt/unlockpt/ptsname_r/open on a descriptor this function owns
    // and a buffer it owns; each result is checked before use.
    unsafe {
        let master = OwnedFd::from_raw_fd(check(libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC))?);
        check(libc::grantpt(master.as_raw_fd()))?;
        check(libc::unlockpt(master.as_raw_fd()))?;
        let mut name = [0 as libc::c_char; 128];
        let rc = libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let slave =
            OwnedFd::from_raw_fd(check(libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC))?);
        resize(&master, size)?;
        Ok(Pty { master, slave })
    }
}

/// Sets the terminal's size (its foreground processes get SIGWINCH).
pub fn resize(master: &impl AsRawFd, size: WindowSize) -> io::Result<()> {
    let ws = libc::winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize this function owns.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) }).map(drop)
}

/// In the task, before exec (its standard input already the terminal): a session of its own
/// with that terminal as its controlling one, so job control and Ctrl-C work as at a login.
pub fn take_as_controlling() -> io::Result<()> {
    // SAFETY: setsid and TIOCSCTTY on the process's own standard input.
    unsafe {
        check(libc::setsid())?;
        check(libc::ioctl(0, libc::TIOCSCTTY, 0)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_terminal_has_the_size_asked_for_and_follows_a_resize() {
        let p = open(WindowSize { rows: 31, cols: 101 }).unwrap();
        let size = |fd: &OwnedFd| {
            // SAFETY: winsize is plain data, all zeroes valid; TIOCGWINSZ fills the one we own.
            let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
            assert_eq!(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) }, 0);
            (ws.ws_row, ws.ws_col)
        };
        assert_eq!(size(&p.slave), (31, 101));
        resize(&p.master, WindowSize { rows: 50, cols: 200 }).unwrap();
        assert_eq!(size(&p.slave), (50, 200));
        // SAFETY: isatty on a descriptor we own.
        assert_eq!(unsafe { libc::isatty(p.slave.as_raw_fd()) }, 1);
    }
}
