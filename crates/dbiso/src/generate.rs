//! `generate`: the isolating NetworkPolicies as a YAML stream (or a JSON `List`) on stdout.

use anyhow::Result;
use clap::Args;
use meshmove_cli::{Exit, KubeFlags, Out, OutputFlags, OutputFormat, SourceFlags};
use std::collections::BTreeMap;

use meshmove_isolation::generate::{self, GenerateOptions, Generation};
use meshmove_isolation::policies::Cidr;
use meshmove_model::inventory::{Inventory, Kind, Object, Origin, kinds};
use meshmove_model::workload::WORKLOAD_KINDS;
use serde_json::json;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub source: SourceFlags,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Print what the policies change in who reaches whom instead of the policies (as `diff`:
    /// exit 1 when they remove connections)
    #[arg(long, help_heading = "Output")]
    pub diff: bool,
    #[command(flatten)]
    pub focus: super::reach::FocusArgs,
}

/// Who besides the owners reaches a database, and whether egress is isolated too.
#[derive(Args)]
pub struct PolicyArgs {
    /// Namespace of the CloudNativePG operator (admitted on ports 5432 and 8000 of the instances)
    #[arg(long, value_name = "NS", default_value = "cnpg-system", help_heading = "Policies")]
    pub cnpg_namespace: String,
    /// Namespace of monitoring, admitted on metrics ports (repeatable; replaces the default)
    #[arg(long = "monitoring-namespace", value_name = "NS", default_values_t = ["monitoring".to_string()], help_heading = "Policies")]
    pub monitoring_namespaces: Vec<String>,
    /// Isolate this database (with --egress also: this workload's egress) even when its clients
    /// (its destinations) cannot all be established (repeatable)
    #[arg(long = "isolate", value_name = "DATABASE", help_heading = "Policies")]
    pub isolate: Vec<String>,
    /// Isolate every database, including those no workload references (their policy admits no
    /// client) and those whose clients cannot all be established
    #[arg(long, alias = "deny-unowned", help_heading = "Policies")]
    pub isolate_all: bool,
    /// The owner service of a database several services use; only the owner is admitted
    /// (repeatable)
    #[arg(long = "owner", value_name = "DATABASE=SERVICE", value_parser = parse_owner, help_heading = "Policies")]
    pub owners: Vec<(String, String)>,
    /// Also isolate the egress of every workload that is not a database (a policy
    /// dbiso-<workload>-egress each): DNS, the Services and databases it is seen using, istiod for
    /// sidecars, and the addresses outside the cluster it names
    #[arg(long, help_heading = "Policies")]
    pub egress: bool,
    /// With --egress: the address ranges of a host outside the cluster that workloads name by DNS
    /// name (a NetworkPolicy names such destinations by range only; repeatable)
    #[arg(long = "external-host", value_name = "HOST=CIDR[,CIDR...]", value_parser = parse_external_host, requires = "egress", help_heading = "Policies")]
    pub external_hosts: Vec<(String, Vec<Cidr>)>,
}

fn parse_external_host(s: &str) -> Result<(String, Vec<Cidr>), PolicyFlagError> {
    let Some((host, ranges)) = s.split_once('=').filter(|(h, r)| !h.trim().is_empty() && !r.trim().is_empty()) else {
        return Err(PolicyFlagError::ExternalHost { value: s.to_string() });
    };
    let cidrs = ranges.split(',').map(|c| Cidr::try_from(c.to_string())).collect::<Result<Vec<_>, _>>()?;
    Ok((host.trim().to_ascii_lowercase(), cidrs))
}

/// A policy flag's value that is not in the flag's form (clap names the flag and the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFlagError {
    #[error("`{value}` is not DATABASE=SERVICE")]
    Owner { value: String },
    #[error("`{value}` is not HOST=CIDR[,CIDR...] (db.example.com=10.20.0.0/16)")]
    ExternalHost { value: String },
    #[error(transparent)]
    Range(#[from] meshmove_isolation::policies::CidrError),
}

fn parse_owner(s: &str) -> Result<(String, String), PolicyFlagError> {
    match s.split_once('=') {
        Some((db, svc)) if !db.is_empty() && !svc.is_empty() => Ok((db.to_string(), svc.to_string())),
        _ => Err(PolicyFlagError::Owner { value: s.to_string() }),
    }
}

impl PolicyArgs {
    pub fn options(&self) -> GenerateOptions {
        GenerateOptions {
            cnpg_namespace: self.cnpg_namespace.clone(),
            monitoring_namespaces: self.monitoring_namespaces.clone(),
            isolate: self.isolate.clone(),
            isolate_all: self.isolate_all,
            owners: self.owners.iter().cloned().collect(),
            egress: self.egress,
            external_hosts: self.external_hosts.iter().fold(BTreeMap::new(), |mut m, (host, cidrs)| {
                m.entry(host.clone()).or_insert_with(Vec::new).extend(cidrs.iter().cloned());
                m
            }),
        }
    }
}

