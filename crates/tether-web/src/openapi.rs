//! The OpenAPI 3.1 document of the v1 API, generated from the served routes.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder};
use utoipa_actix_web::OpenApiFactory;

/// The document (built once).
pub fn openapi() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let v1 = crate::api::scope();
        let mut schemas = Vec::new();
        v1.schemas(&mut schemas);
        let mut components = ComponentsBuilder::new().security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `api_keys`, as `Authorization: Bearer <key>`"))
                    .build(),
            ),
        );
        for (name, schema) in schemas {
            components = components.schema(name, schema);
        }
        OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("Tether API")
                    .version("1")
                    .description(Some(
                        "Connect links, connections and always-fresh tokens. Errors are `{\"error\": {\"code\", \"message\"}}`.",
                    ))
                    .build(),
            )
            .paths(v1.paths())
            .components(Some(components.build()))
            .build()
    })
}

pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(openapi())
}
