//! Container image references (`[registry[:port]/]path[:tag][@digest]`), read the way the
//! container runtime and the API server's defaulting read them: a `:` names a tag only after
//! the last `/`, so `registry:5000/app` has no tag and `app:1` has tag `1`.

/// The parts of an image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Registry and path, without tag or digest.
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// Splits an image reference into name, tag and digest. Empty parts are `None`.
pub fn parse(image: &str) -> ImageRef<'_> {
    let image = image.trim();
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d).filter(|d| !d.is_empty())),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            let tag = &rest[at + 1..];
            ImageRef { name: &rest[..at], tag: Some(tag).filter(|t| !t.is_empty()), digest }
        }
        None => ImageRef { name: rest, tag: None, digest },
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(parse("nginx"), ImageRef { name: "nginx", tag: None, digest: None });
        assert_eq!(parse("nginx:1.27"), ImageRef { name: "nginx", tag: Some("1.27"), digest: None });
        assert_eq!(parse("app:1"), ImageRef { name: "app", tag: Some("1"), digest: None });
        assert_eq!(
            parse("registry.example.com:5000/team/app"),
            ImageRef { name: "registry.example.com:5000/team/app", tag: None, digest: None }
        );
        assert_eq!(
            parse("registry.example.com:5000/team/app:2.0@sha256:abc"),
            ImageRef { name: "registry.example.com:5000/team/app", tag: Some("2.0"), digest: Some("sha256:abc") }
        );
        assert_eq!(parse("app@sha256:abc"), ImageRef { name: "app", tag: None, digest: Some("sha256:abc") });
        assert_eq!(parse("app:"), ImageRef { name: "app", tag: None, digest: None });
        assert_eq!(parse(""), ImageRef { name: "", tag: None, digest: None });
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
}
