//! The listener's TLS certificate: the operator's files, or a self-signed one generated for development.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// Loads the configured certificate (`tls_cert`, `tls_key` of a listener), or creates (once) and reuses a
/// self-signed one in `state_dir/tls`, shared by the listeners.
pub fn server_config(
    tls_cert: Option<&Path>,
    tls_key: Option<&Path>,
    state_dir: &Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (cert_path, key_path) = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => (cert.to_path_buf(), key.to_path_buf()),
        _ => {
            let dir = state_dir.join("tls");
            let cert = dir.join("dev-cert.pem");
            let key = dir.join("dev-key.pem");
            if !cert.exists() || !key.exists() {
                generate_self_signed(&dir, &cert, &key)?;
                tracing::warn!(cert = %cert.display(), "no tls_cert configured: using a self-signed development certificate");
            }
            (cert, key)
        }
    };
    let cert_pem = std::fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key_pem = std::fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    portcullis_postgres::handshake::tls_server_config(&cert_pem, &key_pem)
        .with_context(|| format!("loading TLS certificate {}", cert_path.display()))
}

fn generate_self_signed(dir: &Path, cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names)?;
    std::fs::write(cert_path, certified.cert.pem())?;
    write_private(key_path, certified.signing_key.serialize_pem().as_bytes())?;
    Ok(())
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}
