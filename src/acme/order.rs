//! One ACME order for one domain: new order, HTTP-01 for each pending
//! authorization (the answer published before the CA is told to look),
//! finalize with a fresh key, fetch the chain. Failures are said in words
//! an operator can act on, with the CA's own explanation.

use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Error, Identifier, NewOrder, OrderStatus,
    RetryPolicy,
};

/// How long the CA may take to validate, and then to issue.
const VALIDATION: Duration = Duration::from_secs(90);
const ISSUANCE: Duration = Duration::from_secs(90);

/// A certificate obtained: its PEM chain and key.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Why an order failed.
#[derive(Debug)]
pub struct OrderFailed {
    /// In words, with the CA's explanation.
    pub reason: String,
    /// The CA limits how often we may ask (back off longer).
    pub rate_limited: bool,
    /// The CA said when to come back.
    pub retry_after: Option<SystemTime>,
    /// The CA no longer knows the account.
    pub account_gone: bool,
}

impl OrderFailed {
    pub(super) fn new(doing: &str, err: Error) -> Self {
        let problem_is = |kind: &str| {
            matches!(&err, Error::Api(problem)
                if problem.r#type.as_deref().is_some_and(|t| t.ends_with(kind)))
        };
        let rate_limited = problem_is(":rateLimited");
        let account_gone = problem_is(":accountDoesNotExist") || problem_is(":unauthorized");
        // The CA's refusal said when to come back (heard by our client:
        // instant-acme keeps it only on success paths), or polling ran out.
        let heard = super::client::take();
        let retry_after = match &err {
            Error::Timeout(Some(at)) => {
                Some(SystemTime::now() + at.saturating_duration_since(std::time::Instant::now()))
            }
            Error::Api(_) => heard,
            _ => None,
        };
        OrderFailed {
            reason: format!("{doing}: {}", words(&err)),
            rate_limited,
            retry_after,
            account_gone,
        }
    }

    /// A failure in our own words.
    pub fn said(reason: String) -> Self {
        OrderFailed {
            reason,
            rate_limited: false,
            retry_after: None,
            account_gone: false,
        }
    }
}

/// The CA's problem document without the crate's framing.
fn words(err: &Error) -> String {
    match err {
        Error::Api(problem) => {
            let mut text = problem
                .detail
                .clone()
                .unwrap_or_else(|| "the CA refused without a reason".to_owned());
            for sub in &problem.subproblems {
                if let Some(detail) = &sub.detail {
                    text.push_str("; ");
                    text.push_str(detail);
                }
            }
            text
        }
        Error::Timeout(_) => "the CA did not finish in time".to_owned(),
        other => other.to_string(),
    }
}

/// Obtain a certificate for `domain`; `publish(token, key_authorization)`
/// makes an HTTP-01 answer servable by every node before the CA is told.
pub async fn obtain<P, F>(
    account: &Account,
    domain: &str,
    publish: P,
) -> Result<Issued, OrderFailed>
where
    P: Fn(String, String) -> F,
    F: std::future::Future<Output = Result<(), String>>,
{
    let identifiers = [Identifier::Dns(domain.to_owned())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| OrderFailed::new("the CA refused the order", e))?;
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization =
            authorization.map_err(|e| OrderFailed::new("reading the authorization", e))?;
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(OrderFailed::said(format!(
                    "the CA's authorization for {domain} is {other:?}"
                )))
            }
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| OrderFailed::said("the CA offered no HTTP-01 challenge".to_owned()))?;
        let answer = challenge.key_authorization();
        publish(challenge.token.clone(), answer.as_str().to_owned())
            .await
            .map_err(|e| OrderFailed::said(format!("publishing the challenge answer: {e}")))?;
        challenge
            .set_ready()
            .await
            .map_err(|e| OrderFailed::new("the CA refused the challenge", e))?;
    }
    let status = order
        .poll_ready(&RetryPolicy::new().timeout(VALIDATION))
        .await
        .map_err(|e| OrderFailed::new(&format!("the CA could not validate {domain}"), e))?;
    if status != OrderStatus::Ready {
        return Err(OrderFailed::said(why_invalid(&mut order, domain).await));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| OrderFailed::new("finalizing", e))?;
    let chain_pem = order
        .poll_certificate(&RetryPolicy::new().timeout(ISSUANCE))
        .await
        .map_err(|e| OrderFailed::new("fetching the certificate", e))?;
    Ok(Issued { chain_pem, key_pem })
}

/// The CA's reason an order became invalid: its challenges' errors.
async fn why_invalid(order: &mut instant_acme::Order, domain: &str) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else {
            continue;
        };
        for challenge in &state.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(words(&Error::Api(problem.clone())));
            }
        }
    }
    match reasons.is_empty() {
        true => format!("the CA could not validate {domain} (no reason given)"),
        false => format!("the CA could not validate {domain}: {}", reasons.join("; ")),
    }
}
