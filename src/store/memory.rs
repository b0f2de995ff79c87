//! In-memory store for tests: a map behind a lock.

use super::{ObjectInfo, Store, StoreError, check_name, slice_range};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, RwLock};

/// Objects kept in a `BTreeMap`; cloning shares the same map.
#[derive(Clone, Default)]
pub struct MemoryStore {
    objects: Arc<RwLock<BTreeMap<String, Arc<Vec<u8>>>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// An independent copy of every object (a snapshot of the store as it is now).
    pub fn deep_copy(&self) -> MemoryStore {
        let map = self.objects.read().expect("lock").clone();
        MemoryStore {
            objects: Arc::new(RwLock::new(map)),
        }
    }

    /// Replaces an object's bytes behind the trait's back, to simulate damage in tests.
    pub fn corrupt(&self, name: &str, f: impl FnOnce(&mut Vec<u8>)) {
        let mut map = self.objects.write().expect("lock");
        let obj = map.get_mut(name).expect("object to corrupt exists");
        f(Arc::make_mut(obj));
    }
}

impl Store for MemoryStore {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let map = self.objects.read().expect("lock");
        Ok(map
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectInfo {
                name: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }

    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        let obj = self.objects.read().expect("lock").get(name).cloned();
        let obj = obj.ok_or_else(|| StoreError::NotFound(name.to_string()))?;
        slice_range(name, &obj, range)
    }

    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        check_name(name)?;
        let mut map = self.objects.write().expect("lock");
        if map.contains_key(name) {
            return Err(StoreError::AlreadyExists(name.to_string()));
        }
        map.insert(name.to_string(), Arc::new(data.to_vec()));
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        let removed = self.objects.write().expect("lock").remove(name);
        removed
            .map(|_| ())
            .ok_or_else(|| StoreError::NotFound(name.to_string()))
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}
