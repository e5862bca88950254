//! Server-side printing: the `meta.k8s.io/v1 Table` that `kubectl get` asks for, with the
//! columns the real API server prints for common kinds (and a CRD's additionalPrinterColumns),
//! falling back to NAME and AGE.

use serde_json::{Value, json};

use super::resources::Resource;
use super::util::age;

struct Col {
    name: &'static str,
    ty: &'static str,
    priority: u8,
}

const fn col(name: &'static str) -> Col {
    Col { name, ty: "string", priority: 0 }
}

const fn int(name: &'static str) -> Col {
    Col { name, ty: "integer", priority: 0 }
}

const fn wide(name: &'static str) -> Col {
    Col { name, ty: "string", priority: 1 }
}

fn s(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    }
}

fn n(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn containers(obj: &Value, ptr: &str) -> (String, String) {
    let cs = obj.pointer(ptr).and_then(Value::as_array).cloned().unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<String> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

fn selector(obj: &Value, ptr: &str) -> String {
    let labels = obj.pointer(ptr).and_then(Value::as_object).cloned().unwrap_or_default();
    or_none(labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
}

/// Columns and cells (AGE included where it belongs) for a built-in kind.
fn builtin(kind: &str, obj: &Value) -> Option<(Vec<Col>, Vec<Value>)> {
    let name = json!(s(obj, "/metadata/name"));
    let age = json!(age(&s(obj, "/metadata/creationTimestamp")));
    Some(match kind {
        "Deployment" => {
            let (cn, im) = containers(obj, "/spec/template/spec/containers");
            let want = obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            (
                vec![
                    col("Name"),
                    col("Ready"),
                    int("Up-to-date"),
                    int("Available"),
                    col("Age"),
                    wide("Containers"),
                    wide("Images"),
                    wide("Selector"),
                ],
                vec![
                    name,
                    json!(format!("{}/{want}", n(obj, "/status/readyReplicas"))),
                    json!(n(obj, "/status/updatedReplicas")),
                    json!(n(obj, "/status/availableReplicas")),
                    age,
                    json!(cn),
                    json!(im),
                    json!(selector(obj, "/spec/selector/matchLabels")),
                ],
            )
        }
        "StatefulSet" => {
            let (cn, im) = containers(obj, "/spec/template/spec/containers");
            let want = obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            (
                vec![col("Name"), col("Ready"), col("Age"), wide("Containers"), wide("Images")],
                vec![name, json!(format!("{}/{want}", n(obj, "/status/readyReplicas"))), age, json!(cn), json!(im)],
            )
        }
        "ReplicaSet" => (
            vec![col("Name"), int("Desired"), int("Current"), int("Ready"), col("Age")],
            vec![
                name,
                json!(obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)),
                json!(n(obj, "/status/replicas")),
                json!(n(obj, "/status/readyReplicas")),
                age,
            ],
        ),
        "DaemonSet" => (
            vec![
                col("Name"),
                int("Desired"),
                int("Current"),
                int("Ready"),
                int("Up-to-date"),
                int("Available"),
                col("Node Selector"),
                col("Age"),
            ],
            vec![
                name,
                json!(n(obj, "/status/desiredNumberScheduled")),
                json!(n(obj, "/status/currentNumberScheduled")),
                json!(n(obj, "/status/numberReady")),
                json!(n(obj, "/status/updatedNumberScheduled")),
                json!(n(obj, "/status/numberAvailable")),
                json!(selector(obj, "/spec/template/spec/nodeSelector")),
                age,
            ],
        ),
        "Pod" => {
            let statuses =
                obj.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default();
            let total = obj.pointer("/spec/containers").and_then(Value::as_array).map_or(0, Vec::len);
            let ready = statuses.iter().filter(|c| c.get("ready") == Some(&json!(true))).count();
            let restarts: i64 = statuses.iter().map(|c| n(c, "/restartCount")).sum();
            (
                vec![col("Name"), col("Ready"), col("Status"), int("Restarts"), col("Age"), wide("IP"), wide("Node")],
                vec![
                    name,
                    json!(format!("{ready}/{total}")),
                    json!(or_none(s(obj, "/status/phase"))),
                    json!(restarts),
                    age,
                    json!(or_none(s(obj, "/status/podIP"))),
                    json!(or_none(s(obj, "/spec/nodeName"))),
                ],
            )
        }
        "Service" => {
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = match s(p, "/protocol") {
                        x if x.is_empty() => "TCP".to_string(),
                        x => x,
                    };
                    match p.get("nodePort") {
                        Some(np) => format!("{}:{np}/{proto}", s(p, "/port")),
                        None => format!("{}/{proto}", s(p, "/port")),
                    }
                })
                .collect();
            let ty = match s(obj, "/spec/type") {
                t if t.is_empty() => "ClusterIP".to_string(),
                t => t,
            };
            (
                vec![
                    col("Name"),
                    col("Type"),
                    col("Cluster-IP"),
                    col("External-IP"),
                    col("Port(s)"),
                    col("Age"),
                    wide("Selector"),
                ],
                vec![
                    name,
                    json!(ty),
                    json!(or_none(s(obj, "/spec/clusterIP"))),
                    json!(or_none(s(obj, "/status/loadBalancer/ingress/0/ip"))),
                    json!(or_none(ports.join(","))),
                    age,
                    json!(selector(obj, "/spec/selector")),
                ],
            )
        }
        "ConfigMap" => {
            let data = obj.get("data").and_then(Value::as_object).map_or(0, |m| m.len())
                + obj.get("binaryData").and_then(Value::as_object).map_or(0, |m| m.len());
            (vec![col("Name"), int("Data"), col("Age")], vec![name, json!(data), age])
        }
        "Secret" => {
            let data = obj.get("data").and_then(Value::as_object).map_or(0, |m| m.len());
            (
                vec![col("Name"), col("Type"), int("Data"), col("Age")],
                vec![name, json!(s(obj, "/type")), json!(data), age],
            )
        }
        "Namespace" => (vec![col("Name"), col("Status"), col("Age")], vec![name, json!(s(obj, "/status/phase")), age]),
        "StorageClass" => (
            vec![
                col("Name"),
                col("Provisioner"),
                col("ReclaimPolicy"),
                col("VolumeBindingMode"),
                col("AllowVolumeExpansion"),
                col("Age"),
            ],
            vec![
                json!(if s(obj, "/metadata/annotations/storageclass.kubernetes.io~1is-default-class") == "true" {
                    format!("{} (default)", s(obj, "/metadata/name"))
                } else {
                    s(obj, "/metadata/name")
                }),
                json!(s(obj, "/provisioner")),
                json!(match s(obj, "/reclaimPolicy") {
                    x if x.is_empty() => "Delete".into(),
                    x => x,
                }),
                json!(match s(obj, "/volumeBindingMode") {
                    x if x.is_empty() => "Immediate".into(),
                    x => x,
                }),
                json!(obj.get("allowVolumeExpansion").and_then(Value::as_bool).unwrap_or(false)),
                age,
            ],
        ),
        "IngressClass" => (
            vec![col("Name"), col("Controller"), col("Parameters"), col("Age")],
            vec![name, json!(s(obj, "/spec/controller")), json!("<none>"), age],
        ),
        "Ingress" => {
            let hosts: Vec<String> = obj
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| s(r, "/host"))
                .filter(|h| !h.is_empty())
                .collect();
            (
                vec![col("Name"), col("Class"), col("Hosts"), col("Address"), col("Ports"), col("Age")],
                vec![
                    name,
                    json!(or_none(s(obj, "/spec/ingressClassName"))),
                    json!(if hosts.is_empty() { "*".into() } else { hosts.join(",") }),
                    json!(s(obj, "/status/loadBalancer/ingress/0/ip")),
                    json!(if obj.pointer("/spec/tls").is_some() { "80, 443" } else { "80" }),
                    age,
                ],
            )
        }
        "CustomResourceDefinition" => {
            (vec![col("Name"), col("Created At")], vec![name, json!(s(obj, "/metadata/creationTimestamp"))])
        }
        _ => return None,
    })
}

