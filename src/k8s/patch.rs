//! Patch semantics of the Kubernetes API server, as pure functions over `serde_json::Value`:
//! JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch with its
//! `$patch`, `$setElementOrder`, `$retainKeys` and `$deleteFromPrimitiveList` directives (what
//! `kubectl apply`, `edit`, `set image` and `scale` send), and the create-or-merge step of
//! server-side apply. List semantics come from [`crate::k8s::merge_keys`].

use crate::k8s::merge_keys::{self, ListKind};
use serde_json::{Map, Value};

/// Why a patch could not be applied. Messages follow the API server's (apimachinery's
/// mergepatch errors and the json-patch library it uses) where there is one to follow.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document has the wrong shape; the API server answers 400 Bad Request.
    #[error("{0}")]
    BadRequest(String),
    /// A JSON patch operation names a location that does not exist.
    #[error("{op} operation does not apply: doc is missing path: \"{path}\": missing value")]
    MissingPath { op: String, path: String },
    /// A JSON patch `test` operation found a different value.
    #[error("testing value {path} failed: test failed")]
    TestFailed { path: String },
    /// A JSON patch operation that is well formed but cannot apply (bad index, missing value).
    #[error("{op} operation does not apply: {reason}")]
    JsonPatch { op: String, reason: String },
    /// A JSON patch operation other than the six of RFC 6902.
    #[error("Unexpected kind: {0}")]
    UnknownOp(String),
    /// A strategic merge or apply that cannot be carried out on this object.
    #[error("{0}")]
    Unprocessable(String),
}

impl PatchError {
    /// The HTTP status the API server answers with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            _ => 422,
        }
    }
}

const BAD_JSON_DOC: &str = "invalid JSON document";
const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

fn bad(msg: &str) -> PatchError {
    PatchError::BadRequest(msg.to_string())
}

// ---------------------------------------------------------------------------------------------
// RFC 7386
// ---------------------------------------------------------------------------------------------

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything
/// else (arrays included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (k, v) in patch {
            if v.is_null() {
                map.shift_remove(k);
            } else {
                merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 6902
// ---------------------------------------------------------------------------------------------

/// Applies an RFC 6902 JSON patch. All or nothing: on error `target` is left unchanged.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let ops =
        ops.as_array().ok_or_else(|| bad("json: cannot unmarshal object into Go value of type jsonpatch.Patch"))?;
    // Working on a copy is what makes a failing op (a `test` last, say) leave no trace.
    let mut doc = target.clone();
    for op in ops {
        apply_op(&mut doc, op)?;
    }
    *target = doc;
    Ok(())
}

fn apply_op(doc: &mut Value, op: &Value) -> Result<(), PatchError> {
    let obj = op.as_object().ok_or_else(|| bad("json patch operation must be an object"))?;
    let kind = obj.get("op").and_then(Value::as_str).ok_or_else(|| bad("json patch operation has no \"op\""))?;
    let path_str = obj
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| PatchError::JsonPatch { op: kind.to_string(), reason: "missing path".to_string() })?;
    let path = parse_pointer(path_str)?;
    let value = || {
        obj.get("value")
            .cloned()
            .ok_or_else(|| PatchError::JsonPatch { op: kind.to_string(), reason: "missing value".to_string() })
    };
    let from = || -> Result<(String, Vec<String>), PatchError> {
        let f = obj
            .get("from")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::JsonPatch { op: kind.to_string(), reason: "missing from".to_string() })?;
        Ok((f.to_string(), parse_pointer(f)?))
    };
    match kind {
        "add" => pointer_add(doc, &path, path_str, value()?, "add"),
        "remove" => pointer_remove(doc, &path, path_str, "remove").map(drop),
        "replace" => {
            let v = value()?;
            let slot = pointer_get_mut(doc, &path).ok_or_else(|| missing("replace", path_str))?;
            *slot = v;
            Ok(())
        }
        "move" => {
            let (from_str, from_path) = from()?;
            if from_path == path {
                return Ok(());
            }
            if path.len() > from_path.len() && path.starts_with(&from_path) {
                return Err(PatchError::JsonPatch {
                    op: "move".to_string(),
                    reason: format!("cannot move {from_str} into its own child {path_str}"),
                });
            }
            let v = pointer_remove(doc, &from_path, &from_str, "move")?;
            pointer_add(doc, &path, path_str, v, "move")
        }
        "copy" => {
            let (from_str, from_path) = from()?;
            let v = pointer_get(doc, &from_path).cloned().ok_or_else(|| missing("copy", &from_str))?;
            pointer_add(doc, &path, path_str, v, "copy")
        }
        "test" => {
            let want = value()?;
            match pointer_get(doc, &path) {
                Some(have) if json_equal(have, &want) => Ok(()),
                _ => Err(PatchError::TestFailed { path: path_str.to_string() }),
            }
        }
        other => Err(PatchError::UnknownOp(other.to_string())),
    }
}

