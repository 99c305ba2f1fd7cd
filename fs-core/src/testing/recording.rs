//! A device that records writes and flush barriers (as dm-log-writes does)
//! and rebuilds the images a power cut could leave: everything before the
//! last completed flush, plus any subset of the writes after it, in any
//! order, the last one possibly torn.
//!
//! It also records what the log tells the segment store (a segment opened,
//! sealed, freed), so that a crash image can be built as a store that keeps
//! segments as objects would leave it: a segment freed is gone (its object
//! deleted), and a segment opened holds nothing of its earlier life (its
//! object is uploaded from the new life's pages alone).

use std::io;
use std::sync::Mutex;

use crate::device::{BlockDevice, MemDevice};
use crate::ids::{PageAddr, SegmentNo};
use crate::layout::PAGE_SIZE;
use crate::superblock::{Superblock, COPIES};

/// One recorded I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Pages written at an address.
    Write {
        /// First page.
        addr: PageAddr,
        /// The bytes (whole pages).
        data: Vec<u8>,
    },
    /// A flush barrier completed.
    Flush,
}

/// What the log told the store about a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentEvent {
    /// [`BlockDevice::open_segment`].
    Open(SegmentNo),
    /// [`BlockDevice::seal_segment`].
    Seal(SegmentNo),
    /// [`BlockDevice::free_segment`].
    Free(SegmentNo),
}

/// A recording device over an initial image.
#[derive(Debug)]
pub struct RecordingDevice {
    inner: MemDevice,
    base: Vec<u8>,
    events: Mutex<Vec<Event>>,
    /// Segment events, each with the number of I/O events before it.
    segment_events: Mutex<Vec<(usize, SegmentEvent)>>,
}

/// How to build a crash image from the event log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrashState {
    /// Every write among the first `prefix` events reached the device.
    pub prefix: usize,
    /// Indexes of later writes (before the next flush) that also reached
    /// the device, applied in this order.
    pub extra: Vec<usize>,
    /// A later write that reached the device only in part: its index and
    /// which 512-byte sectors landed.
    pub torn: Option<(usize, Vec<bool>)>,
    /// As a store of segment objects would leave it: every segment freed
    /// or opened among the first `prefix` events reads as zeros from that
    /// point (its object deleted, or replaced by the new life's pages).
    pub as_objects: bool,
}

