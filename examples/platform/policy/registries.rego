# Images come from our own registry or from the upstream images the platform team vetted.
# A new upstream image needs a review first: add its repository to `vetted` in the same PR.
package acme.registries

vetted := {
	"redis",
	"grafana/grafana",
	"quay.io/oliver006/redis_exporter",
}

containers contains c if {
	some c in input.spec.template.spec.containers
}

containers contains c if {
	some c in input.spec.template.spec.initContainers
}

containers contains c if {
	some c in input.spec.jobTemplate.spec.template.spec.containers
}

repository(image) := split(image, "@")[0] if contains(image, "@")

repository(image) := trim_suffix(image, concat("", [":", tag])) if {
	not contains(image, "@")
	parts := split(image, ":")
	count(parts) > 1
	tag := parts[count(parts) - 1]
	not contains(tag, "/")
}

repository(image) := image if {
	not contains(image, "@")
	not contains(image, ":")
}

deny contains msg if {
	some c in containers
	repo := repository(c.image)
	not startswith(repo, "ghcr.io/acme/")
	not vetted[repo]
	msg := sprintf("container %q uses %s, which is neither ghcr.io/acme nor a vetted upstream image", [c.name, c.image])
}

# Release candidates are for dev and staging.
warn contains msg if {
	startswith(data.agentops.env, "prod")
	some c in containers
	contains(c.image, "-rc.")
	msg := sprintf("container %q runs the release candidate %s in %s", [c.name, c.image, data.agentops.env])
}
