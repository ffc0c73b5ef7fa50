//! The ingress controller's address: every Ingress is served on 127.0.0.1 (like k3s's Traefik
//! on a one-node cluster), reported in `status.loadBalancer.ingress`.

use std::sync::Arc;

use serde_json::{Value, json};

use super::Outcome;
use super::common::{resource, write_status};
use crate::error::ApiResult;
use crate::store::{ObjKey, Tx};

const MANAGER: &str = "kip-sandbox-ingress-controller";

pub fn reconcile(tx: &mut Tx, key: &ObjKey, ingress: Arc<Value>) -> ApiResult<Outcome> {
    let res = resource(tx, "networking.k8s.io", "ingresses")?;
    let mut status = ingress["status"].clone();
    status["loadBalancer"] = json!({"ingress": [{"ip": "127.0.0.1"}]});
    write_status(tx, &res, key, status, MANAGER)?;
    Ok(Outcome::done())
}
