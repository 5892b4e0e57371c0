//! Rules: compiled once from config, resolved per connection and per result column.
//!
//! Precedence: for a column, the first matching column rule wins and masks the whole cell; otherwise the
//! detectors of the connection's rules run over the text, and each finding gets the strategy of the first
//! rule that lists its detector.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::detector::{Counts, Detector, DetectorSet};
use crate::field::{FieldMatcher, FieldPattern};
use crate::glob::ColumnPattern;
use crate::plan::{ColumnPlan, DetectorRules, PlanInner};
use crate::strategy::{Key, Strategy, StrategyName};

/// The shortest key `compile` accepts when a rule uses `hash` or `format_preserving`: a short key would
/// let anyone who sees a pseudonym test guesses (an SSN has a billion values).
pub const MIN_KEY_LEN: usize = 16;

/// One masking rule as written in config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Column patterns, case-insensitive: `column`, `table.column` or `schema.table.column`, each part a
    /// glob with `*` and `?` (`*.email`, `*ssn*`, `public.customers.card_number`).
    #[serde(default)]
    pub columns: Vec<String>,
    /// JSON field patterns over the key path (HTTP bodies): `email`, `*.email`, `customers[].card_number`,
    /// `$.data.*.ssn`. Each part a glob like the columns'; `[]` after a key requires an array there; a
    /// leading `$.` anchors at the root. A matched value (every scalar inside it, for an object or an
    /// array) is masked whole by `strategy`.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Content detectors this rule applies to every text value.
    #[serde(default)]
    pub detectors: Vec<Detector>,
    pub strategy: StrategyName,
    /// For `partial`: how many trailing letters and digits stay visible.
    #[serde(default)]
    pub keep: Option<usize>,
    /// For `redact`: the replacement text.
    #[serde(default)]
    pub with: Option<String>,
    /// The connections this rule applies to; empty means all.
    #[serde(default)]
    pub connections: Vec<String>,
}

/// A rule that cannot be compiled. `index` is the rule's position in the slice given to
/// [`MaskPolicy::compile`] (from 0). The fault is the configuration's.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("masking rule {index}: {why}")]
    Invalid { index: usize, why: String },
}

/// All rules, compiled, with the key for `hash` and `format_preserving`. `Debug` never shows the key.
#[derive(Debug)]
pub struct MaskPolicy {
    /// The rules of each connection named by some rule.
    named: HashMap<String, Arc<ConnectionMask>>,
    /// The rules of every other connection (those with no `connections` list).
    other: Arc<ConnectionMask>,
}

/// One rule, checked.
#[derive(Debug)]
struct Rule {
    columns: Arc<[ColumnPattern]>,
    fields: Vec<FieldPattern>,
    detectors: Vec<Detector>,
    strategy: Arc<Strategy>,
    connections: Vec<String>,
    /// The plan of a column this rule matches (when it has column patterns).
    column_plan: Option<ColumnPlan>,
}

impl Rule {
    fn applies_to(&self, connection: &str) -> bool {
        self.connections.is_empty() || self.connections.iter().any(|c| c == connection)
    }
}

impl MaskPolicy {
    /// Compiles `rules` (in order: for a column, the first matching column rule wins; for a detector
    /// finding, the first rule listing that detector). `key` keys `hash` and `format_preserving`; it must
    /// be at least [`MIN_KEY_LEN`] bytes when a rule uses either.
    pub fn compile(rules: &[RuleSpec], key: &[u8]) -> Result<MaskPolicy, RuleError> {
        let invalid = |index: usize, why: String| RuleError::Invalid { index, why };
        let key_ok = key.len() >= MIN_KEY_LEN;
        let key = Arc::new(Key::new(key).ok_or_else(|| invalid(0, "the key cannot key HMAC-SHA256".into()))?);
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, spec) in rules.iter().enumerate() {
            compiled.push(Rule::compile(spec, &key, key_ok).map_err(|why| invalid(index, why))?);
        }
        // Each named connection gets its rules resolved now; for_connection is then a lookup.
        let mut named = HashMap::new();
        for name in compiled.iter().flat_map(|r| r.connections.iter()) {
            if !named.contains_key(name) {
                named.insert(name.clone(), Arc::new(ConnectionMask::new(&compiled, name, &key)));
            }
        }
        // Every other connection: "" is in no `connections` list (empty names are refused), so only the
        // rules for all connections apply.
        let other = Arc::new(ConnectionMask::new(&compiled, "", &key));
        Ok(MaskPolicy { named, other })
    }

    /// The rules that apply on `connection`. A map lookup and an `Arc` clone: cheap per session.
    pub fn for_connection(&self, connection: &str) -> Arc<ConnectionMask> {
        self.named.get(connection).unwrap_or(&self.other).clone()
    }
}

