//! App-level feature switches (seed: Tencent's "Webhook Event Activation Guide"): an event whose switch
//! is off may be selected on an endpoint but is not delivered. Which event needs which switch is in the
//! catalog.

use chathook_events::EventKind;
use serde::{Deserialize, Serialize};

/// The switches, stored durably and changed by `PUT /v1/features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Features {
    /// `user.online`, `user.offline` (WuKongIM's `user.onlinestatus`).
    pub online_status_notify: bool,
    /// `user.profile_changed`.
    pub profile_change_subscription: bool,
    /// `group.member_online_status`.
    pub live_group_member_status: bool,
}

/// One switch of [`Features`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    OnlineStatusNotify,
    ProfileChangeSubscription,
    LiveGroupMemberStatus,
}

impl Feature {
    /// The switch's field name in [`Features`] (and in `PUT /v1/features`).
    pub fn name(self) -> &'static str {
        match self {
            Feature::OnlineStatusNotify => "online_status_notify",
            Feature::ProfileChangeSubscription => "profile_change_subscription",
            Feature::LiveGroupMemberStatus => "live_group_member_status",
        }
    }
}

impl Default for Features {
    fn default() -> Self {
        Features {
            online_status_notify: true,
            profile_change_subscription: false,
            live_group_member_status: false,
        }
    }
}

impl Features {
    /// Whether `feature` is on.
    pub fn is_on(&self, feature: Feature) -> bool {
        match feature {
            Feature::OnlineStatusNotify => self.online_status_notify,
            Feature::ProfileChangeSubscription => self.profile_change_subscription,
            Feature::LiveGroupMemberStatus => self.live_group_member_status,
        }
    }

    /// Whether events of `kind` are delivered under these switches.
    pub fn allows(&self, kind: EventKind) -> bool {
        crate::catalog::entry(kind)
            .feature
            .is_none_or(|f| self.is_on(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_switch_gates_its_events_only() {
        let all_off = Features {
            online_status_notify: false,
            profile_change_subscription: false,
            live_group_member_status: false,
        };
        assert!(!all_off.allows(EventKind::UserOnline));
        assert!(!all_off.allows(EventKind::UserOffline));
        assert!(!all_off.allows(EventKind::ProfileChanged));
        assert!(!all_off.allows(EventKind::GroupMemberOnlineStatus));
        assert!(all_off.allows(EventKind::MessageSent));
        let profiles = Features {
            profile_change_subscription: true,
            ..all_off
        };
        assert!(profiles.allows(EventKind::ProfileChanged));
        assert!(!profiles.allows(EventKind::UserOnline));
    }
}
