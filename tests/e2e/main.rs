//! End-to-end tests: the real server, real databases (SQLite always; PostgreSQL and MariaDB when
//! `TETHER_TEST_POSTGRES_URL` / `TETHER_TEST_MYSQL_URL` are set), loopback mock providers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod admin_browser;
mod admin_http;
mod api_errors;
mod cli;
mod connect_flow;
mod flow_rejections;
mod generic_gitlab;
mod generic_keycloak;
mod github;
mod lifecycle;
mod openapi;
mod providers_bluesky;
mod providers_discord;
mod providers_dropbox;
mod providers_facebook;
mod providers_google;
mod providers_instagram;
mod providers_linkedin;
mod providers_mastodon;
mod providers_microsoft;
mod providers_notion;
mod providers_pinterest;
mod providers_reddit;
mod providers_slack;
mod providers_spotify;
mod providers_threads;
mod providers_tiktok;
mod providers_twitch;
mod providers_zoom;
mod proxy;
mod replicas;
mod security;
mod self_hosted_mock;
mod token_cache;
mod twitter;
mod webhooks;
