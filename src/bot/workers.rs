//! The core's own threads: the synchronous part of each message (index,
//! store reads, deciding) runs here, off the async worker threads.
//!
//! A small fixed pool (one thread per core, 2 to 8) pulling from one queue.
//! Unlike tokio's blocking pool, which grows a thread per waiting task and
//! wakes one for each, these threads stay busy under load and take the next
//! message without sleeping in between. Nothing here waits for an fsync
//! (the commit is awaited on the async side), so a few threads suffice.
//! A job that panics is caught there and the thread goes on; the job
//! itself says what its caller gets (see `Bot::handle`).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;

struct Queue {
    jobs: Mutex<Jobs>,
    ready: Condvar,
}

struct Jobs {
    queue: VecDeque<Job>,
    stopping: bool,
    /// Threads waiting on `ready`: a job is only worth a wake-up (a
    /// system call, and often a context switch) when one is.
    idle: usize,
}

/// The pool; its threads end when it is dropped.
pub(super) struct Workers {
    queue: Arc<Queue>,
}

impl Workers {
    pub(super) fn start() -> Workers {
        let n = pool_size();
        let queue = Arc::new(Queue {
            jobs: Mutex::new(Jobs {
                queue: VecDeque::new(),
                stopping: false,
                idle: 0,
            }),
            ready: Condvar::new(),
        });
        for i in 0..n {
            let q = queue.clone();
            std::thread::Builder::new()
                .name(format!("parkbot-core-{i}"))
                .spawn(move || {
                    batch_policy();
                    work(&q)
                })
                .expect("spawn a core thread");
        }
        Workers { queue }
    }

    /// Runs `f` on a core thread; the future gives its value, or the
    /// message of its panic.
    #[cfg(test)]
    pub(super) fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> impl Future<Output = Result<R, String>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(move || {
            let result = catch_unwind(AssertUnwindSafe(f)).map_err(|p| super::panic_message(p.as_ref()));
            let _ = tx.send(result);
        });
        async move {
            rx.await
                .unwrap_or_else(|_| Err("the core's threads have stopped".into()))
        }
    }

    /// Queues `job` for a core thread. A job that panics is caught there
    /// (the thread goes on); a job still queued when the pool stops is
    /// dropped without running.
    pub(super) fn submit(&self, job: impl FnOnce() + Send + 'static) {
        let wake = {
            let mut jobs = self.queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.queue.push_back(Box::new(job));
            // Busy threads take the job when they finish theirs.
            jobs.idle > 0
        };
        if wake {
            self.queue.ready.notify_one();
        }
    }
}

/// Marks the calling thread as batch work for the Linux scheduler
/// (`SCHED_BATCH`, same priority): woken by a queued job, it does not
/// preempt the thread that queued it, but runs when a processor is free or
/// the running thread's slice ends. Without it each hand-off could cost
/// two context switches, back and forth between the async worker that
/// queued the job and the core thread that took it: under the WeChat load
/// on 2 cores, serve's CPU per message went from 41 to 35 µs and its
/// throughput up by a fifth (docs/PERFORMANCE.md). Elsewhere, or if the
/// call fails, the thread keeps the normal policy.
fn batch_policy() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param` that outlives the call;
        // pid 0 is the calling thread; the call reads nothing else.
        let failed = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0;
        if failed {
            tracing::debug!(error = %std::io::Error::last_os_error(), "core thread: SCHED_BATCH refused");
        }
    }
}

/// One thread per core, 2 to 8.
fn pool_size() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.queue.jobs.lock().unwrap_or_else(|e| e.into_inner()).stopping = true;
        self.queue.ready.notify_all();
    }
}

fn work(q: &Queue) {
    loop {
        let job = {
            let mut jobs = q.jobs.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(job) = jobs.queue.pop_front() {
                    break job;
                }
                if jobs.stopping {
                    return;
                }
                jobs.idle += 1;
                jobs = q.ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
                jobs.idle -= 1;
            }
        };
        if let Err(p) = catch_unwind(AssertUnwindSafe(job)) {
            tracing::error!(panic = %super::panic_message(p.as_ref()), "a job on a core thread failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_a_panic() {
        let w = Workers::start();
        assert_eq!(w.run(|| 2 + 2).await, Ok(4));
        let e = w.run(|| -> u32 { panic!("boom") }).await.unwrap_err();
        assert!(e.contains("boom"), "{e}");
        let all: Vec<_> = (0..100).map(|i| w.run(move || i * 2)).collect();
        for (i, f) in all.into_iter().enumerate() {
            assert_eq!(f.await, Ok(i * 2));
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn core_threads_run_as_batch_work() {
        let w = Workers::start();
        // SAFETY: no arguments but the calling thread's pid, 0.
        let policy = w.run(|| unsafe { libc::sched_getscheduler(0) }).await.unwrap();
        assert_eq!(policy, libc::SCHED_BATCH);
    }

    /// Jobs queued while every thread is busy are taken without a wake-up
    /// when the threads finish; a job queued when they all sleep wakes one.
    #[tokio::test]
    async fn busy_threads_take_queued_jobs_and_idle_ones_are_woken() {
        let w = Workers::start();
        let gate = Arc::new(std::sync::Barrier::new(1 + 2));
        // Hold every thread (the pool has at least two).
        let held: Vec<_> = (0..pool_size())
            .map(|i| {
                let g = gate.clone();
                w.run(move || {
                    if i < 2 {
                        g.wait();
                    }
                })
            })
            .collect();
        let queued: Vec<_> = (0..50).map(|i| w.run(move || i)).collect();
        tokio::task::spawn_blocking(move || gate.wait()).await.unwrap();
        for h in held {
            h.await.unwrap();
        }
        for (i, q) in queued.into_iter().enumerate() {
            assert_eq!(q.await, Ok(i));
        }
        // Every thread now sleeps; one more job must still run.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(w.run(|| "late").await, Ok("late"));
    }
}
