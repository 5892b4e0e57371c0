//! Token verification through the gateway: every rejection class as SQLSTATE 28000, and a real
//! third-party OIDC provider (oidc-provider on Node) issuing RS256, ES256 and EdDSA access tokens.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Env, Options, db_error};
use portcullis_testkit::issuer::TestIssuer;
use portcullis_testkit::oidc_provider::OidcProvider;

fn issuer_toml(url: &str, alias: &str, audience: &str, algorithms: &str) -> String {
    format!(
        "\n[[identity.issuers]]\nissuer = \"{url}\"\naudience = \"{audience}\"\nalias = \"{alias}\"\nalgorithms = {algorithms}\n"
    )
}

#[tokio::test]
async fn each_rejection_class_is_28000_with_its_reason() {
    let issuer = TestIssuer::start().await.unwrap();
    let extra = issuer_toml(
        &issuer.url(),
        "corp",
        "portcullis",
        r#"["RS256", "ES256", "EdDSA", "PS256"]"#,
    );
    let env = Env::start(Options {
        extra,
        ..Options::default()
    })
    .await;

    let good = issuer
        .token()
        .subject("svc")
        .groups(&["agents"])
        .audience("portcullis")
        .sign();
    let client = env
        .connect_plain("app", &good)
        .await
        .expect("a good token connects");
    assert_eq!(
        client.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0),
        1
    );

    // A key the gateway's issuer never published: signed elsewhere under a kid it does not know.
    let elsewhere = TestIssuer::start().await.unwrap();
    elsewhere.add_key("rotated-away");
    let unknown_kid = elsewhere
        .token()
        .issuer(&issuer.url())
        .kid("rotated-away")
        .subject("svc")
        .audience("portcullis")
        .sign();

    let base = || {
        issuer
            .token()
            .subject("svc")
            .groups(&["agents"])
            .audience("portcullis")
    };
    let cases: Vec<(&str, String)> = vec![
        ("expired", base().expires_in(-600).issued_at_offset(-1200).sign()),
        ("not yet valid", base().not_before_offset(600).sign()),
        ("wrong audience", base().audience("someone-else").sign()),
        ("unknown issuer", base().issuer("https://idp.invalid").sign()),
        ("unknown key id", unknown_kid),
        ("bad signature", issuer.token_bad_signature("portcullis")),
        ("disallowed algorithm", issuer.token_alg_none("portcullis")),
        (
            "disallowed algorithm",
            issuer.token_hs256_with_public_key("portcullis"),
        ),
    ];
    let mut tokens = vec![good.clone()];
    for (class, token) in cases {
        let err = env.connect_plain("app", &token).await.unwrap_err();
        let (code, message) = db_error(&err);
        assert_eq!(code, "28000", "{class}");
        assert_eq!(message, format!("token rejected: {class}"), "{class}");
        assert!(!format!("{err:?}").contains(&token), "the error echoes the token");
        tokens.push(token);
    }
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("portcullis_auth_failures_total{reason=\"expired\"} 1"),
        "{metrics}"
    );
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    env.assert_log_free_of(&refs);
}

#[tokio::test]
async fn a_real_oidc_provider_issues_tokens_the_gateway_accepts() {
    let providers = futures_util::future::try_join_all(
        ["RS256", "ES256", "EdDSA"].map(|alg| OidcProvider::start(alg, "portcullis")),
    )
    .await
    .unwrap();
    let extra: String = providers
        .iter()
        .map(|p| {
            issuer_toml(
                p.issuer_url(),
                &format!("idp-{}", p.alg().to_lowercase()),
                "portcullis",
                r#"["RS256", "ES256", "EdDSA"]"#,
            )
        })
        .collect();
    let env = Env::start(Options {
        allow_plaintext: false,
        extra,
        ..Options::default()
    })
    .await;
    for provider in &providers {
        let token = provider.client_credentials_token().await.unwrap();
        let client = env
            .connect_tls("app", &token)
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", provider.alg()));
        let row = client.query_one("SELECT current_user::text", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "gateway_login", "{}", provider.alg());
    }
}
