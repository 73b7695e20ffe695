"""Operator commands: keys, retention, and the message when no model exists."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(args, env_extra, tmp_path):
    import os

    env = {**os.environ, "BINSIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "BINSIGHT_IMAGE_DIR": str(tmp_path / "img"), **env_extra}
    return subprocess.run([sys.executable, "-m", "serve.cli", *args], env=env, cwd=REPO, capture_output=True, text=True)


def test_create_key_prints_a_key_once_and_refuses_a_duplicate_name(tmp_path):
    first = run(["create-key", "truck-1"], {}, tmp_path)
    assert first.returncode == 0 and first.stdout.strip().startswith("bsk_")
    again = run(["create-key", "truck-1"], {}, tmp_path)
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
