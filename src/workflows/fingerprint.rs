//! What was shown is what runs. A planning tool (harmonize_plan, render_overlay,
//! rollback_plan) puts a `fingerprint` of exactly what its acting tool would write into its
//! output; the plan's acting step gets it as `expect` (the executor binds it from the
//! planning step's output), re-plans, and writes nothing when the fingerprint differs: the
//! repo or the clusters moved on between the plan a person approved and the write.

use serde::Serialize;

use crate::error::Error;

/// A short stable hash of `what` (its JSON form).
pub fn of<T: Serialize + ?Sized>(what: &T) -> String {
    let text = serde_json::to_string(what).unwrap_or_default();
    blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
}

/// Ok when nothing was expected or the fingerprints match; otherwise the error that stops
/// the write. `what` names the plan, e.g. "harmonize plan".
pub fn check(expect: Option<&str>, actual: &str, what: &str) -> Result<(), Error> {
    match expect {
        Some(e) if e != actual => Err(Error::workflow(format!(
            "the {what} changed since it was shown (fingerprint {e}, now {actual}): the repo or the clusters moved on \
             after the plan was approved. Nothing was written; plan again and review the new plan"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_content_and_mismatches_refuse() {
        let a = of(&[("apps/web/base/ingress.yaml", "before", "after")]);
        assert_eq!(a.len(), 16);
        assert_eq!(a, of(&[("apps/web/base/ingress.yaml", "before", "after")]));
        let b = of(&[("apps/web/base/ingress.yaml", "before", "after!")]);
        assert_ne!(a, b);
        assert!(check(None, &a, "plan").is_ok());
        assert!(check(Some(&a), &a, "plan").is_ok());
        let e = check(Some(&a), &b, "harmonize plan").unwrap_err().to_string();
        assert!(e.contains("harmonize plan changed since it was shown") && e.contains(&a) && e.contains(&b), "{e}");
    }
}
