//! Waking the worker once a reply request is on the stream.

use chat_core::Store;

/// How the message function wakes the worker.
#[derive(Clone, Debug)]
pub enum WorkerTrigger {
    /// A long-running worker daemon blocks on the stream and needs no wake-up (local runs,
    /// self-hosted workers).
    StreamReaders,
    /// Invoke the worker Lambda asynchronously (InvocationType `Event`).
    #[cfg(feature = "aws")]
    Lambda {
        /// The AWS Lambda client.
        client: aws_sdk_lambda::Client,
        /// The worker function's name or ARN.
        function_name: String,
    },
}

impl WorkerTrigger {
    /// `Lambda` when `WORKER_FUNCTION_NAME` is set, `StreamReaders` otherwise.
    #[cfg(feature = "aws")]
    pub async fn from_config(config: &chat_core::Config) -> Self {
        match &config.worker_function_name {
            Some(function_name) => {
                let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                WorkerTrigger::Lambda {
                    client: aws_sdk_lambda::Client::new(&sdk),
                    function_name: function_name.clone(),
                }
            }
            None => WorkerTrigger::StreamReaders,
        }
    }

    /// Wakes the worker, unless a running invocation has a free slot (its lease in Redis says
    /// so): a thousand questions at once wake a few invocations, not a thousand. A failure is
    /// logged, not returned: the request is safely on the stream and the worker's one-minute
    /// schedule drains it anyway.
    #[cfg_attr(not(feature = "aws"), allow(unused_variables))]
    pub async fn wake(&self, store: &Store) {
        match self {
            WorkerTrigger::StreamReaders => {}
            #[cfg(feature = "aws")]
            WorkerTrigger::Lambda { client, function_name } => invoke(store, client, function_name).await,
        }
    }
}

#[cfg(feature = "aws")]
async fn invoke(store: &Store, client: &aws_sdk_lambda::Client, function_name: &str) {
    match store.wake_needed().await {
        Ok(false) => return,
        Ok(true) => {}
        // Better one invocation too many than a question left to the schedule.
        Err(error) => tracing::warn!(error = %error, "could not read the workers' leases; waking one"),
    }
    let invoked = client
        .invoke()
        .function_name(function_name)
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(&br#"{"source":"ws-message"}"#[..]))
        .send()
        .await;
    if let Err(error) = invoked {
        tracing::warn!(error = %aws_sdk_lambda::error::DisplayErrorContext(&error), "could not invoke the worker");
    }
}
