//! Basic auth that a flood of wrong passwords cannot turn against real scrapes.
//!
//! A bcrypt check costs tens of milliseconds of CPU by design, so the gate spends that
//! only where it must: a login that passed is remembered (a SHA-256 digest of user, hash and
//! password, never the password) and a login that failed is remembered too, so a repeated
//! one costs no bcrypt either way. Fresh checks run on their own thread ([`spawn`]), never
//! on the one that makes gzip bodies, within two budgets of check time: all clients together
//! may keep the check thread busy [`SHARE`] of the time, and one client address
//! [`CLIENT_SHARE`], so that a single address cannot take the whole budget from the others.
//! A login over either budget is answered 429 (after a delay the event loop keeps, so that
//! a flood costs little). Identical checks under way are made once.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender, TrySendError};
use mio::{Token, Waker};
use sha2::{Digest, Sha256};

/// The share of one core that bcrypt checks may take over time, and how much check time
/// may be spent at once from a full budget.
const SHARE: f64 = 0.25;
const BURST: f64 = 1.0;
/// The same for one client address: a sixteenth of a core (about one check a second at
/// cost 10), with room for a few checks at once (a scraper with several users).
const CLIENT_SHARE: f64 = SHARE / 4.0;
const CLIENT_BURST: f64 = 0.5;
/// Client addresses whose budget is tracked; beyond, a new address is throttled until
/// some budget has filled up again.
const MAX_CLIENTS: usize = 4096;
/// Checks queued for the check thread.
const QUEUE: usize = 8;
/// Logins remembered as passed, and as refused.
const VERIFIED: usize = 256;
const REFUSED: usize = 4096;

/// A bcrypt hash (cost 10, like the hashes users are told to make) that an unknown user's
/// password is checked against, so that the check costs the same.
const DECOY: &str = "$2y$10$GhhUj1hl7sXD0rJ7SyG9LeQ28P9vxSpsvlqAWbeX5E4dSHdN61gH.";

/// What a login digest is: SHA-256 of user, hash and password.
pub type Login = [u8; 32];

/// A check for the check thread.
pub struct Check {
    login: Login,
    hash: Option<String>,
    password: String,
}

/// A check's outcome.
pub struct Checked {
    login: Login,
    ok: bool,
    took: Duration,
}

/// What a request's credentials come to.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A login known to be good: serve.
    Pass,
    /// No credentials, or wrong ones: 401.
    Refuse,
    /// Being checked: the connection waits for [`Gate::checked`].
    Wait,
    /// Too many fresh checks from this client or in all: 429.
    Throttle,
}

/// The gate every request passes when basic auth is on.
pub struct Gate {
    verified: Remembered,
    refused: Remembered,
    /// Checks under way: the client that asked first, and the connections that wait.
    pending: HashMap<Login, (IpAddr, Vec<Token>)>,
    clients: HashMap<IpAddr, Budget>,
    budget: Budget,
    /// What the last check took: charged in advance to a check under way, so that a burst
    /// cannot overdraw a budget.
    typical: f64,
    checks: Sender<Check>,
}

impl Gate {
    /// A gate handing its checks to `checks` (see [`spawn`]).
    pub fn new(checks: Sender<Check>, now: Instant) -> Self {
        Self {
            verified: Remembered::new(VERIFIED),
            refused: Remembered::new(REFUSED),
            pending: HashMap::new(),
            clients: HashMap::new(),
            budget: Budget::new(SHARE, BURST, now),
            typical: 0.1,
            checks,
        }
    }

    /// Decides on the `Authorization` value of a request from `client` (connection
    /// `token`), against `users` (user → bcrypt hash).
    pub fn check(
        &mut self,
        users: &HashMap<String, String>,
        authorization: Option<&str>,
        client: IpAddr,
        token: Token,
        now: Instant,
    ) -> Verdict {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return Verdict::Refuse;
        };
        let hash = users.get(&user);
        // Keyed by the hash too: a changed password forgets what was known of the old one.
        let login = login_digest(&user, hash.map_or("", String::as_str), &password);
        if hash.is_some() && self.verified.contains(&login) {
            return Verdict::Pass;
        }
        if self.refused.contains(&login) {
            return Verdict::Refuse;
        }
        if let Some((_, waiting)) = self.pending.get_mut(&login) {
            waiting.push(token);
            return Verdict::Wait;
        }
        let client = client_key(client);
        if !self.budget.left(now) || !self.client_budget_left(client, now) {
            return Verdict::Throttle;
        }
        let check = Check {
            login,
            hash: hash.cloned(),
            password,
        };
        match self.checks.try_send(check) {
            Ok(()) => {
                self.budget.charge(self.typical);
                if let Some(budget) = self.clients.get_mut(&client) {
                    budget.charge(self.typical);
                }
                self.pending.insert(login, (client, vec![token]));
                Verdict::Wait
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Verdict::Throttle,
        }
    }

