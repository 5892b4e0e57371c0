//! Opening a session to the client once the upstream login succeeded: AuthenticationOk, the server's
//! parameters, the gateway's own cancel key, ReadyForQuery.

use tokio::io::AsyncWriteExt;

use crate::stream::ClientStream;
use crate::upstream::{BackendKey, Upstream};
use crate::wire::backend::{
    put_authentication, put_backend_key_data, put_parameter_status, put_ready_for_query,
};

/// Tells the client its login succeeded, in one write. The client receives the gateway's key, never
/// the upstream's: cancel requests must come back through the gateway.
pub async fn open(
    client: &mut ClientStream,
    upstream: &Upstream,
    client_key: &BackendKey,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(512);
    put_authentication(&mut out, 0);
    for (name, value) in &upstream.parameters {
        put_parameter_status(&mut out, name, value);
    }
    put_backend_key_data(&mut out, client_key.process_id, &client_key.secret_key);
    put_ready_for_query(&mut out, b'I');
    client.write_all(&out).await?;
    client.flush().await
}
