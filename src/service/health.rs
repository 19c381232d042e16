//! Readiness: the facts the probes answer with (not audited).

use crate::db::{self, store, DbConn};
use crate::error::{AppError, AppResult, ErrorCode};
use serde::Serialize;

/// A probe's answer: `{"status": …}` inside the success envelope.
#[derive(Debug, Serialize)]
pub struct Probe {
    pub status: &'static str,
}

/// The process answers.
pub const UP: Probe = Probe { status: "up" };
/// The process can serve: see [`check_audit_log`] and [`check_database`].
pub const READY: Probe = Probe { status: "ready" };

/// Ready only while the audit log can be written (the writer's last group or probe committed).
pub fn check_audit_log(writer_healthy: bool) -> AppResult<()> {
    if !writer_healthy {
        return Err(AppError::new(ErrorCode::Unavailable, "the audit log cannot be written"));
    }
    Ok(())
}

/// Ready only while the database answers and every migration is applied.
pub fn check_database(conn: &mut DbConn) -> AppResult<Probe> {
    store::ping(conn)?;
    let migrated = db::is_migrated(conn).map_err(|e| AppError::unavailable().caused_by(std::io::Error::other(e)))?;
    if !migrated {
        return Err(AppError::new(ErrorCode::Unavailable, "database migrations are pending"));
    }
    Ok(READY)
}
