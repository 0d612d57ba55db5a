//! `cargo xtask new-provider NAME`: writes a provider crate that compiles, registers itself and
//! passes its tests as generated, so a contributor starts from green and changes only what the
//! provider does differently.
//!
//! Files (from the templates in `xtask/templates/provider/`):
//! - `crates/providers/NAME/Cargo.toml`
//! - `crates/providers/NAME/src/lib.rs`: `SPEC`, the provider type, `register_provider!`
//! - `crates/providers/NAME/tests/flow.rs`: the whole flow against the testkit's loopback mock
//! - `docs/providers/NAME.md`
//!
//! The crate joins the workspace through the `crates/providers/*` member glob. Wiring it into the
//! `tether` facade (a cargo feature) is left to the contributor: the command prints the lines.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Longest accepted NAME; crate names and config keys stay readable.
const MAX_NAME_LEN: usize = 40;

const CARGO_TOML: &str = include_str!("../templates/provider/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../templates/provider/lib.rs.tmpl");
const FLOW_RS: &str = include_str!("../templates/provider/flow.rs.tmpl");
const DOC_MD: &str = include_str!("../templates/provider/provider.md.tmpl");

/// Every spelling of a provider name the templates need.
#[derive(Debug, PartialEq, Eq)]
struct Names {
    /// As typed: `acme-sso` (directory, docs page).
    name: String,
    /// Provider id and configuration table: `acme_sso` (environment variables cannot hold `-`).
    id: String,
    /// Package: `tether-provider-acme-sso`.
    krate: String,
    /// Library as a Rust path: `tether_provider_acme_sso`.
    ident: String,
    /// Provider type: `AcmeSsoProvider`.
    type_name: String,
    /// For people: `Acme Sso`.
    display: String,
    /// Environment-variable segment: `ACME_SSO`.
    env: String,
}

impl Names {
    /// Checks NAME (lowercase `a-z`, `0-9` and single inner `-`, starting with a letter) and
    /// derives the other spellings.
    fn new(name: &str) -> anyhow::Result<Self> {
        let valid_chars = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let starts_with_letter = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        if !valid_chars
            || !starts_with_letter
            || name.ends_with('-')
            || name.contains("--")
            || name.len() > MAX_NAME_LEN
        {
            bail!(
                "invalid provider name `{}`: use 1-{MAX_NAME_LEN} characters of a-z, 0-9 and `-`, starting with a \
                 letter, without a trailing or doubled `-` (for example `acme` or `acme-sso`)",
                name.escape_debug()
            );
        }
        let words: Vec<&str> = name.split('-').collect();
        let capitalized: Vec<String> = words
            .iter()
            .map(|w| {
                let mut chars = w.chars();
                chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
            })
            .collect();
        let id = words.join("_");
        Ok(Self {
            name: name.to_owned(),
            krate: format!("tether-provider-{name}"),
            ident: format!("tether_provider_{id}"),
            type_name: format!("{}Provider", capitalized.concat()),
            display: capitalized.join(" "),
            env: id.to_ascii_uppercase(),
            id,
        })
    }

    fn render(&self, template: &str) -> String {
        template
            .replace("{{name}}", &self.name)
            .replace("{{id}}", &self.id)
            .replace("{{crate}}", &self.krate)
            .replace("{{ident}}", &self.ident)
            .replace("{{type}}", &self.type_name)
            .replace("{{display}}", &self.display)
            .replace("{{env}}", &self.env)
    }

    /// The files to write, relative to the workspace root.
    fn files(&self) -> Vec<(PathBuf, String)> {
        let dir = Path::new("crates").join("providers").join(&self.name);
        vec![
            (dir.join("Cargo.toml"), self.render(CARGO_TOML)),
            (dir.join("src").join("lib.rs"), self.render(LIB_RS)),
            (dir.join("tests").join("flow.rs"), self.render(FLOW_RS)),
            (Path::new("docs").join("providers").join(format!("{}.md", self.name)), self.render(DOC_MD)),
        ]
    }
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Refuses a NAME whose directory, docs page, package name or provider id is taken.
fn check_free(root: &Path, names: &Names) -> anyhow::Result<()> {
    for (path, _) in names.files() {
        if root.join(&path).exists() {
            bail!("{} already exists: pick another name (or delete it first)", path.display());
        }
    }
    for dir in ["crates/providers", "crates", "examples"] {
        let Ok(entries) = fs::read_dir(root.join(dir)) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(manifest) = fs::read_to_string(path.join("Cargo.toml"))
                && manifest.lines().any(|l| l.trim() == format!("name = \"{}\"", names.krate))
            {
                bail!("the workspace already has a package `{}` ({})", names.krate, path.display());
            }
            for source in rust_files(&path.join("src")) {
                let text = fs::read_to_string(&source).unwrap_or_default();
                for constructor in ["ProviderSpec::oauth2(\"", "ProviderSpec::oauth1(\""] {
                    if text.contains(&format!("{constructor}{}\"", names.id)) {
                        bail!("the provider id `{}` is taken by {}", names.id, source.display());
                    }
                }
            }
        }
    }
    Ok(())
}

/// `.rs` files directly in `dir` (provider crates keep their spec in `src/`).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "rs")).collect()
        })
        .unwrap_or_default()
}

