//! The phrase tables: everything the rules planner recognizes in plain language is a row
//! here, not a branch in code. Patterns are case-insensitive regexes; a named group fills
//! the slot of that name; `fixed` slots are set when the row matches.

use std::sync::LazyLock;

use regex::Regex;

use super::request::Workflow;

/// A request refused outright, before any mapping: destructive or out-of-band cluster writes
/// and attempts to talk the planner out of its rules.
pub struct Refusal {
    pub pattern: &'static str,
    pub reason: &'static str,
    /// Also checked inside slash commands (free-text arguments could carry it).
    pub in_slash: bool,
}

pub const REFUSALS: &[Refusal] = &[
    Refusal {
        pattern: r"\b(?:ignore|disregard|forget|bypass|override)\b.{0,40}\b(?:instructions|rules|guardrails|polic(?:y|ies)|system\s+prompt|prompt)\b|\b(?:pretend|act\s+as\s+if|imagine)\b.{0,40}\b(?:no|without)\s+(?:rules|restrictions|limits|guardrails|instructions)\b|\byou\s+(?:have|had)\s+no\s+(?:rules|restrictions|limits|guardrails)\b",
        reason: "the request asks to set aside the planner's instructions; requests are mapped to workflows only",
        in_slash: true,
    },
    Refusal {
        pattern: r"\b(?:skip|bypass|disable|turn\s+off|switch\s+off|remove)\s+(?:the\s+|any\s+|all\s+)?(?:approvals?|reviews?|validation|gates?)\b|\bwithout\s+(?:any\s+)?(?:approval|review|asking)\b|\bno\s+(?:approvals?|reviews?)\s+(?:needed|required|necessary)\b",
        reason: "approval gates cannot be switched off from a request; pass --yes on the command line if you mean to approve writes up front",
        in_slash: true,
    },
    Refusal {
        // flags may come before the verb (`kubectl -n prod scale ...`)
        pattern: r"\bkubectl(?:\s+--?[\w-]+(?:[= ][^\s-][^\s]*)?)*\s+(?:delete|apply|edit|patch|replace|create|scale|rollout|drain|cordon|uncordon|taint|exec|annotate|label|set)\b",
        reason: "direct kubectl writes bypass git and review; agentops changes clusters only through git and approved workflows",
        in_slash: true,
    },
    Refusal {
        pattern: r"\b(?:delete|destroy|drop|wipe|nuke|purge|tear\s+down|remove)\s+(?:the\s+|all\s+|every\s+|this\s+|that\s+|these\s+)?(?:[\w-]+\s+)?(?:namespaces?|clusters?|nodes?|pvcs?|persistent\s*volumes?|persistent\s*volume\s*claims?|crds?)\b",
        reason: "deleting namespaces, clusters, nodes or volumes is outside what agentops does; use your platform's own change process for that",
        in_slash: false,
    },
    Refusal {
        pattern: r"\b(?:delete|kill|evict|restart|bounce|recycle|cycle)\s+(?:the\s+|all\s+)?(?:[\w-]+\s+)?pods?\b|\bexec\s+into\b|\brm\s+-rf\b|\bscale\s+(?:[\w-]+\s+){0,3}?(?:to\s+(?:zero|\d+)|down|up)\b|--replicas\b",
        reason: "direct cluster operations (deleting or restarting pods, exec) are not workflows; make the change in git",
        in_slash: false,
    },
    Refusal {
        pattern: r"^\W*(?:please\s+)?(?:force[- ]?)?(?:sync|resync|hard[- ]refresh)\b|\b(?:sync|apply|deploy|push|restart|scale|redeploy|roll\s*out)\b.{0,40}\b(?:now|immediately|right\s+away|directly|straight|asap)\b",
        reason: "direct cluster writes outside a workflow are refused; changes go through git (try \"check <env> for drift\" to see what differs, or /infrastructure-rollback)",
        in_slash: false,
    },
    Refusal {
        pattern: r"\b(?:show|print|reveal|dump|decode|display|give\s+me|tell\s+me|what'?s\s+in|what\s+is\s+in|cat|read\s+out|leak)\b.{0,30}\b(?:secrets?|passwords?|credentials|private\s+keys?|api\s+keys?|tokens?)\b",
        reason: "secret values are never shown, logged or sent anywhere",
        in_slash: false,
    },
];

