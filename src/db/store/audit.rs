//! The audit log: chain heads, appending events, reading them back.

use crate::crypto::ChainHash;
use crate::db::models::AuditRow;
use crate::db::schema::{audit_chains, audit_events};
use crate::db::{DbConn, MultiBackend};
use crate::error::AppResult;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::BTreeMap;

/// On SQLite, takes the database write lock at the start of a transaction.
/// A deferred transaction that reads first and writes later fails at once
/// with "database is locked" when another connection (the CLI, the export
/// runner) committed in between; a write as the first statement waits under
/// `busy_timeout` instead, as `BEGIN IMMEDIATE` would. PostgreSQL needs nothing.
pub fn take_write_lock(conn: &mut DbConn) -> AppResult<()> {
    if let DbConn::Sqlite(lite) = conn {
        // Matches no row (the key is NOT NULL), so no page is written; the statement still takes the lock.
        diesel::delete(audit_chains::table.filter(audit_chains::chain_id.is_null())).execute(lite)?;
    }
    Ok(())
}

/// A chain's last event: its `seq`, hash and time (None before the first
/// event). The next event is stamped no earlier than `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: ChainHash,
    pub at: Option<NaiveDateTime>,
}

impl ChainHead {
    fn of(seq: i64, hash: &str, at: Option<NaiveDateTime>) -> AppResult<ChainHead> {
        let hash = ChainHash::parse(hash).ok_or_else(|| {
            crate::error::AppError::internal().caused_by(std::io::Error::other("a chain head's hash is not a hash"))
        })?;
        Ok(ChainHead { seq, hash, at })
    }
}

type HeadColumns = (audit_chains::last_seq, audit_chains::last_hash, audit_chains::last_at);
const HEAD: HeadColumns = (audit_chains::last_seq, audit_chains::last_hash, audit_chains::last_at);

/// Loads and (on PostgreSQL) row-locks the heads of the given chains, in the
/// order given (sorted by the caller, so concurrent writers cannot deadlock).
/// The lock also serializes every change of a tenant across instances.
pub fn lock_chain_heads(conn: &mut DbConn, chain_ids: &[String]) -> AppResult<BTreeMap<String, ChainHead>> {
    match conn {
        DbConn::Postgres(pg) => {
            let rows: Vec<(String, i64, String, Option<NaiveDateTime>)> = audit_chains::table
                .filter(audit_chains::chain_id.eq_any(chain_ids))
                .order(audit_chains::chain_id)
                .select((audit_chains::chain_id, HEAD.0, HEAD.1, HEAD.2))
                .for_update()
                .load(pg)?;
            rows.into_iter().map(|(id, seq, hash, at)| Ok((id, ChainHead::of(seq, &hash, at)?))).collect()
        }
        // SQLite has one writer at a time: the transaction itself is the lock.
        // One lookup per chain (usually one or two): a statement prepared once.
        DbConn::Sqlite(_) => {
            let mut heads = BTreeMap::new();
            for id in chain_ids {
                if let Some(head) = load_head(conn, id)? {
                    heads.insert(id.clone(), head);
                }
            }
            Ok(heads)
        }
    }
}

// Lookups by primary key use `get_result`, not `first`: `first` adds a bound
// `LIMIT ?`, and SQLite (3.48 on) re-prepares a statement whose LIMIT is a
// parameter each time it is bound again, which diesel does on every run.
pub fn load_head(conn: &mut DbConn, chain_id: &str) -> AppResult<Option<ChainHead>> {
    let head: Option<(i64, String, Option<NaiveDateTime>)> =
        audit_chains::table.find(chain_id).select(HEAD).get_result(conn).optional()?;
    head.map(|(seq, hash, at)| ChainHead::of(seq, &hash, at)).transpose()
}

pub fn load_chain_head(conn: &mut DbConn, chain_id: &str) -> AppResult<Option<(i64, String)>> {
    Ok(audit_chains::table
        .find(chain_id)
        .select((audit_chains::last_seq, audit_chains::last_hash))
        .get_result(conn)
        .optional()?)
}

/// Moves the chain heads to the group's last events. On PostgreSQL the
/// inserts already did (statement trigger, migrations `000005_chain_head_trigger`
/// and `000011_audit_queries`: one round trip less per group while the heads are locked).
pub fn save_chain_heads(conn: &mut DbConn, heads: &BTreeMap<String, ChainHead>) -> AppResult<()> {
    let DbConn::Sqlite(lite) = conn else { return Ok(()) };
    for (chain_id, head) in heads {
        let at = head.at.as_ref().map(crate::db::columns::SqliteTime::new);
        SaveHead { chain_id, seq: head.seq, hash: head.hash.to_string(), at }.execute(lite)?;
    }
    Ok(())
}

