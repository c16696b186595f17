//! "Should we retry?": a pure function from an answer to a verdict, tested answer by answer.
//!
//! The API has no idempotency key, so only answers that prove nothing was stored are
//! retried. Anything that may have created the case makes the row `uncertain`.

use std::time::Duration;

use serde_json::Value;

/// What came back from one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Answer {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// The request never left: connection refused, DNS, TLS handshake.
    NotSent(String),
    /// It may have arrived: timeout or reset after the body was sent.
    MaybeSent(String),
}

/// Why the whole run must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// 401, or 403 PLEASE VALIDATE TOKEN: no row can succeed with this token.
    TokenRejected,
    /// 403 TOKEN LIMIT EXCEEDED: the daily quota is spent; a later run continues.
    Quota,
    /// Wrong path, wrong method, a redirect: the server address is wrong.
    WrongEndpoint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Created {
        case_id: Option<String>,
        warning: Option<String>,
    },
    /// The CRM refused this row; sending it again unchanged won't help.
    Rejected(String),
    /// Provably not processed: try again after the wait (or `after`, if the server said).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Maybe processed: never resent on its own.
    Uncertain(String),
    Stop(StopKind, String),
}

use crate::wolkvox::{NO_SUCH_API, SIMULTANEOUS, TOKEN_INVALID, TOKEN_LIMIT};

pub fn classify(attempt: &Attempt) -> Verdict {
    match attempt {
        Attempt::NotSent(reason) => Verdict::Retry {
            after: None,
            reason: format!("not sent: {reason}"),
        },
        Attempt::MaybeSent(reason) => Verdict::Uncertain(format!(
            "no answer after the request was sent ({reason}): the CRM may have the case"
        )),
        Attempt::Answer {
            status,
            body,
            retry_after,
        } => classify_answer(*status, body, *retry_after),
    }
}

fn classify_answer(status: u16, body: &str, retry_after: Option<Duration>) -> Verdict {
    let envelope: Option<Value> = serde_json::from_str(body).ok();
    let msg = envelope
        .as_ref()
        .and_then(|e| e.get("msg"))
        .and_then(Value::as_str)
        .map(|m| m.trim().to_string())
        .unwrap_or_else(|| snippet(body));
    let upper = msg.to_uppercase();
    let described = |what: &str| format!("HTTP {status}: {what}");

    match status {
        200..=299 => {
            let Some(envelope) = envelope else {
                return Verdict::Created {
                    case_id: None,
                    warning: Some(format!(
                        "the CRM answered {status} with a body that is not JSON: {}",
                        snippet(body)
                    )),
                };
            };
            if let Some(code) = envelope_code(&envelope)
                && !(200..300).contains(&code)
            {
                // A 2xx carrying an error code is that error.
                return classify_answer(code, body, retry_after);
            }
            match envelope.get("error") {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.is_empty() || s.eq_ignore_ascii_case("null") => {}
                Some(other) => {
                    return Verdict::Uncertain(format!(
                        "HTTP {status} but the answer carries error {other}: {msg}"
                    ));
                }
            }
            Verdict::Created {
                case_id: case_id(&envelope),
                warning: None,
            }
        }
        401 => Verdict::Stop(StopKind::TokenRejected, described(&msg)),
        403 if upper.contains(TOKEN_INVALID) => {
            Verdict::Stop(StopKind::TokenRejected, described(&msg))
        }
        403 if upper.contains(TOKEN_LIMIT) => Verdict::Stop(StopKind::Quota, described(&msg)),
        403 if upper.contains(SIMULTANEOUS) => Verdict::Retry {
            after: None,
            reason: described(&msg),
        },
        // Maintenance windows and a switched-off API answer 403 with other texts; the
        // gate refused the request before it did anything.
        403 => Verdict::Retry {
            after: retry_after,
            reason: described(&msg),
        },
        400 if upper.contains(NO_SUCH_API) => Verdict::Stop(
            StopKind::WrongEndpoint,
            format!("{}: check --server", described(&msg)),
        ),
        405 => Verdict::Stop(
            StopKind::WrongEndpoint,
            format!(
                "{}: the address does not take POST; check --server",
                described(&msg)
            ),
        ),
        300..=399 => Verdict::Stop(
            StopKind::WrongEndpoint,
            format!("HTTP {status}: the server redirects; pass the final address in --server"),
        ),
        408 | 429 | 503 => Verdict::Retry {
            after: retry_after,
            reason: described(&msg),
        },
        400..=499 => Verdict::Rejected(described(&msg)),
        _ => Verdict::Uncertain(format!(
            "{}: the CRM may have stored the case before failing",
            described(&msg)
        )),
    }
}

