//! The listeners' counters: connections open and how they closed (`listen`), and calls shed before any work
//! (`layers::admission` per connection, `Engine::admit` at the server's `limits.max_in_flight`).

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter, UpDownCounter};

/// `switchyard.connections.open`, `switchyard.connections.closed` and `switchyard.calls.shed`.
pub(super) struct ConnectionCounters {
    /// By `switchyard.port` (`grpc`, `admin`): connections open now.
    open: UpDownCounter<i64>,
    /// By `switchyard.port` and `reason` (`client`, `silent`, `idle`, `max_age`, `drain`, `refused`).
    closed: Counter<u64>,
    /// By `reason` (`connection`, `server`): calls refused with RESOURCE_EXHAUSTED before any work.
    shed: Counter<u64>,
}

impl ConnectionCounters {
    pub(super) fn new(meter: &Meter) -> Self {
        Self {
            open: meter
                .i64_up_down_counter("switchyard.connections.open")
                .with_description("Client connections open now, by port (grpc, admin)")
                .build(),
            closed: meter
                .u64_counter("switchyard.connections.closed")
                .with_description(
                    "Client connections ended, by port and reason (client, silent, idle, max_age, drain; refused: \
                     turned away at the connection limit)",
                )
                .build(),
            shed: meter
                .u64_counter("switchyard.calls.shed")
                .with_description("Calls refused at once with RESOURCE_EXHAUSTED, by limit (connection, server)")
                .build(),
        }
    }

    pub(super) fn opened(&self, port: &'static str) {
        self.open.add(1, &[KeyValue::new("switchyard.port", port)]);
    }

    pub(super) fn closed(&self, port: &'static str, reason: &'static str) {
        if reason != "refused" {
            self.open.add(-1, &[KeyValue::new("switchyard.port", port)]);
        }
        self.closed.add(
            1,
            &[KeyValue::new("switchyard.port", port), KeyValue::new("reason", reason)],
        );
    }

    pub(super) fn shed(&self, reason: &'static str) {
        self.shed.add(1, &[KeyValue::new("reason", reason)]);
    }
}
