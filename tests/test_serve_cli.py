"""Operator commands: keys, retention, and the message when no model exists."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(args, env_extra, tmp_path, stdin: str | None = None):
    import os

    env = {**os.environ, "BINSIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "BINSIGHT_IMAGE_DIR": str(tmp_path / "img"), **env_extra}
    return subprocess.run([sys.executable, "-m", "serve.cli", *args], env=env, cwd=REPO, capture_output=True, text=True, input=stdin)


def test_create_key_prints_a_key_once_and_refuses_a_duplicate_name(tmp_path):
    first = run(["create-key", "truck-1", "--truck", "truck-1"], {}, tmp_path)
    assert first.returncode == 0 and first.stdout.strip().startswith("bsk_")
    again = run(["create-key", "truck-1", "--fleet"], {}, tmp_path)
    assert again.returncode == 1 and "exists already" in again.stderr
    assert run(["revoke-key", "truck-1"], {}, tmp_path).returncode == 0
    assert run(["revoke-key", "nobody"], {}, tmp_path).returncode == 1


def test_serve_without_a_model_says_what_to_do(tmp_path):
    r = run(["serve"], {"BINSIGHT_MODEL_DIR": str(tmp_path / "none")}, tmp_path)
    assert r.returncode == 2 and "make run" in r.stderr


def test_retention_command_runs(tmp_path):
    r = run(["retention", "--days", "30"], {}, tmp_path)
    assert r.returncode == 0 and "deleted 0 images" in r.stdout


def test_the_service_does_not_import_torch():
    code = "import sys, serve.app, serve.cli, serve.truck_client; assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_env_example_lists_every_setting_with_its_default():
    from serve.settings import ServeSettings, env_example

    committed = (REPO / ".env.example").read_text()
    assert committed == env_example(), "regenerate with: python -m serve.cli settings --example > .env.example"
    for name in ServeSettings.model_fields:
        assert f"BINSIGHT_{name.upper()}=" in committed


def test_create_key_needs_a_truck_or_the_fleet(tmp_path):
    r = run(["create-key", "depot"], {}, tmp_path)
    assert r.returncode == 2 and "one of the arguments --truck --fleet is required" in r.stderr
    assert run(["create-key", "depot", "--fleet"], {}, tmp_path).returncode == 0


def test_accounts_from_the_command_line_with_the_password_on_stdin(tmp_path):
    created = run(["create-user", "ada", "--role", "admin", "--password-stdin"], {}, tmp_path, stdin="correct horse battery\n")
    assert created.returncode == 0 and "created admin ada" in created.stdout
    short = run(["create-user", "rita", "--role", "reviewer", "--password-stdin"], {}, tmp_path, stdin="short\n")
    assert short.returncode == 2 and "too short" in short.stderr and "Traceback" not in short.stderr
    duplicate = run(["create-user", "ada", "--role", "reviewer", "--password-stdin"], {}, tmp_path, stdin="correct horse battery\n")
    assert duplicate.returncode == 2 and "exists already" in duplicate.stderr
    assert run(["set-password", "ada", "--password-stdin"], {}, tmp_path, stdin="another long password\n").returncode == 0
    last_admin = run(["disable-user", "ada"], {}, tmp_path)
    assert last_admin.returncode == 2 and "last enabled admin" in last_admin.stderr
    listing = run(["list-users"], {}, tmp_path)
    assert listing.returncode == 0 and "ada\tadmin\tactive" in listing.stdout
    # The password is never an argument: argparse refuses one.
    assert run(["create-user", "x", "--role", "reviewer", "--password", "secret-secret"], {}, tmp_path).returncode == 2


def test_settings_mask_the_database_password(tmp_path):
    r = run(["settings"], {"BINSIGHT_DATABASE_URL": "postgresql+psycopg://binsight:s3cret@db.example/binsight"}, tmp_path)
    assert r.returncode == 0 and "s3cret" not in r.stdout and "binsight:***@db.example" in r.stdout


def test_export_reviewed_with_nothing_reviewed_says_so(tmp_path):
    r = run(["export-reviewed", "--out", str(tmp_path / "data")], {}, tmp_path)
    assert r.returncode == 0 and "images added:             0" in r.stdout and not (tmp_path / "data" / "annotations.json").exists()
