//! Rule compilation and precedence: the plan a column gets, what cells and free text become.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;
use crate::detector::Reason;
use crate::plan::Masked;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn rule(strategy: StrategyName) -> RuleSpec {
    RuleSpec {
        columns: Vec::new(),
        fields: Vec::new(),
        detectors: Vec::new(),
        strategy,
        keep: None,
        with: None,
        connections: Vec::new(),
    }
}

fn columns(mut r: RuleSpec, columns: &[&str]) -> RuleSpec {
    r.columns = columns.iter().map(|c| c.to_string()).collect();
    r
}

fn detectors(mut r: RuleSpec, detectors: &[Detector]) -> RuleSpec {
    r.detectors = detectors.to_vec();
    r
}

fn col<'a>(schema: Option<&'a str>, table: Option<&'a str>, column: &'a str) -> ColumnRef<'a> {
    ColumnRef {
        schema,
        table,
        column,
    }
}

fn apply(plan: &ColumnPlan, cell: &str) -> (Masked, Counts) {
    let mut counts = Counts::default();
    let masked = plan.apply(cell.as_bytes(), &mut counts);
    (masked, counts)
}

fn value(s: &str) -> Masked {
    Masked::Value(s.as_bytes().to_vec())
}

#[test]
fn the_first_matching_column_rule_wins_and_masks_the_whole_cell() {
    let policy = MaskPolicy::compile(
        &[
            columns(rule(StrategyName::Null), &["public.customers.ssn"]),
            columns(rule(StrategyName::Partial), &["*ssn*", "*.card_number"]),
            detectors(rule(StrategyName::Redact), &[Detector::Email]),
        ],
        KEY,
    )
    .unwrap();
    let mask = policy.for_connection("prod");
    assert!(!mask.is_empty() && mask.has_column_rules());

    let ssn = mask.column(col(Some("public"), Some("customers"), "ssn"));
    assert_eq!(apply(&ssn, "123-45-6789").0, Masked::Null);

    let other_ssn = mask.column(col(Some("public"), Some("employees"), "SSN"));
    let (masked, counts) = apply(&other_ssn, "123-45-6789 jane@example.com");
    assert_eq!(masked, value("***-**-**** ****@******e.com"));
    assert_eq!(counts.get(Reason::Column), 1);
    assert_eq!(counts.total(), 1);

    // Any other column: the detector rules.
    let notes = mask.column(col(Some("public"), Some("customers"), "notes"));
    let (masked, counts) = apply(&notes, "mail jane@example.com or jo@example.org");
    assert_eq!(masked, value("mail [redacted] or [redacted]"));
    assert_eq!(counts.get(Reason::Detector(Detector::Email)), 2);
    assert_eq!(apply(&notes, "nothing here").0, Masked::Unchanged);
}

#[test]
fn each_finding_gets_the_strategy_of_the_first_rule_listing_its_detector() {
    let policy = MaskPolicy::compile(
        &[
            detectors(rule(StrategyName::Partial), &[Detector::PaymentCard]),
            detectors(
                rule(StrategyName::Redact),
                &[Detector::PaymentCard, Detector::Email],
            ),
            detectors(rule(StrategyName::Hash), &[Detector::Email, Detector::Phone]),
        ],
        KEY,
    )
    .unwrap();
    let mask = policy.for_connection("any");
    let plan = mask.column(col(None, None, "note"));
    let (masked, counts) = apply(
        &plan,
        "card 4111 1111 1111 1111, mail a@example.com, call 212-555-0142",
    );
    let Masked::Value(v) = masked else {
        panic!("{masked:?}")
    };
    let text = String::from_utf8(v).unwrap();
    assert!(
        text.starts_with("card **** **** **** 1111, mail [redacted], call "),
        "{text}"
    );
    let pseudonym = text.rsplit(' ').next().unwrap();
    assert_eq!(pseudonym.len(), 16, "{text}");
    assert_eq!(counts.total(), 3);
}

#[test]
fn a_null_finding_nulls_the_cell_but_redacts_free_text() {
    let policy = MaskPolicy::compile(
        &[
            detectors(rule(StrategyName::Null), &[Detector::UsSsn]),
            detectors(rule(StrategyName::Redact), &[Detector::Email]),
        ],
        KEY,
    )
    .unwrap();
    let mask = policy.for_connection("c");
    let plan = mask.column(col(Some("s"), Some("t"), "c"));
    let (masked, counts) = apply(&plan, "ssn 123-45-6789 of a@example.com");
    assert_eq!(masked, Masked::Null);
    assert_eq!(counts.total(), 2, "every finding is counted");

    let mut counts = Counts::default();
    let scrubbed = mask.scrub("ERROR: key (ssn)=(123-45-6789) of a@example.com", &mut counts);
    assert_eq!(
        scrubbed.as_deref(),
        Some("ERROR: key (ssn)=([redacted]) of [redacted]")
    );
    assert_eq!(counts.get(Reason::Detector(Detector::UsSsn)), 1);
    assert_eq!(mask.scrub("nothing to see", &mut counts), None);
}

