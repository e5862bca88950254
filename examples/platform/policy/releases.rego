# Release candidates and other pre-releases run in dev and staging, never in prod: a prod
# overlay's `images:` entry must name a final release.
package acme.releases

prerelease_markers := ["-rc", "-alpha", "-beta", "-snapshot", "-dev"]

containers contains c if {
	some c in input.spec.template.spec.containers
}

containers contains c if {
	some c in input.spec.template.spec.initContainers
}

containers contains c if {
	some c in input.spec.jobTemplate.spec.template.spec.containers
}

# The tag of an image reference (nothing for a digest-only reference).
tag(image) := t if {
	not contains(image, "@")
	parts := split(image, ":")
	count(parts) > 1
	t := parts[count(parts) - 1]
	not contains(t, "/")
}

deny contains msg if {
	startswith(data.agentops.env, "prod")
	some c in containers
	t := tag(c.image)
	some marker in prerelease_markers
	contains(lower(t), marker)
	msg := sprintf("container %q runs the pre-release %s in %s; promote a final release", [c.name, c.image, data.agentops.env])
}
