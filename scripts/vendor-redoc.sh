#!/usr/bin/env bash
# Vendor Redoc's standalone bundle (npm package `redoc`, MIT) into services/api/reference/ for the api's /docs page.
# Run by hand to upgrade (needs npm); the result is committed, so neither installs nor the page need the internet.
# Two edits make the page load nothing from elsewhere: the sidebar's vendor logo (fetched from Redocly's CDN)
# becomes an empty data: image, which Redoc's own error handler hides; and the source-map comment goes.
set -euo pipefail

VERSION=${REDOC_VERSION:-2.5.4}
cd "$(dirname "$0")/.."
DEST=services/api/reference
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

(cd "$WORK" && npm pack --silent "redoc@$VERSION" >/dev/null && tar xzf "redoc-$VERSION.tgz")
BUNDLE=$WORK/package/bundles/redoc.standalone.js
grep -q 'https://cdn.redoc.ly/redoc/logo-mini.svg' "$BUNDLE" || {
    echo "vendor-redoc: the logo URL moved in redoc $VERSION: check the bundle for outside URLs" >&2
    exit 1
}
sed -e 's#https://cdn.redoc.ly/redoc/logo-mini.svg#data:,#' -e '/^\/\/# sourceMappingURL=/d' "$BUNDLE" >"$DEST/redoc.standalone.js"
cp "$WORK/package/LICENSE" "$DEST/redoc.LICENSE"
cp "$WORK/package/bundles/redoc.standalone.js.LICENSE.txt" "$DEST/redoc.standalone.js.LICENSE.txt"
echo "redoc $VERSION" >"$DEST/redoc.VERSION"
echo "vendor-redoc: redoc $VERSION in $DEST"
