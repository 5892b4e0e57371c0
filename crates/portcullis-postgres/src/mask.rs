//! Masking on the stream: the server's rows, errors and notices are rewritten before the client (and the
//! audit trail) sees them.
//!
//! A DataRow carries no column names: which rule applies to a cell depends on the RowDescription that
//! describes it, and in the extended protocol that description may have arrived long before (a Describe of
//! a prepared statement) with the result formats chosen later (at Bind). So the masker follows the
//! protocol: the client side queues what it sent ([`ClientEvents`]), the server side pairs each reply
//! with it in order ([`SessionMask`]) and keeps the descriptions of prepared statements and portals.
//! Table OIDs in a description are resolved to names through the [`Catalog`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use portcullis_mask::{Applied, ColumnPlan, ColumnRef, ConnectionMask, Counts, Reason};

use crate::catalog::{Catalog, CatalogError};
use crate::wire::backend::{self, BackendMessage};
use crate::wire::frontend::{self, FrontendMessage};
use crate::wire::{Cursor, HEADER_LEN, WireError, put_message};

/// Whether a principal sees one table's values in clear: `(schema, table)`.
pub type Cleartext = Box<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// What masking needs for one session.
pub struct MaskSettings {
    /// The connection's rules.
    pub rules: Arc<ConnectionMask>,
    /// Table names of the connection's upstream.
    pub catalog: Arc<Catalog>,
    /// Whether this principal sees a table's values in clear: `(schema, table)`, asked once per table.
    pub cleartext: Cleartext,
    /// The largest DataRow that is masked; a larger one ends the session (it cannot pass unmasked).
    pub max_row: usize,
    /// Masked values by reason, for metrics (indexed by [`Reason::index`]).
    pub counters: Arc<[metrics::Counter; Reason::COUNT]>,
}

impl std::fmt::Debug for MaskSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskSettings")
            .field("rules", &self.rules)
            .field("max_row", &self.max_row)
            .finish_non_exhaustive()
    }
}

/// Why a result could not be masked; the session ends rather than pass it in clear.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("cannot name the result's columns: {0}")]
    Catalog(#[from] CatalogError),
    #[error("a row of {len} bytes is over the masking limit of {limit} bytes")]
    RowTooLarge { len: usize, limit: usize },
    #[error("rows arrived for a statement the gateway saw no description of")]
    Undescribed,
    /// COPY ... TO STDOUT (or a replication stream) started: its rows carry no description to mask by.
    /// With statement checks on the gateway refuses such statements before they run; this is the stream's
    /// own guard for sessions without checks.
    #[error("COPY out of a masked session cannot be masked")]
    CopyOut,
    #[error("malformed server message: {0}")]
    Wire(#[from] WireError),
}

/// A client message whose replies the masker must pair, in the order sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A Query or FunctionCall: everything up to its ReadyForQuery.
    Simple,
    Parse(String),
    Bind {
        portal: String,
        statement: String,
        formats: Vec<i16>,
    },
    DescribeStatement(String),
    DescribePortal(String),
    Execute(String),
    Close {
        statement: bool,
        name: String,
    },
    Sync,
}

/// The client side's half: records what went upstream.
#[derive(Debug, Clone, Default)]
pub struct ClientEvents(Arc<Mutex<VecDeque<Event>>>);

impl ClientEvents {
    /// Whether the relay must hold a client message with this tag whole and pass it to [`Self::sent`].
    pub fn wants(tag: u8) -> bool {
        matches!(tag, b'P' | b'B' | b'D' | b'E' | b'C')
    }

    /// A message with no body of interest went upstream (Query, FunctionCall, Sync).
    pub fn sent_tag(&self, tag: u8) {
        match tag {
            b'Q' | b'F' => self.push(Event::Simple),
            b'S' => self.push(Event::Sync),
            _ => {}
        }
    }

