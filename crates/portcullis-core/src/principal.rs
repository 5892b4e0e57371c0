//! `Principal`: the verified identity behind a session, and `RejectReason`, why a credential was refused.

use std::time::SystemTime;

/// A machine identity whose token Portcullis has verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The configured alias of the issuer that signed the token (e.g. `corp`, `k8s`, `dev`).
    pub issuer_alias: String,
    /// The issuer URL exactly as in the token's `iss` claim.
    pub issuer: String,
    /// The token's `sub` claim.
    pub subject: String,
    /// Values of the issuer's configured groups claim.
    pub groups: Vec<String>,
    /// The token's `jti` claim, when present: recorded, never the token itself.
    pub token_id: Option<String>,
    /// When the token was issued (`iat`), when present.
    pub issued_at: Option<SystemTime>,
    /// When the token stops being valid (`exp`). Sessions end at this time plus the configured grace.
    pub expires_at: SystemTime,
}

impl Principal {
    /// The policy-facing name: `<issuer alias>/<subject>`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.issuer_alias, self.subject)
    }
}

/// Why a presented token was refused. The class is shown to the client; the token never is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// No token was presented.
    Missing,
    /// Not a well-formed JWT (wrong segment count, bad base64, bad JSON, missing required claims).
    Malformed,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    NotYetValid,
    /// `aud` does not name this gateway's configured audience.
    WrongAudience,
    /// `iss` is not a configured issuer.
    UnknownIssuer,
    /// The `kid` is not in the issuer's key set, even after a refresh.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// The algorithm is `none`, HMAC, or not in the issuer's allow-list.
    DisallowedAlgorithm,
    /// `exp - iat` exceeds the issuer's maximum lifetime.
    LifetimeTooLong,
    /// The issuer's keys could not be fetched and none are cached.
    IssuerUnavailable,
    /// The identity is verified but not allowed to use the requested connection.
    NotPermitted,
    /// An operator revoked this identity (`portcullis revoke`).
    Revoked,
}

impl RejectReason {
    /// A stable, lowercase class name used in client messages, logs and metric labels.
    pub fn class(self) -> &'static str {
        match self {
            RejectReason::Missing => "missing token",
            RejectReason::Malformed => "malformed token",
            RejectReason::Expired => "expired",
            RejectReason::NotYetValid => "not yet valid",
            RejectReason::WrongAudience => "wrong audience",
            RejectReason::UnknownIssuer => "unknown issuer",
            RejectReason::UnknownKey => "unknown key id",
            RejectReason::BadSignature => "bad signature",
            RejectReason::DisallowedAlgorithm => "disallowed algorithm",
            RejectReason::LifetimeTooLong => "lifetime too long",
            RejectReason::IssuerUnavailable => "issuer unavailable",
            RejectReason::NotPermitted => "not permitted",
            RejectReason::Revoked => "revoked",
        }
    }

    /// The metric label form of [`RejectReason::class`].
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::Missing => "missing",
            RejectReason::Malformed => "malformed",
            RejectReason::Expired => "expired",
            RejectReason::NotYetValid => "not_yet_valid",
            RejectReason::WrongAudience => "wrong_audience",
            RejectReason::UnknownIssuer => "unknown_issuer",
            RejectReason::UnknownKey => "unknown_kid",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::DisallowedAlgorithm => "disallowed_alg",
            RejectReason::LifetimeTooLong => "lifetime_too_long",
            RejectReason::IssuerUnavailable => "issuer_unavailable",
            RejectReason::NotPermitted => "not_permitted",
            RejectReason::Revoked => "revoked",
        }
    }
}
