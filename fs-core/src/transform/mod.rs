//! The transform pipeline: stages that turn a unit's bytes into what is
//! stored and back (compression today; see `docs/design-v4.md` for
//! sealing and modules from outside).
//!
//! A [`Transform`] has a stable id, recorded in every chain that uses it,
//! and a name; [`Registry`] builds one from its name and parameters
//! (`zstd:3`) or from what an image records (id and parameter bytes). A
//! [`Chain`] applies its stages in order on write and undoes them in
//! reverse on read. Every stage fails with an error, never a panic, on
//! any input: stored bytes come from the disk.

mod chain_set;
pub mod module;
mod zstd;

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use crate::chain_table::StageRecord;
use crate::error::{Error, Result};
use crate::ids::PageAddr;

pub use self::chain_set::ChainSet;
pub use self::module::{Module, ModuleStage};
pub use self::zstd::{looks_incompressible, Zstd};

/// What a stage inside a chain may undo to at most: twice the largest
/// unit, room for any stage's overhead on what it could not shrink.
pub const INNER_MAX: usize =
    2 * crate::segment_summary::MAX_UNIT_PAGES as usize * crate::layout::PAGE_SIZE;

/// A transform's stable id: recorded on disk, never reused for another
/// transform. 1 to 127 are built in, 128 and up are modules'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StageId(pub u16);

/// One stage of a chain.
pub trait Transform: Send + Sync + std::fmt::Debug {
    /// Its stable id.
    fn id(&self) -> StageId;
    /// Its name (`zstd`), recorded beside the id so that a build without
    /// it can say what an image needs.
    fn name(&self) -> &str;
    /// Its name and parameters as an option spells them (`zstd:3`).
    fn spec(&self) -> String;
    /// Its parameters as the image records them.
    fn params(&self) -> Vec<u8>;
    /// Transforms `input`, appending to `out`.
    fn apply(&self, input: &[u8], out: &mut Vec<u8>) -> Result<()>;
    /// Undoes [`Transform::apply`]: appends to `out` what `stored` was made
    /// from, which is at most `max_len` bytes; anything else is an error.
    fn undo(&self, stored: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<()>;
}

/// Stages applied in order: what a unit's chain number stands for.
#[derive(Debug, Default)]
pub struct Chain {
    stages: Vec<Box<dyn Transform>>,
}

impl Chain {
    /// A chain of `stages`, applied in that order.
    pub fn new(stages: Vec<Box<dyn Transform>>) -> Chain {
        Chain { stages }
    }

    /// No stage: bytes are stored as they are.
    pub fn is_raw(&self) -> bool {
        self.stages.is_empty()
    }

    /// The stages, in the order they are applied.
    pub fn stages(&self) -> &[Box<dyn Transform>] {
        &self.stages
    }

    /// The stages as the image's chain table records them.
    pub fn records(&self) -> Vec<StageRecord> {
        self.stages
            .iter()
            .map(|t| StageRecord {
                id: t.id().0,
                name: t.name().to_string(),
                params: t.params(),
            })
            .collect()
    }

    /// What the chain stores for `input`.
    pub fn apply(&self, input: &[u8]) -> Result<Vec<u8>> {
        let mut cur = Cow::Borrowed(input);
        for t in &self.stages {
            let mut out = Vec::new();
            t.apply(&cur, &mut out)?;
            cur = Cow::Owned(out);
        }
        Ok(cur.into_owned())
    }

    /// The `len` bytes `stored` was made from; an error naming `what` when
    /// any stage fails or the result is not exactly `len` bytes long. A
    /// stage inside the chain may have made more than `len` bytes (zstd
    /// over what does not compress), so only the first stage applied is
    /// held to `len`; the others to [`INNER_MAX`].
    pub fn undo(&self, stored: &[u8], len: usize, what: &str) -> Result<Vec<u8>> {
        let mut cur = Cow::Borrowed(stored);
        for (i, t) in self.stages.iter().enumerate().rev() {
            let bound = if i == 0 { len } else { INNER_MAX.max(len) };
            let mut out = Vec::new();
            t.undo(&cur, bound, &mut out)
                .map_err(|e| undo_failed(what, t.as_ref(), e))?;
            cur = Cow::Owned(out);
        }
        let cur = cur.into_owned();
        if cur.len() != len {
            return Err(Error::corrupt(
                what,
                PageAddr::NONE,
                format!(
                    "undoing its transforms gives {} bytes, not {len}",
                    cur.len()
                ),
            ));
        }
        Ok(cur)
    }

