//! The server's connection pool: PostgreSQL connections handed out one transaction at a time.
//!
//! sqlx's pool tests every connection that comes back to it with a round trip to PostgreSQL and
//! a task per release; under load that is one more round trip per exchange than the transaction
//! needs (profiled: 15–20 % of the rights exchange's throughput on two cores). This pool returns a
//! connection as soon as its transaction ends. A connection that died while idle (database
//! restart, network cut) is found when its first statement fails, and that statement is run once
//! more on a fresh connection, so no exchange fails for it.
//!
//! New connections go to the host of `DATABASE_URL` that gives a writable session ([`Hosts`]).
//! When they move to another host (a failover), or an exchange finds the database gone, the
//! connections opened before are not used again; with several hosts listed, a lease waits (up
//! to the acquire timeout) for one of them to take writes, so that a promotion within that time
//! costs no exchange.

use std::borrow::Cow;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnection, PgTransactionManager};
use sqlx::{Connection, Executor, TransactionManager};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Hosts;

/// Connections are replaced after this long, so that a backend's memory does not grow forever.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Connections idle this long are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How long closing a connection politely may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle connection has to answer its first statement before it is taken for cut
/// off (its host powered off, the network partitioned: no reset ever comes).
const IDLE_FIRST_TIMEOUT: Duration = Duration::from_secs(2);
/// With several hosts and none writable, the pause before trying them all again.
const HOSTS_RETRY: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("open", &self.open())
            .field("idle", &self.idle())
            .finish()
    }
}

struct Inner {
    /// The hosts, and the generation of connections, shared by the server's pools.
    hosts: Arc<Hosts>,
    /// The login role this pool connects as; `None`: the URL's user.
    user: Option<String>,
    acquire_timeout: Duration,
    /// One permit per connection that may be open.
    permits: Arc<Semaphore>,
    /// Most recently used last: the warmest connection is reused first.
    idle: Mutex<Vec<Idle>>,
    open: AtomicU32,
}

struct Idle {
    conn: PgConnection,
    created: Instant,
    generation: u64,
    since: Instant,
}

/// What a lease runs first on its connection, which tells whether the connection is alive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum First {
    /// A statement that asks nothing of the data (`BEGIN`, `SELECT 1`), within the acquire
    /// timeout: a reused connection that stays silent on it says its host is cut off, and so
    /// are the host's other connections.
    Probe,
    /// A read, which may take its time on a busy database: a reused connection silent on it is
    /// left, not its host's others, and on a fresh connection it has no deadline.
    Read,
}

