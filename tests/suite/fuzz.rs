//! Fuzz targets, run in the normal test suite: each input reader that takes text or JSON
//! from a repo, a cluster, a user or a model gets inputs mutated from its seed corpus
//! (fuzz/corpus/<target>: files, or lines of *.txt files), spliced from YAML/JSON tokens, and
//! raw bytes. A target fails on a panic or a broken property; proptest shrinks the input,
//! which is printed to become a regression test (see `regressions` below).
//!
//! CI runs a bounded number of cases per target from a fixed seed (`AGENTOPS_FUZZ_CASES`,
//! default 256); `scripts/fuzz` runs them longer from random seeds.

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Value, json};

use agentops::config::yaml::{parse_bytes, parse_documents, parse_values};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut seeds = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        if f.extension().is_some_and(|e| e == "txt") {
            seeds.extend(bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
        } else {
            seeds.push(bytes);
        }
    }
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// Pieces of YAML and JSON syntax that random bytes rarely hit.
const TOKENS: &[&str] = &[
    "\n",
    "\n  ",
    "\n- ",
    ": ",
    "- ",
    "? ",
    "---\n",
    "...\n",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "\"",
    "'",
    "|-\n",
    ">\n",
    "#",
    "!!str ",
    "!!int ",
    "!!binary ",
    "!tag ",
    "%YAML 1.2\n",
    "~",
    "null",
    "0644",
    "0x1F",
    "1e400",
    "-.inf",
    "\t",
    "\r\n",
    "\\u00e9",
    "\\ud800",
    "é",
    "\u{feff}",
    "\0",
    "$patch: delete",
    "$patch",
    "$retainKeys",
    "$setElementOrder/",
    "$deleteFromPrimitiveList/",
    "/",
    "~1",
    "~0",
    "op",
    "path",
    "value",
    "from",
    "add",
    "remove",
    "replace",
    "move",
    "copy",
    "test",
    "/-",
    "/0",
    "name",
    "containers",
    "metadata",
    "spec",
    "resources",
    "patches",
    "components",
    "../",
    "..",
    "=",
    "!=",
    "==",
    " in (",
    " notin (",
    ")",
    ",",
    "!",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Token(usize, usize),
    Delete(usize, usize),
    Set(usize, u8),
    /// Copies a range of the input elsewhere in it.
    Duplicate(usize, usize, usize),
    /// Splices in a range of another seed.
    Splice(usize, usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = any::<usize>();
    prop_oneof![
        (at, prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(a, b)| Edit::Insert(a, b)),
        (at, any::<usize>()).prop_map(|(a, t)| Edit::Token(a, t)),
        (at, 1..64usize).prop_map(|(a, n)| Edit::Delete(a, n)),
        (at, any::<u8>()).prop_map(|(a, b)| Edit::Set(a, b)),
        (at, at, 1..256usize).prop_map(|(f, t, n)| Edit::Duplicate(f, t, n)),
        (any::<usize>(), at, at, 1..256usize).prop_map(|(s, f, t, n)| Edit::Splice(s, f, t, n)),
    ]
}

fn apply(seeds: &[Vec<u8>], seed: usize, edits: &[Edit]) -> Vec<u8> {
    let mut b = seeds[seed % seeds.len()].clone();
    let pos = |b: &Vec<u8>, a: usize| a % (b.len() + 1);
    for e in edits {
        match e {
            Edit::Insert(a, bytes) => {
                let at = pos(&b, *a);
                b.splice(at..at, bytes.iter().copied());
            }
            Edit::Token(a, t) => {
                let at = pos(&b, *a);
                b.splice(at..at, TOKENS[t % TOKENS.len()].bytes());
            }
            Edit::Delete(a, n) => {
                let at = pos(&b, *a);
                let end = (at + n).min(b.len());
                b.drain(at..end);
            }
            Edit::Set(a, v) => {
                if !b.is_empty() {
                    let at = a % b.len();
                    b[at] = *v;
                }
            }
            Edit::Duplicate(f, t, n) => {
                let from = pos(&b, *f);
                let piece = b[from..(from + n).min(b.len())].to_vec();
                let at = pos(&b, *t);
                b.splice(at..at, piece);
            }
            Edit::Splice(s, f, t, n) => {
                let other = &seeds[s % seeds.len()];
                let from = f % (other.len() + 1);
                let piece = &other[from..(from + n).min(other.len())];
                let at = pos(&b, *t);
                b.splice(at..at, piece.iter().copied());
            }
        }
    }
    b
}

/// Inputs for a target: mostly mutated seeds, some token soup, some raw bytes.
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    let seeds = std::sync::Arc::new(seeds);
    let s2 = seeds.clone();
    prop_oneof![
        6 => (0..n, prop::collection::vec(edit(), 0..10)).prop_map(move |(s, e)| apply(&seeds, s, &e)),
        2 => prop::collection::vec(any::<usize>(), 0..60)
            .prop_map(|ts| ts.iter().flat_map(|t| TOKENS[t % TOKENS.len()].bytes()).collect()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => (0..n).prop_map(move |s| s2[s].clone()),
    ]
}

fn cases() -> u32 {
    std::env::var("AGENTOPS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

/// Runs `check` on `cases()` inputs of `target`; a failure reports the shrunk input.
fn fuzz(target: &str, check: impl Fn(&[u8]) -> Result<(), TestCaseError>) {
    let config = Config { cases: cases(), failure_persistence: None, max_shrink_iters: 2048, ..Config::default() };
    let mut runner = if std::env::var_os("AGENTOPS_FUZZ_RANDOM").is_some() {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    };
    let strategy = inputs(corpus(target));
    if let Err(e) = runner.run(&strategy, |input| check(&input)) {
        panic!("fuzz target {target} failed: {e}\n(add the input above to `regressions` in tests/suite/fuzz.rs)");
    }
}

fn text(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

/// Every JSON pointer of a value (at most `max`).
fn pointers(v: &Value, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut work = vec![(String::new(), v)];
    while let Some((p, v)) = work.pop() {
        if out.len() >= max {
            break;
        }
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    work.push((format!("{p}/{}", k.replace('~', "~0").replace('/', "~1")), x));
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    work.push((format!("{p}/{i}"), x));
                }
            }
            _ => {}
        }
        if !p.is_empty() {
            out.push(p);
        }
    }
    out
}

/// The YAML reader with positions: never a panic; every node of a document it returns has a
/// line inside the file; the values equal those of the reader without lines; a refusal names
/// a line inside the file.
fn check_yaml(input: &[u8]) -> Result<(), TestCaseError> {
    let lines = input.split(|b| *b == b'\n').count() as u32;
    match parse_bytes(input, 1 << 20) {
        Ok(docs) => {
            for doc in &docs {
                prop_assert!(doc.line >= 1 && doc.line <= lines, "document line {} of {lines}", doc.line);
                for p in pointers(&doc.value, 5000) {
                    prop_assert!(doc.has_pointer(&p), "no line for {p} in {:?}", doc.value);
                    let l = doc.line_of(&p);
                    prop_assert!(l >= 1 && l <= lines, "{p} at line {l} of {lines}");
                }
            }
            let text = std::str::from_utf8(input).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let values = parse_values(text).map_err(|e| TestCaseError::fail(format!("without lines: {e}")))?;
            let with: Vec<&Value> = docs.iter().map(|d| &d.value).collect();
            prop_assert_eq!(with, values.iter().collect::<Vec<_>>());
        }
        Err(e) => {
            prop_assert!(e.line >= 1 && e.line <= lines.max(1), "error at line {} of {lines}: {e}", e.line);
            prop_assert!(!e.message.is_empty());
        }
    }
    Ok(())
}

#[test]
fn fuzz_yaml_reader() {
    fuzz("yaml", check_yaml);
}

fn docs_of(input: &[u8]) -> Vec<Value> {
    parse_documents(&text(input)).map(|d| d.into_iter().map(|d| d.value).collect()).unwrap_or_default()
}

#[test]
fn fuzz_kustomization_parser() {
    use agentops::repo::kustomization::{Kustomization, is_remote, join};
    fuzz("kustomization", |input| {
        let Ok(docs) = parse_documents(&text(input)) else { return Ok(()) };
        for doc in &docs {
            let k = Kustomization::from_doc(
                "apps/web/overlays/dev",
                "apps/web/overlays/dev/kustomization.yaml",
                doc,
                &|p: &str| p.ends_with("base") || p.starts_with("components"),
            );
            for r in &k.refs {
                let _ = format!("{r:?}");
            }
        }
        for v in docs_of(input).iter().flat_map(|d| pointers(d, 200).into_iter().map(move |p| d.pointer(&p).cloned())) {
            if let Some(Value::String(s)) = v {
                let _ = is_remote(&s);
                let _ = join("apps/web/overlays/dev", &s);
            }
        }
        Ok(())
    });
}

const KINDS: &[&str] = &["Deployment", "ConfigMap", "Service", "StatefulSet", "CronJob", "Unknown"];

fn has_directive(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| {
            // the directives; other keys starting with `$` are plain keys
            ["$patch", "$retainKeys"].contains(&k.as_str())
                || k.starts_with("$setElementOrder/")
                || k.starts_with("$deleteFromPrimitiveList/")
                || has_directive(x)
        }),
        Value::Array(a) => a.iter().any(has_directive),
        _ => false,
    }
}

