//! What a check finds: typed findings with a severity and a place.

use std::fmt;

use crate::ids::{Ino, Nid, PageAddr, SegmentNo, Vpn};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// Something is off but no data is at risk (a damaged superblock copy).
    Warning,
    /// The filesystem is inconsistent.
    Error,
    /// The check could not go on (no superblock, no checkpoint).
    Fatal,
}

/// Every kind of finding, one per thing a check can find wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The filesystem was not cleanly unmounted (mount recovers it).
    NotClean,
    /// Inodes in the graveyard, freed at the next read-write mount.
    OrphansPending,
    /// One superblock copy is damaged; the other is used.
    SuperblockCopyDamaged,
    /// The device holds no pagelog filesystem (no superblock magic, or
    /// too small for the superblocks).
    NotPagelog,
    /// No usable superblock (both copies damaged, or asking for what this
    /// build cannot do).
    NoSuperblock,
    /// The checkpoint named by the superblock is unusable.
    CheckpointDamaged,
    /// What is checked is an older checkpoint of the log, as asked
    /// (`--checkpoint N`), not the one the superblocks name.
    Rewound,
    /// A metadata table page fails its checks.
    TableDamaged,
    /// A page of a retained checkpoint's deadlist fails its checks (the
    /// checkpoint can no longer be pruned, nor mounted with confidence).
    DeadlistDamaged,
    /// The free list of node ids or of units is broken.
    FreeListBroken,
    /// A node fails its checksum or does not decode.
    NodeDamaged,
    /// A node is of the wrong kind or level for where it is referenced,
    /// or belongs to another inode.
    NodeMisplaced,
    /// A node is referenced more than once.
    NodeSharedTwice,
    /// An allocated node is referenced by nothing.
    NodeLeaked,
    /// A page address is outside the segment area.
    AddressOutOfRange,
    /// A pointer names a unit (vpn) the page address table says is free.
    UnitMissing,
    /// A unit in use in the page address table is reached by nothing.
    UnitLeaked,
    /// The pointers into a compressed cluster disagree with each other or
    /// with its unit.
    UnitMisshapen,
    /// A page is used twice.
    PageUsedTwice,
    /// A directory entry names an inode that does not exist.
    DanglingEntry,
    /// A directory index is out of order or miscounted.
    DirIndexBroken,
    /// A directory's `..` (parent) is wrong.
    ParentWrong,
    /// A directory is reached twice (a cycle or a directory hard link).
    DirectoryCycle,
    /// An inode is in use but reachable from no directory.
    InodeLost,
    /// An inode's link count differs from the names that refer to it.
    LinkCountWrong,
    /// An inode's block count differs from its pages.
    BlockCountWrong,
    /// The segment usage table differs from the pages really referenced.
    SegmentUsageWrong,
    /// A checkpoint counter differs from what the tables hold.
    CounterWrong,
    /// A page the tables refer to is missing from, or described wrongly
    /// by, the summary of its log record.
    SummaryWrong,
    /// A data page fails its checksum (with --verify-data).
    DataDamaged,
    /// An access control list does not decode, or a file that is not a
    /// directory has a default list.
    AclInvalid,
    /// The usage the quota file records differs from what the tree holds,
    /// or the quota file cannot be read.
    QuotaWrong,
}

/// The numbers an allocating table hands out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Numbers {
    /// Node ids (the node address table).
    NodeIds,
    /// Units, by virtual page number (the page address table).
    Units,
}

