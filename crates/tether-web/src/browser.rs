//! Browser routes: the index page, the connect link, the provider callback, and the demo
//! starter.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use tether_core::{AuthorizationRedirect, CallbackParams, ConnectSessionRequest, ConnectStep, ExposeSecret};

use crate::pages::{IndexPage, InstancePage, LoginHintPage, MessagePage, html};
use crate::{PageError, WebState, middleware};

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(middleware::browser_headers())
            .route("/", web::get().to(index))
            .route("/try", web::post().to(try_demo))
            .route("/connect/{token}", web::get().to(connect))
            .route("/connect/{token}", web::post().to(connect_with_input))
            .route("/callback/{provider}", web::get().to(callback))
            .route("/providers/{provider}/{name}", web::get().to(provider_document))
            .default_service(web::to(crate::error::not_found)),
    );
}

async fn index(state: web::Data<WebState>) -> HttpResponse {
    let providers = state.engine.providers().map(|p| p.id.to_string()).collect();
    html(StatusCode::OK, &IndexPage { demo: state.demo.is_some(), providers })
}

#[derive(Deserialize)]
struct TryForm {
    owner: String,
}

/// Demo mode only: starts a connect flow for the typed owner on the demo provider.
async fn try_demo(state: web::Data<WebState>, form: web::Form<TryForm>) -> Result<HttpResponse, PageError> {
    if state.demo.is_none() {
        return Err(tether_core::Error::NotFound { what: "page", id: "/try".into() }.into());
    }
    let created = state
        .engine
        .create_connect_session(ConnectSessionRequest {
            owner: form.into_inner().owner,
            provider: "demo".into(),
            return_to: None,
            scopes: None,
            instance: None,
            login_hint: None,
        })
        .await?;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, created.connect_url.as_str())).finish())
}

fn secure_cookies(state: &WebState) -> bool {
    state.engine.settings().public_url.scheme() == "https"
}

/// The single-use connect link: binds the flow to this browser and redirects to the provider.
/// A per-instance provider whose session names no server first gets a page asking for it, a
/// provider that takes a login hint (Bluesky) one asking who the user is (the link is not
/// used up until the provider accepts what was typed).
async fn connect(state: web::Data<WebState>, token: web::Path<String>) -> Result<HttpResponse, PageError> {
    let step = state.engine.open_connect_link(&token, None).await?;
    Ok(step_page(&state, step, StatusCode::FOUND))
}

fn step_page(state: &WebState, step: ConnectStep, redirect_status: StatusCode) -> HttpResponse {
    match step {
        ConnectStep::Redirect(redirect) => to_provider(state, redirect, redirect_status),
        ConnectStep::ChooseInstance { display_name } => instance_page(StatusCode::OK, &display_name, "", None),
        ConnectStep::AskLoginHint { display_name, prompt } => {
            login_hint_page(StatusCode::OK, &display_name, &prompt, "", None)
        }
        _ => crate::pages::error_page(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "unsupported connect step"),
    }
}

/// What the connect page's form sends: the server (per-instance providers) or who the user is
/// (providers that take a login hint).
#[derive(Deserialize)]
struct ConnectForm {
    instance: Option<String>,
    login_hint: Option<String>,
}