/// Strategic merge, JSON patch and merge patch: patches mutated from the corpus applied to
/// objects mutated from the YAML corpus. No panic; no directive survives a strategic merge.
#[test]
fn fuzz_patches() {
    use agentops::k8s::patch::{json_patch, merge_patch, strategic_merge};
    let targets: Vec<Value> = corpus("yaml").iter().flat_map(|s| docs_of(s)).collect();
    fuzz("patch", |input| {
        let patches = docs_of(input);
        for (i, patch) in patches.iter().enumerate() {
            let target = &targets[i % targets.len()];
            for kind in KINDS {
                if let Ok(merged) = strategic_merge(kind, target, patch)
                    && !has_directive(target)
                {
                    prop_assert!(!has_directive(&merged), "a directive survived: {merged}");
                }
            }
            let mut t = target.clone();
            let _ = json_patch(&mut t, patch);
            let mut t = target.clone();
            merge_patch(&mut t, patch);
            // a merge patch applied twice changes nothing more
            let once = t.clone();
            merge_patch(&mut t, patch);
            prop_assert_eq!(once, t);
        }
        Ok(())
    });
}

/// The semantic diff and its normalization: no panic, an object never differs from itself,
/// normalization is idempotent.
#[test]
fn fuzz_diff() {
    use agentops::k8s::diff::{diff, normalize, owner_of, quantity};
    let desired: Vec<Value> = corpus("yaml").iter().flat_map(|s| docs_of(s)).collect();
    fuzz("diff", |input| {
        for (i, live) in docs_of(input).iter().enumerate() {
            let want = &desired[i % desired.len()];
            let n = normalize(live);
            prop_assert_eq!(&normalize(&n), &n, "normalize is not idempotent");
            prop_assert!(diff(live, live).is_empty(), "{live} differs from itself: {:?}", diff(live, live));
            for change in diff(want, live) {
                let _ = owner_of(live, &change);
            }
            for p in pointers(live, 500) {
                if let Some(v) = live.pointer(&p) {
                    let _ = quantity(v);
                }
            }
        }
        Ok(())
    });
}

