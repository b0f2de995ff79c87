//! Running the real `coffer` binary (built by cargo for integration tests) against one vault.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `coffer` binary cargo built for this test run.
pub fn coffer_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coffer"))
}

/// A vault (a path, or an object-store URL) and the passphrase that opens it.
#[derive(Clone, Debug)]
pub struct Coffer {
    pub vault: PathBuf,
    pub password: String,
    /// More environment for every command, e.g. an object store's credentials and endpoint.
    pub env: Vec<(String, String)>,
}

impl Coffer {
    /// The vault at `vault` (which need not exist yet: `init` makes it) with a fixed test passphrase.
    pub fn new(vault: &Path) -> Coffer {
        Coffer {
            vault: vault.to_path_buf(),
            password: "test passphrase".into(),
            env: Vec::new(),
        }
    }

    /// The vault at an object-store `url`, reached with the variables `env` (and no local read cache under $HOME,
    /// unless `env` sets `COFFER_CACHE_LIMIT` and `COFFER_CACHE_DIR`).
    pub fn at_url(url: &str, env: &[(String, String)]) -> Coffer {
        let mut all = vec![("COFFER_CACHE_LIMIT".to_string(), "0".to_string())];
        all.extend_from_slice(env);
        Coffer {
            env: all,
            ..Coffer::new(Path::new(url))
        }
    }

    /// `coffer --vault <vault> <args>` with `COFFER_PASSWORD` and `env` set, `COFFER_VAULT` and
    /// `COFFER_NEW_PASSWORD` removed from the inherited environment, and stdin from /dev/null (override with
    /// `.stdin(..)` when a test feeds it).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(coffer_bin());
        c.arg("--vault").arg(&self.vault).args(args);
        c.env("COFFER_PASSWORD", &self.password)
            .env_remove("COFFER_VAULT")
            .env_remove("COFFER_NEW_PASSWORD")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    /// Runs `coffer <args>` to completion, capturing stdout and stderr. Panics only if it cannot be started.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("coffer binary runs")
    }

    /// Runs `coffer <args>`, asserts it exits 0 (showing its stderr otherwise), and returns its stdout, which must
    /// be UTF-8.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "coffer {args:?} exited {:?}:\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("stdout is UTF-8")
    }

    /// Runs `coffer <args>`, asserts it exits non-zero (showing its stdout otherwise), and returns its stderr,
    /// lossily decoded.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "coffer {args:?} succeeded but should fail:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// `check --read-data`, then a verified restore of the latest point into `target`: the vault is whole and its
    /// newest point reads back as written.
    pub fn check_and_restore(&self, target: &Path) {
        self.ok(&["check", "--read-data"]);
        self.ok(&[
            "restore",
            "latest",
            "--target",
            target.to_str().expect("UTF-8 path"),
            "--verify",
        ]);
    }
}

/// Parses JSON output, showing it on failure.
pub fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// A fresh initialised vault in a temp dir and a generated source tree beside it (`src`).
pub fn vault_and_tree(scale: super::Scale, seed: u64) -> (tempfile::TempDir, Coffer, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("create src");
    super::generate_tree(&src, seed, scale);
    (tmp, c, src)
}
