//! Standard input, output and error: inherited from the host, backed by a
//! host file, or in-memory pipes the embedder fills and reads.

use crate::errno::{Errno, WasiResult};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain bytes behind; keep going.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Bytes the guest reads from standard input, provided by the host.
/// Clones share the same buffer, so the host may keep one and [`push`]
/// more input (reads return end-of-file while it is empty).
///
/// [`push`]: MemoryInputPipe::push
#[derive(Clone, Debug, Default)]
pub struct MemoryInputPipe {
    buf: Arc<Mutex<VecDeque<u8>>>,
}

impl MemoryInputPipe {
    /// A pipe holding `bytes`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        MemoryInputPipe { buf: Arc::new(Mutex::new(VecDeque::from(bytes.into()))) }
    }

    /// Appends more input.
    pub fn push(&self, bytes: &[u8]) {
        lock(&self.buf).extend(bytes);
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        lock(&self.buf).len()
    }

    fn read(&self, out: &mut [u8]) -> usize {
        let mut buf = lock(&self.buf);
        let n = out.len().min(buf.len());
        for (dst, src) in out.iter_mut().zip(buf.drain(..n)) {
            *dst = src;
        }
        n
    }
}

/// A buffer collecting what the guest writes to standard output or error.
/// Clones share the buffer: give one to [`WasiCtxBuilder::stdout`] and read
/// the other's [`contents`] after the run.
///
/// [`WasiCtxBuilder::stdout`]: crate::WasiCtxBuilder::stdout
/// [`contents`]: MemoryOutputPipe::contents
#[derive(Clone, Debug)]
pub struct MemoryOutputPipe {
    buf: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl MemoryOutputPipe {
    /// A pipe that accepts up to `capacity` bytes; writes past it fail with
    /// `nospc` after storing what fits.
    pub fn new(capacity: usize) -> Self {
        MemoryOutputPipe { buf: Arc::new(Mutex::new(Vec::new())), capacity }
    }

    /// A copy of everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        lock(&self.buf).clone()
    }

    /// Everything written so far, as text (invalid UTF-8 replaced).
    pub fn contents_string(&self) -> String {
        String::from_utf8_lossy(&lock(&self.buf)).into_owned()
    }

    fn write(&self, data: &[u8]) -> WasiResult<usize> {
        let mut buf = lock(&self.buf);
        let room = self.capacity.saturating_sub(buf.len());
        if room == 0 && !data.is_empty() {
            return Err(Errno::NoSpc);
        }
        let n = room.min(data.len());
        buf.extend_from_slice(&data[..n]);
        Ok(n)
    }
}

impl Default for MemoryOutputPipe {
    /// An unbounded pipe.
    fn default() -> Self {
        MemoryOutputPipe::new(usize::MAX)
    }
}

/// Where the guest's standard input comes from.
#[derive(Debug, Default)]
pub enum InputStream {
    /// Nothing: reads return end-of-file at once.
    #[default]
    Empty,
    /// The host process's standard input.
    Inherit,
    /// Bytes provided by the host.
    Pipe(MemoryInputPipe),
    /// A file (or pipe, or terminal) the host opened.
    File(std::fs::File),
}

impl From<MemoryInputPipe> for InputStream {
    fn from(p: MemoryInputPipe) -> Self {
        InputStream::Pipe(p)
    }
}

impl From<std::fs::File> for InputStream {
    fn from(f: std::fs::File) -> Self {
        InputStream::File(f)
    }
}

/// Where the guest's standard output or error goes.
#[derive(Debug, Default)]
pub enum OutputStream {
    /// Nowhere: writes succeed and are discarded.
    #[default]
    Sink,
    /// The host process's own standard output (for fd 1) or error (fd 2).
    Inherit,
    /// A buffer the host reads afterwards.
    Pipe(MemoryOutputPipe),
    /// A file (or pipe, or terminal) the host opened.
    File(std::fs::File),
}

impl From<MemoryOutputPipe> for OutputStream {
    fn from(p: MemoryOutputPipe) -> Self {
        OutputStream::Pipe(p)
    }
}

impl From<std::fs::File> for OutputStream {
    fn from(f: std::fs::File) -> Self {
        OutputStream::File(f)
    }
}

