//! The console over plain HTTP, as a browser would use it but without one: redirects shown, cookies kept
//! by hand, the sign-in through the development issuer.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use super::Env;

/// A client that shows redirects instead of following them, and keeps cookies by hand.
pub struct Browserless {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: Vec<(String, String)>,
}

impl Browserless {
    pub fn new(env: &Env) -> Self {
        Browserless {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: format!("http://{}", env.admin),
            cookies: Vec::new(),
        }
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, url: &str) -> (StatusCode, HeaderMap, String) {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.base)
        };
        let request = self.http.get(&url);
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Sends `request` with the cookies kept so far, and keeps the ones it sets.
    async fn send(&mut self, request: reqwest::RequestBuilder) -> (StatusCode, HeaderMap, String) {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        self.keep_cookies(&headers);
        (status, headers, response.text().await.unwrap())
    }

    /// Signs in through the development issuer; returns the console's CSRF token.
    pub async fn sign_in(&mut self, subject: &str, groups: &str) -> String {
        let (status, headers, _) = self.get("/console/login?next=/console/approvals").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let authorize = location(&headers);
        let url = reqwest::Url::parse(&authorize).unwrap();
        let params: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        let (status, _, page) = self.get(&authorize).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let form_token = hidden(&page, "form_token");
        let (status, headers, body) = self
            .post(
                "/dev/authorize",
                &[
                    ("form_token", &form_token),
                    ("subject", subject),
                    ("groups", groups),
                    ("response_type", "code"),
                    ("client_id", &params["client_id"]),
                    ("redirect_uri", &params["redirect_uri"]),
                    ("state", &params["state"]),
                    ("code_challenge", &params["code_challenge"]),
                    ("code_challenge_method", "S256"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        let (status, headers, body) = self.get(&location(&headers)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(location(&headers), "/console/approvals");
        let (status, _, page) = self.get("/console/approvals").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        hidden(&page, "csrf")
    }
}

pub fn location(headers: &HeaderMap) -> String {
    headers.get(LOCATION).unwrap().to_str().unwrap().to_owned()
}

/// The value of the first hidden input named `name` in `page`.
pub fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}
