//! Secrets read the production way: the Redis URL and the OpenAI key live in AWS Secrets Manager,
//! named by ARN in the environment, fetched once per cold start and kept in the [`Config`].
//!
//! The AWS SDK honours `AWS_ENDPOINT_URL`, so LocalStack stands in for Secrets Manager in tests.
//! A build without the `aws` feature (the local runner) refuses a secret's ARN with a clear error.

use crate::config::{Config, ConfigError};

impl Config {
    /// [`Config::from_env`], then the secrets it names (`REDIS_URL_SECRET_ARN`,
    /// `OPENAI_API_KEY_SECRET_ARN`) from Secrets Manager. Without those variables no AWS call
    /// is made.
    pub async fn load() -> Result<Config, ConfigError> {
        let mut config = Config::from_env()?;
        config.resolve_secrets().await?;
        Ok(config)
    }

    /// Replaces the Redis URL and the OpenAI key with the values of the secrets named in the
    /// configuration, if any.
    pub async fn resolve_secrets(&mut self) -> Result<(), ConfigError> {
        if self.secrets.redis_url.is_none() && self.secrets.openai_api_key.is_none() {
            return Ok(());
        }
        read_secrets(self).await
    }
}

#[cfg(feature = "aws")]
async fn read_secrets(config: &mut Config) -> Result<(), ConfigError> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    if let Some(arn) = &config.secrets.redis_url {
        config.redis_url = fetch(&client, "REDIS_URL_SECRET_ARN", arn).await?.into();
    }
    if let Some(arn) = &config.secrets.openai_api_key {
        config.model.api_key = Some(fetch(&client, "OPENAI_API_KEY_SECRET_ARN", arn).await?.into());
    }
    Ok(())
}

/// Without the SDK: the first secret named is refused.
#[cfg(not(feature = "aws"))]
async fn read_secrets(config: &mut Config) -> Result<(), ConfigError> {
    let (name, arn) = match (&config.secrets.redis_url, &config.secrets.openai_api_key) {
        (Some(arn), _) => ("REDIS_URL_SECRET_ARN", arn),
        (None, Some(arn)) => ("OPENAI_API_KEY_SECRET_ARN", arn),
        (None, None) => return Ok(()),
    };
    let reason = "this build has no AWS SDK (chat-core's `aws` feature): set the value itself".to_string();
    Err(ConfigError { name, value: arn.to_string(), reason })
}

#[cfg(feature = "aws")]
async fn fetch(client: &aws_sdk_secretsmanager::Client, name: &'static str, arn: &str) -> Result<String, ConfigError> {
    let failed = |reason: String| ConfigError { name, value: arn.to_string(), reason };
    let secret = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| failed(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()))?;
    secret
        .secret_string()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| failed("the secret has no string value".into()))
}
