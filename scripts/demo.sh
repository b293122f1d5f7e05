#!/usr/bin/env bash
# The whole system with demo data, until Ctrl-C: see README.md.
# DEMO_CARRIER=fake: SMS and calls go over the Twilio-compatible REST API to a local fake
# carrier (fakes/twilio.py, on FAKE_CARRIER_PORT or 8700), which sends signed status
# callbacks and fetches each answered call's TwiML, as Twilio does; a tenth of the calls are
# busy and a tenth unanswered. What it was sent: http://127.0.0.1:8700/_fake/records.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh run
if [ "${DEMO_CARRIER:-console}" != fake ]; then
  exec .venv/bin/burgernet run "$@"
fi
port="${FAKE_CARRIER_PORT:-8700}"
.venv/bin/python -m fakes.twilio --port "$port" --busy-rate 0.1 --no-answer-rate 0.1 &
carrier=$!
trap 'kill "$carrier" 2>/dev/null || true' EXIT
# The fake's own account (fakes/twilio.py: ACCOUNT_SID, AUTH_TOKEN); no carrier limit to keep.
export SMS_PROVIDER=twilio VOICE_PROVIDER=twilio TWILIO_BASE_URL="http://127.0.0.1:$port" \
  TWILIO_ACCOUNT_SID=AC00000000000000000000000000000000 TWILIO_AUTH_TOKEN=fake-auth-token \
  TWILIO_FROM="${TWILIO_FROM:-+31690000999}" SMS_RATE="${SMS_RATE:-100}" \
  VOICE_RATE="${VOICE_RATE:-20}"
.venv/bin/burgernet run "$@"
