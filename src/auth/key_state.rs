//! Reads of `key_state.version` for key checks that must see every change
//! (`KeyCacheMode::CheckEachRequest`, PostgreSQL's default), shared between
//! the requests that wait for one.
//!
//! A request that needs the version queues here. One thread, with a
//! connection of its own, takes everything queued, reads the version once and
//! answers all of them; requests that arrive meanwhile wait for the next read.
//! So every request is answered from a read that started after it arrived
//! (after any revocation it could have been told about), and under load one
//! round trip serves many requests instead of one each, with no blocking-pool
//! thread or pooled connection per request.

use crate::db::{self, store, ConnOptions, DbConn, DbUrl};
use crate::error::{AppError, AppResult};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Requests waiting beyond this make callers wait for room.
const QUEUE_CAPACITY: usize = 8192;

type Waiter = oneshot::Sender<AppResult<i64>>;

pub struct KeyStateReader {
    tx: mpsc::Sender<Waiter>,
    /// A check waits this long for its read, as it waits for a pooled connection
    /// (`KEYWARD_DB_WAIT_MS`): a database that does not answer (a lost host, not a
    /// refused connection) fails checks closed instead of holding them until TCP gives up.
    wait: Duration,
}

impl KeyStateReader {
    pub fn start(url: DbUrl, options: ConnOptions) -> KeyStateReader {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("key-state-reader".into())
            .spawn(move || run(url, options, rx))
            .expect("spawn the key_state reader thread");
        KeyStateReader { tx, wait: options.wait }
    }

    /// The version as read after this call began; `unavailable` if it cannot be read (fail closed).
    pub async fn current(&self) -> AppResult<i64> {
        let read = async {
            let (reply, answer) = oneshot::channel();
            self.tx.send(reply).await.map_err(|_| AppError::unavailable())?;
            answer.await.unwrap_or_else(|_| Err(AppError::unavailable()))
        };
        tokio::time::timeout(self.wait, read).await.unwrap_or_else(|_| Err(AppError::unavailable()))
    }
}

fn run(url: DbUrl, options: ConnOptions, mut rx: mpsc::Receiver<Waiter>) {
    // Let the request thread queue everything it has ready before a read starts.
    crate::threads::never_preempt_on_wakeup();
    let mut conn: Option<DbConn> = None;
    let mut healthy = true;
    while let Some(first) = rx.blocking_recv() {
        let mut waiting = vec![first];
        while let Ok(more) = rx.try_recv() {
            waiting.push(more);
        }
        let read = read_version(&url, options, &mut conn);
        match &read {
            Ok(_) if !healthy => {
                tracing::info!("key_state can be read again");
                healthy = true;
            }
            Err(e) if healthy => {
                tracing::warn!(error = %e, "cannot read key_state; key checks fail closed");
                healthy = false;
            }
            _ => {}
        }
        for waiter in waiting {
            let _ = waiter.send(read.clone());
        }
    }
}

/// One read; the connection is made if there is none and dropped after a failure.
fn read_version(url: &DbUrl, options: ConnOptions, conn: &mut Option<DbConn>) -> AppResult<i64> {
    if conn.is_none() {
        let made = db::establish_with(url, options).map_err(|e| {
            tracing::debug!(error = %e, "key_state reader cannot connect");
            AppError::unavailable()
        })?;
        *conn = Some(made);
    }
    let read = store::key_state_version(conn.as_mut().expect("made above"));
    if read.is_err() {
        *conn = None;
    }
    read
}
