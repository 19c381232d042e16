//! How keyward's own threads are scheduled.

/// Puts the calling thread in `SCHED_BATCH`: when a request hands it a job it
/// becomes runnable but does not preempt the thread that serves requests on
/// its CPU, which first finishes every request it has ready. The group then
/// holds all of them (one commit, one fsync, one wake-up), instead of one
/// request per context switch.
pub fn never_preempt_on_wakeup() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain syscall on the calling thread (pid 0) with a valid parameter.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "audit writer stays SCHED_OTHER");
        }
    }
}

/// A background thread's handle: dropping it tells the thread to stop (its
/// owner, the application state, goes with it).
pub struct Stop(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

/// The thread's side of a [`Stop`]: its rhythm, and the word to stop.
pub struct Rounds(std::sync::mpsc::Receiver<()>);

/// A handle for the owner and the rhythm for the thread.
pub fn stop_handle() -> (Stop, Rounds) {
    let (tx, rx) = std::sync::mpsc::channel();
    (Stop(tx), Rounds(rx))
}

impl Rounds {
    /// Sleeps `pause`; false once the handle is dropped (at once, not after the pause).
    pub fn next(&self, pause: std::time::Duration) -> bool {
        matches!(self.0.recv_timeout(pause), Err(std::sync::mpsc::RecvTimeoutError::Timeout))
    }
}
