//! What the model sees of a tool's arguments, and how its calls come back.
//!
//! - Compact schemas: no defaults, no `$schema`, `title` or non-standard `format`s, short
//!   descriptions, and no description for the arguments the system prompt explains once
//!   (`env`, `app`, `reason`); arguments agentops fills itself (`expect`) are left out.
//! - Strict schemas (OpenAI strict mode): every object closed (`additionalProperties:
//!   false`) with every property required; an optional property becomes nullable; a map
//!   (`{key: value}`) becomes a list of `{key, value}` pairs, since strict mode has no open
//!   objects. [`from_model_args`] undoes both before the usual checks.
//! - The call schema (`json_schema` mode): one answer that is exactly one tool call (the name
//!   and that tool's strict argument schema) or, when allowed, a final answer.

use serde_json::{Map, Value, json};

use crate::llm::ToolSpec;

/// Arguments the model never sets: agentops binds a write's `expect` to the plan shown.
pub const HIDDEN_ARGS: &[&str] = &["expect"];
/// Arguments described once in the system prompt instead of in every schema.
pub const SHARED_ARGS: &[&str] = &["env", "envs", "app", "reason"];
/// Longest tool description sent (cut at a sentence or word boundary).
const MAX_TOOL_DESCRIPTION: usize = 160;
/// Longest argument description sent.
const MAX_ARG_DESCRIPTION: usize = 80;

const STANDARD_FORMATS: [&str; 12] = [
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uuid",
    "regex",
    "uri-reference",
];

/// The tool as the model sees it: compact description and argument schema.
pub fn compact_spec(name: &str, description: &str, parameters: &Value) -> ToolSpec {
    let mut p = parameters.clone();
    strictify(&mut p);
    if let Some(props) = p.get_mut("properties").and_then(Value::as_object_mut) {
        for hidden in HIDDEN_ARGS {
            props.remove(*hidden);
        }
        for shared in SHARED_ARGS {
            if let Some(Value::Object(arg)) = props.get_mut(*shared) {
                arg.remove("description");
            }
        }
    }
    if let Some(req) = p.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|r| r.as_str().is_none_or(|r| !HIDDEN_ARGS.contains(&r)));
    }
    compact(&mut p, true);
    // the top-level description repeats the tool's
    if let Some(m) = p.as_object_mut() {
        m.remove("description");
    }
    ToolSpec { name: name.to_string(), description: shorten(description, MAX_TOOL_DESCRIPTION), parameters: p }
}

/// Shared definitions once: an argument with the same name and description in several tools
/// of a catalog keeps its description in the first tool only (rollback_plan and git_revert
/// take the same six arguments, for instance).
pub fn dedupe_descriptions(tools: &mut [ToolSpec]) {
    let mut seen: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    for t in tools.iter_mut() {
        let Some(props) = t.parameters.get_mut("properties").and_then(Value::as_object_mut) else { continue };
        for (name, p) in props.iter_mut() {
            let Some(m) = p.as_object_mut() else { continue };
            let Some(d) = m.get("description").and_then(Value::as_str).map(str::to_string) else { continue };
            if !seen.insert((name.clone(), d)) {
                m.remove("description");
            }
        }
    }
}

/// Most app names put in a schema's `enum` (a larger repo leaves `app` a free string).
pub const MAX_APP_ENUM: usize = 40;

/// How [`constrain_names`] writes the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// An `enum` in each argument (one tool per schema: strict tools).
    Inline,
    /// A `$ref` to `#/$defs/env` and `#/$defs/app`, defined once in the schema that holds
    /// every tool (the `json_schema` call schema, see [`name_defs`]).
    Shared,
}

