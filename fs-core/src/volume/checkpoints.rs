//! Retained checkpoints and snapshots: which commits stay mountable, what
//! each holds, and giving that back (DESIGN.md, "Retained checkpoints").
//!
//! A commit is retained when the retention interval has passed since the
//! newest retained one (or when a snapshot asks for it): its record joins
//! the checkpoint list. From then on, a unit the live root kills that was
//! born at or before that checkpoint goes on its deadlist instead of being
//! freed ([`crate::page_life::PageLife::died`]). Pruning a checkpoint
//! frees the units of its deadlist born after the retained checkpoint
//! before it (nothing else can need them) and hands the rest to that one:
//! the work is the size of one deadlist, never of the tree. Plain
//! checkpoints older than the protection window are pruned at the next
//! commit, and younger ones, oldest first, when the filesystem is short
//! of room; snapshots only when deleted.

use crate::checkpoint_record::{Record, FLAG_SNAPSHOT, NAME_MAX};
use crate::deadlist_page::{DeadUnit, DeadlistPage, CAPACITY};
use crate::device::BlockDevice;
use crate::error::{Error, Result};
use crate::ids::{CheckpointNo, PageAddr, Vpn};
use crate::layout::zero_page;
use crate::page_life::life;
use crate::segment_summary::PageKind;
use crate::store::{DataScope, Store};

/// How long checkpoints are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionOptions {
    /// Plain checkpoints younger than this are kept while there is room
    /// (seconds); `None` keeps what the filesystem recorded (mkfs: one
    /// hour).
    pub protect_secs: Option<u64>,
    /// A commit is retained when this long has passed since the newest
    /// retained checkpoint (fsync storms would otherwise retain every
    /// commit, and with it every version of every page they rewrite).
    pub interval_ns: i64,
    /// Plain checkpoints may hold at most this percentage of the free room
    /// (what neither the present nor a snapshot needs); past it, the oldest
    /// give way. History the cleaner would otherwise copy again and again
    /// costs writes; this keeps the cleaner's view of the disk close to the
    /// present's.
    pub history_percent: u8,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        RetentionOptions {
            protect_secs: None,
            interval_ns: 5_000_000_000,
            history_percent: DEFAULT_HISTORY_PERCENT,
        }
    }
}

/// The share of the free room plain checkpoints may hold by default.
pub const DEFAULT_HISTORY_PERCENT: u8 = 25;

/// The protection window mkfs records.
pub const DEFAULT_PROTECT_SECS: u64 = 3600;

/// Which past state to mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum At {
    /// A retained checkpoint by number.
    Checkpoint(CheckpointNo),
    /// A snapshot by name.
    Snapshot(Vec<u8>),
    /// The newest retained checkpoint taken at or before this time (ns
    /// since the epoch).
    Time(i64),
}

/// Checks a snapshot name: 1 to 127 bytes, no `/`, no NUL.
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.len() > NAME_MAX || name.contains(&b'/') || name.contains(&0) {
        return Err(Error::Refused(format!(
            "a snapshot name is 1 to {NAME_MAX} bytes without '/' or NUL"
        )));
    }
    Ok(())
}

impl Store {
    /// The retained checkpoint `at` names.
    pub fn find_checkpoint(&self, at: &At) -> Result<&Record> {
        let found = match at {
            At::Checkpoint(no) => self.cplist.get(*no),
            At::Snapshot(name) => self.cplist.snapshot(name),
            At::Time(t) => self.cplist.records().rev().find(|r| r.time_ns <= *t),
        };
        found.ok_or_else(|| {
            let what = match at {
                At::Checkpoint(no) => format!("checkpoint {no} is not retained"),
                At::Snapshot(name) => {
                    format!("no snapshot is named '{}'", String::from_utf8_lossy(name))
                }
                At::Time(t) => format!("no checkpoint is retained from before {t} ns"),
            };
            Error::Refused(format!("{what}; `pagelog-snapshot list` shows what is"))
        })
    }

