//! Network shards: one file per rank, `rank-NNNNN.shard`.
//!
//! ```text
//! offset 0    header (256 bytes, little-endian, see `ShardHeader`), with its
//!             own xxh3 checksum in the last 8 bytes
//! offset 256  payload: an rkyv archive of `ShardData` (64-bit relative
//!             pointers, so shards may exceed 2 GiB), optionally zstd
//!             compressed; the header holds the xxh3 of the uncompressed
//!             archive and of the bytes as stored
//! ```
//! Opening always checks the header, the file length and the archive
//! structure (rkyv's validation plus the cross-field invariants in
//! [`check_structure`]); [`Check::Full`] also verifies the checksum and every
//! synapse. After that the archive is read zero-copy from the memory map
//! (plain shards) or from a decompressed buffer (compressed shards).
//!
//! Synapse layout (target side, CSR grouped by source): rows are the rank's
//! own neurons (local index order) followed by the images of remote neurons,
//! grouped by owning rank and sorted by global id inside each group. Each
//! synapse is 8 bytes: a `u32` holding the local target in its low
//! `target_bits` bits and the delay in steps above them, and an `i32`
//! fixed-point weight (`weight_frac_bits` fraction bits). Inside a row,
//! synapses are in canonical order: by target, then projection, then the
//! synapse's index among that target's synapses of the projection.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rkyv::rancor;
use rkyv::util::AlignedVec;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::direct::DirectWriter;
use crate::error::FormatError;

/// File magic.
pub const SHARD_MAGIC: [u8; 8] = *b"SNNSHARD";
/// Version of the shard layout; bump on any change of `ShardData` or the
/// header. Readers refuse other versions.
pub const SHARD_FORMAT_VERSION: u32 = 1;
/// Header size in bytes (a multiple of 16 so the archive is aligned).
pub const HEADER_LEN: usize = 256;
const ENDIAN_MARK: u32 = 0x0A0B_0C0D;
const FLAG_ZSTD: u32 = 1;

/// Everything a rank needs: its neurons, incoming synapses, routing tables.
///
/// Do not reorder or change fields without bumping [`SHARD_FORMAT_VERSION`].
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ShardData {
    /// This shard's rank.
    pub rank: u32,
    /// Ranks of the network.
    pub n_ranks: u32,
    /// Hash of the model (config after overrides, format version).
    pub model_hash: [u8; 16],
    /// Neurons in the whole network.
    pub n_neurons: u64,
    /// Fraction bits of the fixed-point weights.
    pub weight_frac_bits: u32,
    /// Bits of the packed synapse word that hold the local target.
    pub target_bits: u32,
    /// Smallest delay on this shard, steps (0 if no synapse).
    pub min_delay_steps: u32,
    /// Largest delay on this shard, steps.
    pub max_delay_steps: u32,
    /// Global id of each local neuron (increasing).
    pub local_to_global: Vec<u64>,
    /// `n_ranks + 1` prefix offsets into `images` per source rank.
    pub image_offsets: Vec<u64>,
    /// Global ids of remote neurons with targets here, grouped by owner rank,
    /// sorted inside each group. Image `i` is row `n_local + i`.
    pub images: Vec<u64>,
    /// `n_ranks + 1` prefix offsets into `send` per destination rank.
    pub send_offsets: Vec<u64>,
    /// For each destination rank, the local indices (increasing) of own
    /// neurons that rank needs; a spike travels as its position here, which
    /// is the same as its position in the destination's image group.
    pub send: Vec<u32>,
    /// CSR row offsets, `n_local + images.len() + 1` entries.
    pub row_ptr: Vec<u64>,
    /// Packed (local target, delay steps) per synapse.
    pub syn_target_delay: Vec<u32>,
    /// Fixed-point weight per synapse.
    pub syn_weight: Vec<i32>,
    /// Synapses per projection on this shard (config order).
    pub projection_synapses: Vec<u64>,
}

