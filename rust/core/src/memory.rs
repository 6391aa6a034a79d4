//! The one memory rule of congruence: how many bytes the process may still allocate, a
//! pre-flight check against it, and fallible allocation of the large buffers.
//!
//! **Budget.** The smallest of what the system reports (Linux; elsewhere nothing is known and
//! only the fallible allocation protects):
//!
//! * `MemAvailable` from `/proc/meminfo`;
//! * for every cgroup from the process's own up to the root (cgroup v2 `memory.max` minus
//!   `memory.current`, or cgroup v1 `memory.limit_in_bytes` minus `memory.usage_in_bytes`),
//!   the limit minus the usage: the tightest ancestor is the one that kills;
//! * the address-space limit `RLIMIT_AS` (the soft limit of "Max address space" in
//!   `/proc/self/limits`, what `ulimit -v` sets) minus the address space in use (`VmSize`).
//!
//! **Pre-flight.** [`check_fits`] refuses a request larger than [`FRACTION`] of the budget with
//! [`CoreError::Memory`], whose message names the size, the buffer and the measure, and the
//! alternative (streaming, minibatches, a smaller `k`, subsampling).
//!
//! **Fallible allocation.** The buffers that grow with `n^2` or `n k` are allocated with
//! `try_reserve_exact` ([`try_vec`]), so that a request the pre-flight let through but the
//! allocator cannot serve is still an error, never an abort. Inside computations that cannot
//! return a `Result` (parallel loops), [`vec`] and [`zeros`] unwind with the
//! `CoreError::Memory` as payload; [`crate::interrupt::guard`] turns that back into an `Err`.
//!
//! **Huge pages.** The large buffers of [`try_zeroed_f64`] and [`with_capacity`] are fresh
//! mappings; they are advised to the kernel for transparent huge pages (Linux, where they are
//! enabled for advised regions): one page fault per 2 MiB instead of one per 4 KiB where a
//! buffer is first written, and, when it is freed, 512 times fewer pages to unmap. Freeing
//! the 144 MB squared-distance cache of an RBF layer in 4 KiB pages was a serial phase of
//! the RBF CKA (the kernel's unmapping runs on the freeing thread).

use crate::error::{CoreError, Result};
use ndarray::{Array2, Ix2};
use std::path::{Path, PathBuf};

/// Share of the budget a single request may take (the rest is headroom for everything else).
pub const FRACTION: f64 = 0.9;

/// Limits at or above this are "no limit" (cgroup v1 reports `PAGE_COUNTER_MAX` pages).
const UNLIMITED: u64 = 1 << 60;

/// A `field:  <value> kB` entry of `/proc/meminfo` or `/proc/self/status`, in bytes.
pub fn parse_kb_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let mut it = rest.split_whitespace();
        let value: u64 = it.next()?.parse().ok()?;
        let scale = match it.next() {
            Some("kB") | Some("KB") | Some("kb") => 1024,
            None => 1,
            Some(_) => return None,
        };
        value.checked_mul(scale)
    })
}

/// A cgroup limit file (`memory.max`, `memory.limit_in_bytes`): `None` for `max` or a value
/// that means "no limit".
pub fn parse_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v < UNLIMITED).then_some(v)
}

/// A cgroup usage file (`memory.current`, `memory.usage_in_bytes`).
pub fn parse_usage(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The soft address-space limit from `/proc/self/limits` ("Max address space"), `None` when
/// unlimited.
pub fn parse_address_space_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max address space"))?;
    let soft = line["Max address space".len()..]
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return None;
    }
    soft.parse().ok()
}

/// The process's cgroup paths from `/proc/self/cgroup`: the unified (v2) path (line `0::path`)
/// and the v1 memory controller's path (a line `N:...memory...:path`).
pub fn parse_proc_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let (mut v2, mut v1) = (None, None);
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == "memory") {
            v1 = Some(path.to_string());
        }
    }
    (v2, v1)
}

/// The directories from `root/path` up to `root` (deepest first).
fn ancestors(root: &Path, path: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dir = root.to_path_buf();
    let mut chain = vec![dir.clone()];
    for part in path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
    {
        dir.push(part);
        chain.push(dir.clone());
    }
    while let Some(d) = chain.pop() {
        out.push(d);
    }
    out
}

/// Room left under the cgroup limits below `root` for the cgroup `path`: the smallest
/// `limit - usage` over the cgroup and its ancestors that have a limit (`None` if none has).
pub fn cgroup_room_under(
    root: &Path,
    path: &str,
    limit_file: &str,
    usage_file: &str,
) -> Option<u64> {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    ancestors(root, path)
        .into_iter()
        .filter_map(|dir| {
            let limit = parse_limit(&read(dir.join(limit_file))?)?;
            let used = read(dir.join(usage_file))
                .and_then(|t| parse_usage(&t))
                .unwrap_or(0);
            Some(limit.saturating_sub(used))
        })
        .min()
}

