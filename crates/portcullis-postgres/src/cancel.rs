//! Cancel routing: the gateway hands each client its own BackendKeyData and maps it to the upstream's key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::upstream::BackendKey;
use crate::wire::startup;

/// Where a cancel request for one client key must go.
#[derive(Debug, Clone)]
struct Target {
    upstream: SocketAddr,
    key: BackendKey,
    /// Told of every cancel request for the session: a statement the gateway itself holds (waiting for
    /// an approval) is withdrawn, since the database has nothing to cancel.
    cancelled: Arc<Notify>,
}

/// A client-facing key as it arrives in a CancelRequest: process id and secret.
type ClientKey = (i32, Vec<u8>);

/// The live sessions' cancel keys. The client never learns the upstream's key, so it cannot cancel
/// another tenant's query by guessing PIDs on the database directly; guessing a gateway key means
/// guessing 64 random bits.
#[derive(Debug, Default, Clone)]
pub struct CancelRegistry {
    keys: Arc<Mutex<HashMap<ClientKey, Target>>>,
}

/// Removes a session's key from the registry when the session ends.
#[derive(Debug)]
pub struct Registration {
    registry: CancelRegistry,
    pub client_key: BackendKey,
    /// Notified (`notify_waiters`: only whoever waits at that moment) when the client sends a cancel
    /// request for this session.
    pub cancelled: Arc<Notify>,
}

impl CancelRegistry {
    /// Issues a fresh client key for a session whose upstream is `upstream` with `key`.
    pub fn register(&self, upstream: SocketAddr, key: BackendKey) -> Registration {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rng = rand::rng();
        let client_key = loop {
            let candidate = BackendKey {
                process_id: rng.random_range(1..i32::MAX),
                secret_key: rng.random::<[u8; 4]>().to_vec(),
            };
            if !keys.contains_key(&(candidate.process_id, candidate.secret_key.clone())) {
                break candidate;
            }
        };
        let cancelled = Arc::new(Notify::new());
        keys.insert(
            (client_key.process_id, client_key.secret_key.clone()),
            Target {
                upstream,
                key,
                cancelled: Arc::clone(&cancelled),
            },
        );
        Registration {
            registry: self.clone(),
            client_key,
            cancelled,
        }
    }

    /// Forwards a client's cancel request to the right upstream backend. Returns whether the key was
    /// known; an unknown key is silently ignored, as PostgreSQL does.
    pub async fn cancel(&self, process_id: i32, secret_key: &[u8]) -> std::io::Result<bool> {
        let target = {
            let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            keys.get(&(process_id, secret_key.to_vec())).cloned()
        };
        let Some(target) = target else {
            return Ok(false);
        };
        target.cancelled.notify_waiters();
        // A CancelRequest is accepted before authentication and TLS by PostgreSQL, so plaintext is enough.
        let mut tcp = TcpStream::connect(target.upstream).await?;
        tcp.write_all(&startup::encode_cancel(
            target.key.process_id,
            &target.key.secret_key,
        ))
        .await?;
        tcp.shutdown().await?;
        Ok(true)
    }

    /// The number of live sessions with a cancel key.
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut keys = self.registry.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.remove(&(self.client_key.process_id, self.client_key.secret_key.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_unique_and_removed_on_drop() {
        let registry = CancelRegistry::default();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let a = registry.register(
            addr,
            BackendKey {
                process_id: 7,
                secret_key: vec![1, 2, 3, 4],
            },
        );
        let b = registry.register(
            addr,
            BackendKey {
                process_id: 8,
                secret_key: vec![1, 2, 3, 4],
            },
        );
        assert_ne!(a.client_key, b.client_key);
        assert_eq!(registry.len(), 2);
        drop(a);
        assert_eq!(registry.len(), 1);
        assert!(!registry.cancel(1, &[0, 0, 0, 0]).await.unwrap());
    }
}
