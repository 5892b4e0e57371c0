//! `Problem`: every refusal the gateway answers an HTTP client with, as an RFC 9457 problem document
//! (`application/problem+json`). The texts are the gateway's own: never a token, never an upstream's
//! credential or error text.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{ProxyBody, full};

/// An RFC 9457 problem document with the status it is sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    /// The deciding policies of a policy refusal (the `policies` extension member).
    pub policies: Vec<String>,
    /// The reason class sent in `WWW-Authenticate` (401 only).
    pub challenge: Option<&'static str>,
    /// Sent instead of the problem document, as `application/json`: the JSON-RPC answer to an MCP
    /// request the gateway refused (MCP clients show a JSON-RPC error as the call's failure).
    /// (This and `approval` are boxed: refusals travel in `Result`s, and most carry neither.)
    pub json_rpc: Option<Box<Bytes>>,
    /// The approval request a held or ticketed request belongs to (the `approval` extension member;
    /// its `link` is also sent as `Location` on a 202).
    pub approval: Option<Box<ApprovalRef>>,
}

/// The approval request an answer is about, as the client is told of it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalRef {
    pub id: String,
    /// `pending`, `denied`, `expired`.
    pub state: &'static str,
    /// Who decided (a denial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where a reviewer finds the request (the admin API's, unless `[approvals] link_base` says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Problem {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            detail: detail.into(),
            policies: Vec::new(),
            challenge: None,
            json_rpc: None,
            approval: None,
        }
    }

    /// 202: the request waits for a reviewer's approval (ticket mode) and was not forwarded.
    pub fn approval_pending(
        detail: impl Into<String>,
        policies: Vec<String>,
        approval: ApprovalRef,
    ) -> Problem {
        Problem {
            policies,
            approval: Some(Box::new(approval)),
            ..Problem::new(StatusCode::ACCEPTED, "Approval required", detail)
        }
    }

    /// The same problem, about `approval`.
    #[must_use]
    pub fn with_approval(mut self, approval: ApprovalRef) -> Problem {
        self.approval = Some(Box::new(approval));
        self
    }

    /// 401: no usable token. `class` is the reason class (`expired`, `wrong audience`, ...), also sent
    /// as the challenge's `error_description`.
    pub fn unauthorized(class: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            challenge: Some(class),
            ..Problem::new(StatusCode::UNAUTHORIZED, "Token rejected", detail)
        }
    }

    /// 403: policy refused the request; `policies` are the deciding ones (empty: deny by default).
    pub fn forbidden(detail: impl Into<String>, policies: Vec<String>) -> Problem {
        Problem {
            policies,
            ..Problem::new(StatusCode::FORBIDDEN, "Refused by policy", detail)
        }
    }

    /// 200 with a JSON-RPC body: MCP calls refused by policy, answered by the gateway with JSON-RPC
    /// errors (`body`); `detail` and `policies` are what the audit trail and logs say.
    pub fn json_rpc_refusal(detail: impl Into<String>, policies: Vec<String>, body: Bytes) -> Problem {
        Problem {
            policies,
            json_rpc: Some(Box::new(body)),
            ..Problem::new(StatusCode::OK, "Refused by policy", detail)
        }
    }

    /// 413: a request body larger than the gateway reads (an MCP JSON-RPC message).
    pub fn too_large(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Request too large", detail)
    }

    /// 404: no connection by that path prefix or host (said only to verified callers).
    pub fn no_connection(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "No such connection", detail)
    }

    /// 400: a request the gateway will not forward as sent (ambiguous path, too many parameters).
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "Bad request", detail)
    }

    /// 405: a method no policy action covers.
    pub fn method_not_allowed(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", detail)
    }

    /// 502: the upstream could not be reached or answered wrongly.
    pub fn bad_gateway(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_GATEWAY, "Upstream unavailable", detail)
    }

    /// 502: the upstream's response cannot be passed on as it is (a body masking cannot read).
    pub fn unfilterable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_GATEWAY, "Response cannot be masked", detail)
    }

    /// 504: the upstream did not answer in time.
    pub fn gateway_timeout(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::GATEWAY_TIMEOUT, "Upstream timed out", detail)
    }

    /// 503: the gateway cannot decide or record now (fail closed).
    pub fn unavailable(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", detail)
    }

    /// The response: the document, its content type, and `WWW-Authenticate` on a 401.
    pub fn into_response(self) -> Response<ProxyBody> {
        if let Some(body) = self.json_rpc {
            let mut response = Response::new(full(*body));
            *response.status_mut() = self.status;
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return response;
        }
        let mut document = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.policies.is_empty()
            && let Some(object) = document.as_object_mut()
        {
            object.insert("policies".to_owned(), serde_json::json!(self.policies));
        }
        if let Some(approval) = &self.approval
            && let Some(object) = document.as_object_mut()
        {
            object.insert("approval".to_owned(), serde_json::json!(approval));
        }
        let mut response = Response::new(full(Bytes::from(document.to_string())));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::ACCEPTED
            && let Some(link) = self.approval.as_ref().and_then(|a| a.link.as_deref())
            && let Ok(value) = HeaderValue::from_str(link)
        {
            headers.insert(header::LOCATION, value);
        }
        if let Some(class) = self.challenge {
            // Reason classes are fixed ASCII words: always a valid header value.
            let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{class}\"");
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}
