//! systemd OnCalendar expressions, checked conservatively, and their cron equivalents where one exists.
//!
//! Accepted: the shorthands `minutely`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`/`annually`, `quarterly`,
//! `semiannually` (any case, as systemd), or `[WEEKDAYS] [DATE] [TIME]` where WEEKDAYS is a list of `Mon`..`Sun`
//! (or full names) and forward ranges `Mon..Fri`; DATE is `[YEAR-]MONTH-DAY` or `[YEAR-]MONTH~DAY` (the `~` counts
//! days from the month's end); TIME is `HOUR:MINUTE[:SECOND]`. Each number field is `*` or a list of `N`, `N..M`,
//! `N/STEP` or `N..M/STEP`. This is the grammar of systemd's calendarspec.c (which, for instance, rejects `*/2` and
//! backwards weekday ranges) less what a backup schedule does not need: time zones, `@TIMESTAMP`, fractional
//! seconds. Anything systemd would accept that is refused here gets a message saying what is accepted.

/// One field: `None` is `*`, otherwise the list of its items.
type Chain = Option<Vec<Item>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Item {
    start: u32,
    stop: Option<u32>,
    step: Option<u32>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Date {
    year: Chain,
    month: Chain,
    day: Chain,
    end_of_month: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Time {
    hour: Chain,
    minute: Chain,
    second: Chain,
}

/// A checked calendar expression.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Calendar {
    /// A shorthand, as its cron fields.
    Shorthand(&'static str),
    Spec {
        /// Bit 0 is Monday ... bit 6 Sunday; 0 means every day.
        weekdays: u8,
        date: Option<Date>,
        time: Option<Time>,
    },
}

const SHORTHANDS: [(&str, &str); 9] = [
    ("minutely", "* * * * *"),
    ("hourly", "0 * * * *"),
    ("daily", "0 0 * * *"),
    ("weekly", "0 0 * * 1"),
    ("monthly", "0 0 1 * *"),
    ("yearly", "0 0 1 1 *"),
    ("annually", "0 0 1 1 *"),
    ("quarterly", "0 0 1 1,4,7,10 *"),
    ("semiannually", "0 0 1 1,7 *"),
];

const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

const FORM: &str = "use a shorthand like daily or [WEEKDAYS] DATE TIME like Mon..Fri *-*-* 22:00";

impl Calendar {
    /// Checks `text`; the error says what is wrong in one line.
    pub fn parse(text: &str) -> Result<Calendar, String> {
        if text.trim().is_empty() {
            return Err(format!("empty: {FORM}"));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || " *-:,/.~".contains(*c)))
        {
            let what = if c == '\n' || c == '\r' {
                "a line break".to_string()
            } else {
                format!("{c:?}")
            };
            return Err(format!("'{}' contains {what}: {FORM}", text.escape_debug()));
        }
        if let Some((_, cron)) = SHORTHANDS.iter().find(|(s, _)| s.eq_ignore_ascii_case(text)) {
            return Ok(Calendar::Shorthand(cron));
        }
        Calendar::spec(text).map_err(|e| format!("'{text}': {e}"))
    }

    fn spec(text: &str) -> Result<Calendar, String> {
        let mut tokens = text.split(' ').filter(|t| !t.is_empty()).peekable();
        let weekdays = match tokens.next_if(|t| t.starts_with(|c: char| c.is_ascii_alphabetic())) {
            Some(t) => weekdays(t)?,
            None => 0,
        };
        let date = match tokens.next_if(|t| !t.contains(':') && t.starts_with(|c: char| !c.is_ascii_alphabetic())) {
            Some(t) => Some(date(t)?),
            None => None,
        };
        let time = match tokens.next_if(|t| t.contains(':')) {
            Some(t) => Some(time(t)?),
            None => None,
        };
        if let Some(extra) = tokens.next() {
            let hint = if extra.starts_with(|c: char| c.is_ascii_alphabetic()) {
                "time zones are not accepted"
            } else {
                "a time is HOUR:MINUTE[:SECOND]"
            };
            return Err(format!("unexpected '{extra}' ({hint}): {FORM}"));
        }
        Ok(Calendar::Spec { weekdays, date, time })
    }

    /// The five time fields of a crontab line that fire at the same times, if cron can say it: a shorthand, or
    /// weekdays with `*-*-*` (or no date) and a time whose seconds are 0.
    pub fn cron_fields(&self) -> Option<String> {
        let (weekdays, date, time) = match self {
            Calendar::Shorthand(fields) => return Some(fields.to_string()),
            Calendar::Spec { weekdays, date, time } => (*weekdays, date, time),
        };
        if let Some(d) = date
            && (d.year.is_some() || d.month.is_some() || d.day.is_some() || d.end_of_month)
        {
            return None;
        }
        let (hour, minute) = match time {
            None => ("0".to_string(), "0".to_string()),
            Some(t) => {
                let zero = [Item {
                    start: 0,
                    stop: None,
                    step: None,
                }];
                if t.second.as_deref() != Some(&zero[..]) {
                    return None;
                }
                (cron_field(&t.hour, 23), cron_field(&t.minute, 59))
            }
        };
        Some(format!("{minute} {hour} * * {}", cron_weekdays(weekdays)))
    }
}

fn weekdays(text: &str) -> Result<u8, String> {
    let day = |name: &str| {
        let lower = name.to_ascii_lowercase();
        let found = DAYS
            .iter()
            .position(|d| lower == *d || (lower.len() == 3 && d.starts_with(&lower)));
        found.ok_or_else(|| format!("'{name}' is not a weekday (Mon..Sun): {FORM}"))
    };
    let mut bits = 0u8;
    for item in text.split(',') {
        let (first, last) = match item.split_once("..") {
            Some((a, b)) => (day(a)?, day(b)?),
            None => (day(item)?, day(item)?),
        };
        if first > last {
            return Err(format!("'{item}': a weekday range must run forward, e.g. Mon..Fri"));
        }
        for d in first..=last {
            bits |= 1 << d;
        }
    }
    Ok(bits)
}

fn date(text: &str) -> Result<Date, String> {
    let (front, day, end_of_month) = match text.split_once('~') {
        Some((front, day)) => (front, day, true),
        None => match text.rsplit_once('-') {
            Some((front, day)) => (front, day, false),
            None => return Err(format!("'{text}' is not a date like *-*-* or 2026-01-31: {FORM}")),
        },
    };
    let (year, month) = match front.split_once('-') {
        Some((y, m)) => (chain("year", y, 1970, 2199)?, m),
        None => (None, front),
    };
    Ok(Date {
        year,
        month: chain("month", month, 1, 12)?,
        day: chain("day", day, 1, 31)?,
        end_of_month,
    })
}

fn time(text: &str) -> Result<Time, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (h, m, s) = match parts[..] {
        [h, m] => (h, m, "0"),
        [h, m, s] => (h, m, s),
        _ => return Err(format!("'{text}' is not a time like 22:00 or 22:00:30")),
    };
    Ok(Time {
        hour: chain("hour", h, 0, 23)?,
        minute: chain("minute", m, 0, 59)?,
        second: chain("second", s, 0, 59)?,
    })
}