/// The repo's environment names (and app names, up to [`MAX_APP_ENUM`]) as the allowed
/// values of the `env`, `envs` and `app` arguments, so that a constrained model can only name
/// real ones.
pub fn constrain_names(params: &mut Value, envs: &[String], apps: &[String], how: Names) {
    let Some(props) = params.get_mut("properties").and_then(Value::as_object_mut) else { return };
    for (name, def, values) in [("env", "env", envs), ("envs", "env", envs), ("app", "app", apps)] {
        if values.is_empty() || (name == "app" && values.len() > MAX_APP_ENUM) {
            continue;
        }
        let Some(p) = props.get_mut(name).and_then(Value::as_object_mut) else { continue };
        let types: Vec<String> = match p.get("type") {
            Some(Value::String(t)) => vec![t.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => continue,
        };
        let names = || Value::Array(values.iter().map(|v| Value::String(v.clone())).collect());
        let one = match how {
            Names::Inline => json!({"type": "string", "enum": names()}),
            Names::Shared => json!({"$ref": format!("#/$defs/{def}")}),
        };
        if types.iter().any(|t| t == "array") {
            if p.get("items").and_then(|i| i.get("type")).and_then(Value::as_str) == Some("string") {
                p.insert("items".into(), one);
                // a small model repeats a list item until the output limit; no list needs
                // a name twice
                p.insert("maxItems".into(), json!(values.len()));
            }
        } else if types.iter().any(|t| t == "string") {
            let nullable = types.iter().any(|t| t == "null");
            p.remove("type");
            match how {
                Names::Inline => {
                    let mut e = names();
                    if nullable && let Value::Array(a) = &mut e {
                        a.push(Value::Null);
                    }
                    p.insert("type".into(), if nullable { json!(["string", "null"]) } else { json!("string") });
                    p.insert("enum".into(), e);
                }
                Names::Shared => {
                    let mut any = vec![one];
                    if nullable {
                        any.push(json!({"type": "null"}));
                    }
                    p.insert("anyOf".into(), Value::Array(any));
                }
            }
        }
    }
}

/// The `$defs` that [`Names::Shared`] refers to.
pub fn name_defs(envs: &[String], apps: &[String]) -> Value {
    let mut defs = Map::new();
    if !envs.is_empty() {
        defs.insert("env".into(), json!({"type": "string", "enum": envs}));
    }
    if !apps.is_empty() && apps.len() <= MAX_APP_ENUM {
        defs.insert("app".into(), json!({"type": "string", "enum": apps}));
    }
    Value::Object(defs)
}

/// Closes every object that lists properties (`additionalProperties: false`), drops
/// non-standard `format`s and `$schema`.
pub fn strictify(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            if m.get("format").and_then(Value::as_str).is_some_and(|f| !STANDARD_FORMATS.contains(&f)) {
                m.remove("format");
            }
            m.remove("$schema");
            m.values_mut().for_each(strictify);
        }
        Value::Array(a) => a.iter_mut().for_each(strictify),
        _ => {}
    }
}