/// SQLite: one chain head's move, as a statement diesel keeps prepared (it
/// prepares every `diesel::update` anew, since a changeset's columns may vary).
struct SaveHead<'a> {
    chain_id: &'a str,
    seq: i64,
    hash: String,
    /// Written as the events' times are (`InsertEvent`).
    at: Option<crate::db::columns::SqliteTime>,
}

impl diesel::query_builder::QueryId for SaveHead<'_> {
    type QueryId = SaveHead<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for SaveHead<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
        out.push_sql("UPDATE audit_chains SET last_seq = ");
        out.push_bind_param::<BigInt, _>(&self.seq)?;
        out.push_sql(", last_hash = ");
        out.push_bind_param::<Text, _>(&self.hash)?;
        out.push_sql(", last_at = ");
        out.push_bind_param::<Nullable<Timestamp>, _>(&self.at)?;
        out.push_sql(" WHERE chain_id = ");
        out.push_bind_param::<Text, _>(self.chain_id)?;
        Ok(())
    }
}

impl diesel::RunQueryDsl<diesel::SqliteConnection> for SaveHead<'_> {}

pub fn insert_events(conn: &mut DbConn, rows: &[AuditRow]) -> AppResult<()> {
    match conn {
        DbConn::Postgres(pg) => {
            pg_append::AppendEvents::of(rows).execute(pg)?;
        }
        // In process, no round trips: one single-row statement, prepared once and
        // reused. (A multi-row INSERT is parsed anew for each group size and
        // keeps a statement journal; a single-row one needs neither.)
        DbConn::Sqlite(lite) => {
            for row in rows {
                InsertEvent::of(row).execute(lite)?;
            }
        }
    }
    Ok(())
}

/// SQLite: one event's INSERT, bound value by value from the row. diesel's
/// own insert of a 22-column row walked its values twice per event (once to
/// ask whether the statement may be cached, once to bind), copied each id
/// and hash into a `Vec`, and formatted the time through a format string:
/// together more than the statement's own run in SQLite. Its columns are
/// `with_audit_event_columns`', in their order, as the statement's text.
macro_rules! insert_event {
    (hashed { $($h:ident: $ht:ty,)* } chain { $($c:ident: $ct:ty,)* }) => {
        struct InsertEvent<'a> {
            $($h: <$ht as SqliteBind>::Bound<'a>,)*
            $($c: <$ct as SqliteBind>::Bound<'a>,)*
        }

        impl<'a> InsertEvent<'a> {
            fn of(row: &'a AuditRow) -> InsertEvent<'a> {
                InsertEvent { $($h: row.$h.bound(),)* $($c: row.$c.bound(),)* }
            }
        }

        impl diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for InsertEvent<'_> {
            fn walk_ast<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
            ) -> QueryResult<()> {
                out.push_sql(insert_event_sql());
                let mut separator = "";
                $(
                    out.push_sql(separator);
                    separator = ", ";
                    <$ht as SqliteBind>::push(&self.$h, &mut out)?;
                )*
                $(
                    out.push_sql(separator);
                    <$ct as SqliteBind>::push(&self.$c, &mut out)?;
                )*
                out.push_sql(")");
                Ok(())
            }

            fn is_safe_to_cache_prepared(&self, _: &diesel::sqlite::Sqlite) -> QueryResult<bool> {
                Ok(true)
            }
        }
    };
}
crate::db::models::with_audit_event_columns!(insert_event);

impl diesel::query_builder::QueryId for InsertEvent<'_> {
    type QueryId = InsertEvent<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::RunQueryDsl<diesel::SqliteConnection> for InsertEvent<'_> {}

/// How a column's value is bound in `InsertEvent`: borrowed, as diesel binds
/// it, except a time, which is written out first (`SqliteTime`).
trait SqliteBind {
    type Bound<'a>
    where
        Self: 'a;
    fn bound(&self) -> Self::Bound<'_>;
    fn push<'b>(
        bound: &'b Self::Bound<'_>,
        out: &mut diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()>;
}

