//! The in-memory state and the staging of one write against it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;

use crate::registry::Registry;

use super::HISTORY_LEN;

/// Where an object lives: its resource's storage key (`apps/deployments`), namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub res: String,
    /// Empty for cluster-scoped objects.
    pub ns: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(res: impl Into<String>, ns: impl Into<String>, name: impl Into<String>) -> Self {
        ObjKey {
            res: res.into(),
            ns: ns.into(),
            name: name.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ADDED" => Some(EventType::Added),
            "MODIFIED" => Some(EventType::Modified),
            "DELETED" => Some(EventType::Deleted),
            _ => None,
        }
    }
}

/// One committed change.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    /// The object after the change; for a deletion, its last state with the deletion's version.
    pub object: Arc<Value>,
    /// The object before a modification, so a filtered watch can tell when it enters or leaves
    /// the filter. Not kept on disk: events replayed after a restart lack it.
    pub previous: Option<Arc<Value>>,
}

/// A committed event as the history keeps it: the object serialized, about ten times smaller
/// than its parsed form, since the history holds versions no live object shares.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    pub body: Arc<[u8]>,
}

impl Recorded {
    pub fn of(event: &Event) -> Recorded {
        Recorded {
            rv: event.rv,
            kind: event.kind,
            key: event.key.clone(),
            body: serde_json::to_vec(&*event.object)
                .unwrap_or_default()
                .into(),
        }
    }

    /// The event back, for a watch resuming from the history; it lacks `previous`.
    pub fn to_event(&self) -> Option<Event> {
        Some(Event {
            rv: self.rv,
            kind: self.kind,
            key: self.key.clone(),
            object: Arc::new(serde_json::from_slice(&self.body).ok()?),
            previous: None,
        })
    }
}

const CRD_KEY: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// Every object, the last resourceVersion, and the recent events.
#[derive(Debug, Default)]
pub struct State {
    objects: BTreeMap<ObjKey, Arc<Value>>,
    rv: u64,
    history: VecDeque<Recorded>,
    /// Events at or below this version are no longer in the history.
    compacted: u64,
    pub registry: Registry,
    /// Owner uid → the objects that name it in their ownerReferences.
    dependents: HashMap<String, BTreeSet<ObjKey>>,
    /// Node name → how many pods bound to it have not finished, for the scheduler, which
    /// would otherwise count every pod for every pod it places.
    pods_on_node: HashMap<String, usize>,
}

impl State {
    pub fn new() -> Self {
        State::default()
    }

    /// Rebuilds a state from what the disk holds.
    pub(super) fn restore(
        objects: Vec<(ObjKey, Value)>,
        rv: u64,
        history: Vec<Recorded>,
        compacted: u64,
    ) -> Self {
        let mut state = State {
            rv,
            compacted,
            history: history.into(),
            ..State::default()
        };
        for (key, object) in objects {
            state.set(key, Some(Arc::new(object)));
        }
        state
    }

    pub fn get(&self, key: &ObjKey) -> Option<Arc<Value>> {
        self.objects.get(key).cloned()
    }

    /// Objects of one resource, in one namespace or (with `None`) in all, ordered by namespace
    /// and name.
    pub fn list<'a>(
        &'a self,
        res: &'a str,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Arc<Value>)> + 'a {
        let start = ObjKey::new(res, ns.unwrap_or(""), "");
        self.objects
            .range((Bound::Included(start), Bound::Unbounded))
            .take_while(move |(k, _)| k.res == res && ns.is_none_or(|ns| k.ns == ns))
    }

    /// The objects of one resource, in one namespace or (with `None`) in all.
    pub fn list_values(&self, res: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.list(res, ns).map(|(_, v)| v.clone()).collect()
    }

