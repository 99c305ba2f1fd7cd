//! Quotas: the usage ledger of the root being served, limits and the
//! EDQUOT checks made before a call changes anything, the administrator's
//! view (report, limits, grace periods), and a recount of usage from the
//! tree (what the ledger must agree with, and what fsck checks). What is
//! not built yet is in docs/design-quota.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Filesystem;
use crate::error::{Error, Result};
use crate::ids::{Ino, Nid, PACK_SLOTS};
use crate::inode::Inode;
use crate::layout::PAGE_SIZE;
use crate::node::NodeBody;
use crate::perm::{cap, Cred};
use crate::quota_file::{Record, QUOTA_INO};
use crate::quotas::{as_count, room, QuotaTable};
use crate::usage::{IdKind, QuotaId, Usage};

/// What the limits of some ids leave room for, and what each id with a
/// limit uses (for starting grace times once the call is let through).
#[derive(Debug)]
pub(super) struct Room {
    /// The least room of the ids, in pages and inodes (`i64::MAX`: no
    /// limit; negative: already over).
    pub left: Usage,
    used: Vec<(QuotaId, Usage)>,
}

/// One id's line in a quota report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuotaLine {
    /// The id.
    pub id: QuotaId,
    /// What it uses now: recorded, changed since, and fresh dirty pages
    /// (as `st_blocks` and `du` count them).
    pub used: Usage,
    /// Its limits and grace ends (its usage fields are the last commit's).
    pub record: Record,
}

/// The quotas of one kind of id in the served root, as an administrator
/// sees them (`pagelog-quota report`; the daemon sends it as JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuotaReport {
    /// Which ids.
    pub kind: IdKind,
    /// The filesystem's clock, in seconds since the epoch (grace ends are
    /// measured by it).
    pub now: i64,
    /// Grace periods for pages and inodes, in seconds.
    pub grace: (u64, u64),
    /// Every id with usage or limits, by id.
    pub lines: Vec<QuotaLine>,
}

/// Limits to set for an id (0: none); `None` keeps the current one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Soft page limit.
    pub page_soft: Option<u64>,
    /// Hard page limit.
    pub page_hard: Option<u64>,
    /// Soft inode limit.
    pub inode_soft: Option<u64>,
    /// Hard inode limit.
    pub inode_hard: Option<u64>,
}

impl Filesystem {
    /// Does this image keep usage (the `quota` feature)?
    pub fn keeps_quota(&self) -> bool {
        self.store.quota_ino().is_some()
    }

    /// Is `ino` one of pagelog's own inodes, never seen by users: the
    /// graveyard, and the quota file on an image that keeps one?
    pub(super) fn is_internal(&self, ino: Ino) -> bool {
        ino == Ino::GRAVEYARD || (ino == QUOTA_INO && self.keeps_quota())
    }

    /// Reads the served root's quota file, if the image keeps usage and
    /// it is not read yet: before anything is charged to the root (at
    /// mount, when a view or a rolled-back root is entered).
    pub(super) fn load_quota(&mut self) -> Result<()> {
        if !self.keeps_quota() || self.store.root.quota.is_some() {
            return Ok(());
        }
        let dev = self.dev();
        let size = self.store.root.cache.inode(&*dev, QUOTA_INO)?.size;
        let pages = (0..size.div_ceil(PAGE_SIZE as u64))
            .map(|idx| self.read_page(QUOTA_INO, idx))
            .collect::<Result<Vec<_>>>()?;
        self.store.root.quota = Some(QuotaTable::load(&pages)?);
        self.store.root.cache.usage.skip = Some(QUOTA_INO);
        Ok(())
    }

    /// Usage by id as the served root records it (its quota file and what
    /// changed since the last commit), or `None` on an image without
    /// quotas.
    pub fn recorded_usage(&mut self) -> Result<Option<BTreeMap<QuotaId, Usage>>> {
        self.load_quota()?;
        if self.store.root.quota.is_none() {
            return Ok(None);
        }
        let out = self
            .known_ids()
            .into_iter()
            .map(|id| (id, self.used_by(id)))
            .filter(|(_, u)| *u != Usage::default())
            .collect();
        Ok(Some(out))
    }

