//! Opening a connection: TCP connect, the server's greeting, the client's
//! handshake response and the authentication exchange, until the server's
//! OK. Capabilities are the ones the rest of the client relies on, including
//! CLIENT_FOUND_ROWS, so "affected rows" counts matched rows, as SQLite
//! does (the store's transactions rely on it).
//!
//! The exchange itself is [`Auth`], a state machine without I/O: it is fed
//! each packet the server sends and says what to send back. The plugins'
//! cryptography is mysql_common's (`AuthProc`): `mysql_native_password`,
//! and `caching_sha2_password` with its fast path (the server has the
//! password's hash cached: one scramble, then OK) and its full path over a
//! plain connection (the client asks for the server's RSA public key and
//! sends the password encrypted with it, OAEP-padded). An auth switch
//! request (the account uses another plugin than the greeting offered) is
//! followed once. MariaDB does not speak `caching_sha2_password`, so that
//! path is covered by the unit tests below, which drive [`Auth`] with the
//! packets a MySQL 8 server sends, built with mysql_common.

use super::error::MysqlError;
use super::opts::Opts;
use super::packet::PacketStream;
use super::result::{parse_ok, server_error};
use glommio::net::TcpStream;
use mysql_common::auth::plugins::{AuthProc, ChallengeResponsePlugin, Context, Response};
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, AuthSwitchRequest, HandshakePacket, HandshakeResponse};
use mysql_common::proto::MySerialize;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// What the handshake established.
#[derive(Debug, Clone)]
pub struct Session {
    /// The server's id for this connection (what `KILL` takes).
    pub connection_id: u32,
    /// Capabilities both sides have.
    pub capabilities: CapabilityFlags,
    /// Server status after the handshake.
    pub status: StatusFlags,
    /// The server's version string.
    pub server_version: String,
}

/// The capabilities this client asks for (those the server lacks are dropped).
fn client_capabilities(with_db: bool) -> CapabilityFlags {
    let mut caps = CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_FOUND_ROWS;
    if with_db {
        caps |= CapabilityFlags::CLIENT_CONNECT_WITH_DB;
    }
    caps
}

/// The addresses `host` names: an IP literal at once; a name through the
/// system resolver on one of the executor's blocking threads, so a slow DNS
/// server never stalls the shard (the caller's deadline bounds the wait).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, MysqlError> {
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let name = host.to_string();
    let found = glommio::executor()
        .spawn_blocking(move || {
            (name.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>())
        })
        .await
        .map_err(|e| MysqlError::Config(format!("cannot resolve {host}: {e}")))?;
    if found.is_empty() {
        return Err(MysqlError::Config(format!("no address for {host}")));
    }
    Ok(found)
}

/// Opens a TCP connection to the first of `addrs` that accepts one.
async fn connect_any(addrs: &[SocketAddr], opts: &Opts) -> Result<TcpStream, MysqlError> {
    let mut last = MysqlError::Config(format!("no address for {}", opts.host));
    for addr in addrs {
        match TcpStream::connect_timeout(*addr, opts.connect_timeout).await {
            Ok(stream) => return Ok(stream),
            Err(e) => {
                last = match std::io::Error::from(e) {
                    e if e.kind() == std::io::ErrorKind::TimedOut => {
                        MysqlError::Timeout(opts.connect_timeout)
                    }
                    e => MysqlError::Io(e),
                }
            }
        }
    }
    Err(last)
}

