//! Reading a whole chain, page by page, as the background verifier does.
//!
//! Through diesel every column of every event becomes a value of its own
//! (a `String` per text column, a time parsed by trying chrono's formats),
//! which was most of a full verification's CPU. On SQLite with a file this
//! reader uses a read-only connection of its own (rusqlite), checks each
//! event's columns where SQLite left them, and keeps a page's text and bytes
//! in two buffers, from which the caller borrows each event.
//! A page with anything that reader does not decode as keyward writes it is
//! read again through diesel, so what a page yields never depends on which
//! path read it. PostgreSQL, and SQLite without a file, read through diesel.

use crate::db::models::{
    with_audit_event_columns, with_copied_column_types, AuditRowRef, ColumnRef, AUDIT_EVENT_COLUMNS,
};
use crate::db::DbConn;
use crate::error::{AppError, AppResult};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use rusqlite::types::ValueRef;

/// One chain's events in seq order (see the module's comment).
pub struct ChainReader {
    chain_id: String,
    sqlite: Option<rusqlite::Connection>,
}

/// The one statement a page is read with (prepared once per connection).
fn page_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT {} FROM audit_events WHERE chain_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            AUDIT_EVENT_COLUMNS.join(", ")
        )
    })
}

#[derive(QueryableByName)]
struct DatabaseFile {
    #[diesel(sql_type = diesel::sql_types::Text)]
    file: String,
}

impl ChainReader {
    pub fn open(conn: &mut DbConn, chain_id: &str) -> AppResult<ChainReader> {
        let sqlite = match conn {
            DbConn::Sqlite(c) => {
                let file = diesel::sql_query("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .get_result::<DatabaseFile>(c)
                    .optional()?
                    .map(|d| d.file)
                    .filter(|f| !f.is_empty());
                match file {
                    // A temporary or in-memory database is not reachable from another connection.
                    None => None,
                    Some(file) => Some(open_read_only(&file)?),
                }
            }
            DbConn::Postgres(_) => None,
        };
        Ok(ChainReader { chain_id: chain_id.to_string(), sqlite })
    }

    /// The (at most `limit`) events after `after_seq`, in seq order.
    pub fn page(&mut self, conn: &mut DbConn, after_seq: i64, limit: i64) -> AppResult<EventPage> {
        if let Some(sqlite) = &self.sqlite {
            if let Some(page) =
                read_page(sqlite, &self.chain_id, after_seq, limit).map_err(|e| AppError::unavailable().caused_by(e))?
            {
                return Ok(page);
            }
        }
        let mut page = EventPage::default();
        for row in super::chain_events_after(conn, &self.chain_id, after_seq, limit)? {
            page.push(row.as_ref());
        }
        Ok(page)
    }
}

/// A page of events, owned: their text in one buffer and their bytes in
/// another (not a `String` per column), so that it can go to another thread,
/// which makes each event's canonical bytes from the rows it lends.
#[derive(Default)]
pub struct EventPage {
    buffers: Buffers,
    rows: Vec<KeptRow>,
}

#[derive(Default)]
struct Buffers {
    text: String,
    bytes: Vec<u8>,
}

impl EventPage {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The events, borrowed from the page, in seq order.
    pub fn rows(&self) -> impl Iterator<Item = AuditRowRef<'_>> + '_ {
        (0..self.rows.len()).map(|i| self.row(i))
    }

    pub fn last(&self) -> Option<AuditRowRef<'_>> {
        self.len().checked_sub(1).map(|i| self.row(i))
    }
}

