//! Handlers for resource paths: get, list, create, update, patch, delete and subresources.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::body::{self, PatchKind};
use super::field_validation;
use super::route::ResourcePath;
use super::{Api, Req, exec, logs, portforward, protobuf, watch};
use crate::apply::{self, ApplyError};
use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::http::json_response;
use crate::ops::{self, DeleteOptions, Part, Propagation, WriteKind};
use crate::registry::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ObjKey, Tx};
use crate::strategy;
use crate::table::{IncludeObject, to_table};

pub async fn handle(api: &Api, path: &str, t: ResourcePath, req: Req) -> ApiResult<Response> {
    let res = api
        .store
        .read()
        .registry
        .find(&t.group, &t.version, &t.plural)
        .ok_or_else(|| ApiError::no_route(path))?;
    if t.namespace.is_some() && !res.namespaced {
        return Err(ApiError::no_route(path));
    }
    if res.is_review() && (t.name.is_some() || req.method != Method::POST) {
        return Err(ApiError::method_not_allowed(req.method.as_str()));
    }
    let watch = t.watch || req.flag("watch");
    crate::auth::authorize(
        &api.store.read(),
        &req.user,
        &crate::auth::Attributes::of(&req.method, &t, watch),
    )?;
    let Some(name) = t.name.clone() else {
        return collection(api, res, t, req).await;
    };
    if res.namespaced && t.namespace.is_none() {
        return Err(ApiError::no_route(path));
    }
    let ns = t.namespace.clone().unwrap_or_default();
    match t.subresource.as_deref() {
        None => item(api, res, ns, name, req).await,
        Some(sub) if res.has_subresource(sub) => match sub {
            "status" => object_write(api, res, ns, name, req, Part::Status).await,
            "scale" => scale(api, res, ns, name, req).await,
            "log" => logs::serve(api, &res, &ns, &name, &req),
            "portforward" => portforward::serve(api, &res, &ns, &name, req),
            "exec" => exec::serve(api, &res, &ns, &name, req),
            "finalize" => finalize(api, res, name, req).await,
            "token" => super::token_request::serve(api, &res, &ns, &name, &req),
            _ => Err(ApiError::no_route(path)),
        },
        Some(_) => Err(ApiError::no_route(path)),
    }
}

fn ok(code: StatusCode, v: &Value) -> ApiResult<Response> {
    Ok(json_response(code, v))
}

/// The object as this version of the resource shows it (CRDs may serve several versions).
pub(super) fn present(res: &Resource, obj: &Arc<Value>) -> Arc<Value> {
    let api_version = res.api_version();
    if obj["apiVersion"].as_str() == Some(api_version.as_str()) {
        return obj.clone();
    }
    Arc::new(convert::to_version(res, (**obj).clone()))
}

fn respond_object(
    req: &Req,
    res: &Resource,
    code: StatusCode,
    obj: &Arc<Value>,
) -> ApiResult<Response> {
    let obj = present(res, obj);
    if req.wants_table() {
        let table = to_table(
            &res.group,
            &res.kind,
            &res.printer_columns,
            &[obj.as_ref()],
            include_object(req),
            json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
            jiff::Timestamp::now(),
        );
        return ok(code, &table);
    }
    ok(code, &obj)
}

pub(super) fn include_object(req: &Req) -> IncludeObject {
    match req.param("includeObject") {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

async fn collection(
    api: &Api,
    res: Arc<Resource>,
    t: ResourcePath,
    req: Req,
) -> ApiResult<Response> {
    let ns = t.namespace.clone();
    match req.method {
        Method::GET if t.watch || req.flag("watch") => watch::serve(api, res, ns, &req),
        Method::GET => list(api, &res, ns.as_deref(), &req),
        Method::POST => {
            if res.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed("create without a namespace"));
            }
            let mut obj = if req.content_type() == protobuf::CONTENT_TYPE {
                protobuf::object(&req.body, Some(&res))?
            } else {
                body::object(&req)?
            };
            ops::check_type(&res, &mut obj)?;
            if res.is_review() {
                return super::review::answer(&api.store.read(), &req, &res, obj);
            }
            let unknown = field_validation::check(&req, &res, &obj)?;
            let obj = convert::to_storage(&res, obj);
            let manager = req.manager();
            let ns = ns.unwrap_or_default();
            let r = res.clone();
            let created = run(api, &req, move |tx| {
                ops::create(
                    tx,
                    &r,
                    &ns,
                    obj,
                    WriteKind::Update {
                        manager: &manager,
                        part: Part::Main,
                    },
                )
            })
            .await?;
            let response = respond_object(&req, &res, StatusCode::CREATED, &created)?;
            Ok(field_validation::warn(response, &unknown))
        }
        Method::DELETE => delete_collection(api, res, ns, req).await,
        _ => Err(ApiError::method_not_allowed(req.method.as_str())),
    }
}