/// The server or login hint typed on the connect page. No cookie or session gives this POST any
/// authority: the unguessable single-use link token in the path does, exactly as for the GET,
/// so a cross-site form cannot do anything the link itself would not. Input the provider refuses
/// (malformed, not allowed, unreachable, unknown handle) shows the form again with the reason;
/// the link stays unused.
async fn connect_with_input(
    state: web::Data<WebState>,
    token: web::Path<String>,
    form: web::Form<ConnectForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let result = state.engine.open_connect_link_as(&token, form.instance.as_deref(), form.login_hint.as_deref()).await;
    match result {
        Ok(step) => Ok(step_page(&state, step, StatusCode::SEE_OTHER)),
        Err(
            e @ (tether_core::Error::InvalidInstance(_)
            | tether_core::Error::InvalidInput(_)
            | tether_core::Error::Provider { .. }),
        ) => {
            let status = crate::error::status_of(&e);
            let (display_name, prompt) =
                state.engine.connect_link_provider(&token).await.unwrap_or_else(|_| ("this provider".to_owned(), None));
            let message = e.to_string();
            Ok(match (form.instance, form.login_hint) {
                (Some(typed), _) => {
                    let value: String = typed.chars().take(tether_core::INSTANCE_MAX).collect();
                    instance_page(status, &display_name, &value, Some(&message))
                }
                (None, Some(typed)) => {
                    let value: String = typed.chars().take(tether_core::LOGIN_HINT_MAX).collect();
                    let prompt = prompt.unwrap_or("Who are you");
                    login_hint_page(status, &display_name, prompt, &value, Some(&message))
                }
                (None, None) => crate::pages::error_page(status, e.code(), &message),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn login_hint_page(
    status: StatusCode,
    display_name: &str,
    prompt: &str,
    value: &str,
    error: Option<&str>,
) -> HttpResponse {
    let mut resp = html(status, &LoginHintPage { display_name, prompt, value, error });
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    resp
}

fn instance_page(status: StatusCode, display_name: &str, value: &str, error: Option<&str>) -> HttpResponse {
    let mut resp = html(status, &InstancePage { display_name, value, error });
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    resp
}

/// Sets the browser-binding cookie and sends the browser to the provider.
fn to_provider(state: &WebState, redirect: AuthorizationRedirect, status: StatusCode) -> HttpResponse {
    let max_age = time::Duration::seconds(i64::try_from(redirect.cookie_max_age.as_secs()).unwrap_or(600));
    let cookie = Cookie::build(redirect.cookie_name, redirect.cookie_value.expose_secret().to_owned())
        .path("/callback")
        .http_only(true)
        .secure(secure_cookies(state))
        .same_site(SameSite::Lax)
        .max_age(max_age)
        .finish();
    HttpResponse::build(status).cookie(cookie).insert_header((header::LOCATION, redirect.url.as_str())).finish()
}

/// A JSON document a provider publishes (Bluesky: `client-metadata.json`, the client id its
/// authorization servers fetch, and `jwks.json`, the public keys of its client assertions).
/// Errors are JSON too: machines read these.
async fn provider_document(
    state: web::Data<WebState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, crate::ApiError> {
    let (provider, name) = path.into_inner();
    let document = state.engine.provider_document(&provider, &name)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(document.to_string()))
}

/// The provider sends the browser back here with `code` and `state` (or `error`).
async fn callback(
    state: web::Data<WebState>,
    req: HttpRequest,
    provider: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let mut params = CallbackParams::default();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            // OAuth 1.0a: the request token identifies the flow, the verifier is the code, and
            // Twitter reports a cancelled consent as `denied=<request token>`.
            "state" | "oauth_token" => params.state = Some(v),
            "oauth_verifier" => params.code = Some(v),
            "denied" => {
                params.state = Some(v);
                params.error = Some("access_denied".into());
            }
            // Meta appends `#_`; some proxies keep it.
            "code" => params.code = Some(v.trim_end_matches("#_").to_owned()),
            "error" => params.error = Some(v),
            "error_description" => params.error_description = Some(v),
            "iss" => params.iss = Some(v),
            _ => {}
        }
    }
    let cookie_name = params.state.as_deref().map(|s| state.engine.flow_cookie_name(s));
    let binding = cookie_name.as_deref().and_then(|n| req.cookie(n)).map(|c| c.value().to_owned());
    let result = state.engine.complete_authorization(&provider, params, binding.as_deref()).await;
    let mut removal = cookie_name.map(|n| {
        let mut c = Cookie::build(n, "").path("/callback").http_only(true).finish();
        c.make_removal();
        c
    });
    let done = match result {
        Ok(done) => done,
        Err(e) => {
            let mut resp = actix_web::ResponseError::error_response(&PageError::from(e));
            if let Some(c) = removal.take() {
                let _ = resp.add_cookie(&c);
            }
            return Ok(resp);
        }
    };
    let mut resp = match &done.return_to {
        Some(url) => {
            let mut url = url.clone();
            url.query_pairs_mut()
                .append_pair("connection_id", &done.connection.id.to_string())
                .append_pair("status", "connected");
            HttpResponse::Found().insert_header((header::LOCATION, url.as_str())).finish()
        }
        None => {
            let c = &done.connection;
            let base = state.engine.settings().public_url.as_str().trim_end_matches('/').to_owned();
            let snippet =
                format!("curl -H \"Authorization: Bearer $TETHER_API_KEY\" \\\n  {base}/v1/connections/{}/token", c.id);
            html(
                StatusCode::OK,
                &MessagePage {
                    heading: if done.created { "Account connected" } else { "Account reconnected" },
                    tone: "ok",
                    message: "You can close this window and go back to the application.",
                    details: vec![
                        ("Provider", c.provider.to_string()),
                        ("Account", format!("{} ({})", c.account.name.as_deref().unwrap_or("-"), c.account.id)),
                        ("Owner", c.owner.to_string()),
                        ("Connection id", c.id.to_string()),
                        ("Scopes", c.scopes.join(" ")),
                    ],
                    code: None,
                    snippet: Some(snippet),
                },
            )
        }
    };
    if let Some(c) = removal {
        let _ = resp.add_cookie(&c);
    }
    Ok(resp)
}
