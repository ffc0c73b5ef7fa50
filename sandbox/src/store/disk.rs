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
        let disk = Disk { db };
        // Make sure the tables exist so a fresh store reads as empty.
        disk.write(|_, _, _| Ok(()))?;
        Ok(disk)
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
            let (Some(key), Ok(object)) = (
                decode_key(key.value()),
                serde_json::from_slice::<Value>(body.value()),
            ) else {
                continue;
            };
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
