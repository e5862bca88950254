//! Comment-preserving edits of Kubernetes YAML files.
//!
//! The documents are parsed with the lossless `yaml-edit` parser, which is
//! used only to *locate* nodes (byte ranges of keys, values and entries).
//! Every edit is then applied as a minimal text splice, so every byte outside
//! the edited span (comments, key order, indentation, quoting of untouched
//! scalars, other documents of a multi-document file) stays identical.
//!
//! Paths are lists of segments from the document root. A segment is a map key
//! when the current node is a mapping, and a list index (`"0"`, `"1"`, ...)
//! when the current node is a sequence.

use std::str::FromStr;

use yaml_edit::{Mapping, YamlFile, YamlNode};

/// Errors returned by the edit functions.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The text is not valid YAML.
    #[error("YAML parse error: {0}")]
    Parse(String),
    /// A document, key or list index does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A node has a different kind than the path requires.
    #[error("unexpected node kind at {path}: expected {expected}")]
    Kind {
        /// The path (joined with `.`) of the offending node.
        path: String,
        /// What was expected there.
        expected: &'static str,
    },
    /// The edit is valid but not supported without reformatting the file.
    #[error("unsupported edit: {0}")]
    Unsupported(String),
    /// The path is empty.
    #[error("empty path")]
    EmptyPath,
}

/// Quoting style of an existing scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

/// Sets `path` (a list of map keys from the document root, e.g.
/// `["metadata","annotations","nginx.ingress.kubernetes.io/ssl-protocols"]`)
/// to a string value in document `doc_index` of a (possibly multi-document)
/// YAML text, creating missing maps, keeping every other byte (comments, key
/// order, indentation, quoting of untouched scalars) identical. If the key
/// exists, the old scalar's quoting style is reused; new string values are
/// double-quoted when they need quoting (YAML-special or look like
/// numbers/bools), plain otherwise.
///
/// Segments that address a sequence are read as list indices; missing maps
/// are created only below mappings (a missing list index is `NotFound`).
pub fn set_string(text: &str, doc_index: usize, path: &[&str], value: &str) -> Result<String, EditError> {
    let (last, parents) = path.split_last().ok_or(EditError::EmptyPath)?;
    let file = parse(text)?;
    let root = document_root(&file, doc_index)?;
    let mut indents = Indents::default();

    // Walk down to the parent mapping of the last key.
    let mut current = root;
    for (depth, seg) in parents.iter().enumerate() {
        let here = &path[..=depth];
        match &current {
            YamlNode::Mapping(map) => {
                indents.push_mapping(text, map);
                let Some(entry) = map.find_entry_by_key(*seg) else {
                    // Create the rest of the path as nested block maps.
                    let rest = &path[depth..];
                    return insert_into_mapping(text, map, &indents, rest, value);
                };
                match entry.value_node() {
                    Some(YamlNode::Mapping(child)) if !child.is_flow_style() => {
                        current = YamlNode::Mapping(child);
                    }
                    Some(YamlNode::Mapping(child)) if child.is_empty() => {
                        // `annotations: {}`: replace the empty flow map.
                        let r = range(&YamlNode::Mapping(child));
                        let rest = &path[depth + 1..];
                        return replace_empty_value(text, r, &indents, rest, value);
                    }
                    Some(YamlNode::Sequence(seq)) if !seq.is_flow_style() => {
                        current = YamlNode::Sequence(seq);
                    }
                    Some(YamlNode::Scalar(s)) if is_null_text(raw(text, s.byte_range())) => {
                        // `annotations:` or `annotations: ~`: replace the null.
                        let r = s.byte_range();
                        let (start, end) = (r.start as usize, r.end as usize);
                        let rest = &path[depth + 1..];
                        if start == end {
                            let colon = colon_after_key(text, &entry)?;
                            return replace_empty_value(text, (colon, colon), &indents, rest, value);
                        }
                        return replace_empty_value(text, (start, end), &indents, rest, value);
                    }
                    None => {
                        let colon = colon_after_key(text, &entry)?;
                        let rest = &path[depth + 1..];
                        return replace_empty_value(text, (colon, colon), &indents, rest, value);
                    }
                    Some(_) => {
                        return Err(EditError::Kind {
                            path: here.join("."),
                            expected: "block mapping, block sequence or null",
                        });
                    }
                }
            }
            YamlNode::Sequence(seq) => {
                let idx: usize =
                    seg.parse().map_err(|_| EditError::Kind { path: here.join("."), expected: "list index" })?;
                current = seq.get(idx).ok_or_else(|| EditError::NotFound(here.join(".")))?;
            }
            _ => {
                return Err(EditError::Kind { path: path[..depth].join("."), expected: "mapping or sequence" });
            }
        }
    }

    let YamlNode::Mapping(map) = current else {
        return Err(EditError::Kind { path: parents.join("."), expected: "block mapping" });
    };
    if map.is_flow_style() {
        return Err(EditError::Unsupported(format!("flow mapping at {}", parents.join("."))));
    }
    indents.push_mapping(text, &map);
    let Some(entry) = map.find_entry_by_key(*last) else {
        return insert_into_mapping(text, &map, &indents, &[*last], value);
    };
    match entry.value_node() {
        Some(YamlNode::Scalar(s)) => {
            let r = s.byte_range();
            let (start, end) = (r.start as usize, r.end as usize);
            let old = &text[start..end];
            if old.is_empty() {
                let colon = colon_after_key(text, &entry)?;
                return Ok(splice(text, colon, colon, &format!(" {}", render_new(value))));
            }
            if s.is_block() {
                return Err(EditError::Unsupported(format!("replacing block scalar at {}", path.join("."))));
            }
            let style = match old.as_bytes().first() {
                Some(b'\'') => Style::Single,
                Some(b'"') => Style::Double,
                _ => Style::Plain,
            };
            if style != Style::Plain && s.as_string() == value {
                return Ok(text.to_string());
            }
            let new = match style {
                Style::Single if !value.contains('\n') => render_single(value),
                Style::Single | Style::Double => render_double(value),
                Style::Plain => render_new(value),
            };
            Ok(splice(text, start, end, &new))
        }
        None => {
            let colon = colon_after_key(text, &entry)?;
            Ok(splice(text, colon, colon, &format!(" {}", render_new(value))))
        }
        Some(_) => Err(EditError::Kind { path: path.join("."), expected: "scalar" }),
    }
}

