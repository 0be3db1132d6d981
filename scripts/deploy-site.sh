#!/usr/bin/env bash
# Uploads the built web app (frontend/dist) with the deployment's config.json to the site bucket,
# then invalidates CloudFront.
#   scripts/deploy-site.sh STACK_NAME            reads bucket, config and distribution from the stack outputs
#   SITE_BUCKET=... SITE_CONFIG_JSON='{...}' [SITE_DISTRIBUTION_ID=...] scripts/deploy-site.sh
# Uses the AWS CLI (`aws`), which honours AWS_ENDPOINT_URL (LocalStack in the tests).
#
# The order keeps every visitor working during the upload: first the hashed assets (their names
# change with their content, so they are cached for a year), then index.html and config.json
# (revalidated on every load), and only then the assets no current index.html names are removed.
# A browser holding the old index.html still finds the old assets until the very end.
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

config="$(mktemp)"
trap 'rm -f "$config"' EXIT
printf '%s\n' "$SITE_CONFIG_JSON" > "$config"
# Files whose names do not change with their content: revalidated on every load, not cached.
# (The .gz and .br copies are the local site's: CloudFront compresses on its own.)
entry_points=(--exclude index.html --exclude config.json --exclude manifest.webmanifest --exclude favicon.ico --exclude '*.gz' --exclude '*.br')

echo "==> 1/3 hashed assets to s3://$SITE_BUCKET (cached for a year)"
aws s3 sync frontend/dist "s3://$SITE_BUCKET" "${entry_points[@]}" \
  --cache-control "public, max-age=31536000, immutable" --only-show-errors
echo "==> 2/3 index.html, config.json, the manifest and the favicon (revalidated on every load)"
aws s3 cp frontend/dist/index.html "s3://$SITE_BUCKET/index.html" \
  --cache-control no-cache --content-type "text/html; charset=utf-8" --only-show-errors
aws s3 cp "$config" "s3://$SITE_BUCKET/config.json" \
  --cache-control no-cache --content-type application/json --only-show-errors
aws s3 cp frontend/dist/manifest.webmanifest "s3://$SITE_BUCKET/manifest.webmanifest" \
  --cache-control no-cache --content-type application/manifest+json --only-show-errors
aws s3 cp frontend/dist/favicon.ico "s3://$SITE_BUCKET/favicon.ico" \
  --cache-control no-cache --content-type image/x-icon --only-show-errors
echo "==> 3/3 removing assets the new index.html no longer names"
aws s3 sync frontend/dist "s3://$SITE_BUCKET" "${entry_points[@]}" --delete --only-show-errors
if [ -n "${SITE_DISTRIBUTION_ID:-}" ]; then
  echo "==> invalidating CloudFront distribution $SITE_DISTRIBUTION_ID"
  aws cloudfront create-invalidation --distribution-id "$SITE_DISTRIBUTION_ID" --paths '/' '/index.html' '/config.json' >/dev/null
fi