macro_rules! bound_as_is {
    ($($t:ty => $st:ty),* $(,)?) => {$(
        impl SqliteBind for $t {
            type Bound<'a> = &'a $t;
            fn bound(&self) -> &$t {
                self
            }
            fn push<'b>(
                bound: &'b &$t,
                out: &mut diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
            ) -> QueryResult<()> {
                out.push_bind_param::<$st, $t>(*bound)
            }
        }
    )*};
}

bound_as_is! {
    String => diesel::sql_types::Text,
    Option<String> => diesel::sql_types::Nullable<diesel::sql_types::Text>,
    i64 => diesel::sql_types::BigInt,
    i32 => diesel::sql_types::Integer,
    Option<Vec<u8>> => diesel::sql_types::Nullable<diesel::sql_types::Binary>,
    crate::domain::event::EventId => diesel::sql_types::Binary,
    crate::crypto::ChainHash => diesel::sql_types::Binary,
    crate::domain::event::Outcome => diesel::sql_types::Text,
    crate::domain::event::ActorType => diesel::sql_types::Text,
    Option<crate::domain::KeyType> => diesel::sql_types::Nullable<diesel::sql_types::Text>,
}

impl SqliteBind for NaiveDateTime {
    type Bound<'a> = crate::db::columns::SqliteTime;
    fn bound(&self) -> crate::db::columns::SqliteTime {
        crate::db::columns::SqliteTime::new(self)
    }
    fn push<'b>(
        bound: &'b crate::db::columns::SqliteTime,
        out: &mut diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> QueryResult<()> {
        out.push_bind_param::<diesel::sql_types::Timestamp, _>(bound)
    }
}

/// `INSERT INTO audit_events (<AUDIT_EVENT_COLUMNS>) VALUES (`: the binds follow.
fn insert_event_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!("INSERT INTO audit_events ({}) VALUES (", crate::db::models::AUDIT_EVENT_COLUMNS.join(", "))
    })
}

