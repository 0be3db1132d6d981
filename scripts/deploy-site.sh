#!/usr/bin/env bash
# Uploads the built web app (frontend/dist) with the deployment's config.json to the site bucket,
# then invalidates CloudFront.
#   scripts/deploy-site.sh STACK_NAME            reads bucket, config and distribution from the stack outputs
#   SITE_BUCKET=... SITE_CONFIG_JSON='{...}' [SITE_DISTRIBUTION_ID=...] scripts/deploy-site.sh
# Uses the AWS CLI (`aws`), which honours AWS_ENDPOINT_URL (LocalStack in the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ge 1 ]; then
  out() { aws cloudformation describe-stacks --stack-name "$1" --query "Stacks[0].Outputs[?OutputKey=='$2'].OutputValue" --output text; }
  SITE_BUCKET="$(out "$1" SiteBucketName)"
  SITE_CONFIG_JSON="$(out "$1" SiteConfigJson)"
  SITE_DISTRIBUTION_ID="$(out "$1" SiteDistributionId)"
fi
: "${SITE_BUCKET:?}" "${SITE_CONFIG_JSON:?}"
[ -f frontend/dist/index.html ] || { echo "build the web app first: scripts/build-frontend.sh" >&2; exit 1; }

printf '%s\n' "$SITE_CONFIG_JSON" > frontend/dist/config.json
echo "==> uploading frontend/dist to s3://$SITE_BUCKET"
aws s3 sync frontend/dist "s3://$SITE_BUCKET" --delete --only-show-errors
if [ -n "${SITE_DISTRIBUTION_ID:-}" ]; then
  echo "==> invalidating CloudFront distribution $SITE_DISTRIBUTION_ID"
  aws cloudfront create-invalidation --distribution-id "$SITE_DISTRIBUTION_ID" --paths '/*' >/dev/null
fi
