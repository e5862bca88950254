//! Strict JSON-Schema validation of Kubernetes objects.
//!
//! This module owns every schema `agentops` checks manifests against, and the wording of the
//! violations it reports:
//!
//! - **Built-in kinds** come from `k8s-openapi` (through `schemars`, draft 2020-12) and are made
//!   strict here: every object schema that lists `properties` but says nothing about
//!   `additionalProperties` gets `additionalProperties: false`, so a typo such as
//!   `imagePullPolcy` is reported while real maps (labels, annotations, resources) stay open.
//!   `IntOrString` (`8080`, `http`, `25%`) and `Quantity` (`500m`, `1Gi`, `2`, `0.5`) carry no
//!   `type` in the generated schema and would accept objects; they get one here.
//! - **Custom kinds** come from CustomResourceDefinitions (`apiextensions.k8s.io/v1`): each served
//!   version's `openAPIV3Schema` is converted to JSON Schema and made strict the same way, except
//!   below `x-kubernetes-preserve-unknown-fields: true`. The root always accepts
//!   `apiVersion`, `kind` and a strict `metadata` (ObjectMeta).
//!
//! Validators are compiled on first use of a kind and cached: built-in ones once per process
//! (shared by every [`SchemaSet`]), custom ones once per registered CRD version (shared by clones
//! of the set). Like the API server, `null` object members are treated as absent before
//! validation (`creationTimestamp: null`, an empty `annotations:` from a template).
//!
//! Violation messages never echo instance values (Secret data must not leak into reports); they
//! name fields, expected types and schema constraints only.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, PatternOptions, ValidationError, Validator};
use k8s_openapi::Resource;
use k8s_openapi::api::{
    admissionregistration, apps, autoscaling, batch, coordination, core, discovery, networking, policy, rbac,
    scheduling, storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use serde_json::{Map, Value, json};

/// Most violations reported for one object; the rest are summarised in one extra violation.
const MAX_VIOLATIONS: usize = 100;

/// `$defs` key of ObjectMeta in the generated schemas.
const OBJECT_META_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
/// `$defs` key suffix of Quantity, which also accepts plain numbers such as `0.5`.
const QUANTITY_DEF_SUFFIX: &str = ".pkg.api.resource.Quantity";
/// `$defs` key of apiextensions JSON (`default`, `example`, `enum` values): any JSON value, but
/// generated as `type: object`.
const JSON_DEF: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON";

/// One built-in kind: identity from `k8s_openapi::Resource`, schema from `schemars`.
struct BuiltinKind {
    api_version: &'static str,
    kind: &'static str,
    schema: fn() -> schemars::Schema,
}

/// One line per kind: `builtin_kinds![apps::v1::Deployment, ...]`.
macro_rules! builtin_kinds {
    ($($ty:ty),* $(,)?) => {
        &[$(BuiltinKind {
            api_version: <$ty as Resource>::API_VERSION,
            kind: <$ty as Resource>::KIND,
            schema: || schemars::schema_for!($ty),
        }),*]
    };
}

const BUILTIN_KINDS: &[BuiltinKind] = builtin_kinds![
    core::v1::ConfigMap,
    core::v1::Secret,
    core::v1::Service,
    core::v1::ServiceAccount,
    core::v1::Namespace,
    core::v1::PersistentVolumeClaim,
    core::v1::PersistentVolume,
    core::v1::Pod,
    core::v1::Endpoints,
    core::v1::LimitRange,
    core::v1::ResourceQuota,
    core::v1::ReplicationController,
    apps::v1::Deployment,
    apps::v1::StatefulSet,
    apps::v1::DaemonSet,
    apps::v1::ReplicaSet,
    apps::v1::ControllerRevision,
    batch::v1::Job,
    batch::v1::CronJob,
    networking::v1::Ingress,
    networking::v1::IngressClass,
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
    autoscaling::v1::HorizontalPodAutoscaler,
    autoscaling::v2::HorizontalPodAutoscaler,
    rbac::v1::Role,
    rbac::v1::ClusterRole,
    rbac::v1::RoleBinding,
    rbac::v1::ClusterRoleBinding,
    storage::v1::StorageClass,
    storage::v1::CSIDriver,
    apiextensions::v1::CustomResourceDefinition,
    scheduling::v1::PriorityClass,
    admissionregistration::v1::ValidatingWebhookConfiguration,
    admissionregistration::v1::MutatingWebhookConfiguration,
    coordination::v1::Lease,
    discovery::v1::EndpointSlice,
];

/// A compiled validator, or why the schema could not be compiled.
type Compiled = Result<Validator, String>;

/// Process-wide cache of built-in validators, indexed like [`BUILTIN_KINDS`].
static BUILTIN_VALIDATORS: [OnceLock<Compiled>; BUILTIN_KINDS.len()] = [const { OnceLock::new() }; BUILTIN_KINDS.len()];

/// Schemas for built-in kinds (from k8s-openapi, made strict) and custom kinds (from CRDs).
///
/// Built-in kinds always use the k8s-openapi schema, even if a CRD claims the same
/// apiVersion and kind. Cloning is cheap and clones share compiled validators.
#[derive(Clone, Default)]
pub struct SchemaSet {
    /// kind -> registered (apiVersion, schema) pairs.
    custom: HashMap<String, Vec<(String, Arc<CustomSchema>)>>,
}

/// A converted CRD version schema and its lazily compiled validator.
struct CustomSchema {
    schema: Value,
    validator: OnceLock<Compiled>,
}

/// Result of validating one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaOutcome {
    /// The object matches its schema.
    Valid,
    /// The object breaks its schema; violations are sorted by pointer, then message.
    Invalid(Vec<SchemaViolation>),
    /// No schema is known for the object's apiVersion and kind (or it has none).
    NoSchema,
}

/// One schema violation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaViolation {
    /// JSON pointer into the instance, e.g. `/spec/template/spec/containers/0/imagePullPolcy`;
    /// empty for the object itself.
    pub pointer: String,
    /// Human text that never contains instance values, e.g. `unknown field "imagePullPolcy"`.
    pub message: String,
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

impl fmt::Debug for SchemaSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut custom: Vec<String> = self
            .custom
            .iter()
            .flat_map(|(kind, versions)| versions.iter().map(move |(av, _)| format!("{av} {kind}")))
            .collect();
        custom.sort();
        f.debug_struct("SchemaSet").field("builtin_kinds", &BUILTIN_KINDS.len()).field("custom", &custom).finish()
    }
}

impl SchemaSet {
    /// The built-in kinds only. Cheap: nothing is generated or compiled until a kind is used.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Registers every served version of a CustomResourceDefinition (apiextensions.k8s.io/v1),
    /// from spec.versions[].schema.openAPIV3Schema, made strict the same way (except where
    /// x-kubernetes-preserve-unknown-fields: true, which allows unknown fields at that level;
    /// also honour x-kubernetes-int-or-string). Root gets apiVersion/kind/metadata properties added.
    /// Returns the (apiVersion, kind) pairs registered, or an error message for a malformed CRD.
    ///
    /// Nothing is registered when an error is returned. Registering the same apiVersion and
    /// kind again replaces the earlier schema.
    pub fn add_crd(&mut self, crd: &Value) -> Result<Vec<(String, String)>, String> {
        let name = crd.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>");
        let fail = |message: String| format!("CustomResourceDefinition {name}: {message}");
        if !crd.is_object() {
            return Err("CustomResourceDefinition: not an object".to_string());
        }
        let api_version = crd.get("apiVersion").and_then(Value::as_str);
        if api_version != Some("apiextensions.k8s.io/v1") {
            return Err(fail(format!(
                "apiVersion must be apiextensions.k8s.io/v1, found {}",
                api_version.unwrap_or("none")
            )));
        }
        if crd.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            return Err(fail("kind must be CustomResourceDefinition".to_string()));
        }
        let group = non_empty_str(crd, "/spec/group").map_err(&fail)?;
        let kind = non_empty_str(crd, "/spec/names/kind").map_err(&fail)?;
        let versions = match crd.pointer("/spec/versions") {
            Some(Value::Array(versions)) if !versions.is_empty() => versions,
            Some(Value::Array(_)) => return Err(fail("spec.versions is empty".to_string())),
            Some(_) => return Err(fail("spec.versions must be a list".to_string())),
            None => return Err(fail("spec.versions is missing".to_string())),
        };
        let preserve_root = crd.pointer("/spec/preserveUnknownFields") == Some(&Value::Bool(true));

