//! Loading a cluster fixture: a directory of YAML files holding objects exactly as
//! `kubectl get -o yaml` prints them (multi-document files and `kind: List` allowed). Every
//! object must be of a built-in kind or of a CustomResourceDefinition the fixture declares;
//! `agentops.dev/v1alpha1 MockMetrics` documents are kept aside for the metrics simulation,
//! `agentops.dev/v1alpha1 MockBehaviour` documents for the simulated controllers
//! ([`super::controller::Behaviour`]).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::resources::{self, ResourceSet};
use crate::config::yaml::{YamlDoc, parse_documents};
use crate::error::Error;

pub const MOCK_METRICS_API_VERSION: &str = "agentops.dev/v1alpha1";
pub const MOCK_METRICS_KIND: &str = "MockMetrics";
pub const MOCK_BEHAVIOUR_KIND: &str = "MockBehaviour";

/// What a fixture directory holds.
#[derive(Debug, Default)]
pub struct Fixture {
    pub objects: Vec<Value>,
    pub mock_metrics: Vec<Value>,
    pub mock_behaviour: Vec<Value>,
}

struct Located {
    file: PathBuf,
    line: u32,
    value: Value,
}

fn err(file: &Path, line: Option<u32>, message: impl Into<String>) -> Error {
    Error::Config { file: file.display().to_string(), line, message: message.into() }
}

/// YAML files under `dir`, recursively, in a stable order.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            match e.into_io_error() {
                Some(io) => Error::io(&path, io),
                None => err(&path, None, "cannot read the cluster fixture directory"),
            }
        })?;
        let p = entry.path();
        if entry.file_type().is_file()
            && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
        {
            out.push(p.to_path_buf());
        }
    }
    Ok(out)
}

fn located(file: &Path, doc: &YamlDoc, out: &mut Vec<Located>) -> Result<(), Error> {
    let v = &doc.value;
    if !v.is_object() {
        return Err(err(
            file,
            Some(doc.line),
            "expected a Kubernetes object (a mapping with apiVersion, kind and metadata)",
        ));
    }
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind == "List" || (kind.ends_with("List") && v.get("items").is_some_and(Value::is_array)) {
        let items = v.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
        for (i, item) in items.into_iter().enumerate() {
            out.push(Located { file: file.to_path_buf(), line: doc.line_of(&format!("/items/{i}")), value: item });
        }
        return Ok(());
    }
    out.push(Located { file: file.to_path_buf(), line: doc.line, value: v.clone() });
    Ok(())
}

/// Reads every object of a fixture directory, checking each is a kind the mock can serve.
pub fn load(dir: &Path) -> Result<Fixture, Error> {
    if !dir.is_dir() {
        return Err(err(
            dir,
            None,
            "cluster fixture directory not found: pass a directory of YAML files (objects as `kubectl get -o yaml` prints them)",
        ));
    }
    let mut docs = Vec::new();
    for file in yaml_files(dir)? {
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        let parsed = parse_documents(&text).map_err(|e| {
            err(
                &file,
                Some(e.line),
                format!(
                    "malformed YAML (column {}): {}; fix the file or remove it from the fixture",
                    e.column, e.message
                ),
            )
        })?;
        for doc in &parsed {
            located(&file, doc, &mut docs)?;
        }
    }

    let crds: Vec<&Value> = docs.iter().filter(|d| is_crd(&d.value)).map(|d| &d.value).collect();
    for d in docs.iter().filter(|d| is_crd(&d.value)) {
        resources::from_crd(&d.value).map_err(|m| err(&d.file, Some(d.line), m))?;
    }
    let set = ResourceSet::with_crds(crds);

    let mut fixture = Fixture::default();
    for d in docs {
        let s = |p: &str| d.value.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let (api_version, kind, name) = (s("/apiVersion"), s("/kind"), s("/metadata/name"));
        if api_version.is_empty() || kind.is_empty() {
            return Err(err(&d.file, Some(d.line), "object without apiVersion or kind"));
        }
        if api_version == MOCK_METRICS_API_VERSION && kind == MOCK_METRICS_KIND {
            fixture.mock_metrics.push(d.value);
            continue;
        }
        if api_version == MOCK_METRICS_API_VERSION && kind == MOCK_BEHAVIOUR_KIND {
            super::controller::Behaviour::from_documents(std::slice::from_ref(&d.value))
                .map_err(|m| err(&d.file, Some(d.line), m))?;
            fixture.mock_behaviour.push(d.value);
            continue;
        }
        if name.is_empty() && d.value.pointer("/metadata/generateName").is_none() {
            return Err(err(&d.file, Some(d.line), format!("{kind} without metadata.name")));
        }
        if set.by_api_version_kind(api_version, kind).is_none() {
            return Err(err(
                &d.file,
                Some(d.line),
                format!(
                    "{api_version} {kind} {name:?}: no such built-in kind and no CustomResourceDefinition for it in the fixture; \
                     add the CRD (as `kubectl get crd NAME -o yaml` prints it) to the fixture directory"
                ),
            ));
        }
        fixture.objects.push(d.value);
    }
    Ok(fixture)
}

fn is_crd(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
        && v.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("apiextensions.k8s.io/"))
}
