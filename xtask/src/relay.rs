//! The bench's baseline: a plain TCP relay (`cargo xtask relay`), and the handle that runs it as a child.
//!
//! The relay does what any L4 proxy does and nothing more: accept, connect upstream, TCP_NODELAY on both
//! sockets, copy bytes both ways until either side closes. It runs as its own process so that its CPU
//! time can be read from /proc exactly as the gateway's is, and so that it does not share a runtime with
//! the bench driver.
//!
//! With `--write-ahead FILE` it is also the floor of a write-ahead gateway: each chunk a client sends
//! is appended to FILE and forwarded only once the append is durable, with the same group commit as the
//! gateway's audit writer (one thread; whatever queued during the last commit goes in the next one).
//! No parsing, no events, no SQLite: what is left is the cost of waiting for a durable write on every
//! statement, on this machine.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};

use anyhow::{Context as _, anyhow, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Printed on stdout once the listener is bound; the parent reads the address from it.
const READY_PREFIX: &str = "listening on ";

/// Where the write-ahead relay keeps its journal, and whether each commit is fdatasynced.
#[derive(Debug, Clone)]
pub struct JournalSpec {
    pub path: PathBuf,
    pub sync: bool,
    /// Writer threads, each with its own file (`FILE`, `FILE.1`, ...): with more than one, a commit can
    /// start while another one's flush is still in flight.
    pub writers: usize,
}

/// Bytes to append, and who to tell once they are stored.
type Append = (Vec<u8>, oneshot::Sender<()>);

/// The handle connections append through; the writer thread ends when every handle is gone.
#[derive(Debug, Clone)]
struct Journal(mpsc::Sender<Append>);

impl Journal {
    fn start(spec: &JournalSpec) -> anyhow::Result<Journal> {
        let (tx, rx) = mpsc::channel();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..spec.writers.max(1) {
            let path = match n {
                0 => spec.path.clone(),
                n => PathBuf::from(format!("{}.{n}", spec.path.display())),
            };
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("open {}", path.display()))?;
            let rx = Arc::clone(&rx);
            let sync = spec.sync;
            std::thread::Builder::new()
                .name("journal-writer".into())
                .spawn(move || journal_loop(file, &rx, sync))
                .context("start a journal writer")?;
        }
        Ok(Journal(tx))
    }

    /// Returns once `bytes` are stored (durably, unless the journal was opened without sync).
    async fn append(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let (done, stored) = oneshot::channel();
        self.0
            .send((bytes.to_vec(), done))
            .map_err(|_| anyhow!("journal writer stopped"))?;
        stored.await.map_err(|_| anyhow!("journal write failed"))
    }
}

/// Group commit: everything queued while the previous write ran goes into the next one. Writers take
/// turns at the queue; each stores what it took in its own file.
fn journal_loop(mut file: File, rx: &Mutex<mpsc::Receiver<Append>>, sync: bool) {
    let mut group = Vec::new();
    let mut waiters = Vec::new();
    loop {
        {
            let Ok(rx) = rx.lock() else { return };
            let Ok((first, done)) = rx.recv() else { return };
            group.extend_from_slice(&first);
            waiters.push(done);
            while let Ok((bytes, done)) = rx.try_recv() {
                group.extend_from_slice(&bytes);
                waiters.push(done);
            }
        }
        let stored = file
            .write_all(&group)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
        if let Err(error) = stored {
            eprintln!("relay: journal write failed: {error}");
            return;
        }
        for done in waiters.drain(..) {
            let _ = done.send(());
        }
        group.clear();
    }
}

/// Serves forever on `listen`, relaying every connection to `upstream`; with `journal`, as the
/// write-ahead relay.
pub fn run(listen: SocketAddr, upstream: SocketAddr, journal: Option<JournalSpec>) -> anyhow::Result<()> {
    // The same runtime shape as the gateway (multi-threaded, one worker per core), so that the
    // comparison is between the work each does, not between schedulers.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(async {
        let journal = journal.as_ref().map(Journal::start).transpose()?;
        serve(listen, upstream, journal).await
    })
}

async fn serve(listen: SocketAddr, upstream: SocketAddr, journal: Option<Journal>) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("bind {listen}"))?;
    let bound = listener.local_addr().context("local address")?;
    // stdout is a pipe to the parent: println! flushes on the newline.
    println!("{}", ready_line(bound));
    loop {
        let (client, peer) = listener.accept().await.context("accept")?;
        let journal = journal.clone();
        tokio::spawn(async move {
            if let Err(error) = relay_one(client, upstream, journal).await {
                eprintln!("relay: connection from {peer}: {error:#}");
            }
        });
    }
}