    /// A held message (one [`Self::wants`], or a Query, Parse, Bind or FunctionCall) went upstream.
    pub fn sent(&self, tag: u8, body: &[u8]) -> Result<(), WireError> {
        let event = match frontend::decode(tag, body)? {
            FrontendMessage::Query { .. } | FrontendMessage::FunctionCall(_) => Event::Simple,
            FrontendMessage::Parse { statement, .. } => Event::Parse(statement.to_owned()),
            FrontendMessage::Bind {
                portal,
                statement,
                result_formats,
                ..
            } => Event::Bind {
                portal: portal.to_owned(),
                statement: statement.to_owned(),
                formats: result_formats,
            },
            FrontendMessage::Describe { target: b'S', name } => Event::DescribeStatement(name.to_owned()),
            FrontendMessage::Describe { name, .. } => Event::DescribePortal(name.to_owned()),
            FrontendMessage::Execute { portal, .. } => Event::Execute(portal.to_owned()),
            FrontendMessage::Close { target, name } => Event::Close {
                statement: target == b'S',
                name: name.to_owned(),
            },
            FrontendMessage::Sync => Event::Sync,
            _ => return Ok(()),
        };
        self.push(event);
        Ok(())
    }

    /// A refused message was replaced by its stand-in: a failing Parse for a Parse or Bind, a Query for a
    /// Query or FunctionCall.
    pub fn refused(&self, tag: u8) {
        match tag {
            b'P' | b'B' => self.push(Event::Parse(String::new())),
            _ => self.push(Event::Simple),
        }
    }

    fn push(&self, event: Event) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push_back(event);
    }
}

/// One column of a description, with what to do with its cells.
#[derive(Debug)]
struct Field {
    plan: ColumnPlan,
    type_oid: u32,
    format: i16,
}

/// A resolved RowDescription.
#[derive(Debug)]
struct Desc {
    fields: Vec<Field>,
    /// Whether any column is masked: otherwise rows pass without being looked at.
    any: bool,
}

/// A portal: its description (from the statement or a Describe of the portal) and the result formats.
#[derive(Debug, Clone)]
struct Portal {
    desc: Option<Arc<Desc>>,
    formats: Arc<[i16]>,
}

/// Rows being streamed now: their description and formats.
#[derive(Debug, Clone)]
struct Rows {
    desc: Arc<Desc>,
    /// Shared, so that looking up the rows of each DataRow copies no vector.
    formats: Arc<[i16]>,
}

/// The server side's half: pairs replies with what the client sent, and masks.
#[derive(Debug)]
pub struct SessionMask {
    settings: MaskSettings,
    client: ClientEvents,
    events: VecDeque<Event>,
    statements: HashMap<String, Option<Arc<Desc>>>,
    portals: HashMap<String, Portal>,
    /// The rows of the current simple-protocol statement.
    current: Option<Rows>,
    /// The rows of the Execute at the front, looked up at its first DataRow (not once per row).
    exec: Option<Rows>,
    /// Per table OID: whether its values are shown in clear to this principal.
    cleartext: HashMap<u32, bool>,
    /// Values masked since the last [`Self::take_counts`]: taken at each statement's end, so a row costs
    /// no more than one addition per masked cell.
    counts: Counts,
    /// Scratch for `mask_row`: the masked value of one cell.
    value: Vec<u8>,
}

