//! YAML reading with positions. Every document becomes a JSON value plus a map from JSON
//! pointer to source line, so every finding can name file and line.
//!
//! Scalars are resolved like the YAML 1.2 core schema with one exception kubectl users rely
//! on: a plain integer with a leading zero (`defaultMode: 0644`) is octal, as kubectl's YAML 1.1
//! reader takes it. Quoted scalars are always strings.

use std::collections::BTreeMap;

use saphyr::{MarkedYaml, ScalarStyle, YamlData, YamlLoader};
use saphyr_parser::Parser;
use serde_json::{Map, Number, Value};

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct YamlDoc {
    /// Position of the document in its file, from 0.
    pub index: usize,
    /// Line (1-based) where the document's content starts.
    pub line: u32,
    pub value: Value,
    lines: BTreeMap<String, u32>,
}

impl YamlDoc {
    /// An empty mapping, standing in for a file that does not parse.
    pub fn empty() -> YamlDoc {
        YamlDoc { index: 0, line: 1, value: Value::Object(Map::new()), lines: BTreeMap::new() }
    }

    /// Line of the node at `pointer`, or of its nearest ancestor that has one.
    pub fn line_of(&self, pointer: &str) -> u32 {
        let mut p = pointer;
        loop {
            if let Some(line) = self.lines.get(p) {
                return *line;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.line,
            }
        }
    }

    /// Whether the document has a node at exactly this pointer.
    pub fn has_pointer(&self, pointer: &str) -> bool {
        self.lines.contains_key(pointer)
    }
}

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} column {}: {}", self.line, self.column, self.message)
    }
}

/// Parses every document of a YAML stream. Empty documents (only comments, or `---` alone)
/// are skipped but still count for `index`.
pub fn parse_documents(text: &str) -> Result<Vec<YamlDoc>, YamlError> {
    parse(text, true)
}

/// Like [`parse_documents`] without the line maps: for rendered output, where no finding
/// points into the text itself.
pub fn parse_values(text: &str) -> Result<Vec<Value>, YamlError> {
    Ok(parse(text, false)?.into_iter().map(|d| d.value).collect())
}

fn parse(text: &str, with_lines: bool) -> Result<Vec<YamlDoc>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut loader: YamlLoader<MarkedYaml> = YamlLoader::default();
    loader.early_parse(false);
    parser.load(&mut loader, true).map_err(|e| YamlError {
        line: e.marker().line() as u32,
        column: e.marker().col() as u32 + 1,
        message: e.info().to_string(),
    })?;
    let mut docs = Vec::new();
    for (index, node) in loader.into_documents().into_iter().enumerate() {
        let mut lines = BTreeMap::new();
        let mut ptr = String::new();
        let value = convert(&node, &mut ptr, with_lines.then_some(&mut lines));
        if value.is_null() {
            continue;
        }
        docs.push(YamlDoc { index, line: node.span.start.line() as u32, value, lines });
    }
    Ok(docs)
}

fn convert(node: &MarkedYaml, ptr: &mut String, mut lines: Option<&mut BTreeMap<String, u32>>) -> Value {
    match &node.data {
        YamlData::Representation(text, style, tag) => scalar(text, *style, tag.as_ref().map(|t| t.suffix.as_str())),
        YamlData::Value(s) => scalar_value(s),
        YamlData::Tagged(tag, inner) => {
            let v = convert(inner, ptr, lines);
            match (tag.suffix.as_str(), &v) {
                ("str", Value::Number(n)) => Value::String(n.to_string()),
                ("str", Value::Bool(b)) => Value::String(b.to_string()),
                _ => v,
            }
        }
        YamlData::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&i.to_string());
                if let Some(l) = lines.as_deref_mut() {
                    l.insert(ptr.clone(), item.span.start.line() as u32);
                }
                out.push(convert(item, ptr, lines.as_deref_mut()));
                ptr.truncate(len);
            }
            Value::Array(out)
        }
        YamlData::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map.iter() {
                let key = key_string(k);
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&key.replace('~', "~0").replace('/', "~1"));
                if let Some(l) = lines.as_deref_mut() {
                    l.insert(ptr.clone(), k.span.start.line() as u32);
                }
                let value = convert(v, ptr, lines.as_deref_mut());
                ptr.truncate(len);
                out.insert(key, value);
            }
            Value::Object(out)
        }
        YamlData::Alias(_) | YamlData::BadValue => Value::Null,
    }
}

