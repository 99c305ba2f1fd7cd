//! One writer at a time: the lease a read-write open of a store holds.
//!
//! An image is locked by the kernel (`flock`); a store is reached from
//! many machines, so the writer says so in the store: the object
//! `writer.json` names it (a random token, host, pid, since when) and
//! counts its renewals. A writer renews it every period (5 s) while it
//! lives, from a thread of its own, and before it starts a put or a delete
//! checks that the object named it less than a period ago, reading it
//! again if not: a writer that cannot reach the store starts nothing, and
//! one that finds another named writes nothing more (it is *fenced*: its
//! flushes fail, and the filesystem goes read-only at its last commit).
//!
//! Another open finding the lease held watches it: renewed meanwhile,
//! the open is refused (saying by whom); unchanged for four periods and
//! the longest a request of the store may take, it is taken over. By then
//! the holder, which starts no request later than a period after its last
//! successful check, has nothing in flight. A holder on this machine
//! (same boot, same pid namespace) whose process is gone is taken over at
//! once; one that lives is refused at once. A clean close deletes the
//! lease.
//!
//! Without a conditional put (Garage 2.5 ignores `If-None-Match`), two
//! opens at the same moment could both write their lease; each puts its
//! own, waits, and reads it back: the last put wins, the other is refused.
//! The wait is a fifth of a period (a second), or twice what its put took
//! if longer.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::backend::ObjectBackend;

/// The lease's object name.
pub const KEY: &str = "writer.json";
/// Periods a holder may stay silent before another open takes its lease
/// over (plus the longest request).
const SILENT: u32 = 4;

/// What the lease object says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Random, the holder's own.
    pub token: String,
    /// The holder's host name (for messages).
    pub host: String,
    /// Its process.
    pub pid: u32,
    /// The machine's boot and the pid namespace the pid is in
    /// (`BOOT_ID:NAMESPACE`): only there does the pid mean that process.
    #[serde(default)]
    pub boot: String,
    /// The process's start time (clock ticks since boot): a pid used again
    /// is another process.
    #[serde(default)]
    pub started: u64,
    /// When it took the lease (ns since the epoch).
    pub since_ns: i64,
    /// Renewals so far.
    pub renewed: u64,
}

/// The error a fenced writer's requests fail with (`is_fenced` tells it
/// from a store's failure: a flush that fails so does not retry).
#[derive(Debug)]
pub struct Fenced(pub String);

impl std::fmt::Display for Fenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "another writer holds the store ({}); nothing more is written",
            self.0
        )
    }
}

impl std::error::Error for Fenced {}

/// Is `e` the error of a writer another took the store from?
pub fn is_fenced(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Fenced>())
}

/// The error of a fenced writer's request.
pub fn fenced(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, Fenced(why.to_string()))
}

