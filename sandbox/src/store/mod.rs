//! The object store: every object in memory for reads, every write made durable in redb before
//! it is acknowledged, and a history of change events so watches can resume.
//!
//! All writes go through one writer thread. It runs each write against the in-memory state,
//! then commits a whole batch of them in one redb transaction (group commit), and only then
//! publishes their events and answers the callers. One fsync thus serves many concurrent writes.

mod disk;
mod state;

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use crate::error::{ApiError, ApiResult};
pub use state::{Event, EventType, ObjKey, Recorded, State, Tx};

/// How many events the in-memory history (and the database) keeps for resuming watches.
pub const HISTORY_LEN: usize = 10_000;
/// How many queued writes one transaction commits at most.
const MAX_BATCH: usize = 512;
/// How much deleted data (serialized; parsed objects take about ten times more) makes the
/// writer hand freed memory back to the system once it has had nothing to do for
/// [`RELEASE_IDLE`]: by then the controllers and watches have dropped their copies too.
const RELEASE_AFTER: usize = 64 << 10;
const RELEASE_IDLE: Duration = Duration::from_secs(1);

type Completion = Box<dyn FnOnce(Result<(), ApiError>) + Send>;
type Job = Box<dyn FnOnce(&mut Tx) -> Completion + Send>;

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    state: Arc<RwLock<State>>,
    jobs: mpsc::Sender<Job>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Store {
    /// Opens (or creates) the store in `dir`, loading every object and the event history.
    pub fn open(dir: &Path) -> Result<Store, String> {
        crate::home::private_dir(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let disk = disk::Disk::open(&dir.join("store.redb"))?;
        let state = disk.load()?;
        Ok(Self::start(state, Some(disk)))
    }

    /// A store that lives in memory only, for unit tests and benchmarks of the API layer.
    pub fn in_memory() -> Store {
        Self::start(State::new(), None)
    }

    fn start(state: State, disk: Option<disk::Disk>) -> Store {
        let state = Arc::new(RwLock::new(state));
        let (jobs, queue) = mpsc::channel::<Job>();
        let (events, _) = broadcast::channel(1024);
        let writer = Writer {
            state: state.clone(),
            disk,
            events: events.clone(),
            freed: 0,
        };
        std::thread::Builder::new()
            .name("sandbox-writer".into())
            .spawn(move || writer.run(queue))
            .ok();
        Store {
            inner: Arc::new(Inner {
                state,
                jobs,
                events,
            }),
        }
    }

    /// Reads the current state. Hold the guard briefly: writes wait for it.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, key: &ObjKey) -> Option<Arc<Value>> {
        self.read().get(key)
    }

    /// Runs `f` in the writer against the latest state; what it stages is committed durably
    /// before this returns. An `Err` from `f` discards everything it staged.
    pub async fn write<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx) -> ApiResult<T> + Send + 'static,
    {
        self.submit(f, false).await
    }

    /// Runs `f` like [`Store::write`] but discards its changes: a `dryRun=All` request.
    pub async fn dry_run<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx) -> ApiResult<T> + Send + 'static,
    {
        self.submit(f, true).await
    }

    async fn submit<T, F>(&self, f: F, dry_run: bool) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx) -> ApiResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<ApiResult<T>>();
        let job: Job = Box::new(move |tx: &mut Tx| {
            if dry_run {
                tx.set_dry_run();
            }
            let result = f(tx);
            match &result {
                Ok(_) if !dry_run => tx.keep(),
                _ => tx.discard(),
            }
            Box::new(move |committed: Result<(), ApiError>| {
                let _ = reply.send(committed.and(result));
            })
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| ApiError::internal("the sandbox store has stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("the sandbox store has stopped"))?
    }

    /// Events of every committed write, in resourceVersion order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.events.subscribe()
    }
}

struct Writer {
    state: Arc<RwLock<State>>,
    disk: Option<disk::Disk>,
    events: broadcast::Sender<Arc<Event>>,
    /// Bytes of objects deleted since memory was last handed back.
    freed: usize,
}

impl Writer {
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        loop {
            let first = match queue.try_recv() {
                Ok(job) => job,
                Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) if self.freed >= RELEASE_AFTER => {
                    match queue.recv_timeout(RELEASE_IDLE) {
                        Ok(job) => job,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.release();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                Err(mpsc::TryRecvError::Empty) => match queue.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.run_batch(batch);
        }
    }

    fn run_batch(&mut self, batch: Vec<Job>) {
        let mut completions = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        for job in batch {
            let mut guard = self
                .state
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut tx = Tx::new(&mut guard);
            let done = job(&mut tx);
            events.extend(tx.into_events());
            completions.push(done);
        }
        // Serialized once, for the disk and for the history alike.
        let recorded: Vec<Recorded> = events.iter().map(|e| Recorded::of(e)).collect();
        let committed = match &mut self.disk {
            Some(disk) if !recorded.is_empty() => disk.commit(&recorded),
            _ => Ok(()),
        };
        match &committed {
            Ok(()) => {
                let mut state = self
                    .state
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                for entry in recorded {
                    if entry.kind == EventType::Deleted {
                        self.freed += entry.body.len();
                    }
                    state.record(entry);
                }
                drop(state);
                for event in events {
                    let _ = self.events.send(event);
                }
            }
            Err(e) => {
                tracing::error!("commit failed, reloading the store from disk: {e}");
                self.reload();
            }
        }
        let outcome = committed.map_err(ApiError::internal);
        for done in completions {
            done(outcome.clone());
        }
    }

    /// Hands memory back to the system after objects were deleted. The allocator (glibc's)
    /// keeps what the program frees for later use: after a Deployment of thousands of pods is
    /// deleted the process would stay at its peak size for good. Called when idle, since
    /// trimming walks the whole heap. What stays is the pages that still hold something live
    /// (the watch history, events), so the process does not shrink all the way back.
    fn release(&mut self) {
        self.freed = 0;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim takes no pointers and locks the allocator's arenas itself.
        unsafe {
            libc::malloc_trim(0);
        }
    }

    /// After a failed commit memory is ahead of the disk; the disk is the truth.
    fn reload(&mut self) {
        if let Some(disk) = &self.disk
            && let Ok(fresh) = disk.load()
        {
            *self
                .state
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        }
    }
}
