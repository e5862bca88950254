//! The audit log of the mock API server: one `audit.k8s.io/v1` Event per mutating request, as
//! a JSON line, in the shape the real API server's log backend writes at level Metadata. Users
//! come from bearer tokens: `mock:<username>` is that user, anything else is anonymous.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::error::Error;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub groups: Vec<String>,
}

impl User {
    /// The user of an `Authorization` header value.
    pub fn from_authorization(header: Option<&str>) -> User {
        let token = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))).map(str::trim);
        match token.and_then(|t| t.strip_prefix("mock:")).filter(|u| !u.is_empty()) {
            Some(name) => {
                let mut groups = Vec::new();
                if name == "admin" {
                    groups.push("system:masters".to_string());
                }
                groups.push("system:authenticated".to_string());
                User { username: name.to_string(), groups }
            }
            None => User { username: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()] },
        }
    }
}

/// One request, as the audit event describes it.
#[derive(Debug, Clone)]
pub struct Record {
    pub request_uri: String,
    pub verb: String,
    pub user: User,
    pub source_ip: String,
    pub user_agent: Option<String>,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub api_group: String,
    pub api_version: String,
    pub subresource: Option<String>,
    /// The response Status for failures, `None` on success.
    pub failure: Option<Value>,
    pub code: u16,
    pub received: String,
    pub completed: String,
}

impl Record {
    pub fn to_event(&self, cluster: &str) -> Value {
        let mut object_ref = json!({"resource": self.resource});
        if let Some(ns) = &self.namespace {
            object_ref["namespace"] = json!(ns);
        }
        if let Some(n) = &self.name {
            object_ref["name"] = json!(n);
        }
        if !self.api_group.is_empty() {
            object_ref["apiGroup"] = json!(self.api_group);
        }
        object_ref["apiVersion"] = json!(self.api_version);
        if let Some(s) = &self.subresource {
            object_ref["subresource"] = json!(s);
        }
        let mut status = json!({"metadata": {}});
        if let Some(f) = &self.failure {
            for k in ["status", "message", "reason", "details"] {
                if let Some(v) = f.get(k) {
                    status[k] = v.clone();
                }
            }
        }
        status["code"] = json!(self.code);
        let mut ev = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": super::util::new_uid(),
            "stage": "ResponseComplete",
            "requestURI": self.request_uri,
            "verb": self.verb,
            "user": {"username": self.user.username, "groups": self.user.groups},
            "sourceIPs": [self.source_ip],
        });
        if let Some(ua) = &self.user_agent {
            ev["userAgent"] = json!(ua);
        }
        ev["objectRef"] = object_ref;
        ev["responseStatus"] = status;
        ev["requestReceivedTimestamp"] = json!(self.received);
        ev["stageTimestamp"] = json!(self.completed);
        ev["annotations"] = json!({
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": "",
            "agentops.dev/cluster": cluster,
        });
        ev
    }
}

/// An append-only JSON-lines file; clusters of a fleet may share one.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<AuditLog, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(AuditLog { path: path.to_path_buf(), file: Arc::new(Mutex::new(file)) })
    }

    /// Appends one event; a failing write is a warning event and never fails the request.
    pub fn write(&self, event: &Value) {
        let mut line = event.to_string();
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_all(line.as_bytes()).and_then(|_| f.flush()) {
            tracing::warn!(path = %self.path.display(), error = %e, "mock cluster cannot write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_from_tokens() {
        let admin = User::from_authorization(Some("Bearer mock:admin"));
        assert_eq!(admin.username, "admin");
        assert_eq!(admin.groups, vec!["system:masters", "system:authenticated"]);
        let alice = User::from_authorization(Some("Bearer mock:alice@example.com"));
        assert_eq!(alice.username, "alice@example.com");
        assert_eq!(User::from_authorization(Some("Bearer xyz")).username, "system:anonymous");
        assert_eq!(User::from_authorization(None).groups, vec!["system:unauthenticated"]);
    }
}
