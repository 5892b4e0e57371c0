//! The masking engine: detectors for sensitive values, masking strategies, and the rules between.
//!
//! Validating detectors find sensitive values in one pass over each value; strategies mask them; rules
//! pick a strategy by column or by detector. Pure: no I/O, no protocol.
//!
//! API contract used by the gateway:
//!
//! - [`MaskPolicy::compile`] turns config rules and a key into a policy; [`MaskPolicy::for_connection`]
//!   gives the rules that apply to one connection.
//! - [`ConnectionMask::column`] resolves the plan for one result column; [`ColumnPlan::apply`] masks a
//!   cell's text.
//! - [`ConnectionMask::scrub`] masks free text (error messages, statement text, parameters) by detectors.
//! - [`JsonMasker`] masks a JSON body streamed in chunks (field rules and detectors); [`TextMasker`] a
//!   text body (detectors), both with bounded memory.
//! - [`detect`] runs detectors alone (tests, tools).
//!
//! `docs/masking.md` describes each detector, the strategies, the rule syntax and the measured accuracy
//! and speed.

mod detect;
mod detector;
mod field;
mod glob;
mod json;
mod plan;
mod rules;
mod strategy;
mod text;

pub use detect::{detect, detect_into};
pub use detector::{Counts, Detector, DetectorSet, Finding, Reason};
pub use json::{JsonError, JsonLimits, JsonMasker};
pub use plan::{Applied, ColumnPlan, Masked, PlanInner};
pub use rules::{ColumnRef, ConnectionMask, MIN_KEY_LEN, MaskPolicy, RuleError, RuleSpec};
pub use strategy::{DEFAULT_KEEP, DEFAULT_REDACTION, StrategyName};
pub use text::{TextLimits, TextMasker};
