//! [`FlowStore`] for [`SeaStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter};
use tether_core::{
    AuthFlow, FlowError, FlowStart, FlowStore, NewConnectSession, OwnerId, PendingConnectSession, ProviderId, Result,
    Url,
};
use uuid::Uuid;

use super::names::{AUTH_FLOWS, PKCE_VERIFIER};
use super::{SeaStore, check_len, json_list, ms, parse_list, time};
use crate::entity::auth_flow::{self, Column, Entity};
use crate::error::{corrupt, db_err};
use crate::migration::limits;

fn parse_url(column: &str, text: Option<&str>) -> Result<Option<Url>> {
    text.map(|t| Url::parse(t).map_err(|e| corrupt(AUTH_FLOWS, column, e))).transpose()
}

/// The parts of an [`AuthFlow`] that come from the session row.
fn flow_from_row(row: &auth_flow::Model) -> Result<AuthFlow> {
    let t = AUTH_FLOWS;
    Ok(AuthFlow {
        id: Uuid::parse_str(&row.id).map_err(|e| corrupt(t, "id", e))?,
        provider: ProviderId::parse(&row.provider).map_err(|e| corrupt(t, "provider", e))?,
        owner: OwnerId::parse(&row.owner).map_err(|e| corrupt(t, "owner", e))?,
        scopes: parse_list(t, "scopes", &row.scopes)?,
        instance: row.instance.clone(),
        return_to: parse_url("return_to", row.return_to.as_deref())?,
        pkce_verifier: None,
        browser_binding_hash: row.browser_binding_hash.clone(),
        redirect_uri: parse_url("redirect_uri", row.redirect_uri.as_deref())?,
        expires_at: time(t, "state_expires_at", row.state_expires_at.unwrap_or(row.link_expires_at))?,
    })
}

impl SeaStore {
    async fn flow_by(&self, column: Column, hash: &str) -> Result<Option<auth_flow::Model>> {
        Entity::find().filter(column.eq(hash)).one(&self.db).await.map_err(db_err("reading an authorization flow"))
    }
}

impl SeaStore {
    /// The connect session with this link hash, if it is unexpired and not started yet.
    async fn unstarted_session(&self, link_token_hash: &str, now: DateTime<Utc>) -> Result<auth_flow::Model> {
        let Some(row) = self.flow_by(Column::LinkTokenHash, link_token_hash).await? else {
            return Err(FlowError::UnknownLink.into());
        };
        if row.started_at.is_some() {
            return Err(FlowError::LinkUsed.into());
        }
        if row.link_expires_at <= ms(now) {
            return Err(FlowError::LinkExpired.into());
        }
        Ok(row)
    }
}

#[async_trait]
impl FlowStore for SeaStore {
    async fn create_connect_session(&self, session: &NewConnectSession) -> Result<()> {
        check_len("the link token hash", &session.link_token_hash, limits::HASH)?;
        check_len("the owner", session.owner.as_str(), limits::OWNER)?;
        check_len("the provider id", session.provider.as_str(), limits::PROVIDER)?;
        if let Some(instance) = &session.instance {
            check_len("the instance", instance, limits::INSTANCE)?;
        }
        if let Some(hint) = &session.login_hint {
            check_len("the login hint", hint, limits::LOGIN_HINT)?;
        }
        let row = auth_flow::ActiveModel {
            id: Set(session.id.to_string()),
            link_token_hash: Set(session.link_token_hash.clone()),
            state_hash: Set(None),
            provider: Set(session.provider.as_str().to_owned()),
            owner: Set(session.owner.as_str().to_owned()),
            scopes: Set(json_list(&session.scopes)?),
            instance: Set(session.instance.clone()),
            login_hint: Set(session.login_hint.clone()),
            return_to: Set(session.return_to.as_ref().map(|u| u.to_string())),
            pkce_verifier: Set(None),
            browser_binding_hash: Set(None),
            redirect_uri: Set(None),
            link_expires_at: Set(ms(session.expires_at)),
            started_at: Set(None),
            state_expires_at: Set(None),
            consumed_at: Set(None),
            created_at: Set(ms(session.created_at)),
        };
        let _gate = self.write_gate().await;
        Entity::insert(row).exec_without_returning(&self.db).await.map_err(db_err("storing a connect session"))?;
        Ok(())
    }

