//! Istio's rules, written once (placeholder: being filled in).
