//! The journal: a ConfigMap in the step's namespace holding what rollback needs.

use std::collections::BTreeMap;

use kube::api::{DeleteParams, Preconditions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::client::{self, api_error};
use super::fingerprint::Fingerprints;
use super::{JOURNAL_KEY, JOURNAL_NAME, MANAGED_BY, PlanError, Target, secret};
use crate::cluster::Connection;

/// How a step ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    Started,
    Completed,
    Failed,
    RolledBack,
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepStatus::Started => "started",
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::RolledBack => "rolled back",
        })
    }
}

/// One run of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub step: String,
    pub who: String,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A field's value before the tool first wrote it, and the last value the tool wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldRecord {
    /// `None`: the field was absent.
    pub prior: Option<Value>,
    /// `None`: the tool removed it.
    pub written: Option<Value>,
    /// When the field was absent: the outermost of its parents that was absent too (e.g.
    /// `/metadata/labels` of an object without labels), which rollback removes again once
    /// nothing else is in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent_from: Option<String>,
}

/// An object's state before the tool first touched it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Prior {
    /// The object did not exist: the tool created it.
    Absent,
    /// The whole object (without server-owned fields): the tool applied over it or deleted it.
    Object { object: Value },
    /// Single fields, by JSON pointer.
    Fields { fields: BTreeMap<String, FieldRecord> },
    /// A Secret that existed, by reference: its metadata and type without its values, the keyed
    /// fingerprint of its content (see [`fingerprint`](super::fingerprint); journals of earlier
    /// versions: an unkeyed `sha256:` under the name `sha256`), and the backup Secret the tool
    /// copies it to before writing it (see [`secret`](super::secret)).
    Secret {
        object: Value,
        #[serde(alias = "sha256")]
        fingerprint: String,
        backup: String,
    },
}

/// What rollback needs for one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub target: Target,
    /// The step that touched the object first.
    pub step: String,
    pub recorded_at: String,
    pub prior: Prior,
    /// The object as the tool last server-side applied it (the fields it owns), recorded before
    /// the apply is sent and updated by later field changes of the tool; rollback and reruns
    /// compare the live object with it to find what someone else changed (`None`: journals of
    /// earlier versions, or objects the tool never applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Value>,
    /// For a Secret the tool applied: `applied` holds it without its values, this the keyed
    /// fingerprint of the content the tool wrote (`appliedSha256` in journals of earlier
    /// versions, unkeyed).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "appliedSha256")]
    pub applied_fingerprint: Option<String>,
}

/// The journal of one namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// Format version (1).
    pub version: u32,
    pub namespace: String,
    pub steps: Vec<StepRecord>,
    pub entries: Vec<JournalEntry>,
    /// Data other parts of the tool keep with the journal, by key (the namespace-based path
    /// keeps its state and history under `nsMigration`). The engine round-trips it untouched.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, Value>,
    /// The Secret beside the journal holding the key of its Secret fingerprints
    /// ([`KEY_SECRET`](super::fingerprint::KEY_SECRET)), once a fingerprint was made; deleted
    /// with the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_key: Option<String>,
    /// The ConfigMap's resourceVersion when read (`None`: not stored yet).
    #[serde(skip)]
    pub resource_version: Option<String>,
}

/// Most bytes the journal's data may hold. The API server refuses a ConfigMap whose values
/// add up to more than 1 MiB ("The data stored in a ConfigMap cannot exceed 1 MiB",
/// <https://kubernetes.io/docs/concepts/configuration/configmap/>; `ValidateConfigMap` in
/// `pkg/apis/core/validation/validation.go` sums the lengths of the `data` and `binaryData`
/// values and compares them with `core.MaxSecretSize`, 1024 * 1024).
pub const JOURNAL_LIMIT: usize = 1024 * 1024;

/// Room kept free when a step records its objects, for the step records written after them
/// (status, times, the error that stopped the step: at most [`MAX_ERROR`] bytes each).
pub(crate) const JOURNAL_RESERVE: usize = 16 * 1024;

/// Longest error text a step record keeps.
pub(crate) const MAX_ERROR: usize = 4 * 1024;

/// `text` cut to at most `MAX_ERROR` bytes on a character boundary.
pub(crate) fn bounded_error(text: String) -> String {
    if text.len() <= MAX_ERROR {
        return text;
    }
    let mut end = MAX_ERROR - 20;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} ... (cut)", &text[..end])
}

/// RFC 3339 time in seconds, UTC, as kubectl writes `restartedAt`.
pub(crate) fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn target(namespace: &str) -> Target {
    Target::new("v1", "ConfigMap", Some(namespace), JOURNAL_NAME)
}

impl Journal {
    pub fn new(namespace: &str) -> Self {
        Journal {
            version: 1,
            namespace: namespace.to_string(),
            steps: Vec::new(),
            entries: Vec::new(),
            extensions: BTreeMap::new(),
            fingerprint_key: None,
            resource_version: None,
        }
    }

