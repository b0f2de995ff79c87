//! Signals for long-running verbs: blocked in every thread, awaited by one thread with `sigwait`, so the handling
//! code is ordinary code (unmount, run post-scripts, remove snapshots) rather than an async-signal handler.

pub type SigSet = libc::sigset_t;

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread and every thread started after it; call before starting any.
pub fn block_signals() -> SigSet {
    // SAFETY: sigset operations on a local, zero-initialised set.
    unsafe {
        let mut set: SigSet = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the blocked signals; returns its number.
pub fn wait_for_signal(set: &SigSet) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` is a valid signal set blocked in this thread.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}
