//! Rate limits on logins, join-link lookups and token minting, per client address (and per
//! account for logins, so one address cannot be used to guess many passwords slowly and many
//! addresses cannot guess one).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitConfig;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub enum Class {
    Login,
    Join,
    Token,
}

pub struct RateLimits {
    login: DefaultKeyedRateLimiter<IpAddr>,
    login_account: DefaultKeyedRateLimiter<String>,
    join: DefaultKeyedRateLimiter<IpAddr>,
    token: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
    }
}

fn quota(per_minute: u32) -> Quota {
    let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n).allow_burst(n)
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), ApiError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        metrics::counter!("rounds_rate_limited_total").increment(1);
        ApiError::too_many(wait.as_secs() + 1)
    })
}

impl RateLimits {
    pub fn new(c: &LimitConfig) -> Self {
        Self {
            login: RateLimiter::keyed(quota(c.login_per_minute)),
            login_account: RateLimiter::keyed(quota(c.login_per_minute)),
            join: RateLimiter::keyed(quota(c.join_per_minute)),
            token: RateLimiter::keyed(quota(c.token_per_minute)),
        }
    }

    pub fn check(&self, class: Class, ip: IpAddr) -> Result<(), ApiError> {
        match class {
            Class::Login => check(&self.login, &ip),
            Class::Join => check(&self.join, &ip),
            Class::Token => check(&self.token, &ip),
        }
    }

    /// Login attempts against one account, whatever address they come from.
    pub fn check_account(&self, email: &str) -> Result<(), ApiError> {
        check(&self.login_account, &email.to_lowercase())
    }

    fn retain_recent(&self) {
        self.login.retain_recent();
        self.login_account.retain_recent();
        self.join.retain_recent();
        self.token.retain_recent();
    }
}

/// Forgets idle clients so the limiter's memory stays bounded.
pub fn spawn_cleanup(limits: Arc<RateLimits>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.retain_recent();
        }
    });
}