    /// Objects of one resource after `after` (exclusive), for paginated lists.
    pub fn list_after<'a>(
        &'a self,
        res: &'a str,
        ns: Option<&'a str>,
        after: &ObjKey,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Arc<Value>)> + 'a {
        self.objects
            .range((Bound::Excluded(after.clone()), Bound::Unbounded))
            .take_while(move |(k, _)| k.res == res && ns.is_none_or(|ns| k.ns == ns))
    }

    /// Every object, for namespace deletion and garbage collection.
    pub fn iter(&self) -> impl Iterator<Item = (&ObjKey, &Arc<Value>)> {
        self.objects.iter()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The newest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<ObjKey> {
        self.dependents
            .get(uid)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many pods bound to `node` have not finished (Succeeded or Failed), being deleted
    /// or not: what takes room on a node.
    pub fn pods_on_node(&self, node: &str) -> usize {
        self.pods_on_node.get(node).copied().unwrap_or(0)
    }

    /// Committed events newer than `rv`, or `None` when some of them were already compacted away.
    pub fn history_since(&self, rv: u64) -> Option<Vec<Arc<Event>>> {
        if rv < self.compacted {
            return None;
        }
        let start = self.history.partition_point(|e| e.rv <= rv);
        Some(
            self.history
                .range(start..)
                .filter_map(Recorded::to_event)
                .map(Arc::new)
                .collect(),
        )
    }

    /// Adds a committed event to the history.
    pub(super) fn record(&mut self, event: Recorded) {
        self.history.push_back(event);
        while self.history.len() > HISTORY_LEN {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
    }

    /// Puts or removes one object, keeping the indexes in step. Returns what was there.
    pub(crate) fn set(&mut self, key: ObjKey, object: Option<Arc<Value>>) -> Option<Arc<Value>> {
        let previous = match &object {
            Some(obj) => self.objects.insert(key.clone(), obj.clone()),
            None => self.objects.remove(&key),
        };
        if let Some(node) = previous.as_deref().and_then(|p| node_taken(&key, p))
            && let Some(n) = self.pods_on_node.get_mut(node)
        {
            *n -= 1;
            if *n == 0 {
                self.pods_on_node.remove(node);
            }
        }
        if let Some(node) = object.as_deref().and_then(|o| node_taken(&key, o)) {
            *self.pods_on_node.entry(node.to_string()).or_default() += 1;
        }
        if let Some(prev) = &previous {
            for uid in owner_uids(prev) {
                if let Some(set) = self.dependents.get_mut(&uid) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.dependents.remove(&uid);
                    }
                }
            }
        }
        if let Some(obj) = &object {
            for uid in owner_uids(obj) {
                self.dependents.entry(uid).or_default().insert(key.clone());
            }
        }
        if key.res == CRD_KEY {
            self.registry.set_crd(&key.name, object.as_deref());
        }
        previous
    }
}