/// The fixed-size header of a shard file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardHeader {
    /// Format version.
    pub format_version: u32,
    /// Payload is zstd-compressed.
    pub compressed: bool,
    /// Length of the (uncompressed) archive.
    pub payload_len: u64,
    /// Length of the payload as stored.
    pub stored_len: u64,
    /// xxh3-64 of the uncompressed archive.
    pub payload_xxh3: u64,
    /// Rank.
    pub rank: u32,
    /// Ranks of the network.
    pub n_ranks: u32,
    /// Model hash.
    pub model_hash: [u8; 16],
    /// Synapses in the shard.
    pub n_synapses: u64,
    /// Own neurons.
    pub n_local: u64,
    /// Images of remote neurons.
    pub n_images: u64,
    /// xxh3-64 of the 256 header bytes (recorded in the manifest; since the
    /// header holds the payload checksums, it identifies the whole file).
    pub header_xxh3: u64,
    /// xxh3-64 of the payload as stored (the compressed bytes of a
    /// compressed shard: some changes to a zstd frame decompress to the same
    /// archive, so `payload_xxh3` alone does not pin them).
    pub stored_xxh3: u64,
}

impl ShardHeader {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&SHARD_MAGIC);
        b[8..12].copy_from_slice(&self.format_version.to_le_bytes());
        b[12..16].copy_from_slice(&ENDIAN_MARK.to_le_bytes());
        b[16..20].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[20..24].copy_from_slice(&(if self.compressed { FLAG_ZSTD } else { 0 }).to_le_bytes());
        b[24..32].copy_from_slice(&self.payload_len.to_le_bytes());
        b[32..40].copy_from_slice(&self.stored_len.to_le_bytes());
        b[40..48].copy_from_slice(&self.payload_xxh3.to_le_bytes());
        b[48..52].copy_from_slice(&self.rank.to_le_bytes());
        b[52..56].copy_from_slice(&self.n_ranks.to_le_bytes());
        b[56..72].copy_from_slice(&self.model_hash);
        b[72..80].copy_from_slice(&self.n_synapses.to_le_bytes());
        b[80..88].copy_from_slice(&self.n_local.to_le_bytes());
        b[88..96].copy_from_slice(&self.n_images.to_le_bytes());
        b[96..104].copy_from_slice(&self.stored_xxh3.to_le_bytes());
        let sum = xxh3_64(&b[..HEADER_LEN - 8]);
        b[HEADER_LEN - 8..].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Decode and check a header (magic, version, endianness, checksum).
    pub fn decode(path: &Path, b: &[u8]) -> Result<ShardHeader, FormatError> {
        let bad = |m: String| FormatError::corrupt(path, m);
        if b.len() < HEADER_LEN {
            return Err(bad(format!(
                "truncated shard: {} bytes, shorter than the {HEADER_LEN}-byte header",
                b.len()
            )));
        }
        if b[0..8] != SHARD_MAGIC {
            return Err(bad("not an snn shard (bad magic)".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(x)
        };
        if u32_at(12) != ENDIAN_MARK {
            return Err(bad("shard written with another byte order".into()));
        }
        let version = u32_at(8);
        if version != SHARD_FORMAT_VERSION {
            return Err(bad(format!(
                "shard format version {version}, this build reads version {SHARD_FORMAT_VERSION} (rebuild the network)"
            )));
        }
        if u64_at(HEADER_LEN - 8) != xxh3_64(&b[..HEADER_LEN - 8]) {
            return Err(bad("header checksum mismatch (corrupt shard)".into()));
        }
        if u32_at(16) as usize != HEADER_LEN {
            return Err(bad("unexpected header length".into()));
        }
        let flags = u32_at(20);
        if flags & !FLAG_ZSTD != 0 {
            return Err(bad(format!("unknown shard flags {flags:#x}")));
        }
        let mut model_hash = [0u8; 16];
        model_hash.copy_from_slice(&b[56..72]);
        Ok(ShardHeader {
            format_version: version,
            compressed: flags & FLAG_ZSTD != 0,
            payload_len: u64_at(24),
            stored_len: u64_at(32),
            payload_xxh3: u64_at(40),
            rank: u32_at(48),
            n_ranks: u32_at(52),
            model_hash,
            n_synapses: u64_at(72),
            n_local: u64_at(80),
            n_images: u64_at(88),
            header_xxh3: xxh3_64(&b[..HEADER_LEN]),
            stored_xxh3: u64_at(96),
        })
    }
}

/// File name of rank `rank`'s shard.
pub fn shard_file_name(rank: u32) -> String {
    format!("rank-{rank:05}.shard")
}

/// What was written.
#[derive(Clone, Debug)]
pub struct WrittenShard {
    /// Bytes on disk.
    pub file_bytes: u64,
    /// Bytes of the uncompressed archive.
    pub payload_bytes: u64,
    /// xxh3-64 of the header (see [`ShardHeader::header_xxh3`]).
    pub header_xxh3: u64,
}

struct HashingWriter<W> {
    inner: W,
    hash: Xxh3,
    len: u64,
    /// The first error of the inner writer (rkyv's serialiser reports a
    /// writer's error without its cause: the cause is taken from here).
    error: Option<std::io::Error>,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hash: Xxh3::new(),
            len: 0,
            error: None,
        }
    }

    /// The error that made serialising fail: the writer's own (e.g. "No
    /// space left on device") when it had one, else the serialiser's.
    fn failure(&mut self, serialiser: impl std::fmt::Display) -> std::io::Error {
        self.error
            .take()
            .unwrap_or_else(|| std::io::Error::other(serialiser.to_string()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.inner.write(buf) {
            Ok(n) => {
                self.hash.update(&buf[..n]);
                self.len += n as u64;
                Ok(n)
            }
            Err(e) => Err(self.keep(e)),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().map_err(|e| self.keep(e))
    }
}

impl<W> HashingWriter<W> {
    /// Remember the first error and pass on a copy of its kind and text.
    fn keep(&mut self, e: std::io::Error) -> std::io::Error {
        let copy = std::io::Error::new(e.kind(), e.to_string());
        if self.error.is_none() {
            self.error = Some(e);
        }
        copy
    }
}

/// Write a shard to `path` (which must not exist yet: shards are written into
/// a fresh staging directory). With `zstd_level`, the payload is compressed.
/// The file is fsynced before returning.
pub fn write_shard(
    path: &Path,
    data: &ShardData,
    zstd_level: Option<i32>,
) -> Result<WrittenShard, FormatError> {
    let io = |op, e| FormatError::io(path, op, e);
    let mut file = File::options()
        .write(true)
        .read(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io("create", e))?;
    // Past the page cache where the file system allows it: several times
    // faster for the GB of a full-scale rank (see `crate::direct`).
    let mut buffered = DirectWriter::new(&file);
    buffered
        .write_all(&[0u8; HEADER_LEN])
        .map_err(|e| io("write", e))?;
    // Hash of the archive bytes and, for compressed shards, of the stored
    // bytes.
    let (payload_len, payload_xxh3, stored_len, stored_xxh3) = match zstd_level {
        None => {
            let mut hw = HashingWriter::new(buffered);
            if let Err(e) = rkyv::api::high::to_bytes_in::<_, rancor::Error>(
                data,
                rkyv::ser::writer::IoWriter::new(&mut hw),
            ) {
                return Err(io("write", hw.failure(e)));
            }
            hw.inner.finish().map_err(|e| io("write", e))?;
            (hw.len, hw.hash.digest(), hw.len, hw.hash.digest())
        }
        Some(level) => {
            let counting = HashingWriter::new(buffered);
            let enc = zstd::Encoder::new(counting, level).map_err(|e| io("compress", e))?;
            let mut hw = HashingWriter::new(enc);
            if let Err(e) = rkyv::api::high::to_bytes_in::<_, rancor::Error>(
                data,
                rkyv::ser::writer::IoWriter::new(&mut hw),
            ) {
                return Err(io("write", hw.failure(e)));
            }
            let (plen, psum) = (hw.len, hw.hash.digest());
            let counting = hw.inner.finish().map_err(|e| io("write", e))?;
            counting.inner.finish().map_err(|e| io("write", e))?;
            (plen, psum, counting.len, counting.hash.digest())
        }
    };
    let header = ShardHeader {
        format_version: SHARD_FORMAT_VERSION,
        compressed: zstd_level.is_some(),
        payload_len,
        stored_len,
        payload_xxh3,
        rank: data.rank,
        n_ranks: data.n_ranks,
        model_hash: data.model_hash,
        n_synapses: data.syn_weight.len() as u64,
        n_local: data.local_to_global.len() as u64,
        n_images: data.images.len() as u64,
        header_xxh3: 0,
        stored_xxh3,
    };
    let encoded = header.encode();
    file.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
    file.write_all(&encoded).map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("fsync", e))?;
    Ok(WrittenShard {
        file_bytes: HEADER_LEN as u64 + stored_len,
        payload_bytes: payload_len,
        header_xxh3: xxh3_64(&encoded),
    })
}

/// xxh3-64 of a whole file, streamed.
pub fn hash_file(path: &Path) -> Result<u64, FormatError> {
    use std::io::Read;
    let mut f = File::open(path).map_err(|e| FormatError::io(path, "open", e))?;
    let mut h = Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| FormatError::io(path, "read", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.digest())
}

/// How much to check when opening a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    /// Header, length, archive structure and cross-field invariants: enough
    /// for memory safety, O(rows).
    Structure,
    /// Also the payload checksum (xxh3, several GB/s): detects any
    /// corruption. The default of every loader.
    Checksum,
    /// Also every synapse's target and delay.
    Full,
}