impl Pool {
    /// A pool of at most `size` connections; none is opened before it is needed.
    pub fn new(
        hosts: Arc<Hosts>,
        user: Option<String>,
        size: u32,
        acquire_timeout: Duration,
    ) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                hosts,
                user,
                acquire_timeout,
                permits: Arc::new(Semaphore::new(size as usize)),
                idle: Mutex::new(Vec::with_capacity(size as usize)),
                open: AtomicU32::new(0),
            }),
        }
    }

    /// Connections open, in use or idle.
    pub fn open(&self) -> u32 {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Connections open and idle.
    pub fn idle(&self) -> usize {
        self.inner.idle.lock().expect("pool lock").len()
    }

    /// The database hosts, and the one in use.
    pub fn hosts(&self) -> &Hosts {
        &self.inner.hosts
    }

    /// The login role this pool's connections log in as.
    pub fn user(&self) -> &str {
        self.inner
            .user
            .as_deref()
            .unwrap_or_else(|| self.inner.hosts.user())
    }

    /// A connection opened as this pool opens its own (for checks and tests), outside the pool.
    pub async fn open_unpooled(&self) -> sqlx::Result<PgConnection> {
        Ok(self
            .inner
            .hosts
            .connect(self.inner.user.as_deref())
            .await?
            .0)
    }

    /// No connection of `generation` or before is used again, unless a newer generation began
    /// meanwhile (so that the exchanges failing one after another on a lost host do not also
    /// throw away the connections the first of them opened to the next one).
    pub(crate) fn forsake_connections_of(&self, generation: u64) {
        if self.inner.hosts.advance(generation) {
            self.close_idle_upto(generation);
        }
    }

    /// Closes the idle connections of `generation` or before (the others pools' sweep, after
    /// [`Hosts::advance`]); leased ones are closed when they come back.
    pub(crate) fn close_idle_upto(&self, generation: u64) {
        let stale: Vec<Idle> = {
            let mut idle = self.inner.idle.lock().expect("pool lock");
            let (stale, fresh) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|i| i.generation <= generation);
            *idle = fresh;
            stale
        };
        for idle in stale {
            self.inner.close(idle.conn);
        }
    }

    /// Begins a transaction with `begin` (e.g. `BEGIN; SET LOCAL ROLE …`, one round trip).
    /// Waits at most the acquire timeout for a connection, then fails with `PoolTimedOut`.
    pub(crate) async fn begin_with(&self, begin: &'static str) -> sqlx::Result<Tx> {
        let (lease, ()) = self
            .lease(First::Probe, Some(begin), |c| async { (c, Ok(())) })
            .await?;
        Ok(Tx {
            lease,
            state: TxState::Open,
        })
    }

    /// A connection with what `read` gave on it: in autocommit mode (each statement its own
    /// transaction), or in the transaction `begin` starts. `read` is the connection's first
    /// work and must be safe to run twice: on a reused connection it has two seconds to answer,
    /// and when it fails or stays silent it is run again on a fresh connection. Without
    /// `begin`, nothing goes before it: its answer shows that the connection is alive. Waits at
    /// most the acquire timeout for a connection.
    pub async fn read_with<T, F, Fut>(
        &self,
        begin: Option<&'static str>,
        read: F,
    ) -> sqlx::Result<(Tx, T)>
    where
        F: FnMut(PgConnection) -> Fut,
        Fut: Future<Output = (PgConnection, sqlx::Result<T>)>,
    {
        let (lease, t) = self.lease(First::Read, begin, read).await?;
        let state = match begin {
            Some(_) => TxState::Open,
            None => TxState::Autocommit,
        };
        Ok((Tx { lease, state }, t))
    }

    /// Whether the database answers a query.
    pub(crate) async fn ping(&self) -> bool {
        self.lease(First::Probe, None, ping_on).await.is_ok()
    }

    /// A connection with what `run` (of kind `first`, after `begin` when there is one) gave on
    /// it. The connection goes into `run` by value, so that one which does not answer in time
    /// is dropped with it, never given back while a reply is still due.
    async fn lease<T, F, Fut>(
        &self,
        first: First,
        begin: Option<&'static str>,
        mut run: F,
    ) -> sqlx::Result<(Lease, T)>
    where
        F: FnMut(PgConnection) -> Fut,
        Fut: Future<Output = (PgConnection, sqlx::Result<T>)>,
    {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + inner.acquire_timeout;
        let timed_out = |_| sqlx::Error::PoolTimedOut;
        let permit = tokio::time::timeout_at(deadline, Arc::clone(&inner.permits).acquire_owned())
            .await
            .map_err(timed_out)?
            .expect("the pool's semaphore is never closed");
        if let Some(idle) = self.take_idle() {
            let mut limit = tokio::time::Instant::now() + IDLE_FIRST_TIMEOUT;
            if first == First::Probe {
                limit = limit.min(deadline);
            }
            match tokio::time::timeout_at(limit, run_first(idle.conn, begin, &mut run)).await {
                Ok((conn, Ok(t))) => {
                    inner.open.fetch_add(1, Ordering::Relaxed);
                    let lease = self.lease_of(conn, idle.created, idle.generation, permit);
                    return Ok((lease, t));
                }
                // Cancelled by its statement_timeout or refused a lock: the answer of a live
                // connection, which a fresh one would only make wait as long again.
                Ok((conn, Err(e))) if cancelled(&e) => {
                    self.keep(conn, idle.created, idle.generation, permit, begin);
                    return Err(e);
                }
                // The connection died while idle (or was left unusable): run on a fresh one.
                Ok((conn, Err(_))) => drop(conn),
                Err(_) if first == First::Probe => self.forsake_connections_of(idle.generation),
                Err(_) => {}
            }
        }
        let (conn, generation) = tokio::time::timeout_at(deadline, self.connect())
            .await
            .map_err(timed_out)??;
        let (conn, t) = match first {
            First::Probe => tokio::time::timeout_at(deadline, run_first(conn, begin, &mut run))
                .await
                .map_err(timed_out)?,
            First::Read => run_first(conn, begin, &mut run).await,
        };
        let t = match t {
            Ok(t) => t,
            Err(e) if cancelled(&e) => {
                self.keep(conn, Instant::now(), generation, permit, begin);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        inner.open.fetch_add(1, Ordering::Relaxed);
        Ok((self.lease_of(conn, Instant::now(), generation, permit), t))
    }

    /// Gives back a connection whose first statement was cancelled, after rolling back the
    /// transaction `begin` opened, if any.
    fn keep(
        &self,
        conn: PgConnection,
        created: Instant,
        generation: u64,
        permit: OwnedSemaphorePermit,
        begin: Option<&'static str>,
    ) {
        self.inner.open.fetch_add(1, Ordering::Relaxed);
        let lease = self.lease_of(conn, created, generation, permit);
        let state = match begin {
            Some(_) => TxState::Open,
            None => TxState::Autocommit,
        };
        drop(Tx { lease, state });
    }

    fn lease_of(
        &self,
        conn: PgConnection,
        created: Instant,
        generation: u64,
        permit: OwnedSemaphorePermit,
    ) -> Lease {
        Lease {
            conn: Some(conn),
            created,
            generation,
            permit: Some(permit),
            inner: Arc::clone(&self.inner),
        }
    }

    /// The most recently returned idle connection still worth using (counted out of `open`
    /// until it is leased again); the others that aged out are closed on the way.
    fn take_idle(&self) -> Option<Idle> {
        loop {
            let idle = self.inner.idle.lock().expect("pool lock").pop()?;
            self.inner.open.fetch_sub(1, Ordering::Relaxed);
            if idle.since.elapsed() < IDLE_TIMEOUT
                && idle.created.elapsed() < MAX_LIFETIME
                && idle.generation == self.inner.hosts.generation()
            {
                return Some(idle);
            }
            close_later(idle.conn);
        }
    }

    /// A new connection, and the generation it belongs to.
    async fn connect(&self) -> sqlx::Result<(PgConnection, u64)> {
        let inner = &self.inner;
        let opened = loop {
            let generation = inner.hosts.generation();
            match inner.hosts.connect(inner.user.as_deref()).await {
                Ok((conn, false)) => break (conn, generation),
                Ok((conn, true)) => {
                    // On another host: the connections to the one left behind are not used again.
                    self.forsake_connections_of(generation);
                    break (conn, inner.hosts.generation());
                }
                // With several hosts, one may be promoted soon: the lease's timeout bounds this.
                Err(_) if inner.hosts.several() => tokio::time::sleep(HOSTS_RETRY).await,
                Err(e) => return Err(e),
            }
        };
        Ok(opened)
    }
}

/// Whether PostgreSQL cancelled the statement (`statement_timeout`, 57014) or refused it a lock
/// (`lock_timeout`, `NOWAIT`: 55P03): the connection is alive and answered.
fn cancelled(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("57014" | "55P03")))
}

