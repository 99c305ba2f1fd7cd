//! One writer at a time: the lease a read-write open of a store holds.
//!
//! An image is locked by the kernel (`flock`); a store is reached from
//! many machines, so the writer says so in the store: the object
//! `writer.json` names it (a random token, host, pid, since when) and
//! counts its renewals. A writer renews it every `lease` (5 s) while it
//! lives, from a thread of its own, and checks that the object still
//! names it before any put or delete when its last check is older than
//! that: a writer that cannot reach the store, or finds another named,
//! writes nothing more (it is *fenced*: its flushes fail, and the
//! filesystem goes read-only at its last commit).
//!
//! Another open finding the lease held watches it: renewed meanwhile,
//! the open is refused (saying by whom); silent for four renewals, it is
//! taken over (the holder died, or is fenced: it stopped writing one
//! renewal after its last successful check). A holder on this host whose
//! process is gone is taken over at once. A clean close deletes the lease.
//!
//! Without a conditional put, two opens at the same moment could both
//! write their lease; each puts its own, waits, and reads it back: the
//! last put wins and the other is refused. The wait is a second, or twice
//! what its own read and put took if longer.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::backend::ObjectBackend;

/// The lease's object name.
pub const KEY: &str = "writer.json";
/// Renewals a holder may miss before another open takes its lease over.
const SILENT: u32 = 4;

/// What the lease object says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Random, the holder's own.
    pub token: String,
    /// The holder's host name.
    pub host: String,
    /// Its process.
    pub pid: u32,
    /// When it took the lease (ns since the epoch).
    pub since_ns: i64,
    /// Renewals so far.
    pub renewed: u64,
}

impl Holder {
    fn mine() -> Holder {
        Holder {
            token: format!("{:032x}", rand::random::<u128>()),
            host: host(),
            pid: std::process::id(),
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

    /// A process of this host that is gone.
    fn dead_here(&self) -> bool {
        self.host == host()
            && self.pid != std::process::id()
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), None)
                == Err(nix::errno::Errno::ESRCH)
    }
}

fn host() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(backend: &dyn ObjectBackend) -> io::Result<Option<Holder>> {
    let Some(bytes) = backend.get(KEY)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}/{KEY}: {e}", backend.describe()),
        )
    })
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
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug)]
struct State {
    me: Holder,
    /// When the lease was last seen to name this writer.
    checked: Instant,
    /// Why this writer may write no more.
    fenced: Option<String>,
    closing: bool,
}

impl Leased {
    /// Takes the lease of the store `inner` (renewed every `every`), or
    /// says who holds it.
    pub fn take(inner: Box<dyn ObjectBackend>, every: Duration) -> crate::Result<Leased> {
        let me = acquire(&*inner, every)?;
        let core = Arc::new(Core {
            inner,
            every,
            state: Mutex::new(State {
                me,
                checked: Instant::now(),
                fenced: None,
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

/// Watches and takes the lease (see the module).
fn acquire(store: &dyn ObjectBackend, every: Duration) -> crate::Result<Holder> {
    let refuse = |h: &Holder, why: &str| {
        crate::Error::Refused(format!(
            "{} is mounted read-write on {}{why}: one writer at a time (a writer silent for {} s \
             is taken over)",
            store.describe(),
            h.describe(),
            (every * SILENT).as_secs()
        ))
    };
    let started = Instant::now();
    if let Some(held) = read(store)? {
        if !held.dead_here() {
            log::warn!(
                "{}: held by {}; watching it for {} s",
                store.describe(),
                held.describe(),
                (every * SILENT).as_secs()
            );
            let until = Instant::now() + every * SILENT;
            while Instant::now() < until {
                std::thread::sleep(every / 4);
                match read(store)? {
                    Some(now) if now == held => {}
                    Some(now) => return Err(refuse(&now, "")),
                    None => break,
                }
            }
            log::warn!("{}: taking over from {}", store.describe(), held.describe());
        }
    }
    let me = Holder::mine();
    write(store, &me)?;
    std::thread::sleep(
        (started.elapsed() * 2)
            .max(Duration::from_secs(1))
            .min(every),
    );
    match read(store)? {
        Some(h) if h == me => Ok(me),
        Some(h) => Err(refuse(&h, ", which took it at the same moment")),
        None => Err(crate::Error::Refused(format!(
            "{}: the writer's lease vanished as it was taken (is another machine making a \
             filesystem there?)",
            store.describe()
        ))),
    }
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
            if !st.closing && st.fenced.is_none() {
                if let Err(e) = self.renew(&mut st) {
                    log::warn!(
                        "{}: renewing the writer's lease: {e}",
                        self.inner.describe()
                    );
                }
            }
        }
    }

    /// The lease still names this writer (checked within `every`), or an
    /// error: fenced, or the store not answering.
    fn ensure(&self) -> io::Result<()> {
        let mut st = self.lock();
        if st.fenced.is_none() && st.checked.elapsed() < self.every {
            return Ok(());
        }
        self.renew(&mut st)
    }

    /// Checks the lease and renews it; held under the state's lock, so
    /// that nothing is put while it is in doubt.
    fn renew(&self, st: &mut State) -> io::Result<()> {
        if let Some(why) = &st.fenced {
            return Err(fenced(why));
        }
        let started = Instant::now();
        let held = read(&*self.inner)?;
        if held.as_ref().map(|h| &h.token) != Some(&st.me.token) {
            let why = match held {
                Some(h) => format!("{} took the store over", h.describe()),
                None => "the writer's lease is gone from the store".into(),
            };
            log::error!(
                "{}: {why}; this mount writes nothing more",
                self.inner.describe()
            );
            st.fenced = Some(why.clone());
            return Err(fenced(&why));
        }
        let next = Holder {
            renewed: st.me.renewed + 1,
            ..st.me.clone()
        };
        write(&*self.inner, &next)?;
        (st.me, st.checked) = (next, started);
        Ok(())
    }
}

fn fenced(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("another writer holds the store ({why})"),
    )
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
        self.core.lock().fenced.clone()
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        let mine = {
            let mut st = self.core.lock();
            st.closing = true;
            st.fenced.is_none().then(|| st.me.clone())
        };
        self.core.wake.notify_all();
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        // Released only if still ours: a writer taken over leaves the
        // new one's lease alone.
        if let Some(me) = mine {
            if matches!(read(&*self.core.inner), Ok(Some(h)) if h.token == me.token) {
                let _ = self.core.inner.delete(KEY);
            }
        }
    }
}
