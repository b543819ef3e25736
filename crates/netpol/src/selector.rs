//! Precompiled label selectors over interned strings.
//!
//! `kube_core::Selector` has the right matching rules but is not used here, for three reasons:
//! its `TryFrom<LabelSelector>` accepts selectors the API server rejects (`In`/`NotIn` with an
//! empty `values`, `Exists`/`DoesNotExist` with values), which would let an invalid policy
//! through silently; it does not say *which* requirement failed, which `explain` needs; and it
//! looks labels up as `String` keys in a `BTreeMap`, while the engine evaluates every policy
//! selector against every equivalence class and wants integer comparisons on sorted slices.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// An interned string.
pub(crate) type Sym = u32;

/// Stands for a string the interner has never seen. No selector can mention it (selectors are
/// interned), so it never equals a selector value and is never a selector key.
pub(crate) const UNKNOWN: Sym = u32::MAX;

#[derive(Clone, Debug, Default)]
pub(crate) struct Interner {
    map: HashMap<String, Sym>,
    strings: Vec<String>,
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        if let Some(&sym) = self.map.get(s) {
            return sym;
        }
        let sym = Sym::try_from(self.strings.len()).expect("fewer than 2^32-1 distinct strings");
        self.strings.push(s.to_string());
        self.map.insert(s.to_string(), sym);
        sym
    }

    /// Lookup without inserting; `UNKNOWN` when absent.
    pub(crate) fn get(&self, s: &str) -> Sym {
        self.map.get(s).copied().unwrap_or(UNKNOWN)
    }

    pub(crate) fn resolve(&self, sym: Sym) -> &str {
        self.strings
            .get(sym as usize)
            .map(String::as_str)
            .unwrap_or("<unknown>")
    }
}

/// Labels as `(key, value)` pairs sorted by key (keys are unique).
pub(crate) type Labels = Vec<(Sym, Sym)>;

pub(crate) fn intern_labels(interner: &mut Interner, labels: &BTreeMap<String, String>) -> Labels {
    let mut v: Labels = labels
        .iter()
        .map(|(k, val)| (interner.intern(k), interner.intern(val)))
        .collect();
    v.sort_unstable();
    v
}

/// Interns nothing: keys or values never seen map to `UNKNOWN` (keys never seen are dropped,
/// since no selector can ask about them).
pub(crate) fn lookup_labels(interner: &Interner, labels: &BTreeMap<String, String>) -> Labels {
    let mut v: Labels = labels
        .iter()
        .filter_map(|(k, val)| {
            let key = interner.get(k);
            (key != UNKNOWN).then(|| (key, interner.get(val)))
        })
        .collect();
    v.sort_unstable();
    v
}

fn label_value(labels: &[(Sym, Sym)], key: Sym) -> Option<Sym> {
    labels
        .binary_search_by_key(&key, |&(k, _)| k)
        .ok()
        .map(|i| labels[i].1)
}

/// Why a selector is invalid: the field inside the selector and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SelectorError {
    pub path: String,
    pub message: String,
}

/// One requirement of a selector. `Eq` comes from `matchLabels`; it behaves like `In` with one
/// value and is kept apart only to print the selector the way it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Requirement {
    Eq(Sym, Sym),
    In(Sym, Vec<Sym>),
    NotIn(Sym, Vec<Sym>),
    Exists(Sym),
    DoesNotExist(Sym),
}

impl Requirement {
    pub(crate) fn key(&self) -> Sym {
        match self {
            Requirement::Eq(k, _)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::DoesNotExist(k) => *k,
        }
    }

    pub(crate) fn matches(&self, labels: &[(Sym, Sym)]) -> bool {
        match self {
            Requirement::Eq(k, v) => label_value(labels, *k) == Some(*v),
            Requirement::In(k, vs) => {
                label_value(labels, *k).is_some_and(|v| vs.binary_search(&v).is_ok())
            }
            // NotIn also matches when the key is absent.
            Requirement::NotIn(k, vs) => {
                label_value(labels, *k).is_none_or(|v| vs.binary_search(&v).is_err())
            }
            Requirement::Exists(k) => label_value(labels, *k).is_some(),
            Requirement::DoesNotExist(k) => label_value(labels, *k).is_none(),
        }
    }

    pub(crate) fn render(&self, interner: &Interner) -> String {
        let set = |vs: &[Sym]| {
            vs.iter()
                .map(|v| interner.resolve(*v))
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Requirement::Eq(k, v) => format!("{}={}", interner.resolve(*k), interner.resolve(*v)),
            Requirement::In(k, vs) => format!("{} in ({})", interner.resolve(*k), set(vs)),
            Requirement::NotIn(k, vs) => format!("{} notin ({})", interner.resolve(*k), set(vs)),
            Requirement::Exists(k) => interner.resolve(*k).to_string(),
            Requirement::DoesNotExist(k) => format!("!{}", interner.resolve(*k)),
        }
    }
}

/// A compiled label selector: the AND of its requirements; no requirement matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Selector {
    reqs: Vec<Requirement>,
}

