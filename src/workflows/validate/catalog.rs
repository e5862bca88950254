//! Every check id validate reports, what it checks, how to fix it, and its default severity
//! per environment class. The ids are stable: suppressions, `.agentops.yaml` and SARIF rules
//! name them. Where kube-linter or Polaris has the same check, the id is kube-linter's.

use crate::config::{ClassSeverity, Level, Policies, Severity};

/// One check.
#[derive(Debug, Clone, Copy)]
pub struct CheckInfo {
    pub id: &'static str,
    /// What it checks (SARIF shortDescription).
    pub summary: &'static str,
    /// How to fix a finding (SARIF help).
    pub help: &'static str,
    /// Default level in dev, staging and prod; `None` for the checks configured by their own
    /// `policies:` keys (required-labels, resource-limits, ...) or not configurable at all.
    pub defaults: Option<[Level; 3]>,
}

use Level::{Error as E, Info as I, Off as O, Warning as W};

const fn check(id: &'static str, summary: &'static str, help: &'static str, d: [Level; 3]) -> CheckInfo {
    CheckInfo { id, summary, help, defaults: Some(d) }
}

const fn fixed(id: &'static str, summary: &'static str, help: &'static str) -> CheckInfo {
    CheckInfo { id, summary, help, defaults: None }
}

