//! YAML reading with positions. Every document becomes a JSON value plus a map from JSON
//! pointer to source line, so every finding can name file and line.
//!
//! Scalars are resolved like the YAML 1.2 core schema with one exception kubectl users rely
//! on: a plain integer with a leading zero (`defaultMode: 0644`) is octal, as kubectl's YAML 1.1
//! reader takes it. Quoted scalars are always strings.

use std::collections::BTreeMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
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

/// Why a file could not be read as YAML. Only `Syntax` is the author's typo; the others are
/// limits agentops keeps on untrusted input (see docs/validate.md), each with its own message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YamlErrorKind {
    /// The text is not YAML.
    Syntax,
    /// Aliases expand to far more than the document itself holds (a "billion laughs" bomb).
    Aliases,
    /// The file is larger than the per-file limit.
    TooLarge,
    /// Not UTF-8 text.
    NotText,
    /// Not a regular file, unreadable, or changed while it was read.
    Unreadable,
}

/// A syntax error (or a refused input) with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: u32,
    pub column: u32,
    pub message: String,
    pub kind: YamlErrorKind,
}

impl YamlError {
    pub fn new(kind: YamlErrorKind, line: u32, column: u32, message: impl Into<String>) -> YamlError {
        YamlError { line, column, message: message.into(), kind }
    }

    /// Whether agentops refused the input for one of its limits (as opposed to a syntax
    /// error): such a file is never handed to kustomize.
    pub fn is_refusal(&self) -> bool {
        self.kind != YamlErrorKind::Syntax
    }

    /// The finding text: "YAML does not parse: …" for syntax errors, the refusal itself
    /// otherwise.
    pub fn describe(&self) -> String {
        match self.kind {
            YamlErrorKind::Syntax => format!("YAML does not parse: {} (column {})", self.message, self.column),
            _ => self.message.clone(),
        }
    }
}

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} column {}: {}", self.line, self.column, self.message)
    }
}

/// Parses every document of a YAML stream. Empty documents (only comments, or `---` alone)
/// are skipped but still count for `index`. Alias expansion is bounded (see [`AliasBudget`]).
pub fn parse_documents(text: &str) -> Result<Vec<YamlDoc>, YamlError> {
    parse(text, true)
}

/// Like [`parse_documents`] without the line maps: for rendered output, where no finding
/// points into the text itself.
pub fn parse_values(text: &str) -> Result<Vec<Value>, YamlError> {
    Ok(parse(text, false)?.into_iter().map(|d| d.value).collect())
}

/// Reads a file as YAML within the limits: at most `max_bytes`, a regular file, UTF-8 text,
/// bounded aliases. Every refusal names the line it concerns (1 when it is the whole file).
/// Returns the documents and the blake3 hash of the bytes read (None when nothing was read).
pub fn read_file(path: &std::path::Path, max_bytes: u64) -> (Result<Vec<YamlDoc>, YamlError>, Option<String>) {
    let bytes = match crate::limits::read_file(path, max_bytes) {
        Ok(b) => b,
        Err(e) => return (Err(YamlError::new(e.yaml_kind(), 1, 1, e.to_string())), None),
    };
    let hash = blake3::hash(&bytes).to_hex().to_string();
    (parse_bytes(&bytes), Some(hash))
}

/// Parses bytes that should be UTF-8 YAML; invalid UTF-8 is refused at the line and column
/// of the first bad byte.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<YamlDoc>, YamlError> {
    match std::str::from_utf8(bytes) {
        Ok(t) => parse_documents(t),
        Err(e) => Err(not_utf8(bytes, e.valid_up_to())),
    }
}

fn not_utf8(bytes: &[u8], at: usize) -> YamlError {
    let before = bytes.get(..at).unwrap_or(bytes);
    let line = before.iter().filter(|b| **b == b'\n').count() as u32 + 1;
    let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(before.get(line_start..).unwrap_or_default()).chars().count() as u32 + 1;
    YamlError::new(
        YamlErrorKind::NotText,
        line,
        column,
        format!(
            "not UTF-8 text: invalid byte 0x{:02x} at line {line} column {column}; YAML files must be UTF-8 \
             (re-save the file as UTF-8, or move binary data into a generator input)",
            bytes.get(at).copied().unwrap_or_default()
        ),
    )
}

