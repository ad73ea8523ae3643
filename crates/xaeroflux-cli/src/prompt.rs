//! Reading a passphrase from the terminal without echoing it.
//!
//! On Unix, when the process has a controlling terminal, the prompt goes to
//! `/dev/tty` and the line is read from it with `ECHO` cleared (the terminal's previous
//! mode is restored afterwards, also on error), as `rpassword` and `ssh` do. Without a
//! terminal (a pipe, a service), one line is read from standard input.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};

/// Prompts with `prompt` and reads one line without echo; the line ending is removed.
pub(crate) fn read_hidden(prompt: &str) -> Result<String> {
    #[cfg(unix)]
    if let Ok(tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        return unix::read_from_tty(tty, prompt);
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the passphrase")?;
    Ok(trim_line(line))
}

fn trim_line(mut line: String) -> String {
    while line.ends_with(['\r', '\n']) {
        line.pop();
    }
    line
}

#[cfg(unix)]
mod unix {
    use std::fs::File;
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsRawFd;

    use anyhow::{Context, Result};

    /// Restores the terminal mode it saved, on drop.
    struct EchoOff {
        fd: i32,
        saved: libc::termios,
    }

    impl EchoOff {
        fn new(fd: i32) -> std::io::Result<Self> {
            // SAFETY: `termios` is plain data; tcgetattr fills it for a valid fd.
            let mut t: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: `fd` is an open descriptor owned by the caller for our lifetime.
            if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            t.c_lflag |= libc::ECHONL;
            // SAFETY: as above; `t` is a valid termios derived from the current one.
            if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Self { fd, saved })
        }
    }

    impl Drop for EchoOff {
        fn drop(&mut self) {
            // SAFETY: restores the mode read in `new` on the same open descriptor.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
        }
    }

    pub(super) fn read_from_tty(mut tty: File, prompt: &str) -> Result<String> {
        tty.write_all(prompt.as_bytes())
            .and_then(|()| tty.flush())
            .context("writing the prompt")?;
        let echo = EchoOff::new(tty.as_raw_fd()).context("turning terminal echo off")?;
        let mut line = String::new();
        let read = BufReader::new(&tty).read_line(&mut line);
        drop(echo);
        read.context("reading the passphrase")?;
        Ok(super::trim_line(line))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_endings_are_removed() {
        assert_eq!(super::trim_line("pass word\r\n".into()), "pass word");
        assert_eq!(super::trim_line("x\n".into()), "x");
        assert_eq!(super::trim_line("".into()), "");
    }
}
