//! Per-instance providers: the user's server, the client registered on it, and the provider
//! settings rebased on it for flows and connections.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use uuid::Uuid;

use super::Tether;
use crate::{AccountIdentity, ClientRegistration, ConfiguredProvider, Connection, Error, InstanceOrigin, Result};

/// One in-process lock per (provider, server), so concurrent first connects in this process
/// register once; across processes the store's unique key picks one registration.
#[derive(Default)]
pub(crate) struct RegistrationLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RegistrationLocks {
    fn lock_for(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > 1_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(key).or_default().clone()
    }
}

/// The account a per-instance provider reported, with its id qualified by the server host
/// (`{id}@{host}`): server-local ids repeat across servers.
pub(crate) fn qualified(mut account: AccountIdentity, instance: Option<&InstanceOrigin>) -> AccountIdentity {
    if let Some(instance) = instance {
        account.id = format!("{}@{}", account.id, instance.host());
    }
    account
}

impl Tether {
    /// Validates `input` as a server of the per-instance `provider` under its configured
    /// policy (https only unless `allow_insecure_instances`, allow and block lists).
    pub fn check_instance(&self, provider: &ConfiguredProvider, input: &str) -> Result<InstanceOrigin> {
        match &provider.settings.instances {
            Some(policy) => policy.check(input),
            None => Err(Error::InvalidInstance(format!(
                "provider `{}` is a single service: leave out `instance`",
                provider.id
            ))),
        }
    }

    /// `provider` on `instance`, with the client registered there. With `register`, a missing
    /// registration is created at the server and stored (the first one stored wins); without,
    /// it is an error (an existing connection's tokens belong to the client that obtained them).
    pub(crate) async fn provider_at(
        &self,
        provider: &ConfiguredProvider,
        instance: &InstanceOrigin,
        register: bool,
    ) -> Result<ConfiguredProvider> {
        let store = &self.inner.store;
        let redirect_uri = &provider.redirect_uri;
        if let Some(found) = store.client_registration(&provider.id, instance, redirect_uri).await? {
            return provider.at_instance(&found);
        }
        if !register {
            return Err(Error::InvalidInstance(format!(
                "no client is registered for provider `{}` on {}: the user must connect again",
                provider.id,
                instance.host()
            )));
        }
        let lock = self.inner.registration_locks.lock_for(format!("{}\n{}", provider.id, instance.as_str()));
        let _registering = lock.lock().await;
        // Someone in this process may have registered while we waited.
        if let Some(found) = store.client_registration(&provider.id, instance, redirect_uri).await? {
            return provider.at_instance(&found);
        }
        let client = provider.register_client(&self.inner.http, instance).await?;
        let registration = ClientRegistration {
            id: Uuid::now_v7(),
            provider: provider.id.clone(),
            instance: instance.clone(),
            redirect_uri: redirect_uri.clone(),
            scopes: provider.settings.scopes.clone(),
            client,
            created_at: Utc::now(),
        };
        let stored = store.insert_client_registration(&registration).await?;
        if stored.id == registration.id {
            tracing::info!(provider = %provider.id, instance = %instance, "client registered on a new server");
        } else {
            tracing::info!(provider = %provider.id, instance = %instance, "another process registered first");
        }
        provider.at_instance(&stored)
    }

    /// The server a flow or connection (`what`) of `provider` runs on, validated again under
    /// the current policy: `None` for a single service; an error when a per-instance provider's
    /// row names none.
    pub(crate) fn stored_instance(
        &self,
        provider: &ConfiguredProvider,
        stored: Option<&str>,
        what: &str,
    ) -> Result<Option<InstanceOrigin>> {
        if !provider.is_per_instance() {
            return Ok(None);
        }
        let stored =
            stored.ok_or_else(|| Error::Store(format!("{what} of a per-instance provider has no instance")))?;
        self.check_instance(provider, stored).map(Some)
    }

    /// `provider` as configured, or on the server of an existing flow or connection with the
    /// client registered there; and that server.
    pub(crate) async fn provider_on<'a>(
        &self,
        provider: &'a ConfiguredProvider,
        stored: Option<&str>,
        what: &str,
    ) -> Result<(Cow<'a, ConfiguredProvider>, Option<InstanceOrigin>)> {
        match self.stored_instance(provider, stored, what)? {
            None => Ok((Cow::Borrowed(provider), None)),
            Some(instance) => Ok((Cow::Owned(self.provider_at(provider, &instance, false).await?), Some(instance))),
        }
    }

    /// The provider of an existing connection: as configured, or on the connection's server.
    pub(crate) async fn connection_provider(&self, conn: &Connection) -> Result<Cow<'_, ConfiguredProvider>> {
        let provider = self.provider(conn.provider.as_str())?;
        let what = format!("connection {}", conn.id);
        Ok(self.provider_on(provider, conn.instance.as_deref(), &what).await?.0)
    }
}