/// Connects to `opts`' server and authenticates: the name resolved off the
/// shard, each of its addresses tried in turn (no timeout of its own: the
/// caller bounds the whole of it).
pub async fn connect(opts: &Opts) -> Result<(PacketStream, Session), MysqlError> {
    let addrs = resolve(&opts.host, opts.port).await?;
    let stream = connect_any(&addrs, opts).await?;
    let _ = stream.set_nodelay(true);
    let mut packets = PacketStream::new(stream, opts.max_allowed_packet);
    let greeting = packets.read().await?;
    if greeting.first() == Some(&0xff) {
        // Refused before the handshake (too many connections, host blocked).
        return Err(server_error(greeting, CapabilityFlags::empty()));
    }
    let (mut auth, response) = Auth::start(greeting, opts)?;
    let mut session = auth.session.clone();
    packets.write(&response).await?;
    loop {
        let packet = packets.read().await?;
        match auth.on_packet(packet)? {
            AuthStep::Send(reply) => packets.write(&reply).await?,
            AuthStep::Wait => {}
            AuthStep::Done(status) => {
                session.status = status;
                return Ok((packets, session));
            }
        }
    }
}

/// What to do after a packet of the authentication exchange.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthStep {
    /// Send this payload, then read the next packet.
    Send(Vec<u8>),
    /// Send nothing; read the next packet.
    Wait,
    /// Authenticated; the server status of its OK.
    Done(StatusFlags),
}

/// The authentication exchange, without I/O.
pub struct Auth {
    session: Session,
    password: Vec<u8>,
    plugin: AuthPlugin<'static>,
    proc: AuthProc,
    /// The current plugin's scramble (the greeting's or the auth switch's).
    nonce: Vec<u8>,
    /// The plugin asked for another challenge.
    expects_more: bool,
    /// An auth switch was followed already (a second is refused).
    switched: bool,
}

/// What mysql_common's plugins need to know (no TLS, no socket file, no
/// configured server key: the full caching_sha2 path asks the server for it).
#[derive(Clone, Copy)]
struct AuthCtx<'a> {
    pass: &'a [u8],
    scramble: &'a [u8],
}

impl Context for AuthCtx<'_> {
    fn pass(&self) -> &[u8] {
        self.pass
    }
    fn is_ipc_transport(&self) -> bool {
        false
    }
    fn is_tls_transport(&self) -> bool {
        false
    }
    fn scramble(&self) -> &[u8] {
        self.scramble
    }
    fn server_key_pem(&self) -> Option<&[u8]> {
        None
    }
}

impl Auth {
    /// Reads the server's greeting and returns the exchange and the
    /// handshake response payload to send.
    pub fn start(greeting: &[u8], opts: &Opts) -> Result<(Auth, Vec<u8>), MysqlError> {
        let hs: HandshakePacket<'_> = ParseBuf(greeting)
            .parse(())
            .map_err(|e| MysqlError::protocol(format!("bad server greeting: {e}")))?;
        if hs.protocol_version() != 10 {
            return Err(MysqlError::protocol(format!(
                "unsupported protocol version {}",
                hs.protocol_version()
            )));
        }
        if !hs
            .capabilities()
            .contains(CapabilityFlags::CLIENT_PROTOCOL_41)
        {
            return Err(MysqlError::protocol("the server lacks CLIENT_PROTOCOL_41"));
        }
        let db = opts.db.as_deref().filter(|d| !d.is_empty());
        let caps = hs.capabilities() & client_capabilities(db.is_some());
        // Only these two are offered first; any other comes by auth switch.
        let plugin = match hs.auth_plugin() {
            Some(AuthPlugin::CachingSha2Password) => AuthPlugin::CachingSha2Password,
            _ => AuthPlugin::MysqlNativePassword,
        };
        let mut nonce = hs.nonce();
        nonce.truncate(20);
        let mut auth = Auth {
            session: Session {
                connection_id: hs.connection_id(),
                capabilities: caps,
                status: hs.status_flags(),
                server_version: hs.server_version_str().into_owned(),
            },
            password: opts.password.as_bytes().to_vec(),
            proc: init(&plugin)?,
            plugin,
            nonce,
            expects_more: false,
            switched: false,
        };
        let first = auth.run_plugin(None)?;
        let response = HandshakeResponse::new(
            Some(first),
            hs.server_version_parsed().unwrap_or((0, 0, 0)),
            Some(opts.user.as_bytes()),
            db.map(str::as_bytes),
            Some(auth.plugin.clone()),
            caps,
            None,
            u32::try_from(opts.max_allowed_packet).unwrap_or(u32::MAX),
        );
        let mut out = Vec::new();
        response.serialize(&mut out);
        Ok((auth, out))
    }

