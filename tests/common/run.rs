//! Running the real `coffer` binary against a vault.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn coffer_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coffer"))
}

/// A vault path and the passphrase that opens it.
#[derive(Clone, Debug)]
pub struct Coffer {
    pub vault: PathBuf,
    pub password: String,
}

impl Coffer {
    pub fn new(vault: &Path) -> Coffer {
        Coffer {
            vault: vault.to_path_buf(),
            password: "test passphrase".into(),
        }
    }

    /// The binary with `--vault` and `COFFER_PASSWORD` set (and no inherited `COFFER_VAULT`).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(coffer_bin());
        c.arg("--vault").arg(&self.vault).args(args);
        c.env("COFFER_PASSWORD", &self.password)
            .env_remove("COFFER_VAULT")
            .env_remove("COFFER_NEW_PASSWORD");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("coffer binary runs")
    }

    /// Runs and asserts exit 0 (showing stderr otherwise); returns stdout.
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