        let mut staged = Vec::new();
        for (i, version) in versions.iter().enumerate() {
            let at = format!("spec.versions[{i}]");
            let version_name = non_empty_str(version, "/name").map_err(|m| fail(format!("{at}: {m}")))?;
            let served = match version.get("served") {
                None => true,
                Some(Value::Bool(served)) => *served,
                Some(_) => return Err(fail(format!("{at}.served must be a boolean"))),
            };
            if !served {
                continue;
            }
            let Some(schema) = version.pointer("/schema/openAPIV3Schema") else {
                return Err(fail(format!("{at}: missing schema.openAPIV3Schema")));
            };
            let schema =
                crd_root_schema(schema, preserve_root, &format!("{at}.schema.openAPIV3Schema")).map_err(&fail)?;
            staged.push((format!("{group}/{version_name}"), schema));
        }

        let mut registered = Vec::with_capacity(staged.len());
        let entries = self.custom.entry(kind.to_string()).or_default();
        for (api_version, schema) in staged {
            let entry = Arc::new(CustomSchema { schema, validator: OnceLock::new() });
            match entries.iter_mut().find(|(av, _)| *av == api_version) {
                Some(existing) => existing.1 = entry,
                None => entries.push((api_version.clone(), entry)),
            }
            registered.push((api_version, kind.to_string()));
        }
        Ok(registered)
    }

    /// Whether a schema is known for this apiVersion and kind.
    #[cfg(test)]
    fn has_schema(&self, api_version: &str, kind: &str) -> bool {
        builtin_index(api_version, kind).is_some() || self.custom_schema(api_version, kind).is_some()
    }

    /// Validates an object against the schema picked by its apiVersion and kind.
    pub fn validate(&self, obj: &Value) -> SchemaOutcome {
        let (Some(api_version), Some(kind)) =
            (obj.get("apiVersion").and_then(Value::as_str), obj.get("kind").and_then(Value::as_str))
        else {
            return SchemaOutcome::NoSchema;
        };
        let Some(compiled) = self.compiled(api_version, kind) else {
            return SchemaOutcome::NoSchema;
        };
        let validator = match compiled {
            Ok(validator) => validator,
            Err(error) => {
                return SchemaOutcome::Invalid(vec![SchemaViolation {
                    pointer: String::new(),
                    message: format!("the schema for {api_version} {kind} is unusable: {error}"),
                }]);
            }
        };
        let instance = without_null_members(obj);
        if validator.is_valid(&instance) {
            return SchemaOutcome::Valid;
        }
        let mut violations = Vec::new();
        for error in validator.iter_errors(&instance) {
            push_violations(&error, &mut violations);
        }
        SchemaOutcome::Invalid(finish(violations))
    }

    fn custom_schema(&self, api_version: &str, kind: &str) -> Option<&CustomSchema> {
        self.custom.get(kind)?.iter().find(|(av, _)| av == api_version).map(|(_, schema)| schema.as_ref())
    }

    /// The compiled validator for a kind, compiling it on first use.
    fn compiled(&self, api_version: &str, kind: &str) -> Option<&Compiled> {
        if let Some(index) = builtin_index(api_version, kind) {
            let builtin = &BUILTIN_KINDS[index];
            return Some(BUILTIN_VALIDATORS[index].get_or_init(|| compile(&builtin_schema(builtin))));
        }
        let custom = self.custom_schema(api_version, kind)?;
        Some(custom.validator.get_or_init(|| compile(&custom.schema)))
    }
}

fn builtin_index(api_version: &str, kind: &str) -> Option<usize> {
    BUILTIN_KINDS.iter().position(|b| b.kind == kind && b.api_version == api_version)
}

fn non_empty_str<'a>(value: &'a Value, pointer: &str) -> Result<&'a str, String> {
    let field = pointer.trim_start_matches('/').replace('/', ".");
    match value.pointer(pointer) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(format!("{field} is empty")),
        Some(_) => Err(format!("{field} must be a string")),
        None => Err(format!("{field} is missing")),
    }
}

// ---------------------------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------------------------

fn compile(schema: &Value) -> Compiled {
    // Kubernetes patterns are Go RE2 syntax, which the `regex` engine matches most closely.
    let build = |schema: &Value| {
        jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(false)
            .with_pattern_options(PatternOptions::regex())
            .build(schema)
    };
    match build(schema) {
        Ok(validator) => Ok(validator),
        Err(first) => {
            // A pattern the engine cannot compile should not cost the whole schema.
            let mut relaxed = schema.clone();
            if remove_keyword(&mut relaxed, "pattern") {
                build(&relaxed).map_err(|error| error.to_string())
            } else {
                Err(first.to_string())
            }
        }
    }
}

/// The strict schema of a built-in kind.
fn builtin_schema(builtin: &BuiltinKind) -> Value {
    let mut schema = Value::from((builtin.schema)());
    if let Some(defs) = schema.get_mut("$defs").and_then(Value::as_object_mut) {
        patch_builtin_defs(defs);
    }
    if let Some(root) = schema.as_object_mut() {
        let has_object_meta = root.get("$defs").and_then(|defs| defs.get(OBJECT_META_DEF)).is_some();
        let properties = root.entry("properties").or_insert_with(|| Value::Object(Map::new()));
        if let Some(properties) = properties.as_object_mut() {
            properties.entry("apiVersion").or_insert_with(|| json!({"type": "string"}));
            properties.entry("kind").or_insert_with(|| json!({"type": "string"}));
            properties.entry("metadata").or_insert_with(|| {
                if has_object_meta {
                    json!({"$ref": format!("#/$defs/{OBJECT_META_DEF}")})
                } else {
                    json!({"type": "object"})
                }
            });
        }
    }
    tighten(&mut schema);
    schema
}

/// Fixes definitions whose generated schema is too loose or wrong.
fn patch_builtin_defs(defs: &mut Map<String, Value>) {
    for (name, def) in defs.iter_mut() {
        let Some(def) = def.as_object_mut() else {
            continue;
        };
        if name.ends_with(QUANTITY_DEF_SUFFIX) {
            // Generated as only `x-kubernetes-int-or-string`; the API also takes `0.5`.
            def.insert("type".to_string(), json!(["number", "string"]));
        } else if name == JSON_DEF {
            // `default`, `example` and `enum` values of a CRD schema may be any JSON value.
            def.remove("type");
        }
    }
}

/// Makes a schema strict, in place: `additionalProperties: false` where `properties` are listed
/// and nothing is said about other fields; a type for `x-kubernetes-int-or-string`.
/// Also drops documentation, which only slows compilation.
fn tighten(node: &mut Value) {
    let Some(schema) = node.as_object_mut() else {
        return;
    };
    schema.remove("description");
    schema.remove("title");
    if schema.contains_key("properties") && !schema.contains_key("additionalProperties") {
        schema.insert("additionalProperties".to_string(), Value::Bool(false));
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) && !schema.contains_key("type") {
        schema.insert("type".to_string(), json!(["integer", "string"]));
    }
    for_each_subschema(schema, &mut tighten);
}