/// Sector size for torn writes.
pub const SECTOR: usize = 512;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RecordingDevice {
    /// Records on top of `image` (the state before the first event).
    pub fn new(image: &[u8]) -> RecordingDevice {
        RecordingDevice {
            inner: MemDevice::from_bytes(image),
            base: image.to_vec(),
            events: Mutex::new(Vec::new()),
            segment_events: Mutex::new(Vec::new()),
        }
    }

    /// The segment events so far, each with the number of I/O events
    /// before it.
    pub fn segment_events(&self) -> Vec<(usize, SegmentEvent)> {
        lock(&self.segment_events).clone()
    }

    fn note(&self, e: SegmentEvent) {
        let at = lock(&self.events).len();
        lock(&self.segment_events).push((at, e));
    }

    /// Events so far.
    pub fn len(&self) -> usize {
        lock(&self.events).len()
    }

    /// No events yet?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the event log.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }

    /// The current contents (every write applied).
    pub fn snapshot(&self) -> Vec<u8> {
        self.inner.snapshot()
    }

    /// Builds the image a crash in `state` leaves.
    pub fn crash_image(&self, state: &CrashState) -> Vec<u8> {
        let events = lock(&self.events);
        let mut img = self.base.clone();
        let put = |addr: PageAddr, data: &[u8], img: &mut Vec<u8>| {
            let off = addr.0 as usize * PAGE_SIZE;
            if let Some(dst) = img.get_mut(off..off + data.len()) {
                dst.copy_from_slice(data);
            }
        };
        let voids = if state.as_objects {
            self.voided_before(state.prefix)
        } else {
            Vec::new()
        };
        let mut voids = voids.into_iter().peekable();
        for (i, e) in events.iter().take(state.prefix).enumerate() {
            while let Some((_, range)) = voids.next_if(|(at, _)| *at <= i) {
                img[range].fill(0);
            }
            if let Event::Write { addr, data } = e {
                put(*addr, data, &mut img);
            }
        }
        for (_, range) in voids {
            img[range].fill(0);
        }
        for &i in &state.extra {
            if let Some(Event::Write { addr, data }) = events.get(i) {
                put(*addr, data, &mut img);
            }
        }
        if let Some((i, sectors)) = &state.torn {
            if let Some(Event::Write { addr, data }) = events.get(*i) {
                let base = addr.0 as usize * PAGE_SIZE;
                for (s, landed) in sectors.iter().enumerate() {
                    let (lo, hi) = (s * SECTOR, ((s + 1) * SECTOR).min(data.len()));
                    if *landed && lo < hi {
                        if let Some(dst) = img.get_mut(base + lo..base + hi) {
                            dst.copy_from_slice(&data[lo..hi]);
                        }
                    }
                }
            }
        }
        img
    }

    /// The byte ranges of the segments opened or freed before event
    /// `prefix`, each with the number of I/O events before it (in order).
    fn voided_before(&self, prefix: usize) -> Vec<(usize, std::ops::Range<usize>)> {
        let Some(geo) = COPIES
            .iter()
            .filter_map(|a| {
                let off = a.0 as usize * PAGE_SIZE;
                let page = self.base.get(off..off + PAGE_SIZE)?;
                Superblock::decode(page, *a).ok()
            })
            .map(|sb| sb.geometry)
            .next()
        else {
            return Vec::new();
        };
        let seg_bytes = geo.pages_per_segment as usize * PAGE_SIZE;
        lock(&self.segment_events)
            .iter()
            .filter(|(at, _)| *at <= prefix)
            .filter_map(|(at, e)| match e {
                SegmentEvent::Open(s) | SegmentEvent::Free(s) => {
                    let from = geo.segment_start(*s).0 as usize * PAGE_SIZE;
                    Some((*at, from..from + seg_bytes))
                }
                SegmentEvent::Seal(_) => None,
            })
            .collect()
    }

    /// Indexes of the writes between event `from` and the next flush.
    pub fn in_flight(&self, from: usize) -> Vec<usize> {
        let events = lock(&self.events);
        let mut out = Vec::new();
        for (i, e) in events.iter().enumerate().skip(from) {
            match e {
                Event::Flush => break,
                Event::Write { .. } => out.push(i),
            }
        }
        out
    }

    /// Index of the last flush before event `upto` (None: no flush yet).
    pub fn last_flush_before(&self, upto: usize) -> Option<usize> {
        lock(&self.events)
            .iter()
            .take(upto)
            .rposition(|e| matches!(e, Event::Flush))
    }

    /// The first flush at or after event `from`.
    pub fn first_flush_from(&self, from: usize) -> Option<usize> {
        lock(&self.events)
            .iter()
            .skip(from)
            .position(|e| matches!(e, Event::Flush))
            .map(|i| i + from)
    }

    /// Sectors of write `i`.
    pub fn sectors(&self, i: usize) -> usize {
        match lock(&self.events).get(i) {
            Some(Event::Write { data, .. }) => data.len().div_ceil(SECTOR),
            _ => 0,
        }
    }
}

impl BlockDevice for RecordingDevice {
    fn len_pages(&self) -> u64 {
        self.inner.len_pages()
    }

    fn read(&self, addr: PageAddr, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(addr, buf)
    }

    fn write(&self, addr: PageAddr, buf: &[u8]) -> io::Result<()> {
        self.inner.write(addr, buf)?;
        lock(&self.events).push(Event::Write {
            addr,
            data: buf.to_vec(),
        });
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        lock(&self.events).push(Event::Flush);
        Ok(())
    }

    fn open_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.note(SegmentEvent::Open(seg));
        Ok(())
    }

    fn seal_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.note(SegmentEvent::Seal(seg));
        Ok(())
    }

    fn free_segment(&self, seg: SegmentNo) -> io::Result<()> {
        self.note(SegmentEvent::Free(seg));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_images_apply_prefix_extra_and_torn_sectors() {
        let dev = RecordingDevice::new(&vec![0u8; 4 * PAGE_SIZE]);
        dev.write(PageAddr(0), &[1u8; PAGE_SIZE]).expect("w0");
        dev.flush().expect("flush");
        dev.write(PageAddr(1), &[2u8; PAGE_SIZE]).expect("w2");
        dev.write(PageAddr(2), &[3u8; PAGE_SIZE]).expect("w3");
        assert_eq!(dev.in_flight(2), vec![2, 3]);
        assert_eq!(dev.last_flush_before(4), Some(1));
        let img = dev.crash_image(&CrashState {
            prefix: 2,
            extra: vec![3],
            torn: None,
            as_objects: false,
        });
        assert_eq!(img[0], 1);
        assert_eq!(img[PAGE_SIZE], 0, "write 2 lost");
        assert_eq!(img[2 * PAGE_SIZE], 3, "write 3 landed out of order");
        let mut sectors = vec![false; 8];
        sectors[1] = true;
        let img = dev.crash_image(&CrashState {
            prefix: 2,
            extra: vec![],
            torn: Some((2, sectors)),
            as_objects: false,
        });
        assert_eq!(img[PAGE_SIZE], 0);
        assert_eq!(img[PAGE_SIZE + 512], 2);
        assert_eq!(img[PAGE_SIZE + 1024], 0);
    }
}
