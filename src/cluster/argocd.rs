//! Argo CD Applications in a cluster: the one place agentops reads them, asks for a sync (the
//! `operation.sync` write `argocd app sync --core` makes) and waits for its result. Drift,
//! rollback and the tools use it; the simulated Argo CD is the other side of it.

use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiCapabilities, ApiResource};
use serde_json::Value;

use super::{ClusterError, dynamic_api, object_json, resolve, with_retry};

pub const API_VERSION: &str = "argoproj.io/v1alpha1";
/// Field manager of every write agentops makes to a cluster.
pub const MANAGER: &str = "agentops";

/// The Applications of one namespace of a cluster.
pub struct Applications {
    api: Api<DynamicObject>,
    ar: ApiResource,
    namespace: String,
}

impl Applications {
    /// Finds the Application resource by discovery; a cluster without it is an error saying
    /// Argo CD may not be installed.
    pub async fn discover(client: &Client, namespace: &str) -> Result<Applications, ClusterError> {
        let (ar, caps) = resolve(client, "Application", Some(API_VERSION)).await.map_err(|e| {
            let hint = |m: String| format!("{m} (is Argo CD installed in this cluster?)");
            match e {
                ClusterError::NotFound(m) => ClusterError::NotFound(hint(m)),
                ClusterError::Api(m) => ClusterError::Api(hint(m)),
                other => other,
            }
        })?;
        Ok(Applications::with(client, &ar, &caps, namespace))
    }

    /// The Applications of `namespace`, with the resource already discovered.
    pub fn with(client: &Client, ar: &ApiResource, caps: &ApiCapabilities, namespace: &str) -> Applications {
        Applications {
            api: dynamic_api(client, ar, caps, Some(namespace)),
            ar: ar.clone(),
            namespace: namespace.into(),
        }
    }

    /// The Application; not found is an error naming it.
    pub async fn get(&self, name: &str) -> Result<Value, ClusterError> {
        match with_retry(|| self.api.get_opt(name)).await {
            Ok(Some(o)) => Ok(object_json(&o, &self.ar)),
            Ok(None) => Err(ClusterError::NotFound(format!("Application {}/{name} not found", self.namespace))),
            Err(e) => Err(ClusterError::Api(format!("Application {}/{name}: {e}", self.namespace))),
        }
    }

    /// The Application, or None when there is no such Application.
    pub async fn get_opt(&self, name: &str) -> Result<Option<Value>, ClusterError> {
        Ok(with_retry(|| self.api.get_opt(name)).await?.map(|o| object_json(&o, &self.ar)))
    }

    /// Asks Argo CD to sync an Application. The operation carries the Application's sync
    /// options, as Argo CD's API server copies them; `replace` adds `Replace=true` for this
    /// one operation (objects are replaced whole instead of merged, which drops every field
    /// git does not set, whoever wrote it).
    pub async fn request_sync(&self, name: &str, revision: Option<&str>, replace: bool) -> Result<Value, ClusterError> {
        let app = object_json(&with_retry(|| self.api.get(name)).await?, &self.ar);
        let mut options: Vec<Value> =
            app.pointer("/spec/syncPolicy/syncOptions").and_then(Value::as_array).cloned().unwrap_or_default();
        if replace && !options.iter().any(|o| o == "Replace=true") {
            options.push(Value::String("Replace=true".into()));
        }
        let mut sync = serde_json::json!({"syncOptions": options});
        if let Some(r) = revision {
            sync["revision"] = Value::String(r.into());
        }
        let patch = serde_json::json!({"operation": {"sync": sync, "initiatedBy": {"username": MANAGER}}});
        let pp = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        let body = Patch::Merge(&patch);
        let o = with_retry(|| self.api.patch(name, &pp, &body)).await?;
        Ok(object_json(&o, &self.ar))
    }

    /// Waits until an Application's requested operation has finished; its final
    /// operationState.
    pub async fn wait_for_sync(&self, name: &str, timeout: Duration) -> Result<Value, ClusterError> {
        let started = Instant::now();
        loop {
            let app = object_json(&with_retry(|| self.api.get(name)).await?, &self.ar);
            let pending = app.get("operation").is_some_and(|o| !o.is_null());
            let phase = app.pointer("/status/operationState/phase").and_then(Value::as_str).unwrap_or_default();
            if !pending && !phase.is_empty() && phase != "Running" {
                return Ok(app.pointer("/status/operationState").cloned().unwrap_or(Value::Null));
            }
            if started.elapsed() > timeout {
                return Err(ClusterError::Timeout(timeout));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
