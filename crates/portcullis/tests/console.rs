//! The web console end to end: the sign-in (authorization code with PKCE against the development
//! issuer), its cookie and CSRF rules over plain HTTP, and a reviewer in headless Chromium (Debian's
//! chromium driven through chromedriver) who sees an agent's DELETE arrive, approves it, and replays
//! the agent's session. Screenshots are kept under the build directory (`<target>/debug/console-screenshots/`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::browserless::{Browserless, hidden, location};
use common::{Env, Options};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use portcullis_testkit::ports::free_port;
use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;

/// Agents may read; a DELETE needs a reviewer's approval (the shipped example).
fn policy() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies");
    std::fs::read_to_string(dir.join("agents-guarded-writes.cedar")).unwrap()
}

async fn start() -> Env {
    let env = Env::start(Options {
        policy: policy(),
        extra: "[approvals]\nenabled = true\nhold_timeout = \"60s\"\nreviewers_group = \"reviewers\"\n"
            .to_owned(),
        ..Options::default()
    })
    .await;
    env.pg
        .psql(
            "app",
            "SET ROLE gateway_login;
             CREATE TABLE items (id int PRIMARY KEY, name text);
             INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5) g;
             RESET ROLE;",
        )
        .unwrap();
    env
}

// ---------------------------------------------------------------------------------------------------
// Over plain HTTP: every step of the sign-in, and what a forged request meets.