macro_rules! event_page {
    (hashed { $($h:ident: $ht:ty,)* } chain { $($c:ident: $ct:ty,)* }) => {
        /// An event of a page: where its text and bytes are in the page's buffers.
        #[derive(Clone, Copy)]
        struct KeptRow {
            $($h: <$ht as Kept>::Slot,)*
            $($c: <$ct as Kept>::Slot,)*
        }

        impl EventPage {
            fn push(&mut self, row: AuditRowRef<'_>) {
                let b = &mut self.buffers;
                let kept = KeptRow { $($h: <$ht as Kept>::keep(row.$h, b),)* $($c: <$ct as Kept>::keep(row.$c, b),)* };
                self.rows.push(kept);
            }

            pub fn row(&self, i: usize) -> AuditRowRef<'_> {
                let (kept, b) = (&self.rows[i], &self.buffers);
                AuditRowRef { $($h: <$ht as Kept>::get(kept.$h, b),)* $($c: <$ct as Kept>::get(kept.$c, b),)* }
            }
        }
    };
}
with_audit_event_columns!(event_page);

/// How a column's value is kept in a page: text and bytes as ranges of its buffers.
trait Kept: ColumnRef {
    type Slot: Copy;
    fn keep(value: Self::Ref<'_>, buffers: &mut Buffers) -> Self::Slot;
    fn get(slot: Self::Slot, buffers: &Buffers) -> Self::Ref<'_>;
}

impl Kept for String {
    type Slot = (usize, usize);
    fn keep(value: &str, buffers: &mut Buffers) -> (usize, usize) {
        let start = buffers.text.len();
        buffers.text.push_str(value);
        (start, buffers.text.len())
    }
    fn get((from, to): (usize, usize), buffers: &Buffers) -> &str {
        &buffers.text[from..to]
    }
}

impl Kept for Option<String> {
    type Slot = Option<(usize, usize)>;
    fn keep(value: Option<&str>, buffers: &mut Buffers) -> Self::Slot {
        value.map(|v| String::keep(v, buffers))
    }
    fn get(slot: Self::Slot, buffers: &Buffers) -> Option<&str> {
        slot.map(|s| String::get(s, buffers))
    }
}

impl Kept for Option<Vec<u8>> {
    type Slot = Option<(usize, usize)>;
    fn keep(value: Option<&[u8]>, buffers: &mut Buffers) -> Self::Slot {
        value.map(|v| {
            let start = buffers.bytes.len();
            buffers.bytes.extend_from_slice(v);
            (start, buffers.bytes.len())
        })
    }
    fn get(slot: Self::Slot, buffers: &Buffers) -> Option<&[u8]> {
        slot.map(|(from, to)| &buffers.bytes[from..to])
    }
}

macro_rules! kept_as_is {
    ($($t:ty),*) => {$(
        impl Kept for $t {
            type Slot = $t;
            fn keep(value: $t, _: &mut Buffers) -> $t {
                value
            }
            fn get(slot: $t, _: &Buffers) -> $t {
                slot
            }
        }
    )*};
}
with_copied_column_types!(kept_as_is);

fn open_read_only(file: &str) -> AppResult<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = rusqlite::Connection::open_with_flags(file, flags).map_err(|e| AppError::unavailable().caused_by(e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| AppError::unavailable().caused_by(e))?;
    // Pages mapped rather than copied in by read(): the reader goes through the whole table.
    conn.pragma_update(None, "mmap_size", 1i64 << 30).map_err(|e| AppError::unavailable().caused_by(e))?;
    Ok(conn)
}

/// One page, or None if an event in it is not stored as keyward writes it.
fn read_page(
    conn: &rusqlite::Connection,
    chain_id: &str,
    after_seq: i64,
    limit: i64,
) -> rusqlite::Result<Option<EventPage>> {
    let mut statement = conn.prepare_cached(page_sql())?;
    let mut rows = statement.query(rusqlite::params![chain_id, after_seq, limit])?;
    let mut page = EventPage::default();
    page.rows.reserve(limit.clamp(0, 10_000) as usize);
    while let Some(row) = rows.next()? {
        match decode(row)? {
            Some(event) => page.push(event),
            None => return Ok(None),
        }
    }
    Ok(Some(page))
}

macro_rules! decode_row {
    (hashed { $($h:ident: $ht:ty,)* } chain { $($c:ident: $ct:ty,)* }) => {
        /// The row's columns, borrowed, in the order of `AUDIT_EVENT_COLUMNS`.
        fn decode<'r>(row: &'r rusqlite::Row<'_>) -> rusqlite::Result<Option<AuditRowRef<'r>>> {
            let mut at = 0;
            $(let Some($h) = next_column::<<$ht as ColumnRef>::Ref<'r>>(row, &mut at)? else { return Ok(None) };)*
            $(let Some($c) = next_column::<<$ct as ColumnRef>::Ref<'r>>(row, &mut at)? else { return Ok(None) };)*
            Ok(Some(AuditRowRef { $($h,)* $($c,)* }))
        }
    };
}
with_audit_event_columns!(decode_row);

/// Column `*at` of `row`, if stored as keyward stores it; `*at` moves on.
fn next_column<'r, T: Stored<'r>>(row: &'r rusqlite::Row<'_>, at: &mut usize) -> rusqlite::Result<Option<T>> {
    let value = row.get_ref(*at)?;
    *at += 1;
    Ok(T::read(value))
}

/// A column's value from SQLite's, if stored as keyward stores it.
trait Stored<'a>: Sized {
    fn read(value: ValueRef<'a>) -> Option<Self>;
}

impl<'a> Stored<'a> for &'a str {
    fn read(value: ValueRef<'a>) -> Option<Self> {
        match value {
            ValueRef::Text(text) => std::str::from_utf8(text).ok(),
            _ => None,
        }
    }
}

impl<'a> Stored<'a> for i64 {
    fn read(value: ValueRef<'a>) -> Option<Self> {
        match value {
            ValueRef::Integer(n) => Some(n),
            _ => None,
        }
    }
}

impl<'a> Stored<'a> for i32 {
    fn read(value: ValueRef<'a>) -> Option<Self> {
        i64::read(value).and_then(|n| i32::try_from(n).ok())
    }
}

impl<'a> Stored<'a> for &'a [u8] {
    fn read(value: ValueRef<'a>) -> Option<Self> {
        match value {
            ValueRef::Blob(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// NULL is None; anything else must read as the value.
impl<'a, T: Stored<'a>> Stored<'a> for Option<T> {
    fn read(value: ValueRef<'a>) -> Option<Self> {
        match value {
            ValueRef::Null => Some(None),
            v => T::read(v).map(Some),
        }
    }
}

impl<'a> Stored<'a> for NaiveDateTime {
    fn read(value: ValueRef<'a>) -> Option<Self> {
        parse_stored_time(<&str>::read(value)?)
    }
}

macro_rules! stored_via {
    ($t:ty, $from:ty, $parse:expr) => {
        impl<'a> Stored<'a> for $t {
            fn read(value: ValueRef<'a>) -> Option<Self> {
                <$from>::read(value).and_then($parse)
            }
        }
    };
}
stored_via!(crate::domain::event::EventId, &[u8], crate::domain::event::EventId::from_bytes);
stored_via!(crate::crypto::ChainHash, &[u8], crate::crypto::ChainHash::from_bytes);
stored_via!(crate::domain::event::Outcome, &str, crate::domain::event::Outcome::parse);
stored_via!(crate::domain::event::ActorType, &str, crate::domain::event::ActorType::parse);
stored_via!(crate::domain::KeyType, &str, crate::domain::KeyType::from_wire);

/// `YYYY-MM-DD HH:MM:SS` with an optional fraction of 1 to 9 digits: what
/// diesel writes for a time on SQLite. Anything else is None (diesel reads it).
fn parse_stored_time(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            digits(20, b.len())? * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(digits(0, 4)? as i32, digits(5, 7)?, digits(8, 10)?)?;
    date.and_hms_nano_opt(digits(11, 13)?, digits(14, 16)?, digits(17, 19)?, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::models::AuditRow;
    use crate::db::schema::audit_events;

    fn event(seq: i64, text: &str, optional: Option<&str>) -> AuditRow {
        let at = chrono::DateTime::from_timestamp_micros(1_764_000_000_123_456 + seq).unwrap().naive_utc();
        AuditRow::sample(seq, at, text, optional)
    }

    /// What the reader hands out, as text: every field, whichever path read it.
    fn read_all(reader: &mut ChainReader, conn: &mut DbConn) -> AppResult<Vec<String>> {
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = reader.page(conn, after, 2)?;
            let Some(last) = page.last() else { return Ok(seen) };
            after = last.seq;
            seen.extend(page.rows().map(|row| format!("{row:?}")));
        }
    }

    #[test]
    fn the_reader_hands_out_what_diesel_reads_and_leaves_it_what_it_does_not_decode() {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::db::DbUrl::parse(&format!("sqlite://{}", dir.path().join("log.db").display())).unwrap();
        let mut conn = crate::db::establish(&url).unwrap();
        crate::db::run_migrations(&mut conn).unwrap();
        let texts = ["plain", "quote \" backslash \\", "ünïcödé ✓ 🔑", "", "\u{1}"];
        let rows: Vec<AuditRow> =
            (1..=10).map(|seq| event(seq, texts[seq as usize % texts.len()], (seq % 2 == 0).then_some("x"))).collect();
        for row in &rows {
            diesel::insert_into(audit_events::table).values(row).execute(&mut conn).unwrap();
        }
        let through_diesel = |conn: &mut DbConn| -> Vec<String> {
            super::super::chain_events_after(conn, "t_1", 0, 100)
                .unwrap()
                .iter()
                .map(|r| format!("{:?}", r.as_ref()))
                .collect()
        };

        let mut reader = ChainReader::open(&mut conn, "t_1").unwrap();
        assert!(reader.sqlite.is_some(), "a file database is read in place");
        assert_eq!(read_all(&mut reader, &mut conn).unwrap(), through_diesel(&mut conn));

        // Forms keyward never writes but diesel reads: that page goes through diesel, alike.
        for edit in [
            "UPDATE audit_events SET occurred_at = '2026-11-22 14:07:10.5Z' WHERE seq = 3",
            "UPDATE audit_events SET tree_hashes = CAST(tree_hashes AS TEXT) WHERE seq = 5",
            "UPDATE audit_events SET event_id = CAST(event_id AS TEXT) WHERE seq = 7",
        ] {
            diesel::sql_query(edit).execute(&mut conn).unwrap();
            assert_eq!(read_all(&mut reader, &mut conn).unwrap(), through_diesel(&mut conn), "{edit}");
        }
        // What diesel cannot read either is an error, not an event.
        diesel::sql_query("UPDATE audit_events SET outcome = 'MAYBE' WHERE seq = 9").execute(&mut conn).unwrap();
        assert!(read_all(&mut reader, &mut conn).is_err());
    }

    #[test]
    fn stored_times_read_as_diesel_reads_them() {
        for text in [
            "2026-11-22 14:07:10.123456",
            "2026-01-01 00:00:00",
            "1999-12-31 23:59:59.9",
            "0001-01-01 00:00:00.000000001",
            "2024-02-29 12:00:00.5",
        ] {
            let diesel = NaiveDateTime::parse_from_str(text, "%F %T%.f").unwrap();
            assert_eq!(parse_stored_time(text), Some(diesel), "{text}");
        }
        // Not as diesel writes it: left to diesel, which knows every form it reads.
        for text in [
            "2026-11-22T14:07:10",
            "2026-11-22 14:07:10.",
            "2026-11-22 14:07:10.1234567890",
            "2026-11-22 14:07:10Z",
            "2026-13-01 00:00:00",
            "2026-02-30 00:00:00",
            "2026-11-22 24:00:00",
            "2026-11-2x 14:07:10",
            "",
        ] {
            assert_eq!(parse_stored_time(text), None, "{text}");
        }
    }
}