/// Runs a write, or a dry run of it when the request says `dryRun=All`.
async fn run<T, F>(api: &Api, req: &Req, f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Tx) -> ApiResult<T> + Send + 'static,
{
    if req.dry_run()? {
        api.store.dry_run(f).await
    } else {
        api.store.write(f).await
    }
}

/// Label and field selectors of a list, watch or deletecollection.
pub struct Filter {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub fn from_req(req: &Req, res: &Resource) -> ApiResult<Filter> {
        let labels = match req.param("labelSelector") {
            Some(s) if !s.trim().is_empty() => Some(
                LabelSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("invalid labelSelector: {e}")))?,
            ),
            _ => None,
        };
        let fields = match req.param("fieldSelector") {
            Some(s) if !s.trim().is_empty() => {
                let fields = FieldSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("invalid fieldSelector: {e}")))?;
                let labels = req.param("labelSelector").unwrap_or("");
                super::field_labels::check(res, labels, s, &fields)?;
                Some(fields)
            }
            _ => None,
        };
        Ok(Filter { labels, fields })
    }

    /// Whether the list is of everything (no label or field selector).
    pub fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels
            .as_ref()
            .is_none_or(|l| l.matches(obj["metadata"]["labels"].as_object()))
            && self.fields.as_ref().is_none_or(|f| f.matches(obj))
    }
}

