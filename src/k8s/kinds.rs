//! Kind words: what people call a kind ("ingresses", "svc", "hpa") and the canonical kind
//! they mean. The rules planner reads slots with it; harmonize reads its `kind` argument.

/// Kind words people use, and the kind they mean.
const KINDS: &[(&[&str], &str)] = &[
    (&["ingress", "ingresses", "ing"], "Ingress"),
    (&["deployment", "deployments", "deploy", "deploys"], "Deployment"),
    (&["service", "services", "svc"], "Service"),
    (&["statefulset", "statefulsets", "sts"], "StatefulSet"),
    (&["daemonset", "daemonsets", "ds"], "DaemonSet"),
    (&["configmap", "configmaps", "cm"], "ConfigMap"),
    (&["cronjob", "cronjobs"], "CronJob"),
    (&["job", "jobs"], "Job"),
    (&["networkpolicy", "networkpolicies", "netpol", "netpols"], "NetworkPolicy"),
    (&["horizontalpodautoscaler", "horizontalpodautoscalers", "hpa", "hpas"], "HorizontalPodAutoscaler"),
    (&["poddisruptionbudget", "poddisruptionbudgets", "pdb", "pdbs"], "PodDisruptionBudget"),
    (&["serviceaccount", "serviceaccounts", "sa"], "ServiceAccount"),
    (&["namespace", "namespaces", "ns"], "Namespace"),
    (&["persistentvolumeclaim", "persistentvolumeclaims", "pvc", "pvcs"], "PersistentVolumeClaim"),
    (&["servicemonitor", "servicemonitors"], "ServiceMonitor"),
    (&["application", "applications"], "Application"),
    (&["secret", "secrets"], "Secret"),
];

/// The canonical kind for a word ("ingresses" → Ingress); CamelCase kinds pass as they are.
pub fn normalize_kind(word: &str) -> Option<String> {
    let w = word.trim().trim_end_matches(['.', ',', ';']);
    let lower = w.to_ascii_lowercase();
    if let Some((_, k)) = KINDS.iter().find(|(words, _)| words.contains(&lower.as_str())) {
        return Some(k.to_string());
    }
    let camel =
        w.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && w.chars().all(|c| c.is_ascii_alphanumeric());
    camel.then(|| w.to_string())
}

#[cfg(test)]
mod tests {
    use super::normalize_kind;

    #[test]
    fn words_plurals_and_short_names_name_kinds() {
        assert_eq!(normalize_kind("ingresses").as_deref(), Some("Ingress"));
        assert_eq!(normalize_kind("Deploy,").as_deref(), Some("Deployment"));
        assert_eq!(normalize_kind(" hpa ").as_deref(), Some("HorizontalPodAutoscaler"));
        assert_eq!(normalize_kind("Rollout").as_deref(), Some("Rollout"), "CamelCase kinds pass");
        assert_eq!(normalize_kind("rollout"), None);
        assert_eq!(normalize_kind("Cron-Job"), None);
    }
}
