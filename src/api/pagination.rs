//! Offset pagination for entity lists and opaque cursors for event feeds.

use crate::error::{AppError, AppResult};

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

pub fn limit(raw: Option<i64>) -> AppResult<i64> {
    let limit = raw.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    Ok(limit)
}

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    pub fn new(limit_raw: Option<i64>, offset: Option<i64>) -> AppResult<Page> {
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(AppError::invalid("offset must be 0 or more"));
        }
        Ok(Page { limit: limit(limit_raw)?, offset })
    }

    pub fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = (self.offset as usize).min(items.len());
        let end = start.saturating_add(self.limit as usize).min(items.len());
        &items[start..end]
    }
}

const CURSOR_VERSION: &str = "v1:";

/// An opaque cursor: the position after which the next page starts.
pub fn encode_cursor(after_seq: i64) -> String {
    crate::crypto::hex(format!("{CURSOR_VERSION}{after_seq}").as_bytes())
}

pub fn decode_cursor(cursor: &str) -> AppResult<i64> {
    let bad = || AppError::invalid("cursor is not valid; pass back a next_cursor exactly as received");
    if cursor.len() > 64 || cursor.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> =
        (0..cursor.len()).step_by(2).map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok()).collect();
    let text = String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())?;
    let seq = text.strip_prefix(CURSOR_VERSION).and_then(|n| n.parse::<i64>().ok()).ok_or_else(bad)?;
    if seq < 0 {
        return Err(bad());
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        for seq in [0, 1, 42, i64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(seq)).unwrap(), seq);
        }
        for bad in ["", "zz", "abc", "763a2d31", &"a".repeat(100), "7631"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_clamp_to_the_list() {
        let items: Vec<i32> = (0..10).collect();
        assert_eq!(Page::new(Some(3), Some(8)).unwrap().slice(&items), &[8, 9]);
        assert!(Page::new(Some(3), Some(20)).unwrap().slice(&items).is_empty());
        assert!(Page::new(Some(0), None).is_err());
        assert!(Page::new(Some(1001), None).is_err());
        assert!(Page::new(None, Some(-1)).is_err());
    }
}
