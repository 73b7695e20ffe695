"""`binsight notices list` and `notices render`: the output, and one line on stderr for each user mistake."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from pypdf import PdfReader

from serve.db import Bin, ImageAccess, Inspection, Notice, make_engine, make_sessionmaker
from serve.migrate import upgrade
from tests.browser_helpers import textured_photo
from tests.conftest import REPO


def run(args, tmp_path, env_extra=None):
    import os

    env = {**os.environ, "BINSIGHT_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "BINSIGHT_IMAGE_DIR": str(tmp_path / "img"), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "binsight.cli", "notices", *args], env=env, cwd=REPO, capture_output=True, text=True)


@pytest.fixture
def notice_id(tmp_path) -> str:
    """A database with one bin at level 2: two notices, the second of a finding whose photo is stored."""
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    now = datetime.now(timezone.utc)
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "p.jpg").write_bytes(textured_photo(200, 150, seed=3))
    with sessions.begin() as s:
        s.add(Bin(rfid="E2004711", address="Marktplatz 1, 59065 Hamm", fraction="biowaste", updated_at=now))
        for n, days in ((1, 40), (2, 2)):
            s.add(Inspection(id=f"insp-{n}", truck_id="T1", capture_id=f"c{n}", bin_id="E2004711", fraction="biowaste",
                             captured_at=now - timedelta(days=days), received_at=now, verdict="contaminated", contamination_score=0.9,
                             detections=[], reviewed_detections=[{"label": "glass", "box": [20, 30, 60, 90]}], model_version="m",
                             image_path="p.jpg" if n == 2 else None, image_sha256="x", image_width=200, image_height=150,
                             review_state="confirmed", bin_link="linked"))  # fmt: skip
            s.add(Notice(id=f"{n}bcdefab-0000-0000-0000-000000000000", inspection_id=f"insp-{n}", bin_id="E2004711", fraction="biowaste",
                         level=n, action=["information", "warning"][n - 1], contaminants=["glass"], issued_at=now - timedelta(days=days),
                         issued_by="rita"))  # fmt: skip
    engine.dispose()
    return "2bcdefab-0000-0000-0000-000000000000"


def test_list_shows_the_bins_per_level(tmp_path, notice_id):
    r = run(["list"], tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("level\tbin") and len(lines) == 2
    assert lines[1].split("\t")[:3] == ["2", "E2004711", "biowaste"] and lines[1].endswith("Marktplatz 1, 59065 Hamm")
    assert run(["list", "--level", "1"], tmp_path).stdout.splitlines()[1:] == []


def test_render_writes_the_pdf_and_html_and_logs_the_opening(tmp_path, notice_id):
    r = run(["render", notice_id[:8], "--out", str(tmp_path / "n.pdf")], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "level 2 (Verwarnung)" in r.stdout
    pdf = PdfReader(io.BytesIO((tmp_path / "n.pdf").read_bytes()))
    assert "Glas" in pdf.pages[0].extract_text() and len(pdf.pages[0].images) == 1
    assert run(["render", notice_id, "--out", str(tmp_path / "n.html")], tmp_path).returncode == 0
    assert "Verwarnung" in (tmp_path / "n.html").read_text(encoding="utf-8")
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with make_sessionmaker(engine)() as s:
        assert [(a.actor_kind, a.what, a.bin_id) for a in s.query(ImageAccess)] == [("cli", "notice", "E2004711")] * 2
    engine.dispose()


@pytest.mark.parametrize("args, message", [
    (["render", "ffffffff", "--out", "x.pdf"], "no notice ffffffff"),
    (["render", "2bc", "--out", "x.pdf"], "too short"),
    (["render", "2bcdefab", "--out", "x.docx"], "must end in .pdf or .html"),
    (["render", "2bcdefab", "--out", "no/such/folder/x.pdf"], "no folder"),
])  # fmt: skip
def test_mistakes_are_one_line_without_traceback(tmp_path, notice_id, args, message):
    r = run(args, tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_bad_level_and_a_bad_configuration_are_refused_in_one_line(tmp_path, notice_id):
    r = run(["list", "--level", "0"], tmp_path)
    assert r.returncode == 2 and "'0' is not a level" in r.stderr
    bad = tmp_path / "esc.yaml"
    bad.write_text("letter_template: letter.de.html.j2\n")
    r = run(["list"], tmp_path, {"BINSIGHT_NOTICES_CONFIG": str(bad)})
    assert r.returncode == 2 and f"{bad}: sender: Field required" in r.stderr and "Traceback" not in r.stderr


def test_each_command_has_help(tmp_path):
    for args in (["-h"], ["list", "-h"], ["render", "-h"]):
        r = run(args, tmp_path)
        assert r.returncode == 0 and "usage: binsight notices" in r.stdout