/// One natural phrasing of a workflow.
pub struct Phrase {
    pub workflow: Workflow,
    pub pattern: &'static str,
    pub fixed: &'static [(&'static str, &'static str)],
}

const TLS13: &[(&str, &str)] =
    &[("kind", "Ingress"), ("set_annotations", "nginx.ingress.kubernetes.io/ssl-protocols=TLSv1.3")];
const SSL_REDIRECT: &[(&str, &str)] =
    &[("kind", "Ingress"), ("set_annotations", "nginx.ingress.kubernetes.io/force-ssl-redirect=true")];

/// First match wins, so the more specific rows come first.
pub const PHRASES: &[Phrase] = &[
    // harmonize: settings known by their common names
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\b(?:enforce|require|set|use|mandate|enable|apply|only)\b.*\btls\s*v?1\.3\b",
        fixed: TLS13,
    },
    Phrase { workflow: Workflow::Harmonize, pattern: r"\bingress\w*\b.*\btls\s*v?1\.3\b", fixed: TLS13 },
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\btls\s*v?1\.3\b.*\b(?:on|for|across)\s+(?:all|every)\b",
        fixed: TLS13,
    },
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\b(?:enforce|require|force|enable)\b.*\b(?:ssl|https)[- ]redirects?\b",
        fixed: SSL_REDIRECT,
    },
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\bingress\w*\b.*\bredirect\w*\s+(?:\w+\s+)?to\s+(?:https|ssl|tls)\b",
        fixed: SSL_REDIRECT,
    },
    // harmonize: explicit annotations and labels
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\b(?:set|add|put|apply)\s+(?:the\s+|an?\s+)?annotation\s+(?P<set_annotations>[^\s,=]+=[^\s,]+)(?:\s+(?:on|to|for|across)\s+(?:all\s+|every\s+|the\s+)*(?P<kind>[a-z]+))?",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\b(?:set|add|put|apply)\s+(?:the\s+|a\s+)?label\s+(?P<set_labels>[^\s,=]+=[^\s,]+)(?:\s+(?:on|to|for|across)\s+(?:all\s+|every\s+|the\s+)*(?P<kind>[a-z]+))?",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\b(?:remove|drop|delete|strip|get\s+rid\s+of)\s+(?:the\s+)?annotation\s+(?P<remove_annotations>[^\s,]+)(?:\s+(?:from|on|in)\s+(?:all\s+|every\s+|the\s+|our\s+)*(?P<kind>[a-z]+))?",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\b(?:remove|drop|delete|strip|get\s+rid\s+of)\s+(?:the\s+)?label\s+(?P<remove_labels>[^\s,]+)(?:\s+(?:from|on|in)\s+(?:all\s+|every\s+|the\s+|our\s+)*(?P<kind>[a-z]+))?",
        fixed: &[],
    },
    // "label every deployment with team=x", "annotate all ingresses with k=v"
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\blabel\s+(?:all\s+|every\s+|each\s+|the\s+|our\s+)*(?P<kind>[a-z]+)\s+with\s+(?P<set_labels>[^\s,=]+=[^\s,]+)",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\bannotate\s+(?:all\s+|every\s+|each\s+|the\s+|our\s+)*(?P<kind>[a-z]+)\s+with\s+(?P<set_annotations>[^\s,=]+=[^\s,]+)",
        fixed: &[],
    },
    // "the owner label: add owner=sre to all statefulsets"
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\blabels?\b.*\b(?:set|add|put|apply)\s+(?P<set_labels>[^\s,=]+=[^\s,]+)(?:\s+(?:on|to|for|across)\s+(?:all\s+|every\s+|the\s+|our\s+)*(?P<kind>[a-z]+))?",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Harmonize,
        pattern: r"\bannotations?\b.*\b(?:set|add|put|apply)\s+(?P<set_annotations>[^\s,=]+=[^\s,]+)(?:\s+(?:on|to|for|across)\s+(?:all\s+|every\s+|the\s+|our\s+)*(?P<kind>[a-z]+))?",
        fixed: &[],
    },
    Phrase { workflow: Workflow::Harmonize, pattern: r"\bharmoni[sz](?:e|ation)\b", fixed: &[] },
    // drift
    Phrase { workflow: Workflow::Drift, pattern: r"\bdrift(?:s|ed|ing)?\b", fixed: &[] },
    Phrase { workflow: Workflow::Drift, pattern: r"\bout\s+of\s+sync\b", fixed: &[] },
    Phrase { workflow: Workflow::Drift, pattern: r"\b(?:differ|diverge)\w*\s+from\s+git\b", fixed: &[] },
    Phrase { workflow: Workflow::Drift, pattern: r"\bchanged\s+(?:by\s+hand|manually)\b", fixed: &[] },
    Phrase { workflow: Workflow::Drift, pattern: r"\b(?:vs\.?|versus|against)\s+(?:what\s+)?git\b", fixed: &[] },
    Phrase {
        workflow: Workflow::Drift,
        pattern: r"\bcompare\b.*\b(?:clusters?|live)\b.*\bgit\b|\bcompare\b.*\bgit\b.*\b(?:clusters?|live)\b",
        fixed: &[],
    },
    // rollback
    Phrase { workflow: Workflow::Rollback, pattern: r"\broll(?:ed|ing)?[\s-]*back\b|\brollback\b", fixed: &[] },
    Phrase {
        workflow: Workflow::Rollback,
        pattern: r"\b(?:revert|undo)\s+(?:the\s+)?(?:last\s+|latest\s+|bad\s+)?(?:deploy(?:ment)?|release)\b",
        fixed: &[],
    },
    // create
    Phrase {
        workflow: Workflow::Create,
        pattern: r"\b(?:create|scaffold|add|set\s*up|onboard|bootstrap|need|want|spin\s+up|provision)\s+(?:a\s+|an\s+)?(?:new\s+)?(?:app(?:lication)?|service|workload)\s+(?:called|named)\s+(?P<name>[a-z0-9][a-z0-9-]*)",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Create,
        pattern: r"\b(?:create|scaffold|add|set\s*up|onboard|bootstrap)\s+(?:a\s+|an\s+)?(?:new\s+)?(?:app(?:lication)?|service|workload)(?:\s+(?P<name>[a-z0-9][a-z0-9-]*))?",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Create,
        pattern: r"\b(?:deploy|install|roll\s*out|launch)\s+(?:a\s+new\s+)?(?P<name>[a-z0-9][a-z0-9-]*)\s+(?:to|across|in|on|into|everywhere)\b",
        fixed: &[],
    },
    // "set up an app for metrics-proxy", "new app: kafka-ui"
    Phrase {
        workflow: Workflow::Create,
        pattern: r"\b(?:create|scaffold|add|set\s*up|onboard|bootstrap|spin\s+up|provision)\s+(?:a\s+|an\s+)?(?:new\s+)?(?:app(?:lication)?|service|workload)\s+for\s+(?P<name>[a-z0-9][a-z0-9-]*)",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Create,
        pattern: r"\bnew\s+(?:app(?:lication)?|service|workload|microservice)\s*:\s*(?P<name>[a-z0-9][a-z0-9-]*)",
        fixed: &[],
    },
    // "spin up redis-cache using redis:7.2", "onboard ledger, image ...", "create prometheus with image ..."
    Phrase {
        workflow: Workflow::Create,
        pattern: r"\b(?:create|scaffold|onboard|bootstrap|spin\s+up|stand\s+up|provision)\s+(?:a\s+|an\s+)?(?:new\s+)?(?P<name>[a-z0-9][a-z0-9-]*)\s*(?:,|\s+(?:with|using|from|on|in|to|across|image)\b)",
        fixed: &[],
    },
    // migrate
    Phrase {
        workflow: Workflow::Migrate,
        pattern: r"\b(?:migrat\w*|move|switch)\s+(?:[\w-]+\s+){0,4}?from\s+(?P<from>[\w.-]+)\s+to\s+(?P<to>[\w.-]+)",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Migrate,
        pattern: r"\bmigrat\w*\s+(?P<from>[\w.-]+)\s+to\s+(?P<to>[\w.-]+)",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Migrate,
        pattern: r"\breplac\w*\s+(?P<from>[\w.-]+)\s+(?:with|by)\s+(?P<to>[\w.-]+)",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Migrate,
        pattern: r"\b(?:mov\w*|migrat\w*|switch\w*|get)\s+(?:away\s+)?off\s+(?:of\s+)?(?P<from>[\w.-]+)\s+(?:onto|to|into|for)\s+(?P<to>[\w.-]+)",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Migrate,
        pattern: r"\bswap\w*\s+(?:out\s+)?(?P<from>[\w.-]+)\s+(?:for|with)\s+(?P<to>[\w.-]+)",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Migrate,
        pattern: r"\b(?:retir\w*|drop\w*|sunset\w*|phas\w*\s+out)\s+(?P<from>[\w.-]+)\s+in\s+fav(?:ou)?r\s+of\s+(?P<to>[\w.-]+)",
        fixed: &[],
    },
    Phrase {
        workflow: Workflow::Migrate,
        pattern: r"(?:^|\s)(?P<from>[a-z][\w.-]*)\s*(?:->|→|=>)\s*(?P<to>[a-z][\w.-]*)",
        fixed: &[],
    },
    Phrase { workflow: Workflow::Migrate, pattern: r"\bmigrat(?:e|ion|ing)\b", fixed: &[] },
    // commit message
    Phrase {
        workflow: Workflow::Commit,
        pattern: r"\b(?:draft|write|prepare|suggest|generate)\s+(?:a\s+|the\s+|me\s+a\s+)?commit(?:\s+message)?\b",
        fixed: &[],
    },
    Phrase { workflow: Workflow::Commit, pattern: r"\bcommit\s+(?:message|msg)\b|^\W*commit\b", fixed: &[] },
    // validate
    Phrase { workflow: Workflow::Validate, pattern: r"\b(?:validate|validation|lint|verify)\b", fixed: &[] },
    Phrase {
        workflow: Workflow::Validate,
        pattern: r"\b(?:is|are)\b.*\bvalid\b|\b(?:does|do|will)\b.*\bbuild\b",
        fixed: &[],
    },
    Phrase { workflow: Workflow::Validate, pattern: r"\bcheck\b", fixed: &[] },
];

