//! Rate limits (governor, GCRA): per customer, per agent and per tenant on messages, configurable
//! in each tenant's settings; per IP on session creation and on webhooks, from the node's
//! settings. A refused request is not accepted at all (nothing stored), and the caller learns
//! when to retry: HTTP 429 with `Retry-After`, a WebSocket error frame `rate_limited` with
//! `retry_after_ms` (the socket stays open).
//!
//! The counters live on each node; in a cluster a tenant's total is per node (see the closing
//! notes of the cluster work).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::error::{ServiceError, ServiceResult};

/// A rate with a burst: `per_second` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    const fn new(per_second: u32, burst: u32) -> Rate {
        Rate { per_second, burst }
    }

    fn quota(self) -> Quota {
        let per_second = NonZeroU32::new(self.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(per_second).allow_burst(burst)
    }
}

/// A tenant's message limits (in `settings.limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Messages from one customer.
    pub customer: Rate,
    /// Messages from one agent.
    pub agent: Rate,
    /// All customer messages of the tenant together.
    pub tenant: Rate,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            customer: Rate::new(5, 10),
            agent: Rate::new(10, 30),
            tenant: Rate::new(2_000, 4_000),
        }
    }
}

impl TenantLimits {
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("customer", self.customer),
            ("agent", self.agent),
            ("tenant", self.tenant),
        ] {
            if rate.per_second == 0 || rate.burst == 0 {
                return Err(format!(
                    "limits.{name}: per_second and burst must be at least 1"
                ));
            }
        }
        Ok(())
    }
}

/// The node's limits per client IP (in the server settings, `[limits]`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpLimits {
    /// `POST /v1/web/session` per IP.
    pub sessions: Rate,
    /// Webhook deliveries (WeChat, Douyin) per IP.
    pub webhooks: Rate,
    /// `POST /v1/web/ticket` per IP: each ticket holds an entry of the node's nonce store (the
    /// one WebSocket tickets, mobile tokens and WeChat pushes share) for 30 s, so a script must
    /// not fill it.
    pub tickets: Rate,
    /// `GET /v1/web/poll` per IP: the long-polling widget's counterpart of a ticket (each poll
    /// may hold a page of messages until its answer is written).
    pub polls: Rate,
    /// Customer messages from one IP, whatever the visitor (the widget, mobile apps; webhook
    /// messages come from the providers' addresses and are not counted here): a script behind
    /// one address cannot spend the tenant's whole message budget. Generous for offices and
    /// carrier NAT.
    pub messages: Rate,
    /// Live customer connections (WebSockets, held long polls) from one IP.
    pub connections: u32,
}

impl Default for IpLimits {
    fn default() -> Self {
        IpLimits {
            sessions: Rate::new(20, 100),
            webhooks: Rate::new(200, 400),
            tickets: Rate::new(10, 60),
            polls: Rate::new(10, 60),
            messages: Rate::new(50, 200),
            connections: 512,
        }
    }
}

struct TenantLimiters {
    limits: TenantLimits,
    customer: DefaultKeyedRateLimiter<String>,
    agent: DefaultKeyedRateLimiter<String>,
    tenant: DefaultDirectRateLimiter,
}

impl TenantLimiters {
    fn new(limits: TenantLimits) -> TenantLimiters {
        TenantLimiters {
            limits,
            customer: RateLimiter::keyed(limits.customer.quota()),
            agent: RateLimiter::keyed(limits.agent.quota()),
            tenant: RateLimiter::direct(limits.tenant.quota()),
        }
    }
}

/// Who is being limited, for the refusal count.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Customer,
    Agent,
    Tenant,
    Session,
    Webhook,
    SignIn,
    IpMessage,
    Ticket,
    Poll,
}

const SCOPES: [&str; 9] = [
    "customer",
    "agent",
    "tenant",
    "session",
    "webhook",
    "sign_in",
    "ip_message",
    "ticket",
    "poll",
];

