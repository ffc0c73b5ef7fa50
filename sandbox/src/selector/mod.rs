//! Label and field selectors, as used by the `labelSelector` / `fieldSelector` query parameters
//! and by workload specs (`spec.selector`).
//!
//! Parsing follows `k8s.io/apimachinery/pkg/labels` and `pkg/fields` closely, including their
//! error wording, so `kubectl` users see the messages they would get from a real apiserver.

mod field;
mod label;

pub use field::{FieldOperator, FieldRequirement, FieldSelector};
pub use label::{LabelSelector, Operator, Requirement, from_label_selector_json};

/// Writes the terms of a selector separated by commas, the form both selectors parse back.
fn write_terms<T: std::fmt::Display>(
    f: &mut std::fmt::Formatter<'_>,
    terms: &[T],
) -> std::fmt::Result {
    for (i, term) in terms.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{term}")?;
    }
    Ok(())
}