/// What generating policies reads: workloads, the Services, Secrets and ConfigMaps that name
/// databases, CloudNativePG clusters, the admin policies the proof must account for (an
/// AdminNetworkPolicy `Allow` no NetworkPolicy can override); `apply` also diffs against existing
/// NetworkPolicies.
pub fn kinds(with_policies: bool) -> Vec<&'static Kind> {
    let mut k: Vec<&'static Kind> = WORKLOAD_KINDS.to_vec();
    k.extend([&kinds::SERVICE, &kinds::SECRET, &kinds::CONFIG_MAP, &kinds::CNPG_CLUSTER]);
    k.extend(meshmove_netpol::view::ADMIN_POLICY_KINDS);
    k.extend(meshmove_netpol::view::ISTIO_POLICY_KINDS);
    if with_policies {
        k.push(&kinds::NETWORK_POLICY);
    }
    k
}

/// Generate, with a note on stderr for every database left without a policy (and how to
/// isolate it anyway), every connection cut on purpose, and every configuration warning.
pub fn policies(inventory: &Inventory, args: &PolicyArgs) -> Generation {
    let generation = generate::generate(inventory, &args.options());
    for w in &generation.withheld {
        let what = if w.egress { "no egress policy generated" } else { "no policy generated" };
        meshmove_cli::log::note(format_args!("{} (namespace {}): {what}: {}; to isolate it anyway: {}", w.subject, w.namespace, w.reason, w.isolate_with));
    }
    for c in &generation.cuts {
        let ports: Vec<String> = c.ports.iter().map(|p| format!("TCP {p}")).collect();
        meshmove_cli::log::warn(format_args!("cuts {} -> {} on {}: {}", c.from, c.to, ports.join(", "), c.reason));
    }
    for n in &generation.notes {
        meshmove_cli::log::warn(format_args!("{n}"));
    }
    for p in &generation.policies {
        meshmove_cli::debug!(1, "{}/{} isolates {}; admits {}", p.namespace, p.name, p.protects, p.admits.join("; "));
    }
    generation
}

/// The policies as a YAML stream (`---` before each document), or a JSON `List`.
pub fn print(out: &mut Out, format: OutputFormat, generation: &Generation) -> Result<()> {
    match format {
        OutputFormat::Json => {
            let items: Vec<_> = generation.policies.iter().flat_map(|p| std::iter::once(p.object.clone()).chain(p.authorization.clone())).collect();
            let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
            out.write_str(&serde_json::to_string_pretty(&list)?)?;
            out.write_str("\n")?;
        }
        _ => {
            // In ambient namespaces each policy's L4 AuthorizationPolicy follows it.
            for object in generation.policies.iter().flat_map(|p| std::iter::once(&p.object).chain(p.authorization.as_ref())) {
                out.write_str("---\n")?;
                out.write_str(&meshmove_model::yaml::to_yaml_string(object))?;
            }
        }
    }
    Ok(())
}

pub fn run(kube: &KubeFlags, args: &GenerateArgs, output: &OutputFlags) -> Result<Exit> {
    let inventory = meshmove_cli::analysis::load_inventory(kube, &args.source, &kinds(false), &[])?;
    let generation = policies(&inventory, &args.policy);
    let mut out = Out::new();
    print(&mut out, output.output, &generation)?;
    out.flush()?;
    Ok(Exit::Ok)
}

/// `generate --diff`: the input as read (its NetworkPolicies included) against the input with the
/// generated policies applied, on the engine. The AuthorizationPolicies that come with policies in
/// ambient namespaces are Istio's, not NetworkPolicy, and are not part of the comparison.
pub fn run_diff(kube: &KubeFlags, args: &GenerateArgs, format: super::Format) -> Result<Exit> {
    let mut wanted = kinds(true);
    for k in super::reach::model_kinds(false) {
        if !wanted.contains(&k) {
            wanted.push(k);
        }
    }
    let inventory = meshmove_cli::analysis::load_inventory(kube, &args.source, &wanted, &[])?;
    let generation = policies(&inventory, &args.policy);
    let objects: Vec<Object> = generation
        .policies
        .iter()
        .map(|p| Object {
            api_version: kinds::NETWORK_POLICY.api_version(),
            kind: kinds::NETWORK_POLICY.kind.to_string(),
            namespace: Some(p.namespace.clone()),
            name: p.name.clone(),
            value: p.object.clone(),
            origin: Origin::Generated { by: "kubectl dbiso generate".into() },
            pod: None,
        })
        .collect();
    let after = inventory.overlay(objects);
    super::diff::compare(inventory, after, &args.focus, format)
}
