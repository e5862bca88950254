//! Container image references (`[registry[:port]/]path[:tag][@digest]`), read the way the
//! container runtime and the API server's defaulting read them: a `:` names a tag only after
//! the last `/`, so `registry:5000/app` has no tag and `app:1` has tag `1`. Every place that
//! reads an image reference (create, validate's image-tag policy, commit drafting, kustomize
//! `images:` lookups, the rules planner's slot check, the API defaults) goes through `parse`.

use std::sync::LazyLock;

use regex::Regex;

/// The parts of an image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Registry and path, without tag or digest: what kustomize's `images:` entries match.
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl ImageRef<'_> {
    /// What follows the name: `tag`, `digest` or `tag@digest`; `latest` when neither is given,
    /// as the runtime reads it.
    pub fn version(&self) -> String {
        match (self.tag, self.digest) {
            (Some(t), Some(d)) => format!("{t}@{d}"),
            (Some(t), None) => t.to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => "latest".to_string(),
        }
    }
}

/// Splits an image reference into name, tag and digest. Empty parts are `None`.
pub fn parse(image: &str) -> ImageRef<'_> {
    let image = image.trim();
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d).filter(|d| !d.is_empty())),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (&rest[..at], Some(&rest[at + 1..]).filter(|t| !t.is_empty()))
        }
        None => (rest, None),
    };
    ImageRef { name, tag, digest }
}

/// The image pull policy the API server defaults for a container of this image: `Always` for
/// the `latest` tag or no tag (which means `latest`) without a digest, `IfNotPresent` otherwise.
pub fn default_pull_policy(image: &str) -> &'static str {
    let r = parse(image);
    match (r.tag, r.digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

/// The syntax of a reference a person may type: lower-case path components, an optional
/// registry host with port, a tag of at most 128 characters, a sha256 digest.
static SYNTAX: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
        .ok()
});

/// Checks an image reference someone asks for: well formed, with an explicit tag or digest,
/// never `latest`.
pub fn check_pinned(image: &str) -> Result<(), String> {
    if !SYNTAX.as_ref().is_some_and(|r| r.is_match(image)) {
        return Err(format!("\"{image}\" is not an image reference (REPO:TAG or REPO@sha256:DIGEST)"));
    }
    let r = parse(image);
    match (r.tag, r.digest) {
        (None, None) => {
            Err(format!("image \"{image}\" has no tag: give an explicit tag or digest, e.g. {image}:1.0.0"))
        }
        (Some("latest"), None) => Err(format!("image \"{image}\" uses :latest: pin an explicit version tag or digest")),
        _ => Ok(()),
    }
}

/// Why an image found in a manifest is not pinned, if it is not: validate's image-tag policy.
pub fn pin_problem(image: &str) -> Option<String> {
    if image.is_empty() {
        return Some("no image".into());
    }
    if image.contains('@') {
        return None;
    }
    match parse(image).tag {
        Some("latest") => Some(format!("image {image:?} uses :latest; pin a version")),
        Some(_) => None,
        // `app:` parses as no tag; say what is there.
        None if image.trim_end().ends_with(':') => Some(format!("image {image:?} has an empty tag")),
        None => Some(format!("image {image:?} has no tag; pin a version")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(r: &ImageRef<'a>) -> (&'a str, Option<&'a str>, Option<&'a str>) {
        (r.name, r.tag, r.digest)
    }

    #[test]
    fn a_colon_is_a_tag_only_after_the_last_slash() {
        assert_eq!(parse("nginx"), ImageRef { name: "nginx", tag: None, digest: None });
        assert_eq!(parts(&parse("nginx:1.27")), ("nginx", Some("1.27"), None));
        assert_eq!(parts(&parse("app:1")), ("app", Some("1"), None));
        assert_eq!(
            parts(&parse("registry.example.com:5000/team/app")),
            ("registry.example.com:5000/team/app", None, None)
        );
        assert_eq!(
            parts(&parse("registry.example.com:5000/team/app:2.0@sha256:abc")),
            ("registry.example.com:5000/team/app", Some("2.0"), Some("sha256:abc"))
        );
        assert_eq!(parts(&parse("app@sha256:abc")), ("app", None, Some("sha256:abc")));
        assert_eq!(parts(&parse("app:1@sha256:abc")), ("app", Some("1"), Some("sha256:abc")));
        assert_eq!(parts(&parse("localhost:5000/app")), ("localhost:5000/app", None, None));
        assert_eq!(parts(&parse("ghcr.io/a/b:1.2")), ("ghcr.io/a/b", Some("1.2"), None));
        assert_eq!(parts(&parse(" nginx:1 ")), ("nginx", Some("1"), None));
        assert_eq!(parts(&parse("app:")), ("app", None, None));
        assert_eq!(parts(&parse("")), ("", None, None));
    }

    #[test]
    fn versions() {
        assert_eq!(parse("a/b").version(), "latest");
        assert_eq!(parse("reg:5000/a/b:1.2").version(), "1.2");
        assert_eq!(parse("a/b@sha256:x").version(), "sha256:x");
        assert_eq!(parse("a:1@sha256:x").version(), "1@sha256:x");
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:latest@sha256:abc"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("nginx@sha256:abc"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
    }

    #[test]
    fn requested_images_need_an_explicit_tag() {
        assert!(check_pinned("nginx:1.27").is_ok());
        assert!(check_pinned("quay.io/prometheus/prometheus:v2.53.0").is_ok());
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert!(check_pinned(&format!("registry:5000/team/app@{digest}")).is_ok());
        assert!(check_pinned(&format!("app:1@{digest}")).is_ok(), "tag and digest");
        assert!(check_pinned(&format!("app:latest@{digest}")).is_ok(), "the digest pins it");
        assert!(check_pinned("app@sha256:abc").is_err(), "a digest is 64 hex digits");
        assert!(check_pinned("nginx").unwrap_err().contains("no tag"));
        assert!(check_pinned("app:1").is_ok(), "a short tag is a tag, not a port");
        assert!(check_pinned("localhost:5000/team/app:1.0").is_ok());
        assert!(check_pinned("localhost:5000/app").unwrap_err().contains("no tag"));
        assert!(check_pinned("nginx:latest").unwrap_err().contains("latest"));
        assert!(check_pinned("Not An Image").is_err());
        assert!(check_pinned("Nginx:1").is_err(), "repositories are lower case");
    }

    #[test]
    fn manifest_images_are_pinned() {
        assert!(pin_problem("nginx").is_some_and(|p| p.contains("no tag")));
        assert!(pin_problem("nginx:latest").is_some_and(|p| p.contains(":latest")));
        assert!(pin_problem("nginx:").is_some_and(|p| p.contains("empty tag")));
        assert_eq!(pin_problem("").as_deref(), Some("no image"));
        assert!(pin_problem("registry:5000/team/app").is_some());
        assert!(pin_problem("registry:5000/team/app:1.2").is_none());
        assert!(pin_problem("ghcr.io/a/b@sha256:abc").is_none());
        assert!(pin_problem("redis:7.2.4").is_none());
    }
}
