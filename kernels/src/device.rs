//! The device interface of the GPU backend: buffers, copies and kernel
//! launches by [`KernelId`], the operations the GPU builder and the GPU
//! simulation engine are written against.
//!
//! Two implementations exist:
//!
//! * `CudaDevice` (feature `cuda`, module `cuda`): a CUDA GPU through cudarc's
//!   driver API, the kernels compiled by NVRTC for the device's architecture.
//! * the tests' stand-in (`test-support/src/host/`): the same kernel sources
//!   compiled as host C++ and run launch by launch on the CPU, so that every
//!   line of the GPU backends' host code, and the kernels' logic, runs in CI
//!   without a GPU and is compared bit for bit with the CPU backend.
//!
//! The trait is object safe (`Box<dyn Device>`): code above it never depends
//! on which device it drives. Copies are synchronous with respect to earlier
//! launches (a read sees every launch issued before it); launches are
//! ordered (one stream).

use std::marker::PhantomData;

use crate::registry::KernelId;

/// A device buffer handle (valid until freed; 0 is never a buffer).
pub type BufId = u64;

/// Errors of a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No usable device (no driver library, no GPU, or a driver error at
    /// start-up).
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// A driver call failed.
    #[error("CUDA {op} failed: {message}")]
    Driver {
        /// What was being done.
        op: String,
        /// The driver's message.
        message: String,
    },
    /// Compiling the kernels failed.
    #[error(transparent)]
    Compile(#[from] crate::nvrtc::NvrtcError),
    /// A call that does not fit the buffers (a bug in the caller).
    #[error("device call out of range: {0}")]
    Range(String),
    /// The device ran out of memory.
    #[error("out of GPU memory allocating {bytes} bytes ({what})")]
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
        /// The buffer's purpose.
        what: String,
    },
}

/// A pointer argument: a device buffer and a byte offset into it (see
/// [`DevVec::ptr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ptr {
    /// The buffer.
    pub buf: BufId,
    /// Byte offset from its start.
    pub offset_bytes: u64,
}

impl From<Ptr> for Arg {
    fn from(p: Ptr) -> Arg {
        Arg::Ptr {
            buf: p.buf,
            offset_bytes: p.offset_bytes,
        }
    }
}

/// A kernel argument, as the C function takes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A pointer into a buffer: its start plus `offset_bytes`.
    Ptr {
        /// The buffer.
        buf: BufId,
        /// Byte offset from its start.
        offset_bytes: u64,
    },
    /// `uint32_t`.
    U32(u32),
    /// `int32_t`.
    I32(i32),
    /// `uint64_t`.
    U64(u64),
    /// `int64_t`.
    I64(i64),
    /// `double`.
    F64(f64),
    /// A struct by value: its bytes in C layout (the `#[repr(C)]` mirrors'
    /// `to_le_bytes`).
    Struct(Vec<u8>),
}

impl Arg {
    /// The argument's bytes as the kernel receives them (little-endian).
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Arg::Ptr { .. } => Vec::new(),
            Arg::U32(x) => x.to_le_bytes().to_vec(),
            Arg::I32(x) => x.to_le_bytes().to_vec(),
            Arg::U64(x) => x.to_le_bytes().to_vec(),
            Arg::I64(x) => x.to_le_bytes().to_vec(),
            Arg::F64(x) => x.to_le_bytes().to_vec(),
            Arg::Struct(b) => b.clone(),
        }
    }
}

/// A launch shape: `grid` blocks of `block` threads. The kernels are written
/// with grid-stride loops, so any shape covers the work; the shape only
/// decides how it is spread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Blocks.
    pub grid: u32,
    /// Threads per block.
    pub block: u32,
}

/// Opens the device of a rank.
pub type DeviceOpener = dyn Fn(u32) -> Result<Box<dyn Device>, DeviceError> + Send + Sync;

/// How the builder and the simulator get a device for each rank: a name
/// (recorded in a network's provenance) and a function opening the device
/// of a rank (on a multi-GPU node, `rank` picks the GPU).
#[derive(Clone)]
pub struct DeviceFactory {
    name: String,
    open: std::sync::Arc<DeviceOpener>,
}

impl DeviceFactory {
    /// A factory named `name` (e.g. `"cuda"`) calling `open(rank)`.
    pub fn new(
        name: impl Into<String>,
        open: impl Fn(u32) -> Result<Box<dyn Device>, DeviceError> + Send + Sync + 'static,
    ) -> DeviceFactory {
        DeviceFactory {
            name: name.into(),
            open: std::sync::Arc::new(open),
        }
    }

    /// The device of rank `rank`.
    pub fn open(&self, rank: u32) -> Result<Box<dyn Device>, DeviceError> {
        (self.open)(rank)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for DeviceFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceFactory({})", self.name)
    }
}

