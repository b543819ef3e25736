//! Decoding of `application/vnd.kubernetes.protobuf` request bodies.
//!
//! client-go's typed clientsets send protobuf for built-in kinds, so kubectl
//! commands built on them (`kubectl create namespace|configmap|secret|
//! serviceaccount`, `kubectl auth can-i`) send protobuf bodies. The double
//! decodes the envelope (`k8s\0` + `runtime.Unknown`) and, for the kinds
//! listed in [`schema_for`], the object itself, using the field numbers of
//! the Kubernetes `.proto` definitions. Responses are always JSON, which
//! those clients accept. Other kinds sent as protobuf (e.g. `kubectl create
//! deployment`) are answered with 415 naming the kind.

use crate::status::ApiError;
use base64::Engine;
use serde_json::{Map, Value, json};

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int,
    Time,
    MapStr,
    MapBytes,
    Msg(&'static [Fd]),
}

#[derive(Clone, Copy)]
struct Fd {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Fd {
    Fd {
        num,
        name,
        ty,
        repeated: false,
    }
}

const fn rep(num: u64, name: &'static str, ty: Ty) -> Fd {
    Fd {
        num,
        name,
        ty,
        repeated: true,
    }
}

const OWNER_REF: &[Fd] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "controller", Ty::Bool),
    f(7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[Fd] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(4, "selfLink", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(9, "deletionTimestamp", Ty::Time),
    f(10, "deletionGracePeriodSeconds", Ty::Int),
    f(11, "labels", Ty::MapStr),
    f(12, "annotations", Ty::MapStr),
    rep(13, "ownerReferences", Ty::Msg(OWNER_REF)),
    rep(14, "finalizers", Ty::Str),
];

const NAMESPACE_CONDITION: &[Fd] = &[
    f(1, "type", Ty::Str),
    f(2, "status", Ty::Str),
    f(4, "lastTransitionTime", Ty::Time),
    f(5, "reason", Ty::Str),
    f(6, "message", Ty::Str),
];

const NAMESPACE: &[Fd] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(&[rep(1, "finalizers", Ty::Str)])),
    f(
        3,
        "status",
        Ty::Msg(&[
            f(1, "phase", Ty::Str),
            rep(2, "conditions", Ty::Msg(NAMESPACE_CONDITION)),
        ]),
    ),
];

const CONFIG_MAP: &[Fd] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapStr),
    f(3, "binaryData", Ty::MapBytes),
    f(4, "immutable", Ty::Bool),
];

const SECRET: &[Fd] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapBytes),
    f(3, "type", Ty::Str),
    f(4, "stringData", Ty::MapStr),
    f(5, "immutable", Ty::Bool),
];

const OBJECT_REFERENCE: &[Fd] = &[
    f(1, "kind", Ty::Str),
    f(2, "namespace", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "fieldPath", Ty::Str),
];

const SERVICE_ACCOUNT: &[Fd] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    rep(2, "secrets", Ty::Msg(OBJECT_REFERENCE)),
    rep(3, "imagePullSecrets", Ty::Msg(&[f(1, "name", Ty::Str)])),
    f(4, "automountServiceAccountToken", Ty::Bool),
];

const RESOURCE_ATTRIBUTES: &[Fd] = &[
    f(1, "namespace", Ty::Str),
    f(2, "verb", Ty::Str),
    f(3, "group", Ty::Str),
    f(4, "version", Ty::Str),
    f(5, "resource", Ty::Str),
    f(6, "subresource", Ty::Str),
    f(7, "name", Ty::Str),
];

const SELF_SUBJECT_ACCESS_REVIEW: &[Fd] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(
        2,
        "spec",
        Ty::Msg(&[
            f(1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
            f(
                2,
                "nonResourceAttributes",
                Ty::Msg(&[f(1, "path", Ty::Str), f(2, "verb", Ty::Str)]),
            ),
        ]),
    ),
    f(
        3,
        "status",
        Ty::Msg(&[
            f(1, "allowed", Ty::Bool),
            f(2, "reason", Ty::Str),
            f(3, "evaluationError", Ty::Str),
            f(4, "denied", Ty::Bool),
        ]),
    ),
];

fn schema_for(api_version: &str, kind: &str) -> Option<&'static [Fd]> {
    match (api_version, kind) {
        ("v1", "Namespace") => Some(NAMESPACE),
        ("v1", "ConfigMap") => Some(CONFIG_MAP),
        ("v1", "Secret") => Some(SECRET),
        ("v1", "ServiceAccount") => Some(SERVICE_ACCOUNT),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => Some(SELF_SUBJECT_ACCESS_REVIEW),
        _ => None,
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

fn malformed(what: &str) -> ApiError {
    ApiError::bad_request(format!("malformed protobuf body: {what}"))
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, pos: 0 }
    }
    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .b
                .get(self.pos)
                .ok_or_else(|| malformed("truncated varint"))?;
            self.pos += 1;
            out |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(malformed("varint too long"))
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], ApiError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| malformed("truncated field"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn len_delimited(&mut self) -> Result<&'a [u8], ApiError> {
        let n = self.varint()? as usize;
        self.take(n)
    }
    fn skip(&mut self, wire: u64) -> Result<(), ApiError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.len_delimited().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            _ => Err(malformed("unsupported wire type")),
        }
    }
}

fn string(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed("invalid UTF-8 in a string field"))
}

fn decode_map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ApiError> {
    let mut r = Reader::new(b);
    let mut key = String::new();
    let mut value = Value::String(String::new());
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => key = string(r.len_delimited()?)?,
            (2, 2) => {
                let raw = r.len_delimited()?;
                value = if bytes_value {
                    json!(base64::engine::general_purpose::STANDARD.encode(raw))
                } else {
                    json!(string(raw)?)
                };
            }
            (_, w) => r.skip(w)?,
        }
    }
    Ok((key, value))
}

