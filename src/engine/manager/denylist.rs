//! The operators' runtime deny-list of networks: listed, added to and removed from at
//! run time (audited, durable before it is in force). An entry refuses every login from
//! its network at once and ends any session the moment it is used from there; the
//! sessions that logged in from the network are ended by a bulk revocation of it
//! (`POST /api/v1/admin/sessions/revoke` with its `cidr`; `roster deny-network add` runs
//! both).

use super::Ops;
use super::principal::Principal;
use crate::domain::audit::{AuditAction, AuditActor};
use crate::domain::denylist::{DeniedNetwork, DenyRequest, parse_network};
use crate::engine::EngineError;
use crate::engine::durable::settled;
use crate::store::{Batch, Op};

fn actor_name(actor: &Option<AuditActor>) -> String {
    match actor {
        Some(AuditActor::Operator) | None => "operator".into(),
        Some(AuditActor::User { id }) => format!("user {id}"),
        Some(AuditActor::System { job }) => format!("system ({job})"),
        Some(AuditActor::Anonymous) => "anonymous".into(),
    }
}

impl Ops<'_> {
    /// The runtime deny-list's entries in force (operators and the system); the
    /// networks of `risk.deny_networks` in config are not among them.
    pub fn denied_networks(self, by: &Principal) -> Result<Vec<DeniedNetwork>, EngineError> {
        by.privileged()?;
        let now = self.m.now();
        let list = self.m.engine.deny.current();
        Ok(list
            .entries
            .iter()
            .filter(|e| e.in_force(now))
            .cloned()
            .collect())
    }

    /// Denies a network (operators and the system): stored and audited, then in force
    /// for every login and session use. Replaces the entry of the same network; returns
    /// the entry and whether one was replaced.
    pub async fn deny_network(
        self,
        by: &Principal,
        request: &DenyRequest,
    ) -> Result<(DeniedNetwork, bool), EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let actor = by.audit_actor();
        let _one = e.deny.changing.lock().await;
        let now = self.m.now();
        let entry = request.entry(actor_name(&actor), now)?;
        let mut list = (*e.deny.current()).clone();
        let replaced = list.put(entry.clone(), now)?;
        let audit = AuditAction::NetworkDenied {
            network: entry.network.to_string(),
            reason: entry.reason.clone(),
            expires_at: entry.expires_at,
        };
        self.store_list(&list, actor.map(|a| (a, audit))).await?;
        e.deny.replace(list);
        tracing::warn!(network = %entry.network, reason = %entry.reason, "network denied");
        let data = serde_json::json!({ "entry": entry, "replaced": replaced });
        e.realtime.publish_operator("network_denied", now, data);
        Ok((entry, replaced))
    }

    /// Removes a network from the deny-list (operators and the system; audited):
    /// whether it was there.
    pub async fn allow_network(self, by: &Principal, network: &str) -> Result<bool, EngineError> {
        by.privileged()?;
        let e = &self.m.engine;
        let network = parse_network("network", network)?;
        let _one = e.deny.changing.lock().await;
        let mut list = (*e.deny.current()).clone();
        if !list.remove(&network) {
            return Ok(false);
        }
        let audit = AuditAction::NetworkAllowed {
            network: network.to_string(),
        };
        self.store_list(&list, by.audit_actor().map(|a| (a, audit)))
            .await?;
        e.deny.replace(list);
        tracing::warn!(%network, "network allowed again");
        let data = serde_json::json!({ "network": network.to_string() });
        e.realtime
            .publish_operator("network_allowed", self.m.now(), data);
        Ok(true)
    }

    async fn store_list(
        self,
        list: &crate::domain::denylist::DenyList,
        audit: Option<(AuditActor, AuditAction)>,
    ) -> Result<(), EngineError> {
        let e = &self.m.engine;
        let record = serde_json::to_vec(list)
            .map_err(|err| EngineError::Internal(format!("deny-list: {err}")))?;
        let audit = audit
            .map(|(a, b)| (a, b, self.m.now()))
            .into_iter()
            .collect();
        let ticket = e
            .commit
            .submit(Batch::of(Op::PutDenyList { record }), audit, None);
        settled(e.commit.wait(&ticket).await)
    }
}
