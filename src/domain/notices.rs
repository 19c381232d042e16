//! Key lifecycle notices: a tenant's expiry thresholds
//! (`key_expiry_notice_days`) and which notice a key is due, given those
//! it already got. Each notice is sent once per key and kind (see the
//! `key_notices` table); the job that sends them is `audit::notices`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The days before a key's expiry at which its tenant is told, largest
/// first; empty: no notices at all (expired ones included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NoticeDays(Vec<u16>);

impl Default for NoticeDays {
    /// Two weeks ahead, and the day before.
    fn default() -> Self {
        NoticeDays(vec![14, 1])
    }
}

impl NoticeDays {
    pub const MAX_THRESHOLDS: usize = 5;
    pub const MAX_DAYS: i64 = 365;

    /// The thresholds as given to the policy: at most five distinct whole
    /// days, each 1 to 365, in any order.
    pub fn parse(days: &[i64]) -> Result<NoticeDays, String> {
        let rule = "key_expiry_notice_days must be a list of at most 5 distinct whole days, each 1 to 365 ([] turns notices off)";
        if days.len() > Self::MAX_THRESHOLDS || days.iter().any(|d| !(1..=Self::MAX_DAYS).contains(d)) {
            return Err(rule.into());
        }
        let mut sorted: Vec<u16> = days.iter().map(|&d| d as u16).collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.dedup();
        if sorted.len() != days.len() {
            return Err(rule.into());
        }
        Ok(NoticeDays(sorted))
    }

    /// As stored (`[14,1]`); text that is not a valid list reads as None (a read error).
    pub fn from_json(text: &str) -> Option<NoticeDays> {
        let days: Vec<i64> = serde_json::from_str(text).ok()?;
        NoticeDays::parse(&days).ok()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a list of numbers")
    }

    /// No notices.
    pub fn off() -> NoticeDays {
        NoticeDays(Vec::new())
    }

    pub fn is_off(&self) -> bool {
        self.0.is_empty()
    }

    pub fn days(&self) -> &[u16] {
        &self.0
    }

    /// The largest threshold: keys expiring later than this from now are not due anything yet.
    pub fn horizon(&self) -> Option<Duration> {
        self.0.first().map(|d| Duration::days(i64::from(*d)))
    }
}

/// One notice a key can get, as `key_notices.kind` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeKind {
    /// `expiring:<days>`: the key expires within this many days.
    Expiring(u16),
    Expired,
}

impl NoticeKind {
    pub fn as_string(self) -> String {
        match self {
            NoticeKind::Expiring(days) => format!("expiring:{days}"),
            NoticeKind::Expired => "expired".into(),
        }
    }

    pub fn parse(s: &str) -> Option<NoticeKind> {
        if s == "expired" {
            return Some(NoticeKind::Expired);
        }
        let days: u16 = s.strip_prefix("expiring:")?.parse().ok()?;
        (days.to_string() == s["expiring:".len()..]).then_some(NoticeKind::Expiring(days))
    }
}

/// The notice a key is due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// One `enterprise.key.expiring` event for `threshold`, the smallest
    /// threshold crossed; `record` holds every crossed threshold not yet
    /// recorded (`threshold` first), so none of them is sent later.
    Expiring { threshold: u16, record: Vec<NoticeKind> },
    /// One `enterprise.key.expired` event.
    Expired,
}

impl Due {
    /// The kinds to record, the event's own first: the first one's insert decides whether the event is written.
    pub fn kinds(&self) -> Vec<NoticeKind> {
        match self {
            Due::Expiring { record, .. } => record.clone(),
            Due::Expired => vec![NoticeKind::Expired],
        }
    }
}

/// Whole days left until `expires_at` (0 on its last day, negative once past).
pub fn days_left(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (expires_at - now).num_days()
}