/// `*` or a comma list of `N`, `N..M`, `N/STEP`, `N..M/STEP`, each number within `min..=max`.
fn chain(field: &str, text: &str, min: u32, max: u32) -> Result<Chain, String> {
    if text == "*" {
        return Ok(None);
    }
    let bad = || format!("'{text}' is not a valid {field} ({min}-{max}): use *, N, N..M, N/STEP or a list of them");
    let number = |s: &str| -> Result<u32, String> {
        let n: u32 = (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
            .ok_or_else(bad)?;
        if (min..=max).contains(&n) { Ok(n) } else { Err(bad()) }
    };
    let mut items = Vec::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s.parse::<u32>().ok().filter(|&s| s > 0).ok_or_else(bad)?)),
            None => (part, None),
        };
        let (start, stop) = match range.split_once("..") {
            Some((a, b)) => (number(a)?, Some(number(b)?)),
            None => (number(range)?, None),
        };
        if stop.is_some_and(|s| s < start) {
            return Err(bad());
        }
        items.push(Item { start, stop, step });
    }
    Ok(Some(items))
}

/// A cron field for `chain` whose largest value is `max`.
fn cron_field(chain: &Chain, max: u32) -> String {
    let Some(items) = chain else { return "*".to_string() };
    let item = |i: &Item| match (i.stop, i.step) {
        (None, None) => i.start.to_string(),
        (Some(stop), None) => format!("{}-{stop}", i.start),
        (None, Some(step)) if i.start == 0 => format!("*/{step}"),
        (None, Some(step)) => format!("{}-{max}/{step}", i.start),
        (Some(stop), Some(step)) => format!("{}-{stop}/{step}", i.start),
    };
    items.iter().map(item).collect::<Vec<_>>().join(",")
}

/// Cron's day-of-week field: Monday..Saturday are 1..6 (runs written as ranges), Sunday is 0.
fn cron_weekdays(bits: u8) -> String {
    if bits == 0 || bits == 0x7f {
        return "*".to_string();
    }
    let mut parts = Vec::new();
    let mut d = 0;
    while d < 6 {
        if bits & (1 << d) == 0 {
            d += 1;
            continue;
        }
        let start = d;
        while d + 1 < 6 && bits & (1 << (d + 1)) != 0 {
            d += 1;
        }
        parts.push(if start == d {
            (d + 1).to_string()
        } else {
            format!("{}-{}", start + 1, d + 1)
        });
        d += 1;
    }
    if bits & (1 << 6) != 0 {
        parts.push("0".to_string());
    }
    parts.join(",")
}