    /// The plugin's answer to `challenge` (the current nonce when `None`).
    fn run_plugin(&mut self, challenge: Option<&[u8]>) -> Result<Vec<u8>, MysqlError> {
        let ctx = AuthCtx {
            pass: &self.password,
            scramble: &self.nonce,
        };
        let response = self
            .proc
            .run(ctx, challenge.unwrap_or(&self.nonce))
            .map_err(|e| MysqlError::Auth(format!("{}: {e}", plugin_name(&self.plugin))))?;
        self.expects_more = matches!(response, Response::Next { .. });
        Ok(response.data().map(<[u8]>::to_vec).unwrap_or_default())
    }

    /// Takes the server's next packet of the exchange.
    pub fn on_packet(&mut self, packet: &[u8]) -> Result<AuthStep, MysqlError> {
        let caps = self.session.capabilities;
        match packet.first() {
            Some(0x00) => Ok(AuthStep::Done(parse_ok(packet, caps)?.status_flags())),
            Some(0xff) => Err(server_error(packet, caps)),
            Some(0xfe) if self.switched => Err(MysqlError::protocol("a second auth switch")),
            Some(0xfe) => {
                self.switched = true;
                if packet.len() == 1 {
                    return Err(MysqlError::Auth(
                        "the server asks for the pre-4.1 password scheme".into(),
                    ));
                }
                let switch: AuthSwitchRequest<'_> = ParseBuf(packet)
                    .parse(())
                    .map_err(|e| MysqlError::protocol(format!("bad auth switch: {e}")))?;
                self.plugin = switch.auth_plugin().into_owned();
                self.nonce = switch.plugin_data().to_vec();
                self.proc = init(&self.plugin)?;
                Ok(AuthStep::Send(self.run_plugin(None)?))
            }
            Some(0x01) if self.expects_more => {
                let reply = self.run_plugin(Some(&packet[1..]))?;
                // caching_sha2's fast path answers "cached" with nothing to send.
                if reply.is_empty() && !self.expects_more {
                    Ok(AuthStep::Wait)
                } else {
                    Ok(AuthStep::Send(reply))
                }
            }
            Some(b) => Err(MysqlError::protocol(format!(
                "unexpected packet 0x{b:02x} during authentication with {}",
                plugin_name(&self.plugin)
            ))),
            None => Err(MysqlError::protocol("empty packet during authentication")),
        }
    }
}

/// `plugin`'s state machine; plugins this client does not speak are refused.
fn init(plugin: &AuthPlugin<'_>) -> Result<AuthProc, MysqlError> {
    match plugin {
        AuthPlugin::MysqlNativePassword | AuthPlugin::CachingSha2Password => plugin
            .init()
            .map_err(|e| MysqlError::Auth(format!("{}: {e}", plugin_name(plugin)))),
        other => Err(MysqlError::Auth(format!(
            "unsupported authentication plugin {}",
            plugin_name(other)
        ))),
    }
}

