//! Rendering ClusterSPIFFEID templates the way the controller manager does, for the forms they use.
//!
//! The controller manager renders `spiffeIDTemplate` with Go's `text/template` over the trust
//! domain, cluster name and domain, and the pod's and node's metadata and spec. Whether a workload
//! gets the identity Istio expects depends on what that template produces, so the checker renders
//! it too. Only the constructs ClusterSPIFFEIDs actually use are supported: field chains
//! (`{{ .PodMeta.Namespace }}`, `{{ .PodSpec.ServiceAccountName }}`, `{{ .PodMeta.Labels.app }}`),
//! `{{ index .PodMeta.Labels "app" }}`, comments and the `{{-`/`-}}` trim markers. Anything else
//! (pipelines, functions, conditionals, variables) is a [`RenderError`], never a guess and never a
//! panic. Missing values behave as in Go: `index` of an absent key gives the empty string, a field
//! step into an absent map key prints `<no value>`; the rendered text is then validated as a SPIFFE
//! ID, which is where such gaps surface.

use std::fmt;

use serde_json::Value;

/// What a template can see, in Go's field names.
#[derive(Debug, Clone)]
pub struct TemplateData {
    pub trust_domain: String,
    pub cluster_name: String,
    pub cluster_domain: String,
    /// The pod's `metadata` as JSON.
    pub pod_meta: Value,
    /// The pod's `spec` as JSON (with `serviceAccountName` filled in).
    pub pod_spec: Value,
    pub node_meta: Value,
    pub node_spec: Value,
}

/// Why a template did not render to a valid SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// Not a template this checker (or Go) accepts: unbalanced delimiters, bad quoting.
    Syntax(String),
    /// A construct outside the supported forms (pipelines, functions, conditionals ...).
    Unsupported(String),
    /// Go would fail executing the template (a field that does not exist).
    Execution(String),
    /// It rendered, but the result is not a valid SPIFFE ID.
    InvalidId { rendered: String, reason: SpiffeIdError },
}

/// Why a text is not a SPIFFE ID or a trust domain name (the SPIFFE ID specification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("scheme must be spiffe://")]
    Scheme,
    #[error("trust domain is empty")]
    EmptyTrustDomain,
    #[error("trust domain character `{0}` is not allowed (lowercase letters, digits, `.`, `-`, `_`)")]
    TrustDomainCharacter(char),
    #[error("path has an empty segment or a trailing slash")]
    EmptySegment,
    #[error("path has a `.` or `..` segment")]
    DotSegment,
    #[error("path character `{0}` is not allowed")]
    PathCharacter(char),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Syntax(m) => write!(f, "template syntax: {m}"),
            RenderError::Unsupported(m) => write!(f, "unsupported template construct: {m}"),
            RenderError::Execution(m) => write!(f, "template execution: {m}"),
            RenderError::InvalidId { rendered, reason } => {
                write!(f, "renders `{rendered}`, not a valid SPIFFE ID: {reason}")
            }
        }
    }
}

impl std::error::Error for RenderError {}

/// Render `template` over `data`, returning the text (not yet validated as an ID).
pub fn render_text(template: &str, data: &TemplateData) -> Result<String, RenderError> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        let after_open = &rest[open + 2..];
        let (trim_left, body_start) = match after_open.strip_prefix("- ") {
            Some(b) => (true, b),
            None => (false, after_open),
        };
        if trim_left {
            text = text.trim_end();
        }
        out.push_str(text);
        let close = body_start.find("}}").ok_or_else(|| RenderError::Syntax("unclosed action `{{`".into()))?;
        let mut body = &body_start[..close];
        let trim_right = body.ends_with(" -");
        if trim_right {
            body = &body[..body.len() - 2];
        }
        out.push_str(&eval_action(body.trim(), data)?);
        rest = &body_start[close + 2..];
        if trim_right {
            rest = rest.trim_start();
        }
    }
    // Go keeps a stray `}}` as text; so does this, and ID validation rejects it.
    out.push_str(rest);
    Ok(out)
}

/// Render `template` and validate the result as a SPIFFE ID.
pub fn render_spiffe_id(template: &str, data: &TemplateData) -> Result<String, RenderError> {
    let rendered = render_text(template, data)?;
    validate_spiffe_id(&rendered).map_err(|reason| RenderError::InvalidId { rendered: rendered.clone(), reason })?;
    Ok(rendered)
}

