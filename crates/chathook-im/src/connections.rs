//! Login and logout bookkeeping of client connections: registering an authenticated connection in
//! presence (with the per-user cap and the primary-device kick), recording it durably with its online
//! events before the client hears "connected", and the reverse when it ends. Connections a crashed run
//! left recorded are reported offline at start.
//!
//! The gateway calls [`Im::open_connection`] and [`Im::close_connection`]; it keeps no presence state
//! of its own.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use chathook_events::{ClientInfo, Event, LiveMemberStatus, PresenceChange, PresenceReason};
use chathook_store::ConnRecord;
use tokio::sync::mpsc;

use crate::error::reason;
use crate::presence::{ConnHandle, Counts, DeviceMatch, Kick, Outbound};
use crate::{Im, DEVICE_LEVEL_PRIMARY};

/// A client that proved its token.
#[derive(Debug, Clone)]
pub struct Login {
    pub uid: String,
    pub device_flag: u8,
    /// 1 primary, 0 secondary (from the token).
    pub device_level: u8,
    /// The id the client gave its device (`deviceId`), when it gave one: the login kick follows it.
    pub device_id: Option<String>,
    /// The client's address and platform.
    pub client: ClientInfo,
}

/// A registered connection and the queues the gateway serves it from.
pub struct OpenConnection {
    pub handle: Arc<ConnHandle>,
    /// Messages to write to the client.
    pub outbound: mpsc::Receiver<Outbound>,
    /// Orders to close (kicks, slow consumer).
    pub control: mpsc::Receiver<Kick>,
}

/// Why a login was refused, with the reason code the client is told.
#[derive(Debug, thiserror::Error)]
pub enum LoginRefused {
    #[error("too many connections for this user (limits.connections_per_user = {0})")]
    TooManyConnections(usize),
    #[error("the server cannot record the login")]
    Storage,
    #[error("the user is banned")]
    Banned,
}

