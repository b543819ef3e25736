//! What the live in-place commands share beyond the suite's mutating contract
//! ([`meshmove_cli::mutate`]: `--dry-run`, `--timeout`, connecting, running a plan with progress,
//! printing outcomes and objects): loading the inventory once, the namespace-migration guard,
//! the mesh's PeerAuthentications, OnDelete workloads.

use anyhow::Result;
use meshmove_cli::KubeFlags;
pub use meshmove_cli::mutate::{DryRunArg, MutateFlags, run_plan};
use meshmove_migration::inplace::peer_auth::{self, Policies, RootNamespace};
use meshmove_model::inventory::{Inventory, Kind};

/// The shared connection ([`meshmove_cli::mutate::Live`]) with what the in-place commands read
/// and check beyond it.
pub struct Live(meshmove_cli::mutate::Live);

impl std::ops::Deref for Live {
    type Target = meshmove_cli::mutate::Live;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Live {
    /// Connect for one namespace (`-A` refused).
    pub fn connect(kube: &KubeFlags) -> Result<Live> {
        Ok(Live(meshmove_cli::mutate::Live::connect(kube)?))
    }

    /// Load `kinds` in the namespace (`wide`: in every namespace).
    pub fn inventory(&self, kinds: &[&'static Kind], wide: &[&'static Kind]) -> Result<Inventory> {
        let mut all = kinds.to_vec();
        all.extend_from_slice(wide);
        Ok(self.rt.block_on(meshmove_kube::cluster::load_readable(&self.conn, &all, wide, Some(&self.conn.namespace)))?)
    }

    /// [`Self::inventory`], with Secrets and ConfigMaps (when `kinds` names them) not listed but
    /// fetched by name: those the workloads read, one GET each
    /// ([`meshmove_kube::cluster::load_by_reference`]).
    pub fn inventory_by_reference(&self, kinds: &[&'static Kind], wide: &[&'static Kind]) -> Result<Inventory> {
        let mut all = kinds.to_vec();
        all.extend_from_slice(wide);
        let by_reference = &meshmove_kube::cluster::BY_REFERENCE;
        Ok(self.rt.block_on(meshmove_kube::cluster::load_readable_by_reference(&self.conn, &all, by_reference, wide, Some(&self.conn.namespace)))?)
    }

    /// The objects of `enable --authz`'s [`authz::ELSEWHERE_KINDS`] in every namespace (the
    /// ConfigMaps and Secrets by name, those the workloads read), or why some could not be read:
    /// a refused list is an answer here, not an error (`--authz` then withholds what a caller
    /// there could need, [`authz::Elsewhere::Unreadable`]).
    ///
    /// [`authz::ELSEWHERE_KINDS`]: meshmove_migration::inplace::authz::ELSEWHERE_KINDS
    /// [`authz::Elsewhere::Unreadable`]: meshmove_migration::inplace::authz::Elsewhere::Unreadable
    pub fn authz_elsewhere(&self) -> Result<meshmove_migration::inplace::authz::Elsewhere> {
        use meshmove_kube::cluster::{BY_REFERENCE, load_by_reference};
        use meshmove_migration::inplace::authz::{ELSEWHERE_KINDS, Elsewhere};
        let inventory = self.rt.block_on(load_by_reference(&self.conn, ELSEWHERE_KINDS, &BY_REFERENCE, &[], None))?;
        if let Some((kind, why)) = inventory.unread().into_iter().next() {
            let verb = if BY_REFERENCE.contains(&kind) { "get" } else { "list" };
            return Ok(Elsewhere::Unreadable(format!("could not {verb} {} in every namespace: {}", kind.resource(), why.describe(kind))));
        }
        Ok(Elsewhere::Read(inventory.into_objects()))
    }

    /// Refuse `command` on a namespace that a namespace-based migration owns (its legacy or its
    /// mesh side): the message names the migration and what to do (exit 2).
    pub fn refuse_under_migration(&self, command: &str) -> Result<()> {
        let ns = self.namespace().to_string();
        match self.rt.block_on(meshmove_migration::namespace::ownership::owner_of(&self.conn, &ns)) {
            Ok(None) => Ok(()),
            Ok(Some(owner)) => Err(anyhow::anyhow!(owner.refusal(command))),
            Err(meshmove_migration::namespace::run::NsError::Plan(p)) => Err(p.into()),
            Err(e) => Err(e.into()),
        }
    }

    /// The mesh's PeerAuthentications, listed in every namespace (the mesh-wide ones live in the
    /// root namespace, see [`Self::mesh_root`]), or why they cannot be known. A list the cluster
    /// refuses is an answer here, not an error: `enable` then writes no PeerAuthentication and
    /// `status` shows the modes as unknown, saying why.
    pub fn peer_authentications(&self, root: &MeshRootArgs) -> Result<Policies> {
        let kind = [&meshmove_model::inventory::kinds::PEER_AUTHENTICATION];
        let inventory = self.rt.block_on(meshmove_kube::cluster::load(&self.conn, &kind, &kind, Some(&self.conn.namespace)))?;
        Ok(peer_auth::policies_in(&inventory, self.mesh_root(root)))
    }

    /// The mesh root namespace: `--mesh-root-namespace`, else the mesh config read from the
    /// cluster (ConfigMap `istio` in `istio-system`, one GET), else Istio's default; or why it
    /// is unknown (the mesh config could not be read, or does not parse).
    pub fn mesh_root(&self, root: &MeshRootArgs) -> std::result::Result<RootNamespace, peer_auth::PeerAuthError> {
        let flag = root.mesh_root_namespace.as_deref();
        let mesh_config = match flag {
            Some(_) => vec![],
            None => self.rt.block_on(peer_auth::read_mesh_config(&self.conn, peer_auth::ISTIO_NAMESPACE))?,
        };
        let found = Inventory::from_files(mesh_config, vec![], self.conn.namespace.clone());
        peer_auth::root_namespace(&found, flag)
    }
}

/// Where the mesh-wide PeerAuthentications live.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct MeshRootArgs {
    /// The mesh root namespace (MeshConfig rootNamespace), where mesh-wide PeerAuthentications
    /// live (default: as the mesh config, ConfigMap istio-system/istio, sets it; else istio-system)
    #[arg(long, value_name = "NS")]
    pub mesh_root_namespace: Option<String>,
}

/// Whether `target` is a StatefulSet or DaemonSet with `updateStrategy.type: OnDelete` in
/// `inventory`: its controller replaces a pod only when someone deletes it, so a restart changes
/// its template and nothing else (see `meshmove_kube::plan::Rollout::Manual`).
pub fn on_delete(inventory: &Inventory, target: &meshmove_kube::plan::Target) -> bool {
    matches!(target.kind.as_str(), "StatefulSet" | "DaemonSet")
        && inventory
            .objects()
            .iter()
            .find(|o| o.kind == target.kind && o.name == target.name && o.namespace == target.namespace)
            .and_then(|o| o.value.pointer("/spec/updateStrategy/type"))
            .and_then(serde_json::Value::as_str)
            == Some("OnDelete")
}
