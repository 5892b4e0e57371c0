//! End-to-end token verification against real issuers served over loopback HTTP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure should fail the test"
)]

use std::time::Duration;

use portcullis_core::RejectReason;
use portcullis_identity::{IssuerSettings, Rejected, Verifier};
use portcullis_testkit::issuer::{Alg, TestIssuer};
use serde_json::{Value, json};

const AUD: &str = "portcullis";

fn settings(issuer: &TestIssuer, alias: &str) -> IssuerSettings {
    settings_with(issuer, alias, json!({}))
}

fn settings_with(issuer: &TestIssuer, alias: &str, extra: Value) -> IssuerSettings {
    let mut table = json!({"issuer": issuer.url(), "audience": AUD, "alias": alias});
    table
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(table).unwrap()
}

async fn start() -> (TestIssuer, Verifier) {
    let issuer = TestIssuer::start().await.unwrap();
    let verifier = Verifier::new(vec![settings(&issuer, "corp")]).unwrap();
    (issuer, verifier)
}

/// Neither the message nor the debug form of a rejection may quote the token or any of its parts.
fn assert_never_echoes(token: &str, rejected: &Rejected) {
    let shown = format!("{rejected} {rejected:?}");
    if !token.is_empty() {
        assert!(!shown.contains(token), "{shown}");
    }
    for part in token.split('.').filter(|part| part.len() >= 8) {
        assert!(!shown.contains(part), "{shown}");
    }
}

async fn assert_rejected(verifier: &Verifier, token: &str, expected: RejectReason) -> Rejected {
    let rejected = verifier.verify(token).await.expect_err("token must be rejected");
    assert_eq!(rejected.reason, expected, "{rejected}");
    assert_never_echoes(token, &rejected);
    rejected
}