/// Keywords whose value is a map of name -> schema.
const MAP_OF_SCHEMAS: &[&str] = &["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"];
/// Keywords whose value is a schema or a list of schemas.
const SCHEMA_OR_LIST: &[&str] = &[
    "additionalProperties",
    "items",
    "prefixItems",
    "additionalItems",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
];

/// Calls `f` on every direct subschema of `schema` (never on property names).
fn for_each_subschema(schema: &mut Map<String, Value>, f: &mut dyn FnMut(&mut Value)) {
    for (keyword, value) in schema.iter_mut() {
        if MAP_OF_SCHEMAS.contains(&keyword.as_str()) {
            if let Some(map) = value.as_object_mut() {
                map.values_mut().for_each(&mut *f);
            }
        } else if SCHEMA_OR_LIST.contains(&keyword.as_str()) {
            match value {
                Value::Array(list) => list.iter_mut().for_each(&mut *f),
                Value::Object(_) => f(value),
                _ => {}
            }
        }
    }
}

/// Removes `keyword` from every schema object; returns whether any was removed.
fn remove_keyword(node: &mut Value, keyword: &str) -> bool {
    let Some(schema) = node.as_object_mut() else {
        return false;
    };
    let mut removed = schema.remove(keyword).is_some();
    for_each_subschema(schema, &mut |sub| removed |= remove_keyword(sub, keyword));
    removed
}

// ---------------------------------------------------------------------------------------------
// CRD schemas
// ---------------------------------------------------------------------------------------------

/// ObjectMeta and the definitions it refers to, made strict; merged into every CRD schema.
fn object_meta_defs() -> &'static Map<String, Value> {
    static DEFS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let schema = schemars::schema_for!(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta);
        let mut root = Value::from(schema);
        let mut defs = match root.as_object_mut().and_then(|root| root.remove("$defs")) {
            Some(Value::Object(defs)) => defs,
            _ => Map::new(),
        };
        if let Some(root) = root.as_object_mut() {
            root.remove("$schema");
        }
        defs.insert(OBJECT_META_DEF.to_string(), root);
        patch_builtin_defs(&mut defs);
        defs.values_mut().for_each(tighten);
        defs
    })
}

/// The JSON Schema for one CRD version's `openAPIV3Schema`.
fn crd_root_schema(source: &Value, preserve_root: bool, at: &str) -> Result<Value, String> {
    let mut converted = convert_crd_node(source, true, at)?;
    let Some(root) = converted.as_object_mut() else {
        return Err(format!("{at}: schema must be an object"));
    };
    match root.get("type") {
        None => {
            root.insert("type".to_string(), json!("object"));
        }
        Some(Value::String(t)) if t == "object" => {}
        Some(_) => return Err(format!("{at}: the root schema must be of type object")),
    }
    if preserve_root && root.get("additionalProperties") == Some(&Value::Bool(false)) {
        root.remove("additionalProperties");
    }
    let properties = root.entry("properties").or_insert_with(|| Value::Object(Map::new()));
    if let Some(properties) = properties.as_object_mut() {
        properties.insert("apiVersion".to_string(), json!({"type": "string"}));
        properties.insert("kind".to_string(), json!({"type": "string"}));
        properties.insert("metadata".to_string(), json!({"$ref": format!("#/$defs/{OBJECT_META_DEF}")}));
    }
    root.insert("$defs".to_string(), Value::Object(object_meta_defs().clone()));
    root.insert("$schema".to_string(), json!("https://json-schema.org/draft/2020-12/schema"));
    Ok(converted)
}

const OPENAPI_TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];
const NUMBER_KEYWORDS: &[&str] = &["minimum", "maximum", "multipleOf"];
const COUNT_KEYWORDS: &[&str] = &["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"];

/// Converts one node of a CRD's OpenAPI v3 (structural) schema to JSON Schema 2020-12.
///
/// `structural` is false inside `allOf`/`anyOf`/`oneOf`/`not`, which only add value
/// constraints in Kubernetes: strictness is not added there. Unsupported annotations
/// (`description`, `default`, `example`, `format`, CEL rules, list/map markers) are dropped.
fn convert_crd_node(node: &Value, structural: bool, at: &str) -> Result<Value, String> {
    let Some(source) = node.as_object() else {
        return Err(format!("{at}: schema must be an object"));
    };
    if source.contains_key("$ref") {
        return Err(format!("{at}: $ref is not allowed in CRD schemas"));
    }
    let flag = |key: &str| -> Result<bool, String> {
        match source.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("{at}.{key} must be a boolean")),
        }
    };
    let nullable = flag("nullable")?;
    let int_or_string = flag("x-kubernetes-int-or-string")?;
    let preserve_unknown = flag("x-kubernetes-preserve-unknown-fields")?;
    let embedded = flag("x-kubernetes-embedded-resource")?;

    let mut out = Map::new();

    let mut types: Vec<Value> = Vec::new();
    if int_or_string {
        types = vec![json!("integer"), json!("string")];
    } else if let Some(t) = source.get("type") {
        match t.as_str() {
            Some(t) if OPENAPI_TYPES.contains(&t) => types.push(json!(t)),
            Some(t) => return Err(format!("{at}.type: unknown type {t:?}")),
            None => return Err(format!("{at}.type must be a string")),
        }
    }
    if nullable && !types.is_empty() {
        types.push(json!("null"));
    }
    match types.len() {
        0 => {}
        1 => {
            out.insert("type".to_string(), types.remove(0));
        }
        _ => {
            out.insert("type".to_string(), Value::Array(types));
        }
    }

    if let Some(properties) = source.get("properties") {
        let Some(properties) = properties.as_object() else {
            return Err(format!("{at}.properties must be a map"));
        };
        let mut converted = Map::new();
        for (name, sub) in properties {
            let sub_at = format!("{at}.properties.{name}");
            converted.insert(name.clone(), convert_crd_node(sub, structural, &sub_at)?);
        }
        if embedded && structural {
            converted.entry("apiVersion").or_insert_with(|| json!({"type": "string"}));
            converted.entry("kind").or_insert_with(|| json!({"type": "string"}));
            converted.entry("metadata").or_insert_with(|| json!({"type": "object"}));
        }
        out.insert("properties".to_string(), Value::Object(converted));
    }

    match source.get("additionalProperties") {
        None => {}
        Some(Value::Bool(allowed)) => {
            out.insert("additionalProperties".to_string(), Value::Bool(*allowed));
        }
        Some(sub @ Value::Object(_)) => {
            let sub = convert_crd_node(sub, structural, &format!("{at}.additionalProperties"))?;
            out.insert("additionalProperties".to_string(), sub);
        }
        Some(_) => {
            return Err(format!("{at}.additionalProperties must be a schema or a boolean"));
        }
    }

    match source.get("items") {
        None => {}
        Some(sub @ Value::Object(_)) => {
            let sub = convert_crd_node(sub, structural, &format!("{at}.items"))?;
            out.insert("items".to_string(), sub);
        }
        Some(Value::Array(list)) => {
            let mut converted = Vec::with_capacity(list.len());
            for (i, sub) in list.iter().enumerate() {
                converted.push(convert_crd_node(sub, structural, &format!("{at}.items[{i}]"))?);
            }
            out.insert("prefixItems".to_string(), Value::Array(converted));
        }
        Some(_) => return Err(format!("{at}.items must be a schema")),
    }

    if let Some(required) = source.get("required") {
        match required.as_array() {
            Some(list) if list.iter().all(Value::is_string) => {
                out.insert("required".to_string(), required.clone());
            }
            _ => return Err(format!("{at}.required must be a list of field names")),
        }
    }
    if let Some(values) = source.get("enum") {
        if !values.is_array() {
            return Err(format!("{at}.enum must be a list"));
        }
        out.insert("enum".to_string(), values.clone());
    }
    if let Some(pattern) = source.get("pattern") {
        if !pattern.is_string() {
            return Err(format!("{at}.pattern must be a string"));
        }
        out.insert("pattern".to_string(), pattern.clone());
    }
    for &key in NUMBER_KEYWORDS {
        if let Some(value) = source.get(key) {
            if !value.is_number() {
                return Err(format!("{at}.{key} must be a number"));
            }
            out.insert(key.to_string(), value.clone());
        }
    }
    for &key in COUNT_KEYWORDS {
        if let Some(value) = source.get(key) {
            if !value.is_u64() {
                return Err(format!("{at}.{key} must be a non-negative integer"));
            }
            out.insert(key.to_string(), value.clone());
        }
    }
    // OpenAPI 3.0: `exclusiveMinimum: true` turns `minimum` exclusive; 2020-12 wants a number.
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        match source.get(exclusive) {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => {
                if let Some(limit) = out.remove(bound) {
                    out.insert(exclusive.to_string(), limit);
                }
            }
            Some(limit @ Value::Number(_)) => {
                out.insert(exclusive.to_string(), limit.clone());
            }
            Some(_) => return Err(format!("{at}.{exclusive} must be a boolean")),
        }
    }
    match source.get("uniqueItems") {
        None => {}
        Some(Value::Bool(unique)) => {
            out.insert("uniqueItems".to_string(), Value::Bool(*unique));
        }
        Some(_) => return Err(format!("{at}.uniqueItems must be a boolean")),
    }
    if source.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
        out.insert("uniqueItems".to_string(), Value::Bool(true));
    }

    for keyword in ["allOf", "anyOf", "oneOf"] {
        let Some(list) = source.get(keyword) else {
            continue;
        };
        let Some(list) = list.as_array() else {
            return Err(format!("{at}.{keyword} must be a list of schemas"));
        };
        let mut converted = Vec::with_capacity(list.len());
        for (i, sub) in list.iter().enumerate() {
            converted.push(convert_crd_node(sub, false, &format!("{at}.{keyword}[{i}]"))?);
        }
        // The usual `anyOf: [{type: integer}, {type: string}]` beside int-or-string only
        // repeats the type and would double every error.
        if int_or_string && converted.iter().all(is_int_or_string_branch) {
            continue;
        }
        out.insert(keyword.to_string(), Value::Array(converted));
    }
    if let Some(sub) = source.get("not") {
        out.insert("not".to_string(), convert_crd_node(sub, false, &format!("{at}.not"))?);
    }

    if structural && out.contains_key("properties") && !out.contains_key("additionalProperties") && !preserve_unknown {
        out.insert("additionalProperties".to_string(), Value::Bool(false));
    }
    Ok(Value::Object(out))
}

