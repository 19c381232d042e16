//! SIEM sinks: their settings, and the delivery worker's lease and cursor.
//! Every change the worker makes is a conditional UPDATE on its own lease, so
//! two instances on one database never deliver the same sink at once, and a
//! worker whose lease was taken over (or whose cursor an owner moved) changes nothing.

use crate::db::models::SiemSink;
use crate::db::schema::siem_sinks;
use crate::db::DbConn;
use crate::domain::event::EventFormat;
use crate::domain::sinks::SinkState;
use crate::error::AppResult;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// The tenant's live sink `id`, as an UPDATE target.
macro_rules! live {
    ($tenant_id:expr, $id:expr) => {
        siem_sinks::table
            .filter(siem_sinks::tenant_id.eq($tenant_id))
            .filter(siem_sinks::id.eq($id))
            .filter(siem_sinks::deleted_at.is_null())
    };
}

pub fn insert_sink(conn: &mut DbConn, sink: &SiemSink) -> AppResult<()> {
    diesel::insert_into(siem_sinks::table).values(sink).execute(conn)?;
    Ok(())
}

/// A live (not deleted) sink of the tenant.
pub fn find_sink(conn: &mut DbConn, tenant_id: &str, id: &str) -> AppResult<Option<SiemSink>> {
    Ok(siem_sinks::table
        .filter(siem_sinks::tenant_id.eq(tenant_id))
        .filter(siem_sinks::id.eq(id))
        .filter(siem_sinks::deleted_at.is_null())
        .first(conn)
        .optional()?)
}

/// Whether another live sink of the tenant has this name.
pub fn sink_name_taken(conn: &mut DbConn, tenant_id: &str, name: &str, except_id: Option<&str>) -> AppResult<bool> {
    let n: i64 = siem_sinks::table
        .filter(siem_sinks::tenant_id.eq(tenant_id))
        .filter(siem_sinks::name.eq(name))
        .filter(siem_sinks::deleted_at.is_null())
        .filter(siem_sinks::id.ne(except_id.unwrap_or("")))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The tenant's live sinks, oldest first.
pub fn list_sinks(conn: &mut DbConn, tenant_id: &str) -> AppResult<Vec<SiemSink>> {
    Ok(siem_sinks::table
        .filter(siem_sinks::tenant_id.eq(tenant_id))
        .filter(siem_sinks::deleted_at.is_null())
        .order((siem_sinks::created_at.asc(), siem_sinks::id.asc()))
        .load(conn)?)
}

/// How many live sinks the tenant has.
pub fn count_sinks(conn: &mut DbConn, tenant_id: &str) -> AppResult<i64> {
    Ok(siem_sinks::table
        .filter(siem_sinks::tenant_id.eq(tenant_id))
        .filter(siem_sinks::deleted_at.is_null())
        .count()
        .get_result(conn)?)
}

/// An owner's change of a sink's settings (the worker's columns are left alone).
pub struct SinkSettings<'a> {
    pub name: &'a str,
    pub url: &'a str,
    pub format: EventFormat,
    pub filter_operations: Option<&'a str>,
    pub filter_outcomes: Option<&'a str>,
    pub secret_sealed: &'a [u8],
}

