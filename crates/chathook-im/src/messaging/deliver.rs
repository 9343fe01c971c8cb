//! The send's last stage, deliver: the stored message is counted and, alone, fanned out to its
//! recipients' connections in the channel's seq order (in a cluster the relay delivers it, in log
//! order, on every node).

use super::append::{Appended, Strategy};
use super::{Fanout, SendAck};
use chathook_events::ChannelType;
use std::sync::Arc;

use crate::Im;

impl Im {
    /// Delivers a stored message; the sender's ack.
    pub(super) fn deliver(&self, a: Appended, strategy: Strategy) -> SendAck {
        let counters = self.message_counters();
        match a.channel_type {
            ChannelType::Person => counters.person.inc(),
            ChannelType::Group => counters.group.inc(),
        };
        counters.sent_events.inc();
        counters.offline_events.inc_by(a.offline_events);
        let ack = SendAck {
            message_id: a.message.message_id,
            message_seq: a.message.message_seq,
            client_msg_no: a.message.client_msg_no.clone(),
        };
        if strategy == Strategy::Cluster {
            // The relay delivers it, in log order.
            return ack;
        }
        let seq = a.message.message_seq;
        let fanout = Fanout {
            message: Arc::new(a.message),
            recipients: a.recipients,
            origin: a.origin,
        };
        match &a.order {
            Some(order) => {
                let released = self.sequencer().finish(&order.channel, seq, fanout);
                self.fan_out_all(&order.channel, released);
            }
            None => fanout.run(self),
        }
        ack
    }
}
