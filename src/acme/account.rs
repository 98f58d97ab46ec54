//! The ACME account: its key made once and stored for every node (sealed
//! like certificate keys), the account made (or found) on the CA with it,
//! kept until the CA says it no longer knows it.

use std::sync::Mutex;

use instant_acme::{Account, Key};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::order::OrderFailed;
use crate::config;
use crate::store::Store;

/// This node's handle on the shared account.
#[derive(Default)]
pub struct Accounts {
    current: Mutex<Option<Account>>,
}

impl Accounts {
    /// The account, made or found on the CA if this node has none yet
    /// (concurrent first orders may both ask the CA: with the one stored
    /// key it answers with the same account).
    pub async fn get(&self, config: &config::Acme, store: &Store) -> Result<Account, OrderFailed> {
        let cached = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(account) = cached {
            return Ok(account);
        }
        let account = register(config, store).await?;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(account.clone());
        Ok(account)
    }

    /// Forget the account (the CA no longer knows it: a new CA, a reset).
    pub fn forget(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

async fn register(config: &config::Acme, store: &Store) -> Result<Account, OrderFailed> {
    let refused = |doing: &str, err: String| OrderFailed::said(format!("{doing}: {err}"));
    let http = super::client::for_ca(config.ca_file.as_deref())
        .map_err(|e| refused("setting up the ACME client", e))?;
    let builder = Account::builder_with_http(http);
    let (_, fresh) =
        Key::generate_pkcs8().map_err(|e| refused("making the account key", e.to_string()))?;
    let stored = store
        .acme_account_key(&config.directory, &hex(fresh.secret_pkcs8_der()))
        .await
        .map_err(|e| refused("the ACME account key", e.to_string()))?;
    let der = unhex(&stored).ok_or_else(|| refused("the ACME account key", "not hex".into()))?;
    let key = Key::from_pkcs8_der(PrivatePkcs8KeyDer::from(der.as_slice()))
        .map_err(|e| refused("the ACME account key", e.to_string()))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der));
    let (account, _) = builder
        .create_from_key((key, der), config.directory.clone())
        .await
        .map_err(|e| OrderFailed::new("registering the ACME account", e))?;
    if let Some(contact) = &config.contact {
        if let Err(err) = account.update_contacts(&[contact.as_str()]).await {
            tracing::warn!(%err, "ACME: cannot set the account's contact");
        }
    }
    tracing::info!(directory = %config.directory, "ACME: account ready");
    Ok(account)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