/// `.spec.foo.bar` (the simple JSONPath of printer columns) -> value.
fn json_path(obj: &Value, path: &str) -> Value {
    let ptr: String = path
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('.')
        .split('.')
        .map(|p| format!("/{p}"))
        .collect();
    obj.pointer(&ptr).cloned().unwrap_or(Value::Null)
}

fn printer_columns(r: &Resource, crd: Option<&Value>) -> Vec<Value> {
    crd.and_then(|c| c.pointer("/spec/versions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(r.version.as_str()))
        .and_then(|v| v.get("additionalPrinterColumns"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A Table of `objects`; `include_object` is `None`, `Object` or (default) `Metadata`.
pub fn table(
    r: &Resource,
    objects: &[Value],
    resource_version: &str,
    include_object: &str,
    crd: Option<&Value>,
) -> Value {
    let extra = printer_columns(r, crd);
    let mut defs: Option<Vec<Value>> = None;
    let mut rows = Vec::new();
    for obj in objects {
        let (cols, cells): (Vec<Value>, Vec<Value>) = match builtin(&r.kind, obj).filter(|_| !r.custom) {
            Some((cols, cells)) => (
                cols.iter()
                    .map(|c| {
                        json!({"name": c.name, "type": c.ty, "format": if c.name == "Name" { "name" } else { "" },
                               "description": c.name, "priority": c.priority})
                    })
                    .collect(),
                cells,
            ),
            None => {
                let mut cols = vec![
                    json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}),
                ];
                let mut cells = vec![json!(s(obj, "/metadata/name"))];
                let mut has_age = false;
                for c in &extra {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    let ty = c.get("type").and_then(Value::as_str).unwrap_or("string");
                    let path = c.get("jsonPath").and_then(Value::as_str).unwrap_or_default();
                    let mut v = json_path(obj, path);
                    if ty == "date" {
                        v = json!(age(v.as_str().unwrap_or_default()));
                        has_age |= path == ".metadata.creationTimestamp";
                    }
                    cols.push(
                        json!({"name": name, "type": ty, "format": c.get("format").cloned().unwrap_or(json!("")),
                        "description": c.get("description").cloned().unwrap_or(json!(name)),
                        "priority": c.get("priority").cloned().unwrap_or(json!(0))}),
                    );
                    cells.push(v);
                }
                if !has_age {
                    cols.push(
                        json!({"name": "Age", "type": "date", "format": "", "description": "Age", "priority": 0}),
                    );
                    cells.push(json!(age(&s(obj, "/metadata/creationTimestamp"))));
                }
                (cols, cells)
            }
        };
        defs.get_or_insert(cols);
        let mut row = json!({"cells": cells});
        match include_object {
            "None" => {}
            "Object" => row["object"] = obj.clone(),
            _ => {
                row["object"] = json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
                })
            }
        }
        rows.push(row);
    }
    let defs = defs.unwrap_or_else(|| {
        match builtin(&r.kind, &json!({})).filter(|_| !r.custom) {
            Some((cols, _)) => cols
                .iter()
                .map(|c| json!({"name": c.name, "type": c.ty, "format": if c.name == "Name" { "name" } else { "" }, "description": c.name, "priority": c.priority}))
                .collect(),
            None => vec![
                json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}),
                json!({"name": "Age", "type": "date", "format": "", "description": "Age", "priority": 0}),
            ],
        }
    });
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    })
}