    /// Takes a finished check: whether it passed, and the connections waiting for it.
    pub fn checked(&mut self, checked: Checked, now: Instant) -> (bool, Vec<Token>) {
        if checked.ok {
            self.verified.insert(checked.login);
        } else {
            self.refused.insert(checked.login);
        }
        // The advance charged becomes what the check took.
        let took = checked.took.as_secs_f64();
        let (client, waiting) = self
            .pending
            .remove(&checked.login)
            .unwrap_or((IpAddr::from([0, 0, 0, 0]), Vec::new()));
        self.budget.left(now);
        self.budget.charge(took - self.typical);
        if let Some(budget) = self.clients.get_mut(&client) {
            budget.left(now);
            budget.charge(took - self.typical);
        }
        self.typical = took;
        (checked.ok, waiting)
    }

    /// Whether `client` has check time left (a new client has its whole burst).
    fn client_budget_left(&mut self, client: IpAddr, now: Instant) -> bool {
        if !self.clients.contains_key(&client) && self.clients.len() >= MAX_CLIENTS {
            // A full budget says no more than a missing one: forget those.
            self.clients.retain(|_, budget| !budget.full(now));
            if self.clients.len() >= MAX_CLIENTS {
                return false;
            }
        }
        self.clients
            .entry(client)
            .or_insert_with(|| Budget::new(CLIENT_SHARE, CLIENT_BURST, now))
            .left(now)
    }
}

/// Starts the check thread: checks in, outcomes out through `done`, and the event loop
/// woken for each. Returns where checks go.
pub fn spawn<D: Send + 'static>(
    waker: &Arc<Waker>,
    done: Sender<D>,
    wrap: fn(Checked) -> D,
) -> std::io::Result<Sender<Check>> {
    let (checks, queue) = bounded::<Check>(QUEUE);
    let waker = Arc::clone(waker);
    std::thread::Builder::new()
        .name("http-auth".into())
        .spawn(move || {
            for check in queue.iter() {
                let start = Instant::now();
                let ok = check_password(&check.password, check.hash.as_deref());
                let checked = Checked {
                    login: check.login,
                    ok,
                    took: start.elapsed(),
                };
                if done.send(wrap(checked)).is_err() {
                    return;
                }
                let _ = waker.wake();
            }
        })?;
    Ok(checks)
}

/// The rate key of a client: its IPv4 address, or the /64 network of an IPv6 one (what one
/// host is usually given).
fn client_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

/// Check time that may be spent: a bucket of seconds, refilled at `share` of real time up
/// to `burst`. A check is admitted while some is left, and charged what it takes.
struct Budget {
    seconds: f64,
    at: Instant,
    share: f64,
    burst: f64,
}

impl Budget {
    fn new(share: f64, burst: f64, now: Instant) -> Self {
        Self {
            seconds: burst,
            at: now,
            share,
            burst,
        }
    }

    /// Refills up to `now`; whether some time is left.
    fn left(&mut self, now: Instant) -> bool {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() * self.share;
        self.seconds = (self.seconds + gained).min(self.burst);
        self.at = self.at.max(now);
        self.seconds > 0.0
    }

    fn charge(&mut self, seconds: f64) {
        self.seconds -= seconds;
    }

    fn full(&mut self, now: Instant) -> bool {
        self.left(now);
        self.seconds >= self.burst
    }
}

/// A bounded set of logins, the least recently seen forgotten first (two generations: a
/// hit in the older one moves it to the newer; when the newer is full, the older goes).
struct Remembered {
    newer: HashSet<Login>,
    older: HashSet<Login>,
    half: usize,
}

