//! A copy-on-write view of a device: reads see the device, writes stay in
//! memory, and the device is never written or told of a segment event.
//!
//! `pagelog-snapshot send` mounts the source through one to turn a
//! snapshot into a volume of its own (a commit that rolls the live tree
//! back to it and lets go of everything else), then ships that view: the
//! source is opened read-only and nothing it holds changes.
//!
//! A segment a log head opens reads as the store shows one (FORMAT.md,
//! "Segments as objects"): zeros but what was written through the view
//! since, so that nothing of its earlier life, or of a writer elsewhere
//! using it, shows through after the view's own records.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::device::BlockDevice;
use crate::ids::{PageAddr, SegmentNo};
use crate::layout::{Geometry, Page, PAGE_SIZE};

/// See the module's comment.
#[derive(Debug)]
pub struct Overlay {
    inner: Arc<dyn BlockDevice>,
    geo: Geometry,
    state: Mutex<Written>,
}

#[derive(Debug, Default)]
struct Written {
    /// Pages written through the view.
    pages: BTreeMap<u64, Box<Page>>,
    /// Segments opened through the view.
    fresh: HashSet<u64>,
}

impl Overlay {
    /// A view of `inner`, laid out as `geo`.
    pub fn new(inner: Arc<dyn BlockDevice>, geo: Geometry) -> Overlay {
        Overlay {
            inner,
            geo,
            state: Mutex::new(Written::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Written> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fresh(&self, st: &Written, page: u64) -> bool {
        self.geo
            .segment_of(PageAddr(page))
            .is_some_and(|s| st.fresh.contains(&s.0))
    }
}

impl BlockDevice for Overlay {
    fn len_pages(&self) -> u64 {
        self.inner.len_pages()
    }

    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        let pages = buf.len().div_ceil(PAGE_SIZE) as u64;
        let all_mine = {
            let st = self.lock();
            (addr.0..addr.0 + pages).all(|p| st.pages.contains_key(&p) || self.fresh(&st, p))
        };
        // The device is read without the lock (reads side by side); what
        // the view holds is laid over it after.
        if !all_mine {
            self.inner.read(addr, buf)?;
        }
        let st = self.lock();
        for (i, chunk) in buf.chunks_mut(PAGE_SIZE).enumerate() {
            let p = addr.0 + i as u64;
            match st.pages.get(&p) {
                Some(page) => chunk.copy_from_slice(&page[..chunk.len()]),
                None if self.fresh(&st, p) => chunk.fill(0),
                None => {}
            }
        }
        Ok(())
    }

    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()> {
        if addr.0 + (buf.len().div_ceil(PAGE_SIZE) as u64) > self.len_pages() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("write past the end of the device at page {addr}"),
            ));
        }
        let mut st = self.lock();
        for (i, chunk) in buf.chunks(PAGE_SIZE).enumerate() {
            let p = addr.0 + i as u64;
            let mut page = crate::layout::zero_page();
            if chunk.len() < PAGE_SIZE {
                // A part page keeps the rest of what is there.
                drop(st);
                self.read(PageAddr(p), &mut page[..])?;
                st = self.lock();
            }
            page[..chunk.len()].copy_from_slice(chunk);
            st.pages.insert(p, page);
        }
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn open_segment(&self, seg: SegmentNo) -> io::Result<()> {
        let mut st = self.lock();
        let start = self.geo.segment_start(seg).0;
        let end = start + u64::from(self.geo.pages_per_segment);
        let earlier: Vec<u64> = st.pages.range(start..end).map(|(p, _)| *p).collect();
        for p in earlier {
            st.pages.remove(&p);
        }
        st.fresh.insert(seg.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    #[test]
    fn writes_stay_in_the_view_and_opened_segments_start_empty() {
        let geo = crate::format::geometry(16384, 64).expect("geometry");
        let mem = Arc::new(MemDevice::new(16384));
        let seg = SegmentNo(1);
        let start = geo.segment_start(seg);
        mem.write(start, &[7u8; 2 * PAGE_SIZE]).expect("write");
        let view = Overlay::new(mem.clone(), geo);
        view.write(start, &[1u8; PAGE_SIZE]).expect("write");
        let mut buf = vec![0u8; 2 * PAGE_SIZE];
        view.read(start, &mut buf).expect("read");
        assert!(buf[..PAGE_SIZE].iter().all(|&b| b == 1));
        assert!(buf[PAGE_SIZE..].iter().all(|&b| b == 7));
        view.open_segment(seg).expect("open");
        view.write(start.offset(1), &[2u8; PAGE_SIZE])
            .expect("write");
        view.read(start, &mut buf).expect("read");
        assert!(buf[..PAGE_SIZE].iter().all(|&b| b == 0));
        assert!(buf[PAGE_SIZE..].iter().all(|&b| b == 2));
        let mut under = vec![0u8; 2 * PAGE_SIZE];
        mem.read(start, &mut under).expect("read");
        assert!(under.iter().all(|&b| b == 7), "the device is never written");
        assert_eq!(view.lock().pages.len(), 1, "pages written through the view");
    }
}
