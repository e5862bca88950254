//! TEMPORARY placeholder until the strict schema module lands.
pub struct SchemaSet;
pub enum SchemaOutcome { Valid, Invalid(Vec<SchemaViolation>), NoSchema }
pub struct SchemaViolation { pub pointer: String, pub message: String }
impl SchemaSet {
    pub fn builtin() -> Self { SchemaSet }
    pub fn add_crd(&mut self, _crd: &serde_json::Value) -> Result<Vec<(String, String)>, String> { Ok(vec![]) }
    pub fn has_schema(&self, _a: &str, _k: &str) -> bool { false }
    pub fn validate(&self, _obj: &serde_json::Value) -> SchemaOutcome { SchemaOutcome::NoSchema }
}
