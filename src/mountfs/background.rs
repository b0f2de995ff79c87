//! The mount's background work (tree prefetch, read-ahead, decoding small files ahead): a few threads blocked on one
//! queue. Not rayon: an idle rayon worker calls `sched_yield` for dozens of rounds after every job before it sleeps,
//! and the mount hands out a job per directory listed. Measured during `find` over 100k entries on 2 cores: a third
//! of the mount's samples were in `sched_yield` from rayon's idle loop.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads running jobs in the order they were queued. Dropping it lets the workers finish
/// the queued jobs and exit.
pub struct Background {
    jobs: Sender<Job>,
}

impl Background {
    pub fn new(threads: usize) -> Background {
        let (jobs, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("coffer-bg-{i}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                log::warn!("cannot start a background thread: {e}");
            }
        }
        Background { jobs }
    }

    /// Queues `job`; it runs on a worker thread (or never, if no worker could be started: background work is only
    /// ever an optimisation).
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        let _ = self.jobs.send(Box::new(job));
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job; a worker blocked here sleeps in the kernel.
        let job = rx.lock().map(|r| r.recv());
        match job {
            Ok(Ok(job)) => job(),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_queued_job_runs_on_a_worker_thread() {
        let bg = Background::new(2);
        let (done, count) = (channel(), Arc::new(AtomicUsize::new(0)));
        for _ in 0..100 {
            let (tx, count) = (done.0.clone(), count.clone());
            bg.spawn(move || {
                count.fetch_add(1, Ordering::SeqCst);
                let name = std::thread::current().name().map(str::to_owned);
                let _ = tx.send(name);
            });
        }
        for _ in 0..100 {
            let name = done.1.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
            assert!(name.unwrap().starts_with("coffer-bg-"));
        }
        assert_eq!(count.load(Ordering::SeqCst), 100);
    }
}
