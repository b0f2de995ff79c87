//! Key files: `keys/<id>`, each wrapping the master secret under one passphrase.

use super::{Vault, VaultError};
use crate::crypto::{KdfParams, derive_kek, unwrap_master, wrap_master};
use crate::format::config::{KeyFile, VaultConfig, key_name};
use crate::format::ids::{KeyId, random_bytes};
use crate::store::Store;

pub const KEY_VERSION: u32 = 1;

/// A key as listed to users.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    pub id: KeyId,
    pub created: String,
    pub host: String,
    pub user: String,
    pub current: bool,
}

/// Writes a new key file wrapping `master` under `passphrase`; returns its id.
pub(super) fn create_key(
    store: &dyn Store,
    config: &VaultConfig,
    master: &[u8; 32],
    passphrase: &[u8],
    params: KdfParams,
) -> Result<KeyId, VaultError> {
    if passphrase.is_empty() {
        return Err(VaultError::Key("an empty passphrase is not allowed".into()));
    }
    let salt: [u8; 16] = random_bytes();
    let kek = derive_kek(passphrase, &salt, params).map_err(|e| VaultError::Key(e.to_string()))?;
    let file = KeyFile {
        version: KEY_VERSION,
        created: crate::util::now_rfc3339(),
        host: crate::util::hostname(),
        user: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        kdf: "argon2id".into(),
        params,
        salt: hex::encode(salt),
        wrapped: hex::encode(wrap_master(&kek, master, config.id.as_bytes())),
    };
    let id = KeyId(random_bytes());
    let json = serde_json::to_vec_pretty(&file).expect("encoding into memory cannot fail");
    store.create(&key_name(&id), &json)?;
    Ok(id)
}

fn read_key(store: &dyn Store, name: &str) -> Result<KeyFile, VaultError> {
    let bytes = store.read(name, None)?;
    serde_json::from_slice(&bytes).map_err(|e| VaultError::damaged(name, e))
}

fn key_ids(store: &dyn Store) -> Result<Vec<KeyId>, VaultError> {
    let mut ids: Vec<KeyId> = store
        .list("keys/")?
        .iter()
        .filter_map(|o| o.name.strip_prefix("keys/").and_then(|h| KeyId::from_hex(h).ok()))
        .collect();
    ids.sort();
    Ok(ids)
}

/// Tries `passphrase` against every key file; the master secret of the first that opens.
pub(super) fn unlock(
    store: &dyn Store,
    config: &VaultConfig,
    passphrase: &[u8],
) -> Result<(KeyId, [u8; 32]), VaultError> {
    for id in key_ids(store)? {
        let name = key_name(&id);
        let file = read_key(store, &name)?;
        let salt = hex::decode(&file.salt).map_err(|e| VaultError::damaged(&name, e))?;
        let wrapped = hex::decode(&file.wrapped).map_err(|e| VaultError::damaged(&name, e))?;
        let kek = derive_kek(passphrase, &salt, file.params).map_err(|e| VaultError::damaged(&name, e))?;
        if let Ok(master) = unwrap_master(&kek, &wrapped, config.id.as_bytes()) {
            return Ok((id, master));
        }
    }
    Err(VaultError::WrongPassphrase)
}

impl Vault {
    /// Every key of the vault.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>, VaultError> {
        key_ids(self.store())?
            .into_iter()
            .map(|id| {
                let f = read_key(self.store(), &key_name(&id))?;
                Ok(KeyInfo {
                    id,
                    created: f.created,
                    host: f.host,
                    user: f.user,
                    current: id == self.key_id,
                })
            })
            .collect()
    }

    /// Adds a key for another passphrase (the master secret is re-derived from the one this vault is open with).
    pub fn add_key(&self, passphrase: &[u8], params: KdfParams) -> Result<KeyId, VaultError> {
        create_key(self.store(), self.config(), &self.master, passphrase, params)
    }

    /// Removes a key; refuses to remove the last one, which would make the vault unreadable forever.
    pub fn remove_key(&self, id: &KeyId) -> Result<(), VaultError> {
        let ids = key_ids(self.store())?;
        if !ids.contains(id) {
            return Err(VaultError::Key(format!("no key {} in this vault", id.short())));
        }
        if ids.len() == 1 {
            return Err(VaultError::Key(
                "refusing to remove the last key: the vault could never be opened".into(),
            ));
        }
        self.store().delete(&key_name(id))?;
        Ok(())
    }

    /// Resolves a key id or unique prefix.
    pub fn find_key(&self, prefix: &str) -> Result<KeyId, VaultError> {
        let ids = key_ids(self.store())?;
        let matches: Vec<_> = ids
            .iter()
            .filter(|k| k.to_hex().starts_with(&prefix.to_lowercase()))
            .collect();
        match matches.as_slice() {
            [one] if !prefix.is_empty() => Ok(**one),
            [] | [_] => Err(VaultError::Key(format!("no key matches '{prefix}'"))),
            _ => Err(VaultError::Key(format!(
                "'{prefix}' matches {} keys; give more digits",
                matches.len()
            ))),
        }
    }
}
