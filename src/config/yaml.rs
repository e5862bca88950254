//! YAML reading with positions. Every document becomes a JSON value plus a map from JSON
//! pointer to source line, so every finding can name file and line.
//!
//! Scalars are resolved like the YAML 1.2 core schema with one exception kubectl users rely
//! on: a plain integer with a leading zero (`defaultMode: 0644`) is octal, as kubectl's YAML 1.1
//! reader takes it. Quoted scalars are always strings.

use saphyr_parser::{BufferedInput, Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct YamlDoc {
    /// Position of the document in its file, from 0.
    pub index: usize,
    /// Line (1-based) where the document's content starts.
    pub line: u32,
    pub value: Value,
    lines: LineTree,
}

impl YamlDoc {
    /// An empty mapping, standing in for a file that does not parse.
    pub fn empty() -> YamlDoc {
        YamlDoc { index: 0, line: 1, value: Value::Object(Map::new()), lines: LineTree::default() }
    }

    /// Line of the node at `pointer`, or of its nearest ancestor that has one.
    pub fn line_of(&self, pointer: &str) -> u32 {
        self.lines.walk(pointer).1.unwrap_or(self.line)
    }

    /// Whether the document has a node at exactly this pointer.
    pub fn has_pointer(&self, pointer: &str) -> bool {
        !pointer.is_empty() && self.lines.walk(pointer).0
    }
}

/// The line of every node of a document, as a tree of JSON pointer segments: memory grows
/// with the number of nodes, not with their depth (a pointer string per node would grow
/// with the square of a deep document's depth).
#[derive(Debug, Clone, Default)]
struct LineTree {
    /// Node 0 is the document itself.
    nodes: Vec<LineNode>,
}

/// 32 bytes a node (and its key's text).
#[derive(Debug, Clone)]
struct LineNode {
    /// A mapping entry's key, unescaped; None for a sequence item, named by `index`.
    key: Option<Box<str>>,
    index: u32,
    line: u32,
    /// Children, newest first: a repeated key's last value is found first.
    first_child: u32,
    next_sibling: u32,
}

const ROOT: u32 = 0;
const NONE: u32 = u32::MAX;

impl LineTree {
    fn new() -> LineTree {
        LineTree { nodes: vec![LineNode { key: None, index: 0, line: 0, first_child: NONE, next_sibling: NONE }] }
    }

    fn add(&mut self, parent: u32, key: Option<&str>, index: usize, line: u32) -> u32 {
        let id = self.nodes.len() as u32;
        let next_sibling = self.nodes.get(parent as usize).map_or(NONE, |p| p.first_child);
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        self.nodes.push(LineNode { key: key.map(Into::into), index, line, first_child: NONE, next_sibling });
        if let Some(p) = self.nodes.get_mut(parent as usize) {
            p.first_child = id;
        }
        id
    }

    fn children(&self, parent: u32) -> impl Iterator<Item = (u32, &LineNode)> {
        let mut at = self.nodes.get(parent as usize).map_or(NONE, |p| p.first_child);
        std::iter::from_fn(move || {
            let n = self.nodes.get(at as usize)?;
            let id = at;
            at = n.next_sibling;
            Some((id, n))
        })
    }

    /// The child of `parent` named `segment` (a key's last value, or a sequence item).
    fn child(&self, parent: u32, segment: &str) -> Option<u32> {
        let index = segment.parse::<u32>().ok().filter(|_| segment == "0" || !segment.starts_with('0'));
        self.children(parent)
            .find(|(_, n)| match &n.key {
                Some(k) => **k == *segment,
                None => Some(n.index) == index,
            })
            .map(|(id, _)| id)
    }

    /// Whether the whole pointer exists, and the line of the deepest node found on its way.
    fn walk(&self, pointer: &str) -> (bool, Option<u32>) {
        let Some(rest) = pointer.strip_prefix('/') else { return (false, None) };
        let mut at = ROOT;
        let mut line = None;
        for raw in rest.split('/') {
            let segment = raw.replace("~1", "/").replace("~0", "~");
            match self.child(at, &segment) {
                Some(c) => {
                    at = c;
                    line = self.nodes.get(c as usize).map(|n| n.line);
                }
                None => return (false, line),
            }
        }
        (true, line)
    }

    /// Copies the descendants of `from` under `to` (an alias's copy of its anchor's lines).
    fn copy_children(&mut self, from: u32, to: u32) {
        let mut work = vec![(from, to)];
        while let Some((src, dst)) = work.pop() {
            // oldest first, so the copy keeps the order (and a repeated key's last value)
            let mut kids: Vec<(u32, Option<Box<str>>, u32, u32)> =
                self.children(src).map(|(id, n)| (id, n.key.clone(), n.index, n.line)).collect();
            kids.reverse();
            for (id, key, index, line) in kids {
                let copy = self.add(dst, key.as_deref(), index as usize, line);
                work.push((id, copy));
            }
        }
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
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
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
/// are skipped but still count for `index`. Alias expansion is bounded (see [`AliasBudget`]),
/// and so are depth ([`MAX_DEPTH`]) and the number of nodes ([`max_nodes`] of the default
/// per-file limit).
pub fn parse_documents(text: &str) -> Result<Vec<YamlDoc>, YamlError> {
    parse(text, true, max_nodes(crate::config::limits::DEFAULT_FILE_BYTES))
}

/// Like [`parse_documents`] without the line maps: for rendered output, where no finding
/// points into the text itself. Rendered output may be larger than a repo file: at most one
/// node per four bytes of it (at least as many as a repo file may hold).
pub fn parse_values(text: &str) -> Result<Vec<Value>, YamlError> {
    let max = max_nodes(crate::config::limits::DEFAULT_FILE_BYTES).max(text.len() as u64 / 4);
    Ok(parse(text, false, max)?.into_iter().map(|d| d.value).collect())
}

/// How many nodes a file within a `max_bytes` limit may hold: one per eight bytes of the
/// limit (typical Kubernetes YAML has one per fourteen), so that memory is bounded by the
/// limit even for the densest YAML (`- - - - …`, a node per two bytes).
pub fn max_nodes(max_bytes: u64) -> u64 {
    (max_bytes / 8).max(10_000)
}

/// Reads a file as YAML within the limits: at most `max_bytes` (and [`max_nodes`] of it), a
/// regular file, UTF-8 text, bounded aliases and depth. Every refusal names the line it
/// concerns (1 when it is the whole file). Returns the documents and the blake3 hash of the
/// bytes read (None when nothing was read).
pub fn read_file(path: &std::path::Path, max_bytes: u64) -> (Result<Vec<YamlDoc>, YamlError>, Option<String>) {
    let bytes = match crate::config::limits::read_file(path, max_bytes) {
        Ok(b) => b,
        Err(e) => return (Err(YamlError::new(e.yaml_kind(), 1, 1, e.to_string())), None),
    };
    let hash = blake3::hash(&bytes).to_hex().to_string();
    (parse_bytes(&bytes, max_bytes), Some(hash))
}

/// Parses bytes that should be UTF-8 YAML, within a file limit of `max_bytes`; invalid UTF-8
/// is refused at the line and column of the first bad byte.
pub fn parse_bytes(bytes: &[u8], max_bytes: u64) -> Result<Vec<YamlDoc>, YamlError> {
    match std::str::from_utf8(bytes) {
        Ok(t) => parse(t, true, max_nodes(max_bytes)),
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

/// How deep a document may nest. Kubernetes objects need a few dozen levels; much deeper
/// nesting only costs time and stack in every reader after this one.
pub const MAX_DEPTH: usize = 1000;

/// A node that has an anchor, kept for its aliases.
struct Anchored {
    value: Value,
    /// The text of the node when it is used as a mapping key.
    key: String,
    /// Nodes and scalar bytes it decodes to (its own aliases expanded), and its height.
    nodes: u64,
    bytes: u64,
    height: usize,
    /// Its node in the line tree, when lines are kept.
    tree: Option<u32>,
}

enum Container {
    Seq(Vec<Value>),
    /// The mapping and, between a key and its value, the key and the entry's line-tree node.
    Map(Map<String, Value>, Option<(String, Option<u32>)>),
}

struct Frame {
    container: Container,
    anchor: usize,
    line: u32,
    /// Its node in the line tree (None inside keys, or without lines).
    tree: Option<u32>,
    /// The frame is (inside) a mapping key: no lines.
    in_key: bool,
    nodes: u64,
    bytes: u64,
    height: usize,
}

/// A finished node on its way into its parent.
struct Node {
    value: Value,
    key: Option<String>,
    anchor: usize,
    line: u32,
    nodes: u64,
    bytes: u64,
    height: usize,
    tree: Option<u32>,
    /// A scalar or an alias: its line-tree node is added when it is finished.
    leaf: bool,
    /// For an alias: the anchor's line-tree node, whose descendants the copy takes.
    copy_from: Option<u32>,
}

/// Builds JSON values from parser events, without recursion (deep nesting cannot overflow the
/// stack) and with alias expansion bounded before anything is copied.
struct Builder<'t> {
    text: &'t str,
    last_line: u32,
    with_lines: bool,
    /// Nodes the whole stream may decode, aliases expanded.
    max_nodes: u64,
    decoded: u64,
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Anchored>,
    budget: AliasBudget,
    lines: LineTree,
    docs: Vec<YamlDoc>,
    index: usize,
    root: Option<(Value, u32)>,
}

fn parse(text: &str, with_lines: bool, max_nodes: u64) -> Result<Vec<YamlDoc>, YamlError> {
    let mut b = Builder {
        text,
        last_line: last_line(text),
        with_lines,
        max_nodes,
        decoded: 0,
        stack: Vec::new(),
        anchors: std::collections::HashMap::new(),
        budget: AliasBudget::new(text.len()),
        lines: LineTree::new(),
        docs: Vec::new(),
        index: 0,
        root: None,
    };
    let meter = Meter::default();
    meter.allow(MAX_UNBROKEN);
    let input = Metered { chars: text.chars(), meter: meter.clone() };
    for event in Parser::new(BufferedInput::new(input)) {
        let event = event.map_err(|e| {
            YamlError::new(
                YamlErrorKind::Syntax,
                // the parser puts an error at the end of the input one line past a last line
                // without a newline
                (e.marker().line() as u32).min(b.last_line),
                e.marker().col() as u32 + 1,
                e.info().to_string(),
            )
        });
        if meter.cut.get() {
            return Err(unbroken(text, meter.read.get()));
        }
        let (event, span) = event?;
        b.event(event, span)?;
        meter.allow(MAX_UNBROKEN);
    }
    if meter.cut.get() {
        return Err(unbroken(text, meter.read.get()));
    }
    Ok(b.docs)
}

/// The number of the file's last line (one that holds text, or the empty one after a final
/// newline).
fn last_line(text: &str) -> u32 {
    u32::try_from(text.matches('\n').count()).unwrap_or(u32::MAX).saturating_add(1)
}

/// How much text the parser may read without producing a node. A flow collection (`[…]`,
/// `{…}`, JSON) is read whole before its first node, at up to a hundred bytes of memory per
/// byte of text; no value Kubernetes stores is longer (an object is at most 1.5 MiB in etcd).
pub const MAX_UNBROKEN: usize = 3 << 19;

/// What the parser has read, and where it must stop.
#[derive(Clone, Default)]
struct Meter {
    read: std::rc::Rc<std::cell::Cell<usize>>,
    stop: std::rc::Rc<std::cell::Cell<usize>>,
    cut: std::rc::Rc<std::cell::Cell<bool>>,
}

impl Meter {
    fn allow(&self, more: usize) {
        self.stop.set(self.read.get().saturating_add(more));
    }
}

/// The text, a character at a time, ending early when the parser reads past its allowance.
struct Metered<'t> {
    chars: std::str::Chars<'t>,
    meter: Meter,
}

impl Iterator for Metered<'_> {
    type Item = char;
    fn next(&mut self) -> Option<char> {
        if self.meter.cut.get() {
            return None;
        }
        if self.meter.read.get() >= self.meter.stop.get() {
            self.meter.cut.set(true);
            return None;
        }
        let c = self.chars.next()?;
        self.meter.read.set(self.meter.read.get() + c.len_utf8());
        Some(c)
    }
}

fn unbroken(text: &str, at: usize) -> YamlError {
    let before = text.get(..at.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() as u32 + 1;
    YamlError::new(
        YamlErrorKind::TooLarge,
        line,
        1,
        format!(
            "more than {} of text without a single YAML node ending, up to this line: a flow collection \
             ([…] or {{…}}, JSON) or a scalar this long is read whole before it is used. agentops does not read it \
             and does not hand it to kustomize; write it in block style, or split it",
            crate::config::limits::human_bytes(MAX_UNBROKEN as u64)
        ),
    )
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        let line = self.line_at(span);
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                self.stack.clear();
                self.anchors.clear();
                self.budget = AliasBudget::new(self.text.len());
                self.lines = LineTree::new();
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
                    height: 0,
                    tree: None,
                    leaf: true,
                    copy_from: None,
                };
                self.finish(node);
            }
            Event::Alias(id) => {
                let (nodes, bytes, height) = self.anchors.get(&id).map_or((0, 0, 0), |a| (a.nodes, a.bytes, a.height));
                self.spend(1 + nodes, nodes, bytes, span)?;
                if self.stack.len() + height > MAX_DEPTH {
                    return Err(self.too_deep(span));
                }
                let Some(a) = self.anchors.get(&id) else {
                    // anchors belong to their document; one still open contains the alias
                    let inside = self.stack.iter().any(|f| f.anchor == id);
                    let message = if inside {
                        "while parsing node, found an alias inside the node its anchor names (it would contain itself)"
                    } else {
                        "while parsing node, found unknown anchor"
                    };
                    return Err(YamlError::new(YamlErrorKind::Syntax, line, span.start.col() as u32 + 1, message));
                };
                let node = Node {
                    value: a.value.clone(),
                    key: Some(a.key.clone()),
                    anchor: 0,
                    line,
                    nodes: 1 + a.nodes,
                    bytes: a.bytes,
                    height: a.height,
                    tree: None,
                    leaf: true,
                    copy_from: a.tree,
                };
                self.finish(node);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.spend(1, 0, 0, span)?;
                if self.stack.len() >= MAX_DEPTH {
                    return Err(self.too_deep(span));
                }
                let in_key = self.child_is_key();
                let tree = if in_key { None } else { self.child_tree(line) };
                let container = match event {
                    Event::SequenceStart(..) => Container::Seq(Vec::new()),
                    _ => Container::Map(Map::new(), None),
                };
                self.stack.push(Frame { container, anchor, line, tree, in_key, nodes: 1, bytes: 0, height: 0 });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else { return Ok(()) };
                let value = match frame.container {
                    Container::Seq(mut items) => {
                        items.shrink_to_fit();
                        Value::Array(items)
                    }
                    Container::Map(map, _) => Value::Object(map),
                };
                let node = Node {
                    key: None,
                    value,
                    anchor: frame.anchor,
                    line: frame.line,
                    nodes: frame.nodes,
                    bytes: frame.bytes,
                    height: frame.height + 1,
                    tree: frame.tree,
                    leaf: false,
                    copy_from: None,
                };
                self.finish(node);
            }
        }
        Ok(())
    }

    fn spend(&mut self, nodes: u64, aliased: u64, bytes: u64, span: Span) -> Result<(), YamlError> {
        if !self.budget.spend(nodes, aliased, bytes) {
            return Err(self.too_many_aliases(span));
        }
        self.decoded = self.decoded.saturating_add(nodes);
        if self.decoded > self.max_nodes {
            return Err(YamlError::new(
                YamlErrorKind::TooLarge,
                self.line_at(span),
                span.start.col() as u32 + 1,
                format!(
                    "the file holds more than {} YAML nodes (one per 8 bytes of the per-file limit; Kubernetes YAML \
                     averages one per 14); agentops does not read the rest and does not hand it to kustomize. Split \
                     it, or raise limits.file_bytes in .agentops.yaml",
                    self.max_nodes
                ),
            ));
        }
        Ok(())
    }

    /// The line of a span: the parser puts what ends at the end of the input (an empty
    /// scalar, an error) one line past a last line without a newline.
    fn line_at(&self, span: Span) -> u32 {
        (span.start.line() as u32).min(self.last_line)
    }

    fn too_deep(&self, span: Span) -> YamlError {
        YamlError::new(
            YamlErrorKind::TooDeep,
            self.line_at(span),
            span.start.col() as u32 + 1,
            format!(
                "the document nests deeper than {MAX_DEPTH} levels here; agentops does not read it and does not \
                 hand it to kustomize (Kubernetes objects need a few dozen levels)"
            ),
        )
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
                crate::config::limits::human_bytes(b.aliased_bytes),
                crate::config::limits::human_bytes(self.text.len() as u64)
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
            self.line_at(span),
            span.start.col() as u32 + 1,
            format!(
                "excessive aliasing: {who}: {what}. This is the shape of a \"billion laughs\" YAML bomb; agentops \
                 does not read it and does not hand it to kustomize. Write the repeated values out, or alias fewer \
                 of them"
            ),
        )
    }

    /// Whether the next node is (inside) a mapping key.
    fn child_is_key(&self) -> bool {
        match self.stack.last() {
            None => false,
            Some(f) => f.in_key || matches!(f.container, Container::Map(_, None)),
        }
    }

    /// The line-tree node of the next child of the innermost container (a sequence item is
    /// added here; a mapping value's node was added with its key). None without lines.
    fn child_tree(&mut self, line: u32) -> Option<u32> {
        if !self.with_lines {
            return None;
        }
        match self.stack.last() {
            None => Some(ROOT),
            Some(Frame { in_key: true, .. }) | Some(Frame { tree: None, .. }) => None,
            Some(Frame { container: Container::Seq(items), tree: Some(t), .. }) => {
                let (t, n) = (*t, items.len());
                Some(self.lines.add(t, None, n, line))
            }
            Some(Frame { container: Container::Map(_, Some((_, entry))), .. }) => *entry,
            Some(Frame { container: Container::Map(_, None), .. }) => None,
        }
    }

    /// Hands a finished node to its parent.
    fn finish(&mut self, mut node: Node) {
        // a scalar or an alias gets its line-tree node here (a collection got it at its start)
        let is_key = self.child_is_key();
        // the node's text as a key, only where it may be one (a collection's JSON text costs
        // as much as the collection)
        let as_key = is_key && matches!(self.stack.last(), Some(Frame { container: Container::Map(_, None), .. }));
        let key_text = if as_key || node.anchor > 0 {
            node.key.take().unwrap_or_else(|| match &node.value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        } else {
            String::new()
        };
        let tree = if node.leaf && !is_key { self.child_tree(node.line) } else { node.tree };
        if let (Some(from), Some(to)) = (node.copy_from, tree) {
            self.lines.copy_children(from, to);
        }
        if node.anchor > 0 {
            let anchored = Anchored {
                value: node.value.clone(),
                key: key_text.clone(),
                nodes: node.nodes,
                bytes: node.bytes,
                height: node.height,
                tree,
            };
            self.anchors.insert(node.anchor, anchored);
        }
        let with_lines = self.with_lines;
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some((node.value, node.line));
            return;
        };
        parent.nodes = parent.nodes.saturating_add(node.nodes);
        parent.bytes = parent.bytes.saturating_add(node.bytes);
        parent.height = parent.height.max(node.height);
        match &mut parent.container {
            Container::Seq(items) => items.push(node.value),
            Container::Map(_, pending @ None) => {
                // a key: the entry's node takes the key's line
                let entry = match parent.tree {
                    Some(t) if with_lines && !parent.in_key => Some(self.lines.add(t, Some(&key_text), 0, node.line)),
                    _ => None,
                };
                *pending = Some((key_text, entry));
            }
            Container::Map(map, pending) => {
                let key = pending.take().map(|p| p.0).unwrap_or_default();
                map.insert(key, node.value);
            }
        }
    }
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

    fn bomb(levels: usize, width: usize) -> String {
        let mut s = format!("a0: &a0 [{}]\n", vec!["\"lol\""; width].join(","));
        for l in 1..levels {
            s.push_str(&format!("a{l}: &a{l} [{}]\n", vec![format!("*a{}", l - 1); width].join(",")));
        }
        s
    }

    #[test]
    fn a_billion_laughs_is_refused_at_the_alias_that_tips_it() {
        let err = parse_documents(&bomb(9, 9)).unwrap_err();
        assert_eq!(err.kind, YamlErrorKind::Aliases);
        assert!(err.is_refusal());
        // a3's fourth alias of a2 takes the document past 1,000 nodes with more than 99% aliased
        assert_eq!((err.line, err.column), (4, 22), "{err}");
        assert!(err.message.contains("the alias *a2 expands too far"), "{err}");
        assert!(err.message.contains("allows 99%"), "{err}");
        // the same for values without lines, and in a later document
        assert_eq!(parse_values(&bomb(9, 9)).unwrap_err().kind, YamlErrorKind::Aliases);
        let later = format!("a: 1\n---\n{}", bomb(9, 9));
        assert_eq!(parse_documents(&later).unwrap_err().line, 6);
    }

    #[test]
    fn aliases_the_way_manifests_use_them_are_read_and_expanded() {
        // one env list shared by 200 containers: 99% of the nodes come from aliases, but the
        // document stays small, as yaml.v3 allows
        let mut text = "env: &env\n".to_string();
        for i in 0..5 {
            text.push_str(&format!("- name: V{i}\n  value: \"{i}\"\n"));
        }
        text.push_str("containers:\n");
        for i in 0..200 {
            text.push_str(&format!("- name: c{i}\n  env: *env\n"));
        }
        let doc = &parse_documents(&text).unwrap()[0];
        assert_eq!(doc.value["containers"][199]["env"], doc.value["env"]);
        assert_eq!(doc.value["containers"][199]["env"][4]["value"], "4");
        // the copy's own entry is at the alias, what it holds where the anchor defines it
        assert_eq!(doc.line_of("/containers/199/env"), 2 + 10 + 1 + 199 * 2 + 1);
        assert_eq!(doc.line_of("/containers/199/env/4/value"), 11);
        assert!(doc.has_pointer("/containers/0/env/0/name"));
    }

    #[test]
    fn the_alias_ratio_follows_yaml_v3() {
        assert_eq!(allowed_alias_ratio(1_000), 0.99);
        assert_eq!(allowed_alias_ratio(400_000), 0.99);
        assert!((allowed_alias_ratio(2_200_000) - 0.545).abs() < 1e-9);
        assert_eq!(allowed_alias_ratio(4_000_000), 0.10);
        assert_eq!(allowed_alias_ratio(u64::MAX), 0.10);
        // under 100 aliased nodes, or 1,000 decoded, anything goes
        let mut b = AliasBudget::new(10);
        assert!(b.spend(900, 0, 0) && b.spend(100, 100, 0));
        let mut b = AliasBudget::new(10);
        assert!(b.spend(999, 990, 0));
        assert!(!b.spend(2, 2, 0), "1,001 nodes, 992 from aliases: over 99%");
        // a large document may alias less and less of itself: 34.7% at 3,000,000 nodes
        let mut b = AliasBudget::new(10);
        assert!(b.spend(3_000_000, 1_000_000, 0));
        assert!(!b.spend(1, 100_000, 0));
    }

    #[test]
    fn aliases_that_copy_too_much_text_are_refused() {
        // few nodes, but each alias copies 100 KiB: Go would share the string, we would not
        let text = format!("a: &a \"{}\"\nb: [{}]\n", "x".repeat(100 << 10), vec!["*a"; 200].join(","));
        let err = parse_values(&text).unwrap_err();
        assert_eq!(err.kind, YamlErrorKind::Aliases);
        assert!(err.message.contains("aliases would copy"), "{err}");
        // ten copies of a document's worth are fine
        let text = format!("a: &a \"{}\"\nb: [{}]\n", "x".repeat(100 << 10), ["*a"; 9].join(","));
        assert!(parse_values(&text).is_ok());
    }

    #[test]
    fn anchors_are_per_document_and_never_contain_themselves() {
        let err = parse_documents("a: &x 1\n---\nb: *x\n").unwrap_err();
        assert_eq!((err.line, err.kind), (3, YamlErrorKind::Syntax), "{err}");
        let err = parse_documents("a: &x [1, *x]\n").unwrap_err();
        assert!(err.message.contains("contain itself"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_at_its_limit_never_a_crash() {
        // flow nesting past the parser's own depth limit
        assert!(parse_values(&"[".repeat(100_000)).is_err());
        // block nesting to the limit is read; one level more is refused at its line
        let text = "- ".repeat(MAX_DEPTH) + "x\n";
        let doc = &parse_documents(&text).unwrap()[0];
        let mut cur = &doc.value;
        let mut depth = 0;
        while let Value::Array(items) = cur {
            cur = &items[0];
            depth += 1;
        }
        assert_eq!((depth, cur.as_str()), (MAX_DEPTH, Some("x")));
        assert!(doc.has_pointer(&"/0".repeat(MAX_DEPTH)));
        let text = format!("a: 1\nb:\n{}x\n", "- ".repeat(MAX_DEPTH));
        let err = parse_documents(&text).unwrap_err();
        assert_eq!((err.kind, err.line), (YamlErrorKind::TooDeep, 3), "{err}");
        // an alias cannot smuggle depth in either
        let half = "- ".repeat(MAX_DEPTH / 2 + 1);
        let text = format!("a: &a\n{half}x\nb:\n{half}*a\n");
        assert_eq!(parse_values(&text).unwrap_err().kind, YamlErrorKind::TooDeep);
    }

    #[test]
    fn a_flow_collection_is_read_whole_only_up_to_a_limit() {
        // the parser holds a flow collection's tokens until it closes (where it could be a
        // key: an item, a document): refused past the limit
        let text = format!("- a\n- [{}x]\n", "x, ".repeat(MAX_UNBROKEN / 3 + 100));
        let err = parse_values(&text).map(|v| v.len()).unwrap_err();
        assert_eq!((err.kind, err.line), (YamlErrorKind::TooLarge, 2), "{err}");
        assert!(err.message.contains("flow collection"), "{err}");
        // so is a scalar that long, rather than cut short
        let text = format!("a: {}\n", "x".repeat(MAX_UNBROKEN + 100));
        assert_eq!(parse_values(&text).map(|v| v.len()).unwrap_err().kind, YamlErrorKind::TooLarge);
        // just under it, both are read
        let text = format!("- [{}x]\n- {}\n", "x, ".repeat(MAX_UNBROKEN / 3 - 10), "y".repeat(MAX_UNBROKEN - 10));
        let v = parse_values(&text).map_err(|e| e.to_string()).unwrap();
        assert_eq!(v[0][1].as_str().map(str::len), Some(MAX_UNBROKEN - 10));
    }

    #[test]
    fn the_number_of_nodes_is_bounded_by_the_file_limit() {
        let text = "- ".repeat(10) + "x\n";
        let dense = text.repeat(2000);
        assert!(parse_bytes(dense.as_bytes(), 1 << 20).is_ok());
        let err = parse_bytes(dense.as_bytes(), 80_000).unwrap_err();
        assert_eq!(err.kind, YamlErrorKind::TooLarge);
        assert!(err.message.contains("more than 10000 YAML nodes"), "{err}");
    }

    #[test]
    fn invalid_utf8_names_its_line_and_column() {
        let err = parse_bytes(b"a: 1\nb: caf\xe9\n", 1 << 20).unwrap_err();
        assert_eq!((err.line, err.column, err.kind), (2, 7, YamlErrorKind::NotText), "{err}");
        assert!(err.message.contains("0xe9"), "{err}");
    }

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
