//! The bench's baseline: a plain TCP relay (`cargo xtask relay`), and the handle that runs it as a child.
//!
//! The relay does what any L4 proxy does and nothing more: accept, connect upstream, TCP_NODELAY on both
//! sockets, copy bytes both ways until either side closes. It runs as its own process so that its CPU
//! time can be read from /proc exactly as the gateway's is, and so that it does not share a runtime with
//! the bench driver.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, anyhow, bail};
use tokio::net::{TcpListener, TcpStream};

/// Printed on stdout once the listener is bound; the parent reads the address from it.
const READY_PREFIX: &str = "listening on ";

/// Serves forever on `listen`, relaying every connection to `upstream`.
pub fn run(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<()> {
    // The same runtime shape as the gateway (multi-threaded, one worker per core), so that the
    // comparison is between the work each does, not between schedulers.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(serve(listen, upstream))
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("bind {listen}"))?;
    let bound = listener.local_addr().context("local address")?;
    // stdout is a pipe to the parent: println! flushes on the newline.
    println!("{READY_PREFIX}{bound}");
    loop {
        let (client, peer) = listener.accept().await.context("accept")?;
        tokio::spawn(async move {
            if let Err(error) = relay_one(client, upstream).await {
                eprintln!("relay: connection from {peer}: {error:#}");
            }
        });
    }
}

/// One client connection, relayed until either side closes.
async fn relay_one(mut client: TcpStream, upstream: SocketAddr) -> anyhow::Result<()> {
    client
        .set_nodelay(true)
        .context("TCP_NODELAY on the client socket")?;
    let mut server = TcpStream::connect(upstream)
        .await
        .with_context(|| format!("connect to {upstream}"))?;
    server
        .set_nodelay(true)
        .context("TCP_NODELAY on the upstream socket")?;
    // A reset by either peer at the end of a pgbench run is the normal way these sessions end.
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Err(error) => Err(error).context("copy"),
    }
}

/// `cargo xtask relay` running as a child of the bench; Drop kills and reaps it.
#[derive(Debug)]
pub struct RelayProcess {
    child: Child,
    addr: SocketAddr,
}

impl RelayProcess {
    /// Starts `<xtask> relay --listen 127.0.0.1:0 --upstream <upstream>` and waits for the line that
    /// names the bound address. `xtask` is the path of an xtask binary (the bench passes a release build).
    pub fn start(xtask: &Path, upstream: SocketAddr) -> anyhow::Result<RelayProcess> {
        let mut child = Command::new(xtask)
            .args(["relay", "--listen", "127.0.0.1:0", "--upstream"])
            .arg(upstream.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawn {} relay", xtask.display()))?;
        let stdout = child.stdout.take().context("relay stdout")?;
        // From here on an error drops `relay`, which kills the child.
        let mut relay = RelayProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("read the relay's ready line")?;
        let Some(addr) = line.trim().strip_prefix(READY_PREFIX) else {
            let status = relay.child.try_wait().ok().flatten();
            bail!("relay did not report its address (said {line:?}, exit {status:?})");
        };
        relay.addr = addr
            .parse()
            .map_err(|error| anyhow!("relay address {addr:?}: {error}"))?;
        Ok(relay)
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id, for /proc readings.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