/// A `continue` token: the key of the last object of the page, hex-encoded.
fn encode_continue(key: &ObjKey) -> String {
    format!("{}\u{0}{}", key.ns, key.name)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(res: &str, token: &str) -> ApiResult<ObjKey> {
    let bad = || ApiError::bad_request("invalid continue token: list again without it");
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let text = String::from_utf8(bytes.ok_or_else(bad)?).map_err(|_| bad())?;
    let (ns, name) = text.split_once('\u{0}').ok_or_else(bad)?;
    Ok(ObjKey::new(res, ns, name))
}

fn list(api: &Api, res: &Resource, ns: Option<&str>, req: &Req) -> ApiResult<Response> {
    let filter = Filter::from_req(req, res)?;
    let limit = match req.param("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    let key = res.key();
    let after = match req.param("continue") {
        Some(token) if !token.is_empty() => Some(decode_continue(&key, token)?),
        _ => None,
    };
    let (items, rv, next) = {
        let state = api.store.read();
        let all: Box<dyn Iterator<Item = (&ObjKey, &Arc<Value>)>> = match &after {
            Some(after) => Box::new(state.list_after(&key, ns, after)),
            None => Box::new(state.list(&key, ns)),
        };
        let mut items: Vec<(ObjKey, Arc<Value>)> = Vec::new();
        let mut matching = all.filter(|(_, o)| filter.matches(o));
        let mut remaining = 0;
        for (k, obj) in matching.by_ref() {
            if limit > 0 && items.len() == limit {
                remaining = 1 + matching.count();
                break;
            }
            items.push((k.clone(), obj.clone()));
        }
        // The token names the last object returned, so the next page starts after it.
        let next = if remaining > 0 {
            items.last().map(|(k, _)| encode_continue(k))
        } else {
            None
        };
        (
            items,
            state.resource_version(),
            next.map(|t| (t, remaining)),
        )
    };
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some((token, remaining)) = next {
        metadata["continue"] = json!(token);
        // As the real server: counted only for a list without selectors.
        if filter.is_empty() {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    if req.wants_table() {
        let objects: Vec<Arc<Value>> = items.iter().map(|(_, o)| present(res, o)).collect();
        let refs: Vec<&Value> = objects.iter().map(|o| o.as_ref()).collect();
        let table = to_table(
            &res.group,
            &res.kind,
            &res.printer_columns,
            &refs,
            include_object(req),
            metadata,
            jiff::Timestamp::now(),
        );
        return ok(StatusCode::OK, &table);
    }
    let encoded = encode_items(api, res, &items).map_err(|e| ApiError::internal(e.to_string()))?;
    let head = json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": metadata,
    });
    // `{"kind":…,"apiVersion":…,"metadata":…,"items":[…]}`, the items spliced in as encoded.
    let head = serde_json::to_vec(&head).map_err(|e| ApiError::internal(e.to_string()))?;
    let size = head.len() + encoded.iter().map(|b| b.len() + 1).sum::<usize>() + 16;
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&head[..head.len() - 1]);
    bytes.extend_from_slice(br#","items":["#);
    for (i, item) in encoded.iter().enumerate() {
        if i > 0 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(item);
    }
    bytes.extend_from_slice(b"]}\n");
    let mut resp = Response::new(axum::body::Body::from(bytes));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Each listed object as this version of its resource shows it, encoded: from the cache when
/// the stored object is shown as it is.
fn encode_items(
    api: &Api,
    res: &Resource,
    items: &[(ObjKey, Arc<Value>)],
) -> serde_json::Result<Vec<bytes::Bytes>> {
    let api_version = res.api_version();
    if items
        .iter()
        .all(|(_, o)| o["apiVersion"].as_str() == Some(api_version.as_str()))
    {
        return api.encoded.encode_all(items);
    }
    items
        .iter()
        .map(|(_, o)| serde_json::to_vec(present(res, o).as_ref()).map(bytes::Bytes::from))
        .collect()
}

async fn item(
    api: &Api,
    res: Arc<Resource>,
    ns: String,
    name: String,
    req: Req,
) -> ApiResult<Response> {
    match req.method {
        Method::GET => {
            let obj = api
                .store
                .get(&ops::key(&res, &ns, &name))
                .ok_or_else(|| ApiError::not_found(&res.plural, &res.group, &name))?;
            respond_object(&req, &res, StatusCode::OK, &obj)
        }
        Method::PUT | Method::PATCH => object_write(api, res, ns, name, req, Part::Main).await,
        Method::DELETE => {
            let opts = delete_options(&req)?;
            let r = res.clone();
            let deleted = run(api, &req, move |tx| ops::delete(tx, &r, &ns, &name, &opts)).await?;
            respond_object(&req, &res, StatusCode::OK, &deleted)
        }
        _ => Err(ApiError::method_not_allowed(req.method.as_str())),
    }
}

/// GET, PUT or PATCH of an object or its status.
async fn object_write(
    api: &Api,
    res: Arc<Resource>,
    ns: String,
    name: String,
    req: Req,
    part: Part,
) -> ApiResult<Response> {
    let manager = req.manager();
    let r = res.clone();
    let mut unknown = Vec::new();
    let (obj, code) = match req.method {
        Method::GET => {
            let obj = api
                .store
                .get(&ops::key(&res, &ns, &name))
                .ok_or_else(|| ApiError::not_found(&res.plural, &res.group, &name))?;
            (obj, StatusCode::OK)
        }
        Method::PUT => {
            let mut obj = body::object(&req)?;
            ops::check_type(&res, &mut obj)?;
            unknown = field_validation::check(&req, &res, &obj)?;
            let obj = convert::to_storage(&res, obj);
            let updated = run(api, &req, move |tx| {
                ops::update(
                    tx,
                    &r,
                    &ns,
                    &name,
                    obj,
                    WriteKind::Update {
                        manager: &manager,
                        part,
                    },
                )
            })
            .await?;
            (updated, StatusCode::OK)
        }
        Method::PATCH => {
            let kind = body::patch_kind(&req)?;
            let patch = body::patch(&req, kind)?;
            // Merge and apply patches have the object's shape; a JSON patch is a list of
            // operations, not checked here.
            if matches!(kind, PatchKind::Merge | PatchKind::Apply) {
                unknown = field_validation::check(&req, &res, &patch)?;
            }
            let force = req.flag("force");
            run(api, &req, move |tx| {
                patch_object(tx, &r, &ns, &name, kind, patch, &manager, part, force)
            })
            .await?
        }
        _ => return Err(ApiError::method_not_allowed(req.method.as_str())),
    };
    let response = respond_object(&req, &res, code, &obj)?;
    Ok(field_validation::warn(response, &unknown))
}

/// Applies a patch of any kind; server-side apply creates the object when it is absent.
#[allow(clippy::too_many_arguments)]
fn patch_object(
    tx: &mut Tx,
    res: &Resource,
    ns: &str,
    name: &str,
    kind: PatchKind,
    patch: Value,
    manager: &str,
    part: Part,
    force: bool,
) -> ApiResult<(Arc<Value>, StatusCode)> {
    let key = ops::key(res, ns, name);
    let now = ops::now();
    let Some(old) = tx.get(&key) else {
        if kind != PatchKind::Apply || part != Part::Main {
            return Err(ApiError::not_found(&res.plural, &res.group, name));
        }
        let mut config = patch;
        ops::check_type(res, &mut config)?;
        check_name(res, &config, name)?;
        config["metadata"]["name"] = json!(name);
        strategy::strip_reset_fields(res, part, &mut config);
        let applied = apply::server_side_apply(None, &config, manager, force, &now)
            .map_err(|e| apply_error(res, name, e))?;
        let applied = convert::to_storage(res, applied);
        let created = ops::create(tx, res, ns, applied, WriteKind::Applied { part })?;
        return Ok((created, StatusCode::CREATED));
    };
    // A patch is made against the object as this version shows it.
    let view = present(res, &old);
    let mut new = match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            let mut doc = (*view).clone();
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| patch_failed(res, name, &e.to_string()))?;
            doc
        }
        PatchKind::Merge => {
            let mut doc = (*view).clone();
            json_patch::merge(&mut doc, &patch);
            doc
        }
        PatchKind::Strategic => {
            if res.custom {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json (not supported for custom resources: use a merge patch)",
                ));
            }
            crate::patch::strategic::strategic_merge(&view, &patch)
                .map_err(|e| patch_failed(res, name, &e))?
        }
        PatchKind::Apply => {
            let mut config = patch;
            ops::check_type(res, &mut config)?;
            check_name(res, &config, name)?;
            config["metadata"]["name"] = json!(name);
            // What this path's strategy resets is neither applied nor owned.
            strategy::strip_reset_fields(res, part, &mut config);
            apply::server_side_apply(Some(&view), &config, manager, force, &now)
                .map_err(|e| apply_error(res, name, e))?
        }
    };
    ops::check_type(res, &mut new)?;
    check_name(res, &new, name)?;
    let new = convert::to_storage(res, new);
    let how = match kind {
        PatchKind::Apply => WriteKind::Applied { part },
        _ => WriteKind::Update { manager, part },
    };
    let updated = ops::finish_write(tx, res, key, old, new, how)?;
    Ok((updated, StatusCode::OK))
}