impl Rule {
    fn compile(spec: &RuleSpec, key: &Arc<Key>, key_ok: bool) -> Result<Rule, String> {
        if spec.columns.is_empty() && spec.fields.is_empty() && spec.detectors.is_empty() {
            return Err("names no `columns`, no `fields` and no `detectors`: it would never apply".into());
        }
        if spec.connections.iter().any(|c| c.is_empty()) {
            return Err("`connections` holds an empty name".into());
        }
        let columns = spec
            .columns
            .iter()
            .map(|c| ColumnPattern::parse(c))
            .collect::<Result<Arc<[_]>, _>>()?;
        let fields = spec
            .fields
            .iter()
            .map(|f| FieldPattern::parse(f))
            .collect::<Result<Vec<_>, _>>()?;
        let strategy = Arc::new(Strategy::from_spec(spec)?);
        if strategy.keyed() && !key_ok {
            return Err(format!(
                "`{}` needs a masking key of at least {MIN_KEY_LEN} bytes",
                spec.strategy.name()
            ));
        }
        let column_plan = (!columns.is_empty())
            .then(|| ColumnPlan::Apply(Arc::new(PlanInner::column(strategy.clone(), key.clone()))));
        Ok(Rule {
            columns,
            fields,
            detectors: spec.detectors.clone(),
            strategy,
            connections: spec.connections.clone(),
            column_plan,
        })
    }
}

/// The rules of one connection.
#[derive(Debug)]
pub struct ConnectionMask {
    /// Column rules in config order, each with the plan of the columns it matches.
    columns: Vec<(Arc<[ColumnPattern]>, ColumnPlan)>,
    /// The plan of every other column: detectors, or `Pass` when the connection has none.
    detect: ColumnPlan,
    /// The detectors with the strategy of each, shared with `detect`.
    detectors: Option<Arc<DetectorRules>>,
    /// JSON field patterns in rule order, each naming its rule's strategy in `field_strategies`.
    fields: FieldMatcher,
    field_strategies: Vec<Arc<Strategy>>,
    key: Arc<Key>,
}

/// Where a result column comes from. `schema` and `table` are `None` for a computed column.
#[derive(Debug, Clone, Copy)]
pub struct ColumnRef<'a> {
    pub schema: Option<&'a str>,
    pub table: Option<&'a str>,
    /// The table's column name, or for a computed column its output name.
    pub column: &'a str,
}

impl ConnectionMask {
    fn new(rules: &[Rule], connection: &str, key: &Arc<Key>) -> ConnectionMask {
        let applying = || rules.iter().filter(|r| r.applies_to(connection));
        let columns = applying()
            .filter_map(|r| Some((r.columns.clone(), r.column_plan.clone()?)))
            .collect();
        let mut strategies: [Option<Arc<Strategy>>; Detector::ALL.len()] = Default::default();
        for rule in applying() {
            for d in &rule.detectors {
                if let Some(slot) = strategies.get_mut(*d as usize)
                    && slot.is_none()
                {
                    *slot = Some(rule.strategy.clone());
                }
            }
        }
        let mut fields = FieldMatcher::default();
        let mut field_strategies = Vec::new();
        for rule in applying().filter(|r| !r.fields.is_empty()) {
            for pattern in &rule.fields {
                fields.push(pattern.clone(), field_strategies.len());
            }
            field_strategies.push(rule.strategy.clone());
        }
        let detectors = DetectorRules::new(strategies, key.clone()).map(Arc::new);
        let detect = match &detectors {
            Some(d) => ColumnPlan::Apply(Arc::new(PlanInner::detect(d.clone()))),
            None => ColumnPlan::Pass,
        };
        ConnectionMask {
            columns,
            detect,
            detectors,
            fields,
            field_strategies,
            key: key.clone(),
        }
    }

    /// Whether any rule applies at all (no column rules and no detectors: results pass untouched).
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty() && self.detectors.is_none() && self.fields.is_empty()
    }

    /// Whether any JSON field rule exists (a JSON body is then masked even without detectors).
    pub fn has_field_rules(&self) -> bool {
        !self.fields.is_empty()
    }

    pub(crate) fn field_matcher(&self) -> &FieldMatcher {
        &self.fields
    }

    pub(crate) fn field_strategy(&self, slot: usize) -> Option<&Strategy> {
        self.field_strategies.get(slot).map(|s| &**s)
    }

    pub(crate) fn detector_rules(&self) -> Option<&DetectorRules> {
        self.detectors.as_deref()
    }

    pub(crate) fn key(&self) -> &Key {
        &self.key
    }

    /// Whether any column rule exists (the gateway then resolves result columns to tables).
    pub fn has_column_rules(&self) -> bool {
        !self.columns.is_empty()
    }

    /// The detectors that run over this connection's text values.
    pub fn detectors(&self) -> DetectorSet {
        self.detectors.as_ref().map_or(DetectorSet::EMPTY, |d| d.set())
    }

    /// The plan for one result column. A computed column (no table) matches patterns whose table part is
    /// `*` or absent, by its output name. Matches the column against each column rule's patterns (no
    /// allocation); the plan returned is shared, not built.
    pub fn column(&self, column: ColumnRef<'_>) -> ColumnPlan {
        self.columns
            .iter()
            .find(|(patterns, _)| patterns.iter().any(|p| p.matches(&column)))
            .map_or_else(|| self.detect.clone(), |(_, plan)| plan.clone())
    }

    /// Free text (an error message, a statement, a parameter) with every detected value masked by its
    /// rule (`null` redacts here); `None` when nothing was found.
    pub fn scrub(&self, text: &str, counts: &mut Counts) -> Option<String> {
        self.detectors.as_ref()?.scrub(text, counts)
    }
}

#[cfg(test)]
mod tests;
