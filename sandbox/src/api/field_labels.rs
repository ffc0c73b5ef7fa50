//! The fields each kind can be selected by (`fieldSelector`): every kind its name and
//! namespace, some kinds a few more, as the real server's field label conversions allow. A
//! selector on any other field is refused, as a real server refuses it, rather than matching
//! nothing (or everything) without a word.

use crate::error::ApiError;
use crate::registry::Resource;
use crate::selector::FieldSelector;
use crate::validation::go_quote;

/// The fields `res` can be selected by besides `metadata.name` and `metadata.namespace`.
fn kind_fields(res: &Resource) -> &'static [&'static str] {
    match res.key().as_str() {
        "/pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        "/events" | "events.k8s.io/events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "/secrets" => &["type"],
        "/namespaces" => &["status.phase"],
        "/nodes" => &["spec.unschedulable"],
        "/services" => &["spec.clusterIP", "spec.type"],
        "/replicationcontrollers" | "apps/replicasets" => &["status.replicas"],
        "batch/jobs" => &["status.successful"],
        _ => &[],
    }
}

/// Refuses a selector naming a field `res` cannot be selected by, in the real server's words.
pub fn check(
    res: &Resource,
    labels: &str,
    selector: &str,
    fields: &FieldSelector,
) -> Result<(), ApiError> {
    let allowed = kind_fields(res);
    let unsupported = fields.requirements().iter().find(|r| {
        !matches!(r.field.as_str(), "metadata.name" | "metadata.namespace")
            && !allowed.contains(&r.field.as_str())
    });
    match unsupported {
        None => Ok(()),
        Some(r) => Err(ApiError::bad_request(format!(
            "Unable to find {} that match label selector {}, field selector {}: field label not supported: {}",
            go_quote(&format!(
                "{}/{}, Resource={}",
                res.group, res.version, res.plural
            )),
            go_quote(labels),
            go_quote(selector),
            r.field
        ))),
    }
}