/// Room under the cgroup memory limits of this process (v2, the hybrid v2 mount, then v1).
fn cgroup_room() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let (v2, v1) = parse_proc_cgroup(&text);
    let v2 = v2.unwrap_or_else(|| "/".into());
    let v1 = v1.unwrap_or_else(|| "/".into());
    [
        cgroup_room_under(
            Path::new("/sys/fs/cgroup"),
            &v2,
            "memory.max",
            "memory.current",
        ),
        cgroup_room_under(
            Path::new("/sys/fs/cgroup/unified"),
            &v2,
            "memory.max",
            "memory.current",
        ),
        cgroup_room_under(
            Path::new("/sys/fs/cgroup/memory"),
            &v1,
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
        ),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Room under `RLIMIT_AS`: the soft limit minus the current address space (`VmSize`).
fn address_space_room() -> Option<u64> {
    let limit = parse_address_space_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)?;
    let used = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| parse_kb_field(&t, "VmSize"))
        .unwrap_or(0);
    Some(limit.saturating_sub(used))
}

/// Bytes the process may still allocate, or `None` when the system does not tell: the
/// smallest of `MemAvailable`, the cgroup room and the address-space room.
pub fn budget() -> Option<u64> {
    let avail = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_kb_field(&t, "MemAvailable"));
    [avail, cgroup_room(), address_space_room()]
        .into_iter()
        .flatten()
        .min()
}