/// A word or phrase that points to a workflow, with a weight. When no phrase row matches,
/// the cues are summed per workflow and the highest sum wins if it reaches [`CUE_THRESHOLD`]
/// and no other workflow ties it: questions, symptoms and synonyms then still find their
/// workflow ("has grafana diverged from the repo?", "take it back", "spin up ...").
pub struct Cue {
    pub workflow: Workflow,
    pub pattern: &'static str,
    pub weight: u32,
}

/// The least sum of cue weights that picks a workflow.
pub const CUE_THRESHOLD: u32 = 2;

pub const CUES: &[Cue] = &[
    // validate: is it correct, does it build
    Cue {
        workflow: Workflow::Validate,
        pattern: r"\b(?:valid|validat\w*|lint\w*|sanity[- ]?check\w*|well[- ]formed)\b",
        weight: 3,
    },
    Cue {
        workflow: Workflow::Validate,
        pattern: r"\b(?:schemas?|polic(?:y|ies)|kustomizations?|manifests?)\b",
        weight: 1,
    },
    Cue { workflow: Workflow::Validate, pattern: r"\b(?:builds?|render(?:s|ing)?|compiles?)\b", weight: 1 },
    Cue {
        workflow: Workflow::Validate,
        pattern: r"\b(?:broken|errors?|correct|ok|okay|fine|mistakes?|typos?)\b",
        weight: 1,
    },
    Cue { workflow: Workflow::Validate, pattern: r"\boverlays?\b|\bmake\s+sure\b|\bchecks?\b", weight: 1 },
    Cue {
        workflow: Workflow::Validate,
        pattern: r"\bin\s+(?:good|ok|okay|decent|working)\s+(?:shape|state|order)\b",
        weight: 2,
    },
    // drift: the live clusters against git
    Cue {
        workflow: Workflow::Drift,
        pattern: r"\bby\s+hand\b|\bmanual(?:ly)?\b|\bhand[- ]edit\w*|\bkubectl[- ]edit\w*|\bout[- ]of[- ]band\b",
        weight: 3,
    },
    Cue {
        workflow: Workflow::Drift,
        pattern: r"\b(?:differen\w*|differ|differs|diverg\w*|mismatch\w*|match(?:es|ing)?|skew\w*|deviat\w*|drift\w*)\b|\bout\s+of\s+sync\b",
        weight: 2,
    },
    Cue { workflow: Workflow::Drift, pattern: r"\b(?:live|running|clusters?)\b", weight: 1 },
    Cue { workflow: Workflow::Drift, pattern: r"\b(?:git|repo|repository)\b", weight: 1 },
    Cue { workflow: Workflow::Drift, pattern: r"\bwhat\s+changed\b|\bchange[sd]?\b", weight: 1 },
    // rollback: back to an earlier revision
    Cue {
        workflow: Workflow::Rollback,
        pattern: r"\broll(?:ed|ing)?[\s-]*back\b|\brollback\b|\brevert\w*|\bundo\b|\brestor\w*|\bdowngrad\w*|\bgo\s+back\b|\btake\s+(?:it|that|this)\s+back\b|\bput\s+.{0,40}\bback\b|\bback\s+to\s+(?:how|what|the\s+(?:previous|last|old))",
        weight: 3,
    },
    Cue {
        workflow: Workflow::Rollback,
        pattern: r"\b(?:previous|last\s+good|last\s+healthy|last\s+working|earlier|old)\s+(?:version|revision|release|state|deploy\w*)\b",
        weight: 2,
    },
    Cue {
        workflow: Workflow::Rollback,
        pattern: r"\b(?:since|after)\s+the\s+(?:last\s+|latest\s+|new\s+)?(?:deploy\w*|release|rollout|upgrade)\b|\bthrowing\s+\w+|\b5\d\ds\b|\bcrash\w*",
        weight: 1,
    },
    // create: a new app
    Cue {
        workflow: Workflow::Create,
        pattern: r"\b(?:create|scaffold|onboard|bootstrap|spin\s+up|stand\s+up|provision)\b|\bnew\s+(?:app(?:lication)?|service|workload|microservice)\b",
        weight: 3,
    },
    Cue { workflow: Workflow::Create, pattern: r"\bimage\b", weight: 1 },
    // migrate: one dependency for another
    Cue {
        workflow: Workflow::Migrate,
        pattern: r"\bmigrat\w*|\bmov\w*\s+off\b|\bswap\w*|\breplac\w*|\bretir\w*|\bin\s+fav(?:ou)?r\s+of\b|\bswitch\w*\s+(?:from|to|over)\b|\s(?:->|→|=>)\s",
        weight: 3,
    },
    // commit message: the staged change
    Cue { workflow: Workflow::Commit, pattern: r"\bcommit\s+(?:message|msg)\b", weight: 3 },
    Cue { workflow: Workflow::Commit, pattern: r"\bcommit(?:s|ted)?\b", weight: 2 },
    Cue { workflow: Workflow::Commit, pattern: r"\bstaged\b|\bstaging\s+area\b|\bgit\s+add\b", weight: 2 },
    // harmonize: one setting the same everywhere
    Cue {
        workflow: Workflow::Harmonize,
        pattern: r"\bharmoni[sz]\w*|\bconsisten\w*|\bstandardi[sz]\w*|\bnormali[sz]\w*|\bunif(?:y|orm)\w*|\balign\w*",
        weight: 3,
    },
    Cue {
        workflow: Workflow::Harmonize,
        pattern: r"\b(?:all|every|each)\s+(?:(?:of\s+)?(?:the|our)\s+)?(?:ingress\w*|deployments?|services?|statefulsets?|daemonsets?|configmaps?|cronjobs?|jobs?)\b",
        weight: 2,
    },
    Cue { workflow: Workflow::Harmonize, pattern: r"\b(?:annotations?|annotate|labels?)\b", weight: 1 },
    Cue { workflow: Workflow::Harmonize, pattern: r"\btls\s*v?1\.[0-3]\b|\bhttps\b|\bssl\b", weight: 1 },
];

