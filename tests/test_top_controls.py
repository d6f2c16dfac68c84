"""`jobd top`'s keys and counts, without a terminal: the state machine behind the screen."""

from __future__ import annotations

from jobd.activity.view import summarise_daemons
from jobd.cli.top_controls import TopControls


def test_question_mark_toggles_the_keys_help_and_q_quits() -> None:
    controls = TopControls()
    assert controls.on_key("?", []).help_shown
    assert not controls.on_key("?", []).on_key("?", []).help_shown
    assert controls.on_key("q", []).quit and controls.on_key("\x03", []).quit


def test_d_cycles_through_every_daemon_then_back_to_all() -> None:
    names = ["sms", "mailing", "reports"]
    seen = []
    controls = TopControls()
    for _ in range(4):
        controls = controls.on_key("d", names)
        seen.append(controls.daemon)
    assert seen == ["mailing", "reports", "sms", None]
    assert TopControls(daemon="sms").on_key("a", names).daemon is None


def test_s_cycles_the_running_jobs_order_and_jobs_without_the_value_go_last() -> None:
    jobs = [
        {"job_id": 3, "daemon": "b", "elapsed": 5.0, "percent": None},
        {"job_id": 1, "daemon": "a", "elapsed": 50.0, "percent": 10.0},
        {"job_id": 2, "daemon": "c", "elapsed": 1.0, "percent": 90.0},
    ]
    controls = TopControls()
    assert [job["job_id"] for job in controls.sorted_running(jobs)] == [1, 2, 3]
    controls = controls.on_key("s", [])
    assert controls.sort == "elapsed" and [job["job_id"] for job in controls.sorted_running(jobs)] == [1, 3, 2]
    controls = controls.on_key("s", [])
    assert controls.sort == "progress" and [job["job_id"] for job in controls.sorted_running(jobs)] == [2, 1, 3]
    controls = controls.on_key("s", []).on_key("s", [])
    assert controls.sort == "job"
    assert "s sort: job" in controls.footer() and "d daemon: all" in controls.footer()


def test_the_running_count_comes_from_the_same_snapshot_as_the_running_table() -> None:
    snapshot = {"published_at": 1.0, "daemons": {"reports": {"size": 1, "workers": [{"state": "busy"}], "counts": {"running": 0}}}}
    running = [{"job_id": 9, "daemon": "reports"}]
    rows = summarise_daemons([snapshot], ["reports"], {}, {}, running)
    assert rows["reports"]["running"] == 1  # the store's count, cached seconds ago, said 0


def test_keys_read_together_are_each_handed_out_in_turn() -> None:
    import os

    from jobd.cli.terminal import KeyReader

    read_end, write_end = os.pipe()
    try:
        reader = KeyReader()
        reader.fd = read_end  # a pipe stands in for the tty: the reader only reads
        os.write(write_end, b"?d")  # typed fast, arriving in one read
        assert [reader.read(1.0), reader.read(1.0), reader.read(0.01)] == ["?", "d", None]
    finally:
        os.close(read_end)
        os.close(write_end)