    /// Every id the served root has a record of or a change for.
    fn known_ids(&self) -> BTreeSet<QuotaId> {
        let deltas = self.store.root.cache.usage.deltas().keys().copied();
        let q = self.store.root.quota.as_ref();
        let records = q.into_iter().flat_map(|q| q.records().map(|(id, _)| id));
        records.chain(deltas).collect()
    }

    /// What `id` uses by its record and the changes since (the fresh
    /// dirty pages of its inodes aside).
    fn used_by(&self, id: QuotaId) -> Usage {
        let q = self.store.root.quota.as_ref();
        let r = q.and_then(|q| q.get(id)).copied().unwrap_or_default();
        let d = self.store.root.cache.usage.deltas().get(&id);
        let d = d.copied().unwrap_or_default();
        Usage {
            pages: as_count(r.pages).saturating_add(d.pages),
            inodes: as_count(r.inodes).saturating_add(d.inodes),
        }
    }

    /// Sets the time quota grace periods are measured by (seconds since
    /// the epoch), or goes back to the system clock: for tests of grace.
    pub fn set_clock(&mut self, secs: Option<i64>) {
        self.store.clock = secs;
    }

    /// Has any id of the served root a limit?
    pub fn has_quota_limits(&self) -> bool {
        let Some(q) = &self.store.root.quota else {
            return false;
        };
        q.records().any(|(_, r)| r.has_limits())
    }

    /// What inode `ino` (`inode`) holds for its ids: its pages, fresh
    /// dirty ones included, and itself (what moves with a change of owner,
    /// group or project).
    pub(super) fn holds(&self, ino: Ino, inode: &Inode) -> Usage {
        let fresh = self.store.root.dirty.fresh(ino);
        Usage {
            pages: as_count(inode.blocks.saturating_add(fresh)),
            inodes: 1,
        }
    }

    /// Does any of `ids` have a limit?
    pub(super) fn has_limits(&self, ids: &[QuotaId]) -> bool {
        let Some(q) = &self.store.root.quota else {
            return false;
        };
        ids.iter()
            .any(|id| q.get(*id).is_some_and(Record::has_limits))
    }

    /// Fails with `QuotaExceeded`, having changed nothing but grace times,
    /// unless `ids` can each take `add` more within their limits (see
    /// [`Filesystem::quota_room`]).
    pub(super) fn admit(&mut self, cred: &Cred, ids: &[QuotaId], add: Usage) -> Result<()> {
        let Some(room) = self.quota_room(cred, ids, add)? else {
            return Ok(());
        };
        // As ext4, only what the call adds to is checked: an empty file
        // may be made over a page limit.
        if (add.pages > 0 && add.pages > room.left.pages)
            || (add.inodes > 0 && add.inodes > room.left.inodes)
        {
            return Err(Error::QuotaExceeded);
        }
        self.start_grace(&room, add);
        Ok(())
    }

    /// Fails with `QuotaExceeded` when the ids of directory `dir` are over
    /// a page limit: a new name may grow its index, which is charged to
    /// them, and whether it will is not known before (so a name is refused
    /// only once they are over, not at the limit).
    pub(super) fn admit_name(&mut self, cred: &Cred, dir: &Inode) -> Result<()> {
        let ids = QuotaId::of(dir);
        match self.quota_room(cred, &ids, Usage::default())? {
            Some(room) if room.left.pages < 0 => Err(Error::QuotaExceeded),
            _ => Ok(()),
        }
    }