/// The node a pod takes room on: the one it is bound to, until it finishes.
fn node_taken<'a>(key: &ObjKey, obj: &'a Value) -> Option<&'a str> {
    if key.res != "/pods" {
        return None;
    }
    let node = obj["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())?;
    let finished = matches!(
        obj["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    (!finished).then_some(node)
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The changes of one write, applied to the state as they are staged so later reads in the
/// same write (and later writes in the batch) see them, and undone if the write fails.
pub struct Tx<'a> {
    state: &'a mut State,
    undo: Vec<(ObjKey, Option<Arc<Value>>)>,
    start_rv: u64,
    pending: Vec<Arc<Event>>,
    kept: Vec<Arc<Event>>,
    /// A dry run: what it returns shows the versions stored, not versions never written.
    dry_run: bool,
}

impl<'a> Tx<'a> {
    pub(super) fn new(state: &'a mut State) -> Self {
        let start_rv = state.rv;
        Tx {
            state,
            undo: Vec::new(),
            start_rv,
            pending: Vec::new(),
            kept: Vec::new(),
            dry_run: false,
        }
    }

    /// Marks this transaction a dry run (it will be discarded): objects it puts keep the
    /// resourceVersion stored before, and new ones have none, as a real server answers.
    pub(super) fn set_dry_run(&mut self) {
        self.dry_run = true;
    }

    pub fn state(&self) -> &State {
        self.state
    }

    pub fn get(&self, key: &ObjKey) -> Option<Arc<Value>> {
        self.state.get(key)
    }

    /// Stores `object` at `key` with a fresh resourceVersion and returns it as stored.
    pub fn put(&mut self, key: ObjKey, mut object: Value) -> Arc<Value> {
        let rv = self.next_rv();
        if self.dry_run {
            match self.state.get(&key) {
                Some(stored) => {
                    object["metadata"]["resourceVersion"] =
                        stored["metadata"]["resourceVersion"].clone();
                }
                None => {
                    if let Some(meta) = object["metadata"].as_object_mut() {
                        meta.remove("resourceVersion");
                    }
                }
            }
        } else {
            object["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        }
        let object = Arc::new(object);
        let previous = self.state.set(key.clone(), Some(object.clone()));
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.undo.push((key.clone(), previous.clone()));
        self.pending.push(Arc::new(Event {
            rv,
            kind,
            key,
            object: object.clone(),
            previous,
        }));
        object
    }

    /// Removes the object at `key`; returns its last state, stamped with the deletion's version.
    pub fn remove(&mut self, key: &ObjKey) -> Option<Arc<Value>> {
        let previous = self.state.set(key.clone(), None)?;
        let rv = self.next_rv();
        let mut last = (*previous).clone();
        if !self.dry_run {
            last["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        }
        let last = Arc::new(last);
        self.undo.push((key.clone(), Some(previous)));
        self.pending.push(Arc::new(Event {
            rv,
            kind: EventType::Deleted,
            key: key.clone(),
            object: last.clone(),
            previous: None,
        }));
        Some(last)
    }

    fn next_rv(&mut self) -> u64 {
        self.state.rv += 1;
        self.state.rv
    }

    /// The write succeeded: its changes stay.
    pub(super) fn keep(&mut self) {
        self.undo.clear();
        self.kept.append(&mut self.pending);
        self.start_rv = self.state.rv;
    }

    /// The write failed (or was a dry run): undo what it staged.
    pub(super) fn discard(&mut self) {
        while let Some((key, previous)) = self.undo.pop() {
            self.state.set(key, previous);
        }
        self.pending.clear();
        self.state.rv = self.start_rv;
    }

    pub(super) fn into_events(mut self) -> Vec<Arc<Event>> {
        // A job that neither kept nor discarded (it cannot happen through `Store`) keeps nothing.
        self.discard();
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(rv: u64) -> Recorded {
        Recorded::of(&Event {
            rv,
            kind: EventType::Modified,
            key: ObjKey::new("/configmaps", "default", "x"),
            object: Arc::new(json!({})),
            previous: None,
        })
    }

    #[test]
    fn history_answers_until_compacted() {
        let mut state = State::new();
        for rv in 1..=(HISTORY_LEN as u64 + 10) {
            state.record(event(rv));
        }
        assert_eq!(
            state.history_since(HISTORY_LEN as u64).map(|h| h.len()),
            Some(10)
        );
        assert!(
            state.history_since(11).is_some(),
            "the oldest kept event can be resumed after"
        );
        assert!(
            state.history_since(5).is_none(),
            "versions compacted away are gone (410)"
        );
    }

    #[test]
    fn pods_on_a_node_are_counted_until_they_finish_or_go() {
        let mut state = State::new();
        let pod = |name: &str, node: &str, phase: &str| {
            (
                ObjKey::new("/pods", "default", name),
                json!({"metadata": {"name": name}, "spec": {"nodeName": node}, "status": {"phase": phase}}),
            )
        };
        let mut tx = Tx::new(&mut state);
        for (key, obj) in [
            pod("a", "n1", "Running"),
            pod("b", "n1", "Pending"),
            pod("c", "", "Pending"),
            pod("d", "n2", "Succeeded"),
        ] {
            tx.put(key, obj);
        }
        tx.keep();
        assert_eq!(
            (tx.state().pods_on_node("n1"), tx.state().pods_on_node("n2")),
            (2, 0)
        );
        let (key, done) = pod("a", "n1", "Failed");
        tx.put(key, done);
        tx.remove(&ObjKey::new("/pods", "default", "b"));
        assert_eq!(tx.state().pods_on_node("n1"), 0);
        tx.discard();
        assert_eq!(
            state.pods_on_node("n1"),
            2,
            "undoing a write restores the count"
        );
        let mut cm = pod("x", "n1", "Running");
        cm.0.res = "/configmaps".into();
        Tx::new(&mut state).put(cm.0, cm.1);
        assert_eq!(state.pods_on_node("n1"), 2, "only pods take room");
    }

    #[test]
    fn a_discarded_write_leaves_no_trace() {
        let mut state = State::new();
        let mut tx = Tx::new(&mut state);
        tx.put(
            ObjKey::new("/configmaps", "default", "a"),
            json!({"metadata": {}}),
        );
        tx.keep();
        tx.put(
            ObjKey::new("/configmaps", "default", "b"),
            json!({"metadata": {}}),
        );
        tx.remove(&ObjKey::new("/configmaps", "default", "a"));
        tx.discard();
        let events = tx.into_events();
        assert_eq!(events.len(), 1);
        assert_eq!(state.len(), 1);
        assert_eq!(state.resource_version(), 1);
        assert!(
            state
                .get(&ObjKey::new("/configmaps", "default", "a"))
                .is_some()
        );
    }
}
