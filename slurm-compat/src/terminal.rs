//! srun's own terminal under `--pty`: its size, sent to the task's pseudo-terminal, and raw
//! mode while the step runs, so every key (Ctrl-C and Ctrl-D included) reaches the task.

use gangway_api::slurm_step::WindowSize;

/// Carries the size to an srun that runs elsewhere on this one's behalf (under `salloc`, or
/// outside an allocation), whose own input is no terminal.
pub const SIZE_ENV: &str = "GANGWAY_PTY_SIZE";

/// The size of srun's terminal: its input's, else [`SIZE_ENV`]'s `ROWSxCOLS`, else 24×80.
pub fn size() -> WindowSize {
    // SAFETY: winsize is plain data, all zeroes valid; TIOCGWINSZ fills the one we own.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 && ws.ws_col > 0 {
        return WindowSize { rows: ws.ws_row, cols: ws.ws_col };
    }
    std::env::var(SIZE_ENV).ok().and_then(|v| parse_size(&v)).unwrap_or(WindowSize { rows: 24, cols: 80 })
}

fn parse_size(v: &str) -> Option<WindowSize> {
    let (r, c) = v.split_once('x')?;
    Some(WindowSize { rows: r.parse().ok().filter(|&n| n > 0)?, cols: c.parse().ok().filter(|&n| n > 0)? })
}

/// `ROWSxCOLS`, as [`SIZE_ENV`] carries it.
pub fn size_text(s: WindowSize) -> String {
    format!("{}x{}", s.rows, s.cols)
}

/// Raw mode on srun's input while this lives (nothing when the input is no terminal); the
/// settings it found come back when it drops.
pub struct Raw(Option<libc::termios>);

impl Raw {
    /// Switches the input terminal to raw mode.
    pub fn enter() -> Raw {
        // SAFETY: isatty/tcgetattr/cfmakeraw/tcsetattr on standard input with termios values we own.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::isatty(0) != 1 || libc::tcgetattr(0, &mut saved) != 0 {
                return Raw(None);
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            // Output keeps its newline translation, so srun's own messages stay readable.
            raw.c_oflag |= libc::OPOST;
            if libc::tcsetattr(0, libc::TCSADRAIN, &raw) != 0 {
                return Raw(None);
            }
            Raw(Some(saved))
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the settings tcgetattr returned.
            unsafe { libc::tcsetattr(0, libc::TCSADRAIN, saved) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_rows_by_columns() {
        assert_eq!(parse_size("30x100"), Some(WindowSize { rows: 30, cols: 100 }));
        assert_eq!(size_text(WindowSize { rows: 30, cols: 100 }), "30x100");
        for bad in ["", "30", "0x80", "24x", "ax80"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
