//! Changing vault settings: retention policies (`coffer policy`), the soft-delete window and immutability
//! (`coffer vault set`), and the rules an immutable vault enforces on every change.
//!
//! Immutability (`on` or `locked`) means retention can only grow: the soft-delete window cannot be shortened, and a
//! policy change is refused if it would let `forget` remove any point that the policies in force keep today.
//! `locked` additionally cannot be turned off or back to `on`.

use super::forget::{ForgetError, in_force};
use crate::format::admin::{Immutable, Settings, StoredPolicy};
use crate::format::point::PointRecord;
use crate::span::CalSpan;
use std::collections::HashSet;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("'{0}' is not a valid policy name: use letters, digits, '.', '_' and '-'")]
    BadName(String),
    #[error("no policy named '{0}'")]
    NoSuchPolicy(String),
    #[error(
        "unknown setting '{0}': the settings are immutable (off, on, locked) and soft-delete (a duration, e.g. 14d)"
    )]
    UnknownKey(String),
    #[error("'{0}' should be KEY=VALUE")]
    NotKeyValue(String),
    #[error("immutable={0}: use off, on or locked")]
    BadImmutable(String),
    #[error("{0}")]
    BadValue(String),
    #[error("the vault is immutable (locked): this cannot be undone")]
    Locked,
    #[error("the vault is immutable ({mode}): the soft-delete window cannot be shortened from {from} to {to}")]
    ShorterWindow {
        mode: &'static str,
        from: CalSpan,
        to: CalSpan,
    },
    #[error(
        "the vault is immutable ({mode}): this change would let forget remove recovery point {point}, which the policies in force keep"
    )]
    WeakerRetention { mode: &'static str, point: String },
    #[error(
        "the vault is immutable ({mode}): policy '{name}' may only keep more of the same points (same scope, no rule lower or removed)"
    )]
    WeakerPolicy { mode: &'static str, name: String },
    #[error(
        "the vault is immutable ({mode}): no policy can be added (it could release points no policy covers); add policies before turning immutability on"
    )]
    NewPolicy { mode: &'static str },
    #[error(transparent)]
    Forget(#[from] ForgetError),
}

/// Settings with `policy` added, or replacing the policy of the same name.
pub fn with_policy(current: &Settings, policy: StoredPolicy) -> Result<Settings, SettingsError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if policy.name.is_empty() || !policy.name.chars().all(ok) {
        return Err(SettingsError::BadName(policy.name));
    }
    if policy.keep.is_empty() {
        return Err(ForgetError::Retention(crate::retention::RetentionError::EmptyPolicy).into());
    }
    let mut next = current.clone();
    next.policies.retain(|p| p.name != policy.name);
    next.policies.push(policy);
    next.policies.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(next)
}

/// Settings without the policy `name`.
pub fn without_policy(current: &Settings, name: &str) -> Result<Settings, SettingsError> {
    if !current.policies.iter().any(|p| p.name == name) {
        return Err(SettingsError::NoSuchPolicy(name.to_string()));
    }
    let mut next = current.clone();
    next.policies.retain(|p| p.name != name);
    Ok(next)
}

/// Settings with one `KEY=VALUE` applied (`immutable=on`, `soft-delete=30d`).
pub fn with_value(current: &Settings, assignment: &str) -> Result<Settings, SettingsError> {
    let (key, value) = assignment
        .split_once('=')
        .ok_or_else(|| SettingsError::NotKeyValue(assignment.to_string()))?;
    let mut next = current.clone();
    match key.replace('_', "-").as_str() {
        "immutable" => {
            next.immutable = match value {
                "off" => Immutable::Off,
                "on" => Immutable::On,
                "locked" => Immutable::Locked,
                _ => return Err(SettingsError::BadImmutable(value.to_string())),
            }
        }
        "soft-delete" => {
            next.soft_delete = value
                .parse()
                .map_err(|e: crate::span::SpanError| SettingsError::BadValue(format!("soft-delete: {e}")))?
        }
        _ => return Err(SettingsError::UnknownKey(key.to_string())),
    }
    Ok(next)
}

/// Refuses a change an immutable vault does not allow; `points` are the live points, to judge policy changes.
pub fn check_change(points: &[PointRecord], old: &Settings, new: &Settings) -> Result<(), SettingsError> {
    let mode = old.immutable.as_str();
    if old.immutable == Immutable::Locked && new.immutable != Immutable::Locked {
        return Err(SettingsError::Locked);
    }
    if old.immutable == Immutable::Off {
        return Ok(());
    }
    if !new.soft_delete.at_least(&old.soft_delete) {
        return Err(SettingsError::ShorterWindow {
            mode,
            from: old.soft_delete,
            to: new.soft_delete,
        });
    }
    if old.policies == new.policies {
        return Ok(());
    }
    for p in &new.policies {
        match old.policies.iter().find(|o| o.name == p.name) {
            None => return Err(SettingsError::NewPolicy { mode }),
            Some(o) if !keeps_at_least(p, o) => {
                return Err(SettingsError::WeakerPolicy {
                    mode,
                    name: p.name.clone(),
                });
            }
            Some(_) => {}
        }
    }
    let kept_now: HashSet<_> = kept(points, &old.policies)?;
    let kept_after: HashSet<_> = kept(points, &new.policies)?;
    match points
        .iter()
        .find(|p| kept_now.contains(&p.id) && !kept_after.contains(&p.id))
    {
        None => Ok(()),
        Some(p) => Err(SettingsError::WeakerRetention {
            mode,
            point: p.id.short(),
        }),
    }
}

/// Does `new` keep, now and for any future points, everything `old` keeps? Same scope, every rule at least as
/// strong. (Removing a policy is allowed: its points are then covered by none and kept.)
fn keeps_at_least(new: &StoredPolicy, old: &StoredPolicy) -> bool {
    let (n, o) = (&new.keep, &old.keep);
    let counts = [
        (n.last, o.last),
        (n.hourly, o.hourly),
        (n.daily, o.daily),
        (n.weekly, o.weekly),
        (n.monthly, o.monthly),
        (n.yearly, o.yearly),
    ];
    let within = match (n.within, o.within) {
        (_, None) => true,
        (Some(a), Some(b)) => a.at_least(&b),
        (None, Some(_)) => false,
    };
    new.host == old.host
        && new.paths == old.paths
        && new.tags == old.tags
        && counts.iter().all(|(a, b)| a >= b)
        && within
        && o.tags.iter().all(|t| n.tags.contains(t))
}

fn kept(
    points: &[PointRecord],
    policies: &[StoredPolicy],
) -> Result<HashSet<crate::format::ids::PointId>, ForgetError> {
    Ok(in_force(points, policies)?
        .into_iter()
        .filter(|v| v.keep)
        .map(|v| v.point.id)
        .collect())
}

#[cfg(test)]
mod tests;
