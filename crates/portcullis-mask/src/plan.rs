//! The hot path: what each cell of a result column becomes, and what free text becomes.
//!
//! A cell with no finding costs one scan (UTF-8 is checked only once something was found) and allocates
//! nothing; a masked cell allocates its new value once, sized up front.

use std::cell::RefCell;
use std::sync::Arc;

use crate::detect::{detect_bytes, detect_into};
use crate::detector::{Counts, Detector, DetectorSet, Finding, Reason};
use crate::strategy::{DEFAULT_REDACTION, Key, Strategy};

/// What to do with the cells of one column.
#[derive(Debug, Clone)]
pub enum ColumnPlan {
    /// Nothing applies: cells pass without being looked at.
    Pass,
    /// Opaque: the engine's internal plan (a column rule, or detectors to run).
    Apply(Arc<PlanInner>),
}

/// Internal to the engine: a column rule's strategy, or the connection's detectors.
#[derive(Debug)]
pub struct PlanInner {
    kind: PlanKind,
}

#[derive(Debug)]
enum PlanKind {
    /// The whole cell, by one rule.
    Column { strategy: Arc<Strategy>, key: Arc<Key> },
    /// Each detected value, by its detector's rule.
    Detect(Arc<DetectorRules>),
}

impl PlanInner {
    pub(crate) fn column(strategy: Arc<Strategy>, key: Arc<Key>) -> PlanInner {
        PlanInner {
            kind: PlanKind::Column { strategy, key },
        }
    }

    pub(crate) fn detect(rules: Arc<DetectorRules>) -> PlanInner {
        PlanInner {
            kind: PlanKind::Detect(rules),
        }
    }
}

/// The result of masking one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Masked {
    Unchanged,
    Null,
    Value(Vec<u8>),
}

impl ColumnPlan {
    pub fn is_pass(&self) -> bool {
        matches!(self, ColumnPlan::Pass)
    }

    /// Whether a column rule masks every cell whole (as opposed to detectors looking inside the text):
    /// the gateway then hides binary-format cells of non-text types (numbers, dates) it cannot rewrite.
    pub fn masks_whole_cell(&self) -> bool {
        matches!(self, ColumnPlan::Apply(inner) if matches!(inner.kind, PlanKind::Column { .. }))
    }

    /// Masks one cell given as text (UTF-8 expected; other bytes are treated as opaque and only column
    /// rules apply). Counts what it masked.
    pub fn apply(&self, cell: &[u8], counts: &mut Counts) -> Masked {
        let mut out = Vec::new();
        match self.apply_into(cell, counts, &mut out) {
            Applied::Unchanged => Masked::Unchanged,
            Applied::Null => Masked::Null,
            Applied::Written => Masked::Value(out),
        }
    }

    /// [`Self::apply`] without a value of its own: a masked value is appended to `out` (the gateway
    /// writes it straight into the row it rebuilds). On `Unchanged` and `Null`, `out` is as it was.
    pub fn apply_into(&self, cell: &[u8], counts: &mut Counts, out: &mut Vec<u8>) -> Applied {
        let ColumnPlan::Apply(inner) = self else {
            return Applied::Unchanged;
        };
        match &inner.kind {
            PlanKind::Column { strategy, key } => {
                counts.add(Reason::Column, 1);
                if strategy.mask_cell_into(key, cell, out) {
                    Applied::Written
                } else {
                    Applied::Null
                }
            }
            PlanKind::Detect(rules) => rules.mask_cell(cell, counts, out),
        }
    }
}

/// What [`ColumnPlan::apply_into`] did with a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    Null,
    /// The masked value was appended to the output.
    Written,
}

thread_local! {
    /// The findings of the cell being masked, reused from cell to cell: a cell with findings then
    /// allocates only its new value. Never borrowed across a call that could come back here.
    static FINDINGS: RefCell<Vec<Finding>> = const { RefCell::new(Vec::new()) };
}