fn envelope_code(envelope: &Value) -> Option<u16> {
    match envelope.get("code")? {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The case id, wherever this API version puts it; absent is fine.
fn case_id(envelope: &Value) -> Option<String> {
    const KEYS: [&str; 4] = ["wolkvox_id", "wolkvox-id", "idCase", "idPrefijo"];
    let data = envelope.get("data");
    let places = [
        data,
        data.and_then(|d| d.as_array()).and_then(|a| a.first()),
        Some(envelope),
    ];
    places.into_iter().flatten().find_map(|place| {
        KEYS.iter().find_map(|k| match place.get(k)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    })
}

fn snippet(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.chars().count() > 200 {
        format!("{}…", trimmed.chars().take(199).collect::<String>())
    } else {
        trimmed.to_string()
    }
}

/// What the token information API says about one token's daily quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// 0 when the server sets no limit.
    pub limit: u64,
    pub used: u64,
    pub left: u64,
    pub hours_to_reset: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenInfoError {
    /// 401/403 about the token itself.
    Rejected(String),
    /// 403 TOKEN LIMIT EXCEEDED: no calls left today.
    QuotaSpent,
    /// No connection could be made: wrong host, DNS, network down.
    Unreachable(String),
    /// Anything else: no answer, another status, a body we cannot read.
    Unavailable(String),
}

/// What a token-information answer says: the token's quota, or why there is none.
pub fn token_info(status: u16, body: &str) -> Result<TokenInfo, TokenInfoError> {
    let json: serde_json::Value = serde_json::from_str(body)
        .map_err(|_| TokenInfoError::Unavailable(format!("HTTP {status}, not JSON")))?;
    let msg = json
        .get("msg")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_string();
    let upper = msg.to_uppercase();
    if status == 401 || upper.contains(TOKEN_INVALID) {
        return Err(TokenInfoError::Rejected(format!("HTTP {status}: {msg}")));
    }
    if upper.contains(TOKEN_LIMIT) {
        return Err(TokenInfoError::QuotaSpent);
    }
    if !(200..300).contains(&status) {
        return Err(TokenInfoError::Unavailable(format!("HTTP {status}: {msg}")));
    }
    let data = json.get("data").cloned().unwrap_or_default();
    let data = data
        .as_array()
        .and_then(|a| a.first().cloned())
        .unwrap_or(data);
    let number = |key: &str| -> Option<u64> {
        match data.get(key)? {
            serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
            serde_json::Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f as u64),
            _ => None,
        }
    };
    let limit = number("token_limit")
        .ok_or_else(|| TokenInfoError::Unavailable("the answer has no token_limit".into()))?;
    let used = number("token_use_today").unwrap_or(0);
    // The CRM's key really is misspelt; the Manager API's spelling is accepted too.
    let left = number("available_consumition_options")
        .or_else(|| number("available_consumption_options"))
        .unwrap_or_else(|| limit.saturating_sub(used));
    let hours_to_reset = data.get("hours_to_restart_count").map(|h| match h {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    Ok(TokenInfo {
        limit,
        used,
        left,
        hours_to_reset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Verdict {
        classify(&Attempt::Answer {
            status,
            body: body.into(),
            retry_after: None,
        })
    }

    #[test]
    fn success_with_an_id_in_data() {
        let v = answer(
            200,
            r#"{"code":"200","error":null,"msg":"ok","data":{"wolkvox_id":"647f6ff1660dff48d803ffe6"}}"#,
        );
        assert_eq!(
            v,
            Verdict::Created {
                case_id: Some("647f6ff1660dff48d803ffe6".into()),
                warning: None
            }
        );
    }

    #[test]
    fn success_variants_int_code_string_null_no_id_list_data() {
        assert!(matches!(
            answer(201, r#"{"code":201,"error":"null","msg":"x"}"#),
            Verdict::Created { case_id: None, .. }
        ));
        assert!(
            matches!(answer(200, r#"{"code":"200","error":"","data":[{"idCase":77}]}"#),
            Verdict::Created { case_id: Some(id), .. } if id == "77")
        );
        assert!(matches!(
            answer(200, "<html>ok</html>"),
            Verdict::Created {
                warning: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn a_2xx_carrying_an_error_code_is_that_error() {
        assert!(matches!(
            answer(
                200,
                r#"{"code":403,"error":"FORBIDDEN","msg":"PLEASE VALIDATE TOKEN"}"#
            ),
            Verdict::Stop(StopKind::TokenRejected, _)
        ));
        assert!(matches!(
            answer(
                200,
                r#"{"code":"400","error":"BAD REQUEST","msg":"SOME PARAMETERS ARE REQUIRED"}"#
            ),
            Verdict::Rejected(_)
        ));
    }

    #[test]
    fn token_answers_stop_the_run() {
        assert!(matches!(
            answer(
                401,
                r#"{"code":401,"error":"UNAUTHORIZED","msg":"PLEASE ENTER THE WOLKVOX-TOKEN"}"#
            ),
            Verdict::Stop(StopKind::TokenRejected, _)
        ));
        assert!(matches!(
            answer(
                403,
                r#"{"code":403,"error":"FORBIDDEN","msg":" please validate token "}"#
            ),
            Verdict::Stop(StopKind::TokenRejected, _)
        ));
        assert!(matches!(
            answer(
                403,
                r#"{"code":403,"error":"FORBIDDEN","msg":"TOKEN LIMIT EXCEEDED"}"#
            ),
            Verdict::Stop(StopKind::Quota, _)
        ));
    }

    #[test]
    fn gate_answers_are_retried() {
        assert!(matches!(
            answer(
                403,
                r#"{"code":403,"error":"FORBIDDEN","msg":"EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)"}"#
            ),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            answer(
                403,
                r#"{"code":403,"error":"FORBIDDEN","msg":"SERVICE IN MAINTENANCE"}"#
            ),
            Verdict::Retry { .. }
        ));
        assert!(matches!(answer(503, ""), Verdict::Retry { .. }));
        let v = classify(&Attempt::Answer {
            status: 429,
            body: String::new(),
            retry_after: Some(Duration::from_secs(7)),
        });
        assert_eq!(
            v,
            Verdict::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "HTTP 429: ".into()
            }
        );
        assert!(matches!(
            classify(&Attempt::NotSent("refused".into())),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn maybe_processed_answers_are_uncertain() {
        for status in [500, 502, 504] {
            assert!(
                matches!(answer(status, "oops"), Verdict::Uncertain(_)),
                "{status}"
            );
        }
        assert!(matches!(
            classify(&Attempt::MaybeSent("timeout".into())),
            Verdict::Uncertain(_)
        ));
        assert!(matches!(
            answer(200, r#"{"code":200,"error":"SOMETHING","msg":"?"}"#),
            Verdict::Uncertain(_)
        ));
    }

    #[test]
    fn row_errors_are_rejected_and_endpoint_errors_stop() {
        assert!(
            matches!(answer(400, r#"{"code":400,"error":"BAD REQUEST","msg":"SOME PARAMETERS ARE REQUIRED"}"#),
            Verdict::Rejected(m) if m.contains("SOME PARAMETERS"))
        );
        assert!(matches!(
            answer(
                412,
                r#"{"code":412,"error":"PRECONDITION FAILED","msg":"USER DOES NOT EXIST"}"#
            ),
            Verdict::Rejected(_)
        ));
        assert!(matches!(
            answer(
                400,
                r#"{"code":400,"error":"BAD REQUEST","msg":"THE API YOU WANT TO CONSULT DOES NOT EXIST"}"#
            ),
            Verdict::Stop(StopKind::WrongEndpoint, _)
        ));
        assert!(matches!(
            answer(405, ""),
            Verdict::Stop(StopKind::WrongEndpoint, _)
        ));
    }
}
