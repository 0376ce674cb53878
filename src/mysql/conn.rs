//! One MySQL connection as callers use it: text queries, prepared
//! statements with parameters (prepared once per SQL text, kept in an LRU
//! cache, closed on eviction), affected rows and last insert id, and
//! transaction helpers.
//!
//! Every statement runs under a deadline (the options' statement timeout,
//! from sending it to its last row). A connection is marked broken when a
//! statement starts and unmarked only when it ends in step — so a timeout,
//! an I/O or protocol error, or a caller dropping the future half-way all
//! leave it broken, and [`Connection::is_broken`] tells a pool to drop it:
//! the bytes still owed by the server would otherwise be read as the answer
//! to the next statement. A server error (duplicate key, deadlock, syntax)
//! leaves it usable.

use super::connect::{self, Session};
use super::error::{codes, MysqlError};
use super::opts::Opts;
use super::packet::PacketStream;
use super::result::{self, Protocol, QueryResult};
use super::stmt_cache::{Prepared, StmtCache};
use mysql_common::constants::{Command, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{ComStmtClose, ComStmtExecuteRequestBuilder, StmtPacket};
use mysql_common::Value;
use std::future::Future;
use std::time::Duration;

/// An open, authenticated connection to a MySQL or MariaDB server.
pub struct Connection {
    link: Link,
    broken: bool,
    statement_timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.link.session.connection_id)
            .field("broken", &self.broken)
            .finish()
    }
}

/// `f`, or [`MysqlError::Timeout`] once `limit` has passed (dropping `f`).
async fn deadline<T>(
    limit: Duration,
    f: impl Future<Output = Result<T, MysqlError>>,
) -> Result<T, MysqlError> {
    futures_lite::future::or(f, async move {
        glommio::timer::sleep(limit).await;
        Err(MysqlError::Timeout(limit))
    })
    .await
}

impl Connection {
    /// Connects and authenticates, within `opts.connect_timeout`.
    pub async fn connect(opts: &Opts) -> Result<Connection, MysqlError> {
        let (packets, session) = deadline(opts.connect_timeout, connect::connect(opts)).await?;
        Ok(Connection {
            link: Link {
                packets,
                session,
                cache: StmtCache::new(opts.stmt_cache_size),
            },
            broken: false,
            statement_timeout: opts.statement_timeout,
        })
    }

    /// Connects to `url` (`mysql://user:pass@host:port/db`) with the
    /// default limits.
    pub async fn connect_url(url: &str) -> Result<Connection, MysqlError> {
        Connection::connect(&Opts::from_url(url)?).await
    }

    /// The server's id for this connection (what `KILL` takes).
    pub fn connection_id(&self) -> u32 {
        self.link.session.connection_id
    }

    /// The server's version string.
    pub fn server_version(&self) -> &str {
        &self.link.session.server_version
    }

    /// Whether the connection broke (I/O or protocol error, timeout, a
    /// statement abandoned half-way): it must not be used again.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Whether a transaction is open, as of the server's last OK or EOF.
    pub fn in_transaction(&self) -> bool {
        self.link
            .session
            .status
            .contains(StatusFlags::SERVER_STATUS_IN_TRANS)
    }

    /// Prepared statements kept by the cache now.
    pub fn cached_statements(&self) -> usize {
        self.link.cache.len()
    }

    /// The bound on each later statement.
    pub fn set_statement_timeout(&mut self, limit: Duration) {
        self.statement_timeout = limit;
    }

    /// Runs `sql` in the text protocol (`COM_QUERY`): rows hold bytes or NULL.
    pub async fn query(&mut self, sql: &str) -> Result<QueryResult, MysqlError> {
        let limit = self.start()?;
        let r = deadline(limit, self.link.query(sql)).await;
        self.end(r)
    }

    /// Runs `sql` as a prepared statement with `params` bound to its `?`s
    /// (binary protocol): prepared on first use and cached; rows hold typed
    /// values.
    pub async fn exec(&mut self, sql: &str, params: &[Value]) -> Result<QueryResult, MysqlError> {
        let limit = self.start()?;
        let r = deadline(limit, self.link.exec(sql, params)).await;
        self.end(r)
    }