fn eval_action(body: &str, data: &TemplateData) -> Result<String, RenderError> {
    if body.starts_with("/*") {
        return if body.ends_with("*/") {
            Ok(String::new())
        } else {
            Err(RenderError::Syntax("unclosed comment".into()))
        };
    }
    let tokens = tokenize(body)?;
    match tokens.as_slice() {
        [] => Err(RenderError::Syntax("empty action `{{ }}`".into())),
        [Token::Field(path)] => print(resolve(path, data)?, &format!(".{}", path.join("."))),
        [Token::Word(w), Token::Field(path), keys @ ..] if w == "index" && !keys.is_empty() => {
            let mut value = resolve(path, data)?;
            for key in keys {
                let Token::Str(key) = key else {
                    return Err(RenderError::Unsupported(format!("index with a non-string key in `{body}`")));
                };
                value = match value {
                    Resolved::Json(Value::Object(m)) => match m.get(key) {
                        Some(v) => Resolved::Json(v.clone()),
                        None => return Ok(String::new()),
                    },
                    Resolved::Json(Value::Null) | Resolved::Missing => return Ok(String::new()),
                    _ => return Err(RenderError::Execution(format!("cannot index into a non-map in `{body}`"))),
                };
            }
            print(value, body)
        }
        [Token::Word(w), ..] => Err(RenderError::Unsupported(format!("`{w}` in `{{{{ {body} }}}}`"))),
        [Token::Pipe, ..] | [_, .., Token::Pipe] | [_, Token::Pipe, ..] => {
            Err(RenderError::Unsupported(format!("pipeline in `{{{{ {body} }}}}`")))
        }
        _ => Err(RenderError::Unsupported(format!("`{{{{ {body} }}}}`"))),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// `.A.B.C` as its steps (`.` alone is the empty path).
    Field(Vec<String>),
    Word(String),
    Str(String),
    Pipe,
    /// Anything else: variables, numbers, operators.
    Other,
}

fn tokenize(body: &str) -> Result<Vec<Token>, RenderError> {
    let chars: Vec<char> = body.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(RenderError::Syntax(format!("unterminated string in `{body}`"))),
                    Some('"') => break,
                    Some('\\') => {
                        let e = chars.get(i + 1).ok_or_else(|| RenderError::Syntax("bad escape".into()))?;
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            '\\' | '"' => *e,
                            other => return Err(RenderError::Unsupported(format!("escape \\{other}"))),
                        });
                        i += 2;
                        continue;
                    }
                    Some(ch) => s.push(*ch),
                }
                i += 1;
            }
            i += 1;
            out.push(Token::Str(s));
        } else if c == '`' {
            let end = chars[i + 1..]
                .iter()
                .position(|ch| *ch == '`')
                .ok_or_else(|| RenderError::Syntax(format!("unterminated raw string in `{body}`")))?;
            out.push(Token::Str(chars[i + 1..i + 1 + end].iter().collect()));
            i += end + 2;
        } else if c == '|' {
            out.push(Token::Pipe);
            i += 1;
        } else if c == '.' {
            let start = i;
            while i < chars.len() && (chars[i] == '.' || chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let steps: Vec<String> = text.split('.').skip(1).map(str::to_string).collect();
            if text == "." {
                out.push(Token::Field(Vec::new()));
            } else if steps.iter().any(String::is_empty) {
                return Err(RenderError::Syntax(format!("bad field `{text}`")));
            } else {
                out.push(Token::Field(steps));
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            out.push(Token::Other);
        }
    }
    Ok(out)
}

enum Resolved {
    Json(Value),
    /// A step into a map key that is not there.
    Missing,
}

