//! Exclude patterns for backups (and include/exclude for restores).
//!
//! A pattern without `/` matches an entry's name anywhere in the tree (`*.tmp`, `.cache`); a pattern with `/` matches
//! the whole absolute path (`/home/*/.cache`, `/var/**/tmp`), where `*` stays within one path component and `**`
//! crosses components. An excluded directory is skipped with everything below it.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("bad pattern '{0}': {1}")]
    Bad(String, globset::Error),
    #[error("cannot read exclude file {0}: {1}")]
    File(String, std::io::Error),
}

/// A compiled set of patterns.
#[derive(Clone, Debug)]
pub struct Patterns {
    names: GlobSet,
    paths: GlobSet,
    empty: bool,
}

impl Patterns {
    pub fn new(patterns: &[String]) -> Result<Patterns, PatternError> {
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        for p in patterns {
            let glob: Glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| PatternError::Bad(p.clone(), e))?;
            if p.contains('/') {
                paths.add(glob)
            } else {
                names.add(glob)
            };
        }
        let build = |b: GlobSetBuilder| b.build().expect("globs that compiled alone compile as a set");
        Ok(Patterns {
            names: build(names),
            paths: build(paths),
            empty: patterns.is_empty(),
        })
    }

    /// Reads patterns from a file, one per line; blank lines and lines starting with `#` are ignored.
    pub fn read_file(path: &Path) -> Result<Vec<String>, PatternError> {
        let text = std::fs::read_to_string(path).map_err(|e| PatternError::File(path.display().to_string(), e))?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect())
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// True if the entry at absolute `path` matches a pattern.
    pub fn matches(&self, path: &Path) -> bool {
        if self.empty {
            return false;
        }
        let name_hit = path.file_name().is_some_and(|n| self.names.is_match(Path::new(n)));
        name_hit || self.paths.is_match(path)
    }

    /// True if `path` or one of its ancestors matches.
    pub fn matches_with_ancestors(&self, path: &Path) -> bool {
        !self.empty
            && path
                .ancestors()
                .any(|a| a.as_os_str().as_bytes() != b"/" && self.matches(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        let p = Patterns::new(&["*.tmp".into(), "/home/*/.cache".into(), "/var/**/log".into()]).unwrap();
        assert!(p.matches(Path::new("/a/b/x.tmp")));
        assert!(!p.matches(Path::new("/a/b/x.tmpl")));
        assert!(p.matches(Path::new("/home/ann/.cache")));
        assert!(!p.matches(Path::new("/home/ann/sub/.cache")));
        assert!(p.matches(Path::new("/var/a/b/log")));
        assert!(p.matches_with_ancestors(Path::new("/home/ann/.cache/deep/file")));
        assert!(!Patterns::new(&[]).unwrap().matches(Path::new("/x")));
        assert!(Patterns::new(&["[".into()]).is_err());
    }
}