    /// The chain as an option spells it (`zstd:3`, stages joined by `+`;
    /// `none` for the raw chain).
    pub fn spec(&self) -> String {
        crate::chain_table::chain_spec(&self.records())
    }
}

fn undo_failed(what: &str, t: &dyn Transform, e: Error) -> Error {
    let detail = match e {
        Error::Corrupt { detail, .. } => detail,
        other => other.to_string(),
    };
    Error::corrupt(what, PageAddr::NONE, format!("{}: {detail}", t.spec()))
}

/// The transforms a process knows, by name and by id: the built-in ones
/// and the modules it loaded.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    modules: Vec<Arc<Module>>,
}

/// The process's registry (modules are loaded into it once, at start).
static GLOBAL: RwLock<Option<Arc<Registry>>> = RwLock::new(None);

/// How a user loads a module, for messages.
const LOAD_HINT: &str = "load it with -o modules=DIR (mount) or --modules DIR (mkfs, fsck), \
     or put it in /usr/lib/pagelog/transforms";

impl Registry {
    /// The built-in transforms alone.
    pub fn builtin() -> Registry {
        Registry::default()
    }

    /// The process's transforms: the built-in ones, the modules of
    /// [`module::SYSTEM_DIR`] (if it exists) and those [`Registry::load`]
    /// added.
    pub fn global() -> Arc<Registry> {
        if let Some(r) = GLOBAL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return r.clone();
        }
        let mut g = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
        g.get_or_insert_with(|| {
            let mut r = Registry::builtin();
            let dir = std::path::Path::new(module::SYSTEM_DIR);
            if dir.is_dir() {
                if let Err(e) = r.add_dir(dir) {
                    log::warn!("{e}");
                }
            }
            Arc::new(r)
        })
        .clone()
    }

    /// Loads every module in `dir` into the process's registry; returns
    /// their names.
    pub fn load(dir: &std::path::Path) -> Result<Vec<String>> {
        let mut r = (*Registry::global()).clone();
        let names = r.add_dir(dir)?;
        *GLOBAL.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(r));
        Ok(names)
    }

    /// Adds the modules of `dir`; refuses one whose id or name another
    /// transform has.
    fn add_dir(&mut self, dir: &std::path::Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for m in Module::load_dir(dir)? {
            let clash = m.id == Zstd::ID
                || m.name == "zstd"
                || m.name == "none"
                || self
                    .modules
                    .iter()
                    .any(|o| o.id == m.id || o.name == m.name);
            if clash {
                // The same module loaded twice (from two places) is fine.
                if self
                    .modules
                    .iter()
                    .any(|o| o.id == m.id && o.name == m.name)
                {
                    continue;
                }
                return Err(Error::Refused(format!(
                    "transform module {}: id {} or name '{}' is taken",
                    m.path.display(),
                    m.id.0,
                    m.name
                )));
            }
            names.push(m.name.clone());
            self.modules.push(Arc::new(m));
        }
        Ok(names)
    }

    /// The transform an option names (`zstd`, `zstd:LEVEL`, a module's
    /// `NAME:ARG`, or `NAME#HEX` with its parameter bytes as they are).
    pub fn parse(&self, spec: &str) -> Result<Box<dyn Transform>> {
        if let Some((name, hex)) = spec.split_once('#') {
            let params = unhex(hex).ok_or_else(|| {
                Error::Refused(format!("{spec}: parameters after '#' are hex bytes"))
            })?;
            return match self.modules.iter().find(|m| m.name == name) {
                Some(m) => Ok(Box::new(ModuleStage::new(m.clone(), params))),
                None => self.build(self.id_of(name)?, &params),
            };
        }
        let (name, arg) = spec.split_once(':').unwrap_or((spec, ""));
        if name == "zstd" {
            return Ok(Box::new(Zstd::from_arg(arg)?));
        }
        match self.modules.iter().find(|m| m.name == name) {
            Some(m) => Ok(Box::new(ModuleStage::new(m.clone(), m.parse_arg(arg)?))),
            None => Err(Error::Refused(format!(
                "unknown transform '{name}' (built in: zstd{}); a module's: {LOAD_HINT}",
                self.modules
                    .iter()
                    .map(|m| format!(", {}", m.name))
                    .collect::<String>()
            ))),
        }
    }

    fn id_of(&self, name: &str) -> Result<StageId> {
        match name {
            "zstd" => Ok(Zstd::ID),
            _ => Err(Error::Refused(format!("unknown transform '{name}'"))),
        }
    }

    /// A chain an option names: stages joined by `+`, or `none`.
    pub fn parse_chain(&self, spec: &str) -> Result<Chain> {
        if spec == "none" || spec.is_empty() {
            return Ok(Chain::default());
        }
        let stages = spec
            .split('+')
            .map(|s| self.parse(s))
            .collect::<Result<Vec<_>>>()?;
        Ok(Chain::new(stages))
    }

    /// The transform an image records: its id and parameter bytes. A
    /// transform this process does not have is refused by id.
    pub fn build(&self, id: StageId, params: &[u8]) -> Result<Box<dyn Transform>> {
        if id == Zstd::ID {
            return Ok(Box::new(Zstd::from_params(params)?));
        }
        match self.modules.iter().find(|m| m.id == id) {
            Some(m) => Ok(Box::new(ModuleStage::new(m.clone(), params.to_vec()))),
            None => Err(Error::Unsupported(format!(
                "transform id {}, which this build does not have",
                id.0
            ))),
        }
    }

    /// The chain an image's table records, refused by the name of the
    /// first stage this process does not have.
    pub fn build_chain(&self, stages: &[StageRecord]) -> Result<Chain> {
        let built = stages
            .iter()
            .map(|s| {
                self.build(StageId(s.id), &s.params).map_err(|e| match e {
                    Error::Unsupported(_) => Error::Unsupported(format!(
                        "the filesystem needs transform '{}' (id {}), which is not loaded; {LOAD_HINT}",
                        s.name, s.id
                    )),
                    other => other,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Chain::new(built))
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_parse_apply_and_undo() {
        let reg = Registry::builtin();
        let chain = reg.parse_chain("zstd:3").expect("chain");
        assert_eq!(chain.spec(), "zstd:3");
        let data: Vec<u8> = b"pagelog ".iter().copied().cycle().take(16384).collect();
        let stored = chain.apply(&data).expect("apply");
        assert!(stored.len() < data.len() / 10, "{} bytes", stored.len());
        assert_eq!(chain.undo(&stored, data.len(), "test").expect("undo"), data);
        // The length the reader expects is checked.
        assert!(chain.undo(&stored, data.len() - 1, "test").is_err());
        assert!(chain.undo(&stored, data.len() + 1, "test").is_err());
        // Two stages: the inner one grew what it could not shrink.
        let noise: Vec<u8> = (0..16384u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let twice = reg.parse_chain("zstd:1+zstd:1").expect("two stages");
        let stored = twice.apply(&noise).expect("apply");
        assert_eq!(
            twice.undo(&stored, noise.len(), "test").expect("undo"),
            noise
        );
        // The raw chain stores what it is given.
        let raw = reg.parse_chain("none").expect("none");
        assert!(raw.is_raw());
        assert_eq!(raw.apply(&data).expect("apply"), data);
    }

    #[test]
    fn what_an_image_records_builds_the_same_transform() {
        let reg = Registry::builtin();
        let t = reg.parse("zstd:7").expect("zstd:7");
        let again = reg.build(t.id(), &t.params()).expect("build");
        assert_eq!(again.spec(), "zstd:7");
        let err = reg.build(StageId(130), &[]).expect_err("unknown id");
        assert!(err.to_string().contains("transform id 130"), "{err}");
        let err = reg.parse("lz4").expect_err("unknown name");
        assert!(err.to_string().contains("unknown transform 'lz4'"), "{err}");
        assert!(err.to_string().contains("modules=DIR"), "{err}");
        // Parameter bytes as they are: what a module's chain shows.
        assert_eq!(reg.parse("zstd#07").expect("zstd#07").spec(), "zstd:7");
        assert!(reg.parse("zstd#7").is_err());
        assert!(reg.parse("zstd#zz").is_err());
        let err = reg
            .build_chain(&[StageRecord {
                id: 130,
                name: "lz4".into(),
                params: Vec::new(),
            }])
            .expect_err("not loaded");
        assert!(
            err.to_string().contains("needs transform 'lz4' (id 130)"),
            "{err}"
        );
    }
}
