# Every workload says which product it belongs to, so cost reports and incident routing
# can group it (the bases set it through their kustomization's `labels:`).
package acme.ownership

workload_kinds := {"Deployment", "StatefulSet", "DaemonSet", "CronJob"}

deny contains msg if {
	workload_kinds[input.kind]
	not input.metadata.labels["app.kubernetes.io/part-of"]
	msg := sprintf("%s %s has no app.kubernetes.io/part-of label", [input.kind, input.metadata.name])
}
