//! One-time sign-in tickets: how a session reaches the desktop app through a `rounds://`
//! link without the link carrying a token that works twice or for long.
//!
//! A ticket is 128 random bits, kept only as its SHA-256 hash, in memory, for
//! [`TICKET_TTL_SECS`]. Spending it removes it. A restart forgets every ticket, which is
//! the safe direction: the clinician signs in again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a ticket works.
pub const TICKET_TTL_SECS: u32 = 120;

/// Never hold more than this many unspent tickets; the oldest are dropped first.
const MAX_TICKETS: usize = 10_000;

#[derive(Debug)]
struct Entry {
    clinician_id: String,
    expires: Instant,
}

/// Unspent tickets, by hash.
#[derive(Debug, Default)]
pub struct Tickets {
    live: Mutex<HashMap<[u8; 32], Entry>>,
}

fn digest(ticket: &str) -> [u8; 32] {
    Sha256::digest(ticket.as_bytes()).into()
}

impl Tickets {
    /// A new ticket for this clinician; returns the ticket itself (shown once).
    pub fn issue(&self, clinician_id: &str) -> String {
        self.issue_at(clinician_id, Instant::now())
    }

    fn issue_at(&self, clinician_id: &str, now: Instant) -> String {
        let ticket = rounds_auth::random_id();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, e| e.expires > now);
        if live.len() >= MAX_TICKETS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(
            digest(&ticket),
            Entry {
                clinician_id: clinician_id.to_owned(),
                expires: now + Duration::from_secs(u64::from(TICKET_TTL_SECS)),
            },
        );
        ticket
    }

    /// Spends a ticket: the clinician it was issued for, once, if it has not expired.
    pub fn redeem(&self, ticket: &str) -> Option<String> {
        self.redeem_at(ticket, Instant::now())
    }

    fn redeem_at(&self, ticket: &str, now: Instant) -> Option<String> {
        if ticket.is_empty() || ticket.len() > 128 {
            return None;
        }
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let entry = live.remove(&digest(ticket))?;
        (entry.expires > now).then_some(entry.clinician_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once() {
        let tickets = Tickets::default();
        let t = tickets.issue("c1");
        assert_eq!(tickets.redeem(&t).as_deref(), Some("c1"));
        assert_eq!(tickets.redeem(&t), None);
    }

    #[test]
    fn an_expired_ticket_is_refused() {
        let tickets = Tickets::default();
        let now = Instant::now();
        let t = tickets.issue_at("c1", now);
        let later = now + Duration::from_secs(u64::from(TICKET_TTL_SECS) + 1);
        assert_eq!(tickets.redeem_at(&t, later), None);
    }

    #[test]
    fn unknown_and_oversized_tickets_are_refused() {
        let tickets = Tickets::default();
        tickets.issue("c1");
        assert_eq!(tickets.redeem("nope"), None);
        assert_eq!(tickets.redeem(&"x".repeat(10_000)), None);
    }
}