#[tokio::test]
async fn sign_in_is_bound_to_the_browser_and_pkce_and_forms_need_the_csrf_token() {
    let env = start().await;
    let mut anon = Browserless::new(&env);

    // Not signed in: every page sends the browser to the sign-in page, which names the issuer.
    let (status, headers, _) = anon.get("/console/sessions").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/console/signin?next=%2Fconsole%2Fsessions");
    let (status, headers, page) = anon.get("/console/signin?next=/console/sessions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Sign in with http://"), "{page}");
    let csp = headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "no inline script or style"
    );

    // The login cookie ties the provider's answer to this browser; it is Secure, HttpOnly, SameSite.
    let (status, headers, _) = anon.get("/console/login").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let set = headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.starts_with("portcullis_login="), "{set}");
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/console"] {
        assert!(set.contains(flag), "{flag} missing from {set}");
    }
    let authorize = reqwest::Url::parse(&location(&headers)).unwrap();
    let params: std::collections::HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["code_challenge"].len(), 43);

    // Only the console may use the development sign-in.
    let mut foreign = authorize.clone();
    foreign
        .query_pairs_mut()
        .clear()
        .append_pair("response_type", "code")
        .append_pair("client_id", &params["client_id"])
        .append_pair("redirect_uri", "https://evil.example/cb")
        .append_pair("state", "x")
        .append_pair("code_challenge", &params["code_challenge"])
        .append_pair("code_challenge_method", "S256");
    let (status, _, page) = anon.get(foreign.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("redirect_uri must be"), "{page}");

    // A code is useless without the verifier, and used once.
    let (_, _, form) = anon.get(authorize.as_str()).await;
    let form_token = hidden(&form, "form_token");
    let mut fields = vec![
        ("form_token", form_token.as_str()),
        ("subject", "mallory"),
        ("groups", "reviewers"),
    ];
    let pairs: Vec<(String, String)> = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    fields.extend(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (status, headers, _) = anon.post("/dev/authorize", &fields).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let callback = reqwest::Url::parse(&location(&headers)).unwrap();
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let stolen = anon
        .http
        .post(format!("{}/dev/token", anon.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", &params["redirect_uri"]),
            ("client_id", &params["client_id"]),
            (
                "code_verifier",
                "a-verifier-the-thief-does-not-have-aaaaaaaaaaaaaaa",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = stolen.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    // The provider's answer, replayed in a browser that did not start the sign-in, signs nobody in.
    let mut other = Browserless::new(&env);
    let (status, _, page) = other.get(callback.as_str()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("not started in this browser"), "{page}");

    // A reviewer signs in; forms without the sign-in's CSRF token are refused.
    let mut reviewer = Browserless::new(&env);
    let csrf = reviewer.sign_in("rita", "reviewers").await;
    let session_cookie = reviewer.cookies.iter().find(|(n, _)| n == "portcullis_console");
    assert!(session_cookie.is_some(), "{:?}", reviewer.cookies);
    let (status, _, _) = reviewer
        .post(
            "/console/approvals/apr_none",
            &[("decision", "approve"), ("csrf", "forged")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = reviewer
        .post("/console/approvals/apr_none", &[("decision", "approve")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // With the token, the decision is taken (here: no such request, said on the page it returns to).
    let (status, headers, _) = reviewer
        .post(
            "/console/approvals/apr_none",
            &[("decision", "approve"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location(&headers).starts_with("/console/approvals?error="),
        "{headers:?}"
    );

    // A reviewer who is not an operator may not read sessions; the page says which group it needs.
    let (status, _, page) = reviewer.get("/console/sessions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("portcullis-operators"), "{page}");

    // Signing out ends the sign-in: the old cookie no longer opens a page.
    let old = reviewer.cookie_header();
    let (status, _, _) = reviewer.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let response = reviewer
        .http
        .get(format!("{}/console/approvals", reviewer.base))
        .header("cookie", old)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

// ---------------------------------------------------------------------------------------------------
// In a real browser.

/// chromedriver on a free port; killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let port = free_port().unwrap();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; scripts/ensure-deps installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver { child, port }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-quic".to_owned(),
        "--window-size=1366,900".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// Where screenshots are kept: beside the test binaries, under the build directory.
fn screenshots() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "deps"))
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| exe.parent().unwrap())
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn snap(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

#[tokio::test]
async fn a_reviewer_in_chromium_approves_a_held_delete_and_replays_the_session() {
    let env = start().await;
    let driver = start_driver();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path()).await;
    let base = format!("http://{}", env.admin);
    let wait = |d: u64| browser.wait().at_most(Duration::from_secs(d));

    // Sign in: the console sends the browser to the development issuer's page and back.
    browser.goto(&format!("{base}/console/")).await.unwrap();
    wait(10)
        .for_element(Locator::Css("a.button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let subject = wait(10).for_element(Locator::Id("subject")).await.unwrap();
    subject.send_keys("rita").await.unwrap();
    // The form offers this gateway's reviewers' and operators' groups.
    let groups = browser.find(Locator::Id("groups")).await.unwrap();
    let offered = groups.prop("value").await.unwrap();
    assert_eq!(offered.as_deref(), Some("reviewers, portcullis-operators"));
    snap(&browser, "1-development-sign-in").await;
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait(10).for_element(Locator::Css("#inbox")).await.unwrap();
    let who = browser
        .find(Locator::Css("header .who"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(who, "dev/rita");
    assert!(
        browser
            .find(Locator::Css("p.empty"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("Nothing is waiting")
    );
    snap(&browser, "2-empty-inbox").await;

    // An agent's DELETE is held; the inbox shows it without a reload.
    let agent = env.mint("bot", &["agents"], "10m");
    let client = env.connect_plain("app", &agent).await.unwrap();
    // The task hands the client back: the session stays open after the DELETE.
    let held = tokio::spawn(async move {
        let deleted = client.execute("DELETE FROM items WHERE id = 2", &[]).await;
        (client, deleted)
    });
    let card = wait(15)
        .for_element(Locator::Css("article.request"))
        .await
        .unwrap();
    let statement = card
        .find(Locator::Css("pre.statement"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(statement, "DELETE FROM items WHERE id = 2");
    let facts = card
        .find(Locator::Css("dl.facts"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(facts.contains("dev/bot") && facts.contains("app"), "{facts}");
    // The impact preview arrives shortly after the request; the inbox refreshes with it.
    let preview_deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = browser
            .find(Locator::Css("dd.preview"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("row(s)") {
            break;
        }
        assert!(Instant::now() < preview_deadline, "no preview: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    snap(&browser, "3-held-delete").await;
    assert!(!held.is_finished(), "the DELETE waits for the decision");

    // Approve with a reason, from the keyboard: type the reason, Tab to Approve, Enter. The agent's
    // statement completes.
    let reason = browser
        .find(Locator::Css("article.request textarea"))
        .await
        .unwrap();
    reason
        .send_keys(&format!("ticket OPS-7: remove the duplicate{}", Key::Tab))
        .await
        .unwrap();
    let focused = browser.active_element().await.unwrap();
    assert_eq!(
        focused.text().await.unwrap(),
        "Approve",
        "Tab leads from the reason to Approve"
    );
    focused.send_keys(&Key::Enter.to_string()).await.unwrap();
    let flash = wait(10)
        .for_element(Locator::Css("p.flash.ok"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash.contains("approved"), "{flash}");
    let (client, deleted) = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.unwrap(), 1);
    assert_eq!(
        env.pg.psql("app", "SELECT count(*) FROM items").unwrap().trim(),
        "4"
    );
    let decided = browser
        .find(Locator::Css("table.decided"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        decided.contains("ticket OPS-7") && decided.contains("dev/rita"),
        "{decided}"
    );
    snap(&browser, "4-approved").await;

    // The agent's session in the replay: the statement, the approval, the outcome; the chain verifies.
    browser
        .goto(&format!("{base}/console/sessions?subject=bot"))
        .await
        .unwrap();
    wait(10)
        .for_element(Locator::Css("table.sessions tbody a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let timeline = wait(10)
        .for_element(Locator::Css("ol.timeline"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(timeline.contains("DELETE FROM items WHERE id = 2"), "{timeline}");
    assert!(timeline.contains("by dev/rita: ticket OPS-7"), "{timeline}");
    assert!(timeline.contains("DELETE 1"), "{timeline}");
    let chain = browser
        .find(Locator::Css("div.chain"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(chain.starts_with("Chain verified"), "{chain}");
    snap(&browser, "5-session-replay").await;

    // The session is still open (the agent's client is alive): an operator ends it from here.
    browser
        .find(Locator::Css("form.kill button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let flash = wait(10)
        .for_element(Locator::Css("p.flash.ok"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash.contains("ends this session"), "{flash}");
    let ended_deadline = Instant::now() + Duration::from_secs(10);
    while client.simple_query("SELECT 1").await.is_ok() {
        assert!(
            Instant::now() < ended_deadline,
            "the killed session still answers"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Identities: the agent is listed (no longer connected); an operator bars it for an hour.
    browser.goto(&format!("{base}/console/identities")).await.unwrap();
    let table = wait(10)
        .for_element(Locator::Css("table.identities"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(table.contains("bot") && table.contains("/dev"), "{table}");
    browser
        .find(Locator::Css("form.revoke button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let flash = wait(10)
        .for_element(Locator::Css("p.flash.ok"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash.contains("bot is barred"), "{flash}");
    let barred = browser
        .find(Locator::Css("ul.barred"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        barred.contains("bot of http://") && barred.contains("until"),
        "{barred}"
    );
    snap(&browser, "6-identities").await;
    // Gateways read operators' controls from the store about once a second.
    let barred_deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        match env.connect_plain("app", &agent).await {
            Err(refused) => break refused,
            Ok(_) => assert!(Instant::now() < barred_deadline, "a barred identity is refused"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, message) = common::db_error(&refused);
    assert!(message.contains("revoked"), "{message}");

    // Policy: the DELETE tried against the loaded policies needs approval; a DROP is refused.
    browser.goto(&format!("{base}/console/policy")).await.unwrap();
    let subject = wait(10)
        .for_element(Locator::Css("input[name=subject]"))
        .await
        .unwrap();
    subject.send_keys("bot").await.unwrap();
    browser
        .find(Locator::Css("input[name=groups]"))
        .await
        .unwrap()
        .send_keys("agents")
        .await
        .unwrap();
    browser
        .find(Locator::Css("textarea[name=sql]"))
        .await
        .unwrap()
        .send_keys("DELETE FROM items WHERE id = 3; DROP TABLE items")
        .await
        .unwrap();
    browser
        .find(Locator::Css("form.check button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let result = wait(10)
        .for_element(Locator::Css("section.result"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(result.contains("approval required"), "{result}");
    assert!(result.contains("deny"), "{result}");
    snap(&browser, "7-policy-check").await;

    browser.close().await.unwrap();
}

/// Sign-in with a third-party provider (the npm `oidc-provider`, its own login and consent pages): the
/// console's authorization code flow with PKCE and a resource indicator, its JWT access token verified
/// as the `[[identity.issuers]]` entry says.
#[tokio::test]
async fn a_person_signs_in_with_a_third_party_oidc_provider() {
    let admin = portcullis_testkit::ports::free_addr().unwrap();
    let redirect = format!("http://{admin}/console/callback");
    let provider = portcullis_testkit::oidc_provider::OidcProvider::start_with_console(
        "ES256",
        "portcullis",
        Some(&redirect),
    )
    .await
    .unwrap();
    let issuer = provider.issuer_url().to_owned();
    let _gateway = Env::start(Options {
        policy: policy(),
        admin: Some(admin.clone()),
        extra: format!(
            "[approvals]\nenabled = true\nreviewers_group = \"reviewers\"\n\
             [[identity.issuers]]\nissuer = \"{issuer}\"\naudience = \"portcullis\"\nalias = \"corp\"\n\
             algorithms = [\"ES256\"]\n\
             [server.admin.console]\nissuer = \"{issuer}\"\nresource = \"{resource}\"\n\
             scopes = [\"openid\", \"db\"]\n",
            resource = provider.resource()
        ),
        ..Options::default()
    })
    .await;
    let driver = start_driver();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path()).await;
    let wait = |d: u64| browser.wait().at_most(Duration::from_secs(d));

    browser.goto(&format!("http://{admin}/console/")).await.unwrap();
    let link = wait(10).for_element(Locator::Css("a.button")).await.unwrap();
    assert_eq!(link.text().await.unwrap(), format!("Sign in with {issuer}"));
    link.click().await.unwrap();
    // The provider's own pages: a login form, then consent.
    let login = match wait(10).for_element(Locator::Css("input[name=login]")).await {
        Ok(field) => field,
        Err(e) => panic!(
            "no login form ({e}) at {}: {}",
            browser.current_url().await.unwrap(),
            browser.source().await.unwrap()
        ),
    };
    login.send_keys("rita").await.unwrap();
    browser
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("any")
        .await
        .unwrap();
    snap(&browser, "8-third-party-login").await;
    browser
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let url = browser.current_url().await.unwrap();
        if url.path() == "/console/approvals" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stuck at {url}: {}",
            browser.source().await.unwrap()
        );
        // The consent page, when the provider shows one.
        if let Ok(button) = browser
            .find(Locator::Css(
                "button[type=submit][autofocus], button[type=submit]",
            ))
            .await
        {
            let _ = button.click().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let who = wait(10)
        .for_element(Locator::Css("header .who"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(who, "corp/rita");
    assert!(
        browser.find(Locator::Css("#inbox")).await.is_ok(),
        "a reviewer sees the inbox"
    );
    snap(&browser, "9-signed-in-through-third-party").await;
    browser.close().await.unwrap();
}

/// `portcullis demo` as a new user runs it: the agent's DELETE waits until the user opens the printed
/// console link, signs in with the development sign-in and approves it; then the demo finishes.
#[tokio::test]
async fn the_demo_waits_for_an_approval_given_in_the_console() {
    let dir = tempfile::tempdir().unwrap();
    let stdout_path = dir.path().join("stdout");
    let mut demo = Command::new(common::BIN)
        .args(["demo", "--approval-timeout", "2m"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    let link = loop {
        let out = read();
        if let Some(line) = out.lines().find(|l| l.contains("Approve it in the console: ")) {
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .unwrap();
            break url.to_owned();
        }
        if Instant::now() > deadline || demo.try_wait().unwrap().is_some() {
            let _ = demo.kill();
            panic!("the demo printed no console link:\n{out}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(link.ends_with("/console/approvals"), "{link}");

    let driver = start_driver();
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path()).await;
    let wait = |d: u64| browser.wait().at_most(Duration::from_secs(d));
    browser.goto(&link).await.unwrap();
    wait(10)
        .for_element(Locator::Css("a.button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let subject = wait(10).for_element(Locator::Id("subject")).await.unwrap();
    subject.send_keys("new-user").await.unwrap();
    browser
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let card = wait(15)
        .for_element(Locator::Css("article.request"))
        .await
        .unwrap();
    let statement = card
        .find(Locator::Css("pre.statement"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(statement.starts_with("DELETE FROM customers"), "{statement}");
    snap(&browser, "10-demo-held-delete").await;
    card.find(Locator::Css("button.approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Either answer, ok or error, within a loaded CI machine's time; the page says why if it is not ok.
    let flash = wait(30).for_element(Locator::Css("p.flash")).await;
    let page = browser.source().await.unwrap_or_default();
    let flash = flash.unwrap_or_else(|e| panic!("no answer to the approval ({e}):\n{page}"));
    let class = flash.attr("class").await.unwrap().unwrap_or_default();
    assert!(class.split(' ').any(|c| c == "ok"), "{class}:\n{page}");
    browser.close().await.unwrap();

    let finish = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > finish {
            let _ = demo.kill();
            panic!("the demo did not finish after the approval:\n{}", read());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out = read();
    assert!(status.success(), "{status}\n{out}");
    let released = out.split("released").nth(1).unwrap_or_else(|| panic!("{out}"));
    assert!(released.contains("DELETE 1"), "{out}");
    assert!(
        out.contains("by dev/new-user"),
        "the replay names the console's reviewer:\n{out}"
    );
}