/// This machine's boot and pid namespace.
fn boot() -> String {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
    format!("{}:{}", id.trim(), ns.display())
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`), if it
/// exists and has not exited (a zombie waiting for its parent has).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: fields after the last ')'.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(rest.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    rest.nth(18)?.parse().ok()
}

impl Holder {
    fn mine() -> Holder {
        let pid = std::process::id();
        Holder {
            token: format!("{:032x}", rand::random::<u128>()),
            host: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid,
            boot: boot(),
            started: start_time(pid).unwrap_or(0),
            since_ns: crate::store::now_ns(),
            renewed: 0,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} (pid {}) since {}",
            self.host,
            self.pid,
            crate::when::readable(self.since_ns)
        )
    }

    /// Some(alive) when the holder is a process of this machine, None when
    /// that cannot be told from here.
    pub fn here(&self) -> Option<bool> {
        let mine = boot();
        if self.boot.is_empty() || self.boot != mine || mine.starts_with(':') {
            return None;
        }
        Some(self.started != 0 && start_time(self.pid) == Some(self.started))
    }
}

/// The lease as the store holds it: its bytes, and what they say if they
/// parse.
fn read(backend: &dyn ObjectBackend) -> io::Result<Option<(Vec<u8>, Option<Holder>)>> {
    Ok(backend.get(KEY)?.map(|bytes| {
        let holder = serde_json::from_slice(&bytes).ok();
        (bytes, holder)
    }))
}

fn write(backend: &dyn ObjectBackend, h: &Holder) -> io::Result<()> {
    backend.put(KEY, &serde_json::to_vec_pretty(h).unwrap_or_default())
}

/// A store's objects as its one writer reaches them (see the module).
#[derive(Debug)]
pub struct Leased {
    core: Arc<Core>,
    renewer: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Core {
    inner: Box<dyn ObjectBackend>,
    every: Duration,
    /// Why this writer may write no more: set once, read without waiting.
    fenced: OnceLock<String>,
    /// Held while the lease is read and renewed (never with `state`).
    renewing: Mutex<()>,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug)]
struct State {
    me: Holder,
    /// When the lease was last seen to name this writer (taken before the
    /// reading).
    checked: Instant,
    closing: bool,
}

impl Leased {
    /// Takes the lease of the store `inner` (renewed every `every`), or
    /// says who holds it.
    pub fn take(inner: Box<dyn ObjectBackend>, every: Duration) -> crate::Result<Leased> {
        let (me, checked) = acquire(&*inner, every)?;
        let core = Arc::new(Core {
            inner,
            every,
            fenced: OnceLock::new(),
            renewing: Mutex::new(()),
            state: Mutex::new(State {
                me,
                checked,
                closing: false,
            }),
            wake: Condvar::new(),
        });
        let c = core.clone();
        let renewer = std::thread::Builder::new()
            .name("pagelog-lease".into())
            .spawn(move || c.renew_until_closed())?;
        Ok(Leased {
            core,
            renewer: Some(renewer),
        })
    }
}

/// Watches and takes the lease (see the module); returns this writer's
/// and when it was seen to hold it.
fn acquire(store: &dyn ObjectBackend, every: Duration) -> crate::Result<(Holder, Instant)> {
    let window = every * SILENT + store.longest_request();
    let refuse = |held: &Option<Holder>, why: &str| {
        let who = held
            .as_ref()
            .map_or_else(|| format!("a writer {KEY} does not say"), Holder::describe);
        crate::Error::Refused(format!(
            "{} is mounted read-write on {who}{why}: one writer at a time (a writer silent for {} \
             s is taken over; one on this machine whose process is gone, at once)",
            store.describe(),
            window.as_secs()
        ))
    };
    if let Some((bytes, held)) = read(store)? {
        match held.as_ref().and_then(Holder::here) {
            Some(true) => return Err(refuse(&held, "")),
            Some(false) => {}
            None => watch(store, &bytes, &held, (every, window), &refuse)?,
        }
        if let Some(h) = &held {
            log::warn!("{}: taking over from {}", store.describe(), h.describe());
        }
    }
    let me = Holder::mine();
    let started = Instant::now();
    write(store, &me)?;
    std::thread::sleep((started.elapsed() * 2).max(every / 5));
    match read(store)? {
        Some((_, Some(h))) if h == me => Ok((me, started)),
        Some((_, h)) => Err(refuse(&h, ", which took it at the same moment")),
        None => Err(vanished(store)),
    }
}

fn vanished(store: &dyn ObjectBackend) -> crate::Error {
    crate::Error::Refused(format!(
        "{}: the writer's lease ({KEY}) vanished as it was taken (is another machine making a \
         filesystem there?)",
        store.describe()
    ))
}

/// Watches a lease held elsewhere for `window`: refused if it changes
/// (its holder renews it); a store that does not answer meanwhile is
/// asked again.
fn watch(
    store: &dyn ObjectBackend,
    bytes: &[u8],
    held: &Option<Holder>,
    (every, window): (Duration, Duration),
    refuse: &dyn Fn(&Option<Holder>, &str) -> crate::Error,
) -> crate::Result<()> {
    log::warn!(
        "{}: {KEY} names {}; watching it for {} s",
        store.describe(),
        held.as_ref()
            .map_or_else(|| "a writer it does not say".into(), Holder::describe),
        window.as_secs()
    );
    let until = Instant::now() + window;
    while Instant::now() < until {
        std::thread::sleep(every / 4);
        match read(store) {
            Ok(Some((now, _))) if now == bytes => {}
            Ok(Some((_, h))) => return Err(refuse(&h, "")),
            Ok(None) => return Ok(()),
            Err(e) => log::warn!("{}: reading {KEY}: {e}", store.describe()),
        }
    }
    Ok(())
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn renew_until_closed(&self) {
        let mut st = self.lock();
        while !st.closing {
            st = self
                .wake
                .wait_timeout(st, self.every)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if st.closing || self.fenced.get().is_some() {
                continue;
            }
            drop(st);
            if let Err(e) = self.renew() {
                log::warn!(
                    "{}: renewing the writer's lease: {e}",
                    self.inner.describe()
                );
            }
            st = self.lock();
        }
    }

    /// The lease named this writer less than a period ago (read again if
    /// not), or an error: fenced, or the store not answering.
    fn ensure(&self) -> io::Result<()> {
        if let Some(why) = self.fenced.get() {
            return Err(fenced(why));
        }
        if self.lock().checked.elapsed() < self.every {
            return Ok(());
        }
        self.renew()
    }

    /// Reads the lease and renews it, one renewal at a time.
    fn renew(&self) -> io::Result<()> {
        let _one = self.renewing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(why) = self.fenced.get() {
            return Err(fenced(why));
        }
        let me = self.lock().me.clone();
        let started = Instant::now();
        let held = read(&*self.inner)?;
        if held
            .as_ref()
            .and_then(|(_, h)| h.as_ref())
            .map(|h| &h.token)
            != Some(&me.token)
        {
            let why = match held {
                Some((_, Some(h))) => format!("{} took the store over", h.describe()),
                Some((_, None)) => format!("{KEY} no longer names this writer"),
                None => format!("the writer's lease ({KEY}) is gone from the store"),
            };
            log::error!(
                "{}: {why}; this mount writes nothing more",
                self.inner.describe()
            );
            let _ = self.fenced.set(why.clone());
            return Err(fenced(&why));
        }
        let next = Holder {
            renewed: me.renewed + 1,
            ..me
        };
        write(&*self.inner, &next)?;
        let mut st = self.lock();
        (st.me, st.checked) = (next, started);
        Ok(())
    }
}

impl ObjectBackend for Leased {
    fn put(&self, key: &str, data: &[u8]) -> io::Result<()> {
        self.core.ensure()?;
        self.core.inner.put(key, data)
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        self.core.inner.get(key)
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        self.core.ensure()?;
        self.core.inner.delete(key)
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        self.core.inner.list(prefix)
    }

    fn describe(&self) -> String {
        self.core.inner.describe()
    }

    fn fenced(&self) -> Option<String> {
        self.core.fenced.get().cloned()
    }

    fn longest_request(&self) -> Duration {
        self.core.inner.longest_request()
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        let token = {
            let mut st = self.core.lock();
            st.closing = true;
            st.me.token.clone()
        };
        self.core.wake.notify_all();
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        // Released only if still ours: a writer taken over leaves the new
        // one's lease alone.
        if self.core.fenced.get().is_none() {
            if let Ok(Some((_, Some(h)))) = read(&*self.core.inner) {
                if h.token == token {
                    let _ = self.core.inner.delete(KEY);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_here_is_alive_while_its_process_is() {
        let me = Holder::mine();
        assert_eq!(me.here(), Some(true));
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let started = start_time(pid);
        assert!(started.is_some());
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert_eq!(start_time(pid), None, "a zombie has exited");
        child.wait().expect("wait");
        let gone = Holder {
            pid,
            started: started.unwrap_or(1),
            ..me.clone()
        };
        assert_eq!(gone.here(), Some(false), "a process that exited");
        let reused = Holder {
            started: me.started + 1,
            ..me.clone()
        };
        assert_eq!(reused.here(), Some(false), "the pid of another process");
        let elsewhere = Holder {
            boot: "another-boot:pid:[1]".into(),
            ..me.clone()
        };
        assert_eq!(elsewhere.here(), None, "another machine cannot be told");
        let old = Holder {
            boot: String::new(),
            ..me
        };
        assert_eq!(old.here(), None);
    }
}