fn check_name(res: &Resource, obj: &Value, name: &str) -> ApiResult<()> {
    match obj["metadata"]["name"].as_str() {
        Some(n) if n != name => Err(ApiError::bad_request(format!(
            "the name of the {} ({n}) does not match the name on the URL ({name})",
            res.kind
        ))),
        _ => Ok(()),
    }
}

fn patch_failed(res: &Resource, name: &str, why: &str) -> ApiError {
    ApiError::invalid(
        &res.kind,
        &res.group,
        name,
        &[("patch".into(), format!("the patch does not apply: {why}"))],
    )
}

fn apply_error(res: &Resource, name: &str, e: ApplyError) -> ApiError {
    match e {
        ApplyError::Invalid(msg) => {
            ApiError::invalid(&res.kind, &res.group, name, &[("body".into(), msg)])
        }
        ApplyError::Conflict(conflicts) => {
            let lines: Vec<String> = conflicts
                .iter()
                .map(|c| format!("conflict with {:?}: {}", c.manager, c.field))
                .collect();
            let mut err = ApiError::new(
                409,
                "Conflict",
                format!(
                    "Apply failed with {} conflict{}: {}",
                    conflicts.len(),
                    if conflicts.len() == 1 { "" } else { "s" },
                    lines.join("\n")
                ),
            );
            err.details = Some(json!({
                "name": name,
                "group": res.group,
                "kind": res.plural,
                "causes": conflicts.iter().map(|c| json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with {:?}", c.manager),
                    "field": c.field,
                })).collect::<Vec<_>>(),
            }));
            err
        }
    }
}

fn delete_options(req: &Req) -> ApiResult<DeleteOptions> {
    let body = if req.body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        body::json(&req.body)?
    };
    let mut opts = DeleteOptions::default();
    let policy = req
        .param("propagationPolicy")
        .map(String::from)
        .or_else(|| body["propagationPolicy"].as_str().map(String::from));
    if let Some(policy) = policy {
        opts.propagation = Some(Propagation::parse(&policy)?);
    } else if body["orphanDependents"].as_bool() == Some(true) || req.flag("orphanDependents") {
        opts.propagation = Some(Propagation::Orphan);
    }
    opts.grace_period_seconds = req
        .param("gracePeriodSeconds")
        .and_then(|g| g.parse().ok())
        .or_else(|| body["gracePeriodSeconds"].as_i64());
    opts.precondition_uid = body["preconditions"]["uid"].as_str().map(String::from);
    opts.precondition_rv = body["preconditions"]["resourceVersion"]
        .as_str()
        .map(String::from);
    Ok(opts)
}

