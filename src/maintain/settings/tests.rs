use super::*;
use crate::format::point::sample;
use crate::retention::Policy;

fn keep_last(name: &str, n: u32) -> StoredPolicy {
    StoredPolicy {
        name: name.into(),
        keep: Policy {
            last: n,
            ..Policy::default()
        },
        ..StoredPolicy::default()
    }
}

fn three_points() -> Vec<PointRecord> {
    vec![
        sample([1; 32], "2026-11-20T10:00:00.000000000Z", "h"),
        sample([2; 32], "2026-11-21T10:00:00.000000000Z", "h"),
        sample([3; 32], "2026-11-22T10:00:00.000000000Z", "h"),
    ]
}

#[test]
fn policies_are_named_non_empty_and_replaced_by_name() {
    let s = with_policy(&Settings::default(), keep_last("daily", 3)).unwrap();
    let s = with_policy(&s, keep_last("daily", 5)).unwrap();
    assert_eq!(s.policies.len(), 1);
    assert_eq!(s.policies[0].keep.last, 5);
    assert_eq!(
        with_policy(&s, keep_last("a b", 1)),
        Err(SettingsError::BadName("a b".into()))
    );
    assert!(
        with_policy(&s, keep_last("none", 0))
            .unwrap_err()
            .to_string()
            .contains("keeps nothing")
    );
    assert!(without_policy(&s, "daily").unwrap().policies.is_empty());
    assert_eq!(without_policy(&s, "x"), Err(SettingsError::NoSuchPolicy("x".into())));
}

#[test]
fn values_parse() {
    let s = with_value(&Settings::default(), "immutable=on").unwrap();
    assert_eq!(s.immutable, Immutable::On);
    let s = with_value(&s, "soft_delete=30d").unwrap();
    assert_eq!(s.soft_delete, CalSpan::days(30));
    assert!(matches!(
        with_value(&s, "immutable=yes"),
        Err(SettingsError::BadImmutable(_))
    ));
    assert!(matches!(
        with_value(&s, "colour=red"),
        Err(SettingsError::UnknownKey(_))
    ));
    assert!(matches!(
        with_value(&s, "immutable"),
        Err(SettingsError::NotKeyValue(_))
    ));
    assert!(
        with_value(&s, "soft-delete=2x")
            .unwrap_err()
            .to_string()
            .contains("not a duration")
    );
}

#[test]
fn an_immutable_vault_only_lengthens_retention() {
    let pts = three_points();
    let off = Settings::default();
    let on = with_value(&off, "immutable=on").unwrap();
    let on2 = Settings {
        policies: vec![keep_last("p", 2)],
        ..on.clone()
    };
    // Off: anything goes, including turning it on.
    check_change(&pts, &off, &on).unwrap();
    check_change(&pts, &off, &with_value(&off, "soft-delete=1d").unwrap()).unwrap();
    // On: a shorter window is refused, a longer one allowed; off is allowed.
    let shorter = with_value(&on, "soft-delete=13d").unwrap();
    assert!(matches!(
        check_change(&pts, &on, &shorter),
        Err(SettingsError::ShorterWindow { .. })
    ));
    check_change(&pts, &on, &with_value(&on, "soft-delete=1m").unwrap()).unwrap();
    check_change(&pts, &on, &off).unwrap();
    // Policies: keeping fewer is refused, keeping more allowed, adding a policy to uncovered points refused.
    let weaker = Settings {
        policies: vec![keep_last("p", 1)],
        ..on2.clone()
    };
    let err = check_change(&pts, &on2, &weaker).unwrap_err();
    assert_eq!(
        err,
        SettingsError::WeakerPolicy {
            mode: "on",
            name: "p".into()
        }
    );
    let stronger = Settings {
        policies: vec![keep_last("p", 3)],
        ..on2.clone()
    };
    check_change(&pts, &on2, &stronger).unwrap();
    assert!(
        check_change(&pts, &on, &on2).is_err(),
        "the first policy makes point 1 removable"
    );
    // Locked cannot be undone.
    let locked = with_value(&on, "immutable=locked").unwrap();
    check_change(&pts, &on, &locked).unwrap();
    assert_eq!(check_change(&pts, &locked, &on), Err(SettingsError::Locked));
    assert_eq!(check_change(&pts, &locked, &off), Err(SettingsError::Locked));
}
