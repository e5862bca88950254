//! Deprecated and removed API versions, from the Kubernetes "Deprecated API Migration Guide"
//! (kubernetes.io/docs/reference/using-api/deprecation-guide). An object whose apiVersion
//! the target version no longer serves is a `removed-api` error; one that the target still
//! serves but whose replacement is already there is a `deprecated-api` warning.

/// The newest Kubernetes minor version agentops knows (the schemas are generated for it).
pub const NEWEST: (u32, u32) = (1, 35);

/// One group/version of some kinds that a release stopped serving.
struct Removal {
    api_version: &'static str,
    kinds: &'static [&'static str],
    /// Minor version of the first release that no longer serves it.
    removed_in: u32,
    /// Minor version from which it counts as deprecated: the release that deprecated it, or
    /// the guide's "available since" of the replacement.
    deprecated_in: u32,
    /// What to use instead, as the guide says.
    replacement: &'static str,
}

const fn r(
    api_version: &'static str,
    kinds: &'static [&'static str],
    deprecated_in: u32,
    removed_in: u32,
    replacement: &'static str,
) -> Removal {
    Removal { api_version, kinds, removed_in, deprecated_in, replacement }
}

const REMOVALS: &[Removal] = &[
    // v1.16
    r("extensions/v1beta1", &["NetworkPolicy"], 8, 16, "networking.k8s.io/v1"),
    r("extensions/v1beta1", &["PodSecurityPolicy"], 10, 16, "policy/v1beta1"),
    r("extensions/v1beta1", &["DaemonSet", "Deployment", "ReplicaSet"], 9, 16, "apps/v1"),
    r("apps/v1beta1", &["Deployment", "StatefulSet", "ReplicaSet"], 9, 16, "apps/v1"),
    r("apps/v1beta2", &["DaemonSet", "Deployment", "StatefulSet", "ReplicaSet"], 9, 16, "apps/v1"),
    // v1.22
    r(
        "admissionregistration.k8s.io/v1beta1",
        &["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"],
        16,
        22,
        "admissionregistration.k8s.io/v1",
    ),
    r("apiextensions.k8s.io/v1beta1", &["CustomResourceDefinition"], 16, 22, "apiextensions.k8s.io/v1"),
    r("apiregistration.k8s.io/v1beta1", &["APIService"], 10, 22, "apiregistration.k8s.io/v1"),
    r("authentication.k8s.io/v1beta1", &["TokenReview"], 6, 22, "authentication.k8s.io/v1"),
    r(
        "authorization.k8s.io/v1beta1",
        &["LocalSubjectAccessReview", "SelfSubjectAccessReview", "SubjectAccessReview", "SelfSubjectRulesReview"],
        6,
        22,
        "authorization.k8s.io/v1",
    ),
    r("certificates.k8s.io/v1beta1", &["CertificateSigningRequest"], 19, 22, "certificates.k8s.io/v1"),
    r("coordination.k8s.io/v1beta1", &["Lease"], 14, 22, "coordination.k8s.io/v1"),
    r("extensions/v1beta1", &["Ingress"], 19, 22, "networking.k8s.io/v1"),
    r("networking.k8s.io/v1beta1", &["Ingress", "IngressClass"], 19, 22, "networking.k8s.io/v1"),
    r(
        "rbac.authorization.k8s.io/v1beta1",
        &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
        8,
        22,
        "rbac.authorization.k8s.io/v1",
    ),
    r("scheduling.k8s.io/v1beta1", &["PriorityClass"], 14, 22, "scheduling.k8s.io/v1"),
    r("storage.k8s.io/v1beta1", &["CSIDriver"], 19, 22, "storage.k8s.io/v1"),
    r("storage.k8s.io/v1beta1", &["CSINode"], 17, 22, "storage.k8s.io/v1"),
    r("storage.k8s.io/v1beta1", &["StorageClass"], 6, 22, "storage.k8s.io/v1"),
    r("storage.k8s.io/v1beta1", &["VolumeAttachment"], 13, 22, "storage.k8s.io/v1"),
    // v1.25
    r("batch/v1beta1", &["CronJob"], 21, 25, "batch/v1"),
    r("discovery.k8s.io/v1beta1", &["EndpointSlice"], 21, 25, "discovery.k8s.io/v1"),
    r("events.k8s.io/v1beta1", &["Event"], 19, 25, "events.k8s.io/v1"),
    r("autoscaling/v2beta1", &["HorizontalPodAutoscaler"], 23, 25, "autoscaling/v2"),
    r("policy/v1beta1", &["PodDisruptionBudget"], 21, 25, "policy/v1"),
    r(
        "policy/v1beta1",
        &["PodSecurityPolicy"],
        21,
        25,
        "no replacement API: Pod Security Admission (namespace labels) or a third-party admission webhook",
    ),
    r("node.k8s.io/v1beta1", &["RuntimeClass"], 20, 25, "node.k8s.io/v1"),
    // v1.26
    r(
        "flowcontrol.apiserver.k8s.io/v1beta1",
        &["FlowSchema", "PriorityLevelConfiguration"],
        23,
        26,
        "flowcontrol.apiserver.k8s.io/v1 (v1beta3 before v1.29)",
    ),
    r("autoscaling/v2beta2", &["HorizontalPodAutoscaler"], 23, 26, "autoscaling/v2"),
    // v1.27
    r("storage.k8s.io/v1beta1", &["CSIStorageCapacity"], 24, 27, "storage.k8s.io/v1"),
    // v1.29
    r(
        "flowcontrol.apiserver.k8s.io/v1beta2",
        &["FlowSchema", "PriorityLevelConfiguration"],
        26,
        29,
        "flowcontrol.apiserver.k8s.io/v1 (v1beta3 before v1.29)",
    ),
    // v1.32
    r(
        "flowcontrol.apiserver.k8s.io/v1beta3",
        &["FlowSchema", "PriorityLevelConfiguration"],
        29,
        32,
        "flowcontrol.apiserver.k8s.io/v1",
    ),
];

