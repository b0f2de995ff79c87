//! Where things are in a job file's text: the line of a key, the dotted key path under an error's span, and the
//! rewording of toml and serde messages into one user-facing line.
//!
//! The file is parsed twice: once into toml's spanned document tree (kept here, for locating) and once into the
//! typed structs of `raw.rs` (for the values). Parsing a job file takes microseconds, so the clarity is free.

use super::JobConfError;
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// The job file's text with its document tree.
pub(super) struct Located<'a> {
    text: &'a str,
    path: &'a Path,
    tree: DeTable<'a>,
}

impl<'a> Located<'a> {
    /// Parses the TOML syntax; a syntax error is returned as a located error.
    pub fn parse(text: &'a str, path: &'a Path) -> Result<Located<'a>, JobConfError> {
        match DeTable::parse(text) {
            Ok(tree) => Ok(Located {
                text,
                path,
                tree: tree.into_inner(),
            }),
            Err(e) => {
                let span = e.span();
                let duplicate = e.message().starts_with("duplicate key");
                let key = match &span {
                    Some(s) if duplicate => text.get(s.clone()).unwrap_or("").to_string(),
                    _ => String::new(),
                };
                Err(invalid(
                    path,
                    span.map(|s| line_of(text, s.start)),
                    key,
                    plain(e.message()),
                ))
            }
        }
    }

    /// An error about the key at `field` (a path from the root, e.g. `["jobs", "home", "paths"]`), placed at the
    /// line of the key, or of its array element `item` when given and found.
    pub fn error(&self, field: &[&str], item: Option<usize>, message: impl Into<String>) -> JobConfError {
        let line = self.find(field, item).map(|s| line_of(self.text, s.start));
        invalid(self.path, line, render(field), message.into())
    }

    /// The byte offset of the key at `field`, for ordering errors as they appear in the file.
    pub fn offset(&self, field: &[&str]) -> usize {
        self.find(field, None).map_or(usize::MAX, |s| s.start)
    }

    /// A serde error from deserializing the typed structs, placed at its span and named by the key path there.
    pub fn serde_error(&self, e: &toml::de::Error) -> JobConfError {
        let span = e.span();
        let mut field = Vec::new();
        if let Some(s) = &span {
            let mut best = None;
            path_at(&self.tree, s, &mut Vec::new(), &mut best);
            field = best.map(|(path, _)| path).unwrap_or_default();
        }
        let keys: Vec<&str> = field.iter().map(String::as_str).collect();
        let line = span.map(|s| line_of(self.text, s.start));
        invalid(self.path, line, render(&keys), reword(e.message(), &keys))
    }

    fn find(&self, field: &[&str], item: Option<usize>) -> Option<Range<usize>> {
        let (last, parents) = field.split_last()?;
        let mut table = &self.tree;
        for key in parents {
            table = table.get(*key)?.get_ref().as_table()?;
        }
        let (key, value) = table.get_key_value(*last)?;
        let element = item.and_then(|i| value.get_ref().as_array()?.get(i));
        Some(element.map_or_else(|| key.span(), |e| e.span()))
    }
}

fn invalid(path: &Path, line: Option<usize>, field: String, message: String) -> JobConfError {
    JobConfError::Invalid {
        path: path.to_path_buf(),
        line,
        field,
        message: message.replace('\n', " "),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Finds the most specific key whose name or value covers `span`; `best` holds its path and the covering length.
fn path_at(
    table: &DeTable<'_>,
    span: &Range<usize>,
    prefix: &mut Vec<String>,
    best: &mut Option<(Vec<String>, usize)>,
) {
    for (key, value) in table.iter() {
        prefix.push(key.get_ref().to_string());
        for s in [key.span(), value.span()] {
            let covers = s.start <= span.start && span.end <= s.end;
            if covers && best.as_ref().is_none_or(|(_, len)| s.len() <= *len) {
                *best = Some((prefix.clone(), s.len()));
            }
        }
        match value.get_ref() {
            DeValue::Table(t) => path_at(t, span, prefix, best),
            DeValue::Array(items) => {
                for t in items.iter().filter_map(|i| i.get_ref().as_table()) {
                    path_at(t, span, prefix, best);
                }
            }
            _ => {}
        }
        prefix.pop();
    }
}

/// A dotted key path as TOML would write it: bare keys where possible, quoted otherwise.
pub(super) fn render(field: &[&str]) -> String {
    let bare = |k: &str| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let keys: Vec<String> = field
        .iter()
        .map(|k| if bare(k) { k.to_string() } else { format!("{k:?}") })
        .collect();
    keys.join(".")
}

/// serde's message in user terms: `unknown field (expected one of a, b)`, `expected an array of strings, found
/// integer 5`.
fn reword(message: &str, field: &[&str]) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((_, expected)) = rest.split_once("`, ")
    {
        return format!("unknown field ({})", plain(expected));
    }
    let found = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    if let Some((found, expected)) = found.and_then(|f| f.split_once(", expected ")) {
        let expected = expected_for(field).map_or_else(|| plain(expected), str::to_string);
        return format!("expected {expected}, found {}", plain(found));
    }
    plain(message)
}

/// What a key of the job file holds, in the words docs/jobs.md uses.
fn expected_for(field: &[&str]) -> Option<&'static str> {
    if let ["jobs", _] = field {
        return Some("a table ([jobs.NAME])");
    }
    Some(match *field.last()? {
        "paths" | "exclude" | "exclude_files" | "tags" | "pre_scripts" | "post_scripts" | "disks" | "freeze"
        | "keep_tags" => "an array of strings",
        "vault"
        | "password_file"
        | "password_command"
        | "host"
        | "schedule"
        | "require_consistency"
        | "snapshot"
        | "snapshot_command"
        | "snapshot_cleanup"
        | "snapshot_at"
        | "keep_within"
        | "name"
        | "command" => "a string",
        "one_file_system" | "scripts_must_succeed" => "true or false",
        "script_timeout" | "max_freeze" => "a number of seconds",
        "keep_last" | "keep_hourly" | "keep_daily" | "keep_weekly" | "keep_monthly" | "keep_yearly" => {
            "a whole number from 0 to 4294967295"
        }
        "retention" => "a table of keep_* rules",
        "stream" => "a table like { name = \"db.sql\", command = \"pg_dumpall\" }",
        "jobs" => "a table of jobs ([jobs.NAME])",
        _ => return None,
    })
}

/// A toml or serde message without its markup and trailing newline.
fn plain(message: &str) -> String {
    message.trim_end().replace('`', "")
}