/// Removes the key at `path` (error `NotFound` if absent).
///
/// The whole entry (key line and any nested lines of its value) is removed;
/// comments on lines before the key are kept. If the removed key was the only
/// one of its map, the parent key is left with a null value (`annotations:`).
pub fn remove(text: &str, doc_index: usize, path: &[&str]) -> Result<String, EditError> {
    let (last, parents) = path.split_last().ok_or(EditError::EmptyPath)?;
    let file = parse(text)?;
    let root = document_root(&file, doc_index)?;
    let parent = walk(root, parents)?;
    let YamlNode::Mapping(map) = parent else {
        return Err(EditError::Kind { path: parents.join("."), expected: "mapping" });
    };
    if map.is_flow_style() {
        return Err(EditError::Unsupported(format!("flow mapping at {}", parents.join("."))));
    }
    let entry = map.find_entry_by_key(*last).ok_or_else(|| EditError::NotFound(path.join(".")))?;
    let key = entry.key_node().ok_or_else(|| EditError::NotFound(path.join(".")))?;
    let key_start = key.byte_range().start as usize;
    let line_start = line_start(text, key_start);
    if !text[line_start..key_start].chars().all(|c| c == ' ') {
        return Err(EditError::Unsupported(format!("key {} does not start its line", path.join("."))));
    }
    let end = match entry.value_node() {
        Some(v) => {
            let r = v.byte_range();
            end_of_line(text, (r.end as usize).max(key.byte_range().end as usize))
        }
        None => end_of_line(text, key.byte_range().end as usize),
    };
    Ok(splice(text, line_start, end, ""))
}

/// Edits the YAML held in a literal block scalar (a kustomize inline patch:
/// `patches: - patch: |-`) at `block_path` (keys and list indices as strings,
/// e.g. `["patches","0","patch"]`) in document 0 by applying `f` to the inner
/// text, then re-emits it as a literal block with the same indentation and
/// chomping indicator.
///
/// `f` receives the dedented block content (each line ending in `\n`, without
/// trailing blank lines); trailing blank lines of the original block and the
/// header line (`|-`, `|+`, `|2`, trailing comment) are kept as they are.
pub fn edit_block(
    text: &str,
    block_path: &[&str],
    f: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<String, EditError> {
    if block_path.is_empty() {
        return Err(EditError::EmptyPath);
    }
    reject_crlf(text)?;
    let file = parse(text)?;
    let root = document_root(&file, 0)?;
    let node = walk(root, block_path)?;
    let YamlNode::Scalar(s) = node else {
        return Err(EditError::Kind { path: block_path.join("."), expected: "literal block scalar" });
    };
    let r = s.byte_range();
    let (start, end) = (r.start as usize, r.end as usize);
    let raw_block = &text[start..end];
    if !s.is_block() || !raw_block.starts_with('|') {
        return Err(EditError::Kind { path: block_path.join("."), expected: "literal block scalar" });
    }
    let header_len = raw_block.find('\n').map_or(raw_block.len(), |i| i + 1);
    let header = &raw_block[..header_len];
    let body = &raw_block[header_len..];
    let explicit_indent =
        header.chars().skip(1).take_while(|c| !c.is_whitespace() && *c != '#').find_map(|c| c.to_digit(10));

    // Split the body into content lines and trailing blank lines.
    let lines: Vec<&str> = body.split_inclusive('\n').collect();
    let content_count = lines.iter().rposition(|l| !l.trim().is_empty()).map_or(0, |i| i + 1);
    let content = &lines[..content_count];
    let trailing: String = lines[content_count..].concat();

    let indent = match explicit_indent {
        Some(n) => explicit_parent_column(text, block_path)? + n as usize,
        None => {
            content.iter().find(|l| !l.trim().is_empty()).map_or(0, |l| l.chars().take_while(|c| *c == ' ').count())
        }
    };
    if content.is_empty() || indent == 0 {
        return Err(EditError::Unsupported(format!("empty block scalar at {}", block_path.join("."))));
    }

    let mut inner = String::new();
    for line in content {
        let body_line = line.strip_suffix('\n').unwrap_or(line);
        if body_line.trim().is_empty() {
            inner.push('\n');
        } else if body_line.len() >= indent && body_line[..indent].chars().all(|c| c == ' ') {
            inner.push_str(&body_line[indent..]);
            inner.push('\n');
        } else {
            return Err(EditError::Parse(format!("under-indented line in block scalar at {}", block_path.join("."))));
        }
    }

    let edited = f(&inner)?;
    let edited = edited.trim_end_matches('\n');
    if explicit_indent.is_none() && edited.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.starts_with(' ')) {
        return Err(EditError::Unsupported("edited block starts with an indented line".to_string()));
    }
    let pad = " ".repeat(indent);
    let mut new_body = String::new();
    for line in edited.split('\n') {
        if !line.trim().is_empty() {
            new_body.push_str(&pad);
            new_body.push_str(line);
        }
        new_body.push('\n');
    }
    // Keep a block at end of file without final newline as it was.
    if !body.ends_with('\n') && trailing.is_empty() {
        new_body.pop();
    }
    new_body.push_str(&trailing);
    let mut replacement = String::with_capacity(header.len() + new_body.len());
    replacement.push_str(header);
    replacement.push_str(&new_body);
    Ok(splice(text, start, end, &replacement))
}