fn decode_time(b: &[u8]) -> Result<Option<String>, ApiError> {
    let mut r = Reader::new(b);
    let mut secs = 0i64;
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 0) => secs = r.varint()? as i64,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(if secs == 0 {
        None
    } else {
        Some(crate::util::rfc3339(secs))
    })
}

fn decode_message(b: &[u8], schema: &[Fd], path: &str) -> Result<Map<String, Value>, ApiError> {
    let mut r = Reader::new(b);
    let mut out = Map::new();
    while !r.done() {
        let tag = r.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let Some(fd) = schema.iter().find(|fd| fd.num == num) else {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the API-server double cannot decode protobuf field {num} of {path}; send this object as JSON"
                ),
            ));
        };
        let value = match (fd.ty, wire) {
            (Ty::Str, 2) => {
                let s = string(r.len_delimited()?)?;
                if s.is_empty() && !fd.repeated {
                    continue;
                }
                json!(s)
            }
            (Ty::Bool, 0) => json!(r.varint()? != 0),
            (Ty::Int, 0) => {
                let n = r.varint()? as i64;
                if n == 0 {
                    continue;
                }
                json!(n)
            }
            (Ty::Time, 2) => match decode_time(r.len_delimited()?)? {
                Some(t) => json!(t),
                None => continue,
            },
            (Ty::MapStr | Ty::MapBytes, 2) => {
                let (k, v) = decode_map_entry(r.len_delimited()?, matches!(fd.ty, Ty::MapBytes))?;
                match out
                    .entry(fd.name.to_string())
                    .or_insert_with(|| Value::Object(Map::new()))
                {
                    Value::Object(m) => {
                        m.insert(k, v);
                    }
                    _ => return Err(malformed("map field redeclared")),
                }
                continue;
            }
            (Ty::Msg(sub), 2) => Value::Object(decode_message(
                r.len_delimited()?,
                sub,
                &format!("{path}.{}", fd.name),
            )?),
            _ => {
                return Err(malformed(&format!(
                    "unexpected wire type {wire} for {path}.{}",
                    fd.name
                )));
            }
        };
        if fd.repeated {
            match out
                .entry(fd.name.to_string())
                .or_insert_with(|| Value::Array(vec![]))
            {
                Value::Array(a) => a.push(value),
                _ => return Err(malformed("repeated field redeclared")),
            }
        } else {
            out.insert(fd.name.to_string(), value);
        }
    }
    Ok(out)
}

/// Decodes a protobuf-encoded object into its JSON form.
pub fn decode_object(body: &[u8]) -> Result<Value, ApiError> {
    let payload = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| malformed("missing k8s envelope magic"))?;
    let mut r = Reader::new(payload);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while !r.done() {
        let tag = r.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => {
                let mut tm = Reader::new(r.len_delimited()?);
                while !tm.done() {
                    let t = tm.varint()?;
                    match (t >> 3, t & 7) {
                        (1, 2) => api_version = string(tm.len_delimited()?)?,
                        (2, 2) => kind = string(tm.len_delimited()?)?,
                        (_, w) => tm.skip(w)?,
                    }
                }
            }
            (2, 2) => raw = r.len_delimited()?,
            (_, w) => r.skip(w)?,
        }
    }
    let schema = schema_for(&api_version, &kind).ok_or_else(|| {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the API-server double cannot decode protobuf-encoded {kind} ({api_version}); send this object as JSON (e.g. kubectl create -f / kubectl apply)"),
        )
    })?;
    let mut obj = Map::new();
    obj.insert("kind".into(), json!(kind));
    obj.insert("apiVersion".into(), json!(api_version));
    for (k, v) in decode_message(raw, schema, &kind)? {
        obj.insert(k, v);
    }
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn ld(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        ld(1, k.as_bytes(), &mut e);
        ld(2, v, &mut e);
        e
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let mut meta = Vec::new();
        ld(1, b"cfg", &mut meta);
        ld(2, b"", &mut meta);
        ld(8, b"", &mut meta);
        ld(11, &entry("app", b"web"), &mut meta);
        let mut cm = Vec::new();
        ld(1, &meta, &mut cm);
        ld(2, &entry("k", b"v"), &mut cm);
        ld(3, &entry("bin", &[0, 1, 2]), &mut cm);
        let mut tm = Vec::new();
        ld(1, b"v1", &mut tm);
        ld(2, b"ConfigMap", &mut tm);
        let mut body = b"k8s\0".to_vec();
        ld(1, &tm, &mut body);
        ld(2, &cm, &mut body);
        let v = decode_object(&body).unwrap();
        assert_eq!(
            v,
            json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cfg", "labels": {"app": "web"}}, "data": {"k": "v"}, "binaryData": {"bin": "AAEC"}})
        );
    }

    #[test]
    fn unknown_kinds_and_fields_are_refused() {
        let mut tm = Vec::new();
        ld(1, b"apps/v1", &mut tm);
        ld(2, b"Deployment", &mut tm);
        let mut body = b"k8s\0".to_vec();
        ld(1, &tm, &mut body);
        let e = decode_object(&body).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(e.message.contains("Deployment"));
        let mut tm = Vec::new();
        ld(1, b"v1", &mut tm);
        ld(2, b"Namespace", &mut tm);
        let mut ns = Vec::new();
        ld(9, b"x", &mut ns);
        let mut body = b"k8s\0".to_vec();
        ld(1, &tm, &mut body);
        ld(2, &ns, &mut body);
        assert!(
            decode_object(&body)
                .unwrap_err()
                .message
                .contains("field 9 of Namespace")
        );
        assert_eq!(decode_object(b"{}").unwrap_err().code, 400);
    }
}