    /// Should the commit being built at `time_ns` be retained?
    pub(crate) fn should_retain(&self, time_ns: i64) -> bool {
        // Measured from the last commit retained, even if it has been
        // pruned since: a filesystem short of room that gave its
        // checkpoints back does not retain the very next commit.
        let last = self.cplist.newest().map_or(self.last_retained_ns, |r| {
            r.time_ns.max(self.last_retained_ns)
        });
        self.retain_as.is_some() || time_ns.saturating_sub(last) >= self.retention.interval_ns
    }

    /// The record of the live root as the commit `no` leaves it.
    pub(crate) fn live_record(&self, no: CheckpointNo, time_ns: i64) -> Record {
        let nat = &self.root.cache.nat;
        let (flags, name) = match &self.retain_as {
            Some(name) if !name.is_empty() => (FLAG_SNAPSHOT, name.clone()),
            _ => (0, Vec::new()),
        };
        Record {
            no,
            time_ns,
            nat_root: nat.root(),
            flags,
            nat_free_head: nat.free_head(),
            nat_watermark: nat.watermark(),
            inode_count: self.root.inode_count,
            next_generation: self.root.next_generation,
            reserved_pages: self.root.reserved_pages,
            name,
            ..Record::default()
        }
    }

    /// Appends the deadlist entries waiting since the last commit to their
    /// checkpoints' deadlists, one page per 254, each page a unit chained
    /// in front of the list.
    pub(crate) fn flush_deadlists(
        &mut self,
        dev: &dyn BlockDevice,
        building: CheckpointNo,
    ) -> Result<()> {
        let pending = std::mem::take(&mut self.root.history.pending);
        for (no, units) in pending {
            let mut rec = self.cplist.get(no).cloned().ok_or_else(|| {
                Error::corrupt(
                    "deadlist",
                    PageAddr::NONE,
                    format!("entries for checkpoint {no}, which is not retained"),
                )
            })?;
            let prev = self.cplist.before(no).map_or(CheckpointNo(0), |r| r.no);
            for chunk in units.chunks(CAPACITY) {
                let page = DeadlistPage {
                    checkpoint: no,
                    next: (rec.dead_head, rec.dead_crc),
                    entries: chunk.to_vec(),
                };
                let (bytes, _) = page.encode();
                let mut life = life!(self, dev, building);
                let (vpn, crc) =
                    life.write_unit(&mut self.log, (PageKind::Deadlist, no.0, 0), &bytes[..])?;
                rec.dead_head = vpn;
                rec.dead_crc = crc;
                rec.dead_entries += chunk.len() as u64;
                rec.dead_pages += 1;
                rec.exclusive += self.pages_born_after(chunk, prev)?;
            }
            self.cplist.update(dev, rec)?;
        }
        Ok(())
    }

    /// The pages the units of `units` born after `prev` take (a deadlist's
    /// units are still allocated, so the page address table knows).
    fn pages_born_after(&self, units: &[DeadUnit], prev: CheckpointNo) -> Result<u64> {
        let mut pages = 0;
        for &(vpn, _) in units.iter().filter(|(_, b)| *b > prev) {
            pages += self
                .pat
                .lookup(&*self.dev, vpn)?
                .map_or(1, |e| u64::from(e.pages));
        }
        Ok(pages)
    }

    /// The entries of the deadlist starting at `head` (checksum `crc`),
    /// and the vpns of its pages.
    pub fn read_deadlist(&self, head: Vpn, crc: u32) -> Result<(Vec<DeadUnit>, Vec<Vpn>)> {
        read_deadlist(&*self.dev, &self.pat, head, crc)
    }

