//! Printers for the platform kinds: CronJobs, ReplicationControllers, storage, disruption
//! budgets, network policies, endpoint slices, leases and API services. Columns and cells as
//! the apiserver's printers; descriptions shortened.

use jiff::Timestamp;
use serde_json::Value;

use super::printers::{
    Printer, age_cell, at, columns, formatted_selector_cell, int, list, name_cell, or_none,
    quantity, since, text,
};
use super::resources::access_modes;
use super::workloads::{
    CONTAINERS_DESCRIPTION, IMAGES_DESCRIPTION, SELECTOR_DESCRIPTION, template_containers,
};

pub(super) fn cron_job() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            ("Schedule", "string", 0, "The schedule in Cron format."),
            (
                "Timezone",
                "string",
                0,
                "The time zone name for the given schedule.",
            ),
            (
                "Suspend",
                "boolean",
                0,
                "Whether subsequent executions are suspended.",
            ),
            ("Active", "integer", 0, "Number of currently running jobs."),
            (
                "Last Schedule",
                "string",
                0,
                "When the job was last successfully scheduled.",
            ),
            ("Age", "string", 0, ""),
            ("Containers", "string", 1, CONTAINERS_DESCRIPTION),
            ("Images", "string", 1, IMAGES_DESCRIPTION),
            ("Selector", "string", 1, SELECTOR_DESCRIPTION),
        ]),
        cells: |cj, now| {
            let containers = list(
                cj,
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "containers",
                ],
            );
            let [names, images] = super::printers::container_cells(containers);
            let last = match text(cj, &["status", "lastScheduleTime"]) {
                "" => "<none>".to_string(),
                t => since(t, now),
            };
            vec![
                name_cell(cj),
                Value::from(text(cj, &["spec", "schedule"])),
                Value::from(or_none(text(cj, &["spec", "timeZone"]).to_string())),
                // printBoolPtr: the column says boolean, the cell is text.
                Value::from(
                    match at(cj, &["spec", "suspend"]).and_then(Value::as_bool) {
                        Some(true) => "True",
                        Some(false) => "False",
                        None => "<unset>",
                    },
                ),
                Value::from(list(cj, &["status", "active"]).len()),
                Value::from(last),
                age_cell(cj, now),
                names,
                images,
                formatted_selector_cell(cj, &["spec", "jobTemplate", "spec", "selector"]),
            ]
        },
    }
}

pub(super) fn replication_controller() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            ("Desired", "integer", 0, "Number of desired pods."),
            ("Current", "integer", 0, "Number of actually running pods."),
            (
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this controller.",
            ),
            ("Age", "string", 0, ""),
            ("Containers", "string", 1, CONTAINERS_DESCRIPTION),
            ("Images", "string", 1, IMAGES_DESCRIPTION),
            ("Selector", "string", 1, SELECTOR_DESCRIPTION),
        ]),
        cells: |rc, now| {
            let [containers, images] = template_containers(rc);
            let selector = at(rc, &["spec", "selector"])
                .and_then(Value::as_object)
                .map(|s| {
                    s.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name_cell(rc),
                Value::from(int(rc, &["spec", "replicas"])),
                Value::from(int(rc, &["status", "replicas"])),
                Value::from(int(rc, &["status", "readyReplicas"])),
                age_cell(rc, now),
                containers,
                images,
                Value::from(or_none(selector)),
            ]
        },
    }
}

pub(super) fn storage_class() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Provisioner",
                "string",
                0,
                "Indicates the type of the provisioner.",
            ),
            (
                "ReclaimPolicy",
                "string",
                0,
                "Dynamically provisioned PersistentVolumes of this storage class are created with this reclaimPolicy.",
            ),
            (
                "VolumeBindingMode",
                "string",
                0,
                "Indicates how PersistentVolumeClaims should be provisioned and bound.",
            ),
            (
                "AllowVolumeExpansion",
                "string",
                0,
                "Shows whether the storage class allow volume expand.",
            ),
            ("Age", "string", 0, ""),
        ]),
        cells: |sc, now| {
            let mut name = text(sc, &["metadata", "name"]).to_string();
            let annotations = [
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ];
            if annotations
                .iter()
                .any(|a| text(sc, &["metadata", "annotations", a]) == "true")
            {
                name.push_str(" (default)");
            }
            let or = |field: &str, default: &str| match text(sc, &[field]) {
                "" => default.to_string(),
                v => v.to_string(),
            };
            let expansion =
                at(sc, &["allowVolumeExpansion"]).and_then(Value::as_bool) == Some(true);
            vec![
                Value::from(name),
                Value::from(text(sc, &["provisioner"])),
                Value::from(or("reclaimPolicy", "Delete")),
                Value::from(or("volumeBindingMode", "Immediate")),
                Value::from(expansion.to_string()),
                age_cell(sc, now),
            ]
        },
    }
}