fn is_int_or_string_branch(branch: &Value) -> bool {
    branch.as_object().is_some_and(|branch| {
        branch.iter().all(|(key, value)| key == "type" && matches!(value.as_str(), Some("integer" | "string")))
    })
}

// ---------------------------------------------------------------------------------------------
// Instances
// ---------------------------------------------------------------------------------------------

/// The object with `null` members of objects removed, as the API server treats them as unset.
/// Borrows when there are none (the usual case).
fn without_null_members(value: &Value) -> Cow<'_, Value> {
    if has_null_member(value) {
        let mut owned = value.clone();
        strip_null_members(&mut owned);
        Cow::Owned(owned)
    } else {
        Cow::Borrowed(value)
    }
}

fn has_null_member(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().any(|v| v.is_null() || has_null_member(v)),
        Value::Array(list) => list.iter().any(has_null_member),
        _ => false,
    }
}

fn strip_null_members(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_null_members);
        }
        Value::Array(list) => list.iter_mut().for_each(strip_null_members),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// Maps one jsonschema error to violations. Never formats the instance value itself.
fn push_violations(error: &ValidationError<'_>, out: &mut Vec<SchemaViolation>) {
    let pointer = error.instance_path().as_str();
    let message = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                out.push(SchemaViolation {
                    pointer: child_pointer(pointer, name),
                    message: format!("unknown field {}", quoted(name)),
                });
            }
            return;
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            push_alternatives(pointer, context, out);
            return;
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            "matches more than one of the allowed alternatives".to_string()
        }
        ValidationErrorKind::Type { kind } => {
            format!("expected {}, found {}", expected_types(kind).join(" or "), json_type(error.instance()))
        }
        ValidationErrorKind::Required { property } => match property.as_str() {
            Some(name) => format!("missing required field {}", quoted(name)),
            None => "missing a required field".to_string(),
        },
        ValidationErrorKind::Enum { options } => {
            format!("expected one of {}", list_values(options))
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("expected {}", compact(expected_value))
        }
        ValidationErrorKind::Pattern { pattern } => {
            format!("does not match the pattern {}", quoted(pattern))
        }
        ValidationErrorKind::Format { format } => format!("is not a valid {format}"),
        ValidationErrorKind::MinLength { limit } => {
            format!("must be at least {limit} character{}", plural(*limit))
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("must be at most {limit} character{}", plural(*limit))
        }
        ValidationErrorKind::MinItems { limit } => {
            format!("must have at least {limit} item{}", plural(*limit))
        }
        ValidationErrorKind::MaxItems { limit } => {
            format!("must have at most {limit} item{}", plural(*limit))
        }
        ValidationErrorKind::MinProperties { limit } => {
            format!("must have at least {limit} field{}", plural(*limit))
        }
        ValidationErrorKind::MaxProperties { limit } => {
            format!("must have at most {limit} field{}", plural(*limit))
        }
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit}"),
        ValidationErrorKind::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
        ValidationErrorKind::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        ValidationErrorKind::MultipleOf { multiple_of } => {
            format!("must be a multiple of {multiple_of}")
        }
        ValidationErrorKind::UniqueItems => "must not contain duplicate items".to_string(),
        ValidationErrorKind::AdditionalItems { limit } => {
            format!("must have at most {limit} item{}", plural(*limit as u64))
        }
        ValidationErrorKind::UnevaluatedItems { .. } => "has unexpected items".to_string(),
        ValidationErrorKind::Contains => "has no item of the required form".to_string(),
        ValidationErrorKind::Not { .. } => "is not allowed here".to_string(),
        ValidationErrorKind::FalseSchema => "is not allowed here".to_string(),
        ValidationErrorKind::PropertyNames { error } => {
            let mut inner = Vec::new();
            push_violations(error, &mut inner);
            match inner.first() {
                Some(first) => format!("has an invalid field name: {}", first.message),
                None => "has an invalid field name".to_string(),
            }
        }
        ValidationErrorKind::ContentEncoding { content_encoding } => {
            format!("is not valid {content_encoding} content")
        }
        ValidationErrorKind::ContentMediaType { content_media_type } => {
            format!("is not valid {content_media_type} content")
        }
        ValidationErrorKind::FromUtf8 { .. } => "decodes to invalid UTF-8".to_string(),
        ValidationErrorKind::Custom { message, .. } => message.clone(),
        ValidationErrorKind::BacktrackLimitExceeded { .. } | ValidationErrorKind::RegexEngineFailure { .. } => {
            "could not be checked against its pattern".to_string()
        }
        ValidationErrorKind::Referencing(error) => format!("schema reference error: {error}"),
    };
    out.push(SchemaViolation { pointer: pointer.to_string(), message });
}