fn missing(op: &str, path: &str) -> PatchError {
    PatchError::MissingPath { op: op.to_string(), path: path.to_string() }
}

fn parse_pointer(p: &str) -> Result<Vec<String>, PatchError> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let rest = p
        .strip_prefix('/')
        .ok_or_else(|| PatchError::BadRequest(format!("JSON pointer {p:?} does not start with '/'")))?;
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => {
                        return Err(PatchError::BadRequest(format!("JSON pointer {p:?} has an invalid escape")));
                    }
                }
            }
            Ok(out)
        })
        .collect()
}

/// An RFC 6901 array index: decimal without leading zeros. `-` (one past the end) only where
/// the operation may append.
fn array_index(token: &str, len: usize, allow_end: bool) -> Option<usize> {
    if token == "-" {
        return allow_end.then_some(len);
    }
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    let i: usize = token.parse().ok()?;
    let in_bounds = if allow_end { i <= len } else { i < len };
    in_bounds.then_some(i)
}

fn pointer_get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |node, token| match node {
        Value::Object(m) => m.get(token),
        Value::Array(a) => a.get(array_index(token, a.len(), false)?),
        _ => None,
    })
}

fn pointer_get_mut<'a>(doc: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |node, token| match node {
        Value::Object(m) => m.get_mut(token),
        Value::Array(a) => {
            let i = array_index(token, a.len(), false)?;
            a.get_mut(i)
        }
        _ => None,
    })
}

fn pointer_add(doc: &mut Value, path: &[String], path_str: &str, value: Value, op: &str) -> Result<(), PatchError> {
    let Some((last, parent)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match pointer_get_mut(doc, parent) {
        Some(Value::Object(m)) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = array_index(last, a.len(), true).ok_or_else(|| PatchError::JsonPatch {
                op: op.to_string(),
                reason: format!("index out of bounds: {path_str}"),
            })?;
            a.insert(i, value);
            Ok(())
        }
        _ => Err(missing(op, path_str)),
    }
}

fn pointer_remove(doc: &mut Value, path: &[String], path_str: &str, op: &str) -> Result<Value, PatchError> {
    let Some((last, parent)) = path.split_last() else {
        return Err(PatchError::JsonPatch {
            op: op.to_string(),
            reason: "cannot remove the document root".to_string(),
        });
    };
    match pointer_get_mut(doc, parent) {
        Some(Value::Object(m)) => m.shift_remove(last).ok_or_else(|| missing(op, path_str)),
        Some(Value::Array(a)) => {
            let i = array_index(last, a.len(), false).ok_or_else(|| missing(op, path_str))?;
            Ok(a.remove(i))
        }
        _ => Err(missing(op, path_str)),
    }
}

/// RFC 6902 equality: numbers compare by value (`1` equals `1.0`), objects ignore key order.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------------------------

/// Applies a strategic merge patch to `target` (an object of kind `kind`) and returns the
/// result. Maps merge recursively and `null` deletes; lists merge per [`merge_keys::list_kind`].
/// No directive key survives into the result.
pub fn strategic_merge(kind: &str, target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let (Value::Object(target), Value::Object(patch)) = (target, patch) else {
        return Err(bad(BAD_JSON_DOC));
    };
    let mut path = Vec::new();
    let merged = smp_map(kind, &mut path, Some(target), patch)?;
    // `$patch: delete` at the root leaves an empty object, as the API server's merge does.
    Ok(Value::Object(merged.unwrap_or_default()))
}

fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE || k == RETAIN_KEYS || k.starts_with(SET_ELEMENT_ORDER) || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> PatchError {
    let shown = directive.as_str().map_or_else(|| directive.to_string(), str::to_string);
    PatchError::Unprocessable(format!("unknown patch type: {shown} in map: {}", Value::Object(map.clone())))
}