enum Backing {
    Map(memmap2::Mmap),
    Owned(AlignedVec<16>),
}

/// An open, validated shard.
pub struct Shard {
    path: PathBuf,
    header: ShardHeader,
    backing: Backing,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("path", &self.path)
            .field("header", &self.header)
            .finish()
    }
}

impl Shard {
    /// Open and validate a shard.
    pub fn open(path: &Path, check: Check) -> Result<Shard, FormatError> {
        let file = File::open(path).map_err(|e| FormatError::io(path, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| FormatError::io(path, "stat", e))?
            .len();
        // SAFETY: the map is read-only and shards are never modified after
        // they are written (they are written to a staging directory and
        // renamed into place); a file truncated by another process while
        // mapped is outside this contract, as for every mmap reader.
        let map =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| FormatError::io(path, "mmap", e))?;
        let header = ShardHeader::decode(path, &map[..map.len().min(HEADER_LEN)])?;
        let expected = (HEADER_LEN as u64).checked_add(header.stored_len);
        if expected != Some(len) {
            return Err(FormatError::corrupt(
                path,
                format!(
                    "file is {len} bytes but the header says {} (truncated or appended to)",
                    HEADER_LEN as u64 + header.stored_len.min(u64::MAX - HEADER_LEN as u64)
                ),
            ));
        }
        let backing = if header.compressed {
            if check >= Check::Checksum && xxh3_64(&map[HEADER_LEN..]) != header.stored_xxh3 {
                return Err(FormatError::corrupt(
                    path,
                    "compressed payload checksum mismatch (corrupt shard)",
                ));
            }
            let mut out = AlignedVec::<16>::new();
            let cap = usize::try_from(header.payload_len)
                .map_err(|_| FormatError::corrupt(path, "payload too large for this machine"))?;
            // Cap the up-front reservation: a corrupt header must not make us
            // allocate absurd amounts before decompression fails.
            out.reserve(cap.min(1 << 30));
            let mut dec = zstd::Decoder::new(&map[HEADER_LEN..])
                .map_err(|e| FormatError::corrupt(path, format!("zstd: {e}")))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                use std::io::Read;
                let n = dec.read(&mut buf).map_err(|e| {
                    FormatError::corrupt(
                        path,
                        format!("compressed payload does not decompress: {e}"),
                    )
                })?;
                if n == 0 {
                    break;
                }
                if out.len() + n > cap {
                    return Err(FormatError::corrupt(
                        path,
                        "decompressed payload longer than the header says",
                    ));
                }
                out.extend_from_slice(&buf[..n]);
            }
            if out.len() != cap {
                return Err(FormatError::corrupt(
                    path,
                    "decompressed payload shorter than the header says",
                ));
            }
            Backing::Owned(out)
        } else {
            if header.payload_len != header.stored_len {
                return Err(FormatError::corrupt(
                    path,
                    "payload length mismatch in header",
                ));
            }
            Backing::Map(map)
        };
        let shard = Shard {
            path: path.to_path_buf(),
            header,
            backing,
        };
        let payload = shard.payload();
        if check >= Check::Checksum && xxh3_64(payload) != shard.header.payload_xxh3 {
            return Err(FormatError::corrupt(
                path,
                "payload checksum mismatch (corrupt shard)",
            ));
        }
        let data = rkyv::access::<ArchivedShardData, rancor::Error>(payload)
            .map_err(|e| FormatError::corrupt(path, format!("invalid archive: {e}")))?;
        check_structure(path, &shard.header, data)?;
        if check == Check::Full {
            check_synapses(path, data)?;
        }
        Ok(shard)
    }

    fn payload(&self) -> &[u8] {
        match &self.backing {
            Backing::Map(m) => &m[HEADER_LEN..],
            Backing::Owned(v) => v.as_slice(),
        }
    }

    /// The header.
    pub fn header(&self) -> &ShardHeader {
        &self.header
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Zero-copy view of the shard's data.
    pub fn data(&self) -> &ArchivedShardData {
        // SAFETY: `open` validated exactly these bytes with `rkyv::access`
        // (bytecheck) before constructing `self`, and the backing bytes are
        // immutable for the lifetime of `self`.
        unsafe { rkyv::access_unchecked::<ArchivedShardData>(self.payload()) }
    }
}