/// Reports a failed `anyOf`/`oneOf` by its most specific alternative.
///
/// Alternatives that fail only because the value has another type are dropped; if all do,
/// one `expected A or B, found C` is reported. Otherwise the alternative whose errors reach
/// deepest into the value is reported as if it were the only one; if several tie at the
/// value itself, their messages are joined.
fn push_alternatives(pointer: &str, context: &[Vec<ValidationError<'static>>], out: &mut Vec<SchemaViolation>) {
    let is_type_mismatch = |branch: &Vec<ValidationError<'static>>| {
        !branch.is_empty()
            && branch
                .iter()
                .all(|e| e.instance_path().as_str() == pointer && matches!(e.kind(), ValidationErrorKind::Type { .. }))
    };
    let candidates: Vec<&Vec<ValidationError<'static>>> =
        context.iter().filter(|branch| !branch.is_empty() && !is_type_mismatch(branch)).collect();

    if candidates.is_empty() {
        let mut expected: Vec<&'static str> = Vec::new();
        let mut found = "value";
        for error in context.iter().flatten() {
            if let ValidationErrorKind::Type { kind } = error.kind() {
                for t in expected_types(kind) {
                    if !expected.contains(&t) {
                        expected.push(t);
                    }
                }
                found = json_type(error.instance());
            }
        }
        let message = if expected.is_empty() {
            "does not match any of the allowed alternatives".to_string()
        } else {
            format!("expected {}, found {found}", expected.join(" or "))
        };
        out.push(SchemaViolation { pointer: pointer.to_string(), message });
        return;
    }

    let depth = |branch: &Vec<ValidationError<'static>>| {
        branch.iter().map(|e| e.instance_path().as_str().matches('/').count()).max().unwrap_or(0)
    };
    let deepest = candidates.iter().map(|b| depth(b)).max().unwrap_or(0);
    let best: Vec<&Vec<ValidationError<'static>>> = candidates.into_iter().filter(|b| depth(b) == deepest).collect();
    let base_depth = pointer.matches('/').count();
    if best.len() == 1 || deepest > base_depth {
        // Fewest errors among the deepest: the alternative the author most likely meant.
        if let Some(branch) = best.iter().min_by_key(|b| b.len()) {
            for error in branch.iter() {
                push_violations(error, out);
            }
        }
        return;
    }
    let summaries: Vec<String> = best
        .iter()
        .map(|branch| {
            let mut inner = Vec::new();
            for error in branch.iter() {
                push_violations(error, &mut inner);
            }
            inner.into_iter().map(|v| v.message).collect::<Vec<_>>().join(", ")
        })
        .collect();
    out.push(SchemaViolation {
        pointer: pointer.to_string(),
        message: format!("does not match any of the allowed alternatives ({})", summaries.join("; or ")),
    });
}

/// Sorts, deduplicates and caps violations.
fn finish(mut violations: Vec<SchemaViolation>) -> Vec<SchemaViolation> {
    if violations.is_empty() {
        violations.push(SchemaViolation { pointer: String::new(), message: "does not match the schema".to_string() });
    }
    violations.sort();
    violations.dedup();
    if violations.len() > MAX_VIOLATIONS {
        let more = violations.len() - MAX_VIOLATIONS;
        violations.truncate(MAX_VIOLATIONS);
        violations.push(SchemaViolation {
            pointer: String::new(),
            message: format!("{more} more violation{} not shown", plural(more as u64)),
        });
    }
    violations
}

fn expected_types(kind: &TypeKind) -> Vec<&'static str> {
    match kind {
        TypeKind::Single(t) => vec![t.as_str()],
        TypeKind::Multiple(set) => set.iter().map(|t| t.as_str()).collect(),
    }
}

/// The JSON type of a value, for "found ..." (the value itself is never shown).
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `parent` + `/` + the escaped name (RFC 6901).
fn child_pointer(parent: &str, name: &str) -> String {
    let mut pointer = String::with_capacity(parent.len() + name.len() + 1);
    pointer.push_str(parent);
    pointer.push('/');
    pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
    pointer
}

fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// A schema value (never an instance value) on one line.
fn compact(value: &Value) -> String {
    value.to_string()
}