/// What a live key expiring at `expires_at` is due at `now`, under `days`,
/// having got `sent` already. A threshold smaller than the one crossed and
/// already sent makes the larger ones moot: they are not sent late.
pub fn due(days: &NoticeDays, expires_at: DateTime<Utc>, now: DateTime<Utc>, sent: &[NoticeKind]) -> Option<Due> {
    if days.is_off() {
        return None;
    }
    if expires_at <= now {
        return (!sent.contains(&NoticeKind::Expired)).then_some(Due::Expired);
    }
    let left = expires_at - now;
    let crossed: Vec<u16> = days.days().iter().copied().filter(|d| left <= Duration::days(i64::from(*d))).collect();
    let smallest = *crossed.iter().min()?;
    if sent.contains(&NoticeKind::Expiring(smallest)) {
        return None;
    }
    let mut record: Vec<NoticeKind> = crossed
        .iter()
        .map(|d| NoticeKind::Expiring(*d))
        .filter(|k| !sent.contains(k) && *k != NoticeKind::Expiring(smallest))
        .collect();
    record.insert(0, NoticeKind::Expiring(smallest));
    Some(Due::Expiring { threshold: smallest, record })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days: i64, hours: i64) -> (DateTime<Utc>, DateTime<Utc>) {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        (now + Duration::days(days) + Duration::hours(hours), now)
    }

    #[test]
    fn thresholds_are_one_to_five_distinct_days_of_1_to_365() {
        assert_eq!(NoticeDays::default().days(), &[14, 1]);
        assert_eq!(NoticeDays::parse(&[1, 30, 7]).unwrap().days(), &[30, 7, 1]);
        assert!(NoticeDays::parse(&[]).unwrap().is_off());
        assert_eq!(NoticeDays::parse(&[365, 1, 2, 3, 4]).unwrap().days().len(), 5);
        for bad in [&[0][..], &[366], &[-1], &[1, 1], &[1, 2, 3, 4, 5, 6], &[i64::MAX], &[i64::MIN]] {
            assert!(NoticeDays::parse(bad).is_err(), "{bad:?}");
        }
        let stored = NoticeDays::parse(&[7, 30]).unwrap();
        assert_eq!(stored.to_json(), "[30,7]");
        assert_eq!(NoticeDays::from_json(&stored.to_json()), Some(stored));
        for damaged in ["", "[0]", "{}", "[1.5]", "\"14\""] {
            assert_eq!(NoticeDays::from_json(damaged), None, "{damaged}");
        }
    }

    #[test]
    fn kinds_read_back() {
        for k in [NoticeKind::Expiring(14), NoticeKind::Expiring(1), NoticeKind::Expired] {
            assert_eq!(NoticeKind::parse(&k.as_string()), Some(k));
        }
        for bad in ["expiring:", "expiring:x", "expiring:+1", "expiring:01", "EXPIRED", "expiring:99999"] {
            assert_eq!(NoticeKind::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_key_gets_the_smallest_crossed_threshold_once() {
        let days = NoticeDays::default();
        let (exp, now) = at(20, 0);
        assert_eq!(due(&days, exp, now, &[]), None, "not within 14 days yet");
        // Created with 10 days left: one 14-notice, not a 1-notice.
        let (exp, now) = at(10, 0);
        let first = due(&days, exp, now, &[]).unwrap();
        assert_eq!(first, Due::Expiring { threshold: 14, record: vec![NoticeKind::Expiring(14)] });
        assert_eq!(due(&days, exp, now, &first.kinds()), None, "once");
        // Exactly 14 days left counts as within 14 days.
        let (exp, now) = at(14, 0);
        assert_eq!(due(&days, exp, now, &[]).map(|d| d.kinds()), Some(vec![NoticeKind::Expiring(14)]));
        // Down across both thresholds: only the 1-notice, and the 14 is recorded with it.
        let (exp, now) = at(0, 5);
        let late = due(&days, exp, now, &[]).unwrap();
        assert_eq!(
            late,
            Due::Expiring { threshold: 1, record: vec![NoticeKind::Expiring(1), NoticeKind::Expiring(14)] }
        );
        assert_eq!(due(&days, exp, now, &late.kinds()), None);
        // With the 14 sent, the 1 comes later on its own.
        assert_eq!(
            due(&days, exp, now, &[NoticeKind::Expiring(14)]),
            Some(Due::Expiring { threshold: 1, record: vec![NoticeKind::Expiring(1)] })
        );
        // A threshold added after a smaller one was sent is not sent late.
        let wider = NoticeDays::parse(&[30, 14, 1]).unwrap();
        assert_eq!(due(&wider, exp, now, &[NoticeKind::Expiring(1), NoticeKind::Expiring(14)]), None);
    }

    #[test]
    fn an_expired_key_gets_one_expired_notice_and_off_means_none() {
        let days = NoticeDays::default();
        let (exp, now) = at(0, -1);
        assert_eq!(due(&days, exp, now, &[NoticeKind::Expiring(1)]), Some(Due::Expired));
        assert_eq!(due(&days, exp, now, &[NoticeKind::Expired]), None);
        let off = NoticeDays::parse(&[]).unwrap();
        assert_eq!(due(&off, exp, now, &[]), None);
        let (soon, now) = at(0, 1);
        assert_eq!(due(&off, soon, now, &[]), None);
        assert_eq!(days_left(soon, now), 0);
        assert_eq!(days_left(at(10, 0).0, now), 10);
    }
}