fn plugin_name(plugin: &AuthPlugin<'_>) -> String {
    String::from_utf8_lossy(plugin.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    //! The exchanges a MySQL 8 server has with this client, its packets
    //! built with mysql_common (MariaDB does not speak caching_sha2, so the
    //! integration tests cannot reach these paths).

    use super::*;
    use mysql_common::auth::plugins::caching_sha2_password::scramble_sha256;
    use mysql_common::auth::plugins::mysql_native_password::scramble_native;
    use mysql_common::packets::{AuthMoreData, ErrPacket, ServerError};

    const NONCE: [u8; 20] = *b"abcdefghijklmnopqrst";

    fn opts() -> Opts {
        Opts::from_url("mysql://app:s3cret@127.0.0.1:3306/game1").expect("url")
    }

    fn greeting(plugin: &[u8]) -> Vec<u8> {
        let mut scramble_2 = NONCE[8..].to_vec();
        scramble_2.push(0);
        let hs = HandshakePacket::new(
            10,
            &b"8.0.36"[..],
            42,
            NONCE[..8].try_into().expect("8 bytes"),
            Some(scramble_2),
            CapabilityFlags::from_bits_truncate(0xffff_ffff)
                - CapabilityFlags::CLIENT_SSL
                - CapabilityFlags::CLIENT_DEPRECATE_EOF,
            45,
            StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            Some(plugin),
        );
        let mut out = Vec::new();
        hs.serialize(&mut out);
        out
    }

    fn more_data(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        AuthMoreData::new(data).serialize(&mut out);
        out
    }

    /// An OK packet: no rows, no id, autocommit.
    const OK: &[u8] = &[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00];

    fn start(plugin: &[u8]) -> (Auth, Vec<u8>) {
        Auth::start(&greeting(plugin), &opts()).expect("start")
    }

    #[test]
    fn caching_sha2_fast_path() {
        let (mut auth, bytes) = start(b"caching_sha2_password");
        let response: HandshakeResponse<'_> = ParseBuf(&bytes).parse(()).expect("response");
        assert_eq!(response.user(), b"app");
        assert_eq!(response.db_name(), Some(&b"game1"[..]));
        assert_eq!(
            response.auth_plugin(),
            Some(&AuthPlugin::CachingSha2Password)
        );
        assert!(response
            .capabilities()
            .contains(CapabilityFlags::CLIENT_FOUND_ROWS));
        let expected = scramble_sha256(&NONCE, b"s3cret").expect("scramble");
        assert_eq!(response.scramble_buf(), &expected[..]);
        // 0x03: the server has the hash cached; its OK follows.
        assert_eq!(
            auth.on_packet(&more_data(&[0x03])).expect("fast"),
            AuthStep::Wait
        );
        assert_eq!(
            auth.on_packet(OK).expect("ok"),
            AuthStep::Done(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
        );
    }

    #[test]
    fn caching_sha2_full_path_over_rsa() {
        let (mut auth, _) = start(b"caching_sha2_password");
        // 0x04: not cached; over plain TCP the client asks for the key (0x02).
        assert_eq!(
            auth.on_packet(&more_data(&[0x04])).expect("full"),
            AuthStep::Send(vec![0x02])
        );
        let keys = TestKeys::make();
        let AuthStep::Send(encrypted) = auth.on_packet(&more_data(&keys.public_pem)).expect("key")
        else {
            panic!("the encrypted password must be sent");
        };
        assert_eq!(encrypted.len(), keys.modulus_bytes);
        if let Some(plain) = keys.decrypt(&encrypted) {
            // password + NUL, XORed with the scramble.
            let want: Vec<u8> = b"s3cret\0"
                .iter()
                .enumerate()
                .map(|(i, c)| c ^ NONCE[i % NONCE.len()])
                .collect();
            assert_eq!(plain, want);
        }
        assert_eq!(
            auth.on_packet(OK).expect("ok"),
            AuthStep::Done(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
        );
    }

    #[test]
    fn switch_to_native_password_once() {
        let (mut auth, _) = start(b"caching_sha2_password");
        let new_nonce = *b"ZYXWVUTSRQPONMLKJIHG";
        let mut switch = Vec::new();
        AuthSwitchRequest::new(
            &b"mysql_native_password"[..],
            &[&new_nonce[..], &[0]].concat()[..],
        )
        .serialize(&mut switch);
        let want = scramble_native(&new_nonce, b"s3cret").expect("scramble");
        assert_eq!(
            auth.on_packet(&switch).expect("switch"),
            AuthStep::Send(want.to_vec())
        );
        assert!(matches!(
            auth.on_packet(&switch),
            Err(MysqlError::Protocol(_))
        ));
    }

    #[test]
    fn refusals_keep_the_server_code() {
        let (mut auth, _) = start(b"mysql_native_password");
        let mut err = Vec::new();
        ErrPacket::Error(ServerError::new(
            1045,
            Some(mysql_common::packets::SqlState::new(*b"28000")),
            &b"Access denied"[..],
        ))
        .serialize(&mut err);
        let e = auth.on_packet(&err).expect_err("refused");
        assert_eq!((e.code(), e.sql_state()), (Some(1045), Some("28000")));
        // Native password asks for nothing more: a more-data packet is out of step.
        let (mut auth, _) = start(b"mysql_native_password");
        assert!(matches!(
            auth.on_packet(&more_data(&[0x03])),
            Err(MysqlError::Protocol(_))
        ));
        let mut switch = Vec::new();
        AuthSwitchRequest::new(&b"dialog"[..], &b"x"[..]).serialize(&mut switch);
        let (mut auth, _) = start(b"mysql_native_password");
        assert!(matches!(auth.on_packet(&switch), Err(MysqlError::Auth(_))));
    }

    /// An RSA key pair for the full caching_sha2 path: made by the openssl
    /// command when it is installed (then the test also decrypts what the
    /// client sent); otherwise a fixed public key, and only the length of
    /// the ciphertext is checked.
    struct TestKeys {
        public_pem: Vec<u8>,
        modulus_bytes: usize,
        dir: Option<std::path::PathBuf>,
    }

    const FIXED_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC5tGjhjG5GjDrdg2GdDlQBL+Sm
hIGLA4zbIpnCq3FVhfcVCI14AY9IYG5nwQXW+65glLLQpOixNEOstxqZ9y1fOL5e
1CK9DzwgQZZFRG9a0srGQrUDHBGpCuR8IxZPGM9CjaaBaxhFqZN9gxpqRdEIMP5u
3Vd7YSHXaJJf8n4KVQIDAQAB
-----END PUBLIC KEY-----
";

    impl TestKeys {
        fn make() -> TestKeys {
            use std::process::Command;
            let dir = std::env::temp_dir().join(format!("dm-mysql-rsa-{}", std::process::id()));
            let made = std::fs::create_dir_all(&dir).is_ok()
                && Command::new("openssl")
                    .args(["genrsa", "-out"])
                    .arg(dir.join("key.pem"))
                    .arg("2048")
                    .output()
                    .is_ok_and(|o| o.status.success())
                && Command::new("openssl")
                    .args(["rsa", "-pubout", "-in"])
                    .arg(dir.join("key.pem"))
                    .arg("-out")
                    .arg(dir.join("pub.pem"))
                    .output()
                    .is_ok_and(|o| o.status.success());
            match std::fs::read(dir.join("pub.pem")) {
                Ok(public_pem) if made => TestKeys {
                    public_pem,
                    modulus_bytes: 256,
                    dir: Some(dir),
                },
                _ => {
                    eprintln!("openssl not usable: checking the ciphertext's length only");
                    TestKeys {
                        public_pem: FIXED_PUBLIC_PEM.as_bytes().to_vec(),
                        modulus_bytes: 128,
                        dir: None,
                    }
                }
            }
        }

        fn decrypt(&self, data: &[u8]) -> Option<Vec<u8>> {
            use std::process::Command;
            let dir = self.dir.as_ref()?;
            std::fs::write(dir.join("enc.bin"), data).ok()?;
            let out = Command::new("openssl")
                .args([
                    "pkeyutl",
                    "-decrypt",
                    "-pkeyopt",
                    "rsa_padding_mode:oaep",
                    "-inkey",
                ])
                .arg(dir.join("key.pem"))
                .arg("-in")
                .arg(dir.join("enc.bin"))
                .output()
                .ok()?;
            assert!(out.status.success(), "openssl could not decrypt: {out:?}");
            Some(out.stdout)
        }
    }

    impl Drop for TestKeys {
        fn drop(&mut self) {
            if let Some(dir) = &self.dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}
