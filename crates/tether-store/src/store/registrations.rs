//! [`ClientRegistrationStore`] for [`SeaStore`].

use async_trait::async_trait;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use tether_core::{
    ClientRegistration, ClientRegistrationStore, InstanceOrigin, ProviderId, RegisteredClient, Result, Url,
};
use uuid::Uuid;

use super::names::{CLIENT_REGISTRATIONS, CLIENT_SECRET};
use super::{SeaStore, check_len, json_list, ms, parse_list, time};
use crate::entity::client_registration::{self, Column, Entity};
use crate::error::{corrupt, db_err, is_unique_violation};
use crate::migration::limits;

impl SeaStore {
    fn to_registration(&self, row: client_registration::Model) -> Result<ClientRegistration> {
        let t = CLIENT_REGISTRATIONS;
        let client_secret =
            row.client_secret.as_deref().map(|s| self.open(t, &row.id, CLIENT_SECRET, s)).transpose()?;
        Ok(ClientRegistration {
            id: Uuid::parse_str(&row.id).map_err(|e| corrupt(t, "id", e))?,
            provider: ProviderId::parse(&row.provider).map_err(|e| corrupt(t, "provider", e))?,
            // Stored origins were validated when they were first written.
            instance: InstanceOrigin::parse(&row.instance, true).map_err(|e| corrupt(t, "instance", e))?,
            redirect_uri: Url::parse(&row.redirect_uri).map_err(|e| corrupt(t, "redirect_uri", e))?,
            scopes: parse_list(t, "scopes", &row.scopes)?,
            client: RegisteredClient { client_id: row.client_id, client_secret },
            created_at: time(t, "created_at", row.created_at)?,
        })
    }
}

#[async_trait]
impl ClientRegistrationStore for SeaStore {
    async fn client_registration(
        &self,
        provider: &ProviderId,
        instance: &InstanceOrigin,
        redirect_uri: &Url,
    ) -> Result<Option<ClientRegistration>> {
        let row = Entity::find()
            .filter(Column::Provider.eq(provider.as_str()))
            .filter(Column::Instance.eq(instance.as_str()))
            .filter(Column::RedirectUri.eq(redirect_uri.as_str()))
            .one(&self.db)
            .await
            .map_err(db_err("reading a client registration"))?;
        row.map(|r| self.to_registration(r)).transpose()
    }

    async fn insert_client_registration(&self, registration: &ClientRegistration) -> Result<ClientRegistration> {
        let r = registration;
        check_len("the provider id", r.provider.as_str(), limits::PROVIDER)?;
        check_len("the instance", r.instance.as_str(), limits::INSTANCE)?;
        check_len("the redirect URI", r.redirect_uri.as_str(), limits::REDIRECT_URI)?;
        let id = r.id.to_string();
        let secret = r
            .client
            .client_secret
            .as_ref()
            .map(|s| self.seal(CLIENT_REGISTRATIONS, &id, CLIENT_SECRET, s))
            .transpose()?;
        let row = client_registration::ActiveModel {
            id: Set(id),
            provider: Set(r.provider.as_str().to_owned()),
            instance: Set(r.instance.as_str().to_owned()),
            redirect_uri: Set(r.redirect_uri.to_string()),
            scopes: Set(json_list(&r.scopes)?),
            client_id: Set(r.client.client_id.clone()),
            client_secret: Set(secret),
            created_at: Set(ms(r.created_at)),
        };
        let inserted = {
            let _gate = self.write_gate().await;
            Entity::insert(row).exec_without_returning(&self.db).await
        };
        match inserted {
            Ok(_) => {}
            // Another process registered on this server first: its registration is the one.
            Err(e) if is_unique_violation(&e) => {
                tracing::debug!(provider = %r.provider, instance = %r.instance, "client registration raced; using the first");
            }
            Err(e) => return Err(db_err("storing a client registration")(e)),
        }
        self.client_registration(&r.provider, &r.instance, &r.redirect_uri)
            .await?
            .ok_or_else(|| tether_core::Error::Store("the stored client registration vanished".into()))
    }
}