/// Label and field selectors (as `kubectl get -l` sends them) and metav1.LabelSelector.
#[test]
fn fuzz_label_selectors() {
    use agentops::mock::selector::{FieldSelector, LabelSelector};
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n",
        "labels": {"app": "payments", "tier": "web", "app.kubernetes.io/name": "web"}}, "status": {"phase": "Running"}});
    let labels = pod["metadata"]["labels"].as_object().unwrap().clone();
    fuzz("selector", |input| {
        let s = text(input);
        if let Ok(sel) = LabelSelector::parse(&s) {
            let _ = sel.matches(&pod);
        }
        if let Ok(sel) = FieldSelector::parse(&s) {
            let _ = sel.matches(&pod);
        }
        for doc in docs_of(input) {
            let _ = agentops::k8s::selector_matches(&doc, &labels);
        }
        Ok(())
    });
}

/// The rules planner's tokenizer and slot parsing on any text a user may type.
#[test]
fn fuzz_rules_planner() {
    use agentops::k8s::kinds::normalize_kind;
    use agentops::planner::rules::request::{RepoFacts, SlotKind, split_items};
    use agentops::planner::rules::{RulesPlanner, refusal, tokenize, unknown_slash};
    let planner = RulesPlanner::new(RepoFacts::new(&["dev", "staging", "prod-east"], &["payments", "orders"]));
    let kinds = [
        SlotKind::Env,
        SlotKind::EnvList,
        SlotKind::App,
        SlotKind::AppList,
        SlotKind::NewApp,
        SlotKind::DnsLabel,
        SlotKind::Image,
        SlotKind::Port,
        SlotKind::Kind,
        SlotKind::KeyValues,
        SlotKind::Keys,
        SlotKind::Text,
        SlotKind::Revision,
        SlotKind::Name,
        SlotKind::Glob,
    ];
    fuzz("planner", |input| {
        let s = text(input);
        let _ = tokenize(&s);
        let _ = refusal(&s);
        let _ = unknown_slash(&s);
        let _ = normalize_kind(&s);
        let _ = planner.interpret(&s);
        for k in kinds {
            let _ = split_items(k, &s);
        }
        Ok(())
    });
}

/// What a model sends as tool-call arguments, checked the way the LLM planner checks them:
/// JSON, an object, the tool's schema, paths that stay in the repo.
#[test]
fn fuzz_tool_call_arguments() {
    use agentops::planner::llm::{find_path_escape, summarize_for_model};
    let registry = agentops::tools::ToolRegistry::builtin();
    let tools = registry.list();
    let root = Path::new("/work/repo");
    fuzz("tool_args", |input| {
        let Ok(args) = serde_json::from_str::<Value>(text(input).trim()) else { return Ok(()) };
        let _ = find_path_escape(&args, root);
        let summary = summarize_for_model(&args, 200);
        prop_assert!(summary.chars().count() <= 400, "{summary}");
        if args.is_object() {
            for t in &tools {
                let _ = registry.validate_args(t.name, &args);
            }
        }
        Ok(())
    });
}

/// Inputs the fuzz targets once failed on.
#[test]
fn regressions() {
    for input in [
        &b""[..],
        b"\xff",
        b"- &a [*a]",
        b"? [a, b]\n: c\n",
        // an unclosed flow sequence at the end of a file without a final newline: the error
        // was put on line 2 of a one-line file
        b"$patch: [!!str ",
        // and an empty scalar there: the document was said to start on line 2
        b"!!str ",
        b"a:",
    ] {
        check_yaml(input).unwrap();
    }
}