pub fn update_sink_settings(
    conn: &mut DbConn,
    tenant_id: &str,
    id: &str,
    s: &SinkSettings<'_>,
    at: NaiveDateTime,
) -> AppResult<()> {
    diesel::update(live!(tenant_id, id))
        .set((
            siem_sinks::name.eq(s.name),
            siem_sinks::url.eq(s.url),
            siem_sinks::format.eq(s.format),
            siem_sinks::filter_operations.eq(s.filter_operations),
            siem_sinks::filter_outcomes.eq(s.filter_outcomes),
            siem_sinks::secret_sealed.eq(s.secret_sealed),
            siem_sinks::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn delete_sink(conn: &mut DbConn, tenant_id: &str, id: &str, at: NaiveDateTime) -> AppResult<()> {
    diesel::update(live!(tenant_id, id))
        .set((siem_sinks::deleted_at.eq(Some(at)), siem_sinks::updated_at.eq(at)))
        .execute(conn)?;
    Ok(())
}

/// Moves the cursor (replay) and makes the sink ACTIVE with a clean slate;
/// a delivery in flight then fails its conditional cursor update.
pub fn replay_sink(conn: &mut DbConn, tenant_id: &str, id: &str, through: i64, at: NaiveDateTime) -> AppResult<()> {
    diesel::update(live!(tenant_id, id))
        .set((
            siem_sinks::delivered_through.eq(through),
            siem_sinks::state.eq(SinkState::Active),
            siem_sinks::consecutive_failures.eq(0),
            siem_sinks::failing_since.eq(None::<NaiveDateTime>),
            siem_sinks::next_attempt_at.eq(None::<NaiveDateTime>),
            siem_sinks::last_error.eq(None::<String>),
            siem_sinks::updated_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// ACTIVE live sinks due for a try at `now` whose lease is free or `owner`'s.
pub fn due_sinks(conn: &mut DbConn, owner: &str, now: NaiveDateTime, limit: i64) -> AppResult<Vec<SiemSink>> {
    Ok(siem_sinks::table
        .filter(siem_sinks::state.eq(SinkState::Active))
        .filter(siem_sinks::deleted_at.is_null())
        .filter(siem_sinks::next_attempt_at.is_null().or(siem_sinks::next_attempt_at.le(now)))
        .filter(
            siem_sinks::lease_until.is_null().or(siem_sinks::lease_until.lt(now)).or(siem_sinks::lease_owner.eq(owner)),
        )
        .order((siem_sinks::next_attempt_at.asc(), siem_sinks::id.asc()))
        .limit(limit)
        .load(conn)?)
}

/// Takes (or renews) the lease of a due sink until `until`: true when this owner holds it.
pub fn take_sink_lease(
    conn: &mut DbConn,
    id: &str,
    owner: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> AppResult<bool> {
    let n = diesel::update(
        siem_sinks::table
            .filter(siem_sinks::id.eq(id))
            .filter(siem_sinks::state.eq(SinkState::Active))
            .filter(siem_sinks::deleted_at.is_null())
            .filter(siem_sinks::next_attempt_at.is_null().or(siem_sinks::next_attempt_at.le(now)))
            .filter(
                siem_sinks::lease_until
                    .is_null()
                    .or(siem_sinks::lease_until.lt(now))
                    .or(siem_sinks::lease_owner.eq(owner)),
            ),
    )
    .set((siem_sinks::lease_owner.eq(Some(owner)), siem_sinks::lease_until.eq(Some(until))))
    .execute(conn)?;
    Ok(n == 1)
}

/// The sink as its lease holder reads it again (None: no longer this owner's, or gone).
pub fn leased_sink(conn: &mut DbConn, id: &str, owner: &str, now: NaiveDateTime) -> AppResult<Option<SiemSink>> {
    Ok(siem_sinks::table
        .filter(siem_sinks::id.eq(id))
        .filter(siem_sinks::lease_owner.eq(owner))
        .filter(siem_sinks::lease_until.gt(now))
        .filter(siem_sinks::state.eq(SinkState::Active))
        .filter(siem_sinks::deleted_at.is_null())
        .first(conn)
        .optional()?)
}

/// Moves the cursor from `from` to `through` after a delivery (or a skip), and
/// clears the failure record; only while the lease is still this owner's and
/// nobody moved the cursor meanwhile. False: nothing changed.
pub fn advance_sink(
    conn: &mut DbConn,
    id: &str,
    owner: &str,
    from: i64,
    through: i64,
    now: NaiveDateTime,
) -> AppResult<bool> {
    let n = diesel::update(
        siem_sinks::table
            .filter(siem_sinks::id.eq(id))
            .filter(siem_sinks::lease_owner.eq(owner))
            .filter(siem_sinks::lease_until.gt(now))
            .filter(siem_sinks::delivered_through.eq(from))
            .filter(siem_sinks::state.eq(SinkState::Active)),
    )
    .set((
        siem_sinks::delivered_through.eq(through),
        siem_sinks::consecutive_failures.eq(0),
        siem_sinks::failing_since.eq(None::<NaiveDateTime>),
        siem_sinks::next_attempt_at.eq(None::<NaiveDateTime>),
        siem_sinks::last_error.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Records a failed try of a sink failing since `failing_since`: the next
/// one waits until `next_attempt_at`; the lease is let go.
pub fn record_sink_failure(
    conn: &mut DbConn,
    id: &str,
    owner: &str,
    failing_since: NaiveDateTime,
    next_attempt_at: NaiveDateTime,
    error: &str,
) -> AppResult<bool> {
    let n = diesel::update(
        siem_sinks::table
            .filter(siem_sinks::id.eq(id))
            .filter(siem_sinks::lease_owner.eq(owner))
            .filter(siem_sinks::state.eq(SinkState::Active)),
    )
    .set((
        siem_sinks::consecutive_failures.eq(siem_sinks::consecutive_failures + 1),
        siem_sinks::failing_since.eq(Some(failing_since)),
        siem_sinks::next_attempt_at.eq(Some(next_attempt_at)),
        siem_sinks::last_error.eq(Some(error)),
        siem_sinks::lease_owner.eq(None::<String>),
        siem_sinks::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Lets go of a lease (a pass is done with the sink).
pub fn release_sink_lease(conn: &mut DbConn, id: &str, owner: &str) -> AppResult<()> {
    diesel::update(siem_sinks::table.filter(siem_sinks::id.eq(id)).filter(siem_sinks::lease_owner.eq(owner)))
        .set((siem_sinks::lease_owner.eq(None::<String>), siem_sinks::lease_until.eq(None::<NaiveDateTime>)))
        .execute(conn)?;
    Ok(())
}

/// Makes a failing sink DEAD (in the transaction of its audit event): true when this call did.
pub fn kill_sink(conn: &mut DbConn, id: &str, owner: &str, at: NaiveDateTime) -> AppResult<bool> {
    let n = diesel::update(
        siem_sinks::table
            .filter(siem_sinks::id.eq(id))
            .filter(siem_sinks::state.eq(SinkState::Active))
            .filter(siem_sinks::lease_owner.eq(owner).or(siem_sinks::lease_owner.is_null())),
    )
    .set((
        siem_sinks::state.eq(SinkState::Dead),
        siem_sinks::next_attempt_at.eq(None::<NaiveDateTime>),
        siem_sinks::lease_owner.eq(None::<String>),
        siem_sinks::lease_until.eq(None::<NaiveDateTime>),
        siem_sinks::updated_at.eq(at),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// How many live sinks are DEAD (every tenant's: the gauge has no tenant label).
pub fn dead_sink_count(conn: &mut DbConn) -> AppResult<i64> {
    Ok(siem_sinks::table
        .filter(siem_sinks::state.eq(SinkState::Dead))
        .filter(siem_sinks::deleted_at.is_null())
        .count()
        .get_result(conn)?)
}

/// The cursor of the tenant's slowest live ACTIVE sink: retention archives
/// nothing past it, so a working sink is never skipped over. A DEAD sink
/// holds nothing back (a broken receiver must not keep the log growing).
pub fn slowest_active_sink(conn: &mut DbConn, tenant_id: &str) -> AppResult<Option<i64>> {
    Ok(siem_sinks::table
        .filter(siem_sinks::tenant_id.eq(tenant_id))
        .filter(siem_sinks::deleted_at.is_null())
        .filter(siem_sinks::state.eq(SinkState::Active))
        .select(diesel::dsl::min(siem_sinks::delivered_through))
        .first::<Option<i64>>(conn)?)
}