impl Remembered {
    fn new(capacity: usize) -> Self {
        Self {
            newer: HashSet::new(),
            older: HashSet::new(),
            half: capacity.div_ceil(2),
        }
    }

    fn contains(&mut self, login: &Login) -> bool {
        if self.newer.contains(login) {
            return true;
        }
        if self.older.remove(login) {
            self.insert(*login);
            return true;
        }
        false
    }

    fn insert(&mut self, login: Login) {
        if self.newer.len() >= self.half {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(login);
    }
}

/// User and password of a `Basic` Authorization value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = crate::pem::decode_base64(encoded.trim().as_bytes()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// What a login is remembered by: never the password itself.
fn login_digest(user: &str, hash: &str, password: &str) -> Login {
    let mut digest = Sha256::new();
    for part in [user, hash, password] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize().into()
}

/// Checks `password` against a bcrypt `hash`; an unknown user (no hash) costs a check all the
/// same, so that timing does not tell which users exist.
fn check_password(password: &str, hash: Option<&str>) -> bool {
    match hash {
        Some(hash) => bcrypt::verify(password, hash).unwrap_or(false),
        None => {
            let _ = bcrypt::verify(password, DECOY);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> String {
        use std::io::Write as _;
        let mut raw = Vec::new();
        let _ = write!(raw, "{user}:{password}");
        // The base64 alphabet, by hand: the crate has only a decoder.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::from("Basic ");
        for chunk in raw.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn gate() -> (Gate, crossbeam_channel::Receiver<Check>, Instant) {
        let (tx, rx) = bounded(QUEUE);
        let now = Instant::now();
        (Gate::new(tx, now), rx, now)
    }

    fn run(check: Check) -> Checked {
        let start = Instant::now();
        let ok = check_password(&check.password, check.hash.as_deref());
        Checked {
            login: check.login,
            ok,
            took: start.elapsed(),
        }
    }

    fn users() -> HashMap<String, String> {
        HashMap::from([("alice".to_string(), bcrypt::hash("secret", 4).unwrap())])
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_login_is_checked_once_then_remembered_whether_good_or_bad() {
        let (mut gate, checks, now) = gate();
        let users = users();
        for (password, ok) in [("secret", true), ("wrong", false)] {
            let auth = basic("alice", password);
            let verdict = gate.check(&users, Some(&auth), HOME, Token(1), now);
            assert_eq!(verdict, Verdict::Wait);
            assert_eq!(
                gate.check(&users, Some(&auth), HOME, Token(2), now),
                Verdict::Wait,
                "joins the check under way"
            );
            let (passed, waiting) = gate.checked(run(checks.try_recv().unwrap()), now);
            assert_eq!((passed, waiting), (ok, vec![Token(1), Token(2)]));
            assert!(checks.try_recv().is_err(), "one check for both");
            let again = gate.check(&users, Some(&auth), HOME, Token(3), now);
            assert_eq!(again, if ok { Verdict::Pass } else { Verdict::Refuse });
            assert!(checks.try_recv().is_err(), "remembered: no bcrypt");
        }
        assert_eq!(
            gate.check(&users, None, HOME, Token(4), now),
            Verdict::Refuse
        );
        // A new hash for alice: what was known of the old one no longer counts.
        let changed = HashMap::from([("alice".to_string(), bcrypt::hash("other", 4).unwrap())]);
        let auth = basic("alice", "secret");
        assert_eq!(
            gate.check(&changed, Some(&auth), HOME, Token(5), now),
            Verdict::Wait
        );
    }

    /// Asks for a fresh check of a new wrong password from `client` at `at`; when
    /// admitted, the check is run as taking `took`.
    fn fresh(
        gate: &mut Gate,
        checks: &crossbeam_channel::Receiver<Check>,
        client: IpAddr,
        n: usize,
        at: Instant,
        took: Duration,
    ) -> Verdict {
        let auth = basic("alice", &format!("guess{n}"));
        let verdict = gate.check(&users(), Some(&auth), client, Token(n), at);
        if verdict == Verdict::Wait {
            let check = checks.try_recv().unwrap();
            let checked = Checked {
                login: check.login,
                ok: false,
                took,
            };
            gate.checked(checked, at);
        }
        verdict
    }

    #[test]
    fn one_address_cannot_spend_more_than_its_share_of_check_time() {
        let (mut gate, checks, now) = gate();
        let took = Duration::from_millis(60);
        let attacker: IpAddr = "192.0.2.1".parse().unwrap();
        let admitted = (0..40)
            .filter(|&n| fresh(&mut gate, &checks, attacker, n, now, took) == Verdict::Wait)
            .count();
        // Its burst of check time, give or take the check that overdraws it.
        let burst = (CLIENT_BURST / took.as_secs_f64()) as usize;
        assert!(
            (burst..=burst + 2).contains(&admitted),
            "{admitted} admitted"
        );
        assert_eq!(
            fresh(&mut gate, &checks, attacker, 50, now, took),
            Verdict::Throttle
        );
        // Another address is not held back by it; the same IPv6 /64 is the same client.
        let other: IpAddr = "2001:db8::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(
            fresh(&mut gate, &checks, other, 60, now, took),
            Verdict::Wait
        );
        let more = (61..100)
            .filter(|&n| fresh(&mut gate, &checks, neighbour, n, now, took) == Verdict::Wait)
            .count();
        assert!(more < burst, "the /64 shares one budget: {more}");
        // In ten seconds the attacker earns about ten checks' time back, no more.
        let later = now + Duration::from_secs(10);
        let again = (100..140)
            .filter(|&n| fresh(&mut gate, &checks, attacker, n, later, took) == Verdict::Wait)
            .count();
        let earned = (10.0 * CLIENT_SHARE / took.as_secs_f64()) as usize;
        assert!((1..=earned + 2).contains(&again), "{again} after 10 s");
    }

    #[test]
    fn many_addresses_together_spend_no_more_than_the_shared_budget() {
        let (mut gate, checks, now) = gate();
        let took = Duration::from_millis(100);
        let mut at = now;
        let mut admitted = 0;
        for n in 0..400 {
            let client = IpAddr::from([198, 51, 100, (n % 250) as u8]);
            if fresh(&mut gate, &checks, client, n, at, took) == Verdict::Wait {
                admitted += 1;
            }
            at += Duration::from_millis(25);
        }
        let spent = admitted as f64 * took.as_secs_f64();
        let allowed = BURST + at.duration_since(now).as_secs_f64() * SHARE + 0.2;
        assert!(
            spent <= allowed,
            "{admitted} checks of 100 ms in {:?}",
            at - now
        );
        assert!(admitted >= 10, "the burst is there: {admitted}");
    }

    #[test]
    fn remembered_logins_are_bounded_and_recent_ones_stay() {
        let mut set = Remembered::new(4);
        let login = |n: u8| [n; 32];
        set.insert(login(1));
        set.insert(login(2));
        set.insert(login(3)); // 1 and 2 become older
        assert!(set.contains(&login(1)), "moved to the newer half");
        set.insert(login(4)); // 3 and 1 become older; 2 is forgotten
        assert!(!set.contains(&login(2)));
        assert!(set.contains(&login(3)) && set.contains(&login(4)));
        assert!(set.newer.len() + set.older.len() <= 4);
    }

    #[test]
    fn credentials_and_passwords() {
        // "alice:secret:with:colons"
        assert_eq!(
            basic_credentials("Basic YWxpY2U6c2VjcmV0OndpdGg6Y29sb25z"),
            Some(("alice".into(), "secret:with:colons".into()))
        );
        assert_eq!(
            basic_credentials(&basic("bob", "p")),
            Some(("bob".into(), "p".into()))
        );
        assert_eq!(basic_credentials("Bearer YWxpY2U6eA=="), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        let hash = bcrypt::hash("secret", 4).unwrap();
        assert!(check_password("secret", Some(&hash)));
        assert!(!check_password("wrong", Some(&hash)));
        assert!(!check_password("secret", None));
        let decoy: bcrypt::HashParts = DECOY.parse().expect("a well-formed hash");
        assert_eq!(decoy.get_cost(), 10, "costs what a real check costs");
        assert_ne!(login_digest("a", "h", "bc"), login_digest("ab", "h", "c"));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