impl LoginRefused {
    pub fn reason_code(&self) -> u8 {
        match self {
            LoginRefused::TooManyConnections(_) => reason::NOT_ALLOW_SEND,
            LoginRefused::Storage => reason::SYSTEM_ERROR,
            LoginRefused::Banned => reason::BAN,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn change(conn: &ConnHandle, counts: Counts, reason: PresenceReason) -> PresenceChange {
    PresenceChange {
        uid: conn.uid.clone(),
        device_flag: conn.device_flag,
        device_level: conn.device_level,
        conn_id: conn.conn_id,
        device_online_count: counts.device,
        total_online_count: counts.total,
        reason,
        client: (*conn.client).clone(),
        kicked_platforms: Vec::new(),
    }
}

/// The order to other nodes to do `kick`.
fn kick_order(
    uid: &str,
    conn_id: Option<u64>,
    device_flag: Option<u8>,
    keep: Option<u64>,
    kick: Kick,
) -> crate::cluster::wire::Order {
    crate::cluster::wire::Order::Kick {
        uid: uid.to_string(),
        conn_id,
        device_flag,
        keep,
        reason_code: kick.reason_code,
        reason: kick.reason,
        presence_reason: kick.presence_reason,
        notify: kick.notify,
        device: kick.device,
    }
}

/// A kick by a newer login or token.
pub(crate) fn kicked(why: &str) -> Kick {
    Kick {
        reason_code: reason::CONNECT_KICK,
        reason: why.to_string(),
        presence_reason: PresenceReason::Kicked,
        notify: true,
        device: None,
    }
}

impl Im {
    /// Registers an authenticated connection: presence (under the per-user cap), the kick of an older
    /// primary connection with the same device flag, and the durable online record with its events.
    pub async fn open_connection(&self, login: Login) -> Result<OpenConnection, LoginRefused> {
        let limits = &self.config().limits;
        let (outbound, outbound_rx) = mpsc::channel(limits.outbound_queue.max(1));
        let (control, control_rx) = mpsc::channel(4);
        let handle = Arc::new(ConnHandle {
            conn_id: self.next_conn_id(),
            uid: login.uid,
            device_id: login.device_id,
            device_flag: login.device_flag,
            device_level: login.device_level,
            client: Arc::new(login.client),
            outbound,
            control,
            buffered: Default::default(),
        });
        let counts = self
            .presence()
            .add(handle.clone(), limits.connections_per_user)
            .ok_or(LoginRefused::TooManyConnections(
                limits.connections_per_user,
            ))?;
        // Checked once the connection is in presence, so a ban written meanwhile kicks it instead.
        let banned = self.is_banned(&handle.uid).await;
        if !matches!(banned, Ok(false)) {
            self.presence()
                .remove(&handle.uid, handle.conn_id, handle.device_flag);
            return Err(match banned {
                Ok(_) => LoginRefused::Banned,
                Err(e) => {
                    tracing::error!(error = %e, "cannot check whether a user is banned");
                    LoginRefused::Storage
                }
            });
        }
        let kicked_platforms = self.login_kicks(&handle);
        let online = PresenceChange {
            kicked_platforms,
            ..change(&handle, counts, PresenceReason::Login)
        };
        let events = self.presence_events(online, true);
        let record = ConnRecord {
            conn_id: handle.conn_id,
            uid: handle.uid.clone(),
            device_flag: handle.device_flag,
            device_level: handle.device_level,
            connected_at_ms: now_ms(),
        };
        let counted = events.clone();
        if let Err(e) = self.store().record_online(record, events).await {
            tracing::error!(error = %e, "cannot record a connection as online");
            self.presence()
                .remove(&handle.uid, handle.conn_id, handle.device_flag);
            return Err(LoginRefused::Storage);
        }
        self.metrics().count_events(&counted);
        self.metrics().connections.inc();
        Ok(OpenConnection {
            handle,
            outbound: outbound_rx,
            control: control_rx,
        })
    }

    /// WuKongIM's login kick, among the connections of the new one's user and device flag: a primary
    /// login tells every other device (reason 12) and closes an older connection of its own device
    /// without a word; a secondary login closes only that. Without a device id, a primary login tells
    /// every other connection and a secondary one closes none. The platforms of those told.
    fn login_kicks(&self, conn: &ConnHandle) -> Vec<String> {
        let kick = |device: Option<DeviceMatch>, notify: bool| Kick {
            device,
            notify,
            ..kicked("another primary login with the same device flag")
        };
        let flag = Some(conn.device_flag);
        let keep = Some(conn.conn_id);
        let primary = conn.device_level == DEVICE_LEVEL_PRIMARY;
        let same = conn.device_id.clone().map(|device_id| DeviceMatch {
            device_id,
            same: true,
        });
        let told = match (primary, &same) {
            (true, Some(same)) => {
                let others = DeviceMatch {
                    same: false,
                    ..same.clone()
                };
                self.kick_device(&conn.uid, flag, keep, kick(Some(others), true))
            }
            (true, None) => self.kick_device(&conn.uid, flag, keep, kick(None, true)),
            (false, _) => Vec::new(),
        };
        if same.is_some() {
            self.kick_device(&conn.uid, flag, keep, kick(same, false));
        }
        told
    }

    /// Unregisters a connection that ended and records it offline with its events.
    pub async fn close_connection(&self, conn: &ConnHandle, reason: PresenceReason) {
        self.metrics().connections.dec();
        let counts = self
            .presence()
            .remove(&conn.uid, conn.conn_id, conn.device_flag)
            .unwrap_or(Counts {
                device: 0,
                total: 0,
            });
        let events = self.presence_events(change(conn, counts, reason), false);
        self.metrics().count_events(&events);
        if let Err(e) = self.store().record_offline(conn.conn_id, events).await {
            tracing::error!(error = %e, conn_id = conn.conn_id, "cannot record a connection as offline");
        }
    }

    /// `/conn/kick`: tells one connection it was kicked (reason 12) and closes it, on whichever node
    /// holds it; false when `uid` has no connection `conn_id`.
    pub fn kick_connection(&self, uid: &str, conn_id: u64) -> bool {
        self.end_connection(
            uid,
            conn_id,
            Kick {
                reason_code: reason::CONNECT_KICK,
                reason: "server kick".into(),
                presence_reason: PresenceReason::Kicked,
                notify: true,
                device: None,
            },
        )
    }

    /// Closes `uid`'s connection `conn_id` without a word (`/conn/remove`), on whichever node holds it;
    /// false when none does.
    pub fn remove_connection(&self, uid: &str, conn_id: u64) -> bool {
        self.end_connection(
            uid,
            conn_id,
            Kick {
                reason_code: reason::CONNECT_KICK,
                reason: "removed by the server".into(),
                presence_reason: PresenceReason::Kicked,
                notify: false,
                device: None,
            },
        )
    }

    fn end_connection(&self, uid: &str, conn_id: u64, kick: Kick) -> bool {
        if !self
            .kick_here(uid, Some(conn_id), None, None, kick.clone())
            .is_empty()
        {
            return true;
        }
        let elsewhere = self
            .presence()
            .remote()
            .connections(uid)
            .iter()
            .any(|c| c.conn_id == conn_id);
        if elsewhere {
            self.tell_other_nodes(kick_order(uid, Some(conn_id), None, None, kick));
        }
        elsewhere
    }

    /// Closes `uid`'s connections with `device_flag` (all when `None`), except `keep`, on every node;
    /// returns the platforms of the connections it closed on this one.
    pub(crate) fn kick_device(
        &self,
        uid: &str,
        device_flag: Option<u8>,
        keep: Option<u64>,
        kick: Kick,
    ) -> Vec<String> {
        if self.presence().remote().is_online(uid) {
            let order = kick_order(uid, None, device_flag, keep, kick.clone());
            self.tell_other_nodes(order);
        }
        self.kick_here(uid, None, device_flag, keep, kick)
    }

    /// Closes this node's connections of `uid`: `conn_id`, or those with `device_flag` (all when
    /// `None`) except `keep`; the platforms of those it closed.
    pub(crate) fn kick_here(
        &self,
        uid: &str,
        conn_id: Option<u64>,
        device_flag: Option<u8>,
        keep: Option<u64>,
        kick: Kick,
    ) -> Vec<String> {
        let mut platforms = Vec::new();
        self.presence().for_each(uid, |conn| {
            let chosen = match conn_id {
                Some(id) => id == conn.conn_id,
                None => {
                    device_flag.is_none_or(|f| f == conn.device_flag)
                        && Some(conn.conn_id) != keep
                        && kick
                            .device
                            .as_ref()
                            .is_none_or(|d| d.picks(conn.device_id.as_deref()))
                }
            };
            if chosen {
                conn.kick(kick.clone());
                platforms.push(conn.client.platform.clone());
            }
        });
        platforms
    }

    /// Offline events for connections that were online when the server stopped, counts falling to 0.
    pub(crate) fn restart_events(&self, conns: &[ConnRecord]) -> Vec<Event> {
        self.offline_events(conns, PresenceReason::ServerRestart)
    }

    /// Offline events for connections reported offline together (`conns`, none of them counted in
    /// presence any more), each with the user's counts after it.
    pub(crate) fn offline_events(&self, conns: &[ConnRecord], why: PresenceReason) -> Vec<Event> {
        let mut events = Vec::new();
        for (i, conn) in conns.iter().enumerate() {
            let rest = conns[i + 1..].iter().filter(|c| c.uid == conn.uid);
            let elsewhere = self.presence().counts(&conn.uid, conn.device_flag);
            let (device, total) = rest.fold((elsewhere.device, elsewhere.total), |(d, t), c| {
                (d + u32::from(c.device_flag == conn.device_flag), t + 1)
            });
            events.extend(self.presence_events(
                PresenceChange {
                    uid: conn.uid.clone(),
                    device_flag: conn.device_flag,
                    device_level: conn.device_level,
                    conn_id: conn.conn_id,
                    device_online_count: device,
                    total_online_count: total,
                    reason: why,
                    client: ClientInfo::default(),
                    kicked_platforms: Vec::new(),
                },
                false,
            ));
        }
        self.metrics().count_events(&events);
        events
    }

    /// The events of one presence change: the user's, and the live groups' the user is in.
    pub(crate) fn presence_events(&self, change: PresenceChange, online: bool) -> Vec<Event> {
        let mut events = Vec::with_capacity(1);
        for group in self.channels().live_groups_of(&change.uid) {
            events.push(Event::GroupMemberOnlineStatus(LiveMemberStatus {
                channel_id: group,
                uid: change.uid.clone(),
                device_flag: change.device_flag,
                online,
            }));
        }
        events.insert(
            0,
            if online {
                Event::UserOnline(change)
            } else {
                Event::UserOffline(change)
            },
        );
        events
    }
}
