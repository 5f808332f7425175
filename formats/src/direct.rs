//! Sequential writing of large files past the page cache (`O_DIRECT`).
//!
//! A shard of a full-scale rank is several GB. Written through the page
//! cache, the kernel copies every byte into freshly allocated cache pages and
//! then throttles the writer while it flushes them: on the machines we
//! measured (`bench/RESULTS.md`) 6 GB took 23 s that way and 4.5 s with
//! `O_DIRECT`, whose writes go from our buffer to the device. The file is
//! written in aligned chunks from an aligned buffer; the last partial block
//! is written through the page cache, so the file ends exactly where the
//! data does.
//!
//! Where the file system refuses `O_DIRECT` (tmpfs on older kernels, some
//! network file systems) or a direct write fails with `EINVAL`, the writer
//! goes on through the page cache: the bytes written are the same either
//! way, and every other error is returned as it is.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Alignment of buffer addresses, file offsets and lengths of direct
/// writes: a multiple of every logical block size in use (512 or 4096).
const ALIGN: usize = 4096;
/// Bytes per direct write.
const CHUNK: usize = 8 << 20;

/// A [`Write`] that appends to `file` from `start` (a multiple of 4096, or
/// 0), past the page cache where it can. Call [`DirectWriter::finish`] at
/// the end: dropping it unfinished loses the buffered bytes.
pub struct DirectWriter<'f> {
    file: &'f File,
    /// `CHUNK + ALIGN` bytes, of which `buf[pad..pad + CHUNK]` is aligned.
    storage: Vec<u8>,
    pad: usize,
    /// Bytes buffered.
    len: usize,
    /// File offset of the buffer's first byte (aligned).
    offset: u64,
    direct: bool,
}

impl<'f> DirectWriter<'f> {
    /// A writer appending to `file` at offset 0, direct where the file
    /// system allows it.
    pub fn new(file: &'f File) -> Self {
        let storage = vec![0u8; CHUNK + ALIGN];
        let pad = storage.as_ptr().align_offset(ALIGN);
        let direct = set_direct(file, true).is_ok();
        DirectWriter {
            file,
            storage,
            pad,
            len: 0,
            offset: 0,
            direct,
        }
    }

    /// Whether writes still bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    fn chunk(&self) -> &[u8] {
        &self.storage[self.pad..self.pad + self.len]
    }

    /// Write `chunk()[..n]` (n aligned unless it is the last write) at
    /// `offset`, falling back to the page cache if a direct write is
    /// refused.
    fn write_out(&mut self, n: usize) -> std::io::Result<()> {
        let at = self.offset;
        let result = self.file.write_all_at(&self.chunk()[..n], at);
        match result {
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                self.direct = false;
                set_direct(self.file, false)?;
                self.file.write_all_at(&self.chunk()[..n], at)
            }
            other => other,
        }
    }

    /// Write what is buffered and leave the file as written so far, with
    /// `O_DIRECT` cleared. Returns the file offset after the last byte.
    pub fn finish(mut self) -> std::io::Result<u64> {
        let aligned = self.len / ALIGN * ALIGN;
        if self.direct && aligned > 0 {
            self.write_out(aligned)?;
        }
        let done = if self.direct { aligned } else { 0 };
        if self.direct {
            self.direct = false;
            set_direct(self.file, false)?;
        }
        if done < self.len {
            let at = self.offset + done as u64;
            self.file.write_all_at(&self.chunk()[done..], at)?;
        }
        Ok(self.offset + self.len as u64)
    }
}

impl Write for DirectWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.len == CHUNK {
            self.write_out(CHUNK)?;
            self.offset += CHUNK as u64;
            self.len = 0;
        }
        let n = data.len().min(CHUNK - self.len);
        let at = self.pad + self.len;
        self.storage[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        Ok(n)
    }

    /// Buffered bytes stay buffered until a whole chunk or
    /// [`DirectWriter::finish`]: a direct write must be aligned.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Set or clear `O_DIRECT` on an open file.
fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a file descriptor we own (borrowed from a live
    // `File`); F_GETFL takes no argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let new = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    if new == flags {
        return Ok(());
    }
    // SAFETY: as above; F_SETFL takes an int of status flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, new) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as u8 ^ (i >> 13) as u8)
            .collect()
    }

    /// Whatever the lengths of the pieces and of the whole (aligned or not,
    /// below, at and above a chunk), the file holds exactly the bytes
    /// written.
    #[test]
    fn file_holds_exactly_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        for (case, total) in [0, 1, 4095, 4096, 4097, CHUNK, CHUNK + 1, 2 * CHUNK + 12345]
            .into_iter()
            .enumerate()
        {
            let data = pattern(total);
            let path = dir.path().join(format!("f{case}"));
            let file = File::create_new(&path).unwrap();
            let mut w = DirectWriter::new(&file);
            let mut at = 0;
            let mut piece = 1;
            while at < total {
                let n = piece.min(total - at);
                w.write_all(&data[at..at + n]).unwrap();
                at += n;
                piece = piece * 7 + 3;
            }
            assert_eq!(w.finish().unwrap(), total as u64);
            file.sync_all().unwrap();
            drop(file);
            let mut back = Vec::new();
            File::open(&path).unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back.len(), total, "case {case}");
            assert!(back == data, "case {case}: contents differ");
        }
    }

    /// After `finish` the descriptor is an ordinary one again: a small
    /// unaligned write at offset 0 (the shard header) works.
    #[test]
    fn finish_clears_o_direct() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create_new(&path).unwrap();
        let mut w = DirectWriter::new(&file);
        w.write_all(&pattern(3 * ALIGN + 17)).unwrap();
        w.finish().unwrap();
        // SAFETY: F_GETFL on a live descriptor.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_DIRECT, 0);
        file.write_all_at(b"head", 0).unwrap();
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(&back[..4], b"head");
        assert_eq!(back[4..], pattern(3 * ALIGN + 17)[4..]);
    }
}
