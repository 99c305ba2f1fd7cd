//! Transforms from outside: shared libraries that export
//! `pagelog_transform_v1`, a table of C functions (version 1 of the ABI,
//! below), loaded at run time with `libloading`. Why a C ABI: Rust has no
//! stable one, so a module built by another compiler could not safely
//! hand over a trait object; why in-process: a round trip to another
//! process per cluster would cost more than compressing it (DESIGN.md,
//! "Transforms from outside").
//!
//! A module is trusted code (it runs inside the daemon), so only files
//! owned by root and writable by no one else, in a directory likewise,
//! are loaded.
//!
//! The ABI, version 1 (`#[repr(C)]`; every function thread-safe, never
//! unwinding, allocating nothing the caller frees):
//!
//! ```c
//! struct pagelog_transform_v1 {
//!     uint32_t abi;        /* 1 */
//!     uint16_t id;         /* 128 to 65535, stable forever */
//!     const char *name;    /* NUL-terminated, at most 16 bytes */
//!     /* option argument (after "name:") -> parameter bytes */
//!     int32_t (*parse)(const uint8_t *arg, size_t arg_len,
//!                      uint8_t *params, size_t cap, size_t *len);
//!     /* params, input -> output (apply: transform; undo: reverse) */
//!     int32_t (*apply)(const uint8_t *params, size_t params_len,
//!                      const uint8_t *in, size_t in_len,
//!                      uint8_t *out, size_t cap, size_t *len);
//!     int32_t (*undo)(/* the same */);
//! };
//! const struct pagelog_transform_v1 *pagelog_transform_v1(void);
//! ```
//!
//! Status: 0 done (`*len` bytes written), 1 the output does not fit in
//! `cap` (apply is retried with more room; for undo the input is damage),
//! 2 the input is not something apply made, 3 bad parameters or argument.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::raw::c_char;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{StageId, Transform};
use crate::error::{Error, Result};
use crate::ids::PageAddr;

/// Where modules are loaded from without being asked.
pub const SYSTEM_DIR: &str = "/usr/lib/pagelog/transforms";
/// The symbol every module exports.
const SYMBOL: &[u8] = b"pagelog_transform_v1";
/// The ABI version this build speaks.
const ABI: u32 = 1;
/// The first id a module may take (below are pagelog's own).
pub const FIRST_MODULE_ID: u16 = 128;

const OK: i32 = 0;
const OUT_TOO_SMALL: i32 = 1;

type Parse = unsafe extern "C" fn(*const u8, usize, *mut u8, usize, *mut usize) -> i32;
type Code =
    unsafe extern "C" fn(*const u8, usize, *const u8, usize, *mut u8, usize, *mut usize) -> i32;

/// The table a module exports (version 1).
#[repr(C)]
struct TableV1 {
    abi: u32,
    id: u16,
    name: *const c_char,
    parse: Parse,
    apply: Code,
    undo: Code,
}

/// A loaded module: the library (kept loaded for as long as anything
/// uses its functions) and what its table says.
#[derive(Debug)]
pub struct Module {
    /// Its id.
    pub id: StageId,
    /// Its name.
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    parse: Parse,
    apply: Code,
    undo: Code,
    _lib: libloading::Library,
}

// SAFETY: the ABI requires every function of a module to be thread-safe,
// and the table's values are copied out at load time.
unsafe impl Send for Module {}
// SAFETY: as above.
unsafe impl Sync for Module {}

fn refused(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Refused(format!("transform module {}: {why}", path.display()))
}

/// Owned by root and writable by no one else.
fn trusted(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| refused(path, e))?;
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(refused(
            path,
            "not loaded: it must be owned by root and writable by no one else",
        ));
    }
    Ok(())
}

impl Module {
    /// Loads the module at `path`.
    pub fn load(path: &Path) -> Result<Module> {
        trusted(path)?;
        if let Some(dir) = path.parent() {
            trusted(dir)?;
        }
        // SAFETY: loading runs the library's initialisers: a module is
        // trusted code (root-owned, checked above), as the README says.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| refused(path, e))?;
        // SAFETY: the symbol's type is the ABI's; a library exporting it
        // with another type breaks the ABI's contract.
        let table = unsafe {
            let get = lib
                .get::<unsafe extern "C" fn() -> *const TableV1>(SYMBOL)
                .map_err(|e| refused(path, e))?;
            get()
        };
        if table.is_null() {
            return Err(refused(path, "its table is null"));
        }
        // SAFETY: a non-null table of the ABI, valid while `lib` is.
        let t = unsafe { &*table };
        if t.abi != ABI {
            return Err(refused(
                path,
                format!("ABI version {}, this pagelog speaks {ABI}", t.abi),
            ));
        }
        if t.id < FIRST_MODULE_ID || t.name.is_null() {
            return Err(refused(
                path,
                format!("id {} (modules take {FIRST_MODULE_ID} and up)", t.id),
            ));
        }
        // SAFETY: a NUL-terminated string of the table.
        let name = unsafe { CStr::from_ptr(t.name) }
            .to_string_lossy()
            .into_owned();
        if name.is_empty() || name.len() > crate::chain_table::NAME_MAX || name.contains([':', '+'])
        {
            return Err(refused(
                path,
                format!("name '{name}' (1 to 16 bytes, no ':' or '+')"),
            ));
        }
        Ok(Module {
            id: StageId(t.id),
            name,
            path: path.to_path_buf(),
            parse: t.parse,
            apply: t.apply,
            undo: t.undo,
            _lib: lib,
        })
    }