    /// Runs several prepared statements pipelined: sent in one write, their
    /// answers read in order — one round trip for all (statements not yet
    /// prepared are prepared first, a round trip each, once per
    /// connection). The server runs each whatever the others gave, so a
    /// caller must not batch a statement that may only run if an earlier
    /// one succeeded. Answers are read once everything is written, so keep
    /// a batch to what the socket buffers hold (a few hundred statements
    /// with short answers). Each statement's result; `Err` as a whole only
    /// when the connection failed (it is then broken).
    pub async fn exec_batch(
        &mut self,
        batch: &[(&str, Vec<Value>)],
    ) -> Result<Vec<Result<QueryResult, MysqlError>>, MysqlError> {
        let limit = self.start()?;
        let r = deadline(limit, self.link.exec_batch(batch)).await;
        self.end(r)
    }

    /// Starts a transaction.
    pub async fn begin(&mut self) -> Result<(), MysqlError> {
        self.query("START TRANSACTION").await.map(drop)
    }

    /// Commits the open transaction.
    pub async fn commit(&mut self) -> Result<(), MysqlError> {
        self.query("COMMIT").await.map(drop)
    }

    /// Rolls the open transaction back.
    pub async fn rollback(&mut self) -> Result<(), MysqlError> {
        self.query("ROLLBACK").await.map(drop)
    }

    /// Asks the server whether the connection is alive (`COM_PING`).
    pub async fn ping(&mut self) -> Result<(), MysqlError> {
        let limit = self.start()?;
        let r = deadline(limit, self.link.ping()).await;
        self.end(r)
    }

    /// Says goodbye (`COM_QUIT`) and closes the socket.
    pub async fn close(mut self) {
        if !self.broken {
            let limit = self.statement_timeout;
            let _ = deadline(limit, self.link.quit()).await;
        }
    }

    /// Refuses a broken connection, and marks it broken until the
    /// statement about to run ends in step.
    fn start(&mut self) -> Result<Duration, MysqlError> {
        if self.broken {
            return Err(MysqlError::Broken);
        }
        self.broken = true;
        Ok(self.statement_timeout)
    }

    fn end<T>(&mut self, r: Result<T, MysqlError>) -> Result<T, MysqlError> {
        self.broken = matches!(&r, Err(e) if e.breaks_connection());
        r
    }
}

/// The connection's wire state.
struct Link {
    packets: PacketStream,
    session: Session,
    cache: StmtCache,
}

impl Link {
    async fn command(&mut self, cmd: Command, body: &[u8]) -> Result<(), MysqlError> {
        self.packets.reset_seq();
        self.packets.write_command(cmd as u8, body).await
    }

    async fn answer(&mut self, protocol: Protocol) -> Result<QueryResult, MysqlError> {
        let caps = self.session.capabilities;
        let read = result::read_result(&mut self.packets, caps, protocol).await;
        self.packets.shrink();
        let (result, status) = read?;
        self.session.status = status;
        Ok(result)
    }

    async fn query(&mut self, sql: &str) -> Result<QueryResult, MysqlError> {
        self.command(Command::COM_QUERY, sql.as_bytes()).await?;
        self.answer(Protocol::Text).await
    }

    async fn exec(&mut self, sql: &str, params: &[Value]) -> Result<QueryResult, MysqlError> {
        let (stmt, close_after) = match self.cache.get(sql) {
            Some(stmt) => (stmt, false),
            None => {
                let stmt = self.prepare(sql).await?;
                match self.cache.insert(sql, stmt) {
                    Some(same) if same == stmt => (stmt, true),
                    Some(evicted) => {
                        self.close_stmt(evicted.id).await?;
                        (stmt, false)
                    }
                    None => (stmt, false),
                }
            }
        };
        let r = self.execute(stmt, params).await;
        if let Err(e) = &r {
            if matches!(
                e.code(),
                Some(codes::UNKNOWN_STMT_HANDLER | codes::NEED_REPREPARE)
            ) {
                // Unknown statement / needs re-preparing: prepare again next time.
                self.cache.remove(sql);
            }
        }
        if close_after && !matches!(&r, Err(e) if e.breaks_connection()) {
            self.close_stmt(stmt.id).await?;
        }
        r
    }

