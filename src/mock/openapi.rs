//! OpenAPI v3 documents of the mock API server: the index (`/openapi/v3`) and one document per
//! group version. They carry what kubectl reads from them — every path with its operations,
//! `x-kubernetes-group-version-kind` and the query parameters (the `fieldValidation` check of
//! `kubectl apply`) — and no schemas, so kubectl computes strategic merge patches from its
//! compiled-in types, as it does for a server without OpenAPI schemas.

use serde_json::{Map, Value, json};

use super::resources::{Resource, ResourceSet};

/// `api/v1`, `apis/apps/v1`, ... for every group version served.
pub fn group_version_paths(set: &ResourceSet) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (group, versions) in set.groups() {
        for v in versions {
            let path = if group.is_empty() { format!("api/{v}") } else { format!("apis/{group}/{v}") };
            out.push((path, group.clone(), v));
        }
    }
    out
}

/// The index: each group version's document URL with a content hash, as kubectl caches by it.
pub fn index(set: &ResourceSet) -> Value {
    let mut paths = Map::new();
    for (path, group, version) in group_version_paths(set) {
        let doc = document(set, &group, &version);
        let hash = blake3::hash(doc.to_string().as_bytes()).to_hex();
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", &hash.as_str()[..32].to_uppercase())}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str, location: &str, description: &str) -> Value {
    let mut p = json!({
        "name": name,
        "in": location,
        "description": description,
        "schema": {"type": "string", "uniqueItems": true},
    });
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

fn query(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| {
            let desc = match *n {
                "dryRun" => "When present, indicates that modifications should not be persisted.",
                "fieldManager" => "fieldManager is a name associated with the actor or entity that is making these changes.",
                "fieldValidation" => "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
                "force" => "Force is going to \"force\" Apply requests.",
                "labelSelector" => "A selector to restrict the list of returned objects by their labels.",
                "fieldSelector" => "A selector to restrict the list of returned objects by their fields.",
                "watch" => "Watch for changes to the described resources.",
                "resourceVersion" => "resourceVersion sets a constraint on what resource versions a request may be served from.",
                "timeoutSeconds" => "Timeout for the list/watch call.",
                _ => "",
            };
            param(n, "query", desc)
        })
        .collect()
}

fn operation(r: &Resource, action: &str, op_id: &str, params: &[&str], body: bool) -> Value {
    let mut op = json!({
        "tags": [if r.group.is_empty() { format!("core_{}", r.version) } else { format!("{}_{}", r.group.replace('.', ""), r.version) }],
        "description": format!("{action} {}", r.kind),
        "operationId": op_id,
        "parameters": query(params),
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
    });
    if body && let Value::Object(m) = &mut op {
        // A body of any object: no schema, so clients fall back to their built-in types.
        m.insert("requestBody".into(), json!({"content": {"*/*": {"schema": {"type": "object"}}}, "required": true}));
    }
    op
}

fn op_name(r: &Resource, verb: &str, namespaced: bool, suffix: &str) -> String {
    let gv: String = if r.group.is_empty() {
        format!("Core{}", capitalize(&r.version))
    } else {
        let g: String = r.group.split('.').next().unwrap_or_default().to_string();
        format!("{}{}", capitalize(&g), capitalize(&r.version))
    };
    format!("{verb}{gv}{}{}{suffix}", if namespaced { "Namespaced" } else { "" }, r.kind)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The document of one group version.
pub fn document(set: &ResourceSet, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let write = ["dryRun", "fieldManager", "fieldValidation"];
    let patch = ["dryRun", "fieldManager", "fieldValidation", "force"];
    let list = ["labelSelector", "fieldSelector", "resourceVersion", "timeoutSeconds", "watch"];
    for r in set.in_group_version(group, version) {
        let base = r.gv_path();
        let ns = r.namespaced;
        let coll =
            if ns { format!("{base}/namespaces/{{namespace}}/{}", r.plural) } else { format!("{base}/{}", r.plural) };
        let mut path_params = Vec::new();
        if ns {
            path_params.push(param("namespace", "path", "object name and auth scope, such as for teams and projects"));
        }
        paths.insert(
            coll.clone(),
            json!({
                "get": operation(r, "list", &op_name(r, "list", ns, ""), &list, false),
                "post": operation(r, "post", &op_name(r, "create", ns, ""), &write, true),
                "delete": operation(r, "deletecollection", &op_name(r, "deleteCollection", ns, ""), &list, false),
                "parameters": path_params,
            }),
        );
        let mut item_params = vec![param("name", "path", &format!("name of the {}", r.kind))];
        item_params.extend(path_params.iter().cloned());
        paths.insert(
            format!("{coll}/{{name}}"),
            json!({
                "get": operation(r, "get", &op_name(r, "read", ns, ""), &[], false),
                "put": operation(r, "put", &op_name(r, "replace", ns, ""), &write, true),
                "patch": operation(r, "patch", &op_name(r, "patch", ns, ""), &patch, true),
                "delete": operation(r, "delete", &op_name(r, "delete", ns, ""), &["dryRun"], false),
                "parameters": item_params,
            }),
        );
        for (sub, suffix) in [("status", "Status"), ("scale", "Scale")] {
            if (sub == "status" && r.status) || (sub == "scale" && r.scale.is_some()) {
                paths.insert(
                    format!("{coll}/{{name}}/{sub}"),
                    json!({
                        "get": operation(r, "get", &op_name(r, "read", ns, suffix), &[], false),
                        "put": operation(r, "put", &op_name(r, "replace", ns, suffix), &write, true),
                        "patch": operation(r, "patch", &op_name(r, "patch", ns, suffix), &patch, true),
                        "parameters": item_params,
                    }),
                );
            }
        }
        if ns {
            paths.insert(
                format!("{base}/{}", r.plural),
                json!({
                    "get": operation(r, "list", &op_name(r, "list", false, "ForAllNamespaces"), &list, false),
                    "parameters": [],
                }),
            );
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::server::SERVER_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_declare_field_validation() {
        let set = ResourceSet::default();
        let doc = document(&set, "apps", "v1");
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            op["parameters"].as_array().unwrap().iter().any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        let idx = index(&set);
        assert!(idx["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap().starts_with("/openapi/v3/api/v1?hash="));
    }
}