/// A findings buffer that grew past this many (a huge cell full of emails) is given back afterwards.
const MAX_KEPT_FINDINGS: usize = 1024;

/// The detectors of a connection and the strategy of each (from the first rule that lists it).
#[derive(Debug)]
pub(crate) struct DetectorRules {
    set: DetectorSet,
    strategies: [Option<Arc<Strategy>>; Detector::ALL.len()],
    key: Arc<Key>,
}

impl DetectorRules {
    /// `None` when no detector has a strategy.
    pub(crate) fn new(
        strategies: [Option<Arc<Strategy>>; Detector::ALL.len()],
        key: Arc<Key>,
    ) -> Option<DetectorRules> {
        let set: DetectorSet = Detector::ALL
            .into_iter()
            .zip(&strategies)
            .filter(|(_, s)| s.is_some())
            .map(|(d, _)| d)
            .collect();
        (!set.is_empty()).then_some(DetectorRules { set, strategies, key })
    }

    pub(crate) fn set(&self) -> DetectorSet {
        self.set
    }

    fn strategy(&self, detector: Detector) -> Option<&Strategy> {
        self.strategies.get(detector as usize)?.as_deref()
    }

    /// A cell: unchanged without findings or when it is not UTF-8, NULL when a finding's strategy is
    /// `null`, else the text with each finding masked, appended to `out`. UTF-8 is checked only once
    /// something was found: the scan reads bytes, and most cells have nothing.
    pub(crate) fn mask_cell(&self, cell: &[u8], counts: &mut Counts, out: &mut Vec<u8>) -> Applied {
        FINDINGS.with_borrow_mut(|findings| {
            detect_bytes(cell, self.set, findings);
            // The common case, kept inline: nothing found, nothing to do.
            if findings.is_empty() {
                return Applied::Unchanged;
            }
            let applied = self.mask_findings(cell, findings, counts, out);
            if findings.capacity() > MAX_KEPT_FINDINGS {
                *findings = Vec::new();
            }
            applied
        })
    }

    fn mask_findings(
        &self,
        cell: &[u8],
        findings: &[Finding],
        counts: &mut Counts,
        out: &mut Vec<u8>,
    ) -> Applied {
        if findings.is_empty() {
            return Applied::Unchanged;
        }
        // Most cells are ASCII, which is UTF-8 and cheaper to check than UTF-8 itself.
        if !cell.is_ascii() && std::str::from_utf8(cell).is_err() {
            return Applied::Unchanged;
        }
        self.count(findings, counts);
        if findings
            .iter()
            .any(|f| self.strategy(f.detector).is_none_or(Strategy::is_null))
        {
            return Applied::Null;
        }
        let mark = out.len();
        match self.rewrite_cell(cell, findings, out) {
            Some(()) => Applied::Written,
            // Findings always fall on char boundaries; should one not, nothing of the cell shows.
            None => {
                out.truncate(mark);
                Applied::Null
            }
        }
    }

    /// The cell (checked UTF-8) with each finding replaced, appended to `out` as bytes: the parts between
    /// findings are copied without being read as text again, and a finding is read as `&str` only when
    /// its strategy looks at the value (`redact` does not). `None` leaves part of it written.
    fn rewrite_cell(&self, cell: &[u8], findings: &[Finding], out: &mut Vec<u8>) -> Option<()> {
        let mut size = cell.len();
        for f in findings {
            let replacement = self
                .strategy(f.detector)
                .map_or(Some(DEFAULT_REDACTION), Strategy::fixed_text);
            // `partial` and `format_preserving` keep about the length; `hash` writes 16 bytes.
            size = size - f.len() + replacement.map_or(f.len().max(16), str::len);
        }
        out.reserve(size);
        let mut last = 0;
        // A byte that does not continue a char: copying bytes between findings keeps the output UTF-8
        // only when each finding starts and ends on one (the scan ensures it; this makes it a check).
        let boundary = |i: usize| cell.get(i).is_none_or(|x| !(0x80..0xc0).contains(x));
        for f in findings {
            if !(boundary(f.start) && boundary(f.end)) {
                return None;
            }
            out.extend_from_slice(cell.get(last..f.start)?);
            match self.strategy(f.detector) {
                Some(strategy) => match strategy.fixed_text() {
                    Some(text) => out.extend_from_slice(text.as_bytes()),
                    None => {
                        let value = std::str::from_utf8(cell.get(f.start..f.end)?).ok()?;
                        strategy.mask_text(&self.key, value, out);
                    }
                },
                None => out.extend_from_slice(DEFAULT_REDACTION.as_bytes()),
            }
            last = f.end;
        }
        out.extend_from_slice(cell.get(last..)?);
        Some(())
    }