fn key_string(node: &MarkedYaml) -> String {
    match &node.data {
        YamlData::Representation(text, _, _) => text.to_string(),
        YamlData::Tagged(_, inner) => key_string(inner),
        _ => {
            let mut p = String::new();
            match convert(node, &mut p, None) {
                Value::String(s) => s,
                other => other.to_string(),
            }
        }
    }
}

fn scalar_value(s: &saphyr::Scalar) -> Value {
    match s {
        saphyr::Scalar::Null => Value::Null,
        saphyr::Scalar::Boolean(b) => Value::Bool(*b),
        saphyr::Scalar::Integer(i) => Value::from(*i),
        saphyr::Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner()).map_or(Value::Null, Value::Number),
        saphyr::Scalar::String(s) => Value::String(s.to_string()),
    }
}

fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    if style != ScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match tag {
        Some("str") => return Value::String(text.to_string()),
        Some("int") | Some("float") | Some("bool") | Some("null") | None => {}
        Some(_) => return Value::String(text.to_string()),
    }
    resolve_plain(text)
}

/// Resolves a plain scalar (see the module docs for the one YAML 1.1 rule kept).
/// A string as a YAML scalar for new text: plain when every reader (YAML 1.1 and 1.2) reads it
/// back as the same string, else double-quoted.
pub fn plain_or_quoted(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && resolve_plain(s) == Value::String(s.to_string())
        && !matches!(s.to_ascii_lowercase().as_str(), "y" | "n" | "yes" | "no" | "on" | "off");
    if plain { s.to_string() } else { serde_json::to_string(s).unwrap_or_default() }
}

pub fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let (sign, digits) = match text.as_bytes()[0] {
        b'-' => (-1i64, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let parsed = if digits.len() > 1 && digits.starts_with('0') {
            if digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) { i64::from_str_radix(digits, 8).ok() } else { None }
        } else {
            digits.parse::<i64>().ok()
        };
        return match parsed {
            Some(n) => Value::from(sign * n),
            None => Value::String(text.to_string()),
        };
    }
    if let Some(oct) = digits.strip_prefix("0o")
        && let Ok(n) = i64::from_str_radix(oct, 8)
    {
        return Value::from(sign * n);
    }
    if let Some(hex) = digits.strip_prefix("0x")
        && let Ok(n) = i64::from_str_radix(hex, 16)
    {
        return Value::from(sign * n);
    }
    if is_float(digits)
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_string())
}

fn is_float(s: &str) -> bool {
    // [0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)? with at least one digit in the mantissa
    let b = s.as_bytes();
    let mut i = 0;
    let mut mantissa = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        mantissa += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            mantissa += 1;
        }
    }
    if mantissa == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_lines() {
        let text = "# comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  mode: 0644\n  port: \"8080\"\n  n: 8080\n  on: yes\n  f: 1.5\n---\n# empty\n---\nkind: List\nitems:\n- a\n- b: 1\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].line, 2);
        assert_eq!(docs[0].value["data"], json!({"mode": 420, "port": "8080", "n": 8080, "on": "yes", "f": 1.5}));
        assert_eq!(docs[0].line_of("/metadata/name"), 5);
        assert_eq!(docs[0].line_of("/data/mode"), 7);
        assert_eq!(docs[0].line_of("/data/missing/deeper"), 6);
        assert_eq!(docs[1].index, 2);
        assert_eq!(docs[1].line_of("/items/1/b"), 18);
        assert_eq!(docs[1].line_of("/items/0"), 17);
    }

    #[test]
    fn syntax_error_has_line() {
        let err = parse_documents("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        let err = parse_documents("a:\n  b: 1\n c: 2\n").unwrap_err();
        assert_eq!(err.line, 3, "{err:?}");
    }

    #[test]
    fn plain_scalars() {
        assert_eq!(resolve_plain("-12"), json!(-12));
        assert_eq!(resolve_plain("0o17"), json!(15));
        assert_eq!(resolve_plain("0x1F"), json!(31));
        assert_eq!(resolve_plain("089"), json!("089"));
        assert_eq!(resolve_plain("1e3"), json!(1000.0));
        assert_eq!(resolve_plain("500m"), json!("500m"));
        assert_eq!(resolve_plain("1.2.3"), json!("1.2.3"));
        assert_eq!(resolve_plain("~"), json!(null));
        assert_eq!(resolve_plain(".5"), json!(0.5));
    }
}
