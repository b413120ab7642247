//! How many live connections (WebSockets and held long polls) one visitor, and one client IP,
//! have at once: a script that opens hundreds for one token, or thousands of tokens from one
//! address, would hold the node's memory and the tenant's bus. Past [`PER_VISITOR`] for a
//! visitor, or the node's `limits.connections` for an IP, a new one is refused (429
//! `rate_limited`) until one closes. Supervisors' live views are counted here too, per tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::ServiceError;

/// Live connections one visitor may hold (tabs, a reconnect racing the old socket's close).
pub const PER_VISITOR: usize = 8;

/// A customer's connection, counted for the visitor and for their address; both slots are
/// held until the connection ends.
pub fn customer_slots(
    state: &crate::AppState,
    customer: &str,
    ip: std::net::IpAddr,
) -> Result<[ConnectionSlot; 2], ServiceError> {
    let visitor = state.connections.open(customer, PER_VISITOR)?;
    let address = state.connections.open(
        &format!("ip {}", engine::limits::address_key(ip)),
        state.settings.limits.connections as usize,
    )?;
    Ok([visitor, address])
}

/// Open connections per key.
#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<String, usize>>,
}

/// One counted connection; uncounted when dropped.
pub struct ConnectionSlot {
    connections: Arc<Connections>,
    key: String,
}

impl Connections {
    /// Counts one more connection for `key`, or refuses past `max`.
    pub fn open(self: &Arc<Self>, key: &str, max: usize) -> Result<ConnectionSlot, ServiceError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key.to_owned()).or_insert(0);
        if *count >= max {
            return Err(ServiceError::RateLimited {
                retry_after_ms: 1_000,
            });
        }
        *count += 1;
        Ok(ConnectionSlot {
            connections: self.clone(),
            key: key.to_owned(),
        })
    }

    pub fn count(&self, key: &str) -> usize {
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .connections
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_key_and_come_back_when_dropped() {
        let connections = Arc::new(Connections::default());
        let held: Vec<_> = (0..3)
            .map(|_| connections.open("v1", 3).expect("under the cap"))
            .collect();
        assert!(connections.open("v1", 3).is_err());
        assert!(
            connections.open("v2", 3).is_ok(),
            "another visitor is not affected"
        );
        drop(held);
        assert_eq!(connections.count("v1"), 0);
        assert!(connections.open("v1", 3).is_ok());
    }
}