fn str_path(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

/// Merges `patch` into `original`; `None` means the map is deleted (`$patch: delete`).
fn smp_map(
    kind: &str,
    path: &mut Vec<String>,
    original: Option<&Map<String, Value>>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        match directive.as_str() {
            Some("replace") => {
                let mut rest = patch.clone();
                rest.shift_remove(DIRECTIVE);
                // Merging into nothing still runs nested directives and drops nulls.
                return Ok(Some(smp_map(kind, path, None, &rest)?.unwrap_or_default()));
            }
            Some("delete") => return Ok(None),
            Some("merge") => {}
            _ => return Err(bad_patch_type(directive, patch)),
        }
    }
    let mut out = original.cloned().unwrap_or_default();

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keys: Vec<&str> = retain
            .as_array()
            .ok_or_else(|| bad(BAD_RETAIN_KEYS))?
            .iter()
            .map(|k| k.as_str().ok_or_else(|| bad(BAD_RETAIN_KEYS)))
            .collect::<Result<_, _>>()?;
        let patch_outside_retained =
            patch.iter().any(|(k, v)| !v.is_null() && !is_directive_key(k) && !keys.contains(&k.as_str()));
        if patch_outside_retained {
            return Err(bad(BAD_RETAIN_KEYS));
        }
        out.retain(|k, _| keys.contains(&k.as_str()));
    }

    for (k, v) in patch {
        let Some(field) = k.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) else {
            continue;
        };
        let doomed = v.as_array().ok_or_else(|| bad(BAD_PRIMITIVE_LIST))?;
        if let Some(Value::Array(items)) = out.get_mut(field) {
            items.retain(|item| !doomed.contains(item));
        }
    }

    for (k, v) in patch {
        if is_directive_key(k) {
            continue;
        }
        if v.is_null() {
            out.shift_remove(k);
            continue;
        }
        path.push(k.clone());
        let merged = smp_value(kind, path, out.get(k), v);
        path.pop();
        match merged? {
            Some(value) => {
                out.insert(k.clone(), value);
            }
            None => {
                out.shift_remove(k);
            }
        }
    }

    for (k, v) in patch {
        let Some(field) = k.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let order = v.as_array().ok_or_else(|| bad(BAD_SET_ELEMENT_ORDER))?;
        let live = original.and_then(|o| o.get(field)).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        path.push(field.to_string());
        let list_kind = merge_keys::list_kind(kind, &str_path(path));
        path.pop();
        if let Some(Value::Array(items)) = out.get_mut(field) {
            let merged = std::mem::take(items);
            *items = normalize_order(list_kind, merged, order, live);
        }
    }
    Ok(Some(out))
}