/// A device: buffers, copies, launches. See the module documentation.
pub trait Device: Send {
    /// A line naming the device (for logs and `summary.json`).
    fn describe(&self) -> String;

    /// A new zero-filled buffer of `bytes` bytes; `what` names it in errors.
    fn alloc(&mut self, bytes: u64, what: &str) -> Result<BufId, DeviceError>;

    /// Frees a buffer (unknown ids are ignored).
    fn free(&mut self, buf: BufId);

    /// Copies `data` into `buf` at `offset_bytes`.
    fn write(&mut self, buf: BufId, offset_bytes: u64, data: &[u8]) -> Result<(), DeviceError>;

    /// Copies `out.len()` bytes of `buf` from `offset_bytes` into `out`,
    /// after every launch issued so far has finished.
    fn read(&mut self, buf: BufId, offset_bytes: u64, out: &mut [u8]) -> Result<(), DeviceError>;

    /// Sets `bytes` bytes of `buf` from `offset_bytes` to zero.
    fn zero(&mut self, buf: BufId, offset_bytes: u64, bytes: u64) -> Result<(), DeviceError>;

    /// Launches kernel `k` with `args` (types and order as its C signature).
    fn launch(&mut self, k: KernelId, shape: Shape, args: &[Arg]) -> Result<(), DeviceError>;

    /// Waits until every launch issued so far has finished.
    fn synchronize(&mut self) -> Result<(), DeviceError>;

    /// A grid size that fills the device for grid-stride kernels (blocks of
    /// [`Device::block_size`] threads).
    fn full_grid(&self) -> u32;

    /// The block size the backends use.
    fn block_size(&self) -> u32;

    /// The most bytes the device's live buffers have held at once (the
    /// sum of the sizes given to [`Device::alloc`], less those freed): the
    /// memory the backend itself uses, without the driver's own (context,
    /// module code).
    fn peak_allocated_bytes(&self) -> u64;
}

/// Live and peak bytes of a device's buffers, for
/// [`Device::peak_allocated_bytes`].
#[derive(Clone, Debug, Default)]
pub struct AllocStats {
    sizes: std::collections::HashMap<BufId, u64>,
    live: u64,
    peak: u64,
}

impl AllocStats {
    /// A buffer of `bytes` was allocated.
    pub fn alloc(&mut self, id: BufId, bytes: u64) {
        if let Some(old) = self.sizes.insert(id, bytes) {
            self.live -= old;
        }
        self.live += bytes;
        self.peak = self.peak.max(self.live);
    }

    /// A buffer was freed.
    pub fn free(&mut self, id: BufId) {
        if let Some(b) = self.sizes.remove(&id) {
            self.live -= b;
        }
    }

    /// Bytes now.
    pub fn live(&self) -> u64 {
        self.live
    }

    /// The most bytes at once.
    pub fn peak(&self) -> u64 {
        self.peak
    }
}

/// A plain-data element type of a device buffer.
pub trait Pod: Copy + Default + 'static {
    /// Bytes per element.
    const BYTES: usize;
    /// Appends the little-endian bytes of `xs` to `out`.
    fn extend_bytes(xs: &[Self], out: &mut Vec<u8>);
    /// The elements of little-endian `bytes` (a whole number of elements).
    fn from_bytes(bytes: &[u8]) -> Vec<Self>;
}