/// What a repair does about a finding: the checker knows the right value
/// when it finds the wrong one (as e2fsck's passes do), so it says so here
/// and the repair ([`super::repair`]) only carries it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fix {
    /// Set the inode's link count to the names (and subdirectories) found.
    Links {
        /// The inode.
        ino: Ino,
        /// Its right count.
        links: u32,
    },
    /// Set the inode's page count to what its map or index holds.
    Blocks {
        /// The inode.
        ino: Ino,
        /// Its right count.
        blocks: u64,
    },
    /// Point a directory's `..` at the directory that holds it.
    Parent {
        /// The directory.
        ino: Ino,
        /// Its parent.
        parent: Ino,
    },
    /// Give an inode no name reaches one in `lost+found` (`#INO`).
    Reconnect {
        /// The inode.
        ino: Ino,
    },
    /// Remove a directory entry that names nothing usable.
    RemoveEntry {
        /// The directory.
        dir: Ino,
        /// The entry's name.
        name: Vec<u8>,
    },
    /// Remove an extended attribute (an access control list that does not
    /// decode, or a default list on a file).
    RemoveXattr {
        /// The inode.
        ino: Ino,
        /// The attribute's full name.
        name: Vec<u8>,
    },
    /// Free an inode's attribute node that holds no attribute.
    DropXattrNode {
        /// The inode.
        ino: Ino,
    },
    /// Take a reference to a node that cannot be used (damaged, free, of
    /// the wrong kind, or another's) out of an inode: a file's pages under
    /// it become holes, its attributes go; a directory's index is built
    /// again from the leaves that read ([`Fix::RebuildDir`]).
    Detach {
        /// The inode.
        ino: Ino,
        /// The node.
        nid: Nid,
    },
    /// Build a directory's index again from the entries its readable
    /// leaves hold (an entry count, an order or a type that is wrong, a
    /// node of it that cannot be read).
    RebuildDir {
        /// The directory.
        dir: Ino,
    },
    /// Free a node that fails its checksum or does not decode (what it
    /// held is lost: an inode pack's inodes, a map node's pages).
    FreeDamaged {
        /// The node.
        nid: Nid,
    },
    /// Take a node whose unit is free or outside the segment area out of
    /// the node address table, without touching the unit (what the node
    /// held is lost; its referrer is detached from it next).
    ForgetNode {
        /// The node.
        nid: Nid,
    },
    /// Set the quota file's inode to what it must be: a regular file with
    /// one link.
    QuotaInode {
        /// The quota file.
        ino: Ino,
    },
    /// Free a node nothing refers to.
    FreeNode {
        /// The node.
        nid: Nid,
    },
    /// Free a unit nothing points at.
    FreeUnit {
        /// The unit.
        vpn: Vpn,
    },
    /// Make pages of a file holes: their bytes are gone (the report names
    /// the file and the range).
    DropPages {
        /// The file.
        ino: Ino,
        /// The first page.
        first: u64,
        /// How many.
        count: u64,
    },
    /// A page two files point at: the first owner whose checksum matches
    /// keeps it, every other gets its own copy (or, if its checksum does
    /// not match, a hole).
    Unshare {
        /// The page.
        addr: PageAddr,
        /// Its owners: (file, page index).
        owners: Vec<(Ino, u64)>,
    },
    /// Write a file's page again (unchanged) where the log is now, so that
    /// its record summary describes it right (the cleaner moves a page by
    /// what the summary says).
    Relog {
        /// The file.
        ino: Ino,
        /// The page.
        idx: u64,
    },
    /// Make a pointer into a compressed cluster describe the cluster as
    /// the file's first pointer into it does (where it starts, how many
    /// pages it holds).
    Reshape {
        /// The file.
        ino: Ino,
        /// The page whose pointer disagrees.
        idx: u64,
        /// The cluster's first page.
        base: u64,
        /// Its pages.
        count: u8,
    },
    /// Give one of two references a file holds to the same node a copy of
    /// its own (the file reads as before; the pages both then map are
    /// copied by the next pass).
    CloneNode {
        /// The file.
        ino: Ino,
        /// The node.
        nid: Nid,
    },
    /// Write every page of the live tables again (a table page its record
    /// summary misdescribes: which table's it is, the summary cannot say).
    RelogTables,
    /// Give a unit whose page address table entry says an impossible size
    /// the size its record summary says.
    ReshapeUnit {
        /// The unit.
        vpn: Vpn,
    },
    /// Write a node again, for the same reason.
    RelogNode {
        /// The node.
        nid: Nid,
    },
    /// Forget a retained checkpoint (not a snapshot) whose own pages are
    /// damaged: a point in the past to mount from is lost, nothing of the
    /// live filesystem.
    Prune {
        /// The checkpoint.
        no: crate::ids::CheckpointNo,
    },
    /// Count a retained checkpoint's deadlist entries again (its record
    /// says otherwise).
    DeadlistCount {
        /// The checkpoint.
        no: crate::ids::CheckpointNo,
    },
    /// Forget a retained checkpoint whose deadlist cannot be read, and
    /// every retained checkpoint before it (none a snapshot): points in
    /// the past to mount from are lost, nothing of the live filesystem.
    PruneBack {
        /// The checkpoint.
        no: crate::ids::CheckpointNo,
    },
    /// Recount the segment usage table and the checkpoint's counters from
    /// the pages the tree references.
    Recount,
    /// Recount the quota file's usage from the inodes (of the live root,
    /// or of a branch).
    Quota {
        /// The branch (none: the live root).
        branch: Option<Vec<u8>>,
    },
    /// Put a fresh leaf in place of a damaged segment usage table page,
    /// its entries from the recount (the repair's mount does it, before
    /// anything is written).
    RebuildUsage {
        /// The leaf's index.
        index: u64,
    },
    /// Put a fresh leaf in place of a damaged node address table page,
    /// holding the nodes found for it: units nothing else points at whose
    /// node header names an id the leaf covered (the newest where two
    /// do); the other ids are free (the repair's mount does it).
    RebuildNodeTable {
        /// The leaf's index.
        index: u64,
        /// The nodes found: id, unit, checksum of the node page.
        nodes: Vec<(Nid, crate::ids::Vpn, u32)>,
    },
    /// Put a fresh leaf in place of a damaged page address table page,
    /// holding the units found for it: for each number the leaf covered,
    /// the newest unit the record summaries say was written under it, if
    /// its stored bytes still match their checksum; the other numbers are
    /// free (the repair's mount does it, before anything reads a unit).
    RebuildUnitTable {
        /// The leaf's index.
        index: u64,
        /// The units found.
        units: Vec<(crate::ids::Vpn, crate::page_table::PatEntry)>,
    },
    /// Put a fresh interior page in place of a damaged one of the page
    /// address or segment usage table, naming the newest copy of each page
    /// below it the log holds (the repair's mount does it).
    RebuildInterior {
        /// The table.
        table: crate::meta_table::TableId,
        /// The page's level (1 and up).
        level: u8,
        /// Its index in its level.
        index: u64,
        /// The pages below it found: index, address, checksum.
        children: Vec<(u64, PageAddr, u32)>,
    },
    /// Thread every unused number below `watermark` onto the table's free
    /// list again, and make `watermark` the table's (at least one past the
    /// highest number in use).
    FreeList {
        /// Which table's.
        of: Numbers,
        /// The watermark.
        watermark: u64,
    },
    /// Start from an older checkpoint the log holds, the one the
    /// superblocks name being damaged (`volume/rewind.rs`): what was
    /// committed after it is lost.
    Rewind {
        /// The checkpoint.
        to: crate::ids::CheckpointNo,
    },
    /// Nothing but a new commit: it replays the log, frees what the
    /// graveyard holds, writes both superblock copies and a checkpoint
    /// newer than a damaged one.
    Commit,
}

