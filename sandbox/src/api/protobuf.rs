//! The few protobuf request bodies the sandbox reads. kubectl's typed clients send protobuf
//! whatever the server, so without this `kubectl auth can-i`, `kubectl auth whoami` and
//! `kubectl create job --from=cronjob/x` could not work. Decoding any kind would need the
//! whole generated schema; instead the review kinds are read field by field (they are small)
//! and a Job only for its metadata: a Job kubectl instantiates from a CronJob takes its spec
//! from that CronJob's job template, which is what kubectl copied into it. Anything else is
//! refused as before (use `kubectl create -f`).

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::store::{ObjKey, State};

const MAGIC: &[u8] = b"k8s\0";
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const INSTANTIATE: &str = "cronjob.kubernetes.io/instantiate";

/// The JSON form of a protobuf create body for `res` in namespace `ns`, when it is one the
/// sandbox reads.
pub fn object(res: &Resource, ns: &str, body: &[u8], state: &State) -> ApiResult<Value> {
    let refuse = || ApiError::unsupported_media_type(CONTENT_TYPE);
    let raw = body
        .strip_prefix(MAGIC)
        .and_then(|unknown| field(unknown, 2))
        .ok_or_else(refuse)?;
    let mut obj = json!({"apiVersion": res.api_version(), "kind": res.kind});
    if let Some(meta) = field(raw, 1) {
        obj["metadata"] = object_meta(meta);
    }
    let spec = field(raw, 2).unwrap_or_default();
    match res.kind.as_str() {
        "SelfSubjectAccessReview" => {
            let mut s = Map::new();
            if let Some(attrs) = field(spec, 1) {
                let names = [
                    "namespace",
                    "verb",
                    "group",
                    "version",
                    "resource",
                    "subresource",
                    "name",
                ];
                s.insert("resourceAttributes".into(), strings(attrs, &names));
            }
            if let Some(attrs) = field(spec, 2) {
                s.insert(
                    "nonResourceAttributes".into(),
                    strings(attrs, &["path", "verb"]),
                );
            }
            obj["spec"] = Value::Object(s);
        }
        "SelfSubjectRulesReview" => obj["spec"] = strings(spec, &["namespace"]),
        "SelfSubjectReview" => {}
        "Job" => obj["spec"] = instantiated_spec(&obj, ns, state).ok_or_else(refuse)?,
        _ => return Err(refuse()),
    }
    Ok(obj)
}

/// The job template's spec of the CronJob a manually instantiated Job belongs to.
fn instantiated_spec(job: &Value, ns: &str, state: &State) -> Option<Value> {
    let meta = &job["metadata"];
    if meta["annotations"][INSTANTIATE] != "manual" {
        return None;
    }
    let owner = meta["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "CronJob")?;
    let cron_job = state.get(&ObjKey::new("batch/cronjobs", ns, owner["name"].as_str()?))?;
    (cron_job["metadata"]["uid"] == owner["uid"])
        .then(|| cron_job["spec"]["jobTemplate"]["spec"].clone())
}

fn object_meta(bytes: &[u8]) -> Value {
    let mut meta = strings(bytes, &["name", "generateName", "namespace"]);
    for (number, name) in [(11, "labels"), (12, "annotations")] {
        let map: Map<String, Value> = fields(bytes, number)
            .map(|entry| {
                let text = |n| field(entry, n).map(|b| String::from_utf8_lossy(b).into_owned());
                (
                    text(1).unwrap_or_default(),
                    json!(text(2).unwrap_or_default()),
                )
            })
            .collect();
        if !map.is_empty() {
            meta[name] = Value::Object(map);
        }
    }
    let owners: Vec<Value> = fields(bytes, 13)
        .map(|r| {
            let mut owner = strings(r, &["kind", "", "name", "uid", "apiVersion"]);
            for (number, name) in [(6, "controller"), (7, "blockOwnerDeletion")] {
                if let Some(v) = varint_field(r, number) {
                    owner[name] = json!(v != 0);
                }
            }
            owner
        })
        .collect();
    if !owners.is_empty() {
        meta["ownerReferences"] = json!(owners);
    }
    let finalizers: Vec<Value> = fields(bytes, 14)
        .map(|f| json!(String::from_utf8_lossy(f)))
        .collect();
    if !finalizers.is_empty() {
        meta["finalizers"] = json!(finalizers);
    }
    meta
}

/// The string fields `names[i]` (field number `i + 1`; empty names are skipped).
fn strings(bytes: &[u8], names: &[&str]) -> Value {
    let mut out = Map::new();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            continue;
        }
        if let Some(v) = field(bytes, i as u64 + 1) {
            out.insert(name.to_string(), json!(String::from_utf8_lossy(v)));
        }
    }
    Value::Object(out)
}

