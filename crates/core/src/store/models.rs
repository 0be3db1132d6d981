//! The models the provider serves, as a worker last listed them: a cache the functions read when
//! they offer a conversation its models.

use redis::AsyncCommands;

use super::{keys, Store, StoreError};

impl Store {
    /// Records the models the provider serves, for an hour (workers list them as they start).
    pub async fn record_provider_models(&self, models: &[String]) -> Result<(), StoreError> {
        let json = serde_json::to_string(models).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.connection().await?;
        let () = conn.set_ex(keys::PROVIDER_MODELS, json, 3600).await?;
        Ok(())
    }

    /// The models the provider serves, as a worker last listed them; `None` when none has lately.
    pub async fn provider_models(&self) -> Result<Option<Vec<String>>, StoreError> {
        let mut conn = self.connection().await?;
        let json: Option<String> = conn.get(keys::PROVIDER_MODELS).await?;
        Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
    }
}