/// Go field name to JSON key: `UID` → `uid`, `ServiceAccountName` → `serviceAccountName`.
fn json_key(field: &str) -> String {
    if field.chars().all(|c| !c.is_lowercase()) {
        return field.to_lowercase();
    }
    let mut c = field.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Fields of metadata and spec objects that are maps: steps into them are map keys, not fields.
const MAP_FIELDS: &[&str] = &["Labels", "Annotations", "NodeSelector"];

fn resolve(path: &[String], data: &TemplateData) -> Result<Resolved, RenderError> {
    let Some((first, rest)) = path.split_first() else {
        return Err(RenderError::Unsupported("printing the whole template data `{{ . }}`".into()));
    };
    let root = match first.as_str() {
        "TrustDomain" => Value::String(data.trust_domain.clone()),
        "ClusterName" => Value::String(data.cluster_name.clone()),
        "ClusterDomain" => Value::String(data.cluster_domain.clone()),
        "PodMeta" => data.pod_meta.clone(),
        "PodSpec" => data.pod_spec.clone(),
        "NodeMeta" => data.node_meta.clone(),
        "NodeSpec" => data.node_spec.clone(),
        other => return Err(RenderError::Execution(format!("can't evaluate field {other}"))),
    };
    let mut value = root;
    let mut in_map = false;
    for step in rest {
        if in_map {
            match value.get(step) {
                Some(v) => value = v.clone(),
                None => return Ok(Resolved::Missing),
            }
            in_map = false;
            continue;
        }
        if !value.is_object() && !value.is_null() {
            return Err(RenderError::Execution(format!("can't evaluate field {step} in a non-struct value")));
        }
        value = value.get(json_key(step)).cloned().unwrap_or(Value::Null);
        in_map = MAP_FIELDS.contains(&step.as_str());
    }
    Ok(Resolved::Json(value))
}

fn print(v: Resolved, what: &str) -> Result<String, RenderError> {
    match v {
        Resolved::Missing => Ok("<no value>".into()),
        Resolved::Json(Value::Null) => Ok(String::new()),
        Resolved::Json(Value::String(s)) => Ok(s),
        Resolved::Json(Value::Bool(b)) => Ok(b.to_string()),
        Resolved::Json(Value::Number(n)) => Ok(n.to_string()),
        Resolved::Json(_) => Err(RenderError::Unsupported(format!("`{what}` is a structure, not a string"))),
    }
}

/// Check a SPIFFE ID against the SPIFFE ID specification: `spiffe://` scheme, a lowercase trust
/// domain of `[a-z0-9.-_]`, and a path of non-empty `[A-Za-z0-9.-_]` segments other than `.` and
/// `..`, with no trailing slash, query or fragment.
pub fn validate_spiffe_id(id: &str) -> Result<(), SpiffeIdError> {
    let rest = id.strip_prefix("spiffe://").ok_or(SpiffeIdError::Scheme)?;
    let (td, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    validate_trust_domain(td)?;
    if path.is_empty() {
        return Ok(());
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err(SpiffeIdError::EmptySegment);
        }
        if segment == "." || segment == ".." {
            return Err(SpiffeIdError::DotSegment);
        }
        if let Some(c) = segment.chars().find(|c| !(c.is_ascii_alphanumeric() || "-._".contains(*c))) {
            return Err(SpiffeIdError::PathCharacter(c));
        }
    }
    Ok(())
}

/// Check a trust domain name: non-empty, `[a-z0-9.-_]` only.
pub fn validate_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    if td.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if let Some(c) = td.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(*c))) {
        return Err(SpiffeIdError::TrustDomainCharacter(c));
    }
    Ok(())
}