/// Every check, in the order docs/validate.md lists them.
pub const CATALOG: &[CheckInfo] = &[
    fixed("yaml-syntax", "YAML files parse", "Fix the YAML syntax error at the line given."),
    fixed("kustomize-build", "Every overlay builds with kustomize", "Fix the kustomization or the file it names."),
    fixed(
        "schema",
        "Objects match the strict Kubernetes or CRD schema",
        "Fix the field name or type; add the CustomResourceDefinition of a custom kind to the repo.",
    ),
    fixed(
        "required-labels",
        "Objects carry the required labels",
        "Add the label, e.g. through the kustomization's `labels:`.",
    ),
    fixed("resource-limits", "Containers declare cpu and memory limits", "Set resources.limits on the container."),
    fixed("image-tag", "Images are pinned (no :latest, no untagged)", "Pin a version tag or a digest."),
    fixed(
        "network-policy",
        "Every workload is selected by a NetworkPolicy",
        "Add a NetworkPolicy to the overlay whose podSelector selects the workload's pods.",
    ),
    fixed("argocd-path", "Argo CD Applications point at existing paths", "Fix spec.source.path or create the overlay."),
    fixed(
        "cluster-prereq",
        "The target cluster has the StorageClasses, CRDs and IngressClasses the objects need",
        "Install what is missing in the cluster or change the object to use what is there.",
    ),
    check(
        "privileged-container",
        "Containers do not run privileged",
        "Remove securityContext.privileged: true; grant the one capability needed instead.",
        [E, E, E],
    ),
    check(
        "privilege-escalation-container",
        "Containers set allowPrivilegeEscalation: false (unset means allowed)",
        "Set securityContext.allowPrivilegeEscalation: false on the container.",
        [W, E, E],
    ),
    check(
        "run-as-non-root",
        "Containers run as a non-root user (runAsNonRoot: true or a non-zero runAsUser, pod or container level)",
        "Set securityContext.runAsNonRoot: true and a non-zero runAsUser on the pod or the container.",
        [W, E, E],
    ),
    check(
        "no-read-only-root-fs",
        "Containers run with a read-only root filesystem",
        "Set securityContext.readOnlyRootFilesystem: true; mount an emptyDir where the app writes.",
        [W, W, E],
    ),
    check(
        "added-capabilities",
        "Containers add no Linux capabilities beyond NET_BIND_SERVICE (the Pod Security Standards' restricted profile)",
        "Remove the capability from securityContext.capabilities.add, or allow it under `policies: added-capabilities: allow:`.",
        [W, E, E],
    ),
    check("host-network", "Pods do not share the host's network namespace", "Remove hostNetwork: true.", [E, E, E]),
    check("host-pid", "Pods do not share the host's process namespace", "Remove hostPID: true.", [E, E, E]),
    check("host-ipc", "Pods do not share the host's IPC namespace", "Remove hostIPC: true.", [E, E, E]),
    check(
        "host-path",
        "Pods mount no hostPath volumes",
        "Use an emptyDir, a PersistentVolumeClaim or a ConfigMap instead; allow a path under `policies: host-path: allow:`.",
        [W, E, E],
    ),
    check(
        "host-port",
        "Containers bind no host ports",
        "Remove ports[].hostPort and expose the port through a Service.",
        [W, W, E],
    ),
    check(
        "no-liveness-probe",
        "Long-running containers have a liveness probe",
        "Add a livenessProbe (httpGet, tcpSocket, grpc or exec).",
        [O, W, W],
    ),
    check(
        "no-readiness-probe",
        "Long-running containers have a readiness probe",
        "Add a readinessProbe so Services send traffic only to ready pods.",
        [O, W, E],
    ),
    check(
        "probe-port",
        "Probes (liveness, readiness, startup) use a port the container declares, by name or number",
        "Point the probe at a declared port name or containerPort, or declare the port.",
        [W, E, E],
    ),
    check(
        "resource-requests",
        "Containers declare cpu and memory requests (a limit alone counts: Kubernetes copies it)",
        "Set resources.requests on the container.",
        [W, E, E],
    ),
    check(
        "dangling-service",
        "A Service's selector matches the pods of a workload in the same overlay and namespace",
        "Fix the Service's selector or the workload's pod labels.",
        [W, E, E],
    ),
    check(
        "service-target-port",
        "A Service's targetPorts exist on the pods it selects (named or numeric)",
        "Point targetPort at a port name or containerPort the selected containers declare.",
        [E, E, E],
    ),
    check(
        "non-existent-service-account",
        "Pods use a ServiceAccount the overlay creates, `default`, or one listed under `allow:`",
        "Add the ServiceAccount to the overlay, fix the name, or list it under `policies: non-existent-service-account: allow:`.",
        [W, E, E],
    ),
    check(
        "dangling-pdb",
        "A PodDisruptionBudget selects the pods of a workload in the same overlay and namespace",
        "Fix the PodDisruptionBudget's selector or the workload's pod labels.",
        [W, E, E],
    ),
    check(
        "pdb-min-available",
        "A PodDisruptionBudget's minAvailable is below the replicas of the workloads it selects (else no pod can ever be evicted)",
        "Lower minAvailable below the replica count, or use maxUnavailable: 1.",
        [W, E, E],
    ),
    check(
        "pdb-max-unavailable",
        "A PodDisruptionBudget's maxUnavailable is not 0 (else no pod can ever be evicted)",
        "Set maxUnavailable to 1 or more.",
        [W, E, E],
    ),
    check(
        "minimum-replicas",
        "Deployments and StatefulSets run at least 2 replicas (or an HorizontalPodAutoscaler's minReplicas)",
        "Raise replicas (the overlay's `replicas:` entry) or the HPA's minReplicas; `policies: minimum-replicas: min:` sets the number.",
        [O, O, E],
    ),
    check(
        "no-anti-affinity",
        "Workloads with several replicas spread them: pod anti-affinity or topologySpreadConstraints",
        "Add topologySpreadConstraints (or podAntiAffinity) over kubernetes.io/hostname or topology.kubernetes.io/zone.",
        [O, O, W],
    ),
    check(
        "env-var-secret",
        "No secret-looking environment variable (PASSWORD, TOKEN, SECRET, KEY, ...) has a literal value",
        "Move the value into a Secret and use valueFrom.secretKeyRef; list a harmless name under `allow:`.",
        [E, E, E],
    ),
    check(
        "wildcard-in-rules",
        "Roles and ClusterRoles grant no `*` verbs, resources or API groups",
        "List the verbs, resources and API groups the subject needs.",
        [W, E, E],
    ),
    check(
        "cluster-admin-role-binding",
        "No binding grants the cluster-admin ClusterRole",
        "Bind a role with only the permissions needed.",
        [E, E, E],
    ),
    check(
        "ingress-tls",
        "Ingresses terminate TLS (spec.tls)",
        "Add spec.tls with the hosts and a certificate Secret (e.g. from cert-manager).",
        [I, W, E],
    ),
    fixed(
        "removed-api",
        "No object uses an apiVersion the target Kubernetes version no longer serves",
        "Move the object to the replacement apiVersion named in the finding.",
    ),
    fixed(
        "deprecated-api",
        "No object uses an apiVersion deprecated in the target Kubernetes version",
        "Move the object to the replacement apiVersion named in the finding before the version that removes it.",
    ),
    fixed(
        "rego",
        "Rego policy files parse and evaluate",
        "Fix the policy at the file and line given; findings of a policy carry the id rego/<package>.",
    ),
    fixed(
        "suppression",
        "Suppressions say why, name a known check and have a valid, future expiry date",
        "Give the suppression a reason (`check-id: reason`), fix the check id or the date, or remove it.",
    ),
];

/// The catalog entry of a check id (`rego/<package>` ids share `rego`'s).
pub fn info(id: &str) -> Option<&'static CheckInfo> {
    let id = if id.starts_with("rego/") { "rego" } else { id };
    CATALOG.iter().find(|c| c.id == id)
}

/// Whether `id` names a check (a built-in id, or a Rego policy's `rego/<package>`).
pub fn known(id: &str) -> bool {
    id.starts_with("rego/") || CATALOG.iter().any(|c| c.id == id)
}