/// Drops what tells the model nothing: defaults, titles, `minimum: 0`, long descriptions.
/// `schema_level`: `v` is a schema (not the `properties` map, whose keys are names).
fn compact(v: &mut Value, schema_level: bool) {
    match v {
        Value::Object(m) if schema_level => {
            m.remove("default");
            m.remove("title");
            if m.get("minimum").and_then(Value::as_u64) == Some(0) {
                m.remove("minimum");
            }
            if let Some(Value::String(d)) = m.get_mut("description") {
                *d = shorten(&without_defaults(d), MAX_ARG_DESCRIPTION);
            }
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "properties" | "$defs" | "definitions" => {
                        if let Value::Object(props) = x {
                            props.values_mut().for_each(|p| compact(p, true));
                        }
                    }
                    "items" | "additionalProperties" | "not" => compact(x, true),
                    "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                        if let Value::Array(a) = x {
                            a.iter_mut().for_each(|s| compact(s, true));
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// A description without its "(default ...)" remarks: a model leaves the argument out
/// for the default, it need not know what the default is.
fn without_defaults(d: &str) -> String {
    let mut out = String::new();
    let mut rest = d;
    while let Some(i) = rest.find("(default") {
        out.push_str(rest[..i].trim_end());
        let after = &rest[i..];
        // skip to the matching ')', nested parentheses included
        let mut depth = 0usize;
        let mut end = after.len();
        for (j, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    let out = out.replace(" .", ".").replace(" ,", ",");
    if out.trim().is_empty() { d.to_string() } else { out.trim().to_string() }
}

/// The first sentence (or the whole text when short), on one line, at most `max` characters.
pub fn shorten(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let cut: String = one_line.chars().take(max).collect();
    // a sentence end inside the limit, else the last whole word
    if let Some(i) = cut.rfind(". ").filter(|i| *i > max / 3) {
        return cut[..=i].to_string();
    }
    match cut.rfind(' ') {
        Some(i) => format!("{}…", cut[..i].trim_end_matches([',', ';', ':'])),
        None => format!("{cut}…"),
    }
}

/// The schema in OpenAI strict form (see the module's documentation).
pub fn strict_schema(v: &Value) -> Value {
    let mut out = v.clone();
    make_strict(&mut out);
    out
}

fn make_strict(v: &mut Value) {
    let Value::Object(m) = v else { return };
    for k in ["default", "format", "minimum", "maximum", "minLength", "maxLength", "pattern", "title", "$schema"] {
        m.remove(k);
    }
    if is_map(m) {
        let value = m.get("additionalProperties").cloned().unwrap_or(json!({"type": "string"}));
        let mut value = value;
        make_strict(&mut value);
        let nullable = allows_null(m);
        let description = m.get("description").cloned();
        m.clear();
        m.insert("type".into(), if nullable { json!(["array", "null"]) } else { json!("array") });
        if let Some(d) = description {
            m.insert("description".into(), d);
        }
        m.insert(
            "items".into(),
            json!({"type": "object", "properties": {"key": {"type": "string"}, "value": value},
                   "required": ["key", "value"], "additionalProperties": false}),
        );
        return;
    }
    if let Some(Value::Object(props)) = m.get_mut("properties") {
        let names: Vec<String> = props.keys().cloned().collect();
        let required: Vec<String> = match m.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        };
        if let Some(Value::Object(props)) = m.get_mut("properties") {
            for (name, p) in props.iter_mut() {
                make_strict(p);
                if !required.contains(name) {
                    make_nullable(p);
                }
            }
        }
        m.insert("required".into(), Value::Array(names.into_iter().map(Value::String).collect()));
        m.insert("additionalProperties".into(), Value::Bool(false));
    }
    if let Some(items) = m.get_mut("items") {
        make_strict(items);
    }
    for k in ["anyOf", "oneOf"] {
        if let Some(Value::Array(a)) = m.get_mut(k) {
            a.iter_mut().for_each(make_strict);
        }
    }
}

/// An object schema with no listed properties and an `additionalProperties` schema: a map.
fn is_map(m: &Map<String, Value>) -> bool {
    !m.contains_key("properties") && m.get("additionalProperties").is_some_and(Value::is_object)
}

fn allows_null(m: &Map<String, Value>) -> bool {
    match m.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(a)) => a.iter().any(|t| t == "null"),
        _ => m.get("anyOf").and_then(Value::as_array).is_some_and(|a| a.iter().any(|s| s["type"] == "null")),
    }
}

fn make_nullable(v: &mut Value) {
    let Value::Object(m) = v else { return };
    if allows_null(m) {
        return;
    }
    match m.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            m.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(a)) => a.push(json!("null")),
        _ => {
            if let Some(Value::Array(a)) = m.get_mut("anyOf") {
                a.push(json!({"type": "null"}));
            }
        }
    }
    if let Some(Value::Array(e)) = m.get_mut("enum")
        && !e.contains(&Value::Null)
    {
        e.push(Value::Null);
    }
}

/// Arguments from a model that was given strict schemas, back in the registry's form: a
/// `null` where the registry's schema does not take one means "not given" and is dropped,
/// and `{key, value}` lists become maps again. Anything else is left for the checks.
pub fn from_model_args(args: &mut Value, schema: &Value) {
    let (Value::Object(a), Some(Value::Object(props))) = (args, schema.get("properties")) else { return };
    let names: Vec<String> = a.keys().cloned().collect();
    for name in names {
        let Some(p) = props.get(&name).and_then(Value::as_object) else { continue };
        let Some(value) = a.get_mut(&name) else { continue };
        if value.is_null() && !allows_null(p) {
            a.remove(&name);
            continue;
        }
        if is_map(p)
            && let Value::Array(pairs) = value
        {
            let mut map = Map::new();
            let mut all_pairs = true;
            for pair in pairs.iter() {
                match (pair.get("key").and_then(Value::as_str), pair.get("value")) {
                    (Some(k), Some(v)) => {
                        map.insert(k.to_string(), v.clone());
                    }
                    _ => all_pairs = false,
                }
            }
            if all_pairs {
                *value = Value::Object(map);
            }
            continue;
        }
        let nested = Value::Object(p.clone());
        from_model_args(value, &nested);
    }
}

/// The `json_schema` answer format: `{"step": ...}` holding one call (`{"tool": NAME,
/// "arguments": {...}}`, one branch per tool so that a name goes with its own arguments) or,
/// with `allow_answer`, `{"answer": TEXT}`.
pub fn call_schema(tools: &[ToolSpec], allow_answer: bool, defs: &Value) -> Value {
    let mut branches: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {
                    "tool": {"type": "string", "enum": [t.name]},
                    "arguments": strict_schema(&t.parameters),
                },
                "required": ["tool", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    if allow_answer {
        branches.push(json!({
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
            "additionalProperties": false,
        }));
    }
    let mut schema = json!({
        "type": "object",
        "properties": {"step": {"anyOf": branches}},
        "required": ["step"],
        "additionalProperties": false,
    });
    if defs.as_object().is_some_and(|d| !d.is_empty()) {
        schema["$defs"] = defs.clone();
    }
    schema
}

/// What a `json_schema` answer says.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonStep {
    Call { tool: String, arguments: Value },
    Answer(String),
}

