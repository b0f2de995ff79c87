//! Calendar durations as users type them: `30d`, `12h`, `2w`, `1y6m` (years, months, weeks, days, hours).
//!
//! Used by `--keep-within`, `--since` and the soft-delete window. Like restic's `--keep-within`, months and years are
//! calendar units: "1m before March 31" is February 28 (or 29), not 30 days before.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A calendar duration. The default (all zero) is an empty span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalSpan {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a duration: write a number and a unit, e.g. 30d, 12h, 2w, 1y6m (units y m w d h)")]
pub struct SpanError(pub String);

impl CalSpan {
    pub fn days(days: u32) -> CalSpan {
        CalSpan {
            days,
            ..CalSpan::default()
        }
    }

    /// The instant this span before `t` (UTC calendar arithmetic; clamps at the earliest representable time).
    pub fn before(&self, t: Timestamp) -> Timestamp {
        self.shift(t, -1)
    }

    /// The instant this span after `t`.
    pub fn after(&self, t: Timestamp) -> Timestamp {
        self.shift(t, 1)
    }

    fn shift(&self, t: Timestamp, sign: i64) -> Timestamp {
        let span = (sign * i64::from(self.years))
            .years()
            .months(sign * i64::from(self.months))
            .days(sign * i64::from(self.days))
            .hours(sign * i64::from(self.hours));
        let z = t.to_zoned_datetime(TimeZone::UTC);
        match z.checked_add(span) {
            Ok(z) => z.timestamp(),
            Err(_) if sign < 0 => Timestamp::MIN,
            Err(_) => Timestamp::MAX,
        }
    }

    /// Is this span at least as long as `other` from every starting point? (Compared as a maximum length: a month
    /// counts 28 days and a year 365 on the left, 31 and 366 on the right, so "yes" is always true.)
    pub fn at_least(&self, other: &CalSpan) -> bool {
        let min_hours =
            |s: &CalSpan| (s.years as u64 * 365 + s.months as u64 * 28 + s.days as u64) * 24 + s.hours as u64;
        let max_hours =
            |s: &CalSpan| (s.years as u64 * 366 + s.months as u64 * 31 + s.days as u64) * 24 + s.hours as u64;
        self == other || min_hours(self) >= max_hours(other)
    }
}

impl FromStr for CalSpan {
    type Err = SpanError;

    fn from_str(s: &str) -> Result<CalSpan, SpanError> {
        let bad = || SpanError(s.to_string());
        let mut span = CalSpan::default();
        let mut digits = String::new();
        let mut seen = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: u32 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            if seen.contains(c) {
                return Err(bad());
            }
            seen.push(c);
            let slot = match c {
                'y' => &mut span.years,
                'm' => &mut span.months,
                'd' => &mut span.days,
                'h' => &mut span.hours,
                'w' => {
                    span.days = span
                        .days
                        .checked_add(n.checked_mul(7).ok_or_else(bad)?)
                        .ok_or_else(bad)?;
                    continue;
                }
                _ => return Err(bad()),
            };
            *slot = slot.checked_add(n).ok_or_else(bad)?;
        }
        if !digits.is_empty() || seen.is_empty() {
            return Err(bad());
        }
        Ok(span)
    }
}

impl fmt::Display for CalSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ];
        let mut any = false;
        for (n, unit) in parts.into_iter().filter(|(n, _)| *n > 0) {
            write!(f, "{n}{unit}")?;
            any = true;
        }
        if !any {
            write!(f, "0d")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let s: CalSpan = "1y6m2w3d4h".parse().unwrap();
        assert_eq!(
            s,
            CalSpan {
                years: 1,
                months: 6,
                days: 17,
                hours: 4
            }
        );
        assert_eq!(s.to_string(), "1y6m17d4h");
        assert_eq!("30d".parse::<CalSpan>().unwrap(), CalSpan::days(30));
        for bad in ["", "30", "d", "3x", "1d2d", "-1d", "1.5d", "99999999999d", "1 d"] {
            assert_eq!(bad.parse::<CalSpan>(), Err(SpanError(bad.into())), "{bad:?}");
        }
    }

    #[test]
    fn calendar_arithmetic() {
        let m: CalSpan = "1m".parse().unwrap();
        assert_eq!(m.before(ts("2026-03-31T12:00:00Z")), ts("2026-02-28T12:00:00Z"));
        assert_eq!(
            CalSpan::days(14).after(ts("2026-11-25T00:00:00Z")),
            ts("2026-12-09T00:00:00Z")
        );
        let h: CalSpan = "36h".parse().unwrap();
        assert_eq!(h.before(ts("2026-11-25T12:00:00Z")), ts("2026-11-24T00:00:00Z"));
    }

    #[test]
    fn comparison_is_safe() {
        let d = |s: &str| s.parse::<CalSpan>().unwrap();
        assert!(d("31d").at_least(&d("1m")));
        assert!(!d("30d").at_least(&d("1m")));
        assert!(d("1m").at_least(&d("1m")));
        assert!(d("1y").at_least(&d("52w")));
        assert!(!d("14d").at_least(&d("15d")));
    }
}
