//! Table names for result columns: a RowDescription names a column's source by table OID and attribute
//! number only, and masking rules speak of `schema.table.column`. The gateway asks the server's catalog
//! on a connection of its own (never the client's session, whose transaction it must not touch) and
//! caches the answer per upstream.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::io::ReadError;
use crate::lookup;
use crate::stream::UpstreamStream;
use crate::upstream::{self, UpstreamError, UpstreamSettings};

/// The largest catalog reply message read (a row of names).
const MAX_CATALOG_MESSAGE: usize = 1024 * 1024;

/// How long a lookup may take, connection included.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A table's qualified name and its columns by attribute number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableColumns {
    pub schema: String,
    pub table: String,
    pub columns: HashMap<i16, String>,
}

/// Why the catalog could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot connect for the catalog lookup: {0}")]
    Connect(#[from] UpstreamError),
    #[error("catalog lookup failed: {0}")]
    Read(#[from] ReadError),
    #[error("catalog lookup failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("catalog lookup refused by the server: {0}")]
    Server(String),
    #[error("catalog lookup timed out")]
    Timeout,
}

#[derive(Debug)]
struct Cached {
    /// `None`: the server knows no such table (dropped): columns from it are treated as computed.
    table: Option<Arc<TableColumns>>,
    at: Instant,
}

/// The table names of one upstream, cached for `ttl` (renames and re-created tables are seen after it).
#[derive(Debug)]
pub struct Catalog {
    settings: UpstreamSettings,
    ttl: Duration,
    cache: Mutex<HashMap<u32, Cached>>,
    /// One lookup connection, opened on first use and reopened after a failure; lookups take turns.
    connection: tokio::sync::Mutex<Option<UpstreamStream>>,
}

impl Catalog {
    pub fn new(settings: UpstreamSettings, ttl: Duration) -> Self {
        Catalog {
            settings,
            ttl,
            cache: Mutex::new(HashMap::new()),
            connection: tokio::sync::Mutex::new(None),
        }
    }

    /// The tables behind `oids` (0 is skipped); tables the server does not know are absent.
    pub async fn tables(&self, oids: &[u32]) -> Result<HashMap<u32, Arc<TableColumns>>, CatalogError> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let now = Instant::now();
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for &oid in oids {
                if oid == 0 || found.contains_key(&oid) || missing.contains(&oid) {
                    continue;
                }
                match cache.get(&oid) {
                    Some(c) if now.duration_since(c.at) < self.ttl => {
                        if let Some(t) = &c.table {
                            found.insert(oid, t.clone());
                        }
                    }
                    _ => missing.push(oid),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let fetched = match tokio::time::timeout(LOOKUP_TIMEOUT, self.fetch(&missing)).await {
            Ok(fetched) => fetched?,
            Err(_) => {
                *self.connection.lock().await = None;
                return Err(CatalogError::Timeout);
            }
        };
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        for oid in missing {
            let table = fetched.get(&oid).cloned().map(Arc::new);
            if let Some(t) = &table {
                found.insert(oid, t.clone());
            }
            cache.insert(oid, Cached { table, at: now });
        }
        Ok(found)
    }

    async fn fetch(&self, oids: &[u32]) -> Result<HashMap<u32, TableColumns>, CatalogError> {
        let mut slot = self.connection.lock().await;
        let result = match slot.as_mut() {
            Some(stream) => query(stream, oids).await,
            None => {
                let mut upstream = upstream::connect(&self.settings, &[]).await?.stream;
                let result = query(&mut upstream, oids).await;
                *slot = Some(upstream);
                result
            }
        };
        if result.is_err() {
            // A broken or confused connection is not reused.
            *slot = None;
        }
        result
    }
}

/// One catalog query on the lookup connection. OIDs are integers formatted by the gateway, so the text
/// needs no quoting.
async fn query(
    stream: &mut UpstreamStream,
    oids: &[u32],
) -> Result<HashMap<u32, TableColumns>, CatalogError> {
    let mut list = String::new();
    for (i, oid) in oids.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        let _ = write!(list, "{oid}");
    }
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
         WHERE c.oid IN ({list}) AND a.attnum > 0 AND NOT a.attisdropped"
    );
    let reply = lookup::exchange(stream, &lookup::simple(&sql), MAX_CATALOG_MESSAGE).await?;
    if let Some(message) = reply.error {
        return Err(CatalogError::Server(message));
    }
    let mut tables: HashMap<u32, TableColumns> = HashMap::new();
    for cells in reply.rows {
        let text = |i: usize| cells.get(i).cloned().flatten().unwrap_or_default();
        let (Ok(oid), Ok(attnum)) = (text(0).parse::<u32>(), text(3).parse::<i16>()) else {
            continue;
        };
        let entry = tables.entry(oid).or_insert_with(|| TableColumns {
            schema: text(1),
            table: text(2),
            columns: HashMap::new(),
        });
        entry.columns.insert(attnum, text(4));
    }
    Ok(tables)
}