fn smp_value(
    kind: &str,
    path: &mut Vec<String>,
    original: Option<&Value>,
    patch: &Value,
) -> Result<Option<Value>, PatchError> {
    match patch {
        // A type change (scalar to map, say) is a replacement: merge into nothing.
        Value::Object(p) => Ok(smp_map(kind, path, original.and_then(Value::as_object), p)?.map(Value::Object)),
        Value::Array(p) => {
            let original = original.and_then(Value::as_array).map(Vec::as_slice);
            Ok(Some(Value::Array(smp_list(kind, path, original, p)?)))
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

fn list_directive(item: &Value) -> Option<&Value> {
    item.as_object().and_then(|m| m.get(DIRECTIVE))
}

fn smp_list(
    kind: &str,
    path: &mut Vec<String>,
    original: Option<&[Value]>,
    patch: &[Value],
) -> Result<Vec<Value>, PatchError> {
    let list_kind = merge_keys::list_kind(kind, &str_path(path));
    let replace = patch.iter().any(|item| list_directive(item).and_then(Value::as_str) == Some("replace"));
    if replace || list_kind == ListKind::Atomic {
        let mut out = Vec::with_capacity(patch.len());
        for item in patch.iter().filter(|i| list_directive(i).is_none()) {
            if let Some(clean) = smp_value(kind, path, None, item)? {
                out.push(clean);
            }
        }
        return Ok(out);
    }
    let live = original.unwrap_or_default();
    match list_kind {
        ListKind::Set => {
            let mut merged: Vec<Value> = Vec::with_capacity(live.len() + patch.len());
            for item in live.iter().chain(patch) {
                if !merged.contains(item) {
                    merged.push(item.clone());
                }
            }
            Ok(normalize_order(list_kind, merged, patch, live))
        }
        ListKind::Map(keys) => smp_keyed_list(kind, path, keys, live, patch),
        ListKind::Atomic => Ok(patch.to_vec()),
    }
}

fn no_merge_key(item: &Value, keys: &[&str]) -> PatchError {
    PatchError::Unprocessable(format!(
        "map: {item} does not contain declared merge key: {}",
        keys.first().copied().unwrap_or_default()
    ))
}

fn smp_keyed_list(
    kind: &str,
    path: &mut Vec<String>,
    keys: &'static [&'static str],
    live: &[Value],
    patch: &[Value],
) -> Result<Vec<Value>, PatchError> {
    let mut out = live.to_vec();
    let mut updates: Vec<&Value> = Vec::with_capacity(patch.len());
    // Deletions first, as the API server does, so a patch may delete and re-add one key.
    for item in patch {
        if !item.is_object() {
            return Err(PatchError::Unprocessable(format!(
                "list element types are not identical: {item} in a list merged by {keys:?}"
            )));
        }
        match list_directive(item) {
            None => updates.push(item),
            Some(d) if d.as_str() == Some("delete") => {
                if !has_merge_key(keys, item) {
                    return Err(no_merge_key(item, keys));
                }
                out.retain(|existing| !key_matches(keys, item, existing, false));
            }
            Some(d) if d.as_str() == Some("merge") => {
                return Err(PatchError::Unprocessable(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ));
            }
            Some(d) => return Err(bad_patch_type(d, item.as_object().unwrap_or(&Map::new()))),
        }
    }
    for item in &updates {
        let Value::Object(fields) = item else {
            continue;
        };
        if !has_merge_key(keys, item) {
            return Err(no_merge_key(item, keys));
        }
        match find_match(keys, &out, item) {
            Some(i) => match smp_map(kind, path, out[i].as_object(), fields)? {
                Some(m) => out[i] = Value::Object(m),
                None => {
                    out.remove(i);
                }
            },
            None => {
                if let Some(m) = smp_map(kind, path, None, fields)? {
                    out.push(Value::Object(m));
                }
            }
        }
    }
    let order: Vec<Value> = updates.into_iter().cloned().collect();
    Ok(normalize_order(ListKind::Map(keys), out, &order, live))
}

/// A patch item must carry the primary merge key; the defaulted `protocol` may be left out.
fn has_merge_key(keys: &[&str], item: &Value) -> bool {
    keys.first().is_some_and(|k| merge_keys::key_field(item, k, false).is_some())
}

/// Whether `pattern` (a patch item, possibly naming only some key fields) names `item`. Key
/// fields absent from the pattern match anything, except that `strict` defaults a missing
/// `protocol` to TCP, as a patch item that omits it usually means.
fn key_matches(keys: &[&str], pattern: &Value, item: &Value, strict: bool) -> bool {
    keys.iter().all(|k| match merge_keys::key_field(pattern, k, strict) {
        None => true,
        Some(want) => merge_keys::key_field(item, k, true).as_ref() == Some(&want),
    })
}

/// The item `pattern` refers to: an exact key match first, then one ignoring key fields the
/// pattern leaves out (a port named only by number, as kubectl's patches name them).
fn find_match(keys: &[&str], items: &[Value], pattern: &Value) -> Option<usize> {
    items
        .iter()
        .position(|i| key_matches(keys, pattern, i, true))
        .or_else(|| items.iter().position(|i| key_matches(keys, pattern, i, false)))
}

/// Position of `item` in `list` by merge key (Map lists) or by value.
fn position_in(list_kind: ListKind, list: &[Value], item: &Value) -> Option<usize> {
    match list_kind {
        ListKind::Map(keys) => list
            .iter()
            .position(|p| key_matches(keys, p, item, true))
            .or_else(|| list.iter().position(|p| key_matches(keys, p, item, false))),
        _ => list.iter().position(|p| p == item),
    }
}

/// Orders a merged list the way the API server does: items named in `order` (the patch list,
/// or `$setElementOrder`) follow that order; the others keep their live order; the two runs are
/// interleaved so that an unnamed item stays before a named one it preceded in the live list.
fn normalize_order(list_kind: ListKind, merged: Vec<Value>, order: &[Value], live: &[Value]) -> Vec<Value> {
    let mut named: Vec<(usize, Value)> = Vec::new();
    let mut others: Vec<(usize, Value)> = Vec::new();
    for item in merged {
        match position_in(list_kind, order, &item) {
            Some(i) => named.push((i, item)),
            None => {
                let i = position_in(list_kind, live, &item).unwrap_or(usize::MAX);
                others.push((i, item));
            }
        }
    }
    named.sort_by_key(|(i, _)| *i);
    others.sort_by_key(|(i, _)| *i);
    let live_pos = |item: &Value| position_in(list_kind, live, item);
    let mut out = Vec::with_capacity(named.len() + others.len());
    let mut named = named.into_iter().map(|(_, v)| v).peekable();
    let mut others = others.into_iter().map(|(_, v)| v).peekable();
    loop {
        let take_other = match (others.peek(), named.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(o), Some(n)) => matches!((live_pos(o), live_pos(n)), (Some(a), Some(b)) if a < b),
        };
        let next = if take_other { others.next() } else { named.next() };
        out.extend(next);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Server-side apply
// ---------------------------------------------------------------------------------------------

/// Merges an applied configuration into the live object, as server-side apply does when it
/// creates or updates: applied fields win, Map lists merge by key and Set lists by value (the
/// applied order wins, live-only items keep their place), atomic lists and atomic structs are
/// replaced, and nothing is removed. `null` in the applied configuration is ignored.
pub fn apply_merge(kind: &str, live: &Value, applied: &Value) -> Result<Value, PatchError> {
    if !live.is_object() || !applied.is_object() {
        return Err(bad(BAD_JSON_DOC));
    }
    let mut path = Vec::new();
    apply_value(kind, &mut path, Some(live), applied)
}

fn apply_value(kind: &str, path: &mut Vec<String>, live: Option<&Value>, applied: &Value) -> Result<Value, PatchError> {
    match applied {
        Value::Object(fields) if !merge_keys::map_is_atomic(kind, &str_path(path)) => {
            let mut out = live.and_then(Value::as_object).cloned().unwrap_or_default();
            for (k, v) in fields {
                if v.is_null() {
                    continue;
                }
                path.push(k.clone());
                let merged = apply_value(kind, path, out.get(k), v);
                path.pop();
                out.insert(k.clone(), merged?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => {
            let list_kind = merge_keys::list_kind(kind, &str_path(path));
            match (list_kind, live.and_then(Value::as_array)) {
                (ListKind::Atomic, _) | (_, None) => Ok(applied.clone()),
                (_, Some(live_items)) => apply_list(kind, path, list_kind, live_items, items).map(Value::Array),
            }
        }
        _ => Ok(applied.clone()),
    }
}

/// Identity of a list item for apply: its merge key, or the value itself in a Set.
fn apply_key(kind: &str, path: &[String], list_kind: ListKind, item: &Value) -> Option<Value> {
    match list_kind {
        ListKind::Map(_) => merge_keys::item_key(kind, &str_path(path), item)
            .map(|k| Value::Array(k.into_iter().map(|(_, v)| v).collect())),
        _ => Some(item.clone()),
    }
}

/// The list merge of structured-merge-diff: walks live (lhs) and applied (rhs) together so the
/// applied order wins for applied items while live-only items stay where they were.
fn apply_list(
    kind: &str,
    path: &mut Vec<String>,
    list_kind: ListKind,
    live: &[Value],
    applied: &[Value],
) -> Result<Vec<Value>, PatchError> {
    let mut rkeys: Vec<Value> = Vec::with_capacity(applied.len());
    for (i, item) in applied.iter().enumerate() {
        let key = apply_key(kind, path, list_kind, item).ok_or_else(|| {
            PatchError::Unprocessable(format!(
                ".{}: element {i}: associative list with keys has an element that omits key fields {list_kind:?}",
                path.join(".")
            ))
        })?;
        if rkeys.contains(&key) {
            return Err(PatchError::Unprocessable(format!(".{}: duplicate entries for key {key}", path.join("."))));
        }
        rkeys.push(key);
    }
    // A live item without a usable key can never match an applied one; a unique stand-in
    // key keeps it in place untouched.
    let lkeys: Vec<Value> = live
        .iter()
        .enumerate()
        .map(|(i, item)| {
            apply_key(kind, path, list_kind, item).unwrap_or_else(|| Value::String(format!("\u{0}unkeyed/{i}")))
        })
        .collect();
    let in_rhs = |k: &Value| rkeys.contains(k);
    let lhs_item = |k: &Value| lkeys.iter().position(|l| l == k).map(|i| &live[i]);

    let mut shared = rkeys.iter().filter(|k| lkeys.contains(k));
    let mut next_shared = shared.next();
    let mut out = Vec::with_capacity(live.len().max(applied.len()));
    let (mut li, mut ri) = (0, 0);
    while li < live.len() || ri < applied.len() {
        if li < live.len() && ri < applied.len() {
            if lkeys[li] == rkeys[ri] {
                out.push(apply_value(kind, path, Some(&live[li]), &applied[ri])?);
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_rhs(&lkeys[li]) && next_shared.is_some_and(|n| *n != lkeys[li]) {
                li += 1;
                continue;
            }
        }
        if li < live.len() && !in_rhs(&lkeys[li]) {
            out.push(live[li].clone());
            li += 1;
            continue;
        }
        if ri < applied.len() {
            let key = &rkeys[ri];
            out.push(apply_value(kind, path, lhs_item(key), &applied[ri])?);
            if next_shared == Some(key) {
                next_shared = shared.next();
            }
            ri += 1;
            continue;
        }
        // Only reachable with duplicate live keys: the copy was already merged.
        li += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "annotations": {"team": "storefront", "deployment.kubernetes.io/revision": "3"},
                "finalizers": ["example.com/a", "example.com/b"]
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.25",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "MODE", "value": "prod"}, {"name": "LOG", "value": "info"}],
                            "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]
                        }],
                        "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                        "tolerations": [{"key": "gpu", "operator": "Exists"}]
                    }
                }
            }
        })
    }

    fn containers(obj: &Value) -> &Vec<Value> {
        obj.pointer("/spec/template/spec/containers").and_then(Value::as_array).unwrap()
    }

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter().map(|c| c["name"].as_str().unwrap()).collect()
    }

    fn assert_no_directives(v: &Value) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    assert!(!is_directive_key(k), "directive {k} left in result");
                    assert_no_directives(v);
                }
            }
            Value::Array(a) => a.iter().for_each(assert_no_directives),
            _ => {}
        }
    }

    // --- RFC 7386 ---

    #[test]
    fn merge_patch_rfc7386_examples() {
        // The test cases of RFC 7386 appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    #[test]
    fn merge_patch_replaces_container_list_whole() {
        let mut d = deployment();
        merge_patch(
            &mut d,
            &json!({"metadata": {"annotations": {"team": null}}, "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy"}]}}}}),
        );
        assert_eq!(names(containers(&d)), ["sidecar"]);
        assert!(d.pointer("/metadata/annotations/team").is_none());
    }

    // --- RFC 6902 ---

    fn jp(doc: Value, ops: Value) -> Result<Value, PatchError> {
        let mut d = doc;
        json_patch(&mut d, &ops).map(|()| d)
    }

    #[test]
    fn json_patch_rfc6902_examples() {
        // RFC 6902 appendix A.
        assert_eq!(
            jp(json!({"foo": "bar"}), json!([{"op": "add", "path": "/baz", "value": "qux"}])).unwrap(),
            json!({"baz": "qux", "foo": "bar"})
        );
        assert_eq!(
            jp(json!({"foo": ["bar", "baz"]}), json!([{"op": "add", "path": "/foo/1", "value": "qux"}])).unwrap(),
            json!({"foo": ["bar", "qux", "baz"]})
        );
        assert_eq!(
            jp(json!({"baz": "qux", "foo": "bar"}), json!([{"op": "remove", "path": "/baz"}])).unwrap(),
            json!({"foo": "bar"})
        );
        assert_eq!(
            jp(json!({"foo": ["bar", "qux", "baz"]}), json!([{"op": "remove", "path": "/foo/1"}])).unwrap(),
            json!({"foo": ["bar", "baz"]})
        );
        assert_eq!(
            jp(json!({"baz": "qux", "foo": "bar"}), json!([{"op": "replace", "path": "/baz", "value": "boo"}]))
                .unwrap(),
            json!({"baz": "boo", "foo": "bar"})
        );
        assert_eq!(
            jp(
                json!({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}),
                json!([{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}])
            )
            .unwrap(),
            json!({"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}})
        );
        assert_eq!(
            jp(
                json!({"foo": ["all", "grass", "cows", "eat"]}),
                json!([{"op": "move", "from": "/foo/1", "path": "/foo/3"}])
            )
            .unwrap(),
            json!({"foo": ["all", "cows", "eat", "grass"]})
        );
        assert!(
            jp(
                json!({"baz": "qux", "foo": ["a", 2, "c"]}),
                json!([{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}])
            )
            .is_ok()
        );
        assert!(matches!(
            jp(json!({"baz": "qux"}), json!([{"op": "test", "path": "/baz", "value": "bar"}])),
            Err(PatchError::TestFailed { .. })
        ));
        assert_eq!(
            jp(json!({"foo": "bar"}), json!([{"op": "add", "path": "/child", "value": {"grandchild": {}}}])).unwrap(),
            json!({"foo": "bar", "child": {"grandchild": {}}})
        );
        assert!(matches!(
            jp(json!({"foo": "bar"}), json!([{"op": "add", "path": "/baz/bat", "value": "qux"}])),
            Err(PatchError::MissingPath { .. })
        ));
        assert_eq!(
            jp(
                json!({"/": 9, "~1": 10}),
                json!([{"op": "test", "path": "/~01", "value": 10}, {"op": "remove", "path": "/~1"}])
            )
            .unwrap(),
            json!({"~1": 10})
        );
        assert!(jp(json!({"/": 9, "~1": 10}), json!([{"op": "test", "path": "/~01", "value": "10"}])).is_err());
        assert_eq!(
            jp(json!({"foo": ["bar"]}), json!([{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}])).unwrap(),
            json!({"foo": ["bar", ["abc", "def"]]})
        );
        assert_eq!(
            jp(
                json!({"foo": 1}),
                json!([{"op": "test", "path": "/foo", "value": 1.0}, {"op": "copy", "from": "/foo", "path": "/bar"}])
            )
            .unwrap(),
            json!({"foo": 1, "bar": 1})
        );
    }

    #[test]
    fn json_patch_on_a_deployment_is_atomic() {
        let before = deployment();
        let mut d = before.clone();
        let err = json_patch(
            &mut d,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "sidecar", "image": "envoy"}},
                {"op": "test", "path": "/metadata/annotations/team", "value": "payments"}
            ]),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "testing value /metadata/annotations/team failed: test failed");
        assert_eq!(err.status_code(), 422);
        assert_eq!(d, before, "a failed patch must leave the object untouched");

        json_patch(
            &mut d,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "sidecar", "image": "envoy"}},
                {"op": "remove", "path": "/metadata/annotations/deployment.kubernetes.io~1revision"}
            ]),
        )
        .unwrap();
        assert_eq!(d["spec"]["replicas"], json!(5));
        assert_eq!(names(containers(&d)), ["web", "sidecar"]);
        assert!(d["metadata"]["annotations"].get("deployment.kubernetes.io/revision").is_none());
    }

    #[test]
    fn json_patch_errors() {
        let d = deployment();
        let run = |ops: Value| jp(d.clone(), ops).unwrap_err();
        let e = run(json!([{"op": "replace", "path": "/spec/paused", "value": true}]));
        assert_eq!(
            e.to_string(),
            "replace operation does not apply: doc is missing path: \"/spec/paused\": missing value"
        );
        assert!(matches!(
            run(json!([{"op": "remove", "path": "/spec/template/spec/containers/3"}])),
            PatchError::MissingPath { .. }
        ));
        assert!(matches!(
            run(json!([{"op": "add", "path": "/spec/template/spec/containers/5", "value": {}}])),
            PatchError::JsonPatch { .. }
        ));
        assert!(matches!(
            run(json!([{"op": "remove", "path": "/spec/template/spec/containers/01"}])),
            PatchError::MissingPath { .. }
        ));
        assert!(matches!(
            run(json!([{"op": "remove", "path": "/spec/template/spec/containers/-"}])),
            PatchError::MissingPath { .. }
        ));
        assert!(matches!(run(json!([{"op": "add", "path": "spec", "value": 1}])), PatchError::BadRequest(_)));
        assert!(matches!(run(json!([{"op": "add", "path": "/spec/~2", "value": 1}])), PatchError::BadRequest(_)));
        assert!(matches!(run(json!([{"op": "add", "path": "/spec/x"}])), PatchError::JsonPatch { .. }));
        assert!(matches!(run(json!([{"op": "frobnicate", "path": "/spec"}])), PatchError::UnknownOp(_)));
        assert!(matches!(
            run(json!([{"op": "move", "from": "/spec", "path": "/spec/template/x"}])),
            PatchError::JsonPatch { .. }
        ));
        let e = run(json!({"op": "add"}));
        assert_eq!(e.status_code(), 400);
    }

    // --- strategic merge ---

    fn smp(patch: Value) -> Value {
        let out = strategic_merge("Deployment", &deployment(), &patch).unwrap();
        assert_no_directives(&out);
        out
    }

    #[test]
    fn smp_adds_a_sidecar_by_name() {
        let out =
            smp(json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy:1.30"}]}}}}));
        // Without $setElementOrder the API server puts patch items before live-only ones
        // (the kubectl patch docs show the new container first).
        assert_eq!(names(containers(&out)), ["sidecar", "web"]);
        assert_eq!(containers(&out)[1]["image"], json!("nginx:1.25"), "web untouched");
        assert_eq!(out["spec"]["replicas"], json!(2));
    }

    #[test]
    fn smp_changes_one_image_like_kubectl_set_image() {
        let out =
            smp(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}));
        let c = &containers(&out)[0];
        assert_eq!(c["image"], json!("nginx:1.27"));
        assert_eq!(c["ports"], json!([{"containerPort": 8080, "protocol": "TCP"}]));
        assert_eq!(c["env"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn smp_env_by_name() {
        let out = smp(json!({"spec": {"template": {"spec": {"containers": [{
            "name": "web",
            "env": [{"name": "LOG", "value": "debug"}, {"name": "REGION", "value": "eu"}]
        }]}}}}));
        let env = containers(&out)[0]["env"].as_array().unwrap();
        assert_eq!(names(env), ["MODE", "LOG", "REGION"]);
        assert_eq!(env[1]["value"], json!("debug"));
        assert_eq!(env[0]["value"], json!("prod"));
    }

    #[test]
    fn smp_delete_directives_remove_container_and_volume() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "envoy"}));
        let out = strategic_merge(
            "Deployment",
            &d,
            &json!({"spec": {"template": {"spec": {
                "containers": [{"$patch": "delete", "name": "sidecar"}],
                "volumes": [{"name": "tmp", "$patch": "delete"}]
            }}}}),
        )
        .unwrap();
        assert_no_directives(&out);
        assert_eq!(names(containers(&out)), ["web"]);
        let vols = out.pointer("/spec/template/spec/volumes").unwrap().as_array().unwrap();
        assert_eq!(names(vols), ["cache"]);
        let e = strategic_merge(
            "Deployment",
            &d,
            &json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "image": "x"}]}}}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not contain declared merge key: name"), "{e}");
    }

    #[test]
    fn smp_set_element_order_like_kubectl_apply() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "envoy"}));
        // What `kubectl apply` sends after the manifest swapped the containers and added one.
        let out = strategic_merge(
            "Deployment",
            &d,
            &json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "metrics"}, {"name": "web"}],
                "containers": [{"name": "metrics", "image": "prom/exporter"}]
            }}}}),
        )
        .unwrap();
        assert_no_directives(&out);
        assert_eq!(names(containers(&out)), ["sidecar", "metrics", "web"]);

        // An item the order does not name (injected by the server) is interleaved by live order:
        // it preceded `b` in the live list, so it stays before `b`.
        let mut d2 = deployment();
        d2["spec"]["template"]["spec"]["containers"] = json!([{"name": "a"}, {"name": "istio-proxy"}, {"name": "b"}]);
        let out = strategic_merge(
            "Deployment",
            &d2,
            &json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}}}),
        )
        .unwrap();
        assert_eq!(names(containers(&out)), ["istio-proxy", "b", "a"]);
    }

    #[test]
    fn smp_retain_keys_drops_unlisted_fields() {
        let mut d = deployment();
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
        let out = strategic_merge(
            "Deployment",
            &d,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        )
        .unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let e = strategic_merge(
            "Deployment",
            &d,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "invalid patch format of retainKeys");
        assert_eq!(e.status_code(), 400);
    }

    #[test]
    fn smp_finalizers_are_a_set() {
        let out = smp(json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
            "finalizers": ["example.com/b", "example.com/c"]
        }}));
        assert_eq!(out["metadata"]["finalizers"], json!(["example.com/b", "example.com/c"]));
        let out = smp(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/b"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["example.com/a"]));
    }

    #[test]
    fn smp_null_deletes_an_annotation() {
        let out = smp(json!({"metadata": {"annotations": {"team": null, "owner": "ops"}}}));
        assert_eq!(out["metadata"]["annotations"], json!({"deployment.kubernetes.io/revision": "3", "owner": "ops"}));
        // A null for a key that is not there is dropped, not stored.
        let out = smp(json!({"spec": {"paused": null}}));
        assert!(out["spec"].get("paused").is_none());
    }

    #[test]
    fn smp_service_ports_merge_by_port() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"}
            ]}
        });
        let out = strategic_merge(
            "Service",
            &svc,
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443, "name": "https", "targetPort": 8443}]}}),
        )
        .unwrap();
        let ports = out["spec"]["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 3);
        let http = ports.iter().find(|p| p["port"] == json!(80)).unwrap();
        assert_eq!(http["targetPort"], json!(9090));
        assert_eq!(http["name"], json!("http"));
        // Named by port only, the UDP port is still found.
        let out =
            strategic_merge("Service", &svc, &json!({"spec": {"ports": [{"port": 53, "targetPort": 5353}]}})).unwrap();
        let ports = out["spec"]["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().any(|p| p["protocol"] == json!("UDP") && p["targetPort"] == json!(5353)));
    }

    #[test]
    fn smp_tolerations_are_replaced_whole() {
        let out = smp(
            json!({"spec": {"template": {"spec": {"tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]}}}}),
        );
        assert_eq!(
            out.pointer("/spec/template/spec/tolerations").unwrap(),
            &json!([{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}])
        );
    }

    #[test]
    fn smp_patch_replace_on_a_map_and_a_list() {
        let out = smp(
            json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "app": "web2", "tier": "front"}}}}}),
        );
        assert_eq!(out.pointer("/spec/template/metadata/labels").unwrap(), &json!({"app": "web2", "tier": "front"}));
        let out = smp(
            json!({"spec": {"template": {"spec": {"volumes": [{"$patch": "replace"}, {"name": "data", "emptyDir": {}}]}}}}),
        );
        assert_eq!(out.pointer("/spec/template/spec/volumes").unwrap(), &json!([{"name": "data", "emptyDir": {}}]));
        let out = smp(json!({"spec": {"selector": {"$patch": "delete"}}}));
        assert!(out["spec"].get("selector").is_none());
        let e = strategic_merge("Deployment", &deployment(), &json!({"spec": {"$patch": "explode"}})).unwrap_err();
        assert!(e.to_string().starts_with("unknown patch type: explode in map:"), "{e}");
    }

    #[test]
    fn smp_scale_and_new_subtrees_are_cleaned() {
        let out = smp(
            json!({"spec": {"replicas": 7, "strategy": {"$patch": "replace", "type": "Recreate", "rollingUpdate": null}}}),
        );
        assert_eq!(out["spec"]["replicas"], json!(7));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        assert!(matches!(strategic_merge("Deployment", &deployment(), &json!([1])), Err(PatchError::BadRequest(_))));
    }

    // --- server-side apply ---

    #[test]
    fn apply_keeps_live_only_fields_and_merges_containers_by_name() {
        let mut live = deployment();
        live["status"] = json!({"replicas": 2});
        live["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "istio-proxy", "image": "istio/proxyv2"}));
        let applied = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web", "track": "stable"}},
                "template": {"spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 9090}]},
                        {"name": "metrics", "image": "prom/exporter"}
                    ],
                    "tolerations": []
                }}
            }
        });
        let out = apply_merge("Deployment", &live, &applied).unwrap();
        assert_eq!(out["status"], json!({"replicas": 2}));
        assert_eq!(out["metadata"]["annotations"]["team"], json!("storefront"));
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["spec"]["replicas"], json!(3));
        assert_eq!(names(containers(&out)), ["web", "istio-proxy", "metrics"]);
        let web = &containers(&out)[0];
        assert_eq!(web["image"], json!("nginx:1.27"));
        assert_eq!(web["env"].as_array().unwrap().len(), 2, "live-only env kept");
        assert_eq!(web["ports"], json!([{"containerPort": 8080, "protocol": "TCP"}, {"containerPort": 9090}]));
        assert_eq!(out.pointer("/spec/template/spec/tolerations").unwrap(), &json!([]));
        assert_eq!(out["spec"]["template"]["metadata"]["labels"], json!({"app": "web"}));

        let dup = json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        assert!(apply_merge("Deployment", &live, &dup).is_err());
        let nokey = json!({"spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
        assert!(apply_merge("Deployment", &live, &nokey).is_err());
    }

    #[test]
    fn apply_order_follows_the_applied_list() {
        let live = json!({"spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}});
        let applied = json!({"spec": {"containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}]}});
        let out = apply_merge("Pod", &live, &applied).unwrap();
        assert_eq!(names(out["spec"]["containers"].as_array().unwrap()), ["x", "b", "a", "c"]);
    }
}