/// A Kubernetes version as `1.NN` (a patch part and a leading `v` are accepted).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let t = text.trim().trim_start_matches('v');
    let mut parts = t.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    if parts.next().is_some_and(|p| p.parse::<u32>().is_err()) {
        return None;
    }
    Some((major, minor))
}

/// What is wrong with `apiVersion` `kind` on Kubernetes `version`: (removed, message).
pub fn problem(api_version: &str, kind: &str, version: (u32, u32)) -> Option<(bool, String)> {
    let (major, minor) = version;
    let r = REMOVALS.iter().find(|r| r.api_version == api_version && r.kinds.contains(&kind))?;
    let v = format!("{major}.{minor}");
    if major > 1 || minor >= r.removed_in {
        Some((
            true,
            format!(
                "{kind} {api_version} is no longer served since Kubernetes 1.{} (target {v}): use {}",
                r.removed_in, r.replacement
            ),
        ))
    } else if minor >= r.deprecated_in {
        Some((
            false,
            format!(
                "{kind} {api_version} is deprecated in Kubernetes {v} and removed in 1.{}: use {}",
                r.removed_in, r.replacement
            ),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.29"), Some((1, 29)));
        assert_eq!(parse_version("v1.29.3"), Some((1, 29)));
        assert_eq!(parse_version("1"), None);
        assert_eq!(parse_version("1.x"), None);
    }

    #[test]
    fn removed_deprecated_and_fine() {
        let (removed, msg) = problem("policy/v1beta1", "PodDisruptionBudget", (1, 25)).unwrap();
        assert!(removed && msg.contains("policy/v1") && msg.contains("1.25"), "{msg}");
        let (removed, msg) = problem("policy/v1beta1", "PodDisruptionBudget", (1, 24)).unwrap();
        assert!(!removed && msg.contains("deprecated"), "{msg}");
        assert!(problem("policy/v1beta1", "PodDisruptionBudget", (1, 20)).is_none());
        assert!(problem("policy/v1", "PodDisruptionBudget", NEWEST).is_none());
        assert!(problem("batch/v1beta1", "CronJob", NEWEST).unwrap().0);
        // the kind matters: a group/version can hold kinds removed at different times
        assert!(problem("storage.k8s.io/v1beta1", "CSIStorageCapacity", (1, 26)).is_some_and(|p| !p.0));
        assert!(problem("storage.k8s.io/v1beta1", "StorageClass", (1, 26)).is_some_and(|p| p.0));
    }
}