/// PostgreSQL: a group's events in one statement whose text does not depend
/// on how many there are, so that it is parsed and planned once per
/// connection. (A multi-row `VALUES` list is a new statement for each group
/// size: parsing and planning it took a quarter of the server's time per group.)
mod pg_append {
    use super::AuditRow;
    use crate::db::models::AUDIT_EVENT_COLUMNS;
    use chrono::NaiveDateTime;
    use diesel::pg::Pg;
    use diesel::query_builder::{AstPass, QueryFragment, QueryId};
    use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamp};
    use diesel::{QueryResult, RunQueryDsl};

    /// A column's values as one array parameter: its element and SQL type.
    trait BatchColumn {
        type Elem<'a>
        where
            Self: 'a;
        type Sql: diesel::sql_types::SqlType + diesel::sql_types::SingleValue;
        fn elem(&self) -> Self::Elem<'_>;
    }

    impl BatchColumn for String {
        type Elem<'a> = &'a str;
        type Sql = Text;
        fn elem(&self) -> &str {
            self
        }
    }

    impl BatchColumn for Option<String> {
        type Elem<'a> = Option<&'a str>;
        type Sql = Nullable<Text>;
        fn elem(&self) -> Option<&str> {
            self.as_deref()
        }
    }

    impl BatchColumn for crate::domain::event::Outcome {
        type Elem<'a> = &'static str;
        type Sql = Text;
        fn elem(&self) -> &'static str {
            self.as_str()
        }
    }

    impl BatchColumn for crate::domain::event::ActorType {
        type Elem<'a> = &'static str;
        type Sql = Text;
        fn elem(&self) -> &'static str {
            self.as_str()
        }
    }

    impl BatchColumn for Option<crate::domain::KeyType> {
        type Elem<'a> = Option<&'static str>;
        type Sql = Nullable<Text>;
        fn elem(&self) -> Option<&'static str> {
            self.map(crate::domain::KeyType::wire_name)
        }
    }

    impl BatchColumn for Option<Vec<u8>> {
        type Elem<'a> = Option<&'a [u8]>;
        type Sql = Nullable<diesel::sql_types::Binary>;
        fn elem(&self) -> Option<&[u8]> {
            self.as_deref()
        }
    }

    impl BatchColumn for crate::domain::event::EventId {
        type Elem<'a> = &'a [u8];
        type Sql = diesel::sql_types::Binary;
        fn elem(&self) -> &[u8] {
            self.as_bytes()
        }
    }

    impl BatchColumn for crate::crypto::ChainHash {
        type Elem<'a> = &'a [u8];
        type Sql = diesel::sql_types::Binary;
        fn elem(&self) -> &[u8] {
            self.as_bytes()
        }
    }

    impl BatchColumn for i64 {
        type Elem<'a> = i64;
        type Sql = BigInt;
        fn elem(&self) -> i64 {
            *self
        }
    }

    impl BatchColumn for i32 {
        type Elem<'a> = i32;
        type Sql = Integer;
        fn elem(&self) -> i32 {
            *self
        }
    }

    impl BatchColumn for NaiveDateTime {
        type Elem<'a> = NaiveDateTime;
        type Sql = Timestamp;
        fn elem(&self) -> NaiveDateTime {
            *self
        }
    }

    /// `INSERT ... SELECT * FROM unnest(<one array per column>)`, columns in the
    /// order of `with_audit_event_columns`.
    static INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("INSERT INTO audit_events ({}) SELECT * FROM unnest(", AUDIT_EVENT_COLUMNS.join(", "))
    });

    macro_rules! append_events {
        (hashed { $($h:ident: $ht:ty,)* } chain { $($c:ident: $ct:ty,)* }) => {
            /// A group's events as one array per column.
            pub struct AppendEvents<'a> {
                $($h: Vec<<$ht as BatchColumn>::Elem<'a>>,)*
                $($c: Vec<<$ct as BatchColumn>::Elem<'a>>,)*
            }

            impl<'a> AppendEvents<'a> {
                pub fn of(rows: &'a [AuditRow]) -> Self {
                    let mut q = AppendEvents {
                        $($h: Vec::with_capacity(rows.len()),)*
                        $($c: Vec::with_capacity(rows.len()),)*
                    };
                    for r in rows {
                        $(q.$h.push(r.$h.elem());)*
                        $(q.$c.push(r.$c.elem());)*
                    }
                    q
                }

                fn push_arrays<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
                    let mut separator = "";
                    $(
                        out.push_sql(separator);
                        out.push_bind_param::<Array<<$ht as BatchColumn>::Sql>, _>(&self.$h)?;
                        separator = ", ";
                    )*
                    $(
                        out.push_sql(separator);
                        out.push_bind_param::<Array<<$ct as BatchColumn>::Sql>, _>(&self.$c)?;
                    )*
                    Ok(())
                }
            }
        };
    }
    crate::db::models::with_audit_event_columns!(append_events);

    impl QueryId for AppendEvents<'_> {
        type QueryId = AppendEvents<'static>;
        // The statement text is the same for every group: cache it as prepared.
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryFragment<Pg> for AppendEvents<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(&INSERT);
            self.push_arrays(&mut out)?;
            out.push_sql(")");
            Ok(())
        }
    }

    /// The same INSERT, only if the chain's head is still at `last_seq`: it
    /// first row-locks the head, as a locked group does, so the two kinds
    /// take their locks in one order and cannot deadlock; a head that moved
    /// meanwhile makes it insert nothing.
    pub struct AppendAfterHead<'a> {
        pub chain_id: &'a str,
        pub last_seq: i64,
        pub events: AppendEvents<'a>,
    }

    impl QueryId for AppendAfterHead<'_> {
        type QueryId = AppendAfterHead<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryFragment<Pg> for AppendAfterHead<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql("WITH head AS (SELECT 1 FROM audit_chains WHERE chain_id = ");
            out.push_bind_param::<Text, _>(self.chain_id)?;
            out.push_sql(" AND last_seq = ");
            out.push_bind_param::<BigInt, _>(&self.last_seq)?;
            out.push_sql(" FOR UPDATE) ");
            out.push_sql(&INSERT);
            self.events.push_arrays(&mut out)?;
            out.push_sql(") WHERE EXISTS (SELECT 1 FROM head)");
            Ok(())
        }
    }

    impl RunQueryDsl<diesel::PgConnection> for AppendAfterHead<'_> {}
    impl RunQueryDsl<diesel::PgConnection> for AppendEvents<'_> {}
}

/// PostgreSQL: appends `rows` (the next events of one chain) in one
/// statement, autocommitted, if the chain's head is still at `last_seq`.
/// False when it was not (another writer appended since): nothing is written.
/// SQLite: always false; its writer always takes the lock.
pub fn append_after_head(conn: &mut DbConn, chain_id: &str, last_seq: i64, rows: &[AuditRow]) -> AppResult<bool> {
    let DbConn::Postgres(pg) = conn else { return Ok(false) };
    let events = pg_append::AppendEvents::of(rows);
    let inserted = pg_append::AppendAfterHead { chain_id, last_seq, events }.execute(pg)?;
    Ok(inserted == rows.len())
}