/// The limit on alias expansion, as Go's YAML library (gopkg.in/yaml.v3, which kubectl and
/// Argo CD use) sets it: once a document has decoded more than 1,000 nodes of which more than
/// 100 came from aliases, the share of nodes that came from aliases may not pass 99% (up to
/// 400,000 nodes), falling linearly to 10% at 4,000,000 nodes. Go shares strings between
/// copies and we do not, so the text that aliases copy is bounded as well: at most ten times
/// the document's own text, and never less than 1 MiB.
#[derive(Debug, Default)]
struct AliasBudget {
    decoded: u64,
    aliased: u64,
    aliased_bytes: u64,
    max_aliased_bytes: u64,
}

const ALIAS_RATIO_LOW: u64 = 400_000;
const ALIAS_RATIO_HIGH: u64 = 4_000_000;

fn allowed_alias_ratio(decoded: u64) -> f64 {
    if decoded <= ALIAS_RATIO_LOW {
        0.99
    } else if decoded >= ALIAS_RATIO_HIGH {
        0.10
    } else {
        0.99 - 0.89 * ((decoded - ALIAS_RATIO_LOW) as f64 / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW) as f64)
    }
}

impl AliasBudget {
    fn new(text_len: usize) -> AliasBudget {
        AliasBudget { max_aliased_bytes: (text_len as u64).saturating_mul(10).max(1 << 20), ..AliasBudget::default() }
    }

    /// Counts `nodes` decoded (of which `aliased` and `bytes` through an alias); false when
    /// the document passes the limit.
    fn spend(&mut self, nodes: u64, aliased: u64, bytes: u64) -> bool {
        self.decoded = self.decoded.saturating_add(nodes);
        self.aliased = self.aliased.saturating_add(aliased);
        self.aliased_bytes = self.aliased_bytes.saturating_add(bytes);
        let ratio_ok = !(self.aliased > 100
            && self.decoded > 1000
            && self.aliased as f64 / self.decoded as f64 > allowed_alias_ratio(self.decoded));
        ratio_ok && self.aliased_bytes <= self.max_aliased_bytes
    }
}

/// A node that has an anchor, kept for its aliases.
struct Anchored {
    value: Value,
    /// The text of the node when it is used as a mapping key.
    key: String,
    /// Nodes and scalar bytes it decodes to (its own aliases expanded).
    nodes: u64,
    bytes: u64,
    /// Lines of its descendants, by pointer relative to the node.
    lines: Vec<(String, u32)>,
}

enum Container {
    Seq(Vec<Value>),
    /// The mapping and, between a key and its value, the key.
    Map(Map<String, Value>, Option<String>),
}

struct Frame {
    container: Container,
    anchor: usize,
    line: u32,
    /// Length of the pointer of the parent, to restore when the frame ends.
    parent_ptr: usize,
    /// The frame is (inside) a mapping key: no pointers, no lines.
    in_key: bool,
    nodes: u64,
    bytes: u64,
}

/// A finished node on its way into its parent.
struct Node {
    value: Value,
    key: Option<String>,
    anchor: usize,
    line: u32,
    nodes: u64,
    bytes: u64,
    /// Lines of the descendants of an alias's copy, relative to it.
    copied_lines: Vec<(String, u32)>,
}

/// Builds JSON values from parser events, without recursion (deep nesting cannot overflow the
/// stack) and with alias expansion bounded before anything is copied.
struct Builder<'t> {
    text: &'t str,
    with_lines: bool,
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Anchored>,
    budget: AliasBudget,
    /// JSON pointer of the innermost open container.
    ptr: String,
    lines: BTreeMap<String, u32>,
    docs: Vec<YamlDoc>,
    index: usize,
    root: Option<(Value, u32)>,
}

