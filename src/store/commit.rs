//! Group commit: many callers' small writes share one durable transaction.
//!
//! A single writer thread takes every job waiting in its queue, runs them in
//! order inside one write transaction, commits it (fsync), and only then
//! hands each caller its job's value. No caller is answered before its data
//! is committed; under load, one fsync serves many callers. With one caller
//! at a time it costs what a plain commit costs.
//!
//! A job fails alone: jobs are re-runnable closures, and when one of a
//! batch returns an error or panics (or the batch's commit fails), that
//! transaction is aborted and the batch's jobs are run again one by one,
//! each in its own transaction. Every other job is then committed and only
//! the failing job's caller gets its error. Values computed in an aborted
//! attempt are discarded. A panicking job is caught and logged; its caller
//! gets [`StoreError::WriterPanic`] and the writer thread lives on.
//!
//! A job may also be marked not durable (state that is harmless to lose in
//! a crash, like the rest of a list for "more"): a batch of only such jobs
//! is committed without fsync (consistent, but a crash rolls back to the
//! last durable commit). They become durable with the next durable commit,
//! at the latest [`FLUSH_AFTER`] after the first non-durable commit (even
//! under steady traffic), or when the store closes.

use std::any::Any;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::panics;
use redb::{Database, Durability, WriteTransaction};

use super::StoreError;

/// The most jobs that share one transaction.
const MAX_BATCH: usize = 512;
/// The longest a non-durable commit stays non-durable.
pub(super) const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// How long the writer sleeps when there is nothing to flush.
const IDLE_WAIT: Duration = Duration::from_secs(3600);

type Value = Box<dyn Any + Send>;
type Job = Box<dyn FnMut(&WriteTransaction) -> Result<Value, StoreError> + Send>;

struct Request {
    job: Job,
    durable: bool,
    done: Done,
}

/// How a caller is told its job's result: a blocked thread wakes, or an
/// async task's [`Pending`] completes (no thread waits for the fsync).
enum Done {
    Wait(SyncSender<Result<Value, StoreError>>),
    Notify(tokio::sync::oneshot::Sender<Result<Value, StoreError>>),
}

impl Done {
    fn send(self, result: Result<Value, StoreError>) {
        match self {
            Done::Wait(s) => {
                let _ = s.send(result);
            }
            Done::Notify(s) => {
                let _ = s.send(result);
            }
        }
    }
}

/// A write queued for the writer thread: await it for the job's value,
/// given once its transaction is committed.
pub struct Pending<R> {
    rx: tokio::sync::oneshot::Receiver<Result<Value, StoreError>>,
    _value: std::marker::PhantomData<fn() -> R>,
}

impl<R: 'static> std::future::Future for Pending<R> {
    type Output = Result<R, StoreError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx).poll(cx).map(|r| match r {
            Ok(Ok(v)) => Ok(*v.downcast::<R>().expect("a job's value has its own type")),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::Closing),
        })
    }
}

/// The writer thread and its queue.
pub(super) struct Committer {
    queue: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    #[cfg(test)]
    durable_commits: Arc<std::sync::atomic::AtomicU64>,
}

/// Counts durable commits (tests only).
#[derive(Clone, Default)]
struct Counter {
    #[cfg(test)]
    durable: Arc<std::sync::atomic::AtomicU64>,
}

