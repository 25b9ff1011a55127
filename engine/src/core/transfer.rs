//! Leadership transfer: catch the target up, then tell it to campaign at once.
//!
//! While a transfer is pending the leader refuses proposals and membership changes (so
//! the target can catch up) and stops serving lease reads; once `TimeoutNow` has been
//! sent, leases stay revoked for the rest of the term, because the target's election
//! ignores leader stickiness.

use super::action::{Action, SendWhen, TransferError};
use super::message::Body;
use super::raft::Raft;
use super::types::NodeId;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Transfer {
    pub target: NodeId,
    pub deadline_tick: u64,
    pub timeout_now_sent: bool,
}

impl Raft {
    pub(crate) fn transfer_leader(&mut self, target: NodeId) {
        let result = self.start_transfer(target);
        self.actions.push(Action::TransferResult { result });
        if result.is_ok() {
            self.maybe_send_timeout_now(target);
            if !self.is_transferring() {
                return;
            }
            self.send_append(target, false);
        }
    }

    fn start_transfer(&mut self, target: NodeId) -> Result<(), TransferError> {
        let leader = self.leader;
        let deadline_tick = self.ticks + self.cfg.transfer_timeout_ticks;
        let is_voter = self.membership.voters.contains(&target);
        let Some(lead) = self.lead.as_mut() else {
            return Err(TransferError::NotLeader { leader });
        };
        if target == self.id {
            return Ok(());
        }
        if !is_voter {
            return Err(TransferError::NotVoter(target));
        }
        if lead.transfer.is_some() {
            return Err(TransferError::InProgress);
        }
        lead.transfer = Some(Transfer {
            target,
            deadline_tick,
            timeout_now_sent: false,
        });
        Ok(())
    }

    /// Sends `TimeoutNow` once the target holds the leader's whole log.
    pub(crate) fn maybe_send_timeout_now(&mut self, peer: NodeId) {
        let last = self.log.last_index();
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        let Some(t) = lead.transfer.as_mut() else {
            return;
        };
        let caught_up = lead
            .progress
            .get(&peer)
            .is_some_and(|p| p.match_index == last);
        if t.target != peer || t.timeout_now_sent || !caught_up {
            return;
        }
        t.timeout_now_sent = true;
        lead.lease_revoked = true;
        self.send(peer, Body::TimeoutNow, SendWhen::Now);
    }

    pub(crate) fn tick_transfer(&mut self) {
        let now = self.ticks;
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        if lead.transfer.is_some_and(|t| now >= t.deadline_tick) {
            lead.transfer = None;
            self.actions.push(Action::TransferResult {
                result: Err(TransferError::TimedOut),
            });
        }
    }
}