/// Split a SPIFFE ID into trust domain and path.
pub fn split_spiffe_id(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix("spiffe://")?;
    Some(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> TemplateData {
        TemplateData {
            trust_domain: "example.org".into(),
            cluster_name: "prod-1".into(),
            cluster_domain: "cluster.local".into(),
            pod_meta: json!({"name": "web-7d9f", "namespace": "shop", "uid": "1234-abcd",
                             "labels": {"app": "web", "app.kubernetes.io/name": "web"},
                             "annotations": {"team": "payments"}}),
            pod_spec: json!({"serviceAccountName": "web-sa", "nodeName": "node-1"}),
            node_meta: json!({"name": "node-1", "uid": "n-uid", "labels": {"zone": "a"}}),
            node_spec: json!({"providerID": "aws:///i-1"}),
        }
    }

    const ISTIO: &str = "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}";

    #[test]
    fn renders_istio_template_and_whitespace_variants() {
        assert_eq!(render_spiffe_id(ISTIO, &data()).unwrap(), "spiffe://example.org/ns/shop/sa/web-sa");
        let tight = "spiffe://{{.TrustDomain}}/ns/{{.PodMeta.Namespace}}/sa/{{.PodSpec.ServiceAccountName}}";
        assert_eq!(render_spiffe_id(tight, &data()).unwrap(), "spiffe://example.org/ns/shop/sa/web-sa");
        let trimmed =
            "spiffe://{{- .TrustDomain -}}/ns/{{ .PodMeta.Namespace -}} /sa/ {{- .PodSpec.ServiceAccountName }}";
        assert_eq!(render_spiffe_id(trimmed, &data()).unwrap(), "spiffe://example.org/ns/shop/sa/web-sa");
    }

    #[test]
    fn renders_every_documented_field_form() {
        let t = "spiffe://{{ .TrustDomain }}/{{ .ClusterName }}/{{ .ClusterDomain }}/{{ .PodMeta.Name }}/{{ .PodMeta.UID }}/{{ .PodSpec.NodeName }}/{{ index .PodMeta.Labels \"app\" }}/{{ .PodMeta.Labels.app }}/{{ index .PodMeta.Annotations `team` }}/{{ .NodeMeta.Name }}/{{ index .NodeMeta.Labels \"zone\" }}{{/* comment */}}";
        assert_eq!(
            render_spiffe_id(t, &data()).unwrap(),
            "spiffe://example.org/prod-1/cluster.local/web-7d9f/1234-abcd/node-1/web/web/payments/node-1/a"
        );
        assert_eq!(
            render_spiffe_id("spiffe://x/{{ index .PodMeta.Labels \"app.kubernetes.io/name\" }}", &data()).unwrap(),
            "spiffe://x/web"
        );
    }

    #[test]
    fn missing_values_behave_like_go_and_fail_validation() {
        let e = render_spiffe_id("spiffe://x/{{ index .PodMeta.Labels \"version\" }}", &data()).unwrap_err();
        assert!(matches!(e, RenderError::InvalidId { ref rendered, .. } if rendered == "spiffe://x/"), "{e}");
        let e = render_spiffe_id("spiffe://x/{{ .PodMeta.Labels.version }}", &data()).unwrap_err();
        assert!(matches!(e, RenderError::InvalidId { ref rendered, .. } if rendered == "spiffe://x/<no value>"), "{e}");
        // A struct field that is simply unset renders empty.
        assert_eq!(render_text("{{ .PodSpec.Hostname }}", &data()).unwrap(), "");
    }

    #[test]
    fn unsupported_constructs_are_errors_not_panics() {
        for t in [
            "spiffe://x/{{ .PodMeta.Name | lower }}",
            "spiffe://x/{{ printf \"%s\" .PodMeta.Name }}",
            "spiffe://x/{{ if .PodMeta.Name }}a{{ end }}",
            "spiffe://x/{{ $x := 1 }}",
            "spiffe://x/{{ . }}",
            "spiffe://x/{{ .PodMeta.Labels }}",
            "spiffe://x/{{ index .PodMeta.Labels 3 }}",
        ] {
            assert!(matches!(render_spiffe_id(t, &data()), Err(RenderError::Unsupported(_))), "{t}");
        }
        assert!(matches!(render_spiffe_id("spiffe://x/{{ .Nope }}", &data()), Err(RenderError::Execution(_))));
        assert!(matches!(render_spiffe_id("spiffe://x/{{ .TrustDomain.X }}", &data()), Err(RenderError::Execution(_))));
        assert!(matches!(render_spiffe_id("spiffe://x/{{ .TrustDomain", &data()), Err(RenderError::Syntax(_))));
        assert!(matches!(render_spiffe_id("spiffe://x/{{ \"a }}", &data()), Err(RenderError::Syntax(_))));
        assert!(matches!(render_spiffe_id("spiffe://x/{{ }}", &data()), Err(RenderError::Syntax(_))));
        assert!(matches!(render_spiffe_id("{{ .PodMeta..Name }}", &data()), Err(RenderError::Syntax(_))));
    }

    #[test]
    fn spiffe_id_validation_follows_the_spec() {
        assert!(validate_spiffe_id("spiffe://example.org").is_ok());
        assert!(validate_spiffe_id("spiffe://example.org/ns/a/sa/b").is_ok());
        assert_eq!(validate_spiffe_id("http://example.org/x"), Err(SpiffeIdError::Scheme));
        assert_eq!(validate_spiffe_id("spiffe://example.org/a b"), Err(SpiffeIdError::PathCharacter(' ')));
        assert_eq!(
            validate_spiffe_id("spiffe://Example.org/x").unwrap_err().to_string(),
            "trust domain character `E` is not allowed (lowercase letters, digits, `.`, `-`, `_`)"
        );
        for bad in [
            "http://example.org/x",
            "spiffe://",
            "spiffe://Example.org/x",
            "spiffe://example.org/",
            "spiffe://example.org//x",
            "spiffe://example.org/a/../b",
            "spiffe://example.org/a b",
            "spiffe://example.org/a?x=1",
            "spiffe://exa:mple/x",
        ] {
            assert!(validate_spiffe_id(bad).is_err(), "{bad}");
        }
        assert_eq!(split_spiffe_id("spiffe://td/ns/a"), Some(("td", "/ns/a")));
        assert_eq!(split_spiffe_id("spiffe://td"), Some(("td", "")));
    }
}
