"""The ``shgov`` command migrates, checks and seeds a real database and fails clearly on bad settings."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from bench.servers import free_port, wait

from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.lake.service import read_current
from tests import city_clock

SHGOV = city_clock.command()


def run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = city_clock.cli_environment(data_dir, SHGOV_DEMO_PERSONS="500", **env)
    return subprocess.run(
        [*SHGOV, *args], capture_output=True, text=True, env=environ, timeout=120, check=False, cwd=data_dir
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="module")
def seeded_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory migrated and seeded with the demo city by the command line, once for the module."""
    folder = tmp_path_factory.mktemp("seeded")
    assert run(["db", "upgrade"], folder).returncode == 0
    seeded = run(["demo", "seed"], folder)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded" in seeded.stdout
    return folder


@pytest.fixture
def seeded_dir(seeded_once: Path, data_dir: Path) -> Path:
    """A copy of the seeded data directory of one's own (the database holds no paths into its folder)."""
    shutil.copytree(seeded_once, data_dir, dirs_exist_ok=True)
    return data_dir


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_upgrade_then_check_succeeds_and_check_before_upgrade_fails(data_dir: Path) -> None:
    before = run(["db", "check"], data_dir)
    assert before.returncode == 1
    assert "shgov db upgrade" in before.stderr

    upgraded = run(["db", "upgrade"], data_dir)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (data_dir / "shgov.db").exists()

    checked = run(["db", "check"], data_dir)
    assert checked.returncode == 0, checked.stderr
    assert "agree" in checked.stdout

    again = run(["db", "upgrade"], data_dir)
    assert again.returncode == 0


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_seeding_twice_never_reseeds(seeded_dir: Path) -> None:
    second = run(["demo", "seed"], seeded_dir)
    assert second.returncode == 0, second.stderr
    assert "seeded" not in second.stdout.replace("already present", "")


def test_prod_without_secrets_is_refused_with_a_clear_message(data_dir: Path) -> None:
    result = run(["db", "upgrade"], data_dir, SHGOV_ENV="prod")
    assert result.returncode == 2
    assert "SHGOV_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_info_prints_the_addresses(data_dir: Path) -> None:
    result = run(["demo", "info"], data_dir)
    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:8000/" in result.stdout
    assert "/api/docs" in result.stdout


def test_another_city_can_load_its_own_divisions(data_dir: Path) -> None:
    assert run(["db", "upgrade"], data_dir).returncode == 0
    divisions = data_dir / "divisions.csv"
    divisions.write_text(
        "code,name,level,parent_code\n"
        "330100,杭州市,city,\n330102,上城区,district,330100\n330102001,清波街道,township,330102\n"
        "330102001001,劳动路社区居委会,community,330102001\n",
        encoding="utf-8",
    )
    loaded = run(["regions", "load", "--divisions", str(divisions)], data_dir)
    assert loaded.returncode == 0, loaded.stderr
    assert "district: 1" in loaded.stdout
    assert "new tenants: 2" in loaded.stdout
    broken = data_dir / "broken.csv"
    broken.write_text(
        "code,name,level,parent_code\n330100,杭州市,city,\n3301,上城区,district,330100\n", encoding="utf-8"
    )
    refused = run(["regions", "load", "--divisions", str(broken)], data_dir)
    assert refused.returncode == 2
    assert "6 digits" in refused.stderr