// ---------------------------------------------------------------------------
// Helpers

/// Indentation level `n` that an explicit block indentation indicator is
/// relative to: the column of the key whose value is the block scalar.
fn explicit_parent_column(text: &str, block_path: &[&str]) -> Result<usize, EditError> {
    let unsupported =
        || EditError::Unsupported(format!("explicit indentation indicator on a list item at {}", block_path.join(".")));
    let (last, parents) = block_path.split_last().ok_or(EditError::EmptyPath)?;
    let file = parse(text)?;
    let parent = walk(document_root(&file, 0)?, parents)?;
    let YamlNode::Mapping(map) = parent else {
        return Err(unsupported());
    };
    let key = map
        .find_entry_by_key(*last)
        .and_then(|e| e.key_node())
        .ok_or_else(|| EditError::NotFound(block_path.join(".")))?;
    Ok(column(text, key.byte_range().start as usize))
}

/// Edits that add lines only emit `\n`; refuse rather than mix line endings.
fn reject_crlf(text: &str) -> Result<(), EditError> {
    if text.contains('\r') {
        return Err(EditError::Unsupported("CRLF line endings".to_string()));
    }
    Ok(())
}

fn parse(text: &str) -> Result<YamlFile, EditError> {
    YamlFile::from_str(text).map_err(|e| EditError::Parse(e.to_string()))
}

fn document_root(file: &YamlFile, doc_index: usize) -> Result<YamlNode, EditError> {
    let doc = file.documents().nth(doc_index).ok_or_else(|| EditError::NotFound(format!("document {doc_index}")))?;
    if let Some(m) = doc.as_mapping() {
        Ok(YamlNode::Mapping(m))
    } else if let Some(s) = doc.as_sequence() {
        Ok(YamlNode::Sequence(s))
    } else {
        Err(EditError::Kind { path: format!("document {doc_index}"), expected: "mapping or sequence" })
    }
}

/// Follows `path` (keys or indices) from `node`; every segment must exist.
fn walk(node: YamlNode, path: &[&str]) -> Result<YamlNode, EditError> {
    let mut current = node;
    for (depth, seg) in path.iter().enumerate() {
        let here = || path[..=depth].join(".");
        current = match &current {
            YamlNode::Mapping(map) => {
                map.find_entry_by_key(*seg).and_then(|e| e.value_node()).ok_or_else(|| EditError::NotFound(here()))?
            }
            YamlNode::Sequence(seq) => {
                let idx: usize = seg.parse().map_err(|_| EditError::Kind { path: here(), expected: "list index" })?;
                seq.get(idx).ok_or_else(|| EditError::NotFound(here()))?
            }
            _ => {
                return Err(EditError::Kind { path: path[..depth].join("."), expected: "mapping or sequence" });
            }
        };
    }
    Ok(current)
}

fn range(node: &YamlNode) -> (usize, usize) {
    let r = node.byte_range();
    (r.start as usize, r.end as usize)
}

fn raw(text: &str, r: yaml_edit::TextPosition) -> &str {
    &text[r.start as usize..r.end as usize]
}

