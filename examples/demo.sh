#!/usr/bin/env bash
# Install jobd into .venv and run the demo deployment (examples/jobd.toml) on
# the embedded SQLite store: starts a master with four daemons (mailing, reports, cron, sms), submits a
# few jobs, and shows what they do. Leaves the master running; stop it with
#   .venv/bin/jobd stop -c examples/jobd.toml
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

if [[ "${JOBD_DEMO_SKIP_INSTALL:-}" != 1 ]]; then
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
fi
jobd="${JOBD_DEMO_JOBD:-$repo/.venv/bin/jobd}"
export JOBD_CONFIG="$repo/examples/jobd.toml"

"$jobd" check
if "$jobd" status --json | grep -q '"running": true'; then
    echo "the demo master is already running"
else
    "$jobd" start
fi

echo
echo "submitting demo jobs:"
campaign=$("$jobd" trigger mailing mailing.send_campaign --arg campaign_id=42 --arg contacts=5000)
echo "  mailing campaign 42 -> job $campaign"
report=$("$jobd" trigger reports reports.build_daily --arg kind=sales)
echo "  daily sales report  -> job $report"
for n in 1 2 3; do
    sms=$("$jobd" trigger sms sms.send --arg to=+4860010020$n --arg text="Your order shipped" --arg failure_rate=0.3)
    echo "  SMS $n               -> job $sms"
done

echo
echo "waiting for the SMS and the report to finish..."
"$jobd" trigger sms sms.send --arg to=+48600100299 --arg text=done --wait >/dev/null
sleep 4
"$jobd" status
"$jobd" jobs --limit 10
echo
echo "the mailing campaign checkpoints as it goes: kill -9 the master and start it again,"
echo "and it resumes where it stopped. Look at one job with:  $jobd job $campaign"
echo "watch it live:  $jobd top -c examples/jobd.toml     (q quits)"
echo "its schedule:   $jobd schedules -c examples/jobd.toml"
echo "the master keeps running; stop it with:  $jobd stop -c examples/jobd.toml"
