# Public hostnames live under the company domain, where DNS and certificates are managed.
package acme.ingress

deny contains msg if {
	input.kind == "Ingress"
	some rule in input.spec.rules
	not endswith(rule.host, ".acme.example")
	msg := sprintf("Ingress %s serves %q, outside acme.example", [input.metadata.name, rule.host])
}