/// Console sign-in attempts: per client IP, and per account (tenant and email) whatever the IP,
/// so neither one address nor many can guess a password quickly.
const SIGN_INS_PER_IP_PER_MINUTE: u32 = 20;
const SIGN_INS_PER_ACCOUNT_PER_MINUTE: u32 = 6;

pub struct RateLimits {
    tenants: RwLock<HashMap<String, Arc<TenantLimiters>>>,
    sessions: DefaultKeyedRateLimiter<IpAddr>,
    webhooks: DefaultKeyedRateLimiter<IpAddr>,
    sign_ins: DefaultKeyedRateLimiter<IpAddr>,
    sign_in_accounts: DefaultKeyedRateLimiter<String>,
    ip_messages: DefaultKeyedRateLimiter<IpAddr>,
    tickets: DefaultKeyedRateLimiter<IpAddr>,
    polls: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    refused: [AtomicU64; 9],
}

fn per_minute(count: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN))
}

fn refused(wait: Duration) -> ServiceError {
    // Never 0: a client told "retry in 0 ms" would spin.
    ServiceError::RateLimited {
        retry_after_ms: (wait.as_millis() as u64).max(1),
    }
}

impl RateLimits {
    pub fn new(ip: IpLimits) -> Arc<RateLimits> {
        Arc::new(RateLimits {
            tenants: RwLock::new(HashMap::new()),
            sessions: RateLimiter::keyed(ip.sessions.quota()),
            webhooks: RateLimiter::keyed(ip.webhooks.quota()),
            sign_ins: RateLimiter::keyed(per_minute(SIGN_INS_PER_IP_PER_MINUTE)),
            sign_in_accounts: RateLimiter::keyed(per_minute(SIGN_INS_PER_ACCOUNT_PER_MINUTE)),
            ip_messages: RateLimiter::keyed(ip.messages.quota()),
            tickets: RateLimiter::keyed(ip.tickets.quota()),
            polls: RateLimiter::keyed(ip.polls.quota()),
            clock: DefaultClock::default(),
            refused: Default::default(),
        })
    }

