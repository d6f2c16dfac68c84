"""Pure logic: step files, statement splitting, touched tables, plans, names, settings."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from jobd.errors import ConfigError
from jobd.migrations.errors import MigrationFolderError, UnsafeIdentifier
from jobd.migrations.fleet import order_largest_first, split_canaries
from jobd.migrations.identifiers import quote, validate_tenant_name
from jobd.migrations.plan import AppliedStep, plan_tenant
from jobd.migrations.settings import SnapshotMode, load_migrations_settings
from jobd.migrations.snapshot import SnapshotPlan, choose_tables, snapshot_database_name
from jobd.migrations.steps import order_steps, parse_migration_file, split_statements
from jobd.migrations.tenants import Tenant, tenants_from_rows
from jobd.migrations.touched import Touched, touched_tables


def test_markers_split_a_file_into_tagged_steps_in_order() -> None:
    steps = parse_migration_file("0002_orders.sql", "-- intro\n-- jobd:step a\nSELECT 1;\n-- jobd:step b\nSELECT 2; SELECT 3;\n")
    assert [(step.tag, step.statements) for step in steps] == [("a", ("SELECT 1",)), ("b", ("SELECT 2", "SELECT 3"))]
    assert steps[0].label == "0002_orders.sql:a" and steps[0].version == 2


def test_a_file_without_markers_is_one_step_named_after_it() -> None:
    [step] = parse_migration_file("0007_add_index.sql", "CREATE INDEX i ON t (c);")
    assert step.tag == "add_index"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("7_x.sql", "SELECT 1", "NNNN_name.sql"),
        ("0001_x.sql", "SELECT 1;\n-- jobd:step a\nSELECT 2", "before the first"),
        ("0001_x.sql", "-- jobd:step a\nSELECT 1;\n-- jobd:step a\nSELECT 2", "used twice"),
        ("0001_x.sql", "-- jobd:step Bad-Tag\nSELECT 1", "lowercase"),
        ("0001_x.sql", "-- jobd:step empty\n-- only a comment\n", "has no SQL"),
    ],
)
def test_malformed_files_are_refused_with_file_and_reason(name: str, text: str, message: str) -> None:
    with pytest.raises(MigrationFolderError, match=message):
        parse_migration_file(name, text)


def test_two_files_with_one_version_are_refused() -> None:
    with pytest.raises(MigrationFolderError, match="version 1 is also used"):
        order_steps({"0001_a.sql": "SELECT 1", "0001_b.sql": "SELECT 2"})


def test_semicolons_inside_quotes_and_comments_do_not_split() -> None:
    sql = "INSERT INTO t VALUES ('a;b', \"c;d\", `e;f`); -- x;y\n/* p;q */ UPDATE t SET v = 'it''s;'; # z;\n"
    assert split_statements(sql) == [
        "INSERT INTO t VALUES ('a;b', \"c;d\", `e;f`)",
        "-- x;y\n/* p;q */ UPDATE t SET v = 'it''s;'",
    ]


def test_checksum_ignores_line_endings_and_trailing_spaces_only() -> None:
    [a] = parse_migration_file("0001_x.sql", "SELECT 1;  \n")
    [b] = parse_migration_file("0001_x.sql", "SELECT 1;\r\n")
    [c] = parse_migration_file("0001_x.sql", "SELECT 2;\n")
    assert a.checksum == b.checksum != c.checksum


def test_touched_tables_found_by_sqlglot_and_unknown_statements_say_so() -> None:
    touched = touched_tables([
        "ALTER TABLE contacts ADD COLUMN x INT", "CREATE INDEX i ON orders (x)", "RENAME TABLE a TO b",
        "UPDATE orders o JOIN contacts c ON c.id = o.contact_id SET o.note = c.name", "DO SLEEP(1)",
    ])
    assert touched == Touched(frozenset({"contacts", "orders", "a", "b"}), True)
    assert not touched_tables(["CREATE PROCEDURE p() SELECT 1"]).complete


def test_statements_after_one_not_understood_still_name_their_tables() -> None:
    touched = touched_tables(["CREATE PROCEDURE p() SELECT 1", "CREATE TABLE audit (id INT)", "ALTER TABLE contacts ADD x INT"])
    assert not touched.complete and "not understood" in touched.reason
    assert touched.tables == {"audit", "contacts"}


# sqlglot registers a lazily loaded dialect before it is fully built; made
# slow here so the window is certain, two threads ask for it at once.
_FIRST_USE_FROM_THREADS = """
import threading, time
import sqlglot.dialects.dialect as dialect
build_trie = dialect.new_trie
dialect.new_trie = lambda *args, **kwargs: (time.sleep(0.05), build_trie(*args, **kwargs))[1]
from jobd.migrations.touched import touched_tables
statement = "CREATE TABLE audit_log (id BIGINT NOT NULL PRIMARY KEY, KEY t (id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
results = []
def parse(delay):
    time.sleep(delay)
    results.append(touched_tables([statement]))