    /// Read the journal of `namespace`; `None` when there is none.
    pub async fn load(conn: &Connection, namespace: &str) -> Result<Option<Journal>, PlanError> {
        let Some(cm) = client::get(conn, &target(namespace)).await? else { return Ok(None) };
        Self::from_config_map(namespace, &cm).map(Some)
    }

    /// Parse the journal out of its ConfigMap.
    pub fn from_config_map(namespace: &str, cm: &Value) -> Result<Journal, PlanError> {
        let bad = |reason: String| PlanError::BadJournal { namespace: namespace.to_string(), reason };
        let text = cm
            .pointer(&format!("/data/{}", super::pointer_escape(JOURNAL_KEY)))
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("it has no data key {JOURNAL_KEY}")))?;
        let mut j: Journal = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if j.version != 1 {
            return Err(bad(format!("format version {} is not 1", j.version)));
        }
        j.resource_version = cm.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(str::to_string);
        Ok(j)
    }

    /// The journal's text, as the ConfigMap holds it.
    fn text(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The size of the journal's data in bytes, or [`PlanError::JournalTooLarge`] when it would
    /// not leave `reserve` bytes free below [`JOURNAL_LIMIT`]; the error names the biggest
    /// entries. Checked before every write of the journal, so a journal that would be too big
    /// is never sent (and the writes it would record are not made).
    pub fn check_size(&self, reserve: usize) -> Result<usize, PlanError> {
        let size = self.text().len();
        if size + reserve <= JOURNAL_LIMIT {
            return Ok(size);
        }
        let mut parts: Vec<(String, usize)> = self
            .entries
            .iter()
            .map(|e| (e.target.to_string(), serde_json::to_string_pretty(e).map_or(0, |t| t.len())))
            .chain(self.extensions.iter().map(|(k, v)| (format!("{k} (state kept with the journal)"), serde_json::to_string_pretty(v).map_or(0, |t| t.len()))))
            .collect();
        parts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        parts.truncate(5);
        Err(PlanError::JournalTooLarge { namespace: self.namespace.clone(), size, limit: JOURNAL_LIMIT - reserve, entries: self.entries.len(), biggest: parts })
    }

    /// The ConfigMap holding this journal.
    pub fn to_config_map(&self) -> Value {
        let mut cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": JOURNAL_NAME,
                "namespace": self.namespace,
                "labels": {MANAGED_BY.0: MANAGED_BY.1},
                "annotations": {"mesh-migrate.meshmove.io/purpose": "what `kubectl mesh-migrate rollback` needs to restore this namespace; do not edit"}
            },
            "data": {JOURNAL_KEY: self.text()}
        });
        if let Some(rv) = &self.resource_version {
            cm["metadata"]["resourceVersion"] = json!(rv);
        }
        cm
    }

    /// Store the journal: create it, or update it at the resourceVersion it was read at (a
    /// concurrent change is a [`PlanError::JournalConflict`]).
    pub async fn save(&mut self, conn: &Connection) -> Result<(), PlanError> {
        self.check_size(0)?;
        let cm = self.to_config_map();
        let t = target(&self.namespace);
        let stored = match &self.resource_version {
            None => client::create(conn, super::FIELD_MANAGER, &cm, false).await.map_err(|e| match e {
                PlanError::Cluster(crate::cluster::ClusterError::Api { source: source @ kube::Error::Api(_), .. })
                    if matches!(&source, kube::Error::Api(s) if s.code == 409) =>
                {
                    PlanError::JournalConflict { namespace: self.namespace.clone(), source }
                }
                other => other,
            })?,
            Some(_) => match client::replace(conn, super::FIELD_MANAGER, &cm, false).await {
                Ok(v) => v,
                Err(source @ kube::Error::Api(_)) if matches!(&source, kube::Error::Api(s) if s.code == 409) => {
                    return Err(PlanError::JournalConflict { namespace: self.namespace.clone(), source });
                }
                Err(e) => return Err(api_error(conn, "update", &t, e)),
            },
        };
        self.resource_version = stored.pointer("/metadata/resourceVersion").and_then(Value::as_str).map(str::to_string);
        Ok(())
    }

    /// Delete the journal ConfigMap (only the version read: a concurrent change is a conflict),
    /// then the key of its Secret fingerprints, if it has one.
    pub(crate) async fn remove(&self, conn: &Connection) -> Result<(), PlanError> {
        self.remove_config_map(conn).await?;
        if let Some(name) = &self.fingerprint_key {
            client::delete(conn, &Target::new("v1", "Secret", Some(&self.namespace), name), false).await?;
        }
        Ok(())
    }

    async fn remove_config_map(&self, conn: &Connection) -> Result<(), PlanError> {
        let t = target(&self.namespace);
        let dp = DeleteParams {
            preconditions: Some(Preconditions { resource_version: self.resource_version.clone(), uid: None }),
            ..DeleteParams::default()
        };
        let req = kube::core::Request::new(format!("/api/v1/namespaces/{}/configmaps", self.namespace))
            .delete(JOURNAL_NAME, &dp)
            .map_err(|e| api_error(conn, "delete", &t, kube::Error::BuildRequest(e)))?;
        match conn.client.request::<Value>(req).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source @ kube::Error::Api(_)) if matches!(&source, kube::Error::Api(s) if s.code == 409) => {
                Err(PlanError::JournalConflict { namespace: self.namespace.clone(), source })
            }
            Err(e) => Err(api_error(conn, "delete", &t, e)),
        }
    }

    pub fn entry(&self, target: &Target) -> Option<&JournalEntry> {
        self.entries.iter().find(|e| &e.target == target)
    }

    pub(crate) fn entry_mut(&mut self, target: &Target) -> Option<&mut JournalEntry> {
        self.entries.iter_mut().find(|e| &e.target == target)
    }

    /// The last run of `step`, if any.
    pub fn last_run(&self, step: &str) -> Option<&StepRecord> {
        self.steps.iter().rev().find(|s| s.step == step)
    }

    /// Record the prior state of a whole object unless the object is recorded already (a
    /// Secret's content by its fingerprint, keyed with `prints`). Returns whether the journal
    /// changed.
    pub(crate) fn record_object(&mut self, step: &str, target: &Target, current: Option<&Value>, prints: &Fingerprints) -> Result<bool, PlanError> {
        if self.entry(target).is_some() {
            return Ok(false);
        }
        let prior = match current {
            None => Prior::Absent,
            Some(v) if secret::is_secret(target) => Prior::Secret {
                object: secret::without_values(&client::portable(v)),
                fingerprint: prints.of(v)?,
                backup: secret::backup_name(&target.name).unwrap_or_default(),
            },
            Some(v) => Prior::Object { object: client::portable(v) },
        };
        self.entries.push(JournalEntry {
            target: target.clone(),
            step: step.to_string(),
            recorded_at: now(),
            prior,
            applied: None,
            applied_fingerprint: None,
        });
        Ok(true)
    }

    /// Record `object` as what the tool last applied to its target (the target must be recorded
    /// already). Only objects of the journal's own namespace are kept (what the in-place steps
    /// write there; the namespace-based path's copies in another namespace would only grow the
    /// ConfigMap toward its 1 MiB limit, and its rollback does not read them). A Secret is kept
    /// without its values, with the fingerprint of its content. Returns whether the journal
    /// changed.
    pub(crate) fn record_applied(&mut self, object: &Value, prints: &Fingerprints) -> Result<bool, PlanError> {
        let target = Target::of(object);
        if target.namespace.as_deref() != Some(self.namespace.as_str()) {
            return Ok(false);
        }
        let Some(entry) = self.entry_mut(&target) else { return Ok(false) };
        let (kept, print) = if secret::is_secret(&target) {
            // The same content keeps the fingerprint recorded (a journal of an earlier version
            // keeps its unkeyed one until the content changes).
            let same = entry.applied_fingerprint.as_deref().is_some_and(|f| prints.check(object, f).same());
            (secret::without_values(object), if same { entry.applied_fingerprint.clone() } else { Some(prints.of(object)?) })
        } else {
            (object.clone(), None)
        };
        if entry.applied.as_ref() == Some(&kept) && entry.applied_fingerprint == print {
            return Ok(false);
        }
        entry.applied = Some(kept);
        entry.applied_fingerprint = print;
        Ok(true)
    }

    /// Record the prior values of fields not recorded yet and the values about to be written.
    /// Objects recorded whole need nothing more. Returns whether the journal changed.
    pub(crate) fn record_fields(&mut self, step: &str, target: &Target, current: &Value, writes: &BTreeMap<String, Option<Value>>) -> bool {
        if self.entry(target).is_none() {
            self.entries.push(JournalEntry {
                target: target.clone(),
                step: step.to_string(),
                recorded_at: now(),
                prior: Prior::Fields { fields: BTreeMap::new() },
                applied: None,
                applied_fingerprint: None,
            });
        }
        let entry = self.entry_mut(target).expect("inserted above");
        // Fields the tool sets on an object it applied are the tool's too (a scale of a copy).
        let mut changed = false;
        if let Some(applied) = entry.applied.as_mut() {
            for (pointer, value) in writes {
                if applied.pointer(pointer).is_some() && applied.pointer(pointer) != value.as_ref() {
                    match value {
                        Some(v) => client::set_pointer(applied, pointer, v.clone()),
                        None => client::remove_pointer(applied, pointer),
                    }
                    changed = true;
                }
            }
        }
        let Prior::Fields { fields } = &mut entry.prior else { return changed };
        for (pointer, value) in writes {
            match fields.get_mut(pointer) {
                Some(rec) if rec.written == *value => {}
                Some(rec) => {
                    rec.written = value.clone();
                    changed = true;
                }
                None => {
                    fields.insert(
                        pointer.clone(),
                        FieldRecord {
                            prior: current.pointer(pointer).cloned(),
                            written: value.clone(),
                            absent_from: client::first_absent(current, pointer),
                        },
                    );
                    changed = true;
                }
            }
        }
        changed
    }
}