/// Which standard stream an inherited stream stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StdioKind {
    Stdout,
    Stderr,
}

/// A stream descriptor: one of the standard streams, wherever it leads.
#[derive(Debug)]
pub(crate) enum Stream {
    Input(InputStream),
    Output(OutputStream, StdioKind),
}

impl Stream {
    /// The host file descriptor behind the stream, when there is one.
    pub fn host_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Stream::Input(InputStream::Inherit) => Some(rustix::stdio::stdin()),
            Stream::Input(InputStream::File(f)) | Stream::Output(OutputStream::File(f), _) => Some(f.as_fd()),
            Stream::Output(OutputStream::Inherit, StdioKind::Stderr) => Some(rustix::stdio::stderr()),
            Stream::Output(OutputStream::Inherit, _) => Some(rustix::stdio::stdout()),
            _ => None,
        }
    }

    /// Whether this stream can be read from.
    pub fn is_input(&self) -> bool {
        matches!(self, Stream::Input(_))
    }

    /// Bytes ready to read without blocking, for in-memory input.
    pub fn buffered(&self) -> Option<u64> {
        match self {
            Stream::Input(InputStream::Pipe(p)) => Some(p.remaining() as u64),
            Stream::Input(InputStream::Empty) => Some(0),
            _ => None,
        }
    }

    /// Reads into `out`. Takes `&self`: a stream may be shared by threads.
    pub fn read(&self, out: &mut [u8]) -> WasiResult<usize> {
        match self {
            Stream::Input(InputStream::Empty) => Ok(0),
            // Straight from fd 0, not through std's buffer: `poll_oneoff`
            // polls the descriptor, and must not miss bytes std has taken.
            Stream::Input(InputStream::Inherit) => loop {
                match rustix::io::read(rustix::stdio::stdin(), &mut *out) {
                    Err(rustix::io::Errno::INTR) => continue,
                    r => return Ok(r?),
                }
            },
            Stream::Input(InputStream::Pipe(p)) => Ok(p.read(out)),
            Stream::Input(InputStream::File(f)) => Ok(Read::read(&mut &*f, out)?),
            Stream::Output(..) => Err(Errno::Badf),
        }
    }

    /// Writes all of `data` (a short count only when the pipe is full).
    pub fn write(&self, data: &[u8]) -> WasiResult<usize> {
        match self {
            Stream::Input(_) => Err(Errno::Badf),
            Stream::Output(OutputStream::Sink, _) => Ok(data.len()),
            Stream::Output(OutputStream::Pipe(p), _) => p.write(data),
            Stream::Output(OutputStream::File(f), _) => {
                Write::write_all(&mut &*f, data)?;
                Ok(data.len())
            }
            Stream::Output(OutputStream::Inherit, StdioKind::Stderr) => {
                let mut e = std::io::stderr().lock();
                e.write_all(data)?;
                Ok(data.len())
            }
            Stream::Output(OutputStream::Inherit, _) => {
                // The guest buffers on its own; flush so output interleaves
                // with stderr the way the program wrote it.
                let mut o = std::io::stdout().lock();
                o.write_all(data)?;
                o.flush()?;
                Ok(data.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes() {
        let input = MemoryInputPipe::new(b"hello".to_vec());
        let s = Stream::Input(input.clone().into());
        let mut buf = [0u8; 3];
        assert_eq!(s.read(&mut buf), Ok(3));
        assert_eq!(&buf, b"hel");
        assert_eq!(input.remaining(), 2);
        input.push(b"!");
        let mut rest = [0u8; 8];
        assert_eq!(s.read(&mut rest), Ok(3));
        assert_eq!(&rest[..3], b"lo!");
        assert_eq!(s.read(&mut rest), Ok(0));
        assert_eq!(s.write(b"x"), Err(Errno::Badf));

        let out = MemoryOutputPipe::new(4);
        let o = Stream::Output(out.clone().into(), StdioKind::Stdout);
        assert_eq!(o.write(b"abc"), Ok(3));
        assert_eq!(o.write(b"def"), Ok(1));
        assert_eq!(o.write(b"g"), Err(Errno::NoSpc));
        assert_eq!(out.contents(), b"abcd");
        assert_eq!(o.read(&mut rest), Err(Errno::Badf));
    }
}
