//! Masking in the gateway: the rules compiled once, per connection the table-name catalog and counters,
//! and per session the decision of who sees cleartext (Cedar's `unmask`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use portcullis_core::{Outcome, Principal};
use portcullis_mask::{ConnectionMask, MaskPolicy, Reason};
use portcullis_policy::RequestContext;
use portcullis_postgres::catalog::Catalog;
use portcullis_postgres::mask::{Cleartext, MaskSettings};
use portcullis_postgres::upstream::UpstreamSettings;

use crate::config::Config;
use crate::guard::Loaded;
use crate::telemetry;

/// The masking of one connection.
#[derive(Debug)]
pub struct ConnectionMasking {
    pub rules: Arc<ConnectionMask>,
    catalog: Arc<Catalog>,
    counters: Arc<[metrics::Counter; Reason::COUNT]>,
    max_row: usize,
}

/// Whether policy lets `who` see `connection` in clear (Cedar `unmask` on the connection): then
/// nothing of its sessions or requests is masked. The same decision for PostgreSQL sessions and HTTP
/// requests.
pub fn cleartext(policies: &Loaded, who: &Principal, connection: &str, context: &RequestContext) -> bool {
    let set = &policies.set;
    set.unmask_possible() && set.decide_unmask(who, connection, None, context).outcome == Outcome::Allow
}

/// The compiled rules, or `None` when masking is off or has no rules.
pub fn policy(config: &Config) -> anyhow::Result<Option<MaskPolicy>> {
    if !config.masking.active() {
        return Ok(None);
    }
    let key = match config.masking.configured_key().map_err(anyhow::Error::msg)? {
        Some(key) => key.expose().as_bytes().to_vec(),
        None => state_key(&config.server.state_dir.join("mask.key"))?,
    };
    let policy = MaskPolicy::compile(&config.masking.rules, &key).context("masking.rules")?;
    Ok(Some(policy))
}

/// The key kept in the state directory, created on first use (32 random bytes, hex, mode 0600).
fn state_key(path: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim().as_bytes().to_vec();
            anyhow::ensure!(key.len() >= 32, "{}: the key is too short", path.display());
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes: [u8; 32] = rand::random();
            let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            crate::tls::write_private(path, key.as_bytes())
                .with_context(|| format!("writing the masking key {}", path.display()))?;
            Ok(key.into_bytes())
        }
        Err(e) => Err(e).with_context(|| format!("reading the masking key {}", path.display())),
    }
}

impl ConnectionMasking {
    /// The masking of connection `name`, or `None` when no rule applies to it.
    pub fn new(
        policy: &MaskPolicy,
        config: &Config,
        name: &str,
        upstream: &UpstreamSettings,
    ) -> Option<ConnectionMasking> {
        let rules = policy.for_connection(name);
        if rules.is_empty() {
            return None;
        }
        Some(ConnectionMasking {
            rules,
            catalog: Arc::new(Catalog::new(upstream.clone(), config.masking.catalog_ttl)),
            counters: Arc::new(telemetry::masked_counters(name)),
            max_row: config.masking.max_row_bytes,
        })
    }

    /// What masking a session of `who` gets: `None` when policy lets it see this connection in clear.
    pub fn for_session(
        &self,
        policies: &Arc<Loaded>,
        who: &Principal,
        connection: &str,
        context: &RequestContext,
    ) -> Option<MaskSettings> {
        if cleartext(policies, who, connection, context) {
            return None;
        }
        let set = &policies.set;
        // Tables are asked one by one only when some unmask policy looks at the resource; otherwise the
        // connection's answer (masked) stands for all of them.
        let cleartext: Cleartext = if set.unmask_possible() && set.unmask_per_table() {
            let (policies, who, connection, context) =
                (policies.clone(), who.clone(), connection.to_owned(), *context);
            Box::new(move |schema, table| {
                policies
                    .set
                    .decide_unmask(&who, &connection, Some((schema, table)), &context)
                    .outcome
                    == Outcome::Allow
            })
        } else {
            Box::new(|_, _| false)
        };
        Some(MaskSettings {
            rules: self.rules.clone(),
            catalog: self.catalog.clone(),
            cleartext,
            max_row: self.max_row,
            counters: self.counters.clone(),
        })
    }
}