async fn delete_collection(
    api: &Api,
    res: Arc<Resource>,
    ns: Option<String>,
    req: Req,
) -> ApiResult<Response> {
    let filter = Filter::from_req(&req, &res)?;
    let opts = delete_options(&req)?;
    let r = res.clone();
    let deleted = run(api, &req, move |tx| {
        let targets: Vec<ObjKey> = tx
            .state()
            .list(&r.key(), ns.as_deref())
            .filter(|(_, o)| filter.matches(o))
            .map(|(k, _)| k.clone())
            .collect();
        let mut deleted = Vec::new();
        for key in targets {
            deleted.push(ops::delete(tx, &r, &key.ns, &key.name, &opts)?);
        }
        Ok(deleted)
    })
    .await?;
    let items: Vec<Value> = deleted
        .iter()
        .map(|o| (*present(&res, o)).clone())
        .collect();
    ok(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": {},
            "items": items,
        }),
    )
}

/// The `autoscaling/v1 Scale` view of an object with replicas.
fn scale_of(obj: &Value) -> Value {
    let selector = crate::selector::from_label_selector_json(&obj["spec"]["selector"])
        .map(|s| s.to_string())
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

async fn scale(
    api: &Api,
    res: Arc<Resource>,
    ns: String,
    name: String,
    req: Req,
) -> ApiResult<Response> {
    let key = ops::key(&res, &ns, &name);
    let change = match req.method {
        Method::GET => None,
        Method::PUT => Some((None, body::object(&req)?)),
        Method::PATCH => {
            let kind = body::patch_kind(&req)?;
            Some((Some(kind), body::patch(&req, kind)?))
        }
        _ => return Err(ApiError::method_not_allowed(req.method.as_str())),
    };
    let Some((kind, change)) = change else {
        let obj = api
            .store
            .get(&key)
            .ok_or_else(|| ApiError::not_found(&res.plural, &res.group, &name))?;
        return ok(StatusCode::OK, &scale_of(&obj));
    };
    let manager = req.manager();
    let r = res.clone();
    let updated = run(api, &req, move |tx| {
        edit_object(tx, &r, key, &manager, Part::Main, |old| {
            let mut scale = scale_of(old);
            match kind {
                None => scale = change,
                Some(PatchKind::Json) => {
                    let ops: json_patch::Patch = serde_json::from_value(change)
                        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                    json_patch::patch(&mut scale, &ops)
                        .map_err(|e| patch_failed(&r, &name, &e.to_string()))?;
                }
                Some(_) => json_patch::merge(&mut scale, &change),
            }
            let replicas = scale["spec"]["replicas"]
                .as_i64()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "Scale",
                        "autoscaling",
                        &name,
                        &[(
                            "spec.replicas".into(),
                            "Invalid value: must be a non-negative integer".into(),
                        )],
                    )
                })?;
            let mut new = old.clone();
            new["spec"]["replicas"] = json!(replicas);
            if let Some(rv) = scale["metadata"]["resourceVersion"].as_str() {
                new["metadata"]["resourceVersion"] = json!(rv);
            }
            Ok(new)
        })
    })
    .await?;
    ok(StatusCode::OK, &scale_of(&updated))
}

/// `PUT /api/v1/namespaces/{name}/finalize`: sets the namespace's spec.finalizers.
async fn finalize(api: &Api, res: Arc<Resource>, name: String, req: Req) -> ApiResult<Response> {
    if req.method != Method::PUT {
        return Err(ApiError::method_not_allowed(req.method.as_str()));
    }
    let body = body::object(&req)?;
    let manager = req.manager();
    let r = res.clone();
    let updated = run(api, &req, move |tx| {
        let key = ops::key(&r, "", &name);
        // The finalize strategy takes only `spec.finalizers` from the body.
        edit_object(tx, &r, key, &manager, Part::Finalize, |_| Ok(body))
    })
    .await?;
    respond_object(&req, &res, StatusCode::OK, &updated)
}

/// Reads an object (404 when absent), lets `edit` derive its new state, and writes that as an
/// update of `part` by `manager`.
fn edit_object(
    tx: &mut Tx,
    res: &Resource,
    key: ObjKey,
    manager: &str,
    part: Part,
    edit: impl FnOnce(&Value) -> ApiResult<Value>,
) -> ApiResult<Arc<Value>> {
    let old = tx
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&res.plural, &res.group, &key.name))?;
    let new = edit(&old)?;
    ops::finish_write(tx, res, key, old, new, WriteKind::Update { manager, part })
}
