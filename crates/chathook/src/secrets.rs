//! Where the secrets key comes from (it seals webhook secrets and keys users' token hashes, see
//! `chathook_store::sealing`): the `secrets.key` setting, else the file `data_dir/secrets.key`, which
//! the embedded store generates on first start (mode 0600, apart from the database). Several nodes on
//! PostgreSQL must share one key, so there the key is never generated: it is set, or the same file is
//! laid on every node. The key is never logged; only its fingerprint is.

use std::path::Path;

use anyhow::Context;
use chathook_store::sealing::Sealer;

use crate::config::{Backend, Config};

/// File in the data dir that holds the secrets key.
pub const SECRETS_KEY_FILE: &str = "secrets.key";

/// The sealer from the configured key, the stored one, or (embedded store only) a new one.
pub fn resolve(config: &Config) -> anyhow::Result<Sealer> {
    let previous = &config.secrets.previous_keys;
    if let Some(key) = &config.secrets.key {
        return Sealer::from_base64(key, previous).context("secrets.key");
    }
    let path = config.data_dir.join(SECRETS_KEY_FILE);
    if path.exists() {
        let key = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return Sealer::from_base64(&key, previous).with_context(|| path.display().to_string());
    }
    anyhow::ensure!(
        config.storage.backend == Backend::Sqlite,
        "secrets.key: several nodes share the database, so they need one secrets key: set secrets.key \
         (32 bytes of base64, e.g. `openssl rand -base64 32`) or lay the same {} in every node's data dir",
        SECRETS_KEY_FILE
    );
    let key = Sealer::generate_key();
    generate(&config.data_dir, &key)?;
    tracing::info!(path = %path.display(), "generated the secrets key; keep it apart from backups of the database");
    Sealer::from_base64(&key, previous).context("the generated secrets key")
}

fn generate(dir: &Path, key: &str) -> anyhow::Result<()> {
    crate::data_dir::create(dir)?;
    crate::auth::write_private(&dir.join(SECRETS_KEY_FILE), key)
        .with_context(|| format!("cannot write {}", dir.join(SECRETS_KEY_FILE).display()))
}