#[tokio::test]
async fn accepts_every_default_algorithm_with_groups() {
    let (issuer, verifier) = start().await;
    for alg in [Alg::RS256, Alg::ES256, Alg::EdDSA, Alg::PS256] {
        let token = issuer
            .token()
            .alg(alg)
            .subject("billing-bot")
            .groups(&["ops", "db-readers"])
            .sign();
        let principal = verifier
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(principal.issuer_alias, "corp");
        assert_eq!(principal.issuer, issuer.url());
        assert_eq!(principal.subject, "billing-bot");
        assert_eq!(principal.name(), "corp/billing-bot");
        assert_eq!(principal.groups, vec!["ops", "db-readers"]);
        assert!(principal.token_id.is_some());
        assert!(principal.issued_at.is_some());
        assert!(principal.expires_at > std::time::SystemTime::now());
    }
    // One fetch served all four algorithms.
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn rejects_each_class_without_echoing_the_token() {
    let (issuer, verifier) = start().await;
    // A second issuer signs with a key id the first never published.
    let rogue = TestIssuer::start().await.unwrap();
    rogue.add_key("rogue-1");
    let day = 24 * 3600;
    let cases = [
        ("missing", String::new(), RejectReason::Missing),
        ("not a jwt", "not-a-jwt".to_owned(), RejectReason::Malformed),
        (
            "garbage segments",
            "eyJ.eyJ.sig".to_owned(),
            RejectReason::Malformed,
        ),
        (
            "no subject",
            issuer.token().claim("sub", Value::Null).sign(),
            RejectReason::Malformed,
        ),
        (
            "numeric subject",
            issuer.token().claim("sub", json!(42)).sign(),
            RejectReason::Malformed,
        ),
        (
            "bad groups",
            issuer.token().claim("groups", json!({"a": 1})).sign(),
            RejectReason::Malformed,
        ),
        (
            "expired",
            issuer.token().issued_at_offset(-7200).expires_in(-3600).sign(),
            RejectReason::Expired,
        ),
        (
            "nbf ahead",
            issuer.token().not_before_offset(3600).sign(),
            RejectReason::NotYetValid,
        ),
        (
            "iat ahead",
            issuer.token().issued_at_offset(3600).expires_in(7200).sign(),
            RejectReason::NotYetValid,
        ),
        (
            "wrong audience",
            issuer.token().audience("someone-else").sign(),
            RejectReason::WrongAudience,
        ),
        (
            "no audience",
            issuer.token().claim("aud", Value::Null).sign(),
            RejectReason::WrongAudience,
        ),
        (
            "unknown issuer",
            issuer.token().issuer("https://idp.invalid").sign(),
            RejectReason::UnknownIssuer,
        ),
        (
            "unknown kid",
            rogue.token().issuer(&issuer.url()).kid("rogue-1").sign(),
            RejectReason::UnknownKey,
        ),
        (
            "same kid, other key",
            rogue.token().issuer(&issuer.url()).kid("rsa-1").sign(),
            RejectReason::BadSignature,
        ),
        (
            "bad signature",
            issuer.token_bad_signature(AUD),
            RejectReason::BadSignature,
        ),
        (
            "alg none",
            issuer.token_alg_none(AUD),
            RejectReason::DisallowedAlgorithm,
        ),
        (
            "hs256 with rsa pem",
            issuer.token_hs256_with_public_key(AUD),
            RejectReason::DisallowedAlgorithm,
        ),
        (
            "lifetime",
            issuer.token().expires_in(2 * day).sign(),
            RejectReason::LifetimeTooLong,
        ),
        (
            "lifetime without iat",
            issuer.token().without_issued_at().expires_in(2 * day).sign(),
            RejectReason::LifetimeTooLong,
        ),
    ];
    for (name, token, expected) in cases {
        let rejected = verifier.verify(&token).await.expect_err(name);
        assert_eq!(rejected.reason, expected, "{name}: {rejected}");
        assert_never_echoes(&token, &rejected);
    }
}

#[tokio::test]
async fn leeway_tolerates_small_clock_skew() {
    let (issuer, verifier) = start().await;
    let skewed = issuer
        .token()
        .issued_at_offset(30)
        .not_before_offset(30)
        .expires_in(-30)
        .sign();
    verifier.verify(&skewed).await.unwrap();
    let strict = Verifier::new(vec![settings_with(&issuer, "corp", json!({"leeway": "0s"}))]).unwrap();
    assert_rejected(&strict, &skewed, RejectReason::Expired).await;
}

#[tokio::test]
async fn issuer_allow_list_is_enforced() {
    let issuer = TestIssuer::start().await.unwrap();
    let verifier = Verifier::new(vec![settings_with(
        &issuer,
        "corp",
        json!({"algorithms": ["ES256"]}),
    )])
    .unwrap();
    verifier
        .verify(&issuer.token().alg(Alg::ES256).sign())
        .await
        .unwrap();
    for alg in [Alg::RS256, Alg::PS256, Alg::EdDSA] {
        let rejected = assert_rejected(
            &verifier,
            &issuer.token().alg(alg).sign(),
            RejectReason::DisallowedAlgorithm,
        )
        .await;
        assert!(rejected.detail.contains("ES256"), "{rejected}");
    }
}

#[tokio::test]
async fn token_without_kid_needs_exactly_one_fitting_key() {
    let (issuer, verifier) = start().await;
    for alg in [Alg::RS256, Alg::ES256, Alg::EdDSA] {
        verifier
            .verify(&issuer.token().alg(alg).without_kid().sign())
            .await
            .unwrap();
    }
    issuer.add_key("rsa-2");
    // Let the rate limit pass: a token naming the new key fetches the key set once more.
    verifier
        .verify(&issuer.token().kid("rsa-2").sign())
        .await
        .unwrap();
    let ambiguous = issuer.token().alg(Alg::RS256).without_kid().sign();
    assert_rejected(&verifier, &ambiguous, RejectReason::UnknownKey).await;
}

#[tokio::test]
async fn rotated_key_is_fetched_once_and_refreshes_are_rate_limited() {
    let (issuer, verifier) = start().await;
    verifier.verify(&issuer.token().sign()).await.unwrap();
    assert_eq!(issuer.jwks_requests(), 1);

    issuer.add_key("rsa-2");
    let principal = verifier
        .verify(&issuer.token().kid("rsa-2").subject("rotated").sign())
        .await
        .unwrap();
    assert_eq!(principal.subject, "rotated");
    assert_eq!(issuer.jwks_requests(), 2);

    // Within ten seconds of that refresh, unknown key ids (even real new ones) fetch nothing.
    issuer.add_key("rsa-3");
    let too_soon = issuer.token().kid("rsa-3").sign();
    let verifications: Vec<_> = (0..8)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), too_soon.clone());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for verification in verifications {
        assert_eq!(
            verification.await.unwrap().unwrap_err().reason,
            RejectReason::UnknownKey
        );
    }
    assert_eq!(issuer.jwks_requests(), 2);
    verifier
        .verify(&issuer.token().kid("rsa-2").sign())
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_first_uses_share_one_fetch() {
    let (issuer, verifier) = start().await;
    let token = issuer.token().sign();
    let verifications: Vec<_> = (0..16)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for verification in verifications {
        verification.await.unwrap().unwrap();
    }
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn warm_up_fetches_before_first_use() {
    let (issuer, verifier) = start().await;
    verifier.warm_up().await;
    assert_eq!(issuer.jwks_requests(), 1);
    verifier.verify(&issuer.token().sign()).await.unwrap();
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn cached_keys_keep_working_after_the_issuer_goes_away() {
    let (issuer, verifier) = start().await;
    let cold = Verifier::new(vec![settings(&issuer, "corp")]).unwrap();
    verifier.warm_up().await;
    issuer.add_key("rsa-2");
    let rotated = issuer.token().kid("rsa-2").sign();
    issuer.shutdown().await;

    verifier.verify(&issuer.token().sign()).await.unwrap();
    // The refresh for the unknown key fails; the cached keys stay and the answer is about the key.
    assert_rejected(&verifier, &rotated, RejectReason::UnknownKey).await;
    verifier
        .verify(&issuer.token().alg(Alg::ES256).sign())
        .await
        .unwrap();

    // A verifier that never fetched has nothing to fall back on.
    assert_rejected(&cold, &issuer.token().sign(), RejectReason::IssuerUnavailable).await;
    // Warm-up against a dead issuer logs and returns.
    tokio::time::timeout(Duration::from_secs(10), cold.warm_up())
        .await
        .unwrap();
}

#[tokio::test]
async fn two_issuers_side_by_side() {
    let corp = TestIssuer::start().await.unwrap();
    let k8s = TestIssuer::start().await.unwrap();
    // The second issuer names its JWKS directly, so no discovery document is read for it.
    let k8s_settings = settings_with(
        &k8s,
        "k8s",
        json!({"jwks_uri": format!("{}/jwks", k8s.url()), "audience": ["other", AUD], "groups_claim": "roles"}),
    );
    let verifier = Verifier::new(vec![settings(&corp, "corp"), k8s_settings]).unwrap();

    let from_corp = verifier
        .verify(&corp.token().subject("a").groups(&["g1"]).sign())
        .await
        .unwrap();
    assert_eq!(
        (from_corp.name(), from_corp.groups),
        ("corp/a".to_owned(), vec!["g1".to_owned()])
    );
    let from_k8s = verifier
        .verify(
            &k8s.token()
                .subject("b")
                .alg(Alg::ES256)
                .claim("roles", json!("deployer"))
                .sign(),
        )
        .await
        .unwrap();
    assert_eq!(
        (from_k8s.name(), from_k8s.groups),
        ("k8s/b".to_owned(), vec!["deployer".to_owned()])
    );

    // Both publish "rsa-1"; a token claiming corp but signed by k8s's key must not pass.
    let forged = k8s.token().issuer(&corp.url()).sign();
    assert_rejected(&verifier, &forged, RejectReason::BadSignature).await;
    assert_eq!((corp.jwks_requests(), k8s.jwks_requests()), (1, 1));
}

#[tokio::test]
async fn duplicate_issuers_are_a_settings_error() {
    let issuer = TestIssuer::start().await.unwrap();
    let err = Verifier::new(vec![settings(&issuer, "a"), settings(&issuer, "b")]).unwrap_err();
    assert!(err.to_string().contains("more than once"), "{err}");
}