    /// What the limits of `ids` leave room for, or `None` when none of
    /// them has a limit or the caller may exceed limits
    /// (CAP_SYS_RESOURCE, as on ext4). Usage counts the fresh dirty pages
    /// of the ids' inodes too, summed only when `want` might not fit
    /// without them, so calls far from any limit pay a lookup per id.
    pub(super) fn quota_room(
        &mut self,
        cred: &Cred,
        ids: &[QuotaId],
        want: Usage,
    ) -> Result<Option<Room>> {
        if cred.capable(cap::SYS_RESOURCE) {
            return Ok(None);
        }
        let Some(q) = &self.store.root.quota else {
            return Ok(None);
        };
        let limited: Vec<(QuotaId, Record)> = ids
            .iter()
            .filter_map(|id| q.get(*id).filter(|r| r.has_limits()).map(|r| (*id, *r)))
            .collect();
        if limited.is_empty() {
            return Ok(None);
        }
        let now = self.store.now_secs();
        // Fresh pages are at most the dirty ones; counted by id (once)
        // only when that bound could take an id past a limit.
        let all_fresh = self.store.root.dirty.count() as i64;
        let mut fresh: Option<HashMap<QuotaId, i64>> = None;
        let mut out = Room {
            left: Usage {
                pages: i64::MAX,
                inodes: i64::MAX,
            },
            used: Vec::with_capacity(limited.len()),
        };
        for (id, r) in limited {
            let mut used = self.used_by(id);
            // Exact when the fresh pages might take it past a soft or
            // hard limit (where grace times start, too).
            let lowest = [r.page_soft, r.page_hard]
                .into_iter()
                .filter(|&l| l != 0)
                .min();
            let reach = used
                .pages
                .saturating_add(want.pages)
                .saturating_add(all_fresh);
            if lowest.is_some_and(|l| reach > as_count(l)) {
                if fresh.is_none() {
                    let dev = self.dev();
                    fresh = Some(self.store.fresh_by_id(&*dev)?);
                }
                let by_id = fresh.as_ref().expect("just counted");
                used.pages += by_id.get(&id).copied().unwrap_or(0);
            }
            let left = room(&r, used, now);
            out.left.pages = out.left.pages.min(left.pages);
            out.left.inodes = out.left.inodes.min(left.inodes);
            out.used.push((id, used));
        }
        Ok(Some(out))
    }

    /// Starts the grace time of each id of `room` that `add` takes past a
    /// soft limit (anew if it was within it before the call, whatever a
    /// stale grace end from before says).
    pub(super) fn start_grace(&mut self, room: &Room, add: Usage) {
        let now = self.store.now_secs();
        let Some(q) = self.store.root.quota.as_mut() else {
            return;
        };
        for (id, used) in &room.used {
            let after = Usage {
                pages: used.pages + add.pages,
                inodes: used.inodes + add.inodes,
            };
            q.track_grace(*id, *used, now);
            q.track_grace(*id, after, now);
        }
    }

    /// The quotas of `kind` in the served root.
    pub fn quota_report(&mut self, kind: IdKind) -> Result<QuotaReport> {
        Ok(QuotaReport {
            kind,
            now: self.store.now_secs(),
            grace: self.grace(kind)?,
            lines: self.quota_lines(kind)?,
        })
    }

    /// Every id of `kind` with a record (usage or limits) in the served
    /// root, with what it uses now.
    fn quota_lines(&mut self, kind: IdKind) -> Result<Vec<QuotaLine>> {
        self.load_quota()?;
        if self.store.root.quota.is_none() {
            return Err(Error::NotSupported);
        }
        let dev = self.dev();
        let fresh = self.store.fresh_by_id(&*dev)?;
        let ids = self.known_ids().into_iter().filter(|id| id.kind == kind);
        let lines = ids.map(|id| self.line_with(id, &fresh));
        Ok(lines
            .filter(|l| l.used != Usage::default() || l.record.has_limits())
            .collect())
    }

    /// The line of `id`, its fresh pages counted from `fresh`.
    fn line_with(&self, id: QuotaId, fresh: &HashMap<QuotaId, i64>) -> QuotaLine {
        let mut used = self.used_by(id);
        used.pages += fresh.get(&id).copied().unwrap_or(0);
        let q = self.store.root.quota.as_ref();
        let record = q.and_then(|q| q.get(id)).copied().unwrap_or_default();
        QuotaLine { id, used, record }
    }