#[test]
fn pass_when_nothing_applies() {
    let policy = MaskPolicy::compile(&[columns(rule(StrategyName::Redact), &["*.email"])], KEY).unwrap();
    let mask = policy.for_connection("c");
    assert!(mask.column(col(Some("public"), Some("t"), "name")).is_pass());
    assert!(!mask.column(col(Some("public"), Some("t"), "email")).is_pass());
    assert!(
        mask.column(col(None, None, "email"))
            .apply(b"x", &mut Counts::default())
            != Masked::Unchanged
    );
    assert_eq!(mask.scrub("jane@example.com", &mut Counts::default()), None);

    let empty = MaskPolicy::compile(&[], b"").unwrap().for_connection("c");
    assert!(empty.is_empty() && !empty.has_column_rules());
    assert!(empty.column(col(None, None, "email")).is_pass());
    assert_eq!(empty.detectors(), DetectorSet::EMPTY);
}

#[test]
fn rules_apply_to_their_connections_only() {
    let mut only_prod = detectors(rule(StrategyName::Redact), &[Detector::Email]);
    only_prod.connections = vec!["prod".into()];
    let mut only_staging = columns(rule(StrategyName::Null), &["email"]);
    only_staging.connections = vec!["staging".into(), "qa".into()];
    let everywhere = detectors(rule(StrategyName::Partial), &[Detector::Phone]);
    let policy = MaskPolicy::compile(&[only_prod, only_staging, everywhere], KEY).unwrap();

    let prod = policy.for_connection("prod");
    assert_eq!(
        prod.detectors(),
        [Detector::Email, Detector::Phone].into_iter().collect()
    );
    assert!(!prod.has_column_rules());
    let qa = policy.for_connection("qa");
    assert!(qa.has_column_rules());
    assert_eq!(qa.detectors(), [Detector::Phone].into_iter().collect());
    let dev = policy.for_connection("dev");
    assert!(!dev.has_column_rules());
    assert_eq!(dev.detectors(), [Detector::Phone].into_iter().collect());
    // The same connection gets the same shared mask.
    assert!(Arc::ptr_eq(&prod, &policy.for_connection("prod")));
}

#[test]
fn non_utf8_cells_see_only_column_rules() {
    let policy = MaskPolicy::compile(
        &[
            columns(rule(StrategyName::Partial), &["blob"]),
            detectors(rule(StrategyName::Redact), &[Detector::Email]),
        ],
        KEY,
    )
    .unwrap();
    let mask = policy.for_connection("c");
    let cell = b"a@example.com \xff\xfe";
    let detect = mask.column(col(None, None, "other"));
    assert_eq!(detect.apply(cell, &mut Counts::default()), Masked::Unchanged);
    let column = mask.column(col(None, None, "blob"));
    let Masked::Value(v) = column.apply(cell, &mut Counts::default()) else {
        panic!()
    };
    let text = String::from_utf8(v).unwrap();
    assert!(!text.contains("a@example"), "{text}");
}

#[test]
fn bad_rules_are_refused_with_their_index() {
    let mut keep_on_redact = columns(rule(StrategyName::Redact), &["x"]);
    keep_on_redact.keep = Some(2);
    let mut with_on_hash = columns(rule(StrategyName::Hash), &["x"]);
    with_on_hash.with = Some("x".into());
    let mut empty_connection = columns(rule(StrategyName::Redact), &["x"]);
    empty_connection.connections = vec![String::new()];
    let cases: [(RuleSpec, &[u8], &str); 6] = [
        (
            rule(StrategyName::Redact),
            KEY,
            "no `columns`, no `fields` and no `detectors`",
        ),
        (keep_on_redact, KEY, "`keep` is an option of `partial`"),
        (with_on_hash, KEY, "`with` is an option of `redact` and `null`"),
        (columns(rule(StrategyName::Redact), &["a..b"]), KEY, "empty part"),
        (empty_connection, KEY, "empty name"),
        (
            columns(rule(StrategyName::FormatPreserving), &["x"]),
            b"short",
            "at least 16 bytes",
        ),
    ];
    for (bad, key, why) in cases {
        let good = columns(rule(StrategyName::Redact), &["ok"]);
        let err = MaskPolicy::compile(&[good, bad], key).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("masking rule 1: "), "{message}");
        assert!(message.contains(why), "{message}");
    }
    // A short key is fine while no rule uses it.
    assert!(MaskPolicy::compile(&[columns(rule(StrategyName::Redact), &["x"])], b"").is_ok());
}

#[test]
fn rule_specs_deserialize_from_config() {
    #[derive(serde::Deserialize)]
    struct Config {
        rules: Vec<RuleSpec>,
    }
    let config: Config = toml::from_str(
        r#"
        [[rules]]
        columns = ["*.ssn", "public.customers.card_number"]
        strategy = "partial"
        keep = 2

        [[rules]]
        detectors = ["email", "aws_secret_key", "url_password"]
        strategy = "format_preserving"
        connections = ["prod"]
        "#,
    )
    .unwrap();
    assert_eq!(config.rules.len(), 2);
    assert_eq!(config.rules[1].detectors[1], Detector::AwsSecretKey);
    assert!(MaskPolicy::compile(&config.rules, KEY).is_ok());
    assert!(toml::from_str::<Config>("[[rules]]\nstrategy = \"redact\"\nkep = 1").is_err());
}

#[test]
fn policy_debug_never_shows_the_key() {
    let key = b"super-secret-masking-key-0123456789";
    let policy =
        MaskPolicy::compile(&[detectors(rule(StrategyName::Hash), &[Detector::Email])], key).unwrap();
    let debug = format!("{policy:?} {:?}", policy.for_connection("x"));
    assert!(!debug.contains("super-secret"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}