threads = [threading.Thread(target=parse, args=(delay,)) for delay in (0, 0.02)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
print(sorted((sorted(result.tables), result.complete) for result in results))
"""


def test_touched_tables_understands_mysql_in_threads_at_their_very_first_use() -> None:
    result = subprocess.run([sys.executable, "-c", _FIRST_USE_FROM_THREADS], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[(['audit_log'], True), (['audit_log'], True)]", result.stdout + result.stderr


def test_a_step_naming_another_database_is_refused() -> None:
    with pytest.raises(MigrationFolderError, match="another database"):
        touched_tables(["ALTER TABLE registry.tenants ADD COLUMN x INT"])


def test_snapshot_covers_touched_tables_plus_tracking_and_the_whole_schema_when_unsure() -> None:
    existing = ["contacts", "orders", "jobd_migrations", "jobd_migration_runs"]
    touched = choose_tables(SnapshotMode.TOUCHED, Touched(frozenset({"contacts", "audit"}), True), existing)
    assert touched.copy == ("contacts", "jobd_migrations") and touched.absent == ("audit",)
    unsure = choose_tables(SnapshotMode.TOUCHED, Touched(frozenset(), False, "not understood"), existing)
    assert unsure.copy == ("contacts", "jobd_migrations", "orders") and "whole schema" in unsure.reason
    assert unsure.whole_schema and not touched.whole_schema
    assert SnapshotPlan.from_json(unsure.as_json()) == SnapshotPlan(unsure.copy, unsure.absent, "", True)
    assert choose_tables(SnapshotMode.NONE, Touched(frozenset({"contacts"}), True), existing).copy == ()
    assert len(snapshot_database_name("x" * 64, "f" * 32)) <= 64


def _applied(file: str, tag: str, checksum: str) -> AppliedStep:
    return AppliedStep(file, tag, checksum, datetime(2024, 1, 1), 5, "0.1.0")


def test_plan_lists_pending_steps_and_blocks_on_edited_or_missing_applied_steps() -> None:
    steps = order_steps({"0001_a.sql": "-- jobd:step one\nSELECT 1;\n-- jobd:step two\nSELECT 2;"})
    clean = plan_tenant(steps, [_applied("0001_a.sql", "one", steps[0].checksum)])
    assert [step.tag for step in clean.pending] == ["two"] and not clean.blocked
    assert clean.current == "0001_a.sql:one"
    edited = plan_tenant(steps, [_applied("0001_a.sql", "one", "0" * 64)])
    assert edited.blocked and edited.drift[0].problem == "changed"
    gone = plan_tenant(steps, [_applied("0000_old.sql", "x", "0" * 64)])
    assert gone.blocked and "no longer in the folder" in gone.drift[0].describe()


@pytest.mark.parametrize("name", ["x; DROP DATABASE y", "a`b", "", "a b", "é", "../etc", "1" * 65])
def test_unsafe_names_are_refused_not_escaped(name: str) -> None:
    with pytest.raises(UnsafeIdentifier):
        quote(name)
    with pytest.raises(UnsafeIdentifier):
        validate_tenant_name(name)


def test_registry_rows_are_validated_one_by_one() -> None:
    listed = tenants_from_rows([("acme", "t_acme", 10), ("x; DROP DATABASE y", "t_x"), ("acme", "t_other"), ("beta", "t_beta")])
    assert [tenant.name for tenant in listed.tenants] == ["acme", "beta"]
    assert [refused.name for refused in listed.refused] == ["x; DROP DATABASE y", "acme"]
    assert quote("t_acme", "contacts") == "`t_acme`.`contacts`"


def test_largest_tenants_go_first_and_the_smallest_are_canaries() -> None:
    tenants = [Tenant("a", "da"), Tenant("b", "db", size_bytes=500), Tenant("c", "dc")]
    ordered = order_largest_first(tenants, {"da": 100, "dc": 900})
    assert [tenant.name for tenant in ordered] == ["c", "b", "a"]
    canaries, rest = split_canaries(ordered, 1)
    assert [tenant.name for tenant in canaries] == ["a"] and [tenant.name for tenant in rest] == ["c", "b"]


def test_settings_resolve_the_folder_and_report_bad_keys(tmp_path: Path) -> None:
    config = tmp_path / "jobd.toml"
    config.write_text('[migrations]\nfolder = "m"\ntenants = [{name = "a", database = "da"}]\ntenant_url = "mysql+pymysql://root@h/"\n')
    settings = load_migrations_settings(config)
    assert settings.folder == tmp_path / "m" and settings.snapshot is SnapshotMode.TOUCHED and settings.parallel == 4
    config.write_text('[migrations]\nfolder = "m"\ntenants = [{name = "a", database = "da"}]\ntenant_url = "mysql+pymysql://root@h/"\nparalel = 3\n')
    with pytest.raises(ConfigError, match=r"migrations\.paralel"):
        load_migrations_settings(config)
    config.write_text('[migrations]\nfolder = "m"\ntenants = [{name = "a", database = "d`a"}]\ntenant_url = "mysql+pymysql://root@h/"\n')
    with pytest.raises(ConfigError, match=r"migrations\.tenants\.0\.database"):
        load_migrations_settings(config)
    config.write_text('[migrations]\nfolder = "m"\n')
    with pytest.raises(ConfigError, match="registry_url"):
        load_migrations_settings(config)


def test_a_migration_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    from jobd.migrations.steps import load_steps

    (tmp_path / "0001_init.sql").write_text("CREATE TABLE t (id INT);\n")
    (tmp_path / "0002_comment.sql").write_bytes(b"-- caf\xe9\nALTER TABLE t ADD x INT;\n")
    with pytest.raises(MigrationFolderError, match=r"0002_comment.sql: line 1: not UTF-8 text \(byte 0xe9\)"):
        load_steps(tmp_path)
