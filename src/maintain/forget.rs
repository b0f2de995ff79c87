//! `coffer forget`: which recovery points a retention policy removes, and why each one stays or goes.
//!
//! Points are split into groups (by default host + sources, where a point's sources are its paths, disks and
//! streams) and each group is decided alone by `retention::decide`. Rules come either from the command line or from
//! the policies stored in the vault: a stored policy applies to the points its scope (host, paths, tags) matches;
//! a point no stored policy applies to is kept. Removing means soft-deleting: the point goes to the recycle bin.

use crate::format::admin::{Immutable, Settings, StoredPolicy};
use crate::format::point::PointRecord;
use crate::retention::{self, Candidate, Policy, RetentionError};
use crate::vault::PointFilter;
use std::collections::BTreeMap;

/// Which fields split points into groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupBy {
    pub host: bool,
    pub sources: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> GroupBy {
        GroupBy {
            host: true,
            sources: true,
            tags: false,
        }
    }
}

impl std::str::FromStr for GroupBy {
    type Err = ForgetError;

    /// `host,paths,tags` in any combination; the empty string puts all points in one group.
    fn from_str(s: &str) -> Result<GroupBy, ForgetError> {
        let mut g = GroupBy {
            host: false,
            sources: false,
            tags: false,
        };
        for part in s.split(',').filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.sources = true,
                "tags" => g.tags = true,
                _ => return Err(ForgetError::GroupBy(s.to_string())),
            }
        }
        Ok(g)
    }
}

impl GroupBy {
    /// The group a point belongs to, as printable text.
    pub fn key(&self, p: &PointRecord) -> String {
        let mut parts = Vec::new();
        if self.host {
            parts.push(format!("host {}", p.host));
        }
        if self.sources {
            parts.push(format!("sources {}", p.sources().join(" ")));
        }
        if self.tags {
            let mut tags = p.tags.clone();
            tags.sort();
            parts.push(format!("tags {}", tags.join(",")));
        }
        if parts.is_empty() {
            "all points".to_string()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForgetError {
    #[error("--group-by '{0}': use a comma-separated list of host, paths and tags")]
    GroupBy(String),
    #[error(transparent)]
    Retention(#[from] RetentionError),
    #[error("no retention policy is stored in the vault: give --keep-* rules or add one with 'coffer policy set'")]
    NoPolicy,
    #[error("the vault is immutable ({mode}): recovery point {point} may not be removed yet ({why})")]
    Immutable {
        mode: &'static str,
        point: String,
        why: String,
    },
}

/// The decision on one point.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub point: PointRecord,
    pub group: String,
    pub keep: bool,
    /// The rules that keep it (empty when removed).
    pub reasons: Vec<String>,
}

/// Decides every point `filter` selects, with the given rules or, without them, the stored policies. In an
/// immutable vault, a point is only removed if the stored policies also remove it.
pub fn plan(
    points: &[PointRecord],
    rules: Option<&Policy>,
    filter: &PointFilter,
    group_by: GroupBy,
    settings: &Settings,
) -> Result<Vec<Verdict>, ForgetError> {
    let chosen: Vec<&PointRecord> = points.iter().filter(|p| filter.matches(p)).collect();
    let verdicts = match rules {
        Some(rules) => by_rules(&chosen, rules, group_by, "")?,
        None if settings.policies.is_empty() => return Err(ForgetError::NoPolicy),
        None => by_policies(&chosen, &settings.policies, group_by)?,
    };
    if settings.immutable != Immutable::Off {
        refuse_early_removal(points, &verdicts, settings)?;
    }
    Ok(verdicts)
}

/// What the stored policies decide for every one of `points` (the retention in force).
pub fn in_force(points: &[PointRecord], policies: &[StoredPolicy]) -> Result<Vec<Verdict>, ForgetError> {
    let all: Vec<&PointRecord> = points.iter().collect();
    by_policies(&all, policies, GroupBy::default())
}

fn refuse_early_removal(points: &[PointRecord], verdicts: &[Verdict], settings: &Settings) -> Result<(), ForgetError> {
    let retained: BTreeMap<_, _> = in_force(points, &settings.policies)?
        .into_iter()
        .filter(|v| v.keep)
        .map(|v| (v.point.id, v.reasons))
        .collect();
    match verdicts.iter().find(|v| !v.keep && retained.contains_key(&v.point.id)) {
        None => Ok(()),
        Some(v) => Err(ForgetError::Immutable {
            mode: settings.immutable.as_str(),
            point: v.point.id.short(),
            why: retained[&v.point.id].join("; "),
        }),
    }
}

/// Decides `points` group by group with one set of rules; `label` prefixes each reason.
fn by_rules(
    points: &[&PointRecord],
    rules: &Policy,
    group_by: GroupBy,
    label: &str,
) -> Result<Vec<Verdict>, ForgetError> {
    let mut groups: BTreeMap<String, Vec<&PointRecord>> = BTreeMap::new();
    for p in points {
        groups.entry(group_by.key(p)).or_default().push(p);
    }
    let mut out = Vec::new();
    for (group, members) in groups {
        let candidates: Vec<Candidate> = members.iter().map(|p| candidate(p)).collect();
        for (p, d) in members.iter().zip(retention::decide(rules, &candidates)?) {
            out.push(Verdict {
                point: (*p).clone(),
                group: group.clone(),
                keep: d.keep,
                reasons: d.reasons.into_iter().map(|r| format!("{label}{r}")).collect(),
            });
        }
    }
    Ok(out)
}

/// A point is kept if no stored policy applies to it or any policy that applies keeps it.
fn by_policies(
    points: &[&PointRecord],
    policies: &[StoredPolicy],
    group_by: GroupBy,
) -> Result<Vec<Verdict>, ForgetError> {
    let mut merged: BTreeMap<_, Verdict> = points
        .iter()
        .map(|p| {
            let v = Verdict {
                point: (*p).clone(),
                group: group_by.key(p),
                keep: true,
                reasons: vec!["no policy applies".to_string()],
            };
            (p.id, v)
        })
        .collect();
    let mut covered = std::collections::HashSet::new();
    for policy in policies {
        let scope = PointFilter {
            host: policy.host.clone(),
            tags: policy.tags.clone(),
            paths: policy.paths.clone(),
            sources: None,
        };
        let inside: Vec<&PointRecord> = points.iter().copied().filter(|p| scope.matches(p)).collect();
        for v in by_rules(&inside, &policy.keep, group_by, &format!("policy {}: ", policy.name))? {
            let m = merged.get_mut(&v.point.id).expect("every point is in the map");
            if covered.insert(v.point.id) {
                m.reasons.clear();
                m.keep = false;
            }
            m.keep |= v.keep;
            m.reasons.extend(v.reasons);
        }
    }
    let mut out: Vec<Verdict> = merged.into_values().collect();
    out.sort_by(|a, b| a.group.cmp(&b.group).then(a.point.time.cmp(&b.point.time)));
    Ok(out)
}

fn candidate(p: &PointRecord) -> Candidate {
    Candidate {
        time: crate::util::parse_time(&p.time).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        tags: p.tags.clone(),
    }
}

#[cfg(test)]
mod tests;
