//! The development issuer round trip: documents served over HTTP, tokens verified through discovery.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failure should fail the test"
)]

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use portcullis_core::RejectReason;
use portcullis_identity::{DevIssuer, IssuerSettings, MintRequest, Verifier};
use serde_json::json;

/// Serves the issuer's documents under its path, as the gateway's admin listener does.
fn router(issuer: Arc<DevIssuer>) -> axum::Router {
    let discovery = Arc::clone(&issuer);
    axum::Router::new()
        .route(
            "/dev/.well-known/openid-configuration",
            get(move || async move { Json(discovery.discovery_document()) }),
        )
        .route("/dev/jwks", get(move || async move { Json(issuer.jwks()) }))
}

fn request(subject: &str) -> MintRequest {
    MintRequest {
        subject: subject.to_owned(),
        groups: vec!["developers".to_owned()],
        audience: "portcullis".to_owned(),
        ttl: Duration::from_secs(600),
    }
}

#[tokio::test]
async fn minted_tokens_verify_through_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/dev", listener.local_addr().unwrap());
    let issuer =
        Arc::new(DevIssuer::load_or_create(&dir.path().join("keys/dev-issuer.pem"), url.clone()).unwrap());
    assert_eq!(issuer.issuer_url(), url);
    tokio::spawn(async move { axum::serve(listener, router(Arc::clone(&issuer))).await });

    let settings: IssuerSettings =
        serde_json::from_value(json!({"issuer": url, "audience": "portcullis", "alias": "dev"})).unwrap();
    let verifier = Verifier::new(vec![settings]).unwrap();
    let reloaded = DevIssuer::load_or_create(&dir.path().join("keys/dev-issuer.pem"), url.clone()).unwrap();
    let token = reloaded.mint(&request("alice-agent")).unwrap();
    let principal = verifier.verify(&token).await.unwrap();
    assert_eq!(principal.name(), "dev/alice-agent");
    assert_eq!(principal.groups, vec!["developers"]);
    assert!(principal.token_id.is_some());

    let other_audience = MintRequest {
        audience: "elsewhere".to_owned(),
        ..request("bob")
    };
    let rejected = verifier
        .verify(&reloaded.mint(&other_audience).unwrap())
        .await
        .unwrap_err();
    assert_eq!(rejected.reason, RejectReason::WrongAudience);
}

#[test]
fn key_file_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/dev.pem");
    let first = DevIssuer::load_or_create(&path, "http://127.0.0.1:9187/dev".to_owned()).unwrap();
    let second = DevIssuer::load_or_create(&path, "http://127.0.0.1:9187/dev".to_owned()).unwrap();
    assert_eq!(first.jwks(), second.jwks());

    let jwks = first.jwks();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    assert_eq!(key["use"], "sig");
    // The kid is the RFC 7638 thumbprint: 32 bytes of SHA-256 in unpadded base64url.
    assert_eq!(key["kid"].as_str().unwrap().len(), 43);
    assert!(!format!("{first:?}").contains("PRIVATE"));

    let doc = first.discovery_document();
    assert_eq!(doc["issuer"], "http://127.0.0.1:9187/dev");
    assert_eq!(doc["jwks_uri"], "http://127.0.0.1:9187/dev/jwks");
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["ES256"]));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let other = DevIssuer::load_or_create(&dir.path().join("other.pem"), "http://x/dev".to_owned()).unwrap();
    assert_ne!(first.jwks(), other.jwks());

    std::fs::write(dir.path().join("junk.pem"), "not a key").unwrap();
    assert!(DevIssuer::load_or_create(&dir.path().join("junk.pem"), "http://x/dev".to_owned()).is_err());
}
