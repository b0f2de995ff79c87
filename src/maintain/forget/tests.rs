use super::*;
use crate::format::point::sample;

/// Points a..e: three of host h1 (one on another path), two of h2; one day apart, oldest first.
fn points() -> Vec<PointRecord> {
    let mut v = vec![
        sample([1; 32], "2026-11-20T10:00:00.000000000Z", "h1"),
        sample([2; 32], "2026-11-21T10:00:00.000000000Z", "h1"),
        sample([3; 32], "2026-11-22T10:00:00.000000000Z", "h1"),
        sample([4; 32], "2026-11-21T11:00:00.000000000Z", "h2"),
        sample([5; 32], "2026-11-22T11:00:00.000000000Z", "h2"),
    ];
    v[0].paths = vec!["/etc".into()];
    v
}

fn last(n: u32) -> Policy {
    Policy {
        last: n,
        ..Policy::default()
    }
}

/// `(first id byte, kept, reasons joined)` of each verdict, in plan order.
fn summary(v: &[Verdict]) -> Vec<(u8, bool, String)> {
    v.iter()
        .map(|v| (v.point.id.0[0], v.keep, v.reasons.join("; ")))
        .collect()
}

#[test]
fn golden_keep_last_per_group() {
    let v = plan(
        &points(),
        Some(&last(1)),
        &PointFilter::default(),
        GroupBy::default(),
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(
        summary(&v),
        vec![
            (1, true, "last 1".into()),
            (2, false, String::new()),
            (3, true, "last 1".into()),
            (4, false, String::new()),
            (5, true, "last 1".into()),
        ]
    );
    assert_eq!(v[0].group, "host h1, sources /etc");
    assert_eq!(v[1].group, "host h1, sources /x");
}

#[test]
fn group_by_and_filters() {
    let one_group: GroupBy = "".parse().unwrap();
    let v = plan(
        &points(),
        Some(&last(1)),
        &PointFilter::default(),
        one_group,
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(v.iter().filter(|v| v.keep).count(), 1);
    assert_eq!(v.iter().find(|v| v.keep).unwrap().point.id.0[0], 5);
    let h2 = PointFilter {
        host: Some("h2".into()),
        ..Default::default()
    };
    let v = plan(&points(), Some(&last(1)), &h2, GroupBy::default(), &Settings::default()).unwrap();
    assert_eq!(summary(&v), vec![(4, false, String::new()), (5, true, "last 1".into())]);
    assert_eq!(
        "host,tags".parse::<GroupBy>().unwrap(),
        GroupBy {
            host: true,
            sources: false,
            tags: true
        }
    );
    assert_eq!(
        "host,disks".parse::<GroupBy>(),
        Err(ForgetError::GroupBy("host,disks".into()))
    );
}

#[test]
fn sources_include_disks_and_streams() {
    let mut p = sample([1; 32], "2026-11-20T10:00:00.000000000Z", "h1");
    p.paths = vec![];
    p.streams = vec![crate::format::sources::StreamRecord {
        name: "db.sql".into(),
        command: None,
        size: 0,
    }];
    assert_eq!(GroupBy::default().key(&p), "host h1, sources stream:db.sql");
}

fn policy(name: &str, host: Option<&str>, keep: Policy) -> StoredPolicy {
    StoredPolicy {
        name: name.into(),
        keep,
        host: host.map(String::from),
        ..StoredPolicy::default()
    }
}

#[test]
fn stored_policies_apply_to_their_scope_only() {
    let settings = Settings {
        policies: vec![
            policy("a", Some("h1"), last(1)),
            policy(
                "b",
                None,
                Policy {
                    tags: vec!["x".into()],
                    ..Policy::default()
                },
            ),
        ],
        ..Settings::default()
    };
    let mut pts = points();
    pts[1].tags = vec!["x".into()];
    let v = plan(&pts, None, &PointFilter::default(), GroupBy::default(), &settings).unwrap();
    assert_eq!(
        summary(&v),
        vec![
            (1, true, "policy a: last 1".into()),
            (2, true, "policy b: tag x".into()),
            (3, true, "policy a: last 1".into()),
            (4, false, String::new()),
            (5, false, String::new()),
        ]
    );
    // Without policy b, h2 is outside every scope and kept.
    let only_a = Settings {
        policies: vec![policy("a", Some("h1"), last(1))],
        ..Settings::default()
    };
    let v = plan(&pts, None, &PointFilter::default(), GroupBy::default(), &only_a).unwrap();
    assert_eq!(summary(&v)[3], (4, true, "no policy applies".into()));
    assert_eq!(
        plan(
            &pts,
            None,
            &PointFilter::default(),
            GroupBy::default(),
            &Settings::default()
        )
        .unwrap_err(),
        ForgetError::NoPolicy
    );
}

#[test]
fn an_immutable_vault_removes_only_what_its_policies_remove() {
    let settings = Settings {
        immutable: Immutable::On,
        policies: vec![policy("p", Some("h1"), last(2))],
        ..Settings::default()
    };
    let all = PointFilter::default();
    let err = plan(&points(), Some(&last(1)), &all, "".parse().unwrap(), &settings).unwrap_err();
    assert!(matches!(err, ForgetError::Immutable { .. }), "{err}");
    assert!(err.to_string().contains("policy p: last"), "{err}");
    // h2 has no policy: nothing of it may go.
    let h2 = PointFilter {
        host: Some("h2".into()),
        ..Default::default()
    };
    assert!(plan(&points(), Some(&last(1)), &h2, GroupBy::default(), &settings).is_err());
    // The policies themselves remove nothing here (each h1 group has at most 2 points).
    let v = plan(&points(), None, &all, GroupBy::default(), &settings).unwrap();
    assert!(v.iter().all(|v| v.keep));
    // A third /x point of h1 makes the oldest one due; removing exactly that is allowed.
    let mut more = points();
    more.push(sample([6; 32], "2026-11-23T10:00:00.000000000Z", "h1"));
    let v = plan(&more, Some(&last(2)), &all, GroupBy::default(), &settings).unwrap();
    let removed: Vec<u8> = v.iter().filter(|v| !v.keep).map(|v| v.point.id.0[0]).collect();
    assert_eq!(removed, vec![2]);
}
