//! OidcProvider (the npm `oidc-provider`) issues JWT access tokens in each algorithm and serves its JWKS.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure should fail the test"
)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_testkit::oidc_provider::{ALGS, OidcProvider};
use serde_json::Value;

fn decode_segment(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url")).expect("JSON")
}

async fn check(alg: &str) {
    let started = std::time::Instant::now();
    let provider = OidcProvider::start(alg, "portcullis")
        .await
        .expect("start provider");
    eprintln!("{alg} provider started in {:?}", started.elapsed());

    let token = provider.client_credentials_token().await.unwrap();
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "a JWS compact token: {token}");
    let header = decode_segment(segments[0]);
    assert_eq!(header["alg"], alg);
    assert_eq!(header["typ"], "at+jwt");
    let claims = decode_segment(segments[1]);
    assert_eq!(claims["iss"], provider.issuer_url());
    assert_eq!(claims["aud"], "portcullis");
    assert_eq!(claims["sub"], "agent");
    assert_eq!(claims["scope"], "db");
    assert_eq!(claims["groups"], serde_json::json!(["agents"]));

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let discovery: Value = http
        .get(provider.discovery_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], provider.issuer_url());
    let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri");
    let jwks: Value = http.get(jwks_uri).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(
        keys.iter()
            .any(|key| key["kid"] == header["kid"] && key["alg"] == alg),
        "the token's key is in the JWKS: {jwks}"
    );
    assert!(
        keys.iter().all(|key| key.get("d").is_none()),
        "no private parts: {jwks}"
    );
}

#[tokio::test]
async fn issues_jwt_access_tokens_in_each_alg() {
    // Concurrently: also exercises parallel starts (and the npm ci guard on a fresh checkout).
    let checks = ALGS.map(check);
    let [a, b, c] = checks;
    tokio::join!(a, b, c);
}

#[tokio::test]
async fn rejects_unknown_alg() {
    let error = OidcProvider::start("HS256", "portcullis").await.unwrap_err();
    assert!(format!("{error:#}").contains("unsupported alg"), "{error:#}");
}
