//! The redb file behind the store: objects by key, recent events by resourceVersion.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde_json::{Value, json};

use super::HISTORY_LEN;
use super::state::{EventType, ObjKey, Recorded, State};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const CACHE_BYTES: usize = 16 * 1024 * 1024;
/// How much free space in the file makes opening it compact it (when that is most of it).
const COMPACT_FROM: u64 = 32 * 1024 * 1024;

/// Separates the parts of a key; cannot occur in resource, namespace or object names.
const SEP: char = '\u{0}';

pub(super) struct Disk {
    db: Database,
}

fn encode_key(key: &ObjKey) -> String {
    format!("{}{SEP}{}{SEP}{}", key.res, key.ns, key.name)
}

fn decode_key(raw: &str) -> Option<ObjKey> {
    let mut parts = raw.split(SEP);
    Some(ObjKey::new(parts.next()?, parts.next()?, parts.next()?))
}

fn err(what: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
    move |e| format!("sandbox store: {what}: {e}")
}

impl Disk {
    pub(super) fn open(path: &Path) -> Result<Disk, String> {
        // Secrets live in here: the file is its owner's alone, even if an older kip made it
        // readable to others. redb initializes an empty file as a fresh database.
        crate::home::private_file(path)
            .map_err(|e| format!("cannot open the sandbox store {}: {e}", path.display()))?;
        // Every object also lives in memory, so redb's page cache (1 GiB by default) would only
        // hold a second copy; a small one keeps commits fast.
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => format!(
                    "the sandbox store {} is in use by another sandbox process: `kip sandbox \
                     status` tells where it serves, `kip sandbox down` stops it",
                    path.display()
                ),
                e => format!("cannot open the sandbox store {}: {e}", path.display()),
            })?;
        let mut disk = Disk { db };
        // Make sure the tables exist so a fresh store reads as empty.
        disk.write(|_, _, _| Ok(()))?;
        disk.compact_if_mostly_free();
        Ok(disk)
    }

    /// Gives the file's free pages back to the file system when they are most of it (a big
    /// Deployment came and went): redb reuses free pages but never shrinks the file on its
    /// own. Only at open, where nothing else uses the database and moving the live pages
    /// (few, when most is free) costs little. A failure leaves the file as it was.
    fn compact_if_mostly_free(&mut self) {
        let stats = match self.db.begin_write().and_then(|txn| {
            let stats = txn.stats();
            txn.abort()?;
            Ok(stats)
        }) {
            Ok(Ok(stats)) => stats,
            _ => return,
        };
        let live = stats.stored_bytes() + stats.metadata_bytes();
        if stats.fragmented_bytes() < COMPACT_FROM || stats.fragmented_bytes() < live {
            return;
        }
        if let Err(e) = self.db.compact() {
            tracing::warn!("sandbox store: cannot compact: {e}");
        }
    }

    fn write(
        &self,
        f: impl FnOnce(
            &mut redb::Table<&str, &[u8]>,
            &mut redb::Table<u64, &[u8]>,
            &mut redb::Table<&str, u64>,
        ) -> Result<(), String>,
    ) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(|e| err("begin")(&e))?;
        {
            let mut objects = txn.open_table(OBJECTS).map_err(|e| err("objects")(&e))?;
            let mut events = txn.open_table(EVENTS).map_err(|e| err("events")(&e))?;
            let mut meta = txn.open_table(META).map_err(|e| err("meta")(&e))?;
            f(&mut objects, &mut events, &mut meta)?;
        }
        txn.commit().map_err(|e| err("commit")(&e))
    }

    /// Makes a batch of events durable: the objects they leave behind, and the events themselves.
    pub(super) fn commit(&mut self, batch: &[Recorded]) -> Result<(), String> {
        self.write(|objects, events, meta| {
            let e = err("write");
            for event in batch {
                let key = encode_key(&event.key);
                match event.kind {
                    EventType::Deleted => {
                        objects.remove(key.as_str()).map_err(|x| e(&x))?;
                    }
                    _ => {
                        objects
                            .insert(key.as_str(), &*event.body)
                            .map_err(|x| e(&x))?;
                    }
                }
                let record = encode_event(event);
                events
                    .insert(event.rv, record.as_slice())
                    .map_err(|x| e(&x))?;
            }
            if let Some(last) = batch.last() {
                meta.insert("rv", last.rv).map_err(|x| e(&x))?;
            }
            let mut compacted = None;
            while events.len().map_err(|x| e(&x))? > HISTORY_LEN as u64 {
                match events.pop_first().map_err(|x| e(&x))? {
                    Some((rv, _)) => compacted = Some(rv.value()),
                    None => break,
                }
            }
            if let Some(rv) = compacted {
                meta.insert("compacted", rv).map_err(|x| e(&x))?;
            }
            Ok(())
        })
    }

    /// Reads the whole store back into memory.
    pub(super) fn load(&self) -> Result<State, String> {
        let e = err("read");
        let txn = self.db.begin_read().map_err(|x| e(&x))?;
        let objects_table = txn.open_table(OBJECTS).map_err(|x| e(&x))?;
        let events_table = txn.open_table(EVENTS).map_err(|x| e(&x))?;
        let meta = txn.open_table(META).map_err(|x| e(&x))?;
        let mut objects = Vec::new();
        for entry in objects_table.iter().map_err(|x| e(&x))? {
            let (key, body) = entry.map_err(|x| e(&x))?;
            let (Some(key), Ok(mut object)) = (
                decode_key(key.value()),
                serde_json::from_slice::<Value>(body.value()),
            ) else {
                continue;
            };
            // As the apiserver defaults what it reads from etcd: what an older sandbox stored
            // reads back with today's defaults (and is written so at its next change), so a
            // client re-applying it sees no difference to make.
            crate::defaults::apply(&key.res, &mut object);
            objects.push((key, object));
        }
        let mut history = Vec::new();
        for entry in events_table.iter().map_err(|x| e(&x))? {
            let (rv, body) = entry.map_err(|x| e(&x))?;
            if let Some(event) = decode_event(rv.value(), body.value()) {
                history.push(event);
            }
        }
        let read_meta = |name: &str| -> Result<u64, String> {
            Ok(meta
                .get(name)
                .map_err(|x| e(&x))?
                .map(|v| v.value())
                .unwrap_or(0))
        };
        Ok(State::restore(
            objects,
            read_meta("rv")?,
            history,
            read_meta("compacted")?,
        ))
    }
}