/// `begin` (`BEGIN`, or several statements that start a transaction) when there is one, then
/// `run`, on `conn`; the connection handed back with the outcome.
async fn run_first<T, F, Fut>(
    mut conn: PgConnection,
    begin: Option<&'static str>,
    run: &mut F,
) -> (PgConnection, sqlx::Result<T>)
where
    F: FnMut(PgConnection) -> Fut,
    Fut: Future<Output = (PgConnection, sqlx::Result<T>)>,
{
    if let Some(begin) = begin {
        if let Err(e) = PgTransactionManager::begin(&mut conn, Some(Cow::Borrowed(begin))).await {
            return (conn, Err(e));
        }
    }
    run(conn).await
}

async fn ping_on(mut conn: PgConnection) -> (PgConnection, sqlx::Result<()>) {
    let r = conn.execute("SELECT 1").await.map(|_| ());
    (conn, r)
}

/// Closes a connection politely (PostgreSQL logs a bare disconnect as an error), in the
/// background; dropped outright where there is no runtime any more.
fn close_later(conn: PgConnection) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
        });
    }
}

/// A connection out of the pool, back to it when dropped.
struct Lease {
    conn: Option<PgConnection>,
    created: Instant,
    generation: u64,
    permit: Option<OwnedSemaphorePermit>,
    inner: Arc<Inner>,
}

