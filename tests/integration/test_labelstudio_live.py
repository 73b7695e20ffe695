"""binsight against a real Label Studio (1.23.2, `make test-integration`): pre-annotations, then the export back into a dataset.

Label Studio runs from .venv-labelstudio on 127.0.0.1 with a fresh data
folder; binsight's service runs in this process (uvicorn, on 127.0.0.1) with
a detector that sees the true boxes of a small synthetic dataset. Through
label-studio-sdk (tests/integration/ls_driver.py, in Label Studio's venv):
a project with `labeling_config(classes)`, binsight connected as its ML
backend with Basic Auth, images uploaded, served from a local-files storage,
and referenced by a broken URL; "Retrieve Predictions"; the predictions
accepted as annotations (and one task only skipped); "Export -> JSON";
`import_labelstudio` of that export gives back the dataset's boxes.

Label Studio's settings for the test: a legacy token for the admin (the
driver's), a personal access token created through the API for binsight
(exchanged for access tokens, as in production, where legacy tokens are off),
local files served from the temporary folder, and loopback allowed as an ML
backend address (Label Studio refuses private and loopback addresses by
default: ML_BLOCK_LOCAL_IP, USE_DEFAULT_BANNED_SUBNETS). Nothing leaves the
machine: version checks, analytics and error reporting are off.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

VENV = os.environ.get("BINSIGHT_LABELSTUDIO_VENV")
if not VENV or not (Path(VENV) / "bin" / "label-studio").is_file():
    pytest.skip("Label Studio live test: run `make test-integration` (installs label-studio 1.23.2 in .venv-labelstudio)",
                allow_module_level=True)

from pipeline.config import load_taxonomy  # noqa: E402  (after the skip: the normal suite never needs more)
from pipeline.importers import import_labelstudio  # noqa: E402
from serve.labelstudio import labeling_config  # noqa: E402
from tests.integration.labelstudio_support import (  # noqa: E402
    KEY, REPO, USER, TruthDetector, make_app, settings, synthetic_dataset,
)

DRIVER = Path(__file__).with_name("ls_driver.py")
ADMIN_TOKEN = "binsight0integration0test0token00000000"
START_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"Label Studio exited with {process.returncode}:\n{log.read_text()[-3000:] if log else ''}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s" + (f":\n{log.read_text()[-3000:]}" if log else ""))


class Driver:
    """ls_driver.py's commands, each a run of Label Studio's venv's Python."""

    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def __call__(self, command: str, **args) -> dict:
        run = subprocess.run([str(Path(VENV) / "bin" / "python"), str(DRIVER), command, json.dumps({"url": self.url, "token": self.token, **args})],
                             capture_output=True, text=True, timeout=300, cwd=DRIVER.parent)
        if run.returncode != 0:
            pytest.fail(f"ls_driver.py {command} failed:\n{run.stderr[-3000:]}")
        return json.loads(run.stdout)


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A fresh Label Studio on a free loopback port: (base URL, driver, its local-files root, its data folder)."""
    root = tmp_path_factory.mktemp("label-studio")
    files, data = root / "files", root / "data"
    files.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BINSIGHT_", "LABEL_STUDIO_", "DJANGO_"))}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(data), "DJANGO_DB": "sqlite",
        "LABEL_STUDIO_USERNAME": "admin@binsight.test", "LABEL_STUDIO_PASSWORD": "binsight-integration",
        "LABEL_STUDIO_USER_TOKEN": ADMIN_TOKEN, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true", "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(files),
        "ML_BLOCK_LOCAL_IP": "false", "USE_DEFAULT_BANNED_SUBNETS": "false",
        "COLLECT_ANALYTICS": "false", "LATEST_VERSION_CHECK": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
    })
    log = root / "label-studio.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(Path(VENV) / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        wait_for(f"{url}/health", START_TIMEOUT_S, process, log)
        print(f"Label Studio up in {time.monotonic() - started:.0f} s at {url}")
        yield url, Driver(url, ADMIN_TOKEN), files, data
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the server and the reloader it may have started
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def project(label_studio, tmp_path_factory):
    """binsight serving on loopback, connected to a project; its tasks with the predictions Label Studio stored."""
    import uvicorn

    url, driver, files, _ = label_studio
    work = tmp_path_factory.mktemp("binsight")
    dataset = synthetic_dataset(work / "synthetic")
    pat = driver("token")["pat"]
    assert pat.count(".") == 2  # a JWT: binsight exchanges it for access tokens
    detector = TruthDetector(dataset.truth())
    app = make_app(settings(work, labelstudio_url=url, labelstudio_token=pat), detector)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="binsight-uvicorn", daemon=True)
    thread.start()
    try:
        wait_for(f"http://127.0.0.1:{port}/health/live", 60)
        classes = load_taxonomy(REPO / "configs/classes.yaml").class_names
        made = driver("project", title="binsight bins", label_config=labeling_config(classes),
                      backend_url=f"http://127.0.0.1:{port}/labelstudio", backend_user=USER, backend_key=KEY)
        project_id = made["project"]
        uploads = [str(dataset.images / name) for name in ("bin_a.png", "bin_b.png", "bin_c.png")]
        driver("upload", project=project_id, files=uploads)
        (files / "photos").mkdir()
        shutil.copy(dataset.images / "bin_d.png", files / "photos" / "bin_d.png")
        driver("local", project=project_id, path=str(files / "photos"))
        tasks = driver("tasks", project=project_id, tasks=[{"image": f"/data/upload/{project_id}/0000dead-gone.png"}])["tasks"]
        predicted = driver("predict", project=project_id, tasks=[t["id"] for t in tasks])
        yield {"project": project_id, "made": made, "tasks": tasks, "predicted": predicted, "dataset": dataset, "detector": detector}
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def file_of(task: dict) -> str:
    """The dataset file a task shows: Label Studio prefixes uploads with 8 hex digits and '-'."""
    return task["data"]["image"].rsplit("/", 1)[-1].rsplit("=", 1)[-1].split("-", 1)[-1]


def test_label_studio_connects_binsight_and_stores_its_predictions(project):
    backend = project["made"]["ml_backend"]
    assert (backend["state"], backend["model_version"], backend["error_message"]) == ("CO", "truth-1", None)  # connected
    tasks, predictions = project["tasks"], project["predicted"]["predictions"]
    images = sorted(t["data"]["image"] for t in tasks)
    assert any(i.startswith(f"/data/upload/{project['project']}/") and i.endswith("-bin_a.png") for i in images)
    assert "/data/local-files/?d=photos/bin_d.png" in images
    truth = {name: boxes for name, boxes in project["dataset"].boxes().items()}
    for task in tasks:
        stored = predictions[str(task["id"])]
        name = file_of(task)
        if name == "gone.png":  # the image is missing: binsight answered an error entry, Label Studio stored nothing
            assert stored == []
            continue
        [prediction] = stored
        assert prediction["model_version"] == "truth-1"
        w, h = next((i["width"], i["height"]) for i in project["dataset"].coco["images"] if i["file_name"] == name)
        got = sorted((r["value"]["rectanglelabels"][0], [r["value"]["x"] * w / 100, r["value"]["y"] * h / 100,
                                                          r["value"]["width"] * w / 100, r["value"]["height"] * h / 100])
                     for r in prediction["result"])
        assert [label for label, _ in got] == [label for label, _ in truth[name]], name
        for (_, box), (_, want) in zip(got, truth[name]):
            assert box == pytest.approx(want, abs=1e-6)
        assert all((r["from_name"], r["to_name"], r["type"], r["original_width"], r["original_height"]) == ("label", "image", "rectanglelabels", w, h)
                   for r in prediction["result"])
    assert set(project["detector"].seen) == {(i["width"], i["height"]) for i in project["dataset"].coco["images"]}


def test_the_export_of_accepted_predictions_imports_as_the_same_boxes(project, label_studio, tmp_path, taxonomy):
    _, driver, _, data = label_studio
    tasks, predictions = project["tasks"], project["predicted"]["predictions"]
    submissions = []
    for task in tasks:
        stored = predictions[str(task["id"])]
        if stored:  # the labeller accepts the model's boxes as they are
            submissions.append({"id": task["id"], "result": [{k: v for k, v in r.items() if k != "score"} for r in stored[0]["result"]]})
        else:  # ... and skips the task whose image is gone
            submissions.append({"id": task["id"], "result": [], "was_cancelled": True})
    bin_c = next(t for t in tasks if file_of(t) == "bin_c.png")
    submissions.append({"id": bin_c["id"], "result": [], "was_cancelled": True})  # skipped by a second labeller: the accepted one counts
    driver("annotate", tasks=submissions)
    export = tmp_path / "export.json"
    assert driver("export", project=project["project"], out=str(export))["tasks"] == len(tasks)

    result = import_labelstudio(export, project["dataset"].images, tmp_path / "data", taxonomy)
    assert [(p.kind, file_of(next(t for t in tasks if t["id"] == p.image_id))) for p in result.problems] == [("unannotated_task", "gone.png")]
    assert (result.images_added, result.background_images, result.boxes_added) == (4, 1, 5)
    doc = json.loads((tmp_path / "data" / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    imported = {im["file_name"]: sorted((names[a["category_id"]], a["bbox"]) for a in doc["annotations"] if a["image_id"] == im["id"])
                for im in doc["images"]}
    expected = project["dataset"].boxes()
    assert sorted(imported) == sorted(expected)
    for name, boxes in expected.items():
        assert [label for label, _ in imported[name]] == [label for label, _ in boxes], name
        for (_, got), (_, want) in zip(imported[name], boxes):
            assert got == pytest.approx(want, abs=0.002), name

    # The same export against Label Studio's own upload folder: uploads are found under <project>/<stored name>.
    from_media = import_labelstudio(export, data / "media" / "upload", tmp_path / "data-media", taxonomy)
    assert from_media.images_added == 3 and {p.kind for p in from_media.problems} == {"unannotated_task", "missing_file"}