def test_a_holiday_schedule_is_loaded_from_a_file(data_dir: Path) -> None:
    assert run(["db", "upgrade"], data_dir).returncode == 0
    schedule = data_dir / "2027.csv"
    schedule.write_text("date,kind,name\n2027-01-01,holiday,元旦\n2027-02-06,workday,春节调休\n", encoding="utf-8")
    loaded = run(["calendar", "load", "2027", str(schedule)], data_dir)
    assert loaded.returncode == 0, loaded.stderr
    assert "2 days loaded" in loaded.stdout
    schedule.write_text("2027-01-01,vacation\n", encoding="utf-8")
    refused = run(["calendar", "load", "2027", str(schedule)], data_dir)
    assert refused.returncode == 2
    assert "kind must be" in refused.stderr


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_the_first_administrator_is_created_from_the_command_line(data_dir: Path) -> None:
    assert run(["db", "upgrade"], data_dir).returncode == 0
    environ = city_clock.cli_environment(data_dir)
    assert run(["regions", "load"], data_dir).returncode == 0
    created = subprocess.run(
        [*SHGOV, "users", "create-admin", "--username", "root.admin"],
        input="Very#Strong2026\nVery#Strong2026\n",
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    again = subprocess.run(
        [*SHGOV, "users", "create-admin", "--username", "root.admin"],
        input="Very#Strong2026\nVery#Strong2026\n",
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )
    assert again.returncode == 2
    assert "taken" in again.stderr


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_the_catalog_and_service_items_go_out_and_come_back_and_the_sharing_sweep_runs(seeded_dir: Path) -> None:
    data_dir = seeded_dir
    exported = run(["catalog", "export", "catalog.csv", "--status", "published"], data_dir)
    assert exported.returncode == 0, exported.stderr
    text = (data_dir / "catalog.csv").read_text(encoding="utf-8-sig")
    assert "婚姻登记信息" in text
    # Published entries change only through a revision: importing them as they are is refused whole.
    refused = run(["catalog", "import", "catalog.csv"], data_dir)
    assert refused.returncode == 2
    assert "revise" in refused.stderr
    rows = list(csv.DictReader(io.StringIO(text)))
    copy = rows[0] | {"code": "", "version": "", "status": "", "lake_resource": "", "title": "一份新的目录"}
    with (data_dir / "new.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerow(copy)
    created = run(["catalog", "import", "new.csv"], data_dir)
    assert created.returncode == 0, created.stderr
    assert "1 drafts created" in created.stdout
    assert run(["catalog", "export", "catalog.txt"], data_dir).returncode == 2
    swept = run(["sharing", "sweep"], data_dir)
    assert swept.returncode == 0, swept.stderr
    assert "escalated 0" in swept.stdout

    # Service items go out as CSV and JSON and come back; a wrong row stops the whole import.
    for name in ("items.csv", "items.json"):
        out = run(["services", "export", name], data_dir)
        assert out.returncode == 0, out.stderr
        back = run(["services", "import", name], data_dir)
        assert back.returncode == 0, back.stderr
        assert "0 items created" in back.stdout
    items = list(csv.DictReader(io.StringIO((data_dir / "items.csv").read_text(encoding="utf-8-sig"))))
    assert len(items) >= 60
    with (data_dir / "bad.csv").open("w", encoding="utf-8", newline="") as out_file:
        writer = csv.DictWriter(out_file, fieldnames=list(items[0]))
        writer.writeheader()
        writer.writerow(items[0] | {"code": "310000-NEW-0001"})
        writer.writerow(items[1] | {"promised_days": "three"})
    refused_items = run(["services", "import", "bad.csv"], data_dir)
    assert refused_items.returncode == 2
    assert "promised_days" in refused_items.stderr
    assert "310000-NEW-0001" not in run(["services", "export", "after.json"], data_dir).stdout
    assert "310000-NEW-0001" not in (data_dir / "after.json").read_text()


def test_serve_refuses_reload_with_several_workers(data_dir: Path) -> None:
    done = run(["serve", "--reload", "--workers", "2"], data_dir)
    assert done.returncode == 2
    assert "--workers" in done.stdout + done.stderr


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_the_work_order_classifier_is_trained_and_evaluated_from_a_file(data_dir: Path) -> None:
    rows = [("路灯不亮晚上很黑", "照明"), ("垃圾没人清运很臭", "环卫"), ("工地夜间施工噪音很大", "噪声")]
    with (data_dir / "history.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "category"])
        for i in range(8):
            for text, label in rows:
                writer.writerow([f"{text}，第{i}次反映", label])
    trained = run(["workorders", "train", "--from", "history.csv"], data_dir)
    assert trained.returncode == 0, trained.stderr
    assert "24 examples of 3 categories" in trained.stdout
    assert (data_dir / "models" / "workorders-classifier.joblib").exists()
    evaluated = run(["workorders", "evaluate", "--from", "history.csv", "--folds", "4"], data_dir)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "macro-F1 1.000" in evaluated.stdout
    (data_dir / "bad.csv").write_text("message,kind\n路灯不亮,照明\n", encoding="utf-8")
    refused = run(["workorders", "train", "--from", "bad.csv"], data_dir)
    assert refused.returncode == 2
    assert "category column" in refused.stderr


def test_message_history_is_analysed_for_duplicates_and_hot_spots(data_dir: Path) -> None:
    with (data_dir / "labelled.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "category"])
        for i in range(6):
            writer.writerow([f"路灯不亮很黑{i}", "照明"])
            writer.writerow([f"垃圾没人清运很臭{i}", "环卫"])
    with (data_dir / "messages.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "title", "body", "submitted_at"])
        for i in range(6):
            writer.writerow(
                [i, "路灯不亮", f"东湖区幸福路的路灯不亮已经很久了，晚上很黑，第{i}封", f"2026-03-0{i + 1} 10:00:00"]
            )
        writer.writerow([99, "垃圾", "西山区垃圾没人清运", "2026-05-01 09:00:00"])
    analysed = run(
        ["workorders", "analyse", "--from", "messages.csv", "--train-from", "labelled.csv", "--min-count", "3"],
        data_dir,
    )
    assert analysed.returncode == 0, analysed.stderr
    assert "7 messages" in analysed.stdout
    assert "东湖区" in analysed.stdout
    assert "照明" in analysed.stdout
    assert "1 groups of near-duplicates" in analysed.stdout.replace("\n", " ")


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_benefit_policies_are_checked_dry_run_and_run_from_the_command_line(seeded_dir: Path) -> None:
    data_dir = seeded_dir
    good = {
        "code": "cli_elders",
        "name": "高龄慰问",
        "target": "person",
        "department_code": "310000.mz",
        "legal_basis": "演示用条款",
        "mode": "auto",
        "period": "once",
        "effective_from": "2026-01-01",
        "conditions": ["age(birth_date) >= 90"],
        "amount": "300",
    }
    bad = {**good, "code": "cli_bad", "conditions": ["age(birth_date) >= 90", "age(birthday) > 1"]}
    (data_dir / "policies.json").write_text(json.dumps([good, bad], ensure_ascii=False), encoding="utf-8")
    checked = run(["benefits", "check", "policies.json"], data_dir)
    assert checked.returncode == 1
    assert "ok   cli_elders" in checked.stdout
    assert "conditions[1]: line 1, column 5: unknown field 'birthday'" in checked.stdout.replace("\n", " ")
    dry = run(["benefits", "dry-run", "elderly_nutrition", "--as-of", "2026-11-24"], data_dir)
    assert dry.returncode == 0, dry.stderr
    assert "qualify" in dry.stdout
    assert run(["benefits", "dry-run", "nope"], data_dir).returncode == 2
    first = run(["benefits", "run", "elderly_nutrition", "--as-of", "2026-12-01"], data_dir)
    again = run(["benefits", "run", "elderly_nutrition", "--as-of", "2026-12-01"], data_dir)
    assert first.returncode == 0, first.stderr
    assert " 0 new" not in first.stdout
    assert " 0 new" in again.stdout
    assert run(["benefits", "run", "--as-of", "24/11/2026"], data_dir).returncode == 2


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_the_server_stops_within_seconds_of_sigterm_even_with_live_streams_open(seeded_dir: Path) -> None:
    port = free_port()
    environ = city_clock.cli_environment(seeded_dir, SHGOV_SENSING__SIMULATE="true", SHGOV_WEB__SHUTDOWN_SECONDS="3")
    server = subprocess.Popen(
        [*SHGOV, "serve", "--port", str(port)], env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait(f"{base}/healthz", 120)
        token = httpx.post(
            f"{base}/api/v1/auth/token",
            data={"grant_type": "password", "username": "ops.operator", "password": DEMO_PASSWORD},
        ).json()["access_token"]
        with (
            httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client,
            contextlib.ExitStack() as open_streams,
        ):
            streams = [
                open_streams.enter_context(client.stream("GET", path))
                for path in ("/ops/vitals/stream", "/ops/dashboard/stream")
            ]
            assert [s.status_code for s in streams] == [200, 200]
            assert all(s.headers["content-type"].startswith("text/event-stream") for s in streams)
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                pytest.fail("the server was still running 10 s after SIGTERM")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    output = server.stdout.read().decode() if server.stdout else ""
    # uvicorn ends by re-raising the signal it handled: -SIGTERM is a clean, complete stop.
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


_WALK_IN = """
from shgov.core.audit import service as audit
from shgov.core.cli import load_settings, open_database
from shgov.core.identity.service import create_user

settings = load_settings()
audit.configure(settings)
with open_database(settings).session() as session:
    create_user(session, kind="citizen", username="walk.in", display_name="来访者", password="Strong#Pass2026")
"""


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_proofing_from_the_command_line_checks_the_name_against_the_register(seeded_dir: Path) -> None:
    """Issue #26: the command bound a resident's 身份证号 under any name (the register was not consulted)."""
    population = read_current(seeded_dir / "lake", "population")
    assert population is not None
    person = population.row(0, named=True)
    environ = city_clock.cli_environment(seeded_dir, SHGOV_DEMO_PERSONS="500")
    made = subprocess.run(
        [sys.executable, "-c", _WALK_IN], capture_output=True, text=True, env=environ, timeout=120, check=False
    )
    assert made.returncode == 0, made.stderr
    proof = ["users", "proof", "walk.in", "--clerk", "pudong.window", "--document-type", "resident_id_card"]
    proof += ["--id-number", person["id_number"], "--reason", "本人持证到窗口", "--document-checked"]
    wrong = run([*proof, "--name", person["name"] + "某"], seeded_dir)
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "不一致" in wrong.stdout + wrong.stderr
    assert person["name"] not in wrong.stdout + wrong.stderr
    admin = run([*proof, "--name", person["name"], "--clerk", "admin"], seeded_dir)  # "*" does not imply it
    assert admin.returncode == 2, admin.stdout + admin.stderr
    right = run([*proof, "--name", person["name"]], seeded_dir)
    assert right.returncode == 0, right.stdout + right.stderr