    fn count(&self, scope: Scope) {
        self.refused[scope as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals per scope, for `/metrics`.
    pub fn refused(&self) -> Vec<(&'static str, u64)> {
        SCOPES
            .iter()
            .zip(&self.refused)
            .map(|(name, count)| (*name, count.load(Ordering::Relaxed)))
            .collect()
    }

    /// The tenant's limiters, rebuilt when its limits changed.
    fn tenant(&self, tenant: &str, limits: TenantLimits) -> Arc<TenantLimiters> {
        if let Some(current) = self
            .tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            if current.limits == limits {
                return current.clone();
            }
        }
        let fresh = Arc::new(TenantLimiters::new(limits));
        self.tenants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), fresh.clone());
        fresh
    }

    /// One customer message: the sender's address (when it is the customer's own), the
    /// customer's own rate, then the tenant's total.
    pub fn customer_message(
        &self,
        tenant: &str,
        customer: &str,
        origin: Option<IpAddr>,
        limits: TenantLimits,
    ) -> ServiceResult<()> {
        if let Some(ip) = origin {
            self.by_address(&self.ip_messages, Scope::IpMessage, ip)?;
        }
        let limiters = self.tenant(tenant, limits);
        if let Err(not_until) = limiters.customer.check_key(&customer.to_owned()) {
            self.count(Scope::Customer);
            return Err(refused(not_until.wait_time_from(self.clock.now())));
        }
        if let Err(not_until) = limiters.tenant.check() {
            self.count(Scope::Tenant);
            return Err(refused(not_until.wait_time_from(self.clock.now())));
        }
        Ok(())
    }

    pub fn agent_message(
        &self,
        tenant: &str,
        agent: &str,
        limits: TenantLimits,
    ) -> ServiceResult<()> {
        let limiters = self.tenant(tenant, limits);
        limiters
            .agent
            .check_key(&agent.to_owned())
            .map_err(|not_until| {
                self.count(Scope::Agent);
                refused(not_until.wait_time_from(self.clock.now()))
            })
    }

    /// One check of a per-address limiter, a refusal counted under `scope`.
    fn by_address(
        &self,
        limiter: &DefaultKeyedRateLimiter<IpAddr>,
        scope: Scope,
        ip: IpAddr,
    ) -> ServiceResult<()> {
        limiter.check_key(&address_key(ip)).map_err(|not_until| {
            self.count(scope);
            refused(not_until.wait_time_from(self.clock.now()))
        })
    }

    pub fn session(&self, ip: IpAddr) -> ServiceResult<()> {
        self.by_address(&self.sessions, Scope::Session, ip)
    }

    pub fn webhook(&self, ip: IpAddr) -> ServiceResult<()> {
        self.by_address(&self.webhooks, Scope::Webhook, ip)
    }

    /// One visitor WebSocket ticket asked for from `ip`.
    pub fn ticket(&self, ip: IpAddr) -> ServiceResult<()> {
        self.by_address(&self.tickets, Scope::Ticket, ip)
    }

    /// One long poll from `ip`.
    pub fn poll(&self, ip: IpAddr) -> ServiceResult<()> {
        self.by_address(&self.polls, Scope::Poll, ip)
    }

    /// One console sign-in attempt from `ip` for `account` (tenant and email).
    pub fn sign_in(&self, ip: IpAddr, account: &str) -> ServiceResult<()> {
        let by_ip = self.sign_ins.check_key(&address_key(ip));
        let by_account = by_ip.and_then(|_| self.sign_in_accounts.check_key(&account.to_owned()));
        by_account.map_err(|not_until| {
            self.count(Scope::SignIn);
            refused(not_until.wait_time_from(self.clock.now()))
        })
    }

    /// Forgets idle keys (called now and then so the maps do not grow without bound).
    pub fn shrink(&self) {
        self.sessions.retain_recent();
        self.webhooks.retain_recent();
        self.sign_ins.retain_recent();
        self.sign_in_accounts.retain_recent();
        self.ip_messages.retain_recent();
        self.tickets.retain_recent();
        self.polls.retain_recent();
        for limiters in self
            .tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            limiters.customer.retain_recent();
            limiters.agent.retain_recent();
        }
    }
}

/// The key an address's limits are kept under: an IPv4 address itself (also when written as
/// IPv6), an IPv6 address's /64. One subscriber is routinely given a whole /64, so keying on the
/// full address would let one client rotate through 2^64 of them past every per-address limit.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_limited_by_its_64_and_ipv4_by_its_address() {
        let key = |text: &str| address_key(text.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9");
    }

    #[test]
    fn sessions_from_one_64_share_one_budget() {
        let limits = RateLimits::new(IpLimits::default());
        let mut refused = 0;
        for n in 0..10_000u32 {
            let ip: IpAddr = format!("2001:db8::{:x}:{:x}", n >> 16, n & 0xffff)
                .parse()
                .unwrap();
            refused += usize::from(limits.session(ip).is_err());
        }
        assert!(refused > 9_000, "{refused} of 10,000 refused");
    }

    /// A script cannot fill the nonce store with tickets, nor hold pages with long polls: one
    /// address gets its burst, then a few a second; another address is not affected.
    #[test]
    fn tickets_and_polls_are_limited_per_address() {
        type Check = fn(&RateLimits, IpAddr) -> ServiceResult<()>;
        let cases: [(&str, Check); 2] =
            [("ticket", RateLimits::ticket), ("poll", RateLimits::poll)];
        for (scope, check) in cases {
            let limits = RateLimits::new(IpLimits::default());
            let one: IpAddr = "198.51.100.7".parse().unwrap();
            let granted = (0..10_000).filter(|_| check(&limits, one).is_ok()).count();
            assert!(
                (60..100).contains(&granted),
                "{scope}: {granted} of 10,000 granted"
            );
            assert!(check(&limits, "198.51.100.8".parse().unwrap()).is_ok());
            assert!(limits
                .refused()
                .contains(&(scope, (10_000 - granted) as u64)));
        }
    }
}