fn is_null_text(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn splice(text: &str, start: usize, end: usize, new: &str) -> String {
    let mut out = String::with_capacity(text.len() + new.len());
    out.push_str(&text[..start]);
    out.push_str(new);
    out.push_str(&text[end..]);
    out
}

fn line_start(text: &str, pos: usize) -> usize {
    text[..pos].rfind('\n').map_or(0, |i| i + 1)
}

/// Position just after the newline ending the line that contains `pos`
/// (or `pos` itself if it already starts a line after a newline).
fn end_of_line(text: &str, pos: usize) -> usize {
    if pos > 0 && text.as_bytes().get(pos - 1) == Some(&b'\n') {
        return pos;
    }
    text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1)
}

fn column(text: &str, pos: usize) -> usize {
    pos - line_start(text, pos)
}

/// Position just after the `:` that follows the key of `entry`.
fn colon_after_key(text: &str, entry: &yaml_edit::MappingEntry) -> Result<usize, EditError> {
    let key_end = entry
        .key_node()
        .map(|k| k.byte_range().end as usize)
        .ok_or_else(|| EditError::Parse("mapping entry without key".to_string()))?;
    text[key_end..]
        .find(':')
        .map(|i| key_end + i + 1)
        .ok_or_else(|| EditError::Parse("mapping entry without ':'".to_string()))
}

/// Indentation of the block mappings along the path, used to pick the
/// indentation step for newly created maps.
#[derive(Default)]
struct Indents {
    columns: Vec<usize>,
}

impl Indents {
    fn push_mapping(&mut self, text: &str, map: &Mapping) {
        if let Some(col) = mapping_column(text, map) {
            self.columns.push(col);
        }
    }

    fn current(&self) -> usize {
        self.columns.last().copied().unwrap_or(0)
    }

    fn step(&self) -> usize {
        self.columns.windows(2).rev().map(|w| w[1].saturating_sub(w[0])).find(|d| *d > 0).unwrap_or(2)
    }
}

fn mapping_column(text: &str, map: &Mapping) -> Option<usize> {
    let key = map.entries().next()?.key_node()?;
    Some(column(text, key.byte_range().start as usize))
}

/// Appends `rest[0]` (and nested maps for the remaining keys) as the last
/// entry of the block mapping `map`.
fn insert_into_mapping(
    text: &str,
    map: &Mapping,
    indents: &Indents,
    rest: &[&str],
    value: &str,
) -> Result<String, EditError> {
    if map.is_flow_style() {
        return Err(EditError::Unsupported("insert into flow mapping".to_string()));
    }
    reject_crlf(text)?;
    let last = map.entries().last().ok_or_else(|| EditError::Unsupported("insert into empty mapping".to_string()))?;
    let end = match (last.value_node(), last.key_node()) {
        (Some(v), Some(k)) => (v.byte_range().end as usize).max(k.byte_range().end as usize),
        (None, Some(k)) => k.byte_range().end as usize,
        _ => last.byte_range().end as usize,
    };
    let at = end_of_line(text, end);
    let mut block = nested_block(rest, indents.current(), indents.step(), value);
    if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
        // File ends without newline: keep it that way.
        block.pop();
        block.insert(0, '\n');
    }
    Ok(splice(text, at, at, &block))
}

/// Replaces an empty value (`{}`, `~`, or nothing after `key:`) at byte range
/// `r` with a nested block holding `rest` (or with the scalar when `rest` is
/// empty).
fn replace_empty_value(
    text: &str,
    r: (usize, usize),
    indents: &Indents,
    rest: &[&str],
    value: &str,
) -> Result<String, EditError> {
    let (start, end) = r;
    if rest.is_empty() {
        return Ok(splice(text, start, end, &render_new(value)));
    }
    reject_crlf(text)?;
    // Remove the space between ':' and the old value, and put the block on
    // the following lines.
    let mut s = start;
    while s > 0 && text.as_bytes()[s - 1] == b' ' {
        s -= 1;
    }
    let eol = end_of_line(text, end);
    let after_value = &text[end..eol];
    if !after_value.trim().is_empty() {
        // Keep a trailing comment (` # ...`) on the key line.
        let tail = after_value.trim_end_matches('\n');
        let mut block = String::from(tail);
        block.push('\n');
        let child = indents.current() + indents.step();
        block.push_str(&nested_block(rest, child, indents.step(), value));
        let block = finish_at_eof(text, eol, block);
        return Ok(splice(text, s, eol, &block));
    }
    let child = indents.current() + indents.step();
    let mut block = String::from("\n");
    block.push_str(&nested_block(rest, child, indents.step(), value));
    let block = finish_at_eof(text, eol, block);
    Ok(splice(text, s, eol, &block))
}

fn finish_at_eof(text: &str, eol: usize, mut block: String) -> String {
    if eol == text.len() && !text.ends_with('\n') {
        block.pop();
    }
    block
}

