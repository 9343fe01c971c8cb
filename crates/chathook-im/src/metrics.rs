//! The IM core's Prometheus metrics; the binary registers them and serves `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Handles on the message path's counters (clones share the values in the registry).
pub(crate) struct MessageCounters {
    pub person: Counter,
    pub group: Counter,
    pub sent_events: Counter,
    pub offline_events: Counter,
}

/// Counters and gauges of the IM core. Cloning shares them.
#[derive(Clone, Default)]
pub struct ImMetrics {
    pub connections: Gauge,
    pub messages_sent: Family<Vec<(String, String)>, Counter>,
    pub messages_delivered: Counter,
    pub sends_refused: Family<Vec<(String, String)>, Counter>,
    pub events: Family<Vec<(String, String)>, Counter>,
    pub slow_consumer_disconnects: Counter,
    pub resends: Counter,
}

impl ImMetrics {
    /// Adds every metric to `registry` under the `chathook_` prefix given by the caller.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "connections",
            "Authenticated WebSocket connections",
            self.connections.clone(),
        );
        registry.register(
            "messages_sent",
            "Messages accepted, by channel type",
            self.messages_sent.clone(),
        );
        registry.register(
            "messages_delivered",
            "recv notifications queued to connections",
            self.messages_delivered.clone(),
        );
        registry.register(
            "sends_refused",
            "Sends refused, by reason",
            self.sends_refused.clone(),
        );
        registry.register(
            "events",
            "Events appended to the event log, by type",
            self.events.clone(),
        );
        registry.register(
            "slow_consumer_disconnects",
            "Connections closed because their outbound queue was full",
            self.slow_consumer_disconnects.clone(),
        );
        registry.register(
            "recv_resends",
            "recv notifications sent again for want of a recvack",
            self.resends.clone(),
        );
    }

    /// The counters every message increments, looked up once (a family lookup allocates its labels).
    pub(crate) fn message_counters(&self) -> MessageCounters {
        // One statement per lookup: a lookup's read guard must be dropped before the next may insert.
        let counter =
            |family: &Family<Vec<(String, String)>, Counter>, k: &str, v: &str| -> Counter {
                let labels = vec![(k.to_string(), v.to_string())];
                let handle = family.get_or_create(&labels).clone();
                handle
            };
        let person = counter(&self.messages_sent, "channel_type", "1");
        let group = counter(&self.messages_sent, "channel_type", "2");
        let sent_events = counter(&self.events, "type", "message.sent");
        let offline_events = counter(&self.events, "type", "message.offline");
        MessageCounters {
            person,
            group,
            sent_events,
            offline_events,
        }
    }

    pub(crate) fn count_events(&self, events: &[chathook_events::Event]) {
        for e in events {
            self.events
                .get_or_create(&vec![("type".to_string(), e.name().to_string())])
                .inc();
        }
    }
}