    async fn unstarted_connect_session(
        &self,
        link_token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<PendingConnectSession> {
        let row = self.unstarted_session(link_token_hash, now).await?;
        Ok(PendingConnectSession {
            provider: ProviderId::parse(&row.provider).map_err(|e| corrupt(AUTH_FLOWS, "provider", e))?,
            scopes: parse_list(AUTH_FLOWS, "scopes", &row.scopes)?,
            instance: row.instance,
            login_hint: row.login_hint,
        })
    }

    async fn start_flow(&self, link_token_hash: &str, start: FlowStart, now: DateTime<Utc>) -> Result<AuthFlow> {
        check_len("the state hash", &start.state_hash, limits::HASH)?;
        check_len("the browser binding hash", &start.browser_binding_hash, limits::HASH)?;
        if let Some(instance) = &start.instance {
            check_len("the instance", instance, limits::INSTANCE)?;
        }
        let row = self.unstarted_session(link_token_hash, now).await?;
        let verifier =
            start.pkce_verifier.as_ref().map(|v| self.seal(AUTH_FLOWS, &row.id, PKCE_VERIFIER, v)).transpose()?;
        // Single use under races: only the UPDATE that finds `started_at` still NULL wins.
        let _gate = self.write_gate().await;
        let done = Entity::update_many()
            .set(auth_flow::ActiveModel {
                state_hash: Set(Some(start.state_hash.clone())),
                pkce_verifier: Set(verifier),
                browser_binding_hash: Set(Some(start.browser_binding_hash.clone())),
                redirect_uri: Set(Some(start.redirect_uri.to_string())),
                instance: match &start.instance {
                    Some(i) => Set(Some(i.clone())),
                    None => sea_orm::ActiveValue::NotSet,
                },
                state_expires_at: Set(Some(ms(start.expires_at))),
                started_at: Set(Some(ms(now))),
                ..Default::default()
            })
            .filter(Column::Id.eq(row.id.as_str()))
            .filter(Column::StartedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(db_err("starting an authorization flow"))?;
        if done.rows_affected != 1 {
            return Err(FlowError::LinkUsed.into());
        }
        let mut flow = flow_from_row(&row)?;
        flow.pkce_verifier = start.pkce_verifier;
        flow.browser_binding_hash = Some(start.browser_binding_hash);
        flow.redirect_uri = Some(start.redirect_uri);
        if start.instance.is_some() {
            flow.instance = start.instance;
        }
        flow.expires_at = start.expires_at;
        Ok(flow)
    }

    async fn consume_flow(&self, state_hash: &str, now: DateTime<Utc>) -> Result<AuthFlow> {
        let Some(row) = self.flow_by(Column::StateHash, state_hash).await? else {
            return Err(FlowError::UnknownState.into());
        };
        if row.consumed_at.is_some() {
            return Err(FlowError::StateReplayed.into());
        }
        if row.state_expires_at.is_none_or(|exp| exp <= ms(now)) {
            return Err(FlowError::StateExpired.into());
        }
        let verifier =
            row.pkce_verifier.as_deref().map(|v| self.open(AUTH_FLOWS, &row.id, PKCE_VERIFIER, v)).transpose()?;
        // Single use under races; the verifier is not needed any more, so it goes too.
        let _gate = self.write_gate().await;
        let done = Entity::update_many()
            .set(auth_flow::ActiveModel {
                consumed_at: Set(Some(ms(now))),
                pkce_verifier: Set(None),
                ..Default::default()
            })
            .filter(Column::Id.eq(row.id.as_str()))
            .filter(Column::ConsumedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(db_err("consuming an authorization flow"))?;
        if done.rows_affected != 1 {
            return Err(FlowError::StateReplayed.into());
        }
        let mut flow = flow_from_row(&row)?;
        flow.pkce_verifier = verifier;
        Ok(flow)
    }

    async fn purge_flows(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = ms(before);
        let _gate = self.write_gate().await;
        let done = Entity::delete_many()
            .filter(Column::LinkExpiresAt.lt(before))
            .filter(Condition::any().add(Column::StateExpiresAt.is_null()).add(Column::StateExpiresAt.lt(before)))
            .exec(&self.db)
            .await
            .map_err(db_err("purging expired flows"))?;
        Ok(done.rows_affected)
    }
}