impl Fix {
    /// A short name, for scripts.
    pub fn name(&self) -> &'static str {
        match self {
            Fix::Links { .. } => "set-links",
            Fix::Blocks { .. } => "set-blocks",
            Fix::Parent { .. } => "set-parent",
            Fix::Reconnect { .. } => "reconnect",
            Fix::RemoveEntry { .. } => "remove-entry",
            Fix::RemoveXattr { .. } => "remove-xattr",
            Fix::DropXattrNode { .. } => "free-xattr-node",
            Fix::FreeNode { .. } => "free-node",
            Fix::FreeDamaged { .. } => "free-damaged-node",
            Fix::Detach { .. } => "detach-node",
            Fix::RebuildDir { .. } => "rebuild-directory",
            Fix::FreeUnit { .. } => "free-unit",
            Fix::DropPages { .. } => "drop-pages",
            Fix::Unshare { .. } => "unshare-page",
            Fix::Relog { .. } => "relog-page",
            Fix::RelogNode { .. } => "relog-node",
            Fix::Prune { .. } => "prune-checkpoint",
            Fix::Recount => "recount-space",
            Fix::Quota { .. } => "recount-quota",
            Fix::Commit => "commit",
            Fix::Rewind { .. } => "rewind",
            Fix::FreeList { .. } => "rebuild-free-list",
            Fix::ForgetNode { .. } => "forget-node",
            Fix::Reshape { .. } => "reshape-pointer",
            Fix::CloneNode { .. } => "clone-node",
            Fix::RelogTables => "relog-tables",
            Fix::ReshapeUnit { .. } => "reshape-unit",
            Fix::DeadlistCount { .. } => "recount-deadlist",
            Fix::PruneBack { .. } => "prune-checkpoints",
            Fix::QuotaInode { .. } => "set-quota-inode",
            Fix::RebuildUsage { .. } => "rebuild-usage-page",
            Fix::RebuildNodeTable { .. } => "rebuild-node-table-page",
            Fix::RebuildUnitTable { .. } => "rebuild-page-table-page",
            Fix::RebuildInterior { .. } => "rebuild-interior-page",
        }
    }

    /// Is it carried out by the repair's mount as it starts (a damaged
    /// table page built again), not by [`crate::Filesystem::mend`]?
    pub fn by_the_mount(&self) -> bool {
        matches!(
            self,
            Fix::RebuildUsage { .. }
                | Fix::RebuildNodeTable { .. }
                | Fix::RebuildUnitTable { .. }
                | Fix::RebuildInterior { .. }
        )
    }

    /// Does carrying it out lose bytes, names or permissions? A preen
    /// (`-p`) carries out only what does not (as e2fsck's preen mode).
    pub fn loses_anything(&self) -> bool {
        matches!(
            self,
            Fix::Reconnect { .. }
                | Fix::RemoveEntry { .. }
                | Fix::RemoveXattr { .. }
                | Fix::DropPages { .. }
                | Fix::Unshare { .. }
                | Fix::Prune { .. }
                | Fix::Detach { .. }
                | Fix::FreeDamaged { .. }
                | Fix::Rewind { .. }
                | Fix::ForgetNode { .. }
                | Fix::PruneBack { .. }
                | Fix::Reshape { .. }
        )
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// What.
    pub kind: Kind,
    /// The inode concerned, if any.
    pub ino: Option<Ino>,
    /// The node concerned, if any.
    pub nid: Option<Nid>,
    /// The page concerned, if any.
    pub addr: Option<PageAddr>,
    /// The segment concerned, if any.
    pub segment: Option<SegmentNo>,
    /// What exactly, for a person.
    pub message: String,
    /// What a repair does about it (none: a repair cannot mend it).
    pub fix: Option<Fix>,
}

