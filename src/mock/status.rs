//! API errors as the real API server writes them: `Status` objects with the same code, reason,
//! message and details shapes (`deployments.apps "web" not found`).

use serde_json::{Value, json};

use super::resources::Resource;

/// A failed API request; becomes a `Status` object on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    pub details: Option<Box<Value>>,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.reason, self.code, self.message)
    }
}

impl std::error::Error for StoreError {}

fn details(r: &Resource, name: &str) -> Value {
    let mut d = json!({"name": name});
    if !r.group.is_empty() {
        d["group"] = json!(r.group);
    }
    d["kind"] = json!(r.plural);
    d
}

impl StoreError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> StoreError {
        StoreError { code, reason: reason.into(), message: message.into(), details: None }
    }

    pub fn not_found(r: &Resource, name: &str) -> StoreError {
        StoreError {
            details: Some(Box::new(details(r, name))),
            ..StoreError::new(404, "NotFound", format!("{} \"{name}\" not found", r.qualified()))
        }
    }

    pub fn namespace_not_found(ns: &str) -> StoreError {
        StoreError {
            details: Some(Box::new(json!({"name": ns, "kind": "namespaces"}))),
            ..StoreError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
        }
    }

    pub fn already_exists(r: &Resource, name: &str) -> StoreError {
        StoreError {
            details: Some(Box::new(details(r, name))),
            ..StoreError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", r.qualified()))
        }
    }

    pub fn conflict(r: &Resource, name: &str) -> StoreError {
        StoreError {
            details: Some(Box::new(details(r, name))),
            ..StoreError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                     please apply your changes to the latest version and try again",
                    r.qualified()
                ),
            )
        }
    }

    /// 422 Invalid with one cause per (field, cause reason, message).
    pub fn invalid(r: &Resource, name: &str, causes: &[(&str, &str, String)]) -> StoreError {
        let text: Vec<String> = causes.iter().map(|(field, _, msg)| format!("{field}: {msg}")).collect();
        let text = if text.len() == 1 { text.join("") } else { format!("[{}]", text.join(", ")) };
        let mut d = json!({"name": name});
        if !r.group.is_empty() {
            d["group"] = json!(r.group);
        }
        d["kind"] = json!(r.kind);
        d["causes"] = causes
            .iter()
            .map(|(field, reason, msg)| json!({"reason": reason, "message": msg, "field": field}))
            .collect();
        StoreError {
            details: Some(Box::new(d)),
            ..StoreError::new(422, "Invalid", format!("{} \"{name}\" is invalid: {text}", r.qualified_kind()))
        }
    }

    pub fn bad_request(message: impl Into<String>) -> StoreError {
        StoreError::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> StoreError {
        StoreError::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    pub fn unsupported_media_type(content_type: &str) -> StoreError {
        StoreError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// The answer for a path no resource serves.
    pub fn no_route() -> StoreError {
        StoreError {
            details: Some(Box::new(
                json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}),
            )),
            ..StoreError::new(404, "NotFound", "the server could not find the requested resource")
        }
    }

    pub fn internal(message: impl Into<String>) -> StoreError {
        StoreError::new(500, "InternalError", message)
    }

    pub fn expired(message: impl Into<String>) -> StoreError {
        StoreError::new(410, "Expired", message)
    }

    /// The `Status` object of this error.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(d) = &self.details {
            s["details"] = (**d).clone();
        }
        s["code"] = json!(self.code);
        s
    }
}

/// The success `Status` a DELETE answers for most resources.
pub fn deleted_status(r: &Resource, name: &str, uid: &str) -> Value {
    let mut d = json!({"name": name});
    if !r.group.is_empty() {
        d["group"] = json!(r.group);
    }
    d["kind"] = json!(r.plural);
    d["uid"] = json!(uid);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}
