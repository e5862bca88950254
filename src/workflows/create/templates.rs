//! The app templates: built into the binary from `tools/templates/app/`, each overridable by
//! a file of the same name in the repo's `.agentops/templates/app/`.

use std::path::Path;

use handlebars::Handlebars;
use serde_json::Value;

use crate::error::{Error, Result};

/// (name, built-in text)
const BUILTIN: &[(&str, &str)] = &[
    ("base-kustomization", include_str!("../../../tools/templates/app/base-kustomization.yaml.hbs")),
    ("workload", include_str!("../../../tools/templates/app/workload.yaml.hbs")),
    ("serviceaccount", include_str!("../../../tools/templates/app/serviceaccount.yaml.hbs")),
    ("service", include_str!("../../../tools/templates/app/service.yaml.hbs")),
    ("ingress", include_str!("../../../tools/templates/app/ingress.yaml.hbs")),
    ("servicemonitor", include_str!("../../../tools/templates/app/servicemonitor.yaml.hbs")),
    ("networkpolicy", include_str!("../../../tools/templates/app/networkpolicy.yaml.hbs")),
    ("hpa", include_str!("../../../tools/templates/app/hpa.yaml.hbs")),
    ("pdb", include_str!("../../../tools/templates/app/pdb.yaml.hbs")),
    ("overlay-kustomization", include_str!("../../../tools/templates/app/overlay-kustomization.yaml.hbs")),
    ("overlay-resources", include_str!("../../../tools/templates/app/overlay-resources.yaml.hbs")),
];

pub struct Templates {
    hb: Handlebars<'static>,
}

impl Templates {
    /// The built-in templates, with the repo's overrides.
    pub fn load(repo_root: &Path) -> Result<Templates> {
        let mut hb = Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        hb.set_strict_mode(true);
        for (name, text) in BUILTIN {
            let custom = repo_root.join(".agentops/templates/app").join(format!("{name}.yaml.hbs"));
            let (text, origin) =
                match crate::config::limits::read_text(&custom, crate::config::limits::DEFAULT_FILE_BYTES) {
                    Ok(t) => (t, custom.display().to_string()),
                    Err(_) => (text.to_string(), format!("tools/templates/app/{name}.yaml.hbs")),
                };
            hb.register_template_string(name, text).map_err(|e| Error::Usage(format!("template {origin}: {e}")))?;
        }
        Ok(Templates { hb })
    }

    pub fn render(&self, name: &str, ctx: &Value) -> Result<String> {
        self.hb.render(name, ctx).map_err(|e| Error::Usage(format!("template {name}: {e}")))
    }
}