    /// Sets `id`'s limits (what `limits` names), starting its grace times
    /// if it is already over a new soft limit. Saved by the next commit.
    pub fn set_limits(&mut self, id: QuotaId, limits: Limits) -> Result<QuotaLine> {
        self.writable()?;
        let values = [
            limits.page_soft,
            limits.page_hard,
            limits.inode_soft,
            limits.inode_hard,
        ];
        if values.into_iter().flatten().any(|v| v > i64::MAX as u64) {
            return Err(Error::Refused(format!("a limit is at most {}", i64::MAX)));
        }
        self.load_quota()?;
        let Some(q) = self.store.root.quota.as_mut() else {
            return Err(Error::NotSupported);
        };
        let r = q.record_mut(id);
        let set = |field: &mut u64, v: Option<u64>| *field = v.unwrap_or(*field);
        set(&mut r.page_soft, limits.page_soft);
        set(&mut r.page_hard, limits.page_hard);
        set(&mut r.inode_soft, limits.inode_soft);
        set(&mut r.inode_hard, limits.inode_hard);
        let mut line = self.quota_line(id)?;
        let now = self.store.now_secs();
        let q = self.store.root.quota.as_mut().expect("loaded");
        q.track_grace(id, line.used, now);
        line.record = q.get(id).copied().unwrap_or_default();
        self.changed()?;
        Ok(line)
    }

    /// The grace periods of `kind` (pages, inodes; seconds).
    pub fn grace(&mut self, kind: IdKind) -> Result<(u64, u64)> {
        self.load_quota()?;
        let q = self.store.root.quota.as_ref().ok_or(Error::NotSupported)?;
        Ok(q.header.grace[kind as usize - 1])
    }

    /// Sets the grace periods of `kind` (pages, inodes; seconds), for
    /// soft limits passed from now on. Saved by the next commit.
    pub fn set_grace(&mut self, kind: IdKind, pages: u64, inodes: u64) -> Result<()> {
        self.writable()?;
        // Ends are seconds since the epoch in an i64: a century is plenty.
        const MAX_GRACE: u64 = 100 * 365 * 86_400;
        if pages.max(inodes) > MAX_GRACE {
            return Err(Error::Refused(format!(
                "a grace period is at most {MAX_GRACE} seconds (100 years)"
            )));
        }
        self.load_quota()?;
        let q = self.store.root.quota.as_mut().ok_or(Error::NotSupported)?;
        q.header.grace[kind as usize - 1] = (pages, inodes);
        q.header_changed();
        self.changed()
    }

    /// The line of `id` (all zeros if it has no record and no usage).
    pub(super) fn quota_line(&mut self, id: QuotaId) -> Result<QuotaLine> {
        let dev = self.dev();
        let fresh = self.store.fresh_by_id(&*dev)?;
        Ok(self.line_with(id, &fresh))
    }

    /// Usage changes by id since the served root was opened.
    pub fn usage_changes(&self) -> &HashMap<QuotaId, Usage> {
        self.store.root.cache.usage.deltas()
    }

    /// Usage by id, counted from every inode of the served root (the
    /// graveyard directory aside): pages as `blocks` holds them (stored,
    /// reserved by fallocate, a directory's index nodes) and inodes.
    pub fn recount_usage(&mut self) -> Result<BTreeMap<QuotaId, Usage>> {
        let dev = self.dev();
        let dev = &*dev;
        let mut out: BTreeMap<QuotaId, Usage> = BTreeMap::new();
        // Pagelog's own inodes (`is_internal`) are not counted.
        let quota_file = self.store.quota_ino();
        let cache = &mut self.store.root.cache;
        for n in 1..cache.nat.watermark().0 {
            let nid = Nid(n);
            if !cache.contains(dev, nid)? {
                continue;
            }
            let NodeBody::InodePack(pack) = &cache.get(dev, nid)?.body else {
                continue;
            };
            for slot in 0..PACK_SLOTS as usize {
                let ino = Ino::new(nid, slot);
                let Some(inode) = pack.get(ino) else {
                    continue;
                };
                if ino == Ino::GRAVEYARD || Some(ino) == quota_file {
                    continue;
                }
                for id in QuotaId::of(inode) {
                    let u = out.entry(id).or_default();
                    u.pages += inode.blocks as i64;
                    u.inodes += 1;
                }
            }
        }
        Ok(out)
    }
}
