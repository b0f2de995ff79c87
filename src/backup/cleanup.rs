//! Actions that must run however a backup ends: post-scripts, snapshot removal.
//!
//! The backup runs each when its time comes (`run`); a signal handler thread runs whatever is left (`run_all`)
//! before the process exits. An action runs at most once, and runs while holding the registry's lock, so a signal
//! arriving during a post-script waits for it to end instead of exiting under it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

type Action = Box<dyn FnOnce() + Send>;

/// A shared registry of pending cleanup actions.
#[derive(Clone, Default)]
pub struct Cleanup {
    pending: Arc<Mutex<Vec<(u64, Action)>>>,
    next: Arc<AtomicU64>,
}

/// Names one registered action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token(u64);

impl Cleanup {
    pub fn push(&self, action: impl FnOnce() + Send + 'static) -> Token {
        let id = self.next.fetch_add(1, Relaxed);
        self.pending.lock().expect("cleanup lock").push((id, Box::new(action)));
        Token(id)
    }

    /// Runs one action now, unless it already ran.
    pub fn run(&self, token: Token) {
        let mut pending = self.pending.lock().expect("cleanup lock");
        if let Some(i) = pending.iter().position(|(id, _)| *id == token.0) {
            let (_, action) = pending.remove(i);
            action();
        }
    }

    /// Runs every pending action, newest first.
    pub fn run_all(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((_, action)) = pending.pop() {
            action();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_runs_once_newest_first() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let c = Cleanup::default();
        let tokens: Vec<Token> = (0..3)
            .map(|i| {
                let l = log.clone();
                c.push(move || l.lock().unwrap().push(i))
            })
            .collect();
        c.run(tokens[1]);
        c.run(tokens[1]);
        c.run_all();
        c.run_all();
        assert_eq!(*log.lock().unwrap(), [1, 2, 0]);
    }
}