/// One client connection, relayed until either side closes.
async fn relay_one(
    mut client: TcpStream,
    upstream: SocketAddr,
    journal: Option<Journal>,
) -> anyhow::Result<()> {
    client
        .set_nodelay(true)
        .context("TCP_NODELAY on the client socket")?;
    let mut server = TcpStream::connect(upstream)
        .await
        .with_context(|| format!("connect to {upstream}"))?;
    server
        .set_nodelay(true)
        .context("TCP_NODELAY on the upstream socket")?;
    if let Some(journal) = journal {
        return relay_write_ahead(client, server, &journal).await;
    }
    // A reset by either peer at the end of a pgbench run is the normal way these sessions end.
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Err(error) => Err(error).context("copy"),
    }
}

/// Client to server through the journal, server to client as it comes.
async fn relay_write_ahead(client: TcpStream, server: TcpStream, journal: &Journal) -> anyhow::Result<()> {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_rx.read(&mut buf).await?;
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                return server_tx.shutdown().await.map_err(anyhow::Error::from);
            };
            journal.append(chunk).await?;
            server_tx.write_all(chunk).await?;
        }
    };
    let downstream = async {
        tokio::io::copy(&mut server_rx, &mut client_tx).await?;
        anyhow::Ok(())
    };
    match tokio::try_join!(upstream, downstream) {
        Ok(_) => Ok(()),
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset) =>
        {
            Ok(())
        }
        Err(error) => Err(error.context("copy")),
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
        Self::spawn(xtask, upstream, &[])
    }

    /// As [`RelayProcess::start`], with a write-ahead journal at `journal` (fdatasynced).
    pub fn start_write_ahead(
        xtask: &Path,
        upstream: SocketAddr,
        journal: &Path,
    ) -> anyhow::Result<RelayProcess> {
        Self::spawn(xtask, upstream, &["--write-ahead".as_ref(), journal.as_os_str()])
    }

    fn spawn(xtask: &Path, upstream: SocketAddr, extra: &[&std::ffi::OsStr]) -> anyhow::Result<RelayProcess> {
        let mut command = Command::new(xtask);
        command
            .args(["relay", "--listen", "127.0.0.1:0", "--upstream"])
            .arg(upstream.to_string())
            .args(extra);
        let (child, addr) = spawn_listening(command, "relay")?;
        Ok(RelayProcess { child, addr })
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

/// Spawns `command` (a server of the bench: the relay, the HTTP upstream) with stdout piped, and waits
/// for the `listening on <addr>` line it prints once bound. The child is killed if it does not say it.
pub(crate) fn spawn_listening(mut command: Command, what: &str) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawn the {what}"))?;
    let addr = read_ready_line(&mut child, what);
    if addr.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok((child, addr?))
}

fn read_ready_line(child: &mut Child, what: &str) -> anyhow::Result<SocketAddr> {
    let stdout = child.stdout.take().with_context(|| format!("{what} stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .with_context(|| format!("read the {what}'s ready line"))?;
    let Some(addr) = line.trim().strip_prefix(READY_PREFIX) else {
        let status = child.try_wait().ok().flatten();
        bail!("{what} did not report its address (said {line:?}, exit {status:?})");
    };
    addr.parse()
        .map_err(|error| anyhow!("{what} address {addr:?}: {error}"))
}

/// The line a bench server prints on stdout once bound.
pub(crate) fn ready_line(bound: SocketAddr) -> String {
    format!("{READY_PREFIX}{bound}")
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn journal_stores_every_append_before_answering() {
        let dir = tempfile::tempdir().unwrap();
        let spec = JournalSpec {
            path: dir.path().join("journal"),
            sync: true,
            writers: 2,
        };
        let journal = Journal::start(&spec).unwrap();
        let mut tasks = Vec::new();
        for t in 0..8u8 {
            let journal = journal.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    journal.append(&[b'a' + t; 10]).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // Every answered append is in one of the writers' files, whole.
        let mut stored = std::fs::read(&spec.path).unwrap();
        stored.extend(std::fs::read(dir.path().join("journal.1")).unwrap_or_default());
        assert_eq!(stored.len(), 8 * 50 * 10);
        assert!(
            stored.chunks(10).all(|c| c.iter().all(|b| *b == c[0])),
            "an append was split"
        );
        for t in 0..8u8 {
            assert_eq!(stored.iter().filter(|b| **b == b'a' + t).count(), 50 * 10);
        }
    }
}
