#!/usr/bin/env bash
# Creates in LocalStack what the functions read in production and what the site deploy needs:
# the secrets chatbot/redis-url (value: $REDIS_URL) and chatbot/openai-key (value:
# $OPENAI_API_KEY), and the bucket chatbot-site.
# Idempotent. Prints the secrets' ARNs as shell assignments.
set -euo pipefail
: "${REDIS_URL:?set REDIS_URL to the Redis URL the functions should read}"
: "${OPENAI_API_KEY:?set OPENAI_API_KEY to the key the worker should read}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
aws=("$HOME/.cache/chatbot/localstack-venv/bin/aws" --endpoint-url http://127.0.0.1:4566 --output text)

secret() {
  local name="$1" value="$2"
  if "${aws[@]}" secretsmanager describe-secret --secret-id "$name" >/dev/null 2>&1; then
    "${aws[@]}" secretsmanager put-secret-value --secret-id "$name" --secret-string "$value" >/dev/null
  else
    "${aws[@]}" secretsmanager create-secret --name "$name" --secret-string "$value" >/dev/null
  fi
  "${aws[@]}" secretsmanager describe-secret --secret-id "$name" --query ARN
}

echo "REDIS_URL_SECRET_ARN=$(secret chatbot/redis-url "$REDIS_URL")"
echo "OPENAI_API_KEY_SECRET_ARN=$(secret chatbot/openai-key "$OPENAI_API_KEY")"
"${aws[@]}" s3api head-bucket --bucket chatbot-site >/dev/null 2>&1 || "${aws[@]}" s3 mb s3://chatbot-site >/dev/null
echo "SITE_BUCKET=chatbot-site"
