//! Objects between scripts and kube: script maps to `DynamicObject`s and JSON values, and back.

use kube::api::DynamicObject;
use rhai::{Dynamic, EvalAltResult, Map};
use serde_json::Value;

use super::RhaiResult;
use crate::errors::Kind;
use crate::host;

pub(super) fn to_object(obj: Map) -> RhaiResult<DynamicObject> {
    rhai::serde::from_dynamic(&Dynamic::from_map(obj)).map_err(|e| invalid_object(&e))
}

pub(super) fn invalid_object(e: &dyn std::fmt::Display) -> Box<EvalAltResult> {
    host::error(Kind::Invalid, format!("not a Kubernetes object: {e}"))
}

pub(super) fn to_json(map: Map) -> RhaiResult<Value> {
    rhai::serde::from_dynamic(&Dynamic::from_map(map))
        .map_err(|e| host::error(Kind::Invalid, format!("not a JSON value: {e}")))
}

pub(super) fn to_map(obj: &DynamicObject) -> RhaiResult<Map> {
    rhai::serde::to_dynamic(obj)?
        .try_cast::<Map>()
        .ok_or_else(|| host::error(Kind::Internal, "an object did not convert to a map"))
}