impl Deref for Lease {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("a lease holds its connection")
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("a lease holds its connection")
    }
}

impl Inner {
    /// Closes a connection counted in `open`, and counts it out.
    fn close(&self, conn: PgConnection) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        close_later(conn);
    }

    /// Puts a connection back for the next lease, or closes it if it has lived long enough.
    fn give_back(&self, conn: PgConnection, created: Instant, generation: u64) {
        if created.elapsed() >= MAX_LIFETIME || generation != self.hosts.generation() {
            self.close(conn);
            return;
        }
        self.idle.lock().expect("pool lock").push(Idle {
            conn,
            created,
            generation,
            since: Instant::now(),
        });
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Back before the permit is released (fields drop after this), so that a waiter that
        // gets the permit finds the connection.
        if let Some(conn) = self.conn.take() {
            self.inner.give_back(conn, self.created, self.generation);
        }
    }
}

/// A transaction on a pooled connection, or autocommit statements ([`Pool::read_with`]):
/// `&mut *tx` is the connection to run statements on. A transaction dropped without
/// [`Tx::commit`] (an error, a refusal) is rolled back in the background before its connection
/// goes back to the pool, so no lock outlives the exchange.
pub struct Tx {
    lease: Lease,
    state: TxState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    /// Each statement commits on its own.
    Autocommit,
    /// A `BEGIN` was sent by [`Tx::begin`] and has not answered: the connection may be in a
    /// transaction that neither this `Tx` nor sqlx counts, and is closed if dropped now.
    Beginning,
    /// In a transaction, rolled back if dropped.
    Open,
}

impl Tx {
    /// Begins the transaction after autocommit statements (one round trip; nothing when one is
    /// already open). Autocommit statements run only on a pool whose login role is the role
    /// itself ([`Pool::read_with`] without `begin`), so a plain `BEGIN` is the role's.
    pub async fn begin(&mut self) -> sqlx::Result<()> {
        if self.state == TxState::Autocommit {
            // Cut short (the exchange's future dropped) or failed, the BEGIN may still take
            // effect on the server: the connection must not go back to the pool.
            self.state = TxState::Beginning;
            PgTransactionManager::begin(&mut self.lease, None).await?;
            self.state = TxState::Open;
        }
        Ok(())
    }

    /// Commits the transaction; in autocommit mode, where each statement committed on its own,
    /// gives the connection back.
    pub async fn commit(mut self) -> sqlx::Result<()> {
        if self.state == TxState::Open {
            PgTransactionManager::commit(&mut self.lease).await?;
            self.state = TxState::Autocommit;
        }
        Ok(())
    }
}

impl Deref for Tx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.lease
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.lease
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        match self.state {
            TxState::Autocommit => return,
            TxState::Beginning => {
                if let Some(conn) = self.lease.conn.take() {
                    self.lease.inner.close(conn);
                }
                return;
            }
            TxState::Open => {}
        }
        let (Some(mut conn), Some(permit)) = (self.lease.conn.take(), self.lease.permit.take())
        else {
            return;
        };
        let inner = Arc::clone(&self.lease.inner);
        let (created, generation) = (self.lease.created, self.lease.generation);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            inner.open.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        rt.spawn(async move {
            // Also drains what a statement cut short (its future dropped) left on the wire.
            let rolled_back =
                tokio::time::timeout(CLOSE_TIMEOUT, PgTransactionManager::rollback(&mut conn))
                    .await
                    .is_ok_and(|r| r.is_ok());
            if rolled_back {
                inner.give_back(conn, created, generation);
            } else {
                inner.open.fetch_sub(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
}