impl Finding {
    /// A finding with no place attached yet.
    pub fn new(severity: Severity, kind: Kind, message: impl Into<String>) -> Finding {
        Finding {
            severity,
            kind,
            ino: None,
            nid: None,
            addr: None,
            segment: None,
            message: message.into(),
            fix: None,
        }
    }

    /// Names the inode.
    pub fn ino(mut self, ino: Ino) -> Finding {
        self.ino = Some(ino);
        self
    }

    /// Names the node.
    pub fn nid(mut self, nid: Nid) -> Finding {
        self.nid = Some(nid);
        self
    }

    /// Names the page.
    pub fn addr(mut self, addr: PageAddr) -> Finding {
        self.addr = Some(addr);
        self
    }

    /// Says what a repair does about it.
    pub fn fix(mut self, fix: Fix) -> Finding {
        self.fix = Some(fix);
        self
    }

    /// Names the segment.
    pub fn segment(mut self, seg: SegmentNo) -> Finding {
        self.segment = Some(seg);
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Fatal => "fatal",
        };
        write!(f, "{sev}: {}", self.message)?;
        let mut place = Vec::new();
        if let Some(i) = self.ino {
            place.push(format!("inode {i}"));
        }
        if let Some(n) = self.nid {
            place.push(format!("node {n}"));
        }
        if let Some(a) = self.addr {
            place.push(format!("page {a}"));
        }
        if let Some(s) = self.segment {
            place.push(format!("segment {s}"));
        }
        if !place.is_empty() {
            write!(f, " ({})", place.join(", "))?;
        }
        Ok(())
    }
}
