//! Retention rules: which recovery points of one group a policy keeps, and which rule kept each (issue 6).
//!
//! The rules are restic's, which borg's match: points are taken newest first; `last` keeps the N newest; each
//! calendar rule (hourly, daily, weekly, monthly, yearly) keeps the newest point of each of the N most recent
//! periods that have a point; `within` keeps every point no older than the newest point minus the duration; `tags`
//! keeps every point carrying one of the tags. A point is kept if any rule keeps it. Periods are UTC calendar
//! periods (weeks are ISO weeks), so a decision does not depend on the machine's time zone.

use crate::span::CalSpan;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// A retention policy; a count of 0 turns its rule off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    /// Keep points at most this much older than the newest one.
    pub within: Option<CalSpan>,
    pub tags: Vec<String>,
}

impl Policy {
    /// True if no rule would keep anything: applying such a policy would remove every point, which is refused.
    pub fn is_empty(&self) -> bool {
        let counts = [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ];
        counts.iter().all(|&n| n == 0) && self.within.is_none() && self.tags.is_empty()
    }
}

/// One point as the rules see it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub time: Timestamp,
    pub tags: Vec<String>,
}

/// The decision on one point: kept when `reasons` is not empty, each reason naming the rule and its period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetentionError {
    #[error("the policy keeps nothing: give at least one --keep-* rule")]
    EmptyPolicy,
}

/// Decides every point of one group; the result is in the order of `points`.
pub fn decide(policy: &Policy, points: &[Candidate]) -> Result<Vec<Decision>, RetentionError> {
    if policy.is_empty() {
        return Err(RetentionError::EmptyPolicy);
    }
    let mut order: Vec<usize> = (0..points.len()).collect();
    // Newest first; equal times keep their given order.
    order.sort_by(|&a, &b| points[b].time.cmp(&points[a].time));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); points.len()];
    for (rank, &i) in order.iter().enumerate().take(policy.last as usize) {
        reasons[i].push(format!("last {}", rank + 1));
    }
    for period in Period::ALL {
        let wanted = period.count(policy) as usize;
        let mut seen: Vec<String> = Vec::new();
        for &i in &order {
            if seen.len() == wanted {
                break;
            }
            let key = period.key(points[i].time);
            if seen.last() != Some(&key) {
                reasons[i].push(format!("{} {key}", period.name()));
                seen.push(key);
            }
        }
    }
    if let (Some(span), Some(&newest)) = (policy.within, order.first()) {
        // From the newest point, but never from the future: one point dated ahead (a wrong clock) must not make
        // every real point look old.
        let since = span.before(points[newest].time.min(Timestamp::now()));
        for &i in &order {
            if points[i].time >= since {
                reasons[i].push(format!("within {span} of the newest"));
            }
        }
    }
    for (i, p) in points.iter().enumerate() {
        if let Some(t) = p.tags.iter().find(|t| policy.tags.contains(t)) {
            reasons[i].push(format!("tag {t}"));
        }
    }
    Ok(reasons
        .into_iter()
        .map(|r| Decision {
            keep: !r.is_empty(),
            reasons: r,
        })
        .collect())
}

#[derive(Clone, Copy)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    const ALL: [Period; 5] = [Period::Hour, Period::Day, Period::Week, Period::Month, Period::Year];

    fn count(self, p: &Policy) -> u32 {
        match self {
            Period::Hour => p.hourly,
            Period::Day => p.daily,
            Period::Week => p.weekly,
            Period::Month => p.monthly,
            Period::Year => p.yearly,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }

    /// The UTC calendar period holding `t`, as printable text.
    fn key(self, t: Timestamp) -> String {
        let z = t.to_zoned_datetime(TimeZone::UTC);
        match self {
            Period::Hour => format!("{}T{:02}", z.date(), z.hour()),
            Period::Day => z.date().to_string(),
            Period::Week => {
                let w = z.date().iso_week_date();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Period::Month => format!("{}-{:02}", z.year(), z.month()),
            Period::Year => z.year().to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
