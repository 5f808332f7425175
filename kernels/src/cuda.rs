//! The CUDA implementation of [`Device`] (feature `cuda`): one GPU through
//! cudarc's driver API (`dynamic-loading`: `libcuda` and `libnvrtc` are
//! opened at run time, so nothing of CUDA is needed to build).
//!
//! * **Start-up.** [`CudaDevice::open`] first checks that the driver library
//!   can be loaded (cudarc panics on a missing library, so this comes before
//!   any cudarc call), then initialises the driver, counts the devices and
//!   takes device `hint % count`, the hint being the node-local rank under
//!   an MPI launcher ([`gpu_hint`]: one GPU per rank, each node's ranks
//!   spread over its visible GPUs; `CUDA_VISIBLE_DEVICES` narrows the
//!   choice),
//!   retains its primary context and loads NVRTC.
//! * **Kernels.** Each [`Module`] is compiled once per process by NVRTC for
//!   the device's architecture (`compute_XY` from its compute capability,
//!   `--fmad=false`: see [`crate::nvrtc`]), or taken from the PTX
//!   disk cache ([`nvrtc::cache_dir`]: later processes skip NVRTC), and
//!   loaded when the device is opened (so this cost is set-up time, reported
//!   by [`Device::describe`]); functions are looked up once per
//!   [`KernelId`].
//! * **Memory and copies.** Plain device allocations (`cuMemAlloc`, zeroed
//!   after allocation); synchronous copies, which wait for the launches
//!   issued before them on the legacy default stream. Host memory is used
//!   as given: a shard's memory-mapped arrays are copied from the map.
//! * **Launches** go to the legacy default stream, in order. Each launch's
//!   arguments are laid out as `cuLaunchKernel` takes them: one pointer per
//!   argument to its value (device addresses as 64-bit integers, scalars in
//!   their C width, structs as their bytes).
//! * **Threads.** The context is made current on the calling thread in
//!   every call, so the device may move between threads (it is `Send`, not
//!   `Sync`).

use std::collections::HashMap;
use std::ffi::{c_void, CString};

use cudarc::driver::{result, sys};

use crate::device::{AllocStats, Arg, BufId, Device, DeviceError, Shape};
use crate::nvrtc;
use crate::registry::{KernelId, Module};

/// Threads per block of the backends' launches (default; `SNN_CUDA_BLOCK`
/// overrides it, for the benchmark's variants).
const BLOCK_SIZE: u32 = 256;

/// Resident blocks per multiprocessor of a full grid (default;
/// `SNN_CUDA_BLOCKS_PER_SM` overrides it).
const BLOCKS_PER_SM: u32 = 8;

/// A launch-shape setting from the environment: a whole number in
/// `1..=max`, or `default` (also when unset). A bad value is an error.
fn shape_from_env(var: &str, default: u32, max: u32) -> Result<u32, DeviceError> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|x| (1..=max).contains(x))
            .ok_or_else(|| {
                DeviceError::Range(format!("{var}={v}: expected a whole number in 1..={max}"))
            }),
    }
}

/// A CUDA GPU driven through cudarc. See the module documentation.
pub struct CudaDevice {
    ordinal: i32,
    device: sys::CUdevice,
    context: sys::CUcontext,
    name: String,
    arch: &'static str,
    multiprocessors: u32,
    total_mem_bytes: u64,
    modules: HashMap<Module, sys::CUmodule>,
    functions: HashMap<KernelId, sys::CUfunction>,
    buffers: HashMap<BufId, (sys::CUdeviceptr, u64)>,
    next_id: BufId,
    /// Seconds spent compiling (NVRTC) and loading the kernels at start-up.
    compile_s: f64,
    /// Modules whose PTX came from the disk cache at start-up.
    cached_modules: u64,
    block_size: u32,
    blocks_per_sm: u32,
    stats: AllocStats,
}

// SAFETY: the raw handles are plain driver handles, valid on any thread
// once the context is made current there, which every method does first;
// `CudaDevice` is not `Sync`, so calls never overlap.
unsafe impl Send for CudaDevice {}

