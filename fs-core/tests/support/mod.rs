//! Shared test support.

#[allow(dead_code)]
pub mod edit;
pub mod model;

use std::sync::Arc;

use pagelog_core::fsck::{self, Level, Report};
use pagelog_core::{format, BlockDevice, Filesystem, FormatOptions, MemDevice, MountOptions};

/// A memory device of `pages` pages, formatted with `pps`-page segments.
#[allow(dead_code)]
pub fn formatted(pages: u64, pps: u32) -> Arc<MemDevice> {
    formatted_storing(pages, pps, "none")
}

/// [`formatted`], new data stored through `chain` (`zstd:1`).
#[allow(dead_code)]
pub fn formatted_storing(pages: u64, pps: u32, chain: &str) -> Arc<MemDevice> {
    let dev = Arc::new(MemDevice::new(pages));
    let opts = FormatOptions {
        pages_per_segment: pps,
        compress: chain.into(),
        ..FormatOptions::default()
    };
    format(dev.clone(), &opts).expect("format");
    dev
}

/// `dev` mounted read-write with the default options.
#[allow(dead_code)]
pub fn mount(dev: &Arc<MemDevice>) -> Filesystem {
    Filesystem::mount(dev.clone() as Arc<dyn BlockDevice>, MountOptions::default()).expect("mount")
}

/// The checker's report on `dev` at `level`.
#[allow(dead_code)]
pub fn fsck(dev: &Arc<MemDevice>, level: Level) -> Report {
    fsck::check(
        dev.clone() as Arc<dyn BlockDevice>,
        level,
        &mut |_, _, _| {},
    )
}
