"""Migrating off cron with a real master: an imported crontab line behaves as it did under cron."""

from __future__ import annotations

import os
import re

import pytest
import sqlalchemy as sa

from support import Deployment, wait_until

SYSTEM_CRONTAB = """\
SHELL=/bin/bash
MAILTO=""
30 2 * * * nobody echo "as $(id -un) in ${BASH_VERSION:+bash}" >&2; echo 'invoice 17 failed' >&2; exit 2
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="running a command as another user needs a root master")
def test_an_imported_failing_system_crontab_line_runs_once_as_its_user_and_fails_with_its_output(deployment: Deployment) -> None:
    deployment.write_config({"cron": {"workers": 1}})  # the daemon's max_attempts stays at its default (3)
    crontab = deployment.root / "app.cron"
    crontab.write_text(SYSTEM_CRONTAB)
    (deployment.root / "schedules").mkdir()
    target = deployment.root / "schedules" / "cron.toml"
    imported = deployment.jobd("import-crontab", str(crontab), "--system", "--daemon", "cron", "-o", str(target))
    assert imported.returncode == 0, imported.stderr
    assert imported.stderr == ""  # SHELL is honoured and MAILTO="" means no mail: nothing to report
    text = target.read_text()
    assert 'shell.user = "nobody"' in text and 'shell.interpreter = "/bin/bash"' in text and "max_attempts = 1" in text
    # The imported line fires at 02:30; tick every second instead so the test need not wait for it.
    target.write_text(re.sub(r'^cron = .*$', 'every = "1s"', text, flags=re.MULTILINE))
    deployment.start_master()

    def first_job() -> int | None:
        jobs = deployment.store.tables["jobs"]
        with deployment.store.engine.connect() as connection:
            return connection.execute(sa.select(sa.func.min(jobs.c.id)).where(jobs.c.origin == "schedule")).scalar()

    job_id = wait_until(first_job, timeout=20, message="the imported entry to fire")
    deployment.wait_all_final([job_id], timeout=30)
    job = deployment.store.jobs.get(job_id)
    assert str(job.state) == "dead", "cron ran a failing command once: so does the imported entry"
    assert job.attempts == 1
    assert job.error == "command exited with code 2: as nobody in bash\ninvoice 17 failed"
    assert job.traceback is None
    assert "Traceback" not in (deployment.root / "jobd.log").read_text()
