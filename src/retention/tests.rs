use super::*;
use proptest::prelude::*;

fn at(s: &str) -> Candidate {
    Candidate {
        time: s.parse().unwrap(),
        tags: vec![],
    }
}

fn kept(policy: &Policy, points: &[Candidate]) -> Vec<bool> {
    decide(policy, points).unwrap().iter().map(|d| d.keep).collect()
}

#[test]
fn an_empty_policy_is_refused() {
    assert_eq!(
        decide(&Policy::default(), &[at("2026-01-01T00:00:00Z")]),
        Err(RetentionError::EmptyPolicy)
    );
}

#[test]
fn golden_daily_weekly_monthly_with_reasons() {
    // Two points on Nov 24, one each on Nov 23, Nov 16 (previous ISO week) and Oct 31.
    let points = [
        at("2026-11-24T10:00:00Z"),
        at("2026-11-24T22:00:00Z"),
        at("2026-11-23T08:00:00Z"),
        at("2026-11-16T08:00:00Z"),
        at("2026-10-31T08:00:00Z"),
    ];
    let policy = Policy {
        daily: 2,
        weekly: 2,
        monthly: 2,
        ..Policy::default()
    };
    let d = decide(&policy, &points).unwrap();
    let reasons: Vec<Vec<&str>> = d
        .iter()
        .map(|d| d.reasons.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        reasons,
        vec![
            vec![],
            vec!["daily 2026-11-24", "weekly 2026-W48", "monthly 2026-11"],
            vec!["daily 2026-11-23"],
            vec!["weekly 2026-W47"],
            vec!["monthly 2026-10"],
        ]
    );
}

#[test]
fn within_tags_and_last() {
    let mut points = vec![
        at("2026-11-24T10:00:00Z"),
        at("2026-11-20T10:00:00Z"),
        at("2026-11-01T10:00:00Z"),
    ];
    points[2].tags = vec!["keep".into()];
    let policy = Policy {
        within: Some(CalSpan::days(5)),
        tags: vec!["keep".into()],
        ..Policy::default()
    };
    assert_eq!(kept(&policy, &points), [true, true, true]);
    let last = Policy {
        last: 1,
        ..Policy::default()
    };
    assert_eq!(kept(&last, &points), [true, false, false]);
}

fn arb_points() -> impl Strategy<Value = Vec<Candidate>> {
    // Times within about three years, so every calendar rule sees several periods.
    proptest::collection::vec(1_700_000_000i64..1_800_000_000, 0..60).prop_map(|secs| {
        secs.into_iter()
            .map(|s| Candidate {
                time: Timestamp::from_second(s).unwrap(),
                tags: vec![],
            })
            .collect()
    })
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (0u32..5, 0u32..5, 0u32..5, 0u32..5, 0u32..5, 0u32..5).prop_map(|(last, hourly, daily, weekly, monthly, yearly)| {
        Policy {
            last,
            hourly,
            daily,
            weekly,
            monthly,
            yearly,
            within: None,
            tags: vec![],
        }
    })
}

proptest! {
    /// keep-last N keeps exactly the N newest.
    #[test]
    fn last_keeps_the_n_newest(points in arb_points(), n in 1u32..10) {
        let keep = kept(&Policy { last: n, ..Policy::default() }, &points);
        let mut times: Vec<_> = points.iter().map(|p| p.time).collect();
        times.sort_by(|a, b| b.cmp(a));
        prop_assert_eq!(keep.iter().filter(|&&k| k).count(), points.len().min(n as usize));
        if let Some(&cut) = times.get(n as usize) {
            for (p, k) in points.iter().zip(&keep) {
                prop_assert!(!k || p.time >= cut);
            }
        }
    }

    /// keep-daily N keeps one point (the newest) in each of the min(N, days) newest days with points.
    #[test]
    fn daily_keeps_the_newest_of_each_recent_day(points in arb_points(), n in 1u32..10) {
        let keep = kept(&Policy { daily: n, ..Policy::default() }, &points);
        let day = |p: &Candidate| Period::Day.key(p.time);
        let mut days: Vec<String> = points.iter().map(day).collect();
        days.sort();
        days.dedup();
        days.reverse();
        let recent: Vec<&String> = days.iter().take(n as usize).collect();
        for d in &recent {
            let newest = points.iter().filter(|p| &&day(p) == d).map(|p| p.time).max().unwrap();
            let kept_here: Vec<_> = points.iter().zip(&keep).filter(|(p, k)| **k && &&day(p) == d).collect();
            prop_assert_eq!(kept_here.len(), 1);
            prop_assert_eq!(kept_here[0].0.time, newest);
        }
        prop_assert_eq!(keep.iter().filter(|&&k| k).count(), recent.len());
    }

    /// Adding rules never removes a kept point, and the newest point is kept by any non-empty count rule.
    #[test]
    fn more_rules_keep_more(points in arb_points(), a in arb_policy(), b in arb_policy()) {
        prop_assume!(!a.is_empty());
        let both = Policy {
            last: a.last.max(b.last),
            hourly: a.hourly.max(b.hourly),
            daily: a.daily.max(b.daily),
            weekly: a.weekly.max(b.weekly),
            monthly: a.monthly.max(b.monthly),
            yearly: a.yearly.max(b.yearly),
            ..Policy::default()
        };
        let (ka, kb) = (kept(&a, &points), kept(&both, &points));
        for (x, y) in ka.iter().zip(&kb) {
            prop_assert!(!x || *y);
        }
        if let Some(newest) = points.iter().map(|p| p.time).max() {
            let i = points.iter().position(|p| p.time == newest).unwrap();
            prop_assert!(ka[i], "the newest point was not kept");
        }
    }
}
