//! Standard output of every printing subcommand: one writer that turns a closed pipe into a quiet exit.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`ringleader check | head -1`:
//! "failed printing to stdout: Broken pipe", exit 101), because Rust ignores SIGPIPE and the
//! write fails with `EPIPE` instead. Subcommands therefore write through [`stdout`], whose
//! writer returns a write error on a closed pipe as [`StdoutClosed`]; [`crate::run`] turns
//! that one error into success, so the command ends quietly with exit status 0.
use std::io::{self, BufWriter, Write};

use crate::CliError;

/// The reader of standard output went away (`EPIPE`): the command stops printing and ends
/// with exit status 0 (see [`crate::run`] for why not 141).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Run `f` with a buffered, locked standard output, then flush it. A write or flush that
/// fails because the reader closed the pipe comes back as an [`io::Error`] of kind
/// `BrokenPipe` carrying [`StdoutClosed`] (test with [`is_stdout_closed`]).
pub fn stdout<F>(f: F) -> Result<(), CliError>
where
    F: FnOnce(&mut dyn Write) -> Result<(), CliError>,
{
    let mut w = Tagged(BufWriter::new(io::stdout().lock()));
    f(&mut w)?;
    w.flush()?;
    Ok(())
}

/// Whether `err` is (or wraps, as an [`io::Error`]) the closed-stdout error of [`stdout`].
pub fn is_stdout_closed(err: &(dyn std::error::Error + 'static)) -> bool {
    if err.is::<StdoutClosed>() {
        return true;
    }
    err.downcast_ref::<io::Error>()
        .and_then(|e| e.get_ref())
        .is_some_and(|inner| inner.is::<StdoutClosed>())
}

/// A writer whose `BrokenPipe` errors are tagged [`StdoutClosed`], so that a broken pipe
/// elsewhere (a proxied connection, say) is never mistaken for a closed standard output.
struct Tagged<W>(W);

fn tag(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        e
    }
}

impl<W: Write> Write for Tagged<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(tag)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(tag)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader has gone.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn only_a_broken_pipe_of_the_tagged_writer_counts_as_closed_stdout() {
        let err: CliError = writeln!(Tagged(Closed), "x").unwrap_err().into();
        assert!(is_stdout_closed(&*err));
        let other: CliError = io::Error::from(io::ErrorKind::BrokenPipe).into();
        assert!(!is_stdout_closed(&*other));
        let other: CliError = "cannot read ringleader.toml".into();
        assert!(!is_stdout_closed(&*other));
    }
}
