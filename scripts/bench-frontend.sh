#!/usr/bin/env bash
# The web app's figures: gzipped size of what the browser downloads, time from navigation to an
# interactive page, time to render a restored conversation of 1,000 messages (Chromium), and
# Lighthouse's performance, accessibility and best-practices scores with its mobile and desktop
# presets.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-frontend.sh >/dev/null
source scripts/setup.sh
source scripts/install-node-tools.sh lighthouse

wasm=0; js=0; css=0
for f in frontend/dist/*.wasm; do wasm=$((wasm + $(gzip -9c "$f" | wc -c))); done
for f in frontend/dist/*.js; do js=$((js + $(gzip -9c "$f" | wc -c))); done
for f in frontend/dist/*.css; do css=$((css + $(gzip -9c "$f" | wc -c))); done
total=$((wasm + js + css))

say "measuring in headless Chromium (median of 5 page loads)"
line="$(cargo test --locked -p chat-local --test browser -- --ignored bench_frontend --nocapture 2>/dev/null | grep '^FRONTEND_BENCH ' | cut -d' ' -f2-)"
mkdir -p target
python3 - "$wasm" "$js" "$css" "$total" "$line" <<'PY'
import json, sys
wasm, js, css, total = (int(x) for x in sys.argv[1:5])
figures = json.loads(sys.argv[5])
figures.update({"gzip_wasm_bytes": wasm, "gzip_js_bytes": js, "gzip_css_bytes": css, "gzip_total_bytes": total})
print(f"{'gzipped wasm + JS + CSS':<44} {total/1024:8.1f} KB  (wasm {wasm/1024:.1f}, JS {js/1024:.1f}, CSS {css/1024:.1f}; target <= 250 KB)")
print(f"{'navigation to interactive':<44} {figures['navigation_to_interactive_ms']:8.1f} ms")
print(f"{'navigation to interactive, 1,000 messages':<44} {figures['navigation_to_interactive_with_1000_messages_ms']:8.1f} ms")
print(f"{'render 1,000 restored messages':<44} {figures['render_1000_restored_messages_ms']:8.1f} ms  (target <= 100 ms)")
for preset, scores in figures.get("lighthouse", {}).items():
    line = ", ".join(f"{k.replace('_', ' ')} {v:.0f}" for k, v in scores.items() if k != "largest_contentful_paint_ms")
    print(f"{'Lighthouse, ' + preset + ' preset':<44} {line}  (target >= 95 each; LCP {scores['largest_contentful_paint_ms']:.0f} ms)")
json.dump(figures, open("target/bench-frontend.json", "w"), indent=2)
print("figures written to target/bench-frontend.json")
PY