pub fn chain_ids(conn: &mut DbConn) -> AppResult<Vec<String>> {
    Ok(audit_chains::table.select(audit_chains::chain_id).order(audit_chains::chain_id).load(conn)?)
}

pub fn chain_events_after(conn: &mut DbConn, chain_id: &str, after_seq: i64, limit: i64) -> AppResult<Vec<AuditRow>> {
    Ok(audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after_seq))
        .order(audit_events::seq.asc())
        .limit(limit)
        .load(conn)?)
}

/// The event `event_id` of `chain_id`, if that chain holds it.
pub fn find_chain_event(conn: &mut DbConn, chain_id: &str, event_id: &str) -> AppResult<Option<AuditRow>> {
    let Some(event_id) = crate::domain::event::EventId::parse(event_id) else { return Ok(None) };
    Ok(audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::event_id.eq(event_id))
        .first(conn)
        .optional()?)
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub operation: Option<String>,
    pub key_id: Option<String>,
    pub actor_id: Option<String>,
    pub outcome: Option<crate::domain::event::Outcome>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
}

/// A chain's events after `after_seq` that match `filter`, in sequence order.
///
/// Each filter is an index range in seq order (migration
/// `000011_audit_queries`), and a time window is first turned into a seq
/// range, so a page costs what it returns, however long the chain.
pub fn filtered_events(
    conn: &mut DbConn,
    chain_id: &str,
    filter: &EventFilter,
    after_seq: i64,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    let Some(window) = seq_window(conn, chain_id, filter)? else {
        return matching(conn, chain_id, filter, after_seq, None, limit);
    };
    let mut rows = Vec::new();
    let mut after = after_seq;
    // Events stamped before the chain kept time order: the window is filtered, not found.
    if after + 1 < window.ordered_from {
        rows = matching(conn, chain_id, filter, after, Some(window.ordered_from), limit)?;
        if rows.len() as i64 >= limit {
            return Ok(rows);
        }
        after = window.ordered_from - 1;
    }
    let from = after.max(window.first - 1);
    if from + 1 < window.end {
        rows.extend(matching(conn, chain_id, filter, from, Some(window.end), limit - rows.len() as i64)?);
    }
    Ok(rows)
}

/// The events of `chain_id` with `after < seq < before` that match `filter`.
fn matching(
    conn: &mut DbConn,
    chain_id: &str,
    filter: &EventFilter,
    after: i64,
    before: Option<i64>,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    use crate::domain::event::Outcome;
    use diesel::dsl::sql;
    use diesel::sql_types::Bool;
    // SQLite: the filter's index, not the chain read in order (migration 000011_audit_queries).
    let sqlite = matches!(conn, DbConn::Sqlite(_));
    let indexed = |term: Box<dyn BoxableExpression<audit_events::table, MultiBackend, SqlType = Bool>>| match sqlite {
        true => Box::new(unlikely(term)) as Box<dyn BoxableExpression<_, _, SqlType = Bool>>,
        false => term,
    };
    let mut q = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after))
        .into_boxed();
    if let Some(before) = before {
        q = q.filter(audit_events::seq.lt(before));
    }
    if let Some(v) = &filter.operation {
        q = q.filter(indexed(Box::new(audit_events::operation.eq(v.clone()))));
    }
    if let Some(v) = &filter.key_id {
        q = q.filter(indexed(Box::new(audit_events::key_id.assume_not_null().eq(v.clone()))));
    }
    if let Some(v) = &filter.actor_id {
        q = q.filter(indexed(Box::new(audit_events::actor_id.assume_not_null().eq(v.clone()))));
    }
    if let Some(v) = filter.outcome {
        if v == Outcome::Denied {
            // The partial index's own condition, as written there (a bound value does not select it).
            q = q.filter(sql::<Bool>("outcome = 'DENIED'"));
        }
        q = q.filter(indexed(Box::new(audit_events::outcome.eq(v))));
    }
    if let Some(v) = filter.since {
        q = q.filter(audit_events::occurred_at.ge(v));
    }
    if let Some(v) = filter.until {
        q = q.filter(audit_events::occurred_at.lt(v));
    }
    Ok(q.order(audit_events::seq.asc()).limit(limit).load(conn)?)
}