/// `cargo xtask new-provider NAME`.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let [name] = args else {
        bail!("usage: cargo xtask new-provider NAME (lowercase a-z, 0-9 and `-`, for example `acme`)");
    };
    let names = Names::new(name)?;
    let root = workspace_root();
    check_free(&root, &names)?;
    for (path, text) in names.files() {
        let full = root.join(&path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&full, text).with_context(|| format!("cannot write {}", full.display()))?;
        println!("created {}", path.display());
    }
    // Long names can change how rustfmt wraps the templates' lines; keep `cargo fmt --check` green.
    if let Err(e) = crate::cargo(&["fmt", "-p", &names.krate], &[]) {
        eprintln!("warning: {e:#}; run `cargo fmt --all` before committing");
    }
    println!("{}", next_steps(&names));
    Ok(())
}

fn next_steps(n: &Names) -> String {
    format!(
        r#"
Provider `{id}` created. It is registered and tested already:

    cargo test -p {krate}

Next:
1. Put the provider's real endpoints, scopes, PKCE and client-authentication modes in `SPEC`
   (crates/providers/{name}/src/lib.rs), override only its quirks, and fill in
   docs/providers/{name}.md. docs/writing-a-provider.md explains each part.
2. Ship it in the `tether` binary behind a cargo feature:
   - Cargo.toml, [workspace.dependencies]:
         {krate} = {{ path = "crates/providers/{name}" }}
   - crates/tether/Cargo.toml: add "{id}" to `default`, then
         {id} = ["dep:{krate}"]
         {krate} = {{ workspace = true, optional = true }}
   - crates/tether/src/lib.rs (this reference is what makes the linker keep the registration):
         #[cfg(feature = "{id}")]
         pub use {ident} as {id};
     and `{id}::SPEC.id` in `builtin_provider_ids()`.
3. Add a row to the README's provider table."#,
        id = n.id,
        name = n.name,
        krate = n.krate,
        ident = n.ident,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn names_derive_every_spelling() {
        let n = Names::new("acme-sso2").unwrap();
        assert_eq!(n.id, "acme_sso2");
        assert_eq!(n.krate, "tether-provider-acme-sso2");
        assert_eq!(n.ident, "tether_provider_acme_sso2");
        assert_eq!(n.type_name, "AcmeSso2Provider");
        assert_eq!(n.display, "Acme Sso2");
        assert_eq!(n.env, "ACME_SSO2");
    }

    #[test]
    fn bad_names_are_refused_with_the_rule() {
        for bad in ["", "Acme", "acme_sso", "-acme", "acme-", "acme--sso", "9acme", "acme sso", "acmé", &"a".repeat(41)]
        {
            let e = Names::new(bad).unwrap_err().to_string();
            assert!(e.contains("a-z, 0-9 and `-`"), "{bad:?}: {e}");
        }
        assert!(Names::new("a").is_ok());
    }

    #[test]
    fn templates_render_completely_into_a_valid_manifest() {
        let n = Names::new("sample-idp").unwrap();
        for (path, text) in n.files() {
            assert!(!text.contains("{{") && !text.contains("}}"), "{} has a leftover placeholder", path.display());
        }
        let files = n.files();
        let manifest: toml::Table = toml::from_str(&files[0].1).unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some("tether-provider-sample-idp"));
        assert_eq!(manifest["dependencies"]["tether-core"]["workspace"].as_bool(), Some(true));
        for dev in ["tether-store", "tether-testkit", "tokio"] {
            assert!(manifest["dev-dependencies"].get(dev).is_some(), "dev-dependency {dev}");
        }
        let lib = &files[1].1;
        assert!(lib.contains("ProviderSpec::oauth2(\"sample_idp\", \"Sample Idp\")"), "{lib}");
        assert!(lib.contains("pub struct SampleIdpProvider;"), "{lib}");
        assert!(lib.contains("tether_core::register_provider!(SampleIdpProvider);"), "{lib}");
        assert!(files[2].1.contains("use tether_provider_sample_idp::SPEC;"));
        assert!(files[3].1.contains("[providers.sample_idp]") && files[3].1.contains("TETHER_PROVIDERS__SAMPLE_IDP__"));
        assert_eq!(files[3].0, Path::new("docs/providers/sample-idp.md"));
    }

    #[test]
    fn taken_names_and_ids_are_refused() {
        let root = workspace_root();
        let e = check_free(&root, &Names::new("github").unwrap()).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        // `twitter_oauth1` is registered by the twitter crate.
        let e = check_free(&root, &Names::new("twitter-oauth1").unwrap()).unwrap_err().to_string();
        assert!(e.contains("provider id `twitter_oauth1` is taken"), "{e}");
        check_free(&root, &Names::new("sample-idp").unwrap()).unwrap();
    }

    #[test]
    fn next_steps_name_the_facade_lines() {
        let steps = next_steps(&Names::new("acme-sso").unwrap());
        assert!(steps.contains("cargo test -p tether-provider-acme-sso"));
        assert!(steps.contains("pub use tether_provider_acme_sso as acme_sso;"));
        assert!(steps.contains(r#"tether-provider-acme-sso = { path = "crates/providers/acme-sso" }"#));
    }
}