/// Enum options from the schema: `"A", "B" or "C"`, at most ten shown.
fn list_values(options: &Value) -> String {
    const SHOWN: usize = 10;
    let Some(list) = options.as_array() else {
        return compact(options);
    };
    let mut shown: Vec<String> = list.iter().take(SHOWN).map(compact).collect();
    if list.len() > SHOWN {
        shown.push(format!("{} more", list.len() - SHOWN));
    }
    match shown.len() {
        0 => "nothing".to_string(),
        1 => shown.remove(0),
        n => {
            let last = shown.remove(n - 1);
            format!("{} or {last}", shown.join(", "))
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "labels": {"app": "web", "app.kubernetes.io/part-of": "shop"},
                "annotations": {"checksum/config": "abc"}
            },
            "spec": {
                "replicas": 3,
                "revisionHistoryLimit": 5,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "serviceAccountName": "web",
                        "securityContext": {"runAsNonRoot": true, "fsGroup": 2000},
                        "containers": [{
                            "name": "web",
                            "image": "ghcr.io/example/web:1.2.3",
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["--port=8080"],
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
                            ],
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "1Gi"},
                                "limits": {"cpu": 2, "memory": "2Gi", "ephemeral-storage": 0.5}
                            },
                            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
                            "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 5},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/web", "readOnly": true}]
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
                        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}]
                    }
                }
            }
        })
    }

    fn violations(outcome: SchemaOutcome) -> Vec<SchemaViolation> {
        match outcome {
            SchemaOutcome::Invalid(violations) => violations,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn assert_valid(set: &SchemaSet, obj: &Value) {
        let outcome = set.validate(obj);
        assert_eq!(outcome, SchemaOutcome::Valid, "for {obj}");
    }

    fn set_at(obj: &mut Value, pointer: &str, value: Value) {
        match obj.pointer_mut(pointer) {
            Some(slot) => *slot = value,
            None => panic!("no {pointer}"),
        }
    }

    #[test]
    fn schema_set_is_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<SchemaSet>();
    }

    #[test]
    fn clean_deployment_passes() {
        assert_valid(&SchemaSet::builtin(), &deployment());
    }

    #[test]
    fn typo_is_reported_at_the_field() {
        let mut d = deployment();
        let container = d.pointer_mut("/spec/template/spec/containers/0").unwrap();
        let policy = container.as_object_mut().unwrap().remove("imagePullPolicy").unwrap();
        container["imagePullPolcy"] = policy;
        let v = violations(SchemaSet::builtin().validate(&d));
        assert_eq!(
            v,
            vec![SchemaViolation {
                pointer: "/spec/template/spec/containers/0/imagePullPolcy".to_string(),
                message: "unknown field \"imagePullPolcy\"".to_string(),
            }]
        );
    }

    #[test]
    fn several_unknown_fields_give_one_violation_each_sorted() {
        let mut d = deployment();
        d["spec"]["zeta"] = json!(1);
        d["spec"]["alpha"] = json!({"x": 1});
        d["spek"] = json!({});
        d["spec"]["template"]["spec"]["containers"][0]["a/b~c"] = json!(true);
        let v = violations(SchemaSet::builtin().validate(&d));
        let pointers: Vec<&str> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, vec!["/spec/alpha", "/spec/template/spec/containers/0/a~1b~0c", "/spec/zeta", "/spek"]);
        assert_eq!(v[1].message, "unknown field \"a/b~c\"");
    }

    #[test]
    fn wrong_type_is_reported_without_the_value() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!("3");
        let v = violations(SchemaSet::builtin().validate(&d));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].pointer, "/spec/replicas");
        assert_eq!(v[0].message, "expected integer, found string");
    }

    #[test]
    fn integers_from_yaml_in_any_representation_pass() {
        let set = SchemaSet::builtin();
        for replicas in [json!(3u64), json!(-0i64), json!(3.0f64)] {
            let mut d = deployment();
            d["spec"]["replicas"] = replicas;
            assert_valid(&set, &d);
        }
        let mut d = deployment();
        d["spec"]["replicas"] = json!(2.5);
        let v = violations(set.validate(&d));
        assert_eq!(v[0].message, "expected integer, found number");
    }

    #[test]
    fn quantities_and_int_or_string_accept_their_forms() {
        let set = SchemaSet::builtin();
        for quantity in [json!("500m"), json!("1Gi"), json!(2), json!(0.25), json!("1.5")] {
            let mut d = deployment();
            set_at(&mut d, "/spec/template/spec/containers/0/resources/limits/cpu", quantity);
            assert_valid(&set, &d);
        }
        for surge in [json!("25%"), json!(1), json!("1")] {
            let mut d = deployment();
            set_at(&mut d, "/spec/strategy/rollingUpdate/maxSurge", surge);
            assert_valid(&set, &d);
        }
        for port in [json!("http"), json!(8080)] {
            let mut d = deployment();
            set_at(&mut d, "/spec/template/spec/containers/0/readinessProbe/httpGet/port", port);
            assert_valid(&set, &d);
        }
    }

    #[test]
    fn objects_are_rejected_as_quantity_and_int_or_string() {
        let set = SchemaSet::builtin();
        let mut d = deployment();
        set_at(&mut d, "/spec/template/spec/containers/0/resources/limits/cpu", json!({"oops": 1}));
        let v = violations(set.validate(&d));
        assert_eq!(
            v,
            vec![SchemaViolation {
                pointer: "/spec/template/spec/containers/0/resources/limits/cpu".to_string(),
                message: "expected number or string, found object".to_string(),
            }]
        );

        let mut d = deployment();
        set_at(&mut d, "/spec/strategy/rollingUpdate/maxSurge", json!({"oops": 1}));
        let v = violations(set.validate(&d));
        assert_eq!(v[0].pointer, "/spec/strategy/rollingUpdate/maxSurge");
        assert_eq!(v[0].message, "expected integer or string, found object");

        let mut d = deployment();
        set_at(&mut d, "/spec/template/spec/containers/0/livenessProbe/tcpSocket/port", json!(80.5));
        let v = violations(set.validate(&d));
        assert_eq!(v[0].message, "expected integer or string, found number");
    }

    #[test]
    fn missing_required_field() {
        let mut d = deployment();
        d["spec"]["template"]["spec"].as_object_mut().unwrap().remove("containers");
        let v = violations(SchemaSet::builtin().validate(&d));
        assert_eq!(
            v,
            vec![SchemaViolation {
                pointer: "/spec/template/spec".to_string(),
                message: "missing required field \"containers\"".to_string(),
            }]
        );
    }

    #[test]
    fn null_members_are_treated_as_absent() {
        let set = SchemaSet::builtin();
        let mut d = deployment();
        d["metadata"]["creationTimestamp"] = Value::Null;
        d["spec"]["template"]["metadata"]["creationTimestamp"] = Value::Null;
        d["metadata"]["annotations"] = Value::Null;
        d["status"] = json!({});
        assert_valid(&set, &d);
        // A null for a required field is still a missing required field.
        d["spec"]["selector"] = Value::Null;
        let v = violations(set.validate(&d));
        assert_eq!(v[0].pointer, "/spec");
        assert_eq!(v[0].message, "missing required field \"selector\"");
    }

    #[test]
    fn service_ingress_network_policy_and_secret_pass() {
        let set = SchemaSet::builtin();
        assert_valid(
            &set,
            &json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {
                    "type": "ClusterIP",
                    "selector": {"app": "web"},
                    "ports": [
                        {"name": "http", "port": 80, "targetPort": "http"},
                        {"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}
                    ]
                }
            }),
        );
        assert_valid(
            &set,
            &json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web", "annotations": {"cert-manager.io/cluster-issuer": "le"}},
                "spec": {
                    "ingressClassName": "nginx",
                    "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                    "rules": [{
                        "host": "shop.example.com",
                        "http": {"paths": [{
                            "path": "/", "pathType": "Prefix",
                            "backend": {"service": {"name": "web", "port": {"name": "http"}}}
                        }, {
                            "path": "/api", "pathType": "Prefix",
                            "backend": {"service": {"name": "api", "port": {"number": 8080}}}
                        }]}
                    }]
                }
            }),
        );
        assert_valid(
            &set,
            &json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "web"},
                "spec": {
                    "podSelector": {"matchLabels": {"app": "web"}},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{
                        "from": [
                            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}},
                            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}
                        ],
                        "ports": [{"protocol": "TCP", "port": 8080}, {"port": "http"}]
                    }],
                    "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": 53, "endPort": 60, "protocol": "UDP"}]}]
                }
            }),
        );
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db"},
            "type": "Opaque",
            "data": {"password": "aHVudGVyMg=="},
            "stringData": {"user": "admin"}
        });
        assert_valid(&set, &secret);
        let mut bad = secret.clone();
        bad["data"]["pin"] = json!(123456);
        bad["stringData"]["token"] = json!({"nested": "s3cr3t-value"});
        let v = violations(set.validate(&bad));
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].pointer, "/data/pin");
        assert_eq!(v[0].message, "expected string, found integer");
        assert_eq!(v[1].pointer, "/stringData/token");
        for violation in &v {
            let text = violation.to_string();
            assert!(!text.contains("123456") && !text.contains("s3cr3t"), "{text}");
        }
    }

    #[test]
    fn other_builtin_kinds_pass() {
        let set = SchemaSet::builtin();
        assert_valid(
            &set,
            &json!({
                "apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "nightly"},
                "spec": {
                    "schedule": "0 3 * * *",
                    "concurrencyPolicy": "Forbid",
                    "jobTemplate": {"spec": {"backoffLimit": 2, "template": {"spec": {
                        "restartPolicy": "OnFailure",
                        "containers": [{"name": "job", "image": "busybox", "command": ["sh", "-c", "true"]}]
                    }}}}
                }
            }),
        );
        assert_valid(
            &set,
            &json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web"},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 2, "maxReplicas": 10,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70}}},
                        {"type": "Pods", "pods": {"metric": {"name": "rps"},
                        "target": {"type": "AverageValue", "averageValue": "100"}}}]
                }
            }),
        );
        assert_valid(
            &set,
            &json!({
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": "web"},
                "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}}
            }),
        );
        assert_valid(
            &set,
            &json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "view"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]
            }),
        );
        assert_valid(
            &set,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                    "data": {"a.yaml": "x: 1"}, "binaryData": {"b": "AA=="}}),
        );
    }

    #[test]
    fn configmap_values_must_be_strings() {
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                         "data": {"enabled": true, "port": 8080}});
        let v = violations(SchemaSet::builtin().validate(&obj));
        assert_eq!(
            v.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            vec!["/data/enabled: expected string, found boolean", "/data/port: expected string, found integer"]
        );
    }

    #[test]
    fn unknown_kinds_have_no_schema() {
        let set = SchemaSet::builtin();
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        assert_eq!(set.validate(&obj), SchemaOutcome::NoSchema);
        assert!(!set.has_schema("example.com/v1", "Widget"));
        assert!(set.has_schema("apps/v1", "Deployment"));
        assert!(!set.has_schema("apps/v1beta1", "Deployment"));
        assert_eq!(set.validate(&json!({"kind": "Deployment"})), SchemaOutcome::NoSchema);
        assert_eq!(set.validate(&json!("Deployment")), SchemaOutcome::NoSchema);
    }

    #[test]
    fn every_builtin_kind_compiles_and_accepts_a_minimal_object() {
        for builtin in BUILTIN_KINDS {
            let schema = builtin_schema(builtin);
            let validator = match compile(&schema) {
                Ok(v) => v,
                Err(e) => panic!("{} {}: {e}", builtin.api_version, builtin.kind),
            };
            let minimal = json!({
                "apiVersion": builtin.api_version,
                "kind": builtin.kind,
                "metadata": {"name": "x", "labels": {"a": "b"}, "creationTimestamp": null}
            });
            // Some kinds have other required fields; only strictness of the root is checked.
            let unknown: Vec<String> = validator
                .iter_errors(&without_null_members(&minimal))
                .map(|e| format!("{:?}", e.kind()))
                .filter(|k| !k.starts_with("Required"))
                .collect();
            assert!(unknown.is_empty(), "{} {}: {unknown:?}", builtin.api_version, builtin.kind);
        }
        assert_eq!(BUILTIN_KINDS.len(), 37);
    }

    fn service_monitor_crd() -> Value {
        serde_json::from_str(
            r#"{
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "servicemonitors.monitoring.example.com"},
            "spec": {
                "group": "monitoring.example.com",
                "scope": "Namespaced",
                "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor", "listKind": "ServiceMonitorList"},
                "versions": [
                    {
                        "name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {
                            "type": "object",
                            "description": "ServiceMonitor defines monitoring for a set of services.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": {
                                    "type": "object",
                                    "required": ["selector"],
                                    "properties": {
                                        "jobLabel": {"type": "string"},
                                        "endpoints": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": {
                                                    "port": {"type": "string"},
                                                    "interval": {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$"},
                                                    "scheme": {"type": "string", "enum": ["http", "https"]},
                                                    "targetPort": {
                                                        "anyOf": [{"type": "integer"}, {"type": "string"}],
                                                        "x-kubernetes-int-or-string": true
                                                    },
                                                    "honorLabels": {"type": "boolean", "default": false},
                                                    "scrapeTimeoutSeconds": {"type": "integer", "minimum": 0, "exclusiveMinimum": true},
                                                    "relabelings": {
                                                        "type": "array",
                                                        "items": {
                                                            "type": "object",
                                                            "properties": {
                                                                "action": {"type": "string"},
                                                                "sourceLabels": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
                                                            }
                                                        }
                                                    },
                                                    "tlsConfig": {
                                                        "type": "object",
                                                        "properties": {"ca": {"type": "string"}, "serverName": {"type": "string"}},
                                                        "oneOf": [{"required": ["ca"]}, {"required": ["serverName"]}]
                                                    }
                                                }
                                            }
                                        },
                                        "selector": {
                                            "type": "object",
                                            "properties": {
                                                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}
                                            }
                                        },
                                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                        "partial": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": true,
                                            "properties": {"known": {"type": "string"}}
                                        },
                                        "template": {
                                            "type": "object",
                                            "x-kubernetes-embedded-resource": true,
                                            "x-kubernetes-preserve-unknown-fields": true
                                        },
                                        "limit": {"type": "integer", "nullable": true, "maximum": 10}
                                    }
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                            }
                        }}
                    },
                    {
                        "name": "v1beta1", "served": false, "storage": false,
                        "schema": {"openAPIV3Schema": {"type": "object"}}
                    },
                    {
                        "name": "v1alpha1", "served": true, "storage": false,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                    }
                ]
            }
        }"#,
        )
        .unwrap()
    }

    fn service_monitor() -> Value {
        json!({
            "apiVersion": "monitoring.example.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"release": "prom"}, "creationTimestamp": null},
            "spec": {
                "jobLabel": "app",
                "selector": {"matchLabels": {"app": "web"}},
                "endpoints": [
                    {"port": "metrics", "interval": "30s", "scheme": "https", "targetPort": 9090,
                     "relabelings": [{"action": "keep", "sourceLabels": ["a", "b"]}],
                     "tlsConfig": {"ca": "x"}},
                    {"port": "admin", "targetPort": "admin", "scrapeTimeoutSeconds": 3}
                ],
                "extra": {"anything": {"goes": [1, "two", {"three": null}]}},
                "partial": {"known": "yes", "unknown": {"also": "fine"}},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"whatever": 1}},
                "limit": null
            }
        })
    }

    #[test]
    fn crd_registers_served_versions_and_validates_custom_objects() {
        let mut set = SchemaSet::builtin();
        let registered = set.add_crd(&service_monitor_crd()).unwrap();
        assert_eq!(
            registered,
            vec![
                ("monitoring.example.com/v1".to_string(), "ServiceMonitor".to_string()),
                ("monitoring.example.com/v1alpha1".to_string(), "ServiceMonitor".to_string()),
            ]
        );
        assert!(set.has_schema("monitoring.example.com/v1", "ServiceMonitor"));
        assert!(!set.has_schema("monitoring.example.com/v1beta1", "ServiceMonitor"));
        assert_valid(&set, &service_monitor());

        // A clone shares the registration.
        let clone = set.clone();
        assert_valid(&clone, &service_monitor());

        // Typo under spec.
        let mut typo = service_monitor();
        typo["spec"]["endpoints"][0]["intervall"] = json!("30s");
        typo["spec"]["selectr"] = json!({});
        let v = violations(set.validate(&typo));
        assert_eq!(
            v.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            vec![
                "/spec/endpoints/0/intervall: unknown field \"intervall\"",
                "/spec/selectr: unknown field \"selectr\"",
            ]
        );

        // Metadata is real ObjectMeta, strict.
        let mut meta = service_monitor();
        meta["metadata"]["lables"] = json!({});
        let v = violations(set.validate(&meta));
        assert_eq!(v[0].pointer, "/metadata/lables");

        // Constraints carried over from the CRD.
        let mut bad = service_monitor();
        bad["spec"]["endpoints"][0]["scheme"] = json!("ftp");
        bad["spec"]["endpoints"][0]["interval"] = json!("30 seconds");
        bad["spec"]["endpoints"][1]["targetPort"] = json!({"oops": 1});
        bad["spec"]["endpoints"][1]["scrapeTimeoutSeconds"] = json!(0);
        bad["spec"]["endpoints"][0]["relabelings"][0]["sourceLabels"] = json!(["a", "a"]);
        bad["spec"]["limit"] = json!(11);
        bad["spec"]["partial"]["known"] = json!(5);
        bad["spec"].as_object_mut().unwrap().remove("selector");
        let v = violations(set.validate(&bad));
        let text: Vec<String> = v.iter().map(|v| v.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "/spec: missing required field \"selector\"",
                "/spec/endpoints/0/interval: does not match the pattern \"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$\"",
                "/spec/endpoints/0/relabelings/0/sourceLabels: must not contain duplicate items",
                "/spec/endpoints/0/scheme: expected one of \"http\" or \"https\"",
                "/spec/endpoints/1/scrapeTimeoutSeconds: must be greater than 0",
                "/spec/endpoints/1/targetPort: expected integer or string, found object",
                "/spec/limit: must be at most 10",
                "/spec/partial/known: expected string, found integer",
            ]
        );
        assert!(!text.iter().any(|t| t.contains("ftp") || t.contains("30 seconds")));

        // oneOf of required field sets.
        let mut both = service_monitor();
        both["spec"]["endpoints"][0]["tlsConfig"] = json!({"ca": "x", "serverName": "y"});
        let v = violations(set.validate(&both));
        assert_eq!(v[0].pointer, "/spec/endpoints/0/tlsConfig");
        assert_eq!(v[0].message, "matches more than one of the allowed alternatives");
        let mut neither = service_monitor();
        neither["spec"]["endpoints"][0]["tlsConfig"] = json!({});
        let v = violations(set.validate(&neither));
        assert_eq!(
            v[0].message,
            "does not match any of the allowed alternatives (missing required field \"ca\"; or missing required field \"serverName\")"
        );

        // A served version that preserves everything.
        let mut loose = service_monitor();
        loose["apiVersion"] = json!("monitoring.example.com/v1alpha1");
        loose["spec"] = json!({"anything": ["at", "all"]});
        assert_valid(&set, &loose);
        loose["metadata"]["nmae"] = json!("x");
        assert_eq!(violations(set.validate(&loose))[0].pointer, "/metadata/nmae");

        // Not served.
        let mut unserved = service_monitor();
        unserved["apiVersion"] = json!("monitoring.example.com/v1beta1");
        assert_eq!(set.validate(&unserved), SchemaOutcome::NoSchema);
    }

    #[test]
    fn the_crd_itself_passes_the_builtin_crd_schema() {
        let set = SchemaSet::builtin();
        assert_valid(&set, &service_monitor_crd());
        let mut typo = service_monitor_crd();
        typo["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["propertes"] = json!({});
        let v = violations(set.validate(&typo));
        assert_eq!(
            v.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            vec!["/spec/versions/0/schema/openAPIV3Schema/propertes: unknown field \"propertes\""]
        );
        // `additionalProperties` is a schema or a boolean (oneOf): the schema branch is the
        // specific one for an object, the boolean branch only for a mistyped scalar.
        let matchlabels =
            "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/selector/properties/matchLabels";
        let mut deep = service_monitor_crd();
        set_at(&mut deep, &format!("{matchlabels}/additionalProperties"), json!({"tpye": "string"}));
        let v = violations(set.validate(&deep));
        assert_eq!(
            v.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            vec![format!("{matchlabels}/additionalProperties/tpye: unknown field \"tpye\"")]
        );
        let mut scalar = service_monitor_crd();
        set_at(&mut scalar, &format!("{matchlabels}/additionalProperties"), json!("string"));
        let v = violations(set.validate(&scalar));
        assert_eq!(
            v.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            vec![format!("{matchlabels}/additionalProperties: expected object or boolean, found string")]
        );
    }

    #[test]
    fn malformed_crds_are_errors() {
        let mut set = SchemaSet::builtin();
        let crd = service_monitor_crd();
        let break_at = |pointer: &str, value: Option<Value>| {
            let mut c = crd.clone();
            match value {
                Some(value) => set_at(&mut c, pointer, value),
                None => {
                    let (parent, key) = pointer.rsplit_once('/').unwrap();
                    c.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
                }
            }
            c
        };
        let cases = [
            (json!([]), "not an object"),
            (break_at("/apiVersion", Some(json!("apiextensions.k8s.io/v1beta1"))), "apiVersion"),
            (break_at("/spec/group", None), "spec.group is missing"),
            (break_at("/spec/names/kind", Some(json!(""))), "spec.names.kind is empty"),
            (break_at("/spec/versions", Some(json!({}))), "spec.versions must be a list"),
            (break_at("/spec/versions", Some(json!([]))), "spec.versions is empty"),
            (break_at("/spec/versions/0/schema", None), "missing schema.openAPIV3Schema"),
            (
                break_at("/spec/versions/0/schema/openAPIV3Schema/properties/spec/type", Some(json!(5))),
                "openAPIV3Schema.properties.spec.type must be a string",
            ),
            (
                break_at("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties", Some(json!([]))),
                "properties must be a map",
            ),
            (
                break_at("/spec/versions/0/schema/openAPIV3Schema/properties/spec/required", Some(json!("selector"))),
                "required must be a list",
            ),
            (break_at("/spec/versions/0/schema/openAPIV3Schema/type", Some(json!("array"))), "root schema"),
        ];
        for (bad, expected) in cases {
            match set.add_crd(&bad) {
                Err(message) => {
                    assert!(message.contains(expected), "{message:?} lacks {expected:?}")
                }
                Ok(registered) => panic!("accepted {registered:?}, expected error {expected:?}"),
            }
        }
        // Nothing was registered by the failures.
        assert!(!set.has_schema("monitoring.example.com/v1", "ServiceMonitor"));
    }

    #[test]
    fn crd_without_any_properties_is_permissive_below_the_root() {
        let mut set = SchemaSet::builtin();
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.example.com"},
            "spec": {"group": "example.com", "names": {"kind": "Thing", "plural": "things"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object"}}}]}
        });
        assert_eq!(set.add_crd(&crd).unwrap().len(), 1);
        assert_valid(
            &set,
            &json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"x": 1}}),
        );
        let v = violations(
            set.validate(&json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": 5}})),
        );
        assert_eq!(v[0].to_string(), "/metadata/name: expected string, found integer");
    }

    #[test]
    fn an_uncompilable_pattern_is_dropped_not_fatal() {
        let mut set = SchemaSet::builtin();
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.example.com"},
            "spec": {"group": "example.com", "names": {"kind": "Thing", "plural": "things"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                       "spec": {"type": "object", "properties": {
                                           "name": {"type": "string", "pattern": "^(?!kube-)[a-z]+$"},
                                           "size": {"type": "integer"}}}}}}}]}
        });
        set.add_crd(&crd).unwrap();
        let mut thing = json!({"apiVersion": "example.com/v1", "kind": "Thing",
                               "metadata": {"name": "t"}, "spec": {"name": "kube-x"}});
        assert_valid(&set, &thing);
        thing["spec"]["size"] = json!("big");
        assert_eq!(violations(set.validate(&thing))[0].to_string(), "/spec/size: expected integer, found string");
    }

    #[test]
    fn too_many_violations_are_capped() {
        let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        for i in 0..150 {
            obj["data"][format!("k{i:03}")] = json!(i);
        }
        let v = violations(SchemaSet::builtin().validate(&obj));
        assert_eq!(v.len(), MAX_VIOLATIONS + 1);
        assert_eq!(v[MAX_VIOLATIONS].message, "50 more violations not shown");
    }

    #[test]
    fn throughput_and_compile_time() {
        let deployment_kind = &BUILTIN_KINDS[builtin_index("apps/v1", "Deployment").unwrap()];
        let start = Instant::now();
        let schema = builtin_schema(deployment_kind);
        let generated = start.elapsed();
        let validator = compile(&schema).unwrap();
        let compiled = start.elapsed();
        println!("Deployment schema: generated+tightened in {generated:?}, generated+compiled in {compiled:?}");

        let set = SchemaSet::builtin();
        let d = deployment();
        assert_eq!(set.validate(&d), SchemaOutcome::Valid);
        let n = if cfg!(debug_assertions) { 2_000 } else { 200_000 };
        let start = Instant::now();
        let mut valid = 0;
        for _ in 0..n {
            if set.validate(std::hint::black_box(&d)) == SchemaOutcome::Valid {
                valid += 1;
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(valid, n);
        println!(
            "validate(Deployment): {:.0}/s ({n} in {elapsed:?}; {} build)",
            n as f64 / elapsed.as_secs_f64(),
            if cfg!(debug_assertions) { "debug" } else { "release" }
        );
        let start = Instant::now();
        for _ in 0..n {
            assert!(validator.is_valid(std::hint::black_box(&d)));
        }
        let elapsed = start.elapsed();
        println!("is_valid only: {:.0}/s", n as f64 / elapsed.as_secs_f64());

        let mut typo = deployment();
        typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = json!("Always");
        let start = Instant::now();
        for _ in 0..n / 10 {
            assert!(matches!(set.validate(std::hint::black_box(&typo)), SchemaOutcome::Invalid(_)));
        }
        let elapsed = start.elapsed();
        println!("validate(invalid Deployment): {:.0}/s", (n / 10) as f64 / elapsed.as_secs_f64());
    }
}
