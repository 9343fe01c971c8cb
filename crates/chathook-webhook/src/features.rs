//! App-level feature switches (seed: Tencent's "Webhook Event Activation Guide"): an event whose switch
//! is off may be selected on an endpoint but is not delivered. Which event needs which switch is in the
//! catalog.

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
}