impl Counter {
    fn durable_commit(&self) {
        #[cfg(test)]
        self.durable.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Committer {
    /// Starts the writer thread; `after_batch` runs after each batch is
    /// over, with whether it was committed, before its callers are told.
    pub(super) fn start(db: Arc<Database>, after_batch: Box<dyn Fn(bool) + Send>) -> Committer {
        let (queue, rx) = channel::<Request>();
        let counter = Counter::default();
        #[cfg(test)]
        let durable_commits = counter.durable.clone();
        let thread = std::thread::Builder::new()
            .name("parkbot-commit".into())
            .spawn(move || run(&db, &rx, &counter, &*after_batch))
            .expect("spawn the commit thread");
        Committer {
            queue: Some(queue),
            thread: Some(thread),
            #[cfg(test)]
            durable_commits,
        }
    }

    /// Runs `f` in a shared write transaction; returns its value once the
    /// transaction is committed, durably unless `durable` is false. `f` may
    /// run more than once (see the module documentation).
    pub(super) fn write<R, F>(&self, durable: bool, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        let (done, wait) = sync_channel(1);
        self.queue(durable, f, Done::Wait(done))?;
        let value = wait.recv().map_err(|_| StoreError::Closing)??;
        Ok(*value.downcast::<R>().expect("a job's value has its own type"))
    }

    /// Like [`Committer::write`], but returns at once: the caller awaits
    /// the result instead of blocking a thread through the fsync.
    pub(super) fn submit<R, F>(&self, durable: bool, f: F) -> Result<Pending<R>, StoreError>
    where
        R: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.queue(durable, f, Done::Notify(done))?;
        Ok(Pending {
            rx,
            _value: std::marker::PhantomData,
        })
    }

    fn queue<R, F>(&self, durable: bool, mut f: F, done: Done) -> Result<(), StoreError>
    where
        R: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        let job: Job = Box::new(move |tx| f(tx).map(|v| Box::new(v) as Value));
        self.queue
            .as_ref()
            .ok_or(StoreError::Closing)?
            .send(Request { job, durable, done })
            .map_err(|_| StoreError::Closing)
    }

    /// Durable commits so far, flushes included.
    #[cfg(test)]
    pub(super) fn durable_commits(&self) -> u64 {
        self.durable_commits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(db: &Database, rx: &Receiver<Request>, counter: &Counter, after_batch: &dyn Fn(bool)) {
    // When the first non-durable commit since the last durable one happened.
    let mut lazy_since: Option<Instant> = None;
    loop {
        let wait = lazy_since.map_or(IDLE_WAIT, |t| FLUSH_AFTER.saturating_sub(t.elapsed()));
        let first = match rx.recv_timeout(wait) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                if lazy_since.is_some() {
                    lazy_since = flush_or_log(db, counter, lazy_since);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let overdue = lazy_since.is_some_and(|t| t.elapsed() >= FLUSH_AFTER);
        let durable = overdue || batch.iter().any(|r| r.durable);
        let result = run_batch(db, &mut batch, durable);
        after_batch(result.is_ok());
        match result {
            Ok(values) => {
                note_commit(&mut lazy_since, durable, counter);
                for (r, v) in batch.into_iter().zip(values) {
                    r.done.send(Ok(v));
                }
            }
            Err(e) => {
                if batch.len() > 1 {
                    tracing::warn!(error = %e, jobs = batch.len(), "a shared write failed: running its jobs one by one");
                }
                for mut r in batch {
                    let durable = overdue || r.durable;
                    let result = run_batch(db, std::slice::from_mut(&mut r), durable).map(|mut v| v.remove(0));
                    after_batch(result.is_ok());
                    if result.is_ok() {
                        note_commit(&mut lazy_since, durable, counter);
                    }
                    r.done.send(result);
                }
            }
        }
    }
    if lazy_since.is_some() {
        flush_or_log(db, counter, lazy_since);
    }
}

fn note_commit(lazy_since: &mut Option<Instant>, durable: bool, counter: &Counter) {
    if durable {
        *lazy_since = None;
        counter.durable_commit();
    } else if lazy_since.is_none() {
        *lazy_since = Some(Instant::now());
    }
}

/// An empty durable commit: makes earlier non-durable commits durable. A
/// failure is logged and tried again a little later.
fn flush_or_log(db: &Database, counter: &Counter, lazy_since: Option<Instant>) -> Option<Instant> {
    let result =
        panics::caught(|| -> Result<(), StoreError> { Ok(db.begin_write()?.commit()?) }).unwrap_or_else(|panic| {
            Err(StoreError::WriterPanic {
                message: panic_message(panic.as_ref()),
            })
        });
    match result {
        Ok(()) => {
            counter.durable_commit();
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "could not make the last changes durable");
            lazy_since.map(|_| Instant::now())
        }
    }
}

/// Runs `batch`'s jobs in one transaction and commits it; returns their
/// values, in order, only once committed. A panic (in a job, or in redb on
/// a damaged file) is caught, logged, and becomes [`StoreError::WriterPanic`].
fn run_batch(db: &Database, batch: &mut [Request], durable: bool) -> Result<Vec<Value>, StoreError> {
    panics::caught(|| attempt(db, batch, durable)).unwrap_or_else(|panic| {
        let message = panic_message(panic.as_ref());
        tracing::error!(panic = %message, "a store write panicked");
        Err(StoreError::WriterPanic { message })
    })
}

fn attempt(db: &Database, batch: &mut [Request], durable: bool) -> Result<Vec<Value>, StoreError> {
    let mut tx = db.begin_write()?;
    if !durable {
        tx.set_durability(Durability::None)?;
    }
    let mut values = Vec::with_capacity(batch.len());
    for r in batch.iter_mut() {
        values.push((r.job)(&tx)?);
    }
    tx.commit()?;
    Ok(values)
}

/// The text of a panic's payload.
pub(super) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn db() -> (tempfile::TempDir, Arc<Database>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("c.redb")).unwrap();
        let w = db.begin_write().unwrap();
        w.open_table(T).unwrap();
        w.commit().unwrap();
        (dir, Arc::new(db))
    }