/// Reads a `json_schema` answer (`{"step": {...}}`, or the step itself); the error goes
/// back to the model.
pub fn parse_step(text: &str) -> Result<JsonStep, String> {
    let t = text.trim();
    let t = t.strip_prefix("```json").or_else(|| t.strip_prefix("```")).unwrap_or(t);
    let t = t.strip_suffix("```").unwrap_or(t).trim();
    let v: Value = serde_json::from_str(t).map_err(|e| format!("the answer is not one JSON object ({e})"))?;
    let step = v.get("step").unwrap_or(&v);
    if let Some(tool) = step.get("tool").and_then(Value::as_str) {
        let arguments = step.get("arguments").cloned().unwrap_or_else(|| json!({}));
        return Ok(JsonStep::Call { tool: tool.to_string(), arguments });
    }
    if let Some(a) = step.get("answer").and_then(Value::as_str) {
        return Ok(JsonStep::Answer(a.to_string()));
    }
    Err("the answer has neither `tool` and `arguments` nor `answer`".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_made_strict() {
        let mut s = json!({"type": "object", "properties": {"n": {"type": "integer", "format": "uint32"}, "o": {"type": "object", "properties": {"x": {"type": "string", "format": "date-time"}}}}});
        strictify(&mut s);
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["properties"]["o"]["additionalProperties"], false);
        assert!(s["properties"]["n"].get("format").is_none());
        assert_eq!(s["properties"]["o"]["properties"]["x"]["format"], "date-time");
    }

    fn harmonize_like() -> Value {
        json!({
            "type": "object",
            "properties": {
                "kind": {"type": "string", "description": "Kind of object, e.g. Ingress."},
                "env": {"type": "array", "items": {"type": "string"}, "description": "Environments.", "default": []},
                "set_labels": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
                "limit": {"type": ["integer", "null"], "format": "uint", "minimum": 0, "default": null},
                "expect": {"type": ["string", "null"], "default": null},
                "expose": {"type": ["string", "null"], "enum": ["a", "b", null], "default": null},
            },
            "required": ["kind"],
        })
    }

    #[test]
    fn compact_specs_drop_noise_and_hidden_arguments() {
        let long = "Plan it. ".repeat(40);
        let spec = compact_spec("t", &long, &harmonize_like());
        assert!(spec.description.chars().count() <= MAX_TOOL_DESCRIPTION, "{}", spec.description);
        let p = &spec.parameters;
        assert!(p["properties"].get("expect").is_none(), "agentops binds expect itself");
        let text = serde_json::to_string(p).unwrap();
        assert!(!text.contains("default") && !text.contains("uint") && !text.contains("minimum"), "{text}");
        assert!(p["properties"]["env"].get("description").is_none(), "explained once in the prompt");
        assert_eq!(p["properties"]["kind"]["description"], "Kind of object, e.g. Ingress.");
        assert_eq!(p["additionalProperties"], false);
        assert_eq!(shorten("First sentence here. Then a second one", 30), "First sentence here.");
        assert_eq!(shorten("alpha beta gamma delta", 12), "alpha beta…");
        assert_eq!(without_defaults("Seconds to wait (default: the config's (x) value)."), "Seconds to wait.");
        assert_eq!(without_defaults("Port (default 8080), then more."), "Port, then more.");
        assert_eq!(without_defaults("(default 1)"), "(default 1)");
        let mut two = vec![compact_spec("a", "A.", &harmonize_like()), compact_spec("b", "B.", &harmonize_like())];
        dedupe_descriptions(&mut two);
        assert_eq!(two[0].parameters["properties"]["kind"]["description"], "Kind of object, e.g. Ingress.");
        assert!(two[1].parameters["properties"]["kind"].get("description").is_none(), "said once");
    }

    #[test]
    fn strict_form_and_back() {
        let spec = compact_spec("t", "d", &harmonize_like());
        let strict = strict_schema(&spec.parameters);
        let required: Vec<&str> = strict["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(required, ["kind", "env", "set_labels", "limit", "expose"], "every property is required");
        assert_eq!(strict["properties"]["env"]["type"], json!(["array", "null"]), "optional becomes nullable");
        assert_eq!(strict["properties"]["kind"]["type"], "string");
        assert_eq!(strict["properties"]["expose"]["enum"], json!(["a", "b", null]));
        let pairs = &strict["properties"]["set_labels"];
        assert_eq!(pairs["type"], json!(["array", "null"]));
        assert_eq!(pairs["items"]["required"], json!(["key", "value"]));
        // every object is closed, with every property required (OpenAI's strict rules)
        fn check(v: &Value) {
            if let Some(props) = v.get("properties").and_then(Value::as_object) {
                assert_eq!(v["additionalProperties"], false, "{v}");
                assert_eq!(v["required"].as_array().unwrap().len(), props.len(), "{v}");
                props.values().for_each(check);
            }
            if let Some(i) = v.get("items") {
                check(i);
            }
            assert!(v.get("default").is_none() && v.get("format").is_none(), "{v}");
        }
        check(&strict);

        let mut args = json!({"kind": "Deployment", "env": null, "set_labels": [{"key": "team", "value": "a"}],
                              "limit": null, "expose": null});
        from_model_args(&mut args, &harmonize_like());
        assert_eq!(args, json!({"kind": "Deployment", "set_labels": {"team": "a"}, "limit": null, "expose": null}));
    }

    #[test]
    fn names_become_enums() {
        let p = json!({"type": "object", "properties": {
            "env": {"type": "array", "items": {"type": "string"}},
            "app": {"type": ["string", "null"]},
            "kind": {"type": "string"}}});
        let (envs, apps) = (vec!["dev".to_string(), "prod".to_string()], vec!["web".to_string()]);
        let mut inline = p.clone();
        constrain_names(&mut inline, &envs, &apps, Names::Inline);
        assert_eq!(inline["properties"]["env"]["items"]["enum"], json!(["dev", "prod"]));
        assert_eq!(inline["properties"]["app"]["enum"], json!(["web", null]));
        assert!(inline["properties"]["kind"].get("enum").is_none());
        let strict = strict_schema(&inline);
        assert_eq!(strict["properties"]["env"]["type"], json!(["array", "null"]));
        let mut shared = p.clone();
        constrain_names(&mut shared, &envs, &apps, Names::Shared);
        assert_eq!(shared["properties"]["env"]["items"], json!({"$ref": "#/$defs/env"}));
        assert_eq!(shared["properties"]["env"]["maxItems"], 2, "each name at most once");
        assert_eq!(shared["properties"]["app"]["anyOf"], json!([{"$ref": "#/$defs/app"}, {"type": "null"}]));
        let spec = ToolSpec { name: "t".into(), description: String::new(), parameters: shared };
        let call = call_schema(&[spec], false, &name_defs(&envs, &apps));
        assert_eq!(call["$defs"]["env"]["enum"], json!(["dev", "prod"]), "defined once, at the root");
        let many: Vec<String> = (0..100).map(|i| format!("a{i}")).collect();
        let mut q = json!({"type": "object", "properties": {"app": {"type": "string"}}});
        constrain_names(&mut q, &[], &many, Names::Inline);
        assert!(q["properties"]["app"].get("enum").is_none(), "too many apps for an enum");
        assert!(name_defs(&[], &many).as_object().unwrap().is_empty());
    }

    #[test]
    fn one_call_per_answer() {
        let tools = vec![compact_spec(
            "validate",
            "Check.",
            &json!({"type": "object", "properties": {"env": {"type": "array", "items": {"type": "string"}}}}),
        )];
        let s = call_schema(&tools, false, &json!({}));
        let branches = s["properties"]["step"]["anyOf"].as_array().unwrap();
        assert_eq!(branches.len(), 1);
        assert_eq!(branches[0]["properties"]["tool"]["enum"], json!(["validate"]));
        assert_eq!(call_schema(&tools, true, &json!({}))["properties"]["step"]["anyOf"].as_array().unwrap().len(), 2);
        assert_eq!(
            parse_step(r#"{"step": {"tool": "validate", "arguments": {"env": ["dev"]}}}"#),
            Ok(JsonStep::Call { tool: "validate".into(), arguments: json!({"env": ["dev"]}) })
        );
        assert_eq!(parse_step("```json\n{\"answer\": \"done\"}\n```"), Ok(JsonStep::Answer("done".into())));
        assert!(parse_step(r#"{"step": {"tool": "validate", "argu"#).unwrap_err().contains("not one JSON object"));
        assert!(parse_step(r#"{"step": {}}"#).is_err());
    }
}
