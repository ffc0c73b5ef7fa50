//! Objects as JSON, encoded once per version: a list sends the same unchanged objects again
//! and again, and encoding them was half of the sandbox's work for a list. The real API server
//! keeps encoded objects in its watch cache for the same reason.
//!
//! An entry holds the object it encodes, so it is valid while the store still holds that very
//! `Arc` (a write stores a new one). Entries the store no longer holds are dropped now and then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;

use crate::store::ObjKey;

#[derive(Default)]
pub struct EncodedObjects {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<ObjKey, (Arc<Value>, Bytes)>,
    /// Entries added since stale ones were last dropped.
    added: usize,
}

impl EncodedObjects {
    /// The JSON of each object, from the cache where it holds that version, else encoded now
    /// (outside the lock, so one large list does not hold up another).
    pub fn encode_all(&self, objects: &[(ObjKey, Arc<Value>)]) -> serde_json::Result<Vec<Bytes>> {
        let mut found: Vec<Option<Bytes>> = {
            let inner = self.lock();
            objects
                .iter()
                .map(|(key, obj)| {
                    inner
                        .entries
                        .get(key)
                        .filter(|(cached, _)| Arc::ptr_eq(cached, obj))
                        .map(|(_, bytes)| bytes.clone())
                })
                .collect()
        };
        let mut made = Vec::new();
        for (i, (key, obj)) in objects.iter().enumerate() {
            if found[i].is_none() {
                let bytes = Bytes::from(serde_json::to_vec(obj.as_ref())?);
                found[i] = Some(bytes.clone());
                made.push((key.clone(), (obj.clone(), bytes)));
            }
        }
        if !made.is_empty() {
            let mut inner = self.lock();
            inner.added += made.len();
            inner.entries.extend(made);
            if inner.added > inner.entries.len() / 2 + 1024 {
                // Only this cache holds an object the store has replaced or deleted.
                inner
                    .entries
                    .retain(|_, (obj, _)| Arc::strong_count(obj) > 1);
                inner.added = 0;
            }
        }
        Ok(found.into_iter().flatten().collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays whole if a holder panicked: every entry is complete when inserted.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(name: &str) -> ObjKey {
        ObjKey::new("apps/deployments", "default", name)
    }

    #[test]
    fn a_new_version_is_encoded_afresh() {
        let cache = EncodedObjects::default();
        let v1 = Arc::new(json!({"metadata": {"name": "a", "resourceVersion": "1"}}));
        let first = cache.encode_all(&[(key("a"), v1.clone())]).unwrap();
        assert_eq!(first[0], serde_json::to_vec(v1.as_ref()).unwrap());
        // Equal content in a new Arc is a new version as far as the store is concerned.
        let v2 = Arc::new(json!({"metadata": {"name": "a", "resourceVersion": "2"}}));
        let second = cache.encode_all(&[(key("a"), v2.clone())]).unwrap();
        assert_eq!(second[0], serde_json::to_vec(v2.as_ref()).unwrap());
        let again = cache.encode_all(&[(key("a"), v2.clone())]).unwrap();
        assert_eq!(
            again[0].as_ptr(),
            second[0].as_ptr(),
            "served from the cache"
        );
    }

    #[test]
    fn objects_the_store_dropped_are_forgotten() {
        let cache = EncodedObjects::default();
        let kept: Vec<(ObjKey, Arc<Value>)> = (0..3000)
            .map(|i| (key(&format!("k{i}")), Arc::new(json!({"i": i}))))
            .collect();
        cache.encode_all(&kept).unwrap();
        for round in 0..3 {
            let gone: Vec<(ObjKey, Arc<Value>)> = (0..2000)
                .map(|i| (key(&format!("g{round}-{i}")), Arc::new(json!({"i": i}))))
                .collect();
            cache.encode_all(&gone).unwrap();
        }
        assert!(cache.len() < 3000 + 2 * 2000, "{} entries", cache.len());
        let again = cache.encode_all(&kept).unwrap();
        assert_eq!(again[2999], b"{\"i\":2999}".as_slice());
    }
}
