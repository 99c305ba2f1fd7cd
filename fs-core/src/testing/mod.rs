//! Block devices for tests (behind the `testing` feature): one that records
//! every write and flush barrier so that crash states can be replayed, and
//! one that fails the n-th I/O.

mod faulty;
mod recording;

pub use faulty::FaultyDevice;
pub use recording::{CrashState, Event, RecordingDevice, SegmentEvent, SECTOR};