    async fn exec_batch(
        &mut self,
        batch: &[(&str, Vec<Value>)],
    ) -> Result<Vec<Result<QueryResult, MysqlError>>, MysqlError> {
        // A cache too small to hold the batch's statements could close one
        // of them before it runs: one at a time then.
        let mut distinct: Vec<&str> = batch.iter().map(|(sql, _)| *sql).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > self.cache.capacity() {
            let mut out = Vec::with_capacity(batch.len());
            for (sql, params) in batch {
                match self.exec(sql, params).await {
                    Err(e) if e.breaks_connection() => return Err(e),
                    r => out.push(r),
                }
            }
            return Ok(out);
        }
        let mut stmts = Vec::with_capacity(batch.len());
        for (sql, params) in batch {
            let stmt = match self.cache.get(sql) {
                Some(stmt) => stmt,
                None => {
                    let stmt = self.prepare(sql).await?;
                    if let Some(evicted) = self.cache.insert(sql, stmt) {
                        if evicted != stmt {
                            self.close_stmt(evicted.id).await?;
                        }
                    }
                    stmt
                }
            };
            if params.len() != usize::from(stmt.params) {
                return Err(MysqlError::Usage(format!(
                    "the statement takes {} parameters, {} given",
                    stmt.params,
                    params.len()
                )));
            }
            stmts.push(stmt);
        }
        for (stmt, (_, params)) in stmts.iter().zip(batch) {
            let (request, as_long_data) = ComStmtExecuteRequestBuilder::new(stmt.id).build(params);
            if as_long_data {
                return Err(MysqlError::Usage(
                    "parameters over 16 MiB in all are not supported".into(),
                ));
            }
            self.packets.queue_struct(&request)?;
        }
        self.packets.flush().await?;
        let mut out = Vec::with_capacity(batch.len());
        for (sql, _) in batch {
            self.packets.expect_answer()?;
            match self.answer(Protocol::Binary).await {
                Err(e) if e.breaks_connection() => return Err(e),
                r => {
                    if let Err(e) = &r {
                        if matches!(
                            e.code(),
                            Some(codes::UNKNOWN_STMT_HANDLER | codes::NEED_REPREPARE)
                        ) {
                            self.cache.remove(sql);
                        }
                    }
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    async fn execute(
        &mut self,
        stmt: Prepared,
        params: &[Value],
    ) -> Result<QueryResult, MysqlError> {
        if params.len() != usize::from(stmt.params) {
            return Err(MysqlError::Usage(format!(
                "the statement takes {} parameters, {} given",
                stmt.params,
                params.len()
            )));
        }
        let (request, as_long_data) = ComStmtExecuteRequestBuilder::new(stmt.id).build(params);
        if as_long_data {
            return Err(MysqlError::Usage(
                "parameters over 16 MiB in all are not supported".into(),
            ));
        }
        self.packets.reset_seq();
        self.packets.write_struct(&request).await?;
        self.answer(Protocol::Binary).await
    }

    /// `COM_STMT_PREPARE`: the statement's id and parameter count (its
    /// parameter and column definitions are read and dropped: every
    /// execution's result carries its columns again).
    async fn prepare(&mut self, sql: &str) -> Result<Prepared, MysqlError> {
        self.command(Command::COM_STMT_PREPARE, sql.as_bytes())
            .await?;
        let caps = self.session.capabilities;
        let packet = self.packets.read().await?;
        if packet.first() == Some(&0xff) {
            return Err(result::server_error(packet, caps));
        }
        let ok: StmtPacket = ParseBuf(packet)
            .parse(())
            .map_err(|e| MysqlError::protocol(format!("bad prepare answer: {e}")))?;
        let stmt = Prepared {
            id: ok.statement_id(),
            params: ok.num_params(),
        };
        result::read_columns(&mut self.packets, usize::from(ok.num_params()), caps).await?;
        result::read_columns(&mut self.packets, usize::from(ok.num_columns()), caps).await?;
        Ok(stmt)
    }

    /// `COM_STMT_CLOSE` (the server sends no answer).
    async fn close_stmt(&mut self, id: u32) -> Result<(), MysqlError> {
        self.packets.reset_seq();
        self.packets.write_struct(&ComStmtClose::new(id)).await
    }

    async fn ping(&mut self) -> Result<(), MysqlError> {
        self.command(Command::COM_PING, &[]).await?;
        let caps = self.session.capabilities;
        let packet = self.packets.read().await?;
        match packet.first() {
            Some(0x00) => {
                let status = result::parse_ok(packet, caps)?.status_flags();
                self.session.status = status;
                Ok(())
            }
            Some(0xff) => Err(result::server_error(packet, caps)),
            _ => Err(MysqlError::protocol("unexpected answer to COM_PING")),
        }
    }

    async fn quit(&mut self) -> Result<(), MysqlError> {
        self.command(Command::COM_QUIT, &[]).await
    }
}
