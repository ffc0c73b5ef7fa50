//! Protobuf request bodies. kubectl's typed clients (`kubectl create configmap|secret|
//! deployment|job|…`, `kubectl run`, `kubectl auth can-i`) send protobuf whatever the server:
//! the magic `k8s\0`, then a `runtime.Unknown` whose `raw` is the object's message from
//! k8s.io/api. The sandbox decodes it against those messages' descriptors and works on the
//! JSON it converts it to; its responses stay JSON, which those clients also accept.

mod json;
mod schema;

use prost_reflect::{DynamicMessage, Value as Pb};
use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry::Resource;

const MAGIC: &[u8] = b"k8s\0";
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The JSON form of a protobuf create or update body. Its kind is the envelope's, or `res`'s
/// when the envelope names none.
pub fn object(body: &[u8], res: Option<&Resource>) -> ApiResult<Value> {
    let bad = |why: &str| ApiError::bad_request(format!("the protobuf request body {why}"));
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("does not start with the magic bytes \"k8s\\0\""))?;
    let envelope = schema::message("k8s.io.apimachinery.pkg.runtime.Unknown")
        .ok_or_else(|| ApiError::internal("the protobuf descriptors are missing"))?;
    let unknown = DynamicMessage::decode(envelope, unknown)
        .map_err(|e| bad(&format!("is not a runtime.Unknown: {e}")))?;
    let text = |msg: &DynamicMessage, field: &str| match msg.get_field_by_name(field).as_deref() {
        Some(Pb::String(s)) => s.clone(),
        _ => String::new(),
    };
    let encoding = text(&unknown, "contentEncoding");
    if !encoding.is_empty() {
        return Err(bad(&format!(
            "has an unsupported content encoding {encoding:?}"
        )));
    }
    let (mut api_version, mut kind) = match unknown.get_field_by_name("typeMeta").as_deref() {
        Some(Pb::Message(meta)) => (text(meta, "apiVersion"), text(meta, "kind")),
        _ => Default::default(),
    };
    if kind.is_empty()
        && let Some(res) = res
    {
        (api_version, kind) = (res.api_version(), res.kind.clone());
    }
    let Some(descriptor) = schema::kind(&api_version, &kind) else {
        return Err(ApiError::unsupported_media_type(CONTENT_TYPE));
    };
    let raw = match unknown.get_field_by_name("raw").as_deref() {
        Some(Pb::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let name = descriptor.full_name().to_owned();
    let msg = DynamicMessage::decode(descriptor, raw)
        .map_err(|e| bad(&format!("is not a valid {name}: {e}")))?;
    let fields = json::message(&msg).map_err(|e| bad(&format!("has a bad {name}: {e}")))?;
    // apiVersion and kind first, as in Kubernetes JSON (the messages do not carry them).
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), api_version.into());
    obj.insert("kind".into(), kind.into());
    if let Some(Value::Object(fields)) = fields {
        obj.extend(fields);
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use prost_reflect::MapKey;
    use prost_reflect::prost::Message;
    use serde_json::json;

    use super::*;
    use crate::registry::Registry;

    /// A protobuf body as kubectl sends it: `obj` wrapped in a runtime.Unknown.
    fn body(api_version: &str, kind: &str, obj: &DynamicMessage) -> Vec<u8> {
        envelope(api_version, kind, obj.encode_to_vec())
    }

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let mut meta = DynamicMessage::new(
            schema::message("k8s.io.apimachinery.pkg.runtime.TypeMeta").unwrap(),
        );
        meta.set_field_by_name("apiVersion", Pb::String(api_version.into()));
        meta.set_field_by_name("kind", Pb::String(kind.into()));
        let mut unknown = DynamicMessage::new(
            schema::message("k8s.io.apimachinery.pkg.runtime.Unknown").unwrap(),
        );
        unknown.set_field_by_name("typeMeta", Pb::Message(meta));
        unknown.set_field_by_name("raw", Pb::Bytes(raw.into()));
        [MAGIC, &unknown.encode_to_vec()].concat()
    }

    fn config_map() -> DynamicMessage {
        let mut meta = DynamicMessage::new(
            schema::message("k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta").unwrap(),
        );
        meta.set_field_by_name("name", Pb::String("c".into()));
        meta.set_field_by_name("namespace", Pb::String(String::new()));
        let mut cm = DynamicMessage::new(schema::kind("v1", "ConfigMap").unwrap());
        cm.set_field_by_name("metadata", Pb::Message(meta));
        let data = [(MapKey::String("a".into()), Pb::String("1".into()))];
        cm.set_field_by_name("data", Pb::Map(data.into()));
        cm
    }

    #[test]
    fn decodes_a_config_map() {
        let obj = object(&body("v1", "ConfigMap", &config_map()), None).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
        );
        assert_eq!(
            obj.as_object().unwrap().keys().next().unwrap(),
            "apiVersion"
        );
    }

    #[test]
    fn the_resource_names_the_kind_when_the_envelope_does_not() {
        let registry = Registry::new();
        let res = registry.find("", "v1", "configmaps").unwrap();
        let obj = object(&body("", "", &config_map()), Some(&res)).unwrap();
        assert_eq!(obj["kind"], "ConfigMap");
        assert_eq!(obj["data"]["a"], "1");
    }

    #[test]
    fn bad_bodies_are_400s() {
        let good = body("v1", "ConfigMap", &config_map());
        for bad in [&b"{}"[..], &good[..good.len() - 3], b"k8s\0\xff\xff\xff"] {
            let err = object(bad, None).unwrap_err();
            assert_eq!(err.code, 400, "{}", err.message);
        }
    }

    #[test]
    fn kinds_without_a_message_are_415s() {
        let obj = config_map();
        let err = object(&body("example.com/v1", "Widget", &obj), None).unwrap_err();
        assert_eq!(err.code, 415);
    }

    proptest::proptest! {
        /// Whatever the bytes of the object, decoding answers (a 400 at worst), never panics.
        #[test]
        fn any_object_bytes_decode_or_are_refused(
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        ) {
            for (api_version, kind) in [("apps/v1", "Deployment"), ("v1", "Pod"), ("v1", "Secret")] {
                if let Err(e) = object(&envelope(api_version, kind, raw.clone()), None) {
                    proptest::prop_assert_eq!(e.code, 400);
                }
            }
        }
    }
}