/// `key0:\n  key1:\n    key2: value\n` starting at column `indent`.
fn nested_block(keys: &[&str], indent: usize, step: usize, value: &str) -> String {
    let mut out = String::new();
    for (i, key) in keys.iter().enumerate() {
        out.push_str(&" ".repeat(indent + i * step));
        out.push_str(&render_new(key));
        if i + 1 == keys.len() {
            out.push_str(": ");
            out.push_str(&render_new(value));
        } else {
            out.push(':');
        }
        out.push('\n');
    }
    out
}

fn render_new(value: &str) -> String {
    if needs_quoting(value) { render_double(value) } else { value.to_string() }
}

fn render_single(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn render_double(value: &str) -> String {
    // A JSON string literal is a valid YAML double-quoted scalar.
    serde_json::to_string(value).unwrap_or_else(|_| format!("\"{}\"", value.escape_default()))
}

/// Whether a string must be quoted to be read back as the same string by
/// YAML 1.1 and 1.2 parsers (Kubernetes tools use both).
fn needs_quoting(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return true;
    };
    if s.trim() != s {
        return true;
    }
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        // `-foo`, `?foo` and `:foo` are valid plain scalars in YAML 1.2, but
        // quoting them is always safe.
        return true;
    }
    if s.chars().any(|c| c.is_control() || c == '\u{feff}' || c == '\u{2028}' || c == '\u{2029}') {
        return true;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "~" | "null"
            | "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".inf"
            | "+.inf"
            | "-.inf"
            | ".nan"
            | "<<"
            | "="
    ) {
        return true;
    }
    looks_numeric(s)
}

