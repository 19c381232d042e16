//! The audit log: chain heads, appending events, reading them back.

use crate::db::models::AuditRow;
use crate::db::schema::{audit_chains, audit_events};
use crate::db::DbConn;
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

/// Loads and (on PostgreSQL) row-locks the heads of the given chains, in the
/// order given (sorted by the caller, so concurrent writers cannot deadlock).
/// The lock also serializes every change of a tenant across instances.
pub fn lock_chain_heads(conn: &mut DbConn, chain_ids: &[String]) -> AppResult<BTreeMap<String, (i64, String)>> {
    match conn {
        DbConn::Postgres(pg) => {
            let rows: Vec<(String, i64, String)> = audit_chains::table
                .filter(audit_chains::chain_id.eq_any(chain_ids))
                .order(audit_chains::chain_id)
                .select((audit_chains::chain_id, audit_chains::last_seq, audit_chains::last_hash))
                .for_update()
                .load(pg)?;
            Ok(rows.into_iter().map(|(id, seq, hash)| (id, (seq, hash))).collect())
        }
        // SQLite has one writer at a time: the transaction itself is the lock.
        // One lookup per chain (usually one or two): a statement prepared once.
        DbConn::Sqlite(_) => {
            let mut heads = BTreeMap::new();
            for id in chain_ids {
                if let Some(head) = load_chain_head(conn, id)? {
                    heads.insert(id.clone(), head);
                }
            }
            Ok(heads)
        }
    }
}

pub fn load_chain_head(conn: &mut DbConn, chain_id: &str) -> AppResult<Option<(i64, String)>> {
    Ok(audit_chains::table
        .find(chain_id)
        .select((audit_chains::last_seq, audit_chains::last_hash))
        .first(conn)
        .optional()?)
}

/// Moves the chain heads to the group's last events. On PostgreSQL the
/// inserts already did (statement trigger, migration `000005_chain_head_trigger`:
/// one round trip less per group while the heads are locked).
pub fn save_chain_heads(conn: &mut DbConn, heads: &BTreeMap<String, (i64, String)>) -> AppResult<()> {
    let DbConn::Sqlite(lite) = conn else { return Ok(()) };
    for (chain_id, (seq, hash)) in heads {
        diesel::update(audit_chains::table.find(chain_id))
            .set((audit_chains::last_seq.eq(seq), audit_chains::last_hash.eq(hash)))
            .execute(lite)?;
    }
    Ok(())
}

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
                diesel::insert_into(audit_events::table).values(row).execute(lite)?;
            }
        }
    }
    Ok(())
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
pub fn filtered_events(
    conn: &mut DbConn,
    chain_id: &str,
    filter: &EventFilter,
    after_seq: i64,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    let mut q = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after_seq))
        .into_boxed();
    if let Some(v) = &filter.operation {
        q = q.filter(audit_events::operation.eq(v.clone()));
    }
    if let Some(v) = &filter.key_id {
        q = q.filter(audit_events::key_id.eq(v.clone()));
    }
    if let Some(v) = &filter.actor_id {
        q = q.filter(audit_events::actor_id.eq(v.clone()));
    }
    if let Some(v) = &filter.outcome {
        q = q.filter(audit_events::outcome.eq(v.clone()));
    }
    if let Some(v) = filter.since {
        q = q.filter(audit_events::occurred_at.ge(v));
    }
    if let Some(v) = filter.until {
        q = q.filter(audit_events::occurred_at.lt(v));
    }
    Ok(q.order(audit_events::seq.asc()).limit(limit).load(conn)?)
}
