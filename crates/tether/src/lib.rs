//! Tether: keeps an application connected to its users' accounts on other platforms.
//!
//! This facade re-exports [`tether_core`] and links the built-in providers selected with cargo
//! features (all of them by default). Linking matters: providers register themselves with
//! `inventory`, which only sees crates the final binary references, so each enabled provider
//! crate is referenced here.
//!
//! ```
//! let registry = tether::ProviderRegistry::collect().unwrap();
//! assert!(registry.get("github").is_some());
//! ```

pub use tether_core::*;

#[cfg(feature = "bluesky")]
pub use tether_provider_bluesky as bluesky;
#[cfg(feature = "demo")]
pub use tether_provider_demo as demo;
#[cfg(feature = "discord")]
pub use tether_provider_discord as discord;
#[cfg(feature = "dropbox")]
pub use tether_provider_dropbox as dropbox;
#[cfg(feature = "facebook")]
pub use tether_provider_facebook as facebook;
#[cfg(feature = "generic")]
pub use tether_provider_generic as generic;
#[cfg(feature = "github")]
pub use tether_provider_github as github;
#[cfg(feature = "google")]
pub use tether_provider_google as google;
#[cfg(feature = "instagram")]
pub use tether_provider_instagram as instagram;
#[cfg(feature = "linkedin")]
pub use tether_provider_linkedin as linkedin;
#[cfg(feature = "mastodon")]
pub use tether_provider_mastodon as mastodon;
#[cfg(feature = "microsoft")]
pub use tether_provider_microsoft as microsoft;
#[cfg(feature = "notion")]
pub use tether_provider_notion as notion;
#[cfg(feature = "pinterest")]
pub use tether_provider_pinterest as pinterest;
#[cfg(feature = "reddit")]
pub use tether_provider_reddit as reddit;
#[cfg(feature = "slack")]
pub use tether_provider_slack as slack;
#[cfg(feature = "spotify")]
pub use tether_provider_spotify as spotify;
#[cfg(feature = "threads")]
pub use tether_provider_threads as threads;
#[cfg(feature = "tiktok")]
pub use tether_provider_tiktok as tiktok;
#[cfg(feature = "twitch")]
pub use tether_provider_twitch as twitch;
#[cfg(feature = "twitter")]
pub use tether_provider_twitter as twitter;
#[cfg(feature = "zoom")]
pub use tether_provider_zoom as zoom;

/// Ids of the providers this build links, as enabled by cargo features.
pub fn builtin_provider_ids() -> Vec<&'static str> {
    [
        #[cfg(feature = "bluesky")]
        bluesky::SPEC.id,
        #[cfg(feature = "demo")]
        demo::SPEC.id,
        #[cfg(feature = "discord")]
        discord::SPEC.id,
        #[cfg(feature = "facebook")]
        facebook::SPEC.id,
        #[cfg(feature = "generic")]
        generic::SPEC.id,
        #[cfg(feature = "github")]
        github::SPEC.id,
        #[cfg(feature = "instagram")]
        instagram::SPEC.id,
        #[cfg(feature = "google")]
        google::SPEC.id,
        #[cfg(feature = "notion")]
        notion::SPEC.id,
        #[cfg(feature = "dropbox")]
        dropbox::SPEC.id,
        #[cfg(feature = "microsoft")]
        microsoft::SPEC.id,
        #[cfg(feature = "linkedin")]
        linkedin::SPEC.id,
        #[cfg(feature = "mastodon")]
        mastodon::SPEC.id,
        #[cfg(feature = "pinterest")]
        pinterest::SPEC.id,
        #[cfg(feature = "reddit")]
        reddit::SPEC.id,
        #[cfg(feature = "slack")]
        slack::SPEC.id,
        #[cfg(feature = "spotify")]
        spotify::SPEC.id,
        #[cfg(feature = "twitch")]
        twitch::SPEC.id,
        #[cfg(feature = "threads")]
        threads::SPEC.id,
        #[cfg(feature = "tiktok")]
        tiktok::SPEC.id,
        #[cfg(feature = "twitter")]
        twitter::SPEC.id,
        #[cfg(feature = "twitter")]
        twitter::OAUTH1_SPEC.id,
        #[cfg(feature = "zoom")]
        zoom::SPEC.id,
    ]
    .to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_enabled_provider_is_registered() {
        let registry = crate::ProviderRegistry::collect().unwrap_or_else(|e| panic!("{e}"));
        for id in crate::builtin_provider_ids() {
            assert!(registry.get(id).is_some(), "{id} is enabled but not registered");
        }
    }
}
