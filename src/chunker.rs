//! Content-defined chunking: FastCDC (v2020) with a gear table seeded per vault.
//!
//! Boundaries depend only on content, so an insertion early in a file shifts one or two chunks, not all of them.
//! The seed comes from the vault's master secret: without it, chunk sizes reveal nothing about known content.
//! A chunk's cut point depends only on the bytes from its start up to `max` bytes later; the streaming reader keeps at
//! least that much buffered (or has reached the end), so streaming gives the same chunks as chunking in memory.

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};
use serde::{Deserialize, Serialize};
use std::io::{self, Read};

/// Chunk size limits in bytes; stored in the vault config so every backup into a vault cuts alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkerParams {
    /// 256 KiB / 1 MiB / 4 MiB: large enough that a 1 GB file is ~1000 index entries, small enough that a 1% change
    /// stores a few MiB.
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min: 256 * 1024,
        avg: 1024 * 1024,
        max: 4 * 1024 * 1024,
    };
}

/// A configured chunker; cheap to share between threads.
#[derive(Clone)]
pub struct Chunker {
    params: ChunkerParams,
    masks: (u64, u64),
    gear: Vec<u64>,
    gear_ls: Vec<u64>,
}

impl Chunker {
    pub fn new(params: ChunkerParams, seed: u64) -> Chunker {
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Chunker {
            params,
            masks: select_masks(params.avg as usize, Normalization::Level1),
            gear: gear.into_owned(),
            gear_ls: gear_ls.into_owned(),
        }
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the first chunk of `data`, given that `data` is everything up to the end of the stream or at least
    /// `max` bytes of it.
    pub fn cut(&self, data: &[u8]) -> usize {
        let p = self.params;
        if data.len() <= p.min as usize {
            return data.len();
        }
        let (s, l) = self.masks;
        let (_, n) = cut_gear(
            data,
            p.min as usize,
            p.avg as usize,
            p.max as usize,
            s,
            l,
            s << 1,
            l << 1,
            &self.gear,
            &self.gear_ls,
        );
        n
    }

    /// Chunks of a byte stream of unknown length, read in large blocks.
    pub fn stream<R: Read>(&self, reader: R) -> ChunkStream<'_, R> {
        self.stream_sized(reader, u64::MAX)
    }

    /// Chunks of a byte stream expected to hold `len` bytes (a hint: a stream that ends early or goes on is still
    /// chunked exactly). The buffer is sized from the hint, so a small file is read with one `read` and handed on
    /// without a copy.
    pub fn stream_sized<R: Read>(&self, reader: R, len: u64) -> ChunkStream<'_, R> {
        ChunkStream {
            chunker: self,
            reader,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            expected: len,
        }
    }
}

/// Yields the chunks of a reader in order; see `Chunker::stream`.
pub struct ChunkStream<'a, R> {
    chunker: &'a Chunker,
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// Bytes the stream is still expected to hold (the size hint less what was read).
    expected: u64,
}

impl<R: Read> ChunkStream<'_, R> {
    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let max = self.chunker.params.max as usize;
        if self.buf.len() - self.pos < max && !self.eof {
            self.refill(2 * max)?;
        }
        let avail = &self.buf[self.pos..];
        if avail.is_empty() {
            return Ok(None);
        }
        let n = self.chunker.cut(avail);
        if self.eof && self.pos == 0 && n == self.buf.len() {
            // The whole rest of the stream is one chunk (every small file): hand over the buffer itself.
            return Ok(Some(std::mem::take(&mut self.buf)));
        }
        let chunk = avail[..n].to_vec();
        self.pos += n;
        Ok(Some(chunk))
    }

    /// Drops consumed bytes and reads until `target` bytes are buffered or the stream ends.
    fn refill(&mut self, target: usize) -> io::Result<()> {
        self.buf.drain(..self.pos);
        self.pos = 0;
        let want = (target - self.buf.len()) as u64;
        // Room for what the hint promises (plus one byte, so reaching the end costs no buffer growth): then
        // `read_to_end` needs no small probe reads and no reallocations.
        self.buf.reserve(want.min(self.expected.saturating_add(1)) as usize);
        let got = (&mut self.reader).take(want).read_to_end(&mut self.buf)? as u64;
        self.expected = self.expected.saturating_sub(got);
        if got < want {
            self.eof = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams {
            min: 4096,
            avg: 16384,
            max: 65536,
        }
    }

    fn data(len: usize, seed: u64) -> Vec<u8> {
        crate::util::noise(len, seed)
    }

    fn all_chunks(c: &Chunker, d: &[u8]) -> Vec<Vec<u8>> {
        let mut s = c.stream(d);
        let mut out = Vec::new();
        while let Some(ch) = s.next_chunk().unwrap() {
            out.push(ch);
        }
        out
    }

    #[test]
    fn chunks_respect_limits_and_reassemble() {
        let c = Chunker::new(small(), 42);
        let d = data(1_000_000, 1);
        let chunks = all_chunks(&c, &d);
        assert!(chunks.len() > 20 && chunks.len() < 250, "{} chunks", chunks.len());
        for ch in &chunks[..chunks.len() - 1] {
            assert!(ch.len() >= 4096 && ch.len() <= 65536, "chunk of {}", ch.len());
        }
        assert_eq!(chunks.concat(), d);
    }

    #[test]
    fn seed_changes_boundaries() {
        let d = data(500_000, 3);
        let a: Vec<usize> = all_chunks(&Chunker::new(small(), 1), &d).iter().map(Vec::len).collect();
        let b: Vec<usize> = all_chunks(&Chunker::new(small(), 2), &d).iter().map(Vec::len).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn insertion_shifts_few_chunks() {
        let c = Chunker::new(small(), 7);
        let d = data(800_000, 5);
        let mut e = d.clone();
        e.splice(400_000..400_000, b"inserted bytes".iter().copied());
        let a = all_chunks(&c, &d);
        let b = all_chunks(&c, &e);
        let common = a.iter().filter(|x| b.contains(x)).count();
        assert!(
            common + 3 >= a.len(),
            "only {common} of {} chunks survive an insertion",
            a.len()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Streaming through a reader that returns tiny reads gives the same chunks as one in-memory pass, with or
        /// without a size hint, right or wrong.
        #[test]
        fn streaming_matches_memory(
            len in 0usize..300_000,
            seed in any::<u64>(),
            step in 1usize..5000,
            hint in proptest::option::of(0u64..400_000),
        ) {
            let c = Chunker::new(small(), seed);
            let d = data(len, seed);
            let mut expected = Vec::new();
            let mut rest = &d[..];
            while !rest.is_empty() {
                let n = c.cut(rest);
                expected.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            let reader = Trickle { data: &d, step };
            // A size hint, right or wrong, must not change the chunks.
            let mut s = match hint {
                Some(h) => c.stream_sized(reader, h),
                None => c.stream(reader),
            };
            let mut got = Vec::new();
            while let Some(ch) = s.next_chunk().unwrap() { got.push(ch); }
            prop_assert_eq!(got, expected);
        }
    }

    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }
}