impl Selector {
    /// Compiles `matchLabels` and `matchExpressions` (ANDed), validating them as the API server
    /// does: operators are exactly `In`, `NotIn`, `Exists`, `DoesNotExist`; `In`/`NotIn` need at
    /// least one value; `Exists`/`DoesNotExist` take none.
    pub(crate) fn compile(
        sel: &LabelSelector,
        interner: &mut Interner,
    ) -> Result<Selector, SelectorError> {
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement::Eq(interner.intern(k), interner.intern(v)));
        }
        for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
            let values = e.values.as_deref().unwrap_or(&[]);
            let key = interner.intern(&e.key);
            let mut syms: Vec<Sym> = values.iter().map(|v| interner.intern(v)).collect();
            syms.sort_unstable();
            syms.dedup();
            let req = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(SelectorError {
                        path: format!("matchExpressions[{i}].values"),
                        message:
                            "Required value: must be specified when `operator` is 'In' or 'NotIn'"
                                .into(),
                    });
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(SelectorError {
                        path: format!("matchExpressions[{i}].values"),
                        message: "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
                    });
                }
                "In" => Requirement::In(key, syms),
                "NotIn" => Requirement::NotIn(key, syms),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    return Err(SelectorError {
                        path: format!("matchExpressions[{i}].operator"),
                        message: format!(
                            "Unsupported value: {other:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
                        ),
                    });
                }
            };
            reqs.push(req);
        }
        Ok(Selector { reqs })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub(crate) fn matches(&self, labels: &[(Sym, Sym)]) -> bool {
        self.reqs.iter().all(|r| r.matches(labels))
    }

    /// The first requirement that `labels` do not satisfy, if any.
    pub(crate) fn first_failure(&self, labels: &[(Sym, Sym)]) -> Option<&Requirement> {
        self.reqs.iter().find(|r| !r.matches(labels))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = Sym> + '_ {
        self.reqs.iter().map(Requirement::key)
    }

    /// kubectl-style text: `app=db,tier in (a,b)`; `{}` for the empty selector.
    pub(crate) fn render(&self, interner: &Interner) -> String {
        if self.reqs.is_empty() {
            return "{}".to_string();
        }
        self.reqs
            .iter()
            .map(|r| r.render(interner))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn req(key: &str, op: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn labels(i: &mut Interner, kv: &[(&str, &str)]) -> Labels {
        intern_labels(
            i,
            &kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn operators_table() {
        type Case = (
            LabelSelectorRequirement,
            Vec<(&'static str, &'static str)>,
            bool,
        );
        // (requirement, labels, expected)
        let cases: Vec<Case> = vec![
            (
                req("app", "In", Some(&["db", "web"])),
                vec![("app", "db")],
                true,
            ),
            (
                req("app", "In", Some(&["db", "web"])),
                vec![("app", "cache")],
                false,
            ),
            (req("app", "In", Some(&["db"])), vec![], false),
            (
                req("app", "NotIn", Some(&["db"])),
                vec![("app", "web")],
                true,
            ),
            (
                req("app", "NotIn", Some(&["db"])),
                vec![("app", "db")],
                false,
            ),
            (
                req("app", "NotIn", Some(&["db"])),
                vec![("other", "x")],
                true,
            ), // key absent
            (req("app", "Exists", None), vec![("app", "")], true),
            (req("app", "Exists", None), vec![], false),
            (req("app", "DoesNotExist", None), vec![], true),
            (
                req("app", "DoesNotExist", Some(&[])),
                vec![("app", "x")],
                false,
            ),
        ];
        for (r, l, want) in cases {
            let mut i = Interner::default();
            let sel = Selector::compile(
                &LabelSelector {
                    match_expressions: Some(vec![r.clone()]),
                    match_labels: None,
                },
                &mut i,
            )
            .unwrap();
            let l = labels(&mut i, &l);
            assert_eq!(sel.matches(&l), want, "{r:?}");
        }
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let mut i = Interner::default();
        let sel = Selector::compile(
            &LabelSelector {
                match_labels: Some([("app".to_string(), "db".to_string())].into()),
                match_expressions: Some(vec![req("tier", "In", Some(&["backend"]))]),
            },
            &mut i,
        )
        .unwrap();
        assert!(sel.matches(&labels(&mut i, &[("app", "db"), ("tier", "backend")])));
        assert!(!sel.matches(&labels(&mut i, &[("app", "db"), ("tier", "front")])));
        assert!(!sel.matches(&labels(&mut i, &[("tier", "backend")])));
        let failed = sel
            .first_failure(&labels(&mut i, &[("app", "db")]))
            .unwrap();
        assert_eq!(failed.render(&i), "tier in (backend)");
        assert_eq!(sel.render(&i), "app=db,tier in (backend)");
    }

    #[test]
    fn empty_selector_matches_everything() {
        let mut i = Interner::default();
        let sel = Selector::compile(&LabelSelector::default(), &mut i).unwrap();
        assert!(sel.matches(&[]));
        assert!(sel.matches(&labels(&mut i, &[("a", "b")])));
        assert_eq!(sel.render(&i), "{}");
    }

    #[test]
    fn invalid_selectors_are_rejected() {
        for r in [
            req("app", "Equals", Some(&["db"])),
            req("app", "in", Some(&["db"])),
            req("app", "In", None),
            req("app", "NotIn", Some(&[])),
            req("app", "Exists", Some(&["x"])),
            req("app", "DoesNotExist", Some(&["x"])),
        ] {
            let mut i = Interner::default();
            let res = Selector::compile(
                &LabelSelector {
                    match_expressions: Some(vec![r.clone()]),
                    match_labels: None,
                },
                &mut i,
            );
            assert!(res.is_err(), "{r:?} must be rejected");
        }
    }

    #[test]
    fn unknown_strings_never_match_selector_values() {
        let mut i = Interner::default();
        let sel = Selector::compile(
            &LabelSelector {
                match_labels: Some([("app".to_string(), "db".to_string())].into()),
                match_expressions: None,
            },
            &mut i,
        )
        .unwrap();
        let l = lookup_labels(
            &i,
            &[
                ("app".to_string(), "zzz".to_string()),
                ("new".to_string(), "x".to_string()),
            ]
            .into(),
        );
        assert_eq!(l, vec![(i.get("app"), UNKNOWN)]);
        assert!(!sel.matches(&l));
    }
}
