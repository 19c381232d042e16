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