macro_rules! pod {
    ($($t:ty),*) => {$(
        impl Pod for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            fn extend_bytes(xs: &[Self], out: &mut Vec<u8>) {
                out.reserve(xs.len() * Self::BYTES);
                for x in xs {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            fn from_bytes(bytes: &[u8]) -> Vec<Self> {
                bytes
                    .chunks_exact(Self::BYTES)
                    .map(|c| {
                        let mut a = [0u8; std::mem::size_of::<$t>()];
                        a.copy_from_slice(c);
                        <$t>::from_le_bytes(a)
                    })
                    .collect()
            }
        }
    )*};
}
pod!(u8, u32, i32, u64, i64, f64);

/// A typed device buffer of `len` elements of `T`. Freed explicitly with
/// [`DevVec::free`] (or with the device).
#[derive(Debug)]
pub struct DevVec<T> {
    id: BufId,
    len: usize,
    _t: PhantomData<T>,
}

/// Largest bytes per `write` call (big uploads go in pieces, so no copy of a
/// whole array is ever made in host memory).
const WRITE_PIECE_BYTES: usize = 64 << 20;

impl<T: Pod> DevVec<T> {
    /// `len` zeros.
    pub fn zeros(dev: &mut dyn Device, len: usize, what: &str) -> Result<DevVec<T>, DeviceError> {
        let id = dev.alloc((len.max(1) * T::BYTES) as u64, what)?;
        Ok(DevVec {
            id,
            len,
            _t: PhantomData,
        })
    }

    /// A buffer holding `data`.
    pub fn from_slice(
        dev: &mut dyn Device,
        data: &[T],
        what: &str,
    ) -> Result<DevVec<T>, DeviceError> {
        let v = DevVec::zeros(dev, data.len(), what)?;
        v.write(dev, 0, data)?;
        Ok(v)
    }

    /// A buffer of `len` elements holding `bytes`, the little-endian bytes
    /// of the elements (for example an archived array of a memory-mapped
    /// shard: copied to the device piece by piece, never whole in host
    /// memory).
    pub fn from_le_bytes(
        dev: &mut dyn Device,
        bytes: &[u8],
        what: &str,
    ) -> Result<DevVec<T>, DeviceError> {
        if !bytes.len().is_multiple_of(T::BYTES) {
            return Err(DeviceError::Range(format!(
                "{what}: {} bytes is not a whole number of {}-byte elements",
                bytes.len(),
                T::BYTES
            )));
        }
        let v = DevVec::zeros(dev, bytes.len() / T::BYTES, what)?;
        for (i, piece) in bytes.chunks(WRITE_PIECE_BYTES).enumerate() {
            dev.write(v.id, (i * WRITE_PIECE_BYTES) as u64, piece)?;
        }
        Ok(v)
    }

    /// Elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer id.
    pub fn id(&self) -> BufId {
        self.id
    }

    /// Pointer argument to element 0.
    pub fn arg(&self) -> Arg {
        self.ptr().into()
    }

    /// Pointer argument to element `i` (`i <= len`).
    pub fn at(&self, i: usize) -> Arg {
        self.ptr_at(i).into()
    }

    /// Pointer to its start, for the typed launches of
    /// [`crate::launch`].
    pub fn ptr(&self) -> Ptr {
        Ptr {
            buf: self.id,
            offset_bytes: 0,
        }
    }

    /// Pointer to element `i` (`i <= len`).
    pub fn ptr_at(&self, i: usize) -> Ptr {
        debug_assert!(i <= self.len);
        Ptr {
            buf: self.id,
            offset_bytes: (i * T::BYTES) as u64,
        }
    }

    /// Writes `data` at element `at`.
    pub fn write(&self, dev: &mut dyn Device, at: usize, data: &[T]) -> Result<(), DeviceError> {
        if at + data.len() > self.len {
            return Err(DeviceError::Range(format!(
                "write of {} elements at {at} into a buffer of {}",
                data.len(),
                self.len
            )));
        }
        let per_piece = (WRITE_PIECE_BYTES / T::BYTES).max(1);
        let mut bytes = Vec::new();
        for (i, piece) in data.chunks(per_piece).enumerate() {
            bytes.clear();
            T::extend_bytes(piece, &mut bytes);
            dev.write(self.id, ((at + i * per_piece) * T::BYTES) as u64, &bytes)?;
        }
        Ok(())
    }

    /// Elements `range`.
    pub fn read(
        &self,
        dev: &mut dyn Device,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<T>, DeviceError> {
        if range.start > range.end || range.end > self.len {
            return Err(DeviceError::Range(format!(
                "read of {range:?} from a buffer of {}",
                self.len
            )));
        }
        let mut bytes = vec![0u8; range.len() * T::BYTES];
        dev.read(self.id, (range.start * T::BYTES) as u64, &mut bytes)?;
        Ok(T::from_bytes(&bytes))
    }

    /// All elements.
    pub fn to_vec(&self, dev: &mut dyn Device) -> Result<Vec<T>, DeviceError> {
        self.read(dev, 0..self.len)
    }

    /// Sets every element to zero.
    pub fn zero(&self, dev: &mut dyn Device) -> Result<(), DeviceError> {
        dev.zero(self.id, 0, (self.len * T::BYTES) as u64)
    }

    /// Frees the buffer.
    pub fn free(self, dev: &mut dyn Device) {
        dev.free(self.id);
    }
}

/// A device that stores nothing and runs nothing, for measuring without a
/// GPU what a backend asks of one: allocations are counted (so
/// [`Device::peak_allocated_bytes`] is exactly the memory the backend's
/// buffers would take on a GPU), writes are logged (where the bytes came
/// from, how many, where they went) and dropped, reads give zeros, launches
/// do nothing. With a `capacity`, allocations past it fail as a full GPU's
/// do.
#[derive(Debug, Default)]
pub struct NullDevice {
    stats: AllocStats,
    next: BufId,
    /// Bytes the device holds at most (`None`: no limit).
    pub capacity: Option<u64>,
    /// Every write, in order.
    pub writes: Vec<WriteRecord>,
}

/// One [`NullDevice`] write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteRecord {
    /// Address of the first source byte in host memory.
    pub source_address: usize,
    /// Bytes written.
    pub bytes: usize,
    /// The destination buffer.
    pub buf: BufId,
    /// Offset in the destination buffer.
    pub offset_bytes: u64,
}

impl NullDevice {
    /// A null device holding at most `bytes`.
    pub fn with_capacity(bytes: u64) -> NullDevice {
        NullDevice {
            capacity: Some(bytes),
            ..NullDevice::default()
        }
    }
}

impl Device for NullDevice {
    fn describe(&self) -> String {
        "null device (counts allocations only)".into()
    }
    fn alloc(&mut self, bytes: u64, what: &str) -> Result<BufId, DeviceError> {
        if self.capacity.is_some_and(|c| self.stats.live() + bytes > c) {
            return Err(DeviceError::OutOfMemory {
                bytes,
                what: what.to_owned(),
            });
        }
        self.next += 1;
        self.stats.alloc(self.next, bytes);
        Ok(self.next)
    }
    fn free(&mut self, buf: BufId) {
        self.stats.free(buf);
    }
    fn write(&mut self, buf: BufId, offset_bytes: u64, data: &[u8]) -> Result<(), DeviceError> {
        self.writes.push(WriteRecord {
            source_address: data.as_ptr() as usize,
            bytes: data.len(),
            buf,
            offset_bytes,
        });
        Ok(())
    }
    fn read(&mut self, _buf: BufId, _offset: u64, out: &mut [u8]) -> Result<(), DeviceError> {
        out.fill(0);
        Ok(())
    }
    fn zero(&mut self, _buf: BufId, _offset: u64, _bytes: u64) -> Result<(), DeviceError> {
        Ok(())
    }
    fn launch(&mut self, _k: KernelId, _shape: Shape, _args: &[Arg]) -> Result<(), DeviceError> {
        Ok(())
    }
    fn synchronize(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
    fn full_grid(&self) -> u32 {
        1
    }
    fn block_size(&self) -> u32 {
        1
    }
    fn peak_allocated_bytes(&self) -> u64 {
        self.stats.peak()
    }
}

/// A grid for `items` work items of one thread each, at most `dev`'s full
/// grid (the kernels stride over the rest).
pub fn grid_for(dev: &dyn Device, items: u64) -> Shape {
    let block = dev.block_size().max(1);
    let blocks = items
        .div_ceil(block as u64)
        .clamp(1, dev.full_grid().max(1) as u64);
    Shape {
        grid: blocks as u32,
        block,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_round_trip() {
        let xs = [1u32, 0xdead_beef, 7];
        let mut b = Vec::new();
        u32::extend_bytes(&xs, &mut b);
        assert_eq!(b.len(), 12);
        assert_eq!(b[4..8], 0xdead_beefu32.to_le_bytes());
        assert_eq!(u32::from_bytes(&b), xs);
        let fs = [-0.5f64, f64::MIN_POSITIVE];
        let mut b = Vec::new();
        f64::extend_bytes(&fs, &mut b);
        assert_eq!(f64::from_bytes(&b), fs);
        assert_eq!(Arg::I64(-2).bytes(), (-2i64).to_le_bytes());
    }

    /// An upload from mapped bytes goes to the device in pieces of at most
    /// 64 MiB read straight from the caller's memory (the shard's map): no
    /// copy of the array is made in host memory.
    #[test]
    fn uploads_read_the_source_in_place_in_pieces() {
        let src = vec![7u8; 2 * WRITE_PIECE_BYTES + 4 * 1000];
        let mut dev = NullDevice::default();
        let v = DevVec::<u32>::from_le_bytes(&mut dev, &src, "synapses").unwrap();
        assert_eq!(v.len(), src.len() / 4);
        let base = src.as_ptr() as usize;
        let mut next = 0usize;
        assert_eq!(dev.writes.len(), 3);
        for w in &dev.writes {
            let (ptr, len, offset) = (w.source_address, w.bytes, w.offset_bytes);
            assert!(len <= WRITE_PIECE_BYTES);
            assert_eq!(ptr, base + next, "a piece was copied before the write");
            assert_eq!(offset, next as u64);
            next += len;
        }
        assert_eq!(next, src.len());
        // Not a whole number of elements: an error, nothing written.
        let mut dev = NullDevice::default();
        assert!(DevVec::<u64>::from_le_bytes(&mut dev, &src[..12], "x").is_err());
        assert!(dev.writes.is_empty());
    }

    #[test]
    fn alloc_stats_track_the_peak() {
        let mut s = AllocStats::default();
        s.alloc(1, 100);
        s.alloc(2, 50);
        s.free(1);
        s.alloc(3, 70);
        s.free(9);
        assert_eq!((s.live(), s.peak()), (120, 150));
        s.alloc(2, 10);
        assert_eq!((s.live(), s.peak()), (80, 150));
    }
}