fn parse(text: &str, with_lines: bool) -> Result<Vec<YamlDoc>, YamlError> {
    let mut b = Builder {
        text,
        with_lines,
        stack: Vec::new(),
        anchors: std::collections::HashMap::new(),
        budget: AliasBudget::new(text.len()),
        ptr: String::new(),
        lines: BTreeMap::new(),
        docs: Vec::new(),
        index: 0,
        root: None,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            YamlError::new(
                YamlErrorKind::Syntax,
                e.marker().line() as u32,
                e.marker().col() as u32 + 1,
                e.info().to_string(),
            )
        })?;
        b.event(event, span)?;
    }
    Ok(b.docs)
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        let line = span.start.line() as u32;
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                self.stack.clear();
                self.anchors.clear();
                self.budget = AliasBudget::new(self.text.len());
                self.ptr.clear();
                self.lines = BTreeMap::new();
                self.root = None;
            }
            Event::DocumentEnd => {
                if let Some((value, line)) = self.root.take()
                    && !value.is_null()
                {
                    let lines = std::mem::take(&mut self.lines);
                    self.docs.push(YamlDoc { index: self.index, line, value, lines });
                }
                self.index += 1;
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.spend(1, 0, 0, span)?;
                let value = scalar(&text, style, tag.as_ref().map(|t| t.suffix.as_str()));
                let bytes = text.len() as u64;
                // the text as written is kept only where it is needed: keys and anchors
                let is_key = matches!(self.stack.last(), Some(Frame { container: Container::Map(_, None), .. }));
                let node = Node {
                    value,
                    key: (anchor > 0 || is_key).then(|| text.into_owned()),
                    anchor,
                    line,
                    nodes: 1,
                    bytes,
                    copied_lines: Vec::new(),
                };
                self.finish(node);
            }
            Event::Alias(id) => {
                let (nodes, bytes) = self.anchors.get(&id).map_or((0, 0), |a| (a.nodes, a.bytes));
                if !self.budget.spend(1 + nodes, nodes, bytes) {
                    return Err(self.too_many_aliases(span));
                }
                let node = match self.anchors.get(&id) {
                    Some(a) => Node {
                        value: a.value.clone(),
                        key: Some(a.key.clone()),
                        anchor: 0,
                        line,
                        nodes: 1 + a.nodes,
                        bytes: a.bytes,
                        copied_lines: if self.recording() { a.lines.clone() } else { Vec::new() },
                    },
                    None => Node {
                        value: Value::Null,
                        key: None,
                        anchor: 0,
                        line,
                        nodes: 1,
                        bytes: 0,
                        copied_lines: Vec::new(),
                    },
                };
                self.finish(node);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.spend(1, 0, 0, span)?;
                let in_key = self.child_is_key();
                let parent_ptr = self.ptr.len();
                if !in_key {
                    self.push_child_segment();
                }
                let container = match event {
                    Event::SequenceStart(..) => Container::Seq(Vec::new()),
                    _ => Container::Map(Map::new(), None),
                };
                self.stack.push(Frame { container, anchor, line, parent_ptr, in_key, nodes: 1, bytes: 0 });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else { return Ok(()) };
                let own_ptr = self.ptr.clone();
                self.ptr.truncate(frame.parent_ptr);
                let value = match frame.container {
                    Container::Seq(items) => Value::Array(items),
                    Container::Map(map, _) => Value::Object(map),
                };
                let node = Node {
                    key: None,
                    value,
                    anchor: frame.anchor,
                    line: frame.line,
                    nodes: frame.nodes,
                    bytes: frame.bytes,
                    copied_lines: Vec::new(),
                };
                if node.anchor > 0 && !frame.in_key && self.with_lines {
                    // its descendants' lines, for the copies its aliases make
                    let prefix = format!("{own_ptr}/");
                    let rel: Vec<(String, u32)> = self
                        .lines
                        .range(prefix.clone()..)
                        .take_while(|(k, _)| k.starts_with(&prefix))
                        .map(|(k, l)| (k[own_ptr.len()..].to_string(), *l))
                        .collect();
                    self.finish_with_lines(node, rel);
                } else {
                    self.finish(node);
                }
            }
        }
        Ok(())
    }

    fn spend(&mut self, nodes: u64, aliased: u64, bytes: u64, span: Span) -> Result<(), YamlError> {
        if self.budget.spend(nodes, aliased, bytes) { Ok(()) } else { Err(self.too_many_aliases(span)) }
    }

    fn too_many_aliases(&self, span: Span) -> YamlError {
        let who = match alias_name(self.text, span) {
            Some(name) => format!("the alias {name} expands too far"),
            None => "aliases expand too far".to_string(),
        };
        let b = &self.budget;
        let what = if b.aliased_bytes > b.max_aliased_bytes {
            format!(
                "aliases would copy {} of text, more than ten times the document's own {}",
                crate::limits::human_bytes(b.aliased_bytes),
                crate::limits::human_bytes(self.text.len() as u64)
            )
        } else {
            format!(
                "{} of the {} nodes decoded so far would come from aliases ({:.1}%; Go's YAML library, which \
                 kubectl and Argo CD use, allows {:.0}%)",
                b.aliased,
                b.decoded,
                100.0 * b.aliased as f64 / b.decoded.max(1) as f64,
                100.0 * allowed_alias_ratio(b.decoded)
            )
        };
        YamlError::new(
            YamlErrorKind::Aliases,
            span.start.line() as u32,
            span.start.col() as u32 + 1,
            format!(
                "excessive aliasing: {who}: {what}. This is the shape of a \
                 \"billion laughs\" YAML bomb; agentops does not read it and does not hand it to kustomize. Write \
                 the repeated values out, or alias fewer of them"
            ),
        )
    }

    /// Whether line entries are being recorded for the node being read.
    fn recording(&self) -> bool {
        self.with_lines && !self.child_is_key()
    }

    /// Whether the next node is (inside) a mapping key.
    fn child_is_key(&self) -> bool {
        match self.stack.last() {
            None => false,
            Some(f) => f.in_key || matches!(f.container, Container::Map(_, None)),
        }
    }

    /// Appends the next child's segment to the pointer.
    fn push_child_segment(&mut self) {
        match self.stack.last() {
            Some(Frame { container: Container::Seq(items), .. }) => {
                self.ptr.push('/');
                self.ptr.push_str(&items.len().to_string());
            }
            Some(Frame { container: Container::Map(_, Some(key)), .. }) => {
                self.ptr.push('/');
                self.ptr.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            _ => {}
        }
    }

    fn finish(&mut self, node: Node) {
        self.finish_with_lines(node, Vec::new());
    }

    /// Hands a finished node to its parent; `own_lines` are its descendants' lines relative to
    /// it, kept when it is anchored.
    fn finish_with_lines(&mut self, mut node: Node, own_lines: Vec<(String, u32)>) {
        let key_text = node.key.take().unwrap_or_else(|| match &node.value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        if node.anchor > 0 {
            let anchored = Anchored {
                value: node.value.clone(),
                key: key_text.clone(),
                nodes: node.nodes,
                bytes: node.bytes,
                lines: own_lines,
            };
            self.anchors.insert(node.anchor, anchored);
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some((node.value, node.line));
            return;
        };
        parent.nodes = parent.nodes.saturating_add(node.nodes);
        parent.bytes = parent.bytes.saturating_add(node.bytes);
        let record = self.with_lines && !parent.in_key;
        let at = match &mut parent.container {
            Container::Seq(items) => {
                let p = child_pointer(&self.ptr, &items.len().to_string());
                items.push(node.value);
                if record {
                    self.lines.insert(p.clone(), node.line);
                }
                Some(p)
            }
            Container::Map(_, pending @ None) => {
                // a key: the entry's line is the key's
                if record {
                    self.lines.insert(child_pointer(&self.ptr, &key_text), node.line);
                }
                *pending = Some(key_text);
                None
            }
            Container::Map(map, pending) => {
                let key = pending.take().unwrap_or_default();
                let p = child_pointer(&self.ptr, &key);
                map.insert(key, node.value);
                Some(p)
            }
        };
        if record && let Some(p) = at {
            for (suffix, line) in node.copied_lines {
                self.lines.insert(format!("{p}{suffix}"), line);
            }
        }
    }
}

fn child_pointer(parent: &str, segment: &str) -> String {
    format!("{parent}/{}", segment.replace('~', "~0").replace('/', "~1"))
}

/// The alias at `span` as written (`*name`), for messages.
fn alias_name(text: &str, span: Span) -> Option<String> {
    let line = text.lines().nth(span.start.line().saturating_sub(1))?;
    let name: String = line
        .chars()
        .skip(span.start.col())
        .take_while(|c| !c.is_whitespace() && !matches!(c, ',' | ']' | '}'))
        .take(80)
        .collect();
    name.starts_with('*').then_some(name)
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
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1i64, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
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