/// Refuse a request of `bytes` that does not fit in [`FRACTION`] of `budget`.
pub fn check_fits_within(
    bytes: f64,
    budget: Option<u64>,
    what: &str,
    alternative: &str,
) -> Result<()> {
    match budget {
        Some(b) if bytes > FRACTION * b as f64 => Err(CoreError::Memory {
            what: what.to_string(),
            bytes,
            budget: Some(b),
            alternative: alternative.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The pre-flight: `Err(CoreError::Memory)` if `bytes` would not fit in [`FRACTION`] of
/// [`budget`]. `what` names the buffers and the measure ("the two RSM triangles of rsa for
/// n = 30000"), `alternative` what to do instead ("subsample the rows").
pub fn check_fits(bytes: f64, what: &str, alternative: &str) -> Result<()> {
    check_fits_within(bytes, budget(), what, alternative)
}

/// `len` zeros, reserved fallibly from zeroed pages: no serial fill pass, the pages are
/// mapped (and cleared by the kernel) where each is first written, by whichever thread
/// writes it. For the large buffers the parallel kernels fill (a serial `memset` of an
/// n x n buffer was a tenth of a distance preparation and a serial phase).
pub fn try_zeroed_f64(len: usize, what: &str, alternative: &str) -> Result<Vec<f64>> {
    let error = || CoreError::Memory {
        what: what.to_string(),
        bytes: len as f64 * 8.0,
        budget: None,
        alternative: alternative.to_string(),
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let layout = std::alloc::Layout::array::<f64>(len).map_err(|_| error())?;
    // SAFETY: the layout has a non-zero size; a null pointer (allocation failure) is checked
    // before use; the all-zero bit pattern is the f64 0.0, so every element is initialised;
    // the vector takes ownership with the layout the global allocator gave (capacity = len).
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut f64;
        if ptr.is_null() {
            return Err(error());
        }
        huge_pages(ptr as *mut u8, layout.size());
        Ok(Vec::from_raw_parts(ptr, len, len))
    }
}

/// [`try_zeroed_f64`] for code that cannot return a `Result` (unwinds like [`vec`]).
pub fn zeroed_f64(len: usize, what: &str, alternative: &str) -> Vec<f64> {
    try_zeroed_f64(len, what, alternative).unwrap_or_else(|e| raise(e))
}

/// A vector of `len` copies of `value`, its memory reserved fallibly.
pub fn try_vec<T: Clone>(len: usize, value: T, what: &str, alternative: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    let bytes = len as f64 * std::mem::size_of::<T>() as f64;
    v.try_reserve_exact(len).map_err(|_| CoreError::Memory {
        what: what.to_string(),
        bytes,
        budget: None,
        alternative: alternative.to_string(),
    })?;
    v.resize(len, value);
    Ok(v)
}

/// An `(rows, cols)` array filled with `value`, its memory reserved fallibly.
pub fn try_array2<T: Clone>(
    shape: (usize, usize),
    value: T,
    what: &str,
    alternative: &str,
) -> Result<Array2<T>> {
    let len = shape
        .0
        .checked_mul(shape.1)
        .ok_or_else(|| CoreError::Memory {
            what: what.to_string(),
            bytes: shape.0 as f64 * shape.1 as f64 * std::mem::size_of::<T>() as f64,
            budget: None,
            alternative: alternative.to_string(),
        })?;
    let v = try_vec(len, value, what, alternative)?;
    Ok(Array2::from_shape_vec(Ix2(shape.0, shape.1), v).expect("length matches the shape"))
}

/// Stop the computation with `err` as the unwinding payload (no panic message is printed);
/// [`crate::interrupt::guard`] returns it as `Err(err)`.
pub fn raise(err: CoreError) -> ! {
    std::panic::resume_unwind(Box::new(err))
}

/// [`try_vec`] for code that cannot return a `Result`: on failure it unwinds with the
/// `CoreError::Memory` (caught by [`crate::interrupt::guard`]).
pub fn vec<T: Clone>(len: usize, value: T, what: &str, alternative: &str) -> Vec<T> {
    try_vec(len, value, what, alternative).unwrap_or_else(|e| raise(e))
}

/// An empty vector with room for `len` elements, reserved fallibly (advised for huge pages,
/// see the module docs); for code that cannot return a `Result` (unwinds like [`vec`]).
pub fn with_capacity<T>(len: usize, what: &str, alternative: &str) -> Vec<T> {
    let mut v = Vec::new();
    if v.try_reserve_exact(len).is_err() {
        raise(CoreError::Memory {
            what: what.to_string(),
            bytes: len as f64 * std::mem::size_of::<T>() as f64,
            budget: None,
            alternative: alternative.to_string(),
        });
    }
    huge_pages(v.as_mut_ptr() as *mut u8, len * std::mem::size_of::<T>());
    v
}

/// A zero-filled (`T::default()`) [`try_array2`] for code that cannot return a `Result`
/// (unwinds like [`vec`]).
pub fn zeros<T: Clone + Default>(
    shape: (usize, usize),
    what: &str,
    alternative: &str,
) -> Array2<T> {
    try_array2(shape, T::default(), what, alternative).unwrap_or_else(|e| raise(e))
}

/// Ask the kernel to back the whole 2 MiB pages inside a fresh buffer with huge pages (see
/// the module docs). Advice only: it changes no value, and failure is ignored; buffers
/// smaller than two huge pages hold at most one whole one and are left alone.
fn huge_pages(ptr: *mut u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 1 << 21;
        const MADV_HUGEPAGE: i32 = 14;
        extern "C" {
            fn madvise(addr: *mut u8, len: usize, advice: i32) -> i32;
        }
        if bytes >= 2 * HUGE {
            let start = (ptr as usize).next_multiple_of(HUGE);
            let end = (ptr as usize + bytes) / HUGE * HUGE;
            if end > start {
                // SAFETY: the range lies inside one live allocation; the advice does not
                // change its contents or its mapping, only how the kernel backs untouched
                // pages.
                unsafe { madvise(start as *mut u8, end - start, MADV_HUGEPAGE) };
            }
        }
    }
    let _ = (ptr, bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24568372 kB\nMemFree:        17980000 kB\n\
                           MemAvailable:   23001234 kB\nBuffers:          123456 kB\n";

    #[test]
    fn zeroed_vectors_are_zero_and_writable() {
        for len in [0, 1, 7, 1 << 20] {
            let mut v = try_zeroed_f64(len, "a test buffer", "none").unwrap();
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x.to_bits() == 0));
            v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f64);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as f64));
        }
        assert!(matches!(
            try_zeroed_f64(usize::MAX / 4, "an impossible buffer", "none"),
            Err(CoreError::Memory { .. })
        ));
    }

    #[test]
    fn meminfo_and_status_fields_are_read_in_bytes() {
        assert_eq!(
            parse_kb_field(MEMINFO, "MemAvailable"),
            Some(23001234 * 1024)
        );
        assert_eq!(parse_kb_field(MEMINFO, "MemTotal"), Some(24568372 * 1024));
        // A prefix of another field's name is not that field.
        assert_eq!(parse_kb_field(MEMINFO, "Mem"), None);
        assert_eq!(parse_kb_field(MEMINFO, "SwapTotal"), None);
        let status = "Name:\tpython\nVmPeak:\t  912340 kB\nVmSize:\t  812340 kB\nThreads:\t3\n";
        assert_eq!(parse_kb_field(status, "VmSize"), Some(812340 * 1024));
        assert_eq!(parse_kb_field(status, "Threads"), Some(3));
        assert_eq!(parse_kb_field("VmSize:\t garbage kB\n", "VmSize"), None);
    }

    #[test]
    fn cgroup_limits_and_usage() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("8589934592\n"), Some(8 << 30));
        // cgroup v1 "no limit": PAGE_COUNTER_MAX pages.
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit(""), None);
        assert_eq!(parse_usage("5431148544\n"), Some(5431148544));
    }

    #[test]
    fn proc_self_cgroup_paths_v1_v2_and_hybrid() {
        let v2 = "0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            parse_proc_cgroup(v2),
            (
                Some("/user.slice/user-1000.slice/session-2.scope".into()),
                None
            )
        );
        let hybrid = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/a869\n\
                      3:cpu,cpuacct:/\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(hybrid),
            (Some("/".into()), Some("/process_api/a869".into()))
        );
        let joined = "5:cpuacct,memory:/docker/abc\n";
        assert_eq!(
            parse_proc_cgroup(joined),
            (None, Some("/docker/abc".into()))
        );
        // "memory" must be a whole controller name.
        assert_eq!(parse_proc_cgroup("4:memory_x:/a\n"), (None, None));
    }

    #[test]
    fn address_space_limit_from_proc_limits() {
        let unlimited = "Limit                     Soft Limit           Hard Limit           Units     \n\
                         Max cpu time              unlimited            unlimited            seconds   \n\
                         Max address space         unlimited            unlimited            bytes     \n";
        assert_eq!(parse_address_space_limit(unlimited), None);
        let limited = "Max stack size            8388608              unlimited            bytes     \n\
                       Max address space         8192000000           unlimited            bytes     \n";
        assert_eq!(parse_address_space_limit(limited), Some(8_192_000_000));
    }

    #[test]
    fn cgroup_room_takes_the_tightest_ancestor() {
        let root = std::env::temp_dir().join(format!("congruence-cg-{}", std::process::id()));
        let leaf = root.join("a").join("b");
        std::fs::create_dir_all(&leaf).unwrap();
        // Root: no limit. a: limit 10 GB, 7 GB used. a/b: limit 6 GB, 1 GB used.
        std::fs::write(root.join("memory.max"), "max\n").unwrap();
        std::fs::write(root.join("a").join("memory.max"), "10000000000\n").unwrap();
        std::fs::write(root.join("a").join("memory.current"), "7000000000\n").unwrap();
        std::fs::write(leaf.join("memory.max"), "6000000000\n").unwrap();
        std::fs::write(leaf.join("memory.current"), "1000000000\n").unwrap();
        let room = cgroup_room_under(&root, "/a/b", "memory.max", "memory.current");
        assert_eq!(room, Some(3_000_000_000));
        // Usage above the limit leaves no room (not a wrap-around).
        std::fs::write(leaf.join("memory.current"), "7000000000\n").unwrap();
        let room = cgroup_room_under(&root, "/a/b", "memory.max", "memory.current");
        assert_eq!(room, Some(0));
        // No limit anywhere: unknown.
        let room = cgroup_room_under(&root, "/a/b", "memory.limit_in_bytes", "x");
        assert_eq!(room, None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn pre_flight_names_size_measure_and_alternative() {
        assert!(check_fits_within(8.9e9, Some(10_000_000_000), "x", "y").is_ok());
        assert!(check_fits_within(1e30, None, "x", "y").is_ok());
        let e = check_fits_within(
            9.5e9,
            Some(10_000_000_000),
            "the RSM triangles of rsa",
            "subsample the rows",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, CoreError::Memory { .. }));
        assert!(
            msg.contains("the RSM triangles of rsa needs about 9.50 GB"),
            "{msg}"
        );
        assert!(msg.contains("10.00 GB can be allocated"), "{msg}");
        assert!(msg.ends_with("subsample the rows"), "{msg}");
    }

    #[test]
    fn impossible_allocations_are_errors_not_aborts() {
        let e = try_vec(usize::MAX / 16, 0.0f64, "a huge buffer", "use less").unwrap_err();
        assert!(matches!(e, CoreError::Memory { budget: None, .. }));
        assert!(e.to_string().contains("allocation failed; use less"));
        let e = try_array2((usize::MAX / 2, 4), 0u64, "a huge array", "no").unwrap_err();
        assert!(matches!(e, CoreError::Memory { .. }));
        let caught = crate::interrupt::guard(|| Ok(vec(usize::MAX / 8, 0.0f64, "v", "w").len()));
        assert!(matches!(caught, Err(CoreError::Memory { .. })));
        let ok = try_array2((3, 2), 1.5f64, "small", "none").unwrap();
        assert_eq!(ok, Array2::from_elem((3, 2), 1.5));
    }

    #[test]
    fn the_budget_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            let b = budget().expect("MemAvailable is always there on Linux");
            assert!(b > 0);
        }
    }
}
