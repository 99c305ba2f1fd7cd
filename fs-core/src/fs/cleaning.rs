//! The cleaner as the filesystem drives it: in the background while idle,
//! on demand, and what an administrator can read of it.

use super::Filesystem;
use crate::cleaner::{CleanerStats, Pass, Policy};
use crate::error::Result;
use crate::layout::PAGE_SIZE;

/// The cleaner's state as an administrator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanerReport {
    /// `read-write`, `read-only`, or `read-only after a write error: WHY`.
    pub state: String,
    /// Segments in the filesystem.
    pub segments: u64,
    /// Segments the log can write now.
    pub free_segments: u64,
    /// Pages referenced by the current root.
    pub live_pages: u64,
    /// Pages a user can fill in all.
    pub capacity_pages: u64,
    /// File data pages users wrote since mount.
    pub user_pages_written: u64,
    /// Pages written to the device since mount (summaries, metadata,
    /// cleaning included).
    pub device_pages_written: u64,
    /// Retained checkpoints (snapshots included).
    pub checkpoints: u64,
    /// Of those, snapshots.
    pub snapshots: u64,
    /// Pages only snapshots hold (what deleting them all would free, at
    /// least).
    pub snapshot_pages: u64,
    /// Pages only plain checkpoints hold (given back when room is short).
    pub checkpoint_pages: u64,
    /// Counters.
    pub stats: CleanerStats,
    /// Commits since mount, and syncs made durable by a roll-forward
    /// record instead.
    pub commits: u64,
    pub fsync_records: u64,
    /// The kernel's writeback cache holds written data before the daemon
    /// sees it (see [`Filesystem::set_kernel_owns_cmtime`]).
    pub kernel_write_cache: bool,
    /// What the segment store moved, when segments live in an object store.
    pub store: Option<crate::objects::StoreStats>,
}

/// The object store's lines of `pagelog.stats`.
fn store_text(s: crate::objects::StoreStats) -> String {
    let reads = s.hits + s.misses;
    let hit_percent = if reads == 0 {
        100.0
    } else {
        s.hits as f64 * 100.0 / reads as f64
    };
    format!(
        "store_cache_hit_percent: {hit_percent:.1}\nstore_cache_hits: {}\nstore_cache_misses: {}\n\
         store_cached_mib: {}\nstore_uploaded_mib: {}\nstore_downloaded_mib: {}\n\
         store_uploads: {}\nstore_deletes: {}\nstore_pending_uploads: {}\nstore_errors: {}\n",
        s.hits,
        s.misses,
        s.cached_bytes >> 20,
        s.bytes_uploaded >> 20,
        s.bytes_downloaded >> 20,
        s.uploads,
        s.deletes,
        s.pending_uploads,
        s.errors,
    )
}

impl CleanerReport {
    /// Device pages written per user data page (1.0 with nothing written).
    pub fn write_cost(&self) -> f64 {
        if self.user_pages_written == 0 {
            1.0
        } else {
            self.device_pages_written as f64 / self.user_pages_written as f64
        }
    }

    /// The report as `key: value` lines (the `pagelog.stats` attribute).
    pub fn to_text(&self) -> String {
        let mib = |pages: u64| (pages * PAGE_SIZE as u64) >> 20;
        let s = &self.stats;
        format!(
            "state: {}\nsegments: {}\nfree_segments: {}\nlive_mib: {}\ncapacity_mib: {}\n\
             user_written_mib: {}\ndevice_written_mib: {}\nwrite_cost: {:.2}\n\
             cleaner_passes: {}\ncleaner_foreground_passes: {}\n\
             cleaner_segments_cleaned: {}\ncleaner_pages_moved: {}\n\
             cleaner_segments_refused: {}\n\
             checkpoints: {}\nsnapshots: {}\nsnapshot_held_mib: {}\ncheckpoint_held_mib: {}\n\
             commits: {}\nfsync_records: {}\nkernel_write_cache: {}\n",
            self.state,
            self.segments,
            self.free_segments,
            mib(self.live_pages),
            mib(self.capacity_pages),
            mib(self.user_pages_written),
            mib(self.device_pages_written),
            self.write_cost(),
            s.passes,
            s.foreground_passes,
            s.segments_cleaned,
            s.pages_moved,
            s.segments_refused,
            self.checkpoints,
            self.snapshots,
            mib(self.snapshot_pages),
            mib(self.checkpoint_pages),
            self.commits,
            self.fsync_records,
            if self.kernel_write_cache { "on" } else { "off" },
        ) + &self.store.map(store_text).unwrap_or_default()
    }
}

impl Filesystem {
    /// Runs one cleaning pass now, as `pass` says (tests, tools); returns
    /// the segments it freed at once.
    pub fn clean(&mut self, pass: Pass) -> Result<usize> {
        self.store.clean(pass)
    }

    /// One background pass if free segments are short (below the start
    /// threshold, or below the stop threshold once started). Called while
    /// the filesystem is idle; returns whether it cleaned anything.
    pub fn clean_in_background(&mut self) -> Result<bool> {
        self.degrade_if_failed()?;
        let o = self.store.cleaner_options;
        if self.store.read_only || !o.background {
            return Ok(false);
        }
        // A pass that found nothing worth moving is not repeated every
        // tick: only once a commit has made new dead space.
        if self.nothing_to_clean_at == Some(self.store.stats.commits) {
            return Ok(false);
        }
        let segments = self.store.sb.geometry.segment_count;
        let free_pct = self.store.sut.writable_segments() * 100 / segments.max(1);
        let threshold = if self.cleaning {
            o.stop_percent
        } else {
            o.start_percent
        };
        if free_pct >= u64::from(threshold) {
            self.cleaning = false;
            return Ok(false);
        }
        self.cleaning = true;
        let freed = self.store.clean(Pass {
            policy: Policy::CostBenefit,
            batch: o.batch,
            max_live_percent: o.max_live_percent,
            commit: true,
            urgent: false,
        })?;
        if freed == 0 {
            self.cleaning = false;
            self.nothing_to_clean_at = Some(self.store.stats.commits);
        }
        Ok(freed > 0)
    }

    /// The cleaner's state and counters.
    pub fn cleaner_report(&self) -> CleanerReport {
        let s = &self.store;
        let state = match (self.degraded(), s.read_only) {
            (Some(why), _) => format!("read-only after a write error: {why}"),
            (None, true) => "read-only".to_string(),
            (None, false) => "read-write".to_string(),
        };
        CleanerReport {
            state,
            segments: s.sb.geometry.segment_count,
            free_segments: s.sut.writable_segments(),
            live_pages: s.sut.live_pages,
            capacity_pages: s.capacity_pages(),
            user_pages_written: s.stats.data_pages_written,
            device_pages_written: s.pages_written(),
            checkpoints: s.cplist.len() as u64,
            snapshots: s.cplist.records().filter(|r| r.is_snapshot()).count() as u64,
            snapshot_pages: s.held_by_snapshots(),
            checkpoint_pages: s.held_by_plain(),
            stats: s.cleaner.stats,
            commits: s.stats.commits,
            fsync_records: s.stats.roll_forwards,
            kernel_write_cache: self.kernel_owns_cmtime,
            store: s.dev.store_stats(),
        }
    }
}
