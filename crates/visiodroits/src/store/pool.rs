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

/// What a leased connection runs first; run again on a fresh connection if a reused one fails.
enum First {
    Begin(&'static str),
    Ping,
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
            self.inner.open.fetch_sub(1, Ordering::Relaxed);
            close_later(idle.conn);
        }
    }

    /// Begins a transaction with `begin` (e.g. `BEGIN; SET LOCAL ROLE …`, one round trip).
    /// Waits at most the acquire timeout for a connection, then fails with `PoolTimedOut`.
    pub(crate) async fn begin_with(&self, begin: &'static str) -> sqlx::Result<Tx> {
        let lease = self.lease(First::Begin(begin)).await?;
        Ok(Tx { lease, open: true })
    }

    /// Whether the database answers a query.
    pub(crate) async fn ping(&self) -> bool {
        self.lease(First::Ping).await.is_ok()
    }

    async fn lease(&self, first: First) -> sqlx::Result<Lease> {
        let inner = &self.inner;
        tokio::time::timeout(inner.acquire_timeout, async {
            let permit = Arc::clone(&inner.permits)
                .acquire_owned()
                .await
                .expect("the pool's semaphore is never closed");
            let Some(mut idle) = self.take_idle() else {
                return self.connect(permit, &first).await;
            };
            // Until `first` has answered, the connection is ours alone: a lease cut short here
            // drops it rather than give back one that waits for a reply.
            let check = tokio::time::timeout(IDLE_FIRST_TIMEOUT, first.run(&mut idle.conn)).await;
            if let Ok(Ok(())) = check {
                inner.open.fetch_add(1, Ordering::Relaxed);
                return Ok(self.lease_of(idle.conn, idle.created, idle.generation, permit));
            }
            if check.is_err() {
                // No answer at all: the host is cut off, and so are its other connections.
                self.forsake_connections_of(idle.generation);
            }
            // The connection died while idle (or was left unusable): drop it, run on a fresh one.
            drop(idle.conn);
            self.connect(permit, &first).await
        })
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
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

    /// A lease on a new connection, `first` run on it.
    async fn connect(&self, permit: OwnedSemaphorePermit, first: &First) -> sqlx::Result<Lease> {
        let inner = &self.inner;
        let (mut conn, generation) = loop {
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
        first.run(&mut conn).await?;
        inner.open.fetch_add(1, Ordering::Relaxed);
        Ok(self.lease_of(conn, Instant::now(), generation, permit))
    }
}

impl First {
    async fn run(&self, conn: &mut PgConnection) -> sqlx::Result<()> {
        match self {
            First::Begin(sql) => PgTransactionManager::begin(conn, Some(Cow::Borrowed(sql))).await,
            First::Ping => conn.execute("SELECT 1").await.map(|_| ()),
        }
    }
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
    /// Puts a connection back for the next lease, or closes it if it has lived long enough.
    fn give_back(&self, conn: PgConnection, created: Instant, generation: u64) {
        if created.elapsed() >= MAX_LIFETIME || generation != self.hosts.generation() {
            self.open.fetch_sub(1, Ordering::Relaxed);
            close_later(conn);
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

/// A transaction on a pooled connection: `&mut *tx` is the connection to run statements on.
/// Dropped without [`Tx::commit`] (an error, a refusal), it is rolled back in the background
/// before its connection goes back to the pool, so no lock outlives the exchange.
pub struct Tx {
    lease: Lease,
    open: bool,
}

impl Tx {
    pub async fn commit(mut self) -> sqlx::Result<()> {
        PgTransactionManager::commit(&mut self.lease).await?;
        self.open = false;
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
        if !self.open {
            return;
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