/// Slot values found anywhere in the text once the workflow is known. Applied, in order, to
/// slots the workflow has and nothing has filled yet; the group `v` is the value.
pub struct Extractor {
    pub slot: &'static str,
    pub pattern: &'static str,
    /// Take every match (lists), not just the first.
    pub all: bool,
}

pub const EXTRACTORS: &[Extractor] = &[
    // "overriding (all) (the) documented exceptions": every one the plan lists
    Extractor {
        slot: "override_exceptions",
        pattern: r"\boverrid(?:e|es|ing)\s+(?:the\s+)?(?P<v>all|every|each|documented)\b(?:\s+(?:the\s+)?(?:documented\s+)?)?exceptions?\b",
        all: false,
    },
    Extractor { slot: "reason", pattern: r"\breason\s*(?:is\s*)?[:=]?\s*(?P<v>.+?)\s*$", all: false },
    Extractor { slot: "reason", pattern: r"\bbecause\s+(?P<v>.+?)\s*$", all: false },
    Extractor { slot: "reason", pattern: r"\bfor\s+(?P<v>(?-i:[A-Z][A-Z0-9]+-[0-9]+(?:-[0-9]+)*))\b", all: false },
    Extractor {
        slot: "reason",
        pattern: r"\b(?:ticket|issue|jira|change\s+request)\b\s*[:=#]?\s*(?P<v>(?-i:[A-Z][A-Z0-9]+-[0-9]+(?:-[0-9]+)*))\b",
        all: false,
    },
    Extractor { slot: "refs", pattern: r"(?-i:\b(?P<v>[A-Z][A-Z0-9]+-[0-9]+(?:-[0-9]+)*)\b)", all: true },
    Extractor { slot: "image", pattern: r"\bimage\s*[:=]?\s*(?P<v>[^\s,]+)", all: false },
    Extractor { slot: "image", pattern: r"\busing\s+(?P<v>[^\s,]+:[^\s,]+)", all: false },
    Extractor { slot: "namespace", pattern: r"\bnamespace\s*[:=]?\s*(?P<v>[a-z0-9-]+)", all: false },
    Extractor { slot: "namespace", pattern: r"\bin\s+(?:the\s+)?(?P<v>[a-z0-9-]+)\s+namespace\b", all: false },
    Extractor { slot: "port", pattern: r"\bport\s*[:=]?\s*(?P<v>[0-9]+)", all: false },
    Extractor { slot: "to", pattern: r"\bto\s+(?:revision|commit|version|rev|sha)\s+(?P<v>[^\s,]+)", all: false },
    Extractor { slot: "to", pattern: r"\bto\s+(?P<v>[0-9a-f]{7,40})\b", all: false },
    Extractor { slot: "name", pattern: r"\b(?:named|matching)\s+(?P<v>[^\s,]+)", all: false },
    // an environment named as one, even when the repo has no such environment (so that
    // "validate the qa environment" is an error, not a run over every environment)
    Extractor { slot: "env", pattern: r"\b(?P<v>[a-z][a-z0-9-]*)\s+(?:env|environment|cluster)\b", all: false },
    Extractor { slot: "env", pattern: r"\b(?:envs?|environments?)\b\s*[:=]?\s*(?P<v>[a-z][a-z0-9-]*)", all: false },
    Extractor { slot: "envs", pattern: r"\b(?P<v>[a-z][a-z0-9-]*)\s+(?:env|environment|cluster)\b", all: false },
    Extractor { slot: "envs", pattern: r"\b(?:envs?|environments?)\b\s*[:=]?\s*(?P<v>[a-z][a-z0-9-]*)", all: false },
];

