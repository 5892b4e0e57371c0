//! Fuzzes statement analysis: `classify::analyse` and `classify::fingerprint` on arbitrary UTF-8 text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_postgres::classify::{analyse, fingerprint};

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let key = fingerprint(sql);
    let analysis = analyse(sql);

    // A cacheable analysis needs a key; the key never holds more than the text.
    assert!(
        !analysis.cacheable || key.is_some(),
        "cacheable without a fingerprint"
    );
    if let Some(key) = &key {
        assert!(key.len() <= sql.len(), "fingerprint longer than the text");
        assert_eq!(
            fingerprint(sql).as_ref(),
            Some(key),
            "fingerprint is not deterministic"
        );
    }

    for facts in &analysis.statements {
        if facts.parse_error.is_some() {
            assert_eq!(facts.kind.action(), "unknown", "unparsed but not unknown");
        }
        for list in [&facts.reads, &facts.writes, &facts.operations, &facts.functions] {
            assert!(
                list.windows(2).all(|w| w[0] < w[1]),
                "not sorted and unique: {list:?}"
            );
        }
        assert!(
            !facts.explain_analyze || facts.command == "EXPLAIN",
            "explain_analyze outside EXPLAIN"
        );
        assert!(
            facts.prepares.is_none() || facts.command == "PREPARE",
            "prepares outside PREPARE"
        );
        assert!(
            !facts.has_where || facts.operations.iter().any(|op| op == "update" || op == "delete"),
            "has_where without UPDATE or DELETE"
        );
    }
});