diesel::define_sql_function! {
    /// SQLite's planner hint that `x` is rarely true.
    fn unlikely(x: diesel::sql_types::Bool) -> diesel::sql_types::Bool;
}

/// A time window as seq positions of a chain: from `ordered_from` on, its
/// events are in time order, and those in the window are the ones with
/// `first <= seq < end`.
struct SeqWindow {
    ordered_from: i64,
    first: i64,
    end: i64,
}

/// None when `filter` has no time window.
fn seq_window(conn: &mut DbConn, chain_id: &str, filter: &EventFilter) -> AppResult<Option<SeqWindow>> {
    if filter.since.is_none() && filter.until.is_none() {
        return Ok(None);
    }
    let chain: Option<(i64, i64)> = audit_chains::table
        .find(chain_id)
        .select((audit_chains::last_seq, audit_chains::ordered_from))
        .get_result(conn)
        .optional()?;
    let Some((last_seq, ordered_from)) = chain else {
        return Ok(Some(SeqWindow { ordered_from: 1, first: 1, end: 1 }));
    };
    let ordered_from = ordered_from.max(1);
    let end_of_chain = last_seq + 1;
    let first = match filter.since {
        Some(t) => first_at_or_after(conn, chain_id, t, ordered_from, end_of_chain)?,
        None => ordered_from,
    };
    let end = match filter.until {
        Some(t) => first_at_or_after(conn, chain_id, t, first, end_of_chain)?,
        None => end_of_chain,
    };
    Ok(Some(SeqWindow { ordered_from, first, end }))
}

/// The first position in `[lo, hi]` such that every event of `chain_id`
/// from `lo` up to it is stamped before `t`: a binary search on the chain's
/// key, O(log n) lookups. Positions need not all hold an event (retention
/// may have moved some out): each probe reads the first event at or after it.
fn first_at_or_after(conn: &mut DbConn, chain_id: &str, t: NaiveDateTime, lo: i64, hi: i64) -> AppResult<i64> {
    let (mut lo, mut hi) = (lo, hi);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let probe: Option<(i64, NaiveDateTime)> = audit_events::table
            .filter(audit_events::chain_id.eq(chain_id))
            .filter(audit_events::seq.ge(mid))
            .filter(audit_events::seq.lt(hi))
            .order(audit_events::seq.asc())
            .select((audit_events::seq, audit_events::occurred_at))
            .first(conn)
            .optional()?;
        match probe {
            Some((seq, at)) if at < t => lo = seq + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::models::{now, to_naive};
    use crate::db::{establish, run_migrations, DbUrl};
    use crate::domain::event::{ActorType, Outcome};
    use crate::domain::KeyType;

    /// Every column a value of its own, so that a bind in the wrong place reads back elsewhere.
    fn distinct_row() -> AuditRow {
        let mut row = AuditRow::sample(1, to_naive(now()), "agent", Some("x"));
        row.operation = "enterprise.key.create".into();
        row.outcome = Outcome::Denied;
        row.reason = Some("reason".into());
        row.actor_type = ActorType::Member;
        row.actor_id = Some("actor".into());
        row.key_id = Some("key".into());
        row.key_type = Some(KeyType::TeamUserMgmt);
        row.key_hint = Some("kw_tum_…abcd".into());
        row.request_id = "req_distinct".into();
        row.client_ip = Some("192.0.2.7".into());
        row.user_agent = Some("Okta SCIM".into());
        row.status_code = 403;
        row.metadata = "{\"m\":1}".into();
        row.payload = Some("{\"p\":2}".into());
        row.prev_hash = crate::crypto::chain_hash(&crate::crypto::ChainHash::GENESIS, b"prev");
        row.hash = crate::crypto::chain_hash(&row.prev_hash, b"this");
        row.tree_hashes = Some(vec![7; 64]);
        row
    }

    #[test]
    fn an_event_inserted_on_sqlite_reads_back_column_for_column() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = establish(&DbUrl::Sqlite(dir.path().join("audit.db"))).unwrap();
        run_migrations(&mut conn).unwrap();
        let mut rows = vec![distinct_row(), distinct_row()];
        rows[1].seq = 2;
        rows[1].event_id = crate::domain::event::EventId::new();
        rows[1].tree_hashes = None;
        rows[1].key_type = None;
        insert_events(&mut conn, &rows).unwrap();
        let read = chain_events_after(&mut conn, "t_1", 0, 10).unwrap();
        assert_eq!(format!("{read:?}"), format!("{rows:?}"));
    }
}