/// Words a capture may land on that are never values ("create an app for ...").
pub const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "with",
    "for",
    "in",
    "to",
    "on",
    "into",
    "using",
    "that",
    "which",
    "called",
    "named",
    "across",
    "from",
    "and",
    "app",
    "application",
    "service",
    "new",
    "please",
    "each",
    "this",
    "other",
    "any",
    "my",
    "our",
    "your",
    "same",
    "one",
    "is",
    "are",
];

/// "help", "what can you do".
pub const HELP: &str = r"^\W*(?:(?:hi|hello|hey)\b\W*)?(?:help|\?|what\s+can\s+you\s+do|what\s+do\s+you\s+do|commands|list\s+(?:the\s+)?(?:workflows|commands)|what\s+(?:workflows|commands)\s+(?:do\s+you\s+have|are\s+there|can\s+you\s+run|do\s+you\s+know)|how\s+do\s+i\s+use\s+(?:this|you|agentops|it))\W*$";

pub struct Compiled {
    pub refusals: Vec<(Regex, &'static Refusal)>,
    pub phrases: Vec<(Regex, &'static Phrase)>,
    pub cues: Vec<(Regex, &'static Cue)>,
    pub extractors: Vec<(Regex, &'static Extractor)>,
    pub help: Option<Regex>,
}

fn compile(p: &str) -> Option<Regex> {
    Regex::new(&format!("(?i){p}")).ok()
}

/// The tables compiled once. A row whose pattern does not compile is left out (a unit test
/// makes sure every row compiles).
pub static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    refusals: REFUSALS.iter().filter_map(|r| compile(r.pattern).map(|re| (re, r))).collect(),
    phrases: PHRASES.iter().filter_map(|r| compile(r.pattern).map(|re| (re, r))).collect(),
    cues: CUES.iter().filter_map(|r| compile(r.pattern).map(|re| (re, r))).collect(),
    extractors: EXTRACTORS.iter().filter_map(|r| compile(r.pattern).map(|re| (re, r))).collect(),
    help: compile(HELP),
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_compiles_and_names_real_slots() {
        let c = &*COMPILED;
        assert_eq!(c.refusals.len(), REFUSALS.len());
        assert_eq!(c.phrases.len(), PHRASES.len());
        assert_eq!(c.cues.len(), CUES.len());
        assert_eq!(c.extractors.len(), EXTRACTORS.len());
        assert!(c.help.is_some());
        for (re, row) in &c.phrases {
            for name in re.capture_names().flatten() {
                assert!(row.workflow.slot(name).is_some(), "{name} is not a slot of {:?}", row.workflow);
            }
            for (slot, _) in row.fixed {
                assert!(row.workflow.slot(slot).is_some(), "{slot} is not a slot of {:?}", row.workflow);
            }
        }
        for (re, _) in &c.extractors {
            assert!(re.capture_names().flatten().any(|n| n == "v"));
        }
    }
}