fn driver_err(op: impl Into<String>) -> impl FnOnce(result::DriverError) -> DeviceError {
    let op = op.into();
    move |e| DeviceError::Driver {
        op,
        message: format!("{e:?}"),
    }
}

/// The NVRTC architecture name of compute capability `major.minor`.
fn arch_name(major: i32, minor: i32) -> &'static str {
    match (major, minor) {
        (7, 0) => "compute_70",
        (7, 2) => "compute_72",
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        // Newer than this table: the newest PTX target known here; the
        // driver compiles it for the device.
        _ => "compute_90",
    }
}

/// The rank of this process among the processes of its node, as the MPI
/// launcher or SLURM announces it (`MPI_LOCALRANKID`: MPICH's Hydra;
/// `OMPI_COMM_WORLD_LOCAL_RANK`: Open MPI; `MV2_COMM_WORLD_LOCAL_RANK`;
/// `SLURM_LOCALID`: srun), if any. One process per GPU on nodes with
/// several GPUs: the GPU to open is this rank modulo the visible GPUs.
pub fn node_local_rank() -> Option<u32> {
    [
        "MPI_LOCALRANKID",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MV2_COMM_WORLD_LOCAL_RANK",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// The GPU index hint for `rank`: under an MPI launcher (one rank per
/// process) the node-local rank when the launcher gives one, so that ranks
/// on different nodes each start at GPU 0; otherwise `rank` itself (ranks
/// emulated in one process spread over the visible GPUs).
pub fn gpu_hint(rank: u32, under_mpi: bool) -> u32 {
    if under_mpi {
        node_local_rank().unwrap_or(rank)
    } else {
        rank
    }
}

/// Whether the CUDA driver library (`libcuda`) can be loaded. Calls no
/// function in it.
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library under cudarc's candidate names
    // (dlopen) and closes it; nothing in it is called.
    unsafe { sys::is_culib_present() }
}

impl CudaDevice {
    /// Opens GPU `hint % (number of visible GPUs)` with every kernel
    /// module: see [`CudaDevice::open_with`].
    pub fn open(hint: u32) -> Result<CudaDevice, DeviceError> {
        CudaDevice::open_with(hint, &Module::ALL)
    }

    /// Opens GPU `hint % (number of visible GPUs)` (see [`gpu_hint`]) and
    /// compiles and loads
    /// `modules` (the simulator needs neuron, delivery and routing kernels,
    /// the builder connection and build kernels; a kernel of another module
    /// is compiled on first use). Errors (never panics) when the driver
    /// library, a GPU or NVRTC is missing. See the module documentation.
    pub fn open_with(hint: u32, modules: &[Module]) -> Result<CudaDevice, DeviceError> {
        let block_size = shape_from_env("SNN_CUDA_BLOCK", BLOCK_SIZE, 1024)?;
        let blocks_per_sm = shape_from_env("SNN_CUDA_BLOCKS_PER_SM", BLOCKS_PER_SM, 64)?;
        if !driver_present() {
            return Err(DeviceError::NoDevice(
                "the CUDA driver library (libcuda.so) was not found; is an NVIDIA driver installed?"
                    .into(),
            ));
        }
        let venvs: Vec<std::path::PathBuf> = std::env::current_dir()
            .map(|d| vec![d.join(".venv")])
            .unwrap_or_default();
        result::init().map_err(|e| DeviceError::NoDevice(format!("cuInit failed: {e:?}")))?;
        let count = result::device::get_count()
            .map_err(|e| DeviceError::NoDevice(format!("cuDeviceGetCount failed: {e:?}")))?;
        if count <= 0 {
            return Err(DeviceError::NoDevice(
                "the driver reports no GPU (check CUDA_VISIBLE_DEVICES)".into(),
            ));
        }
        let ordinal = (hint % count as u32) as i32;
        let device = result::device::get(ordinal).map_err(driver_err("cuDeviceGet"))?;
        // SAFETY: `device` was returned by cuDeviceGet.
        let attr = |a| unsafe { result::device::get_attribute(device, a) };
        use sys::CUdevice_attribute as A;
        let major = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .map_err(driver_err("cuDeviceGetAttribute"))?;
        let minor = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            .map_err(driver_err("cuDeviceGetAttribute"))?;
        let multiprocessors = attr(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map_err(driver_err("cuDeviceGetAttribute"))?;
        if major < 7 {
            return Err(DeviceError::NoDevice(format!(
                "GPU {ordinal} has compute capability {major}.{minor}; 7.0 or newer is needed (64-bit atomics, double precision)"
            )));
        }
        let name = result::device::get_name(device).map_err(driver_err("cuDeviceGetName"))?;
        // SAFETY: as above.
        let total_mem_bytes = unsafe { result::device::total_mem(device) }
            .map_err(driver_err("cuDeviceTotalMem"))? as u64;
        // SAFETY: `device` was returned by cuDeviceGet; the primary context
        // is released in Drop.
        let context = unsafe { result::primary_ctx::retain(device) }
            .map_err(driver_err("cuDevicePrimaryCtxRetain"))?;
        let dev = CudaDevice {
            ordinal,
            device,
            context,
            name,
            arch: arch_name(major, minor),
            multiprocessors: multiprocessors.max(1) as u32,
            total_mem_bytes,
            modules: HashMap::new(),
            functions: HashMap::new(),
            buffers: HashMap::new(),
            next_id: 1,
            compile_s: 0.0,
            cached_modules: 0,
            stats: AllocStats::default(),
            block_size,
            blocks_per_sm,
        };
        let mut dev = dev;
        dev.bind()?;
        nvrtc::load(&venvs)?;
        // Every kernel compiled and loaded now, so that start-up cost is
        // part of the set-up time, not of the first simulated steps.
        let t0 = std::time::Instant::now();
        let hits0 = nvrtc::disk_cache_hits();
        for &k in KernelId::ALL {
            if modules.contains(&k.module()) {
                dev.function(k)?;
            }
        }
        dev.compile_s = t0.elapsed().as_secs_f64();
        dev.cached_modules = nvrtc::disk_cache_hits() - hits0;
        Ok(dev)
    }

    /// Device memory in bytes.
    pub fn total_mem_bytes(&self) -> u64 {
        self.total_mem_bytes
    }

    /// Makes the context current on this thread.
    fn bind(&self) -> Result<(), DeviceError> {
        // SAFETY: the primary context was retained in `open` and is only
        // released in Drop.
        unsafe { result::ctx::set_current(self.context) }.map_err(driver_err("cuCtxSetCurrent"))
    }

    /// The function of `k`, compiling and loading its module on first use.
    fn function(&mut self, k: KernelId) -> Result<sys::CUfunction, DeviceError> {
        if let Some(&f) = self.functions.get(&k) {
            return Ok(f);
        }
        let m = k.module();
        let module = match self.modules.get(&m) {
            Some(&module) => module,
            None => {
                let ptx = nvrtc::compile(m, self.arch)?;
                let image = CString::new(ptx.as_bytes()).map_err(|_| DeviceError::Driver {
                    op: format!("load {m}"),
                    message: "the PTX holds a NUL byte".into(),
                })?;
                // SAFETY: `image` is a NUL-terminated PTX text that outlives
                // the call; the context is current.
                let module = unsafe { result::module::load_data(image.as_ptr() as *const c_void) }
                    .map_err(driver_err(format!("cuModuleLoadData ({m}, {})", self.arch)))?;
                self.modules.insert(m, module);
                module
            }
        };
        let name = CString::new(k.name()).map_err(|_| DeviceError::Range("kernel name".into()))?;
        // SAFETY: `module` is a loaded module of the current context.
        let f = unsafe { result::module::get_function(module, name) }
            .map_err(driver_err(format!("cuModuleGetFunction ({k})")))?;
        self.functions.insert(k, f);
        Ok(f)
    }

    /// The address of `len` bytes at `offset` in `buf`, checked.
    fn range(&self, buf: BufId, offset: u64, len: u64) -> Result<sys::CUdeviceptr, DeviceError> {
        let &(ptr, bytes) = self
            .buffers
            .get(&buf)
            .ok_or_else(|| DeviceError::Range(format!("no buffer {buf}")))?;
        if offset > bytes || len > bytes - offset {
            return Err(DeviceError::Range(format!(
                "{len} bytes at {offset} in a buffer of {bytes}"
            )));
        }
        Ok(ptr + offset)
    }
}

impl Device for CudaDevice {
    fn describe(&self) -> String {
        format!(
            "GPU {}: {} ({}, {} multiprocessors, {:.1} GiB; kernels compiled and loaded in {:.2} s, {} of {} modules from the PTX cache; blocks of {}, {} per multiprocessor)",
            self.ordinal,
            self.name,
            self.arch,
            self.multiprocessors,
            self.total_mem_bytes as f64 / (1u64 << 30) as f64,
            self.compile_s,
            self.cached_modules,
            self.modules.len(),
            self.block_size,
            self.blocks_per_sm
        )
    }

    fn alloc(&mut self, bytes: u64, what: &str) -> Result<BufId, DeviceError> {
        self.bind()?;
        let n = bytes.max(1) as usize;
        // SAFETY: the context is current; the memory is zeroed below before
        // any use.
        let ptr = unsafe { result::malloc_sync(n) }.map_err(|e| {
            if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
                DeviceError::OutOfMemory {
                    bytes,
                    what: what.to_owned(),
                }
            } else {
                driver_err(format!("cuMemAlloc ({what})"))(e)
            }
        })?;
        // SAFETY: `ptr` holds `n` bytes just allocated.
        if let Err(e) = unsafe { result::memset_d8_sync(ptr, 0, n) } {
            // SAFETY: `ptr` was allocated above and is not used after.
            let _ = unsafe { result::free_sync(ptr) };
            return Err(driver_err("cuMemsetD8")(e));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.buffers.insert(id, (ptr, bytes));
        self.stats.alloc(id, bytes);
        Ok(id)
    }

    fn free(&mut self, buf: BufId) {
        self.stats.free(buf);
        if let Some((ptr, _)) = self.buffers.remove(&buf) {
            if self.bind().is_ok() {
                // SAFETY: `ptr` was allocated by `alloc` and is removed from
                // the table, so it is freed once.
                let _ = unsafe { result::free_sync(ptr) };
            }
        }
    }

    fn write(&mut self, buf: BufId, offset_bytes: u64, data: &[u8]) -> Result<(), DeviceError> {
        self.bind()?;
        let dst = self.range(buf, offset_bytes, data.len() as u64)?;
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: `dst` has room for `data` (checked by `range`).
        unsafe { result::memcpy_htod_sync(dst, data) }.map_err(driver_err("cuMemcpyHtoD"))
    }

    fn read(&mut self, buf: BufId, offset_bytes: u64, out: &mut [u8]) -> Result<(), DeviceError> {
        self.bind()?;
        let src = self.range(buf, offset_bytes, out.len() as u64)?;
        if out.is_empty() {
            return Ok(());
        }
        // SAFETY: `src` holds `out.len()` bytes (checked by `range`).
        unsafe { result::memcpy_dtoh_sync(out, src) }.map_err(driver_err("cuMemcpyDtoH"))
    }

    fn zero(&mut self, buf: BufId, offset_bytes: u64, bytes: u64) -> Result<(), DeviceError> {
        self.bind()?;
        let dst = self.range(buf, offset_bytes, bytes)?;
        if bytes == 0 {
            return Ok(());
        }
        // SAFETY: `dst` holds `bytes` bytes (checked by `range`).
        unsafe { result::memset_d8_sync(dst, 0, bytes as usize) }.map_err(driver_err("cuMemsetD8"))
    }

    fn launch(&mut self, k: KernelId, shape: Shape, args: &[Arg]) -> Result<(), DeviceError> {
        self.bind()?;
        if shape.grid == 0 || shape.block == 0 || shape.block > 1024 {
            return Err(DeviceError::Range(format!("{k}: launch shape {shape:?}")));
        }
        let f = self.function(k)?;
        // Each argument's value, in storage that outlives the launch call.
        let mut values: Vec<Vec<u8>> = Vec::with_capacity(args.len());
        for a in args {
            values.push(match a {
                Arg::Ptr { buf, offset_bytes } => {
                    let p = self.range(*buf, *offset_bytes, 0)?;
                    p.to_le_bytes().to_vec()
                }
                other => other.bytes(),
            });
        }
        let mut params: Vec<*mut c_void> = values
            .iter_mut()
            .map(|v| v.as_mut_ptr() as *mut c_void)
            .collect();
        // SAFETY: `f` is a function of a module loaded in the current
        // context; `params` holds one pointer per kernel parameter to its
        // value (the callers pass the C signature's types, in order, as the
        // host stand-in checks in CI); the values live until the call
        // returns (cuLaunchKernel copies them).
        unsafe {
            result::launch_kernel(
                f,
                (shape.grid, 1, 1),
                (shape.block, 1, 1),
                0,
                std::ptr::null_mut(),
                &mut params,
            )
        }
        .map_err(driver_err(format!("launch of {k}")))
    }

    fn synchronize(&mut self) -> Result<(), DeviceError> {
        self.bind()?;
        result::ctx::synchronize().map_err(driver_err("cuCtxSynchronize"))
    }

    fn full_grid(&self) -> u32 {
        // Enough resident blocks to fill every multiprocessor a few times.
        self.multiprocessors * self.blocks_per_sm
    }

    fn block_size(&self) -> u32 {
        self.block_size
    }

    fn peak_allocated_bytes(&self) -> u64 {
        self.stats.peak()
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        if self.bind().is_err() {
            return;
        }
        let _ = result::ctx::synchronize();
        for (_, (ptr, _)) in self.buffers.drain() {
            // SAFETY: allocated by `alloc`, freed once (drained).
            let _ = unsafe { result::free_sync(ptr) };
        }
        for (_, m) in self.modules.drain() {
            // SAFETY: loaded by `function`, unloaded once (drained); no
            // launch is running (synchronised above).
            let _ = unsafe { result::module::unload(m) };
        }
        // SAFETY: the primary context was retained once in `open`.
        let _ = unsafe { result::primary_ctx::release(self.device) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_hints() {
        assert_eq!(gpu_hint(5, false), 5);
        // Under MPI: the launcher's node-local rank when it gives one (the
        // test runs under neither, or under one that sets it).
        let local = node_local_rank();
        assert_eq!(gpu_hint(5, true), local.unwrap_or(5));
    }

    #[test]
    fn shapes_from_the_environment() {
        let var = "SNN_TEST_SHAPE_FROM_ENV";
        assert_eq!(shape_from_env(var, 7, 10).ok(), Some(7));
        for (v, want) in [
            ("3", Some(3)),
            (" 10 ", Some(10)),
            ("0", None),
            ("11", None),
            ("x", None),
        ] {
            std::env::set_var(var, v);
            assert_eq!(shape_from_env(var, 7, 10).ok(), want, "{v}");
        }
        std::env::remove_var(var);
    }

    #[test]
    fn architectures() {
        assert_eq!(arch_name(9, 0), "compute_90");
        assert_eq!(arch_name(8, 0), "compute_80");
        assert_eq!(arch_name(42, 1), "compute_90");
    }

    /// On a machine without a GPU driver, opening is a clean error (no
    /// panic from cudarc). On a GPU machine it opens.
    #[test]
    fn open_without_driver_is_an_error() {
        if driver_present() {
            match CudaDevice::open(0) {
                Ok(d) => println!("{}", d.describe()),
                Err(e) => println!("driver present, open failed: {e}"),
            }
        } else {
            let e = CudaDevice::open(0).err().map(|e| e.to_string());
            assert!(e.as_deref().is_some_and(|m| m.contains("libcuda")), "{e:?}");
        }
    }
}