pub(super) fn persistent_volume() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Capacity",
                "string",
                0,
                "capacity is the description of the persistent volume's resources and capacity.",
            ),
            (
                "Access Modes",
                "string",
                0,
                "accessModes contains all ways the volume can be mounted.",
            ),
            (
                "Reclaim Policy",
                "string",
                0,
                "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
            ),
            (
                "Status",
                "string",
                0,
                "phase indicates if a volume is available, bound to a claim, or released by a claim.",
            ),
            (
                "Claim",
                "string",
                0,
                "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
            ),
            (
                "StorageClass",
                "string",
                0,
                "storageClassName is the name of StorageClass to which this persistent volume belongs.",
            ),
            (
                "VolumeAttributesClass",
                "string",
                0,
                "Name of VolumeAttributesClass to which this persistent volume belongs.",
            ),
            (
                "Reason",
                "string",
                0,
                "reason is a brief CamelCase string that describes any failure.",
            ),
            ("Age", "string", 0, ""),
            (
                "VolumeMode",
                "string",
                1,
                "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
            ),
        ]),
        cells: |pv, now| {
            let claim = match at(pv, &["spec", "claimRef"]) {
                Some(c) => format!("{}/{}", text(c, &["namespace"]), text(c, &["name"])),
                None => String::new(),
            };
            let phase = if at(pv, &["metadata", "deletionTimestamp"]).is_some() {
                "Terminating"
            } else {
                text(pv, &["status", "phase"])
            };
            let unset = |field: &str| match at(pv, &["spec", field]) {
                Some(v) => Value::from(v.as_str().unwrap_or("")),
                None => Value::from("<unset>"),
            };
            vec![
                name_cell(pv),
                Value::from(quantity(at(pv, &["spec", "capacity", "storage"]))),
                Value::from(access_modes(list(pv, &["spec", "accessModes"]))),
                Value::from(text(pv, &["spec", "persistentVolumeReclaimPolicy"])),
                Value::from(phase),
                Value::from(claim),
                Value::from(text(pv, &["spec", "storageClassName"])),
                unset("volumeAttributesClassName"),
                Value::from(text(pv, &["status", "reason"])),
                age_cell(pv, now),
                unset("volumeMode"),
            ]
        },
    }
}

pub(super) fn pod_disruption_budget() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Min Available",
                "string",
                0,
                "The minimum number of pods that must be available simultaneously.",
            ),
            (
                "Max Unavailable",
                "string",
                0,
                "The maximum number of pods that may be unavailable simultaneously.",
            ),
            (
                "Allowed Disruptions",
                "integer",
                0,
                "Calculated number of pods that may be disrupted at this time.",
            ),
            ("Age", "string", 0, ""),
        ]),
        cells: |pdb, now| {
            let int_or_string = |field: &str| match at(pdb, &["spec", field]) {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => "N/A".to_string(),
            };
            vec![
                name_cell(pdb),
                Value::from(int_or_string("minAvailable")),
                Value::from(int_or_string("maxUnavailable")),
                Value::from(int(pdb, &["status", "disruptionsAllowed"])),
                age_cell(pdb, now),
            ]
        },
    }
}

pub(super) fn network_policy() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Pod-Selector",
                "string",
                0,
                "Selects the pods to which this NetworkPolicy object applies.",
            ),
            ("Age", "string", 0, ""),
        ]),
        cells: |np, now| {
            vec![
                name_cell(np),
                formatted_selector_cell(np, &["spec", "podSelector"]),
                age_cell(np, now),
            ]
        },
    }
}

pub(super) fn endpoint_slice() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "AddressType",
                "string",
                0,
                "The type of address carried by this EndpointSlice.",
            ),
            (
                "Ports",
                "string",
                0,
                "The ports exposed by this EndpointSlice.",
            ),
            (
                "Endpoints",
                "string",
                0,
                "The addresses of the endpoints in this EndpointSlice.",
            ),
            ("Age", "string", 0, ""),
        ]),
        cells: |slice, now| {
            let ports: Vec<String> = list(slice, &["ports"])
                .iter()
                .map(|p| int(p, &["port"]).to_string())
                .collect();
            let addresses: Vec<&str> = list(slice, &["endpoints"])
                .iter()
                .flat_map(|e| list(e, &["addresses"]).iter().filter_map(Value::as_str))
                .collect();
            let endpoints = match addresses.len() {
                0 => "<unset>".to_string(),
                n if n > 3 => format!("{} + {} more...", addresses[..3].join(","), n - 3),
                _ => addresses.join(","),
            };
            let ports = if ports.is_empty() {
                "<unset>".to_string()
            } else {
                ports.join(",")
            };
            vec![
                name_cell(slice),
                Value::from(text(slice, &["addressType"])),
                Value::from(ports),
                Value::from(endpoints),
                age_cell(slice, now),
            ]
        },
    }
}

pub(super) fn lease() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            ("Holder", "string", 0, "The holder of the lease."),
            ("Age", "string", 0, ""),
        ]),
        cells: |lease, now| {
            vec![
                name_cell(lease),
                Value::from(text(lease, &["spec", "holderIdentity"])),
                age_cell(lease, now),
            ]
        },
    }
}

pub(super) fn api_service() -> Printer {
    Printer {
        columns: columns(&[
            ("Name", "string", 0, ""),
            (
                "Service",
                "string",
                0,
                "The reference to the service that hosts this API endpoint.",
            ),
            (
                "Available",
                "string",
                0,
                "Whether this service is available.",
            ),
            ("Age", "string", 0, ""),
        ]),
        cells: |svc, now: Timestamp| {
            let service = match at(svc, &["spec", "service"]) {
                Some(s) if s.is_object() => {
                    format!("{}/{}", text(s, &["namespace"]), text(s, &["name"]))
                }
                _ => "Local".to_string(),
            };
            let available = list(svc, &["status", "conditions"])
                .iter()
                .find(|c| text(c, &["type"]) == "Available")
                .map(|c| match text(c, &["status"]) {
                    "True" => "True".to_string(),
                    status => format!("{status} ({})", text(c, &["reason"])),
                })
                .unwrap_or_else(|| "Unknown".to_string());
            vec![
                name_cell(svc),
                Value::from(service),
                Value::from(available),
                age_cell(svc, now),
            ]
        },
    }
}