    fn put(c: &Committer, durable: bool, k: u64) -> Result<u64, StoreError> {
        c.write(durable, move |tx| {
            tx.open_table(T)?.insert(k, k)?;
            Ok(k)
        })
    }

    #[test]
    fn a_failing_or_panicking_job_fails_alone() {
        let (_dir, db) = db();
        let c = Arc::new(Committer::start(db.clone(), Box::new(|_| {})));
        // Hold the writer busy so that the 50 jobs queue up into one batch.
        let (go_tx, go_rx) = sync_channel::<()>(0);
        let go_rx = std::sync::Mutex::new(Some(go_rx));
        let blocker = {
            let c = c.clone();
            std::thread::spawn(move || {
                c.write(true, move |_| {
                    if let Some(rx) = go_rx.lock().unwrap().take() {
                        let _ = rx.recv();
                    }
                    Ok(())
                })
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let handles: Vec<_> = (0..50u64)
            .map(|k| {
                let c = c.clone();
                std::thread::spawn(move || match k {
                    10 => c.write(true, move |tx| {
                        tx.open_table(T)?.insert(k, k)?;
                        Err::<u64, _>(StoreError::Closing)
                    }),
                    20 => c.write(true, move |tx| {
                        tx.open_table(T)?.insert(k, k)?;
                        panic!("job {k} panics")
                    }),
                    _ => put(&c, k % 2 == 0, k),
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        go_tx.send(()).unwrap();
        blocker.join().unwrap().unwrap();
        for (k, h) in handles.into_iter().enumerate() {
            let r = h.join().expect("the caller's thread does not panic");
            match k {
                10 => assert!(matches!(r, Err(StoreError::Closing)), "{r:?}"),
                20 => assert!(
                    matches!(&r, Err(StoreError::WriterPanic { message }) if message.contains("job 20")),
                    "{r:?}"
                ),
                _ => assert_eq!(r.unwrap(), k as u64),
            }
        }
        let read = db.begin_read().unwrap();
        let t = read.open_table(T).unwrap();
        for k in 0..50u64 {
            assert_eq!(t.get(k).unwrap().is_some(), k != 10 && k != 20, "row {k}");
        }
        drop((t, read));
        // The writer lives on.
        assert_eq!(put(&c, true, 99).unwrap(), 99);
        assert!(
            db.begin_read()
                .unwrap()
                .open_table(T)
                .unwrap()
                .get(99)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn lazy_writes_become_durable_under_steady_traffic() {
        let (_dir, db) = db();
        let c = Committer::start(db, Box::new(|_| {}));
        put(&c, true, 0).unwrap();
        let base = c.durable_commits();
        let start = Instant::now();
        let mut became_durable = None;
        let mut k = 1;
        // A lazy write every 50 ms: never a second of quiet.
        while start.elapsed() < Duration::from_millis(3000) {
            put(&c, false, k).unwrap();
            k += 1;
            if c.durable_commits() > base && became_durable.is_none() {
                became_durable = Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let at = became_durable.expect("lazy writes became durable under steady traffic");
        assert!(at <= Duration::from_millis(2200), "durable only after {at:?}");
        assert!(c.durable_commits() >= base + 2, "and again a second later");
    }
}
