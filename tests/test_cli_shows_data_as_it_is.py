"""The CLI shows what jobs hold as it is: a task's error, a batch's name, an unknown task's name.

rich reads ``[bold]`` as a style and refuses ``[/x]`` with an exception, so
one job whose error held such text made every `jobd jobs`, `jobd job` and
`jobd status DAEMON` fail with a traceback. A job's output must never stop
anyone from looking at the others.
"""

from __future__ import annotations

import jobd
from support import Deployment

MARKUP = "[/x] not [bold]markup[/bold] [red"


def test_a_jobs_error_that_looks_like_markup_is_shown_as_it_is_everywhere(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    job_id = jobd.submit("main", "t.chatty_fail", {"marker": MARKUP}, max_attempts=1, config=str(deployment.config_path))
    deployment.wait_all_final([job_id])
    with jobd.batch(f"nightly {MARKUP}", config=str(deployment.config_path)) as batch:
        batch.submit("main", "t.noop")

    error = f"ValueError: boom in {MARKUP}"
    for command in (("jobs",), ("job", str(job_id)), ("status", "main"), ("top", "--once"), ("batch", str(batch.id))):
        completed = deployment.jobd(*command)
        assert completed.returncode == 0, (command, completed.stderr)
        assert "Traceback" not in completed.stderr, command
    assert error in deployment.jobd("job", str(job_id)).stdout
    assert error in deployment.jobd("status", "main").stdout
    assert f"nightly {MARKUP}" in deployment.jobd("batch", str(batch.id)).stdout


def test_an_unknown_task_whose_name_looks_like_markup_is_named_as_it_is(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init", check=True)
    completed = deployment.jobd("trigger", "main", "t[/x]")
    assert completed.returncode == 2, completed.stderr
    assert "error: daemon 'main' has no task 't[/x]'" in completed.stderr
    assert "Traceback" not in completed.stderr