/// An event on disk: a JSON header line `["TYPE","res","ns","name"]`, then the object's JSON
/// (compact JSON never contains a raw newline).
fn encode_event(event: &Recorded) -> Vec<u8> {
    let header = json!([
        event.kind.as_str(),
        event.key.res,
        event.key.ns,
        event.key.name
    ]);
    let mut record = serde_json::to_vec(&header).unwrap_or_default();
    record.push(b'\n');
    record.extend_from_slice(&event.body);
    record
}

fn decode_event(rv: u64, record: &[u8]) -> Option<Recorded> {
    let split = record.iter().position(|b| *b == b'\n')?;
    let header: Vec<String> = serde_json::from_slice(&record[..split]).ok()?;
    let [kind, res, ns, name] = header.as_slice() else {
        return None;
    };
    Some(Recorded {
        rv,
        kind: EventType::parse(kind)?,
        key: ObjKey::new(res.as_str(), ns.as_str(), name.as_str()),
        body: record[split + 1..].into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(rv: u64, kind: EventType, name: &str, body: &[u8]) -> Recorded {
        Recorded {
            rv,
            kind,
            key: ObjKey::new("/configmaps", "default", name),
            body: body.into(),
        }
    }

    #[test]
    fn objects_an_older_sandbox_stored_load_with_their_defaults() {
        let dir = std::env::temp_dir().join(format!("kip-disk-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        {
            let mut disk = Disk::open(&path).unwrap();
            let old = br#"{"kind":"Deployment","metadata":{"name":"web"},"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}"#;
            let record = Recorded {
                rv: 1,
                kind: EventType::Added,
                key: ObjKey::new("apps/deployments", "default", "web"),
                body: old.as_slice().into(),
            };
            disk.commit(&[record]).unwrap();
        }
        let state = Disk::open(&path).unwrap().load().unwrap();
        let web = state
            .get(&ObjKey::new("apps/deployments", "default", "web"))
            .expect("loaded");
        assert_eq!(web["spec"]["progressDeadlineSeconds"], 600);
        let container = &web["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["imagePullPolicy"], "Always");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_store_that_is_mostly_free_space_shrinks_when_opened() {
        let dir = std::env::temp_dir().join(format!("kip-disk-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        let size = || std::fs::metadata(&path).unwrap().len();
        {
            let mut disk = Disk::open(&path).unwrap();
            let body = format!("{{\"data\":\"{}\"}}", "x".repeat(200_000));
            let mut rv = 0;
            let mut next = || {
                rv += 1;
                rv
            };
            // 20 MB, held twice: by the objects and by the history.
            let added: Vec<Recorded> = (0..100)
                .map(|i| recorded(next(), EventType::Added, &i.to_string(), body.as_bytes()))
                .collect();
            disk.commit(&added).unwrap();
            let deleted: Vec<Recorded> = (0..100)
                .map(|i| recorded(next(), EventType::Deleted, &i.to_string(), b"{}"))
                .collect();
            disk.commit(&deleted).unwrap();
            // Newer events push the big ones out of the history.
            let small: Vec<Recorded> = (0..HISTORY_LEN)
                .map(|_| recorded(next(), EventType::Modified, "small", b"{}"))
                .collect();
            disk.commit(&small).unwrap();
        }
        let before = size();
        assert!(before > 40 << 20, "the file grew to {before} bytes");
        let disk = Disk::open(&path).unwrap();
        let after = size();
        assert!(after < before / 4, "{before} bytes, then {after}");
        let state = disk.load().unwrap();
        assert_eq!(state.len(), 1, "what was live is still there");
        drop(disk);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