    /// Text with each finding masked, appended to `out` (`null` redacts, as in free text); `false`, with
    /// nothing appended, when nothing was found. Text that is not UTF-8 is scanned as bytes; a finding's
    /// value is read lossily by the strategies that look at it.
    pub(crate) fn mask_text_into(&self, text: &[u8], counts: &mut Counts, out: &mut Vec<u8>) -> bool {
        FINDINGS.with_borrow_mut(|findings| {
            detect_bytes(text, self.set, findings);
            if findings.is_empty() {
                return false;
            }
            self.rewrite_text(text, findings, counts, out);
            if findings.capacity() > MAX_KEPT_FINDINGS {
                *findings = Vec::new();
            }
            true
        })
    }

    /// `text` with the given findings (sorted, disjoint, from [`detect_bytes`] over `text` or a text it
    /// starts) masked, appended to `out`; `null` redacts. Counts the findings.
    pub(crate) fn rewrite_text(
        &self,
        text: &[u8],
        findings: &[Finding],
        counts: &mut Counts,
        out: &mut Vec<u8>,
    ) {
        self.count(findings, counts);
        let mut last = 0;
        for f in findings {
            // Findings are sorted and disjoint; were one not, the bytes between are dropped, not shown.
            out.extend_from_slice(text.get(last..f.start).unwrap_or_default());
            let value = text.get(f.start..f.end).unwrap_or_default();
            match self.strategy(f.detector) {
                Some(strategy) => match strategy.fixed_text() {
                    Some(fixed) => out.extend_from_slice(fixed.as_bytes()),
                    None => strategy.mask_text(&self.key, &String::from_utf8_lossy(value), out),
                },
                None => out.extend_from_slice(DEFAULT_REDACTION.as_bytes()),
            }
            last = last.max(f.end);
        }
        out.extend_from_slice(text.get(last..).unwrap_or_default());
    }

    /// Free text: `None` without findings, else the text with each finding masked (`null` redacts).
    pub(crate) fn scrub(&self, text: &str, counts: &mut Counts) -> Option<String> {
        let mut findings = Vec::new();
        detect_into(text, self.set, &mut findings);
        if findings.is_empty() {
            return None;
        }
        self.count(&findings, counts);
        Some(
            self.rewrite(text, &findings)
                .unwrap_or_else(|| DEFAULT_REDACTION.to_owned()),
        )
    }

    fn count(&self, findings: &[Finding], counts: &mut Counts) {
        for f in findings {
            counts.add(Reason::Detector(f.detector), 1);
        }
    }

    /// The text with each finding replaced by its strategy's output.
    fn rewrite(&self, text: &str, findings: &[Finding]) -> Option<String> {
        let mut out = String::with_capacity(text.len() + 16);
        let mut last = 0;
        for f in findings {
            out.push_str(text.get(last..f.start)?);
            let value = text.get(f.start..f.end)?;
            match self.strategy(f.detector) {
                Some(strategy) => strategy.mask_text(&self.key, value, &mut out),
                None => out.push_str(DEFAULT_REDACTION),
            }
            last = f.end;
        }
        out.push_str(text.get(last..)?);
        Some(out)
    }
}