impl ArchivedShardData {
    /// The global id of the source neuron of row `row`: the rank's own
    /// neurons first (local index order), then the images. Panics past the
    /// last row (`n_local + images.len()` rows; [`check_structure`] checks
    /// that `row_ptr` has one entry more).
    pub fn row_source(&self, row: usize) -> u64 {
        let n_local = self.local_to_global.len();
        if row < n_local {
            self.local_to_global[row].to_native()
        } else {
            self.images[row - n_local].to_native()
        }
    }

    /// The indices into the synapse arrays of row `row`'s synapses.
    pub fn row_synapses(&self, row: usize) -> std::ops::Range<usize> {
        self.row_ptr[row].to_native() as usize..self.row_ptr[row + 1].to_native() as usize
    }
}

fn check_offsets(
    path: &Path,
    name: &str,
    offs: &[rkyv::rend::u64_le],
    n_ranks: u32,
    total: usize,
) -> Result<(), FormatError> {
    if offs.len() != n_ranks as usize + 1 {
        return Err(FormatError::corrupt(
            path,
            format!("{name}: {} entries, expected {}", offs.len(), n_ranks + 1),
        ));
    }
    if offs[0].to_native() != 0 || offs[offs.len() - 1].to_native() != total as u64 {
        return Err(FormatError::corrupt(
            path,
            format!("{name}: bad first or last offset"),
        ));
    }
    if offs.windows(2).any(|w| w[0].to_native() > w[1].to_native()) {
        return Err(FormatError::corrupt(
            path,
            format!("{name}: offsets decrease"),
        ));
    }
    Ok(())
}