    /// Prunes retained checkpoint `no`: frees what only it held, hands the
    /// rest of its deadlist to the retained checkpoint before it, and
    /// recounts what the one after it holds alone. Takes effect with the
    /// next commit.
    pub fn prune(&mut self, no: CheckpointNo) -> Result<()> {
        let dev = self.dev.clone();
        let dev: &dyn BlockDevice = &*dev;
        let rec = self
            .cplist
            .get(no)
            .cloned()
            .ok_or_else(|| Error::Refused(format!("checkpoint {no} is not retained")))?;
        let prev = self.cplist.before(no).map(|r| r.no);
        let next = self.cplist.after(no).map(|r| r.no);
        let (mut units, pages) = self.read_deadlist(rec.dead_head, rec.dead_crc)?;
        units.extend(self.root.history.pending.remove(&no).unwrap_or_default());
        let building = self.building();
        let mut life = life!(self, dev, building);
        for (vpn, birth) in units {
            match prev {
                Some(p) if birth <= p => life
                    .history()
                    .pending
                    .entry(p)
                    .or_default()
                    .push((vpn, birth)),
                _ => life.free(vpn)?,
            }
        }
        for vpn in pages {
            life.free(vpn)?;
        }
        self.cplist.remove(dev, no)?;
        if self.root.history.last == no {
            self.root.history.last = prev.unwrap_or(CheckpointNo(0));
        }
        if let Some(n) = next {
            self.recount(n)?;
        }
        self.root.changed = true;
        Ok(())
    }

    /// Forgets retained checkpoint `no`, whose deadlist cannot be read, and
    /// every retained checkpoint before it (a repair's): the units its
    /// deadlist held died after it and before the next, so only it and the
    /// ones before it hold them, and with those gone they are leaks a
    /// later check names (and a repair frees). Refused when a snapshot or
    /// a branch's origin is among them. Returns the checkpoints forgotten.
    pub fn prune_back(&mut self, no: CheckpointNo) -> Result<Vec<CheckpointNo>> {
        let older: Vec<CheckpointNo> = self
            .cplist
            .records()
            .map(|r| r.no)
            .filter(|&n| n <= no)
            .collect();
        for &n in &older {
            let snapshot = self.cplist.get(n).is_some_and(|r| r.is_snapshot());
            if snapshot || self.kept_open(n) {
                return Err(Error::Refused(format!(
                    "checkpoint {n}, at or before {no}, is a snapshot or a branch's origin: \
                     not forgotten by a repair"
                )));
            }
        }
        // It goes first, its deadlist unread (pruning the one before it
        // would recount it, reading that list).
        let dev = self.dev.clone();
        let building = self.building();
        let pending = self.root.history.pending.remove(&no).unwrap_or_default();
        let mut life = life!(self, &*dev, building);
        for (vpn, _) in pending {
            life.free(vpn)?;
        }
        let prev = self.cplist.before(no).map(|r| r.no);
        self.cplist.remove(&*dev, no)?;
        if self.root.history.last == no {
            self.root.history.last = prev.unwrap_or(CheckpointNo(0));
        }
        // Then the ones before it, oldest first: each one's deadlist
        // (readable) is freed whole, nothing older holding its units.
        for &n in older.iter().filter(|&&n| n != no) {
            self.prune(n)?;
        }
        if let Some(n) = self.cplist.after(no).map(|r| r.no) {
            self.recount(n)?;
        }
        self.root.changed = true;
        Ok(older)
    }

    /// Counts retained checkpoint `no`'s deadlist entries again, and what
    /// it holds alone (a repair's, for a record whose count is wrong).
    /// Returns the entries.
    pub fn recount_deadlist(&mut self, no: CheckpointNo) -> Result<u64> {
        let mut rec = self
            .cplist
            .get(no)
            .cloned()
            .ok_or_else(|| Error::Refused(format!("checkpoint {no} is not retained")))?;
        let (units, _) = self.read_deadlist(rec.dead_head, rec.dead_crc)?;
        rec.dead_entries = units.len() as u64;
        let dev = self.dev.clone();
        self.cplist.update(&*dev, rec)?;
        self.recount(no)?;
        self.root.changed = true;
        Ok(units.len() as u64)
    }