impl SessionMask {
    pub fn new(settings: MaskSettings) -> SessionMask {
        let client = ClientEvents::default();
        SessionMask {
            settings,
            client: client.clone(),
            events: VecDeque::new(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            current: None,
            exec: None,
            cleartext: HashMap::new(),
            counts: Counts::default(),
            value: Vec::new(),
        }
    }

    /// The client side's half, for the other direction of the relay.
    pub fn client_events(&self) -> ClientEvents {
        self.client.clone()
    }

    fn pull(&mut self) {
        let mut shared = self.client.0.lock().unwrap_or_else(|e| e.into_inner());
        self.events.extend(shared.drain(..));
    }

    /// Makes sure the next event the client sent, if any, is at the front of `events`.
    fn fill(&mut self) {
        if self.events.is_empty() {
            self.pull();
        }
    }

    fn front(&mut self) -> Option<&Event> {
        self.fill();
        self.events.front()
    }

    /// Takes the event at the front if it is the one this reply answers.
    fn pop_front_if(&mut self, answers: impl FnOnce(&Event) -> bool) -> Option<Event> {
        if self.front().is_some_and(answers) {
            self.events.pop_front()
        } else {
            None
        }
    }

    /// Looks up the rows of the Execute at the front, once per execution.
    fn prepare_rows(&mut self) {
        self.fill();
        if self.exec.is_none()
            && let Some(Event::Execute(portal)) = self.events.front()
        {
            self.exec = self.portals.get(portal).and_then(|p| {
                p.desc.as_ref().map(|desc| Rows {
                    desc: desc.clone(),
                    formats: p.formats.clone(),
                })
            });
        }
    }

    /// Whether the relay must hold this server message whole and pass it to [`Self::message`] (a DataRow:
    /// to [`Self::data_row`]). Asking again for the same message gives the same answer. The end of a
    /// statement is held while masked values are still to be counted: the relay then takes them
    /// ([`Self::take_counts`]) before the message goes on.
    pub fn wants(&mut self, tag: u8) -> bool {
        match tag {
            b'T' | b'E' | b'N' | b'H' | b'W' => true,
            b'C' | b'I' | b's' | b'Z' => !self.counts.is_empty(),
            // Rows of a description without a masked column stream through; undescribed rows are held
            // too, and `message` refuses them.
            b'D' => {
                self.prepare_rows();
                rows_now(&self.events, &self.exec, &self.current).is_none_or(|rows| rows.desc.any)
            }
            _ => false,
        }
    }

    /// A server message the masker did not hold went to the client: keep the pairing in step.
    pub fn passed(&mut self, tag: u8) {
        match tag {
            b'1' => {
                if let Some(Event::Parse(name)) = self.pop_front_if(|e| matches!(e, Event::Parse(_))) {
                    self.statements.insert(name, None);
                }
            }
            b'2' => {
                if let Some(Event::Bind {
                    portal,
                    statement,
                    formats,
                }) = self.pop_front_if(|e| matches!(e, Event::Bind { .. }))
                {
                    let desc = self.statements.get(&statement).cloned().flatten();
                    self.portals.insert(
                        portal,
                        Portal {
                            desc,
                            formats: formats.into(),
                        },
                    );
                }
            }
            b'3' => match self.pop_front_if(|e| matches!(e, Event::Close { .. })) {
                Some(Event::Close {
                    statement: true,
                    name,
                }) => {
                    self.statements.remove(&name);
                }
                Some(Event::Close { name, .. }) => {
                    self.portals.remove(&name);
                }
                _ => {}
            },
            b'n' => {
                let none = || {
                    Some(Arc::new(Desc {
                        fields: Vec::new(),
                        any: false,
                    }))
                };
                match self
                    .pop_front_if(|e| matches!(e, Event::DescribeStatement(_) | Event::DescribePortal(_)))
                {
                    Some(Event::DescribeStatement(name)) => {
                        self.statements.insert(name, none());
                    }
                    Some(Event::DescribePortal(name)) => {
                        if let Some(p) = self.portals.get_mut(&name) {
                            p.desc = none();
                        }
                    }
                    _ => {}
                }
            }
            b'C' | b'I' | b's' => match self.front() {
                Some(Event::Execute(_)) => {
                    self.events.pop_front();
                    self.exec = None;
                }
                Some(Event::Simple) => self.current = None,
                _ => {}
            },
            b'Z' => {
                self.current = None;
                self.exec = None;
                while let Some(event) = self.pop_front_if(|_| true) {
                    if matches!(event, Event::Sync | Event::Simple) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }

    /// A held message other than a DataRow, whole: returns what the client gets instead (a whole
    /// message), or `None` to pass it as it is.
    pub async fn message(&mut self, tag: u8, body: &[u8]) -> Result<Option<Vec<u8>>, MaskError> {
        match tag {
            b'T' => {
                self.describe(body).await?;
                Ok(None)
            }
            // The relay passes DataRows to `data_row`, which writes into its output.
            b'D' => Err(MaskError::Wire(WireError::Invalid(
                "a DataRow is masked by data_row, not message",
            ))),
            b'E' | b'N' => {
                if tag == b'E' {
                    self.failed();
                }
                Ok(self.scrub_fields(tag, body))
            }
            b'H' | b'W' => Err(MaskError::CopyOut),
            _ => {
                self.passed(tag);
                Ok(None)
            }
        }
    }

    /// A held DataRow, whole. When a cell is masked, appends `prefix` (what the relay cleared before the
    /// row) and then the rewritten row, a whole message, to `out`, and returns where the row starts in
    /// `out`; `None` when the row passes as it is, with nothing appended. On an error `out` is as it was.
    pub fn data_row(
        &mut self,
        prefix: &[u8],
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, MaskError> {
        self.prepare_rows();
        let Some(rows) = rows_now(&self.events, &self.exec, &self.current) else {
            return Err(MaskError::Undescribed);
        };
        if !rows.desc.any {
            return Ok(None);
        }
        let mark = out.len();
        let row = mask_row(rows, prefix, body, &mut self.counts, &mut self.value, out);
        if row.is_err() {
            out.truncate(mark);
        }
        row
    }

    /// Whether a held DataRow of `len` bytes can be masked at all: the relay asks before it buffers the
    /// row whole, and ends the session with the error otherwise.
    pub fn admit_row(&self, len: usize) -> Result<(), MaskError> {
        if len > self.settings.max_row {
            return Err(MaskError::RowTooLarge {
                len,
                limit: self.settings.max_row,
            });
        }
        Ok(())
    }

    /// Values masked since the last call (for the result sink), added to the metrics now.
    pub fn take_counts(&mut self) -> Counts {
        let counts = std::mem::take(&mut self.counts);
        for (reason, n) in counts.iter() {
            if let Some(counter) = self.settings.counters.get(reason.index()) {
                counter.increment(n);
            }
        }
        counts
    }

    /// An ErrorResponse: a simple Query still owns the replies up to its ReadyForQuery; in the extended
    /// protocol the server skips to the next Sync, so the messages before it get no other reply.
    fn failed(&mut self) {
        match self.front() {
            Some(Event::Simple) => self.current = None,
            Some(_) => {
                self.exec = None;
                while let Some(event) = self.front() {
                    if matches!(event, Event::Sync) {
                        break;
                    }
                    self.events.pop_front();
                }
            }
            None => {}
        }
    }

    async fn describe(&mut self, body: &[u8]) -> Result<(), MaskError> {
        let BackendMessage::RowDescription(columns) = backend::decode(b'T', body)? else {
            return Err(MaskError::Wire(WireError::Invalid("not a RowDescription")));
        };
        let rules = self.settings.rules.clone();
        // Names are needed for column rules and for per-table cleartext; the catalog caches them.
        let oids: Vec<u32> = columns
            .iter()
            .map(|c| c.table_oid)
            .filter(|oid| *oid != 0)
            .collect();
        let tables = if oids.is_empty() {
            HashMap::new()
        } else {
            self.settings.catalog.tables(&oids).await?
        };
        let mut fields = Vec::with_capacity(columns.len());
        for column in &columns {
            let table = tables.get(&column.table_oid);
            let clear = match table {
                Some(t) => *self
                    .cleartext
                    .entry(column.table_oid)
                    .or_insert_with(|| (self.settings.cleartext)(&t.schema, &t.table)),
                None => false,
            };
            let plan = if clear {
                ColumnPlan::Pass
            } else {
                let name = table.and_then(|t| t.columns.get(&column.column_attr));
                match (table, name) {
                    (Some(t), Some(name)) => rules.column(ColumnRef {
                        schema: Some(&t.schema),
                        table: Some(&t.table),
                        column: name,
                    }),
                    _ => rules.column(ColumnRef {
                        schema: None,
                        table: None,
                        column: column.name,
                    }),
                }
            };
            // Detectors look for text (emails, keys, card numbers): a timestamp or a uuid holds none.
            let plan = if !plan.masks_whole_cell() && holds_no_text(column.type_oid) {
                ColumnPlan::Pass
            } else {
                plan
            };
            fields.push(Field {
                plan,
                type_oid: column.type_oid,
                format: column.format,
            });
        }
        let any = fields.iter().any(|f| !f.plan.is_pass());
        let desc = Arc::new(Desc { fields, any });
        match self.pop_front_if(|e| matches!(e, Event::DescribeStatement(_) | Event::DescribePortal(_))) {
            Some(Event::DescribeStatement(name)) => {
                self.statements.insert(name, Some(desc));
            }
            Some(Event::DescribePortal(name)) => {
                if let Some(p) = self.portals.get_mut(&name) {
                    p.desc = Some(desc);
                }
            }
            _ => {
                self.current = Some(Rows {
                    desc,
                    formats: Arc::from([]),
                })
            }
        }
        Ok(())
    }

    /// Scrubs an ErrorResponse or NoticeResponse: detected values in its texts, and the values a
    /// constraint violation echoes (`Key (email)=(...)`, `Failing row contains (...)`) when column rules
    /// exist.
    fn scrub_fields(&mut self, tag: u8, body: &[u8]) -> Option<Vec<u8>> {
        let fields = match backend::decode(tag, body) {
            Ok(BackendMessage::ErrorResponse(f) | BackendMessage::NoticeResponse(f)) => f,
            _ => return None,
        };
        let rules = self.settings.rules.clone();
        let mut counts = Counts::default();
        let mut changed = false;
        let mut scrubbed: Vec<(u8, String)> = Vec::with_capacity(fields.0.len());
        for (code, value) in &fields.0 {
            let mut text = match code {
                b'M' | b'D' | b'H' | b'W' | b'q' => rules.scrub(value, &mut counts),
                _ => None,
            };
            if *code == b'D' && rules.has_column_rules() {
                let base = text.as_deref().unwrap_or(value);
                if let Some(hidden) = hide_echoed_values(base) {
                    counts.add(Reason::Column, 1);
                    text = Some(hidden);
                }
            }
            changed |= text.is_some();
            scrubbed.push((*code, text.unwrap_or_else(|| (*value).to_owned())));
        }
        self.counts.merge(&counts);
        if !changed {
            return None;
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        put_message(&mut out, tag, |b| {
            for (code, value) in &scrubbed {
                b.push(*code);
                b.extend_from_slice(value.as_bytes());
                b.push(0);
            }
            b.push(0);
        });
        Some(out)
    }
}

impl Drop for SessionMask {
    fn drop(&mut self) {
        // Values masked in a result the session did not finish still count in the metrics.
        self.take_counts();
    }
}

/// Masks one DataRow: see [`SessionMask::data_row`]. The unchanged stretches between masked cells (the
/// cell count included) are copied whole; a row is begun in `out` only at its first masked cell, and
/// `value` (scratch) holds one masked value at a time. On an error `out` may hold part of a row.
fn mask_row(
    rows: &Rows,
    prefix: &[u8],
    body: &[u8],
    counts: &mut Counts,
    value: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<Option<usize>, MaskError> {
    let offset = |c: &Cursor<'_>| body.len() - c.remaining().len();
    let mut c = Cursor::new(body);
    let n = c.count16()?;
    // Where the rewritten message starts in `out`, once one was begun.
    let mut row_start = None;
    // Body bytes already written to `out`.
    let mut copied = 0;
    for i in 0..n {
        let start = offset(&c);
        let Some(cell) = c.value32()? else { continue };
        let Some(field) = rows.desc.fields.get(i) else {
            continue;
        };
        if field.plan.is_pass() {
            continue;
        }
        let format = match &*rows.formats {
            [] => field.format,
            [one] => *one,
            many => many.get(i).copied().unwrap_or(0),
        };
        value.clear();
        let applied = mask_cell(field, format, cell, counts, value);
        if applied == Applied::Unchanged {
            continue;
        }
        if row_start.is_none() {
            out.extend_from_slice(prefix);
            row_start = Some(out.len());
            // The length is written once the row is complete.
            out.extend_from_slice(&[b'D', 0, 0, 0, 0]);
        }
        out.extend_from_slice(body.get(copied..start).unwrap_or_default());
        match applied {
            Applied::Written => {
                let len = i32::try_from(value.len()).unwrap_or(i32::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(value);
            }
            _ => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        copied = offset(&c);
    }
    if !c.is_empty() {
        return Err(MaskError::Wire(WireError::Invalid("trailing bytes in DataRow")));
    }
    let Some(row_start) = row_start else {
        return Ok(None);
    };
    out.extend_from_slice(body.get(copied..).unwrap_or_default());
    // The message length counts itself but not the tag.
    let len = out.len() - row_start - 1;
    patch_i32(out, row_start + 1, len);
    Ok(Some(row_start))
}

/// Writes `value` as a big-endian i32 over the four bytes at `at` (a length written after its data).
fn patch_i32(out: &mut [u8], at: usize, value: usize) {
    let value = i32::try_from(value).unwrap_or(i32::MAX);
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// The rows a DataRow arriving now belongs to: the Execute's at the front, or the simple query's.
fn rows_now<'a>(
    events: &VecDeque<Event>,
    exec: &'a Option<Rows>,
    current: &'a Option<Rows>,
) -> Option<&'a Rows> {
    match events.front() {
        Some(Event::Execute(_)) => exec.as_ref(),
        Some(Event::Simple) => current.as_ref(),
        _ => None,
    }
}

/// Type OIDs whose binary format is their text: `text`, `varchar`, `bpchar`, `name`, `json`, `xml`,
/// `unknown`, `"char"`.
fn text_like(type_oid: u32) -> bool {
    matches!(type_oid, 25 | 1043 | 1042 | 19 | 114 | 142 | 705 | 18)
}

/// Types whose values cannot hold what a detector looks for: `bool`, `bytea` (hex or escaped), `int2`,
/// `int4`, `oid`, `float4`, `float8`, `date`, `time`, `timestamp`, `timestamptz`, `interval`, `timetz`,
/// `uuid`. (`int8` and `numeric` can hold a card number; they are scanned.)
fn holds_no_text(type_oid: u32) -> bool {
    matches!(
        type_oid,
        16 | 17 | 21 | 23 | 26 | 700 | 701 | 1082 | 1083 | 1114 | 1184 | 1186 | 1266 | 2950
    )
}

/// `jsonb` in binary: a version byte (1) then the text.
const JSONB: u32 = 3802;

/// Masks one cell into `out` (see [`ColumnPlan::apply_into`]), in the cell's format.
fn mask_cell(field: &Field, format: i16, cell: &[u8], counts: &mut Counts, out: &mut Vec<u8>) -> Applied {
    if format == 0 || text_like(field.type_oid) {
        return field.plan.apply_into(cell, counts, out);
    }
    if field.type_oid == JSONB
        && let Some((&1, text)) = cell.split_first()
    {
        let mark = out.len();
        out.push(1);
        let applied = field.plan.apply_into(text, counts, out);
        if applied != Applied::Written {
            out.truncate(mark);
        }
        return applied;
    }
    // Numbers, dates, UUIDs in binary: detectors do not read them; a column rule hides the value.
    if field.plan.masks_whole_cell() {
        counts.add(Reason::Column, 1);
        Applied::Null
    } else {
        Applied::Unchanged
    }
}

/// Hides the values a constraint violation's DETAIL echoes.
fn hide_echoed_values(detail: &str) -> Option<String> {
    const HIDDEN: &str = "[masked]";
    // Where the echoed values start: after `Key (columns)=(` or `Failing row contains (`; they end at
    // the last `)`.
    let from = [")=(", "Failing row contains ("]
        .iter()
        .find_map(|marker| detail.find(marker).map(|start| start + marker.len()))?;
    let end = detail.rfind(')').filter(|e| *e >= from)?;
    let hidden = format!("{}{HIDDEN}{}", detail.get(..from)?, detail.get(end..)?);
    (hidden != detail).then_some(hidden)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use std::time::Duration;

    use portcullis_mask::{Detector, MaskPolicy, RuleSpec, StrategyName};
    use rand::Rng;

    use super::*;
    use crate::upstream::{UpstreamSettings, UpstreamTls};

    fn settings() -> MaskSettings {
        let rule = |columns: &[&str], detectors: &[Detector], strategy| RuleSpec {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            fields: Vec::new(),
            detectors: detectors.to_vec(),
            strategy,
            keep: None,
            with: None,
            connections: Vec::new(),
        };
        let policy = MaskPolicy::compile(
            &[
                rule(&["*.email", "secret"], &[], StrategyName::Partial),
                rule(
                    &[],
                    &[Detector::Email, Detector::PaymentCard],
                    StrategyName::Redact,
                ),
            ],
            &[7u8; 32],
        )
        .unwrap();
        // Nothing listens on port 1: a description naming a table fails its catalog lookup.
        let upstream = UpstreamSettings {
            address: "127.0.0.1:1".to_owned(),
            host: "localhost".to_owned(),
            database: "x".to_owned(),
            user: "x".to_owned(),
            password: portcullis_core::Secret::new(String::new()),
            tls: UpstreamTls::Disable,
            connect_timeout: Duration::from_millis(200),
        };
        MaskSettings {
            rules: policy.for_connection("app"),
            catalog: Arc::new(Catalog::new(upstream, Duration::from_secs(60))),
            cleartext: Box::new(|_, _| false),
            max_row: 4096,
            counters: Arc::new(std::array::from_fn(|_| metrics::Counter::noop())),
        }
    }

    fn message(tag: u8, body: impl FnOnce(&mut Vec<u8>)) -> (u8, Vec<u8>) {
        let mut out = Vec::new();
        put_message(&mut out, tag, body);
        (tag, out.split_off(HEADER_LEN))
    }

    fn cstr(b: &mut Vec<u8>, s: &str) {
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    }

    fn random_text(rng: &mut impl Rng) -> String {
        const PARTS: &[&str] = &[
            "ada@example.com",
            "4111 1111 1111 1111",
            "order 42",
            "é",
            " ",
            "x",
            "@",
            "secret",
            "\u{1F600}",
        ];
        // Words, as text has them: the detectors' boundaries are the engine's own tests.
        (0..rng.random_range(0..6))
            .map(|_| PARTS[rng.random_range(0..PARTS.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn random_server_message(rng: &mut impl Rng) -> (u8, Vec<u8>) {
        match rng.random_range(0..12) {
            0 => message(b'T', |b| {
                let n = rng.random_range(0..4i16);
                b.extend_from_slice(&n.to_be_bytes());
                for i in 0..n {
                    cstr(b, ["email", "note", "secret", "id"][i as usize % 4]);
                    let oid: u32 = if rng.random_bool(0.2) { 16384 } else { 0 };
                    b.extend_from_slice(&oid.to_be_bytes());
                    b.extend_from_slice(&(i + 1).to_be_bytes());
                    let ty: u32 = [25, 23, 3802, 1043][rng.random_range(0..4)];
                    b.extend_from_slice(&ty.to_be_bytes());
                    b.extend_from_slice(&(-1i16).to_be_bytes());
                    b.extend_from_slice(&(-1i32).to_be_bytes());
                    b.extend_from_slice(&(rng.random_range(0..2i16)).to_be_bytes());
                }
            }),
            1..=3 => message(b'D', |b| {
                let n = rng.random_range(0..5i16);
                b.extend_from_slice(&n.to_be_bytes());
                for _ in 0..n {
                    if rng.random_bool(0.2) {
                        b.extend_from_slice(&(-1i32).to_be_bytes());
                    } else {
                        let mut v = random_text(rng).into_bytes();
                        if rng.random_bool(0.1) {
                            v.insert(0, 1);
                        }
                        b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        b.extend_from_slice(&v);
                    }
                }
            }),
            4..=5 => message([b'E', b'N'][rng.random_range(0..2)], |b| {
                for (code, fixed) in [
                    (b'S', Some("ERROR")),
                    (b'C', Some("23505")),
                    (b'M', None),
                    (b'D', None),
                ] {
                    b.push(code);
                    let text = format!("Key (email)=({}) {}", random_text(rng), random_text(rng));
                    cstr(b, fixed.unwrap_or(&text));
                }
                b.push(0);
            }),
            6 => message(b'Z', |b| b.push(b'I')),
            7 => message(b'C', |b| cstr(b, "SELECT 1")),
            8 => (b'1', Vec::new()),
            9 => (b'2', Vec::new()),
            10 => (b'n', Vec::new()),
            _ => (b't', vec![0, 0]),
        }
    }

    fn random_client_message(rng: &mut impl Rng) -> (u8, Vec<u8>) {
        let name = ["", "s1", "s2"][rng.random_range(0..3)];
        match rng.random_range(0..7) {
            0 => message(b'Q', |b| cstr(b, "SELECT 1")),
            1 => message(b'P', |b| {
                cstr(b, name);
                cstr(b, "SELECT 1");
                b.extend_from_slice(&0i16.to_be_bytes());
            }),
            2 => message(b'B', |b| {
                cstr(b, name);
                cstr(b, name);
                b.extend_from_slice(&0i16.to_be_bytes());
                b.extend_from_slice(&0i16.to_be_bytes());
                let formats = rng.random_range(0..3i16);
                b.extend_from_slice(&formats.to_be_bytes());
                for _ in 0..formats {
                    b.extend_from_slice(&rng.random_range(0..2i16).to_be_bytes());
                }
            }),
            3 => message(b'D', |b| {
                b.push([b'S', b'P'][rng.random_range(0..2)]);
                cstr(b, name);
            }),
            4 => message(b'E', |b| {
                cstr(b, name);
                b.extend_from_slice(&0i32.to_be_bytes());
            }),
            5 => message(b'C', |b| {
                b.push(b'S');
                cstr(b, name);
            }),
            _ => (b'S', Vec::new()),
        }
    }

    /// Random conversations (descriptions and rows need not agree, as from a broken server): the masker
    /// never panics, a rewritten row keeps its cell count and stays a well-formed DataRow, a rewritten
    /// error stays a well-formed error. (What is masked is shown end to end in tests/masking.rs.)
    #[tokio::test]
    async fn random_conversations_keep_messages_well_formed() {
        let mut rng = rand::rng();
        for _ in 0..300 {
            let mut mask = SessionMask::new(settings());
            let events = mask.client_events();
            for _ in 0..40 {
                if rng.random_bool(0.4) {
                    let (tag, body) = random_client_message(&mut rng);
                    if ClientEvents::wants(tag) || matches!(tag, b'Q') {
                        events.sent(tag, &body).unwrap();
                    } else {
                        events.sent_tag(tag);
                    }
                    continue;
                }
                let (tag, body) = random_server_message(&mut rng);
                if !mask.wants(tag) {
                    mask.passed(tag);
                    continue;
                }
                let rewritten = if tag == b'D' {
                    let mut out = Vec::new();
                    mask.data_row(&[], &body, &mut out).map(|at| at.map(|_| out))
                } else {
                    mask.message(tag, &body).await
                };
                if let Ok(Some(out)) = rewritten {
                    let (out_tag, out_body) = (out[0], &out[HEADER_LEN..]);
                    assert_eq!(out_tag, tag);
                    let len = i32::from_be_bytes(out[1..HEADER_LEN].try_into().unwrap());
                    assert_eq!(len as usize, out.len() - 1);
                    let decoded = backend::decode(tag, out_body).unwrap();
                    if let (BackendMessage::DataRow(after), Ok(BackendMessage::DataRow(before))) =
                        (&decoded, backend::decode(tag, &body))
                    {
                        assert_eq!(after.len(), before.len());
                    }
                }
            }
        }
    }

    #[test]
    fn a_masked_row_keeps_every_other_cell_byte_for_byte() {
        let rules = settings().rules;
        let field = |column: &str| Field {
            plan: rules.column(ColumnRef {
                schema: Some("public"),
                table: Some("people"),
                column,
            }),
            type_oid: 25,
            format: 0,
        };
        let fields = vec![field("id"), field("email"), field("note"), field("email")];
        let any = fields.iter().any(|f| !f.plan.is_pass());
        let rows = Rows {
            desc: Arc::new(Desc { fields, any }),
            formats: Arc::from([]),
        };
        let (_, body) = message(b'D', |b| {
            b.extend_from_slice(&4i16.to_be_bytes());
            for cell in [Some(&b"7"[..]), Some(b"ada@example.com"), None, None] {
                match cell {
                    Some(v) => {
                        b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        b.extend_from_slice(v);
                    }
                    None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
        });
        let mut counts = Counts::default();
        let mut out = b"before".to_vec();
        let at = mask_row(&rows, b"prefix", &body, &mut counts, &mut Vec::new(), &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(&out[..at], b"beforeprefix");
        let BackendMessage::DataRow(cells) = backend::decode(b'D', &out[at + HEADER_LEN..]).unwrap() else {
            panic!("not a DataRow")
        };
        assert_eq!(
            cells,
            [Some(&b"7"[..]), Some(&b"***@******e.com"[..]), None, None]
        );
        assert_eq!(counts.get(Reason::Column), 1);
    }

    #[test]
    fn echoed_values_are_hidden() {
        assert_eq!(
            hide_echoed_values("Key (email)=(bob@example.com) already exists.").as_deref(),
            Some("Key (email)=([masked]) already exists.")
        );
        assert_eq!(
            hide_echoed_values("Failing row contains (1, bob, 4111111111111111).").as_deref(),
            Some("Failing row contains ([masked]).")
        );
        assert_eq!(hide_echoed_values("nothing to see"), None);
    }
}
