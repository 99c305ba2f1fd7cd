//! Every unit a root reaches: the pages of its node address table, its
//! nodes, and the file pages its inodes and file map nodes point at. Read
//! from the device (the root must have nothing dirty): what deleting a
//! branch walks to give back what only the branch held.

use crate::block_ptr::BlockPtr;
use crate::device::BlockDevice;
use crate::error::Result;
use crate::ids::{Nid, Vpn};
use crate::node::NodeBody;
use crate::node_cache::NodeCache;

/// Calls `unit` with every unit the root over `cache` reaches, each once.
pub fn for_each(
    cache: &mut NodeCache,
    dev: &dyn BlockDevice,
    unit: &mut dyn FnMut(Vpn) -> Result<()>,
) -> Result<()> {
    let mut table_pages = Vec::new();
    let mut damage = None;
    cache.nat.table().walk(
        dev,
        &mut |_, _, name, _, _| {
            table_pages.push(Vpn(name));
            Ok(())
        },
        &mut |_, _, _, e| {
            damage.get_or_insert(e);
        },
    )?;
    if let Some(e) = damage {
        return Err(e);
    }
    for vpn in table_pages {
        unit(vpn)?;
    }
    let mut packed = std::collections::HashSet::new();
    for n in 1..cache.nat.watermark().0 {
        let nid = Nid(n);
        let Some(e) = cache.nat.lookup(dev, nid)? else {
            continue;
        };
        unit(e.vpn)?;
        let pointers: Vec<BlockPtr> = match &cache.get(dev, nid)?.body {
            NodeBody::InodePack(pack) => pack
                .slots
                .iter()
                .flatten()
                .flat_map(|inode| inode.ptrs.iter())
                .filter(|p| p.is_stored())
                .copied()
                .collect(),
            NodeBody::Direct(d) => d.ptrs.iter().filter(|p| p.is_stored()).copied().collect(),
            _ => Vec::new(),
        };
        for p in pointers {
            // The pages of a compressed cluster share one unit.
            if !p.is_packed() || packed.insert(p.vpn) {
                unit(p.vpn)?;
            }
        }
    }
    Ok(())
}