/// Column of an environment class in the defaults: dev 0, prod 2, anything else (staging,
/// qa, classes agentops does not know) 1.
fn column(class: &str) -> usize {
    crate::repo::class_rank(class)
}

/// The severity of check `id` in an environment of class `class`, or `None` when it is off
/// there. Only for checks with class defaults.
pub fn severity(policies: &Policies, id: &str, class: &str) -> Option<Severity> {
    let info = CATALOG.iter().find(|c| c.id == id)?;
    let defaults = info.defaults?;
    let default = defaults[column(class)];
    let level = match policies.checks.get(id) {
        Some(p) if p.enabled == Some(false) => Level::Off,
        Some(p) => match &p.severity {
            Some(ClassSeverity::All(l)) => *l,
            Some(ClassSeverity::ByClass(m)) => *m.get(class).unwrap_or(&default),
            None => default,
        },
        None => default,
    };
    level.severity()
}

/// Keys under `policies:` that name no check: each an error naming the key and the known ids.
pub fn unknown_policy_keys(policies: &Policies) -> Vec<String> {
    policies
        .checks
        .keys()
        .filter(|k| !CATALOG.iter().any(|c| c.id == k.as_str() && c.defaults.is_some()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for c in CATALOG {
            assert!(seen.insert(c.id), "{} twice", c.id);
            assert!(c.id.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'), "{}", c.id);
            assert!(!c.summary.is_empty() && !c.help.is_empty());
        }
    }

    #[test]
    fn prod_is_never_laxer_than_dev() {
        let rank = |l: Level| match l {
            Level::Off => 0,
            Level::Info => 1,
            Level::Warning => 2,
            Level::Error => 3,
        };
        for c in CATALOG {
            if let Some([dev, staging, prod]) = c.defaults {
                assert!(rank(dev) <= rank(staging) && rank(staging) <= rank(prod), "{}", c.id);
            }
        }
    }

    /// docs/validate.md lists every check id, with the default severities of the catalog.
    #[test]
    fn the_docs_list_every_check_with_its_defaults() {
        let doc = include_str!("../../../docs/validate.md");
        let name = |l: Level| match l {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Off => "off",
        };
        for c in CATALOG {
            let row = doc.lines().find(|l| l.starts_with(&format!("| `{}` |", c.id)));
            let row = row.unwrap_or_else(|| panic!("docs/validate.md has no row for {}", c.id));
            if let Some([dev, staging, prod]) = c.defaults {
                let tail = format!("| {} | {} | {} |", name(dev), name(staging), name(prod));
                assert!(row.ends_with(&tail), "{}: expected {tail} in\n{row}", c.id);
            }
        }
    }

    /// The `policies:` of docs/configuration.md's example name known checks, and its
    /// suppressions are usable.
    #[test]
    fn the_documented_policies_are_valid() {
        let doc = include_str!("../../../docs/configuration.md");
        let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
        let end = start + doc[start..].find("```").expect("its end");
        let c = crate::config::Config::parse(&doc[start..end]).unwrap_or_else(|e| panic!("{e}"));
        assert!(unknown_policy_keys(&c.policies).is_empty(), "{:?}", unknown_policy_keys(&c.policies));
        assert!(!c.policies.checks.is_empty());
        let (rules, findings) =
            super::super::suppress::rules(&c.policies.suppressions, Some(&doc[start..end]), "2026-01-01");
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(rules.len(), c.policies.suppressions.len());
        assert!(c.environments.values().any(|e| e.kubernetes_version.is_some()));
    }

    #[test]
    fn severities_by_class_and_overrides() {
        let p = crate::config::Config::parse(
            "policies:\n  run-as-non-root: {severity: warning}\n  ingress-tls: {severity: {prod: warning, dev: off}}\n  host-port: {enabled: false}\n",
        )
        .unwrap()
        .policies;
        assert_eq!(severity(&p, "run-as-non-root", "prod"), Some(Severity::Warning));
        assert_eq!(severity(&p, "ingress-tls", "prod"), Some(Severity::Warning));
        assert_eq!(severity(&p, "ingress-tls", "dev"), None);
        assert_eq!(severity(&p, "ingress-tls", "staging"), Some(Severity::Warning), "default kept");
        assert_eq!(severity(&p, "host-port", "prod"), None);
        let d = Policies::default();
        assert_eq!(severity(&d, "minimum-replicas", "dev"), None);
        assert_eq!(severity(&d, "minimum-replicas", "prod"), Some(Severity::Error));
        assert_eq!(severity(&d, "privilege-escalation-container", "qa"), Some(Severity::Error));
        assert!(unknown_policy_keys(&p).is_empty());
        let bad = crate::config::Config::parse("policies:\n  run-as-root: {enabled: false}\n").unwrap().policies;
        assert_eq!(unknown_policy_keys(&bad), vec!["run-as-root"]);
    }
}