/// Numbers, YAML 1.1 sexagesimal/octal/hex/binary ints and timestamps.
fn looks_numeric(s: &str) -> bool {
    let first = s.chars().next();
    let starts_ok = matches!(first, Some(c) if c.is_ascii_digit() || c == '+' || c == '-' || c == '.');
    starts_ok
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_hexdigit() || "+-._:xXoOtTzZ ".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSL: &str = "nginx.ingress.kubernetes.io/ssl-protocols";

    /// Re-parses `text` and returns the string at `path` of document `doc`.
    fn read(text: &str, doc: usize, path: &[&str]) -> String {
        let file = parse(text).unwrap();
        let node = walk(document_root(&file, doc).unwrap(), path).unwrap();
        node.as_scalar().unwrap().as_string()
    }

    /// Asserts that `after` differs from `before` exactly by replacing the
    /// lines `removed` with the lines `added` at one place.
    fn assert_line_diff(before: &str, after: &str, removed: &[&str], added: &[&str]) {
        let b: Vec<&str> = before.split_inclusive('\n').collect();
        let a: Vec<&str> = after.split_inclusive('\n').collect();
        let prefix = b.iter().zip(&a).take_while(|(x, y)| x == y).count();
        let suffix = b[prefix..].iter().rev().zip(a[prefix..].iter().rev()).take_while(|(x, y)| x == y).count();
        let got_removed: Vec<&str> = b[prefix..b.len() - suffix].iter().map(|l| l.trim_end_matches('\n')).collect();
        let got_added: Vec<&str> = a[prefix..a.len() - suffix].iter().map(|l| l.trim_end_matches('\n')).collect();
        assert_eq!(got_removed, removed, "removed lines\n--- after:\n{after}");
        assert_eq!(got_added, added, "added lines\n--- after:\n{after}");
    }

    const INGRESS: &str = "\
# Ingress for the web frontend
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web # the public name
  annotations:
    # TLS settings
    nginx.ingress.kubernetes.io/ssl-redirect: \"true\"
    nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.2   # old
    nginx.ingress.kubernetes.io/proxy-body-size: 8m
spec:
  rules:
    - host: example.com  # prod
";

    #[test]
    fn set_existing_annotation_changes_one_line() {
        let out = set_string(INGRESS, 0, &["metadata", "annotations", SSL], "TLSv1.3").unwrap();
        assert_line_diff(
            INGRESS,
            &out,
            &["    nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.2   # old"],
            &["    nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.3   # old"],
        );
    }

    #[test]
    fn set_new_annotation_appends_one_line() {
        let out = set_string(INGRESS, 0, &["metadata", "annotations", "example.com/owner"], "team-a").unwrap();
        assert_line_diff(INGRESS, &out, &[], &["    example.com/owner: team-a"]);
        let pos_new = out.find("example.com/owner").unwrap();
        let pos_body = out.find("proxy-body-size").unwrap();
        let pos_spec = out.find("spec:").unwrap();
        assert!(pos_body < pos_new && pos_new < pos_spec);
    }

    #[test]
    fn new_values_are_quoted_when_needed() {
        let out = set_string(INGRESS, 0, &["metadata", "annotations", "a/b"], "true").unwrap();
        assert_line_diff(INGRESS, &out, &[], &["    a/b: \"true\""]);
        let out = set_string(INGRESS, 0, &["metadata", "annotations", "a/b"], "0755").unwrap();
        assert_line_diff(INGRESS, &out, &[], &["    a/b: \"0755\""]);
        let out = set_string(INGRESS, 0, &["metadata", "annotations", "a/b"], "x: y").unwrap();
        assert_line_diff(INGRESS, &out, &[], &["    a/b: \"x: y\""]);
        let out = set_string(INGRESS, 0, &["metadata", "annotations", "a/b"], "").unwrap();
        assert_line_diff(INGRESS, &out, &[], &["    a/b: \"\""]);
        let out = set_string(INGRESS, 0, &["metadata", "annotations", "a/b"], "60s").unwrap();
        assert_line_diff(INGRESS, &out, &[], &["    a/b: 60s"]);
        // Existing plain value replaced by a value that needs quoting.
        let out = set_string(INGRESS, 0, &["metadata", "annotations", SSL], "yes").unwrap();
        assert_line_diff(
            INGRESS,
            &out,
            &["    nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.2   # old"],
            &["    nginx.ingress.kubernetes.io/ssl-protocols: \"yes\"   # old"],
        );
    }

    #[test]
    fn existing_double_quoted_value_keeps_double_quotes() {
        let key = "nginx.ingress.kubernetes.io/ssl-redirect";
        let out = set_string(INGRESS, 0, &["metadata", "annotations", key], "false").unwrap();
        assert_line_diff(
            INGRESS,
            &out,
            &["    nginx.ingress.kubernetes.io/ssl-redirect: \"true\""],
            &["    nginx.ingress.kubernetes.io/ssl-redirect: \"false\""],
        );
    }

    #[test]
    fn creates_annotations_map_with_indentation() {
        let input = "\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
    # four-space indentation
    name: web
    labels:
        app: web
spec: {}
";
        let out = set_string(input, 0, &["metadata", "annotations", SSL], "TLSv1.3").unwrap();
        let expected = "\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
    # four-space indentation
    name: web
    labels:
        app: web
    annotations:
        nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.3
spec: {}
";
        assert_eq!(out, expected);
    }

    #[test]
    fn creates_metadata_and_annotations_when_missing() {
        let input = "apiVersion: v1\nkind: Ingress\n";
        let out = set_string(input, 0, &["metadata", "annotations", SSL], "TLSv1.3").unwrap();
        assert_eq!(
            out,
            "apiVersion: v1\nkind: Ingress\nmetadata:\n  annotations:\n    \
             nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.3\n"
        );
        // Without a final newline the file keeps ending without one.
        let out = set_string("kind: Ingress", 0, &["metadata", "name"], "x").unwrap();
        assert_eq!(out, "kind: Ingress\nmetadata:\n  name: x");
    }

    #[test]
    fn replaces_empty_or_null_annotations() {
        let input = "metadata:\n  name: web\n  annotations: {}  # none yet\nspec: {}\n";
        let out = set_string(input, 0, &["metadata", "annotations", "a"], "b").unwrap();
        assert_eq!(out, "metadata:\n  name: web\n  annotations:  # none yet\n    a: b\nspec: {}\n");
        let input = "metadata:\n  annotations:\n  name: web\n";
        let out = set_string(input, 0, &["metadata", "annotations", "a"], "b").unwrap();
        assert_eq!(out, "metadata:\n  annotations:\n    a: b\n  name: web\n");
        let input = "metadata:\n  annotations: ~\n  name: web\n";
        let out = set_string(input, 0, &["metadata", "annotations", "a"], "b").unwrap();
        assert_eq!(out, "metadata:\n  annotations:\n    a: b\n  name: web\n");
    }

    const MULTI: &str = "\
# first: a service
apiVersion: v1
kind: Service
metadata:
  name: web   # svc
---
# second: the ingress
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    # keep me
    nginx.ingress.kubernetes.io/ssl-protocols: 'TLSv1.2'
---
# third
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.2 # not an annotation
";

    #[test]
    fn edits_only_the_requested_document() {
        let out = set_string(MULTI, 1, &["metadata", "annotations", SSL], "TLSv1.3").unwrap();
        let (b1, rest_b) = MULTI.split_once("---\n").unwrap();
        let (a1, rest_a) = out.split_once("---\n").unwrap();
        assert_eq!(a1, b1);
        let (b2, b3) = rest_b.split_once("---\n").unwrap();
        let (a2, a3) = rest_a.split_once("---\n").unwrap();
        assert_eq!(a3, b3);
        assert_line_diff(
            b2,
            a2,
            &["    nginx.ingress.kubernetes.io/ssl-protocols: 'TLSv1.2'"],
            &["    nginx.ingress.kubernetes.io/ssl-protocols: 'TLSv1.3'"],
        );
    }

    #[test]
    fn creates_map_in_third_document() {
        let out = set_string(MULTI, 2, &["metadata", "annotations", "a"], "b").unwrap();
        assert_line_diff(MULTI, &out, &[], &["  annotations:", "    a: b"]);
        assert!(out.ends_with("  annotations:\n    a: b\ndata:\n  nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.2 # not an annotation\n"));
    }

    #[test]
    fn creates_root_key_before_document_separator() {
        let out = set_string(MULTI, 0, &["spec", "type"], "ClusterIP").unwrap();
        assert_line_diff(MULTI, &out, &[], &["spec:", "  type: ClusterIP"]);
        assert!(out.contains("  name: web   # svc\nspec:\n  type: ClusterIP\n---\n# second"));
    }

    #[test]
    fn single_quoted_value_keeps_single_quotes() {
        let input = "metadata:\n  annotations:\n    a: 'old' # c\n    b: x\n";
        let out = set_string(input, 0, &["metadata", "annotations", "a"], "it's new").unwrap();
        assert_eq!(out, "metadata:\n  annotations:\n    a: 'it''s new' # c\n    b: x\n");
    }

    #[test]
    fn missing_document_is_not_found() {
        let err = set_string(MULTI, 3, &["metadata", "name"], "x").unwrap_err();
        assert!(matches!(err, EditError::NotFound(_)), "{err:?}");
        let err = set_string("a: [\n", 0, &["a"], "x").unwrap_err();
        assert!(matches!(err, EditError::Parse(_)), "{err:?}");
        let err = set_string("a: 1\n", 0, &[], "x").unwrap_err();
        assert!(matches!(err, EditError::EmptyPath), "{err:?}");
        let err = set_string("a:\n  b: 1\n", 0, &["a"], "x").unwrap_err();
        assert!(matches!(err, EditError::Kind { .. }), "{err:?}");
    }

    const SMP: &str = "\
# Strategic-merge patch applied by the prod overlay
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations:
    nginx.ingress.kubernetes.io/proxy-read-timeout: \"60\"  # seconds
";

    #[test]
    fn sets_annotation_in_strategic_merge_patch_file() {
        let out = set_string(SMP, 0, &["metadata", "annotations", SSL], "TLSv1.3").unwrap();
        let expected = format!("{SMP}    {SSL}: TLSv1.3\n");
        assert_eq!(out, expected);
        // Idempotent: a second run changes nothing.
        let again = set_string(&out, 0, &["metadata", "annotations", SSL], "TLSv1.3").unwrap();
        assert_eq!(again, out);
        assert_eq!(read(&out, 0, &["metadata", "annotations", SSL]), "TLSv1.3");
    }

    #[test]
    fn idempotent_for_every_style() {
        for input in [INGRESS, MULTI, SMP] {
            for v in ["TLSv1.3", "true", "it's", "a \"b\"", "é"] {
                let doc = if input == MULTI { 1 } else { 0 };
                let once = set_string(input, doc, &["metadata", "annotations", SSL], v).unwrap();
                let twice = set_string(&once, doc, &["metadata", "annotations", SSL], v).unwrap();
                assert_eq!(once, twice, "value {v:?}");
                assert_eq!(read(&once, doc, &["metadata", "annotations", SSL]), v);
            }
        }
    }

    #[test]
    fn remove_deletes_only_the_entry() {
        let out = remove(INGRESS, 0, &["metadata", "annotations", SSL]).unwrap();
        assert_line_diff(INGRESS, &out, &["    nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.2   # old"], &[]);
        // Removing a nested map removes its lines, keeps surrounding comments.
        let out = remove(INGRESS, 0, &["metadata", "annotations"]).unwrap();
        assert_line_diff(
            INGRESS,
            &out,
            &[
                "  annotations:",
                "    # TLS settings",
                "    nginx.ingress.kubernetes.io/ssl-redirect: \"true\"",
                "    nginx.ingress.kubernetes.io/ssl-protocols: TLSv1.2   # old",
                "    nginx.ingress.kubernetes.io/proxy-body-size: 8m",
            ],
            &[],
        );
        let err = remove(INGRESS, 0, &["metadata", "annotations", "nope"]).unwrap_err();
        assert!(matches!(err, EditError::NotFound(_)), "{err:?}");
        // Last key of a file without final newline.
        assert_eq!(remove("a: 1\nb: 2", 0, &["b"]).unwrap(), "a: 1\n");
    }

    const KUSTOMIZATION: &str = "\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
patches:
  # pin TLS protocols
  - target:
      kind: Ingress
      name: web
    patch: |-
      - op: add
        path: /metadata/annotations/nginx.ingress.kubernetes.io~1ssl-protocols
        value: TLSv1.2
  - patch: |
      apiVersion: networking.k8s.io/v1
      kind: Ingress
      metadata:
        name: web
        annotations:
          nginx.ingress.kubernetes.io/ssl-protocols: \"TLSv1.2\"

# trailing comment
";

    #[test]
    fn edit_block_json6902_keeps_header_and_indentation() {
        let mut seen = String::new();
        let out = edit_block(KUSTOMIZATION, &["patches", "0", "patch"], |inner| {
            seen = inner.to_string();
            set_string(inner, 0, &["0", "value"], "TLSv1.3")
        })
        .unwrap();
        assert_eq!(
            seen,
            "- op: add\n  path: /metadata/annotations/nginx.ingress.kubernetes.io~1ssl-protocols\n  value: TLSv1.2\n"
        );
        assert_line_diff(KUSTOMIZATION, &out, &["        value: TLSv1.2"], &["        value: TLSv1.3"]);
    }

    #[test]
    fn edit_block_strategic_merge_keeps_trailing_blank_line() {
        let out = edit_block(KUSTOMIZATION, &["patches", "1", "patch"], |inner| {
            set_string(inner, 0, &["metadata", "annotations", SSL], "TLSv1.3")
        })
        .unwrap();
        assert_line_diff(
            KUSTOMIZATION,
            &out,
            &["          nginx.ingress.kubernetes.io/ssl-protocols: \"TLSv1.2\""],
            &["          nginx.ingress.kubernetes.io/ssl-protocols: \"TLSv1.3\""],
        );
        // Adding a key in the inner document re-indents the new line too.
        let out = edit_block(KUSTOMIZATION, &["patches", "1", "patch"], |inner| {
            set_string(inner, 0, &["metadata", "labels", "team"], "web")
        })
        .unwrap();
        assert_line_diff(KUSTOMIZATION, &out, &[], &["        labels:", "          team: web"]);
    }

    #[test]
    fn edit_block_identity_is_byte_identical() {
        let out = edit_block(KUSTOMIZATION, &["patches", "0", "patch"], |s| Ok(s.to_string())).unwrap();
        assert_eq!(out, KUSTOMIZATION);
        let out = edit_block(KUSTOMIZATION, &["patches", "1", "patch"], |s| Ok(s.to_string())).unwrap();
        assert_eq!(out, KUSTOMIZATION);
    }

    #[test]
    fn edit_block_explicit_indentation_indicator() {
        // Content indentation is key column (4) + indicator (2) = 6, so the
        // first content line keeps one leading space of its own.
        let input = "patches:\n  - patch: |2-\n       leading: space\n      value: TLSv1.2\n  - x\n";
        let mut seen = String::new();
        let out = edit_block(input, &["patches", "0", "patch"], |inner| {
            seen = inner.to_string();
            Ok(inner.replace("TLSv1.2", "TLSv1.3"))
        })
        .unwrap();
        assert_eq!(seen, " leading: space\nvalue: TLSv1.2\n");
        assert_eq!(out, "patches:\n  - patch: |2-\n       leading: space\n      value: TLSv1.3\n  - x\n");
    }

    #[test]
    fn quoted_value_with_escapes_is_left_alone_when_equal() {
        let input = "a: \"caf\\u00e9\" # c\n";
        assert_eq!(set_string(input, 0, &["a"], "caf\u{e9}").unwrap(), input);
        assert_eq!(set_string(input, 0, &["a"], "tea").unwrap(), "a: \"tea\" # c\n");
    }

    #[test]
    fn crlf_only_in_place_replacements() {
        let input = "metadata:\r\n  annotations:\r\n    a: x # c\r\n";
        let out = set_string(input, 0, &["metadata", "annotations", "a"], "z").unwrap();
        assert_eq!(out, "metadata:\r\n  annotations:\r\n    a: z # c\r\n");
        let err = set_string(input, 0, &["metadata", "annotations", "b"], "z").unwrap_err();
        assert!(matches!(err, EditError::Unsupported(_)), "{err:?}");
        assert_eq!(remove(input, 0, &["metadata", "annotations", "a"]).unwrap(), "metadata:\r\n  annotations:\r\n");
    }

    #[test]
    fn edit_block_errors() {
        let err = edit_block(KUSTOMIZATION, &["patches", "5", "patch"], |s| Ok(s.to_string())).unwrap_err();
        assert!(matches!(err, EditError::NotFound(_)), "{err:?}");
        let err = edit_block(KUSTOMIZATION, &["kind"], |s| Ok(s.to_string())).unwrap_err();
        assert!(matches!(err, EditError::Kind { .. }), "{err:?}");
        let err = edit_block(KUSTOMIZATION, &["patches", "0", "patch"], |_| Err(EditError::NotFound("inner".into())))
            .unwrap_err();
        assert!(matches!(err, EditError::NotFound(_)), "{err:?}");
    }

    #[test]
    fn needs_quoting_cases() {
        for s in [
            "",
            "true",
            "No",
            "null",
            "~",
            "1",
            "1.5",
            "-3",
            "0x1F",
            "1e3",
            "12:30",
            "2024-01-01",
            "*a",
            "a: b",
            "a #b",
            " x",
            "x:",
        ] {
            assert!(needs_quoting(s), "{s:?}");
        }
        for s in ["TLSv1.2 TLSv1.3", "8m", "60s", "web", "a/b", "a:b", "a#b", "HIGH:!aNULL"] {
            assert!(!needs_quoting(s), "{s:?}");
        }
    }
}