/// Cross-field invariants that make the shard safe and meaningful to use:
/// O(rows + routing entries), not O(synapses).
pub fn check_structure(
    path: &Path,
    h: &ShardHeader,
    d: &ArchivedShardData,
) -> Result<(), FormatError> {
    let bad = |m: String| Err(FormatError::corrupt(path, m));
    let n_ranks = d.n_ranks.to_native();
    let rank = d.rank.to_native();
    if rank != h.rank || n_ranks != h.n_ranks || d.model_hash != h.model_hash {
        return bad("header and archive disagree on rank, rank count or model".into());
    }
    if n_ranks == 0 || rank >= n_ranks {
        return bad(format!("rank {rank} out of range for {n_ranks} ranks"));
    }
    let n_local = d.local_to_global.len();
    let n_images = d.images.len();
    let n_syn = d.syn_weight.len();
    if n_local as u64 != h.n_local || n_images as u64 != h.n_images || n_syn as u64 != h.n_synapses
    {
        return bad("header and archive disagree on sizes".into());
    }
    if d.syn_target_delay.len() != n_syn {
        return bad("synapse arrays differ in length".into());
    }
    let tb = d.target_bits.to_native();
    if !(1..=31).contains(&tb) || (n_local > 0 && (n_local - 1) as u64 >= 1u64 << tb) {
        return bad(format!("target_bits {tb} cannot address {n_local} neurons"));
    }
    if d.weight_frac_bits.to_native() > 62 {
        return bad("weight_frac_bits out of range".into());
    }
    let n_neurons = d.n_neurons.to_native();
    if d.local_to_global.windows(2).any(|w| w[0] >= w[1])
        || d.local_to_global
            .last()
            .is_some_and(|g| g.to_native() >= n_neurons)
    {
        return bad("local_to_global is not increasing within the network".into());
    }
    check_offsets(path, "image_offsets", &d.image_offsets, n_ranks, n_images)?;
    check_offsets(path, "send_offsets", &d.send_offsets, n_ranks, d.send.len())?;
    let r = rank as usize;
    if d.image_offsets[r] != d.image_offsets[r + 1] || d.send_offsets[r] != d.send_offsets[r + 1] {
        return bad("routing tables refer to the shard's own rank".into());
    }
    for q in 0..n_ranks as usize {
        let (a, b) = (
            d.image_offsets[q].to_native() as usize,
            d.image_offsets[q + 1].to_native() as usize,
        );
        if d.images[a..b].windows(2).any(|w| w[0] >= w[1])
            || d.images[a..b]
                .last()
                .is_some_and(|g| g.to_native() >= n_neurons)
        {
            return bad(format!("images of rank {q} are not increasing neuron ids"));
        }
        let (a, b) = (
            d.send_offsets[q].to_native() as usize,
            d.send_offsets[q + 1].to_native() as usize,
        );
        if d.send[a..b].windows(2).any(|w| w[0] >= w[1])
            || d.send[a..b]
                .last()
                .is_some_and(|&l| l.to_native() as usize >= n_local)
        {
            return bad(format!(
                "send table for rank {q} is not increasing local indices"
            ));
        }
    }
    let rows = n_local + n_images;
    if d.row_ptr.len() != rows + 1 {
        return bad(format!(
            "row_ptr has {} entries, expected {}",
            d.row_ptr.len(),
            rows + 1
        ));
    }
    if d.row_ptr[0].to_native() != 0 || d.row_ptr[rows].to_native() != n_syn as u64 {
        return bad("row_ptr does not span the synapses".into());
    }
    if d.row_ptr
        .windows(2)
        .any(|w| w[0].to_native() > w[1].to_native())
    {
        return bad("row_ptr decreases".into());
    }
    let (lo, hi) = (d.min_delay_steps.to_native(), d.max_delay_steps.to_native());
    if n_syn > 0 && (lo == 0 || lo > hi || (hi as u64) >= 1u64 << (32 - tb)) {
        return bad(format!("delay range {lo}..={hi} steps invalid"));
    }
    Ok(())
}

/// Every synapse's target within the rank and delay within the recorded
/// range: O(synapses).
pub fn check_synapses(path: &Path, d: &ArchivedShardData) -> Result<(), FormatError> {
    let tb = d.target_bits.to_native();
    let mask = (1u32 << tb) - 1;
    let n_local = d.local_to_global.len() as u32;
    let (lo, hi) = (d.min_delay_steps.to_native(), d.max_delay_steps.to_native());
    for (i, w) in d.syn_target_delay.iter().enumerate() {
        let w = w.to_native();
        let (t, del) = (w & mask, w >> tb);
        if t >= n_local || del < lo || del > hi {
            return Err(FormatError::corrupt(
                path,
                format!("synapse {i}: target {t} or delay {del} steps out of range"),
            ));
        }
    }
    Ok(())
}