/// One decoded field: its number and either a varint or a length-delimited payload.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of a message, stopping at the first malformed one.
fn iter(mut bytes: &[u8]) -> impl Iterator<Item = (u64, Wire<'_>)> {
    std::iter::from_fn(move || {
        let tag = varint(&mut bytes)?;
        let wire = match tag & 7 {
            0 => Wire::Varint(varint(&mut bytes)?),
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                let (payload, rest) = bytes.split_at_checked(len)?;
                bytes = rest;
                Wire::Bytes(payload)
            }
            1 => {
                bytes = bytes.get(8..)?;
                Wire::Fixed
            }
            5 => {
                bytes = bytes.get(4..)?;
                Wire::Fixed
            }
            _ => return None,
        };
        Some((tag >> 3, wire))
    })
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn fields(bytes: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    iter(bytes).filter_map(move |(n, w)| match w {
        Wire::Bytes(b) if n == number => Some(b),
        _ => None,
    })
}

fn field(bytes: &[u8], number: u64) -> Option<&[u8]> {
    fields(bytes, number).last()
}

fn varint_field(bytes: &[u8], number: u64) -> Option<u64> {
    iter(bytes)
        .filter_map(|(n, w)| match w {
            Wire::Varint(v) if n == number => Some(v),
            _ => None,
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn len_field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn reads_a_self_subject_access_review() {
        let attrs = [
            len_field(2, b"create"),
            len_field(3, b"apps"),
            len_field(5, b"deployments"),
        ]
        .concat();
        let review = [
            len_field(1, &len_field(1, b"")),
            len_field(2, &len_field(1, &attrs)),
        ]
        .concat();
        let body = [MAGIC, &len_field(2, &review)].concat();
        let registry = Registry::new();
        let res = registry
            .find("authorization.k8s.io", "v1", "selfsubjectaccessreviews")
            .unwrap();
        let obj = object(&res, "", &body, &State::new()).unwrap();
        assert_eq!(obj["spec"]["resourceAttributes"]["verb"], "create");
        assert_eq!(obj["spec"]["resourceAttributes"]["resource"], "deployments");
        assert_eq!(obj["kind"], "SelfSubjectAccessReview");
    }

    #[test]
    fn reads_metadata_maps_and_owners() {
        let entry = [
            len_field(1, b"cronjob.kubernetes.io/instantiate"),
            len_field(2, b"manual"),
        ]
        .concat();
        let owner = [
            len_field(1, b"CronJob"),
            len_field(3, b"tick"),
            vec![6 << 3, 1],
        ]
        .concat();
        let meta = [
            len_field(1, b"now"),
            len_field(12, &entry),
            len_field(13, &owner),
        ]
        .concat();
        let meta = object_meta(&meta);
        assert_eq!(meta["name"], "now");
        assert_eq!(meta["annotations"][INSTANTIATE], "manual");
        assert_eq!(meta["ownerReferences"][0]["name"], "tick");
        assert_eq!(meta["ownerReferences"][0]["controller"], true);
    }

    #[test]
    fn other_kinds_are_refused() {
        let registry = Registry::new();
        let res = registry.find("", "v1", "configmaps").unwrap();
        let body = [MAGIC, &len_field(2, &len_field(1, &len_field(1, b"x")))].concat();
        assert_eq!(
            object(&res, "default", &body, &State::new())
                .unwrap_err()
                .code,
            415
        );
    }
}