    /// Every `*.so` in `dir`, in name order.
    pub fn load_dir(dir: &Path) -> Result<Vec<Module>> {
        let entries = std::fs::read_dir(dir).map_err(|e| refused(dir, e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "so"))
            .collect();
        paths.sort();
        paths.iter().map(|p| Module::load(p)).collect()
    }

    /// The parameter bytes for an option's argument.
    pub fn parse_arg(&self, arg: &str) -> Result<Vec<u8>> {
        let mut params = vec![0u8; crate::chain_table::PARAMS_MAX];
        let mut len = 0usize;
        // SAFETY: buffers and lengths as the ABI says.
        let status = unsafe {
            (self.parse)(
                arg.as_ptr(),
                arg.len(),
                params.as_mut_ptr(),
                params.len(),
                &mut len,
            )
        };
        if status != OK || len > params.len() {
            return Err(Error::Refused(format!(
                "{}:{arg}: the module refuses this argument",
                self.name
            )));
        }
        params.truncate(len);
        Ok(params)
    }

    /// Runs `f` (apply or undo) into a buffer of `cap` bytes.
    fn call(&self, f: Code, params: &[u8], input: &[u8], cap: usize) -> (i32, Vec<u8>) {
        let mut out = vec![0u8; cap];
        let mut len = 0usize;
        // SAFETY: buffers and lengths as the ABI says.
        let status = unsafe {
            f(
                params.as_ptr(),
                params.len(),
                input.as_ptr(),
                input.len(),
                out.as_mut_ptr(),
                out.len(),
                &mut len,
            )
        };
        if status == OK && len <= cap {
            out.truncate(len);
        }
        (if len > cap { OUT_TOO_SMALL } else { status }, out)
    }
}

/// A module's transform with its parameters: a stage of a chain.
#[derive(Debug)]
pub struct ModuleStage {
    module: Arc<Module>,
    params: Vec<u8>,
}

impl ModuleStage {
    /// `module` with `params`.
    pub fn new(module: Arc<Module>, params: Vec<u8>) -> ModuleStage {
        ModuleStage { module, params }
    }
}

fn module_failed(name: &str, what: &str, status: i32) -> Error {
    let why = match status {
        2 => "not something it made",
        3 => "bad parameters",
        _ => "failed",
    };
    Error::corrupt(
        format!("transform '{name}'"),
        PageAddr::NONE,
        format!("{what}: {why} (status {status})"),
    )
}

impl Transform for ModuleStage {
    fn id(&self) -> StageId {
        self.module.id
    }

    fn name(&self) -> &str {
        &self.module.name
    }

    fn spec(&self) -> String {
        // Parameters are the module's own bytes: shown in hex.
        crate::chain_table::StageRecord {
            id: self.module.id.0,
            name: self.module.name.clone(),
            params: self.params.clone(),
        }
        .spec()
    }

    fn params(&self) -> Vec<u8> {
        self.params.clone()
    }

    fn apply(&self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut cap = input.len() + input.len() / 8 + 1024;
        for _ in 0..4 {
            let (status, bytes) = self
                .module
                .call(self.module.apply, &self.params, input, cap);
            match status {
                OK => {
                    out.extend_from_slice(&bytes);
                    return Ok(());
                }
                OUT_TOO_SMALL => cap *= 4,
                s => return Err(module_failed(&self.module.name, "apply", s)),
            }
        }
        Err(module_failed(&self.module.name, "apply", OUT_TOO_SMALL))
    }

    fn undo(&self, stored: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<()> {
        let (status, bytes) = self
            .module
            .call(self.module.undo, &self.params, stored, max_len);
        if status != OK {
            return Err(module_failed(&self.module.name, "undo", status));
        }
        out.extend_from_slice(&bytes);
        Ok(())
    }
}
