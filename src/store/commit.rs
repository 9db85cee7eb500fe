//! Group commit: many callers' small writes share one durable transaction.
//!
//! A single writer thread takes every job waiting in its queue, runs them in
//! order inside one write transaction, commits it (fsync), and only then
//! tells each caller that its write is done. No caller is answered before
//! its data is durable; under load, one fsync serves many callers. With one
//! caller at a time it costs what a plain commit costs.
//!
//! A job may also be marked not durable (state that is harmless to lose in
//! a crash, like the rest of a list for "more"): a batch of only such jobs
//! is committed without fsync (consistent, but a crash rolls back to the
//! last durable commit). They become durable with the next durable commit,
//! after a second of quiet, or when the store closes.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, Durability, WriteTransaction};

/// The most jobs that share one transaction.
const MAX_BATCH: usize = 512;
/// Quiet time after which non-durable commits are made durable.
const FLUSH_AFTER: Duration = Duration::from_secs(1);

type Job = Box<dyn FnOnce(&WriteTransaction) -> Result<(), String> + Send>;

struct Request {
    job: Job,
    durable: bool,
    done: SyncSender<Result<(), String>>,
}

/// The writer thread and its queue.
pub(super) struct Committer {
    queue: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub(super) fn start(db: Arc<Database>) -> Committer {
        let (queue, rx) = channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("parkbot-commit".into())
            .spawn(move || run(&db, &rx))
            .expect("spawn the commit thread");
        Committer {
            queue: Some(queue),
            thread: Some(thread),
        }
    }

    /// Runs `f` in a shared write transaction; returns its value once the
    /// transaction is committed, durably unless `durable` is false.
    pub(super) fn write<R, F>(&self, durable: bool, f: F) -> Result<R, String>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<R, String> + Send + 'static,
    {
        let (value_tx, value_rx) = sync_channel::<R>(1);
        let job: Job = Box::new(move |tx| {
            let v = f(tx)?;
            let _ = value_tx.send(v);
            Ok(())
        });
        let (done, wait) = sync_channel(1);
        self.queue
            .as_ref()
            .ok_or("the store is closing")?
            .send(Request { job, durable, done })
            .map_err(|_| "the commit thread has stopped".to_string())?;
        wait.recv().map_err(|_| "the commit thread has stopped".to_string())??;
        value_rx.recv().map_err(|_| "a write produced no value".to_string())
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

fn run(db: &Database, rx: &Receiver<Request>) {
    // Non-durable commits made since the last durable one.
    let mut lazy = false;
    loop {
        let first = match rx.recv_timeout(FLUSH_AFTER) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                lazy = lazy && flush(db).is_err();
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
        let durable = batch.iter().any(|r| r.durable);
        let result = commit(db, &mut batch, durable);
        if result.is_ok() {
            lazy = !durable;
        }
        for r in batch {
            let _ = r.done.send(result.clone());
        }
    }
    if lazy && let Err(e) = flush(db) {
        tracing::error!(error = %e, "could not make the last changes durable");
    }
}

/// An empty durable commit: makes earlier non-durable commits durable.
fn flush(db: &Database) -> Result<(), String> {
    db.begin_write()
        .map_err(|e| e.to_string())?
        .commit()
        .map_err(|e| e.to_string())
}

/// Runs the batch's jobs in one transaction. A job that fails fails the
/// whole batch (nothing of it is written): jobs fail only on storage errors.
fn commit(db: &Database, batch: &mut [Request], durable: bool) -> Result<(), String> {
    let mut tx = db.begin_write().map_err(|e| e.to_string())?;
    if !durable {
        tx.set_durability(Durability::None).map_err(|e| e.to_string())?;
    }
    for r in batch.iter_mut() {
        let job: Job = std::mem::replace(&mut r.job, Box::new(|_| Ok(())));
        job(&tx)?;
    }
    tx.commit().map_err(|e| e.to_string())
}