    /// Recounts what retained checkpoint `no` holds alone (its deadlist's
    /// entries born after the retained checkpoint before it).
    fn recount(&mut self, no: CheckpointNo) -> Result<()> {
        let Some(mut rec) = self.cplist.get(no).cloned() else {
            return Ok(());
        };
        let prev = self.cplist.before(no).map_or(CheckpointNo(0), |r| r.no);
        let (units, _) = self.read_deadlist(rec.dead_head, rec.dead_crc)?;
        rec.exclusive = self.pages_born_after(&units, prev)?;
        let dev = self.dev.clone();
        self.cplist.update(&*dev, rec)
    }

    /// Prunes the plain checkpoints older than the protection window.
    pub(crate) fn expire(&mut self, now_ns: i64) -> Result<()> {
        let window = i64::try_from(self.protect_secs())
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000_000);
        let old: Vec<CheckpointNo> = self
            .cplist
            .records()
            .filter(|r| self.prunable(r) && now_ns.saturating_sub(r.time_ns) > window)
            .map(|r| r.no)
            .collect();
        for no in old {
            self.prune(no)?;
        }
        self.keep_history_share()
    }

    /// Prunes plain checkpoints, oldest first, while they hold more than
    /// their share of the free room (`history_percent`). Under churn, every
    /// retained checkpoint holds a version of each page rewritten since, and
    /// a window full of them would leave the cleaner copying history it
    /// is about to give back; this keeps the window to what the room
    /// affords.
    fn keep_history_share(&mut self) -> Result<()> {
        let share = u64::from(self.retention.history_percent.min(100));
        // Pruning moves pages from "held" to "dead"; both count as free.
        let budget = self.free_pages().saturating_mul(share) / 100;
        while self.held_by_plain() > budget {
            let Some(no) = self.oldest_plain() else { break };
            log::debug!("plain checkpoints hold more than {share}% of the free room: pruning {no}");
            self.prune(no)?;
        }
        Ok(())
    }

    /// The oldest plain checkpoint nothing keeps open.
    fn oldest_plain(&self) -> Option<CheckpointNo> {
        self.cplist
            .records()
            .find(|r| self.prunable(r))
            .map(|r| r.no)
    }

    /// May `r` be pruned without being asked for by name: a plain
    /// checkpoint nothing keeps open.
    fn prunable(&self, r: &Record) -> bool {
        !r.is_snapshot() && !self.kept_open(r.no)
    }

    /// Prunes every plain checkpoint, oldest first, even inside the window
    /// (the filesystem is short of room, and cleaning gains nothing: a
    /// plain checkpoint is a convenience, a snapshot is a promise), except
    /// those a view serves. With
    /// none left, units the live root lets go are freed at once again, as
    /// they would be without retention. Returns whether any held something.
    pub(crate) fn give_way(&mut self) -> Result<bool> {
        let mut held = false;
        while let Some(rec) = self
            .oldest_plain()
            .and_then(|no| self.cplist.get(no).cloned())
        {
            held |= rec.dead_entries > 0 || self.root.history.pending.contains_key(&rec.no);
            log::info!(
                "short of room: pruning checkpoint {} inside the protection window",
                rec.no
            );
            self.prune(rec.no)?;
        }
        Ok(held)
    }

    /// Is retained checkpoint `no` kept whatever the window says: open
    /// beside the live root, or the origin of a branch?
    pub(crate) fn kept_open(&self, no: CheckpointNo) -> bool {
        self.pinned.contains_key(&no) || self.cplist.is_origin(no)
    }

    /// The protection window in force (seconds).
    pub fn protect_secs(&self) -> u64 {
        self.retention.protect_secs.unwrap_or(self.cp.protect_secs)
    }

    /// Pages held by plain checkpoints alone: given back whenever room is
    /// short, so counted as free (units killed since the last commit, not
    /// yet on a deadlist, included). Exact while no snapshot is older than a
    /// plain checkpoint (then every unit on its deadlist is held by plain
    /// checkpoints only); past the oldest snapshot, what each holds alone
    /// (an underestimate: free space is never overstated).
    pub fn held_by_plain(&self) -> u64 {
        let first_snapshot = self
            .cplist
            .records()
            .find(|r| r.is_snapshot())
            .map_or(CheckpointNo(u64::MAX), |r| r.no);
        let pending = |no| {
            self.root
                .history
                .pending
                .get(&no)
                .map_or(0, |v: &Vec<DeadUnit>| v.len() as u64)
        };
        self.cplist
            .records()
            .filter(|r| !r.is_snapshot())
            .map(|r| match r.no < first_snapshot {
                true => r.dead_entries + r.dead_pages + pending(r.no),
                false => r.exclusive,
            })
            .sum()
    }

    /// Pages held by snapshots alone.
    pub fn held_by_snapshots(&self) -> u64 {
        self.cplist
            .records()
            .filter(|r| r.is_snapshot())
            .map(|r| r.exclusive)
            .sum()
    }

    /// Marks the live state now (`at` None: a commit retained for it) or a
    /// retained checkpoint as snapshot `name`, durably. Returns the
    /// checkpoint.
    pub fn create_snapshot(
        &mut self,
        name: &[u8],
        at: Option<CheckpointNo>,
    ) -> Result<CheckpointNo> {
        check_name(name)?;
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if self.cplist.snapshot(name).is_some() || self.cplist.branch(name).is_some() {
            return Err(Error::Exists);
        }
        self.with_live(|s| s.create_snapshot_live(name, at))
    }

    fn create_snapshot_live(
        &mut self,
        name: &[u8],
        at: Option<CheckpointNo>,
    ) -> Result<CheckpointNo> {
        let no = match at {
            None => {
                self.retain_as = Some(name.to_vec());
                self.root.changed = true;
                let r = self.commit_scope(DataScope::All, true);
                self.retain_as = None;
                r?;
                self.cp.no
            }
            Some(no) => {
                let mut rec = self.find_checkpoint(&At::Checkpoint(no))?.clone();
                rec.flags |= FLAG_SNAPSHOT;
                rec.name = name.to_vec();
                let dev = self.dev.clone();
                self.cplist.update(&*dev, rec)?;
                self.root.changed = true;
                self.commit_scope(DataScope::All, true)?;
                no
            }
        };
        Ok(no)
    }

    /// Deletes snapshot `name` (prunes its checkpoint), durably.
    pub fn delete_snapshot(&mut self, name: &[u8]) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let no = self.find_checkpoint(&At::Snapshot(name.to_vec()))?.no;
        let shown = String::from_utf8_lossy(name);
        if self.pinned.contains_key(&no) || self.mount_at == Some(no) {
            return Err(Error::Refused(format!(
                "snapshot '{shown}' is mounted; unmount it first"
            )));
        }
        if let Some(b) = self.cplist.branches().find(|b| b.no == no) {
            return Err(Error::Refused(format!(
                "branch '{}' was made from snapshot '{shown}'; delete the branch first",
                b.shown_name()
            )));
        }
        self.with_live(|s| {
            s.prune(no)?;
            s.commit_scope(DataScope::All, true)
        })
    }
}

/// Reads the deadlist chain from `head` through the page address table
/// `pat`: its entries, and the vpns of its pages.
pub fn read_deadlist(
    dev: &dyn BlockDevice,
    pat: &crate::page_table::PageTable,
    mut head: Vpn,
    mut crc: u32,
) -> Result<(Vec<DeadUnit>, Vec<Vpn>)> {
    let (mut units, mut pages) = (Vec::new(), Vec::new());
    while !head.is_none() {
        if pages.len() as u64 > pat.state().watermark {
            return Err(Error::corrupt(
                "deadlist",
                PageAddr::NONE,
                "the chain loops",
            ));
        }
        let mut page = zero_page();
        let what = || format!("deadlist page (unit {head})");
        let kind = crate::segment_summary::PageKind::Deadlist;
        let addr = pat.read_page_unit(dev, head, kind, &mut page, &what)?;
        let p = DeadlistPage::decode(&page[..], addr, crc)?;
        units.extend(p.entries);
        pages.push(head);
        (head, crc) = p.next;
    }
    Ok((units, pages))
}
