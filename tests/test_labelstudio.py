"""Label Studio: the labeling config, the ML backend's contract (/health, /setup, /predict), its image fetching, and the importer.

Label Studio itself is faked here (an httpx mock transport serving its
/data/upload, /data/local-files, token refresh and cloud presign routes);
tests/integration/test_labelstudio_live.py runs the same paths against a real
one (`make test-integration`). The request shapes are those Label Studio 1.23
sends (label_studio/ml/api_connector.py): /setup {project, schema, hostname,
access_token, extra_params}; /predict {tasks, project, label_config, params}.
"""

from __future__ import annotations

import base64
import io
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from pipeline.coco import ANNOTATIONS_FILE
from pipeline.importers import ImportRejected, import_labelstudio
from pipeline.validate import format_report
from serve.labelstudio import (
    ImageFetcher, LabelConfigError, TaskImageError, colours, labeling_config, labeling_config_for, parse_labeling_config,
)
from serve.routers.labelstudio import get_image_fetcher
from tests.integration.labelstudio_support import (
    CLASSES, KEY, REPO, USER, TruthDetector, export_from_predictions, make_app, settings, synthetic_dataset,
)

LS = "http://ls.test:8080"
LEGACY_TOKEN = "0123456789abcdef0123456789abcdef01234567"
CONFIG = labeling_config(CLASSES)


def jwt(claims: dict) -> str:
    """An unsigned JWT: the backend reads its claims, Label Studio (faked here) checks it."""
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


PAT = jwt({"token_type": "refresh", "exp": int(time.time()) + 86400, "jti": "pat-1", "user_id": 1})


class FakeLabelStudio:
    """Label Studio's routes that the backend uses, over files in a folder; counts what it was asked."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files  # path under /data/upload/ or ?d= -> bytes
        self.refreshes = 0
        self.access = jwt({"token_type": "access", "exp": int(time.time()) + 300, "jti": "acc-1"})
        self.requests: list[httpx.Request] = []

    def authorised(self, request: httpx.Request) -> bool:
        return request.headers.get("authorization") in (f"Token {LEGACY_TOKEN}", f"Bearer {self.access}")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = request.url
        if url.host == "bucket.test":  # a presigned URL: no Label Studio token may reach it
            assert "authorization" not in request.headers
            return httpx.Response(200, content=self.files[url.path.lstrip("/")])
        if url.host == "photos.test":
            assert "authorization" not in request.headers
            name = url.path.lstrip("/")
            return httpx.Response(200, content=self.files[name]) if name in self.files else httpx.Response(404)
        if url.path == "/api/token/refresh/":
            self.refreshes += 1
            ok = json.loads(request.content) == {"refresh": PAT}
            return httpx.Response(200, json={"access": self.access}) if ok else httpx.Response(401, json={"detail": "Token is invalid"})
        if not self.authorised(request):
            return httpx.Response(401, json={"detail": "Authentication credentials were not provided."})
        if url.path.startswith("/data/upload/"):
            name = url.path.removeprefix("/data/upload/")
        elif url.path == "/data/local-files/":
            name = url.params["d"]
        elif url.path.startswith("/tasks/") and url.path.endswith("/presign/"):
            uri = base64.urlsafe_b64decode(url.params["fileuri"]).decode()
            return httpx.Response(302, headers={"location": "http://bucket.test/" + uri.removeprefix("s3://bucket/")})
        else:
            return httpx.Response(404)
        return httpx.Response(200, content=self.files[name]) if name in self.files else httpx.Response(404)


def png(size=(64, 48), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def basic(user=USER, key=KEY) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def task(task_id: int, image: str) -> dict:
    """A task as Label Studio 1.23 serialises it for /predict (TaskSimpleSerializer)."""
    return {
        "id": task_id, "data": {"image": image}, "meta": {}, "created_at": "2026-05-04T06:00:00.000000Z",
        "updated_at": "2026-05-04T06:00:00.000000Z", "is_labeled": False, "overlap": 1, "inner_id": task_id,
        "total_annotations": 0, "cancelled_annotations": 0, "total_predictions": 0, "comment_count": 0,
        "unresolved_comment_count": 0, "last_comment_updated_at": None, "project": 1, "updated_by": None,
        "file_upload": None, "comment_authors": [], "annotations": [], "predictions": [],
    }


def predict_body(tasks: list[dict], label_config: str | None = CONFIG) -> dict:
    """/predict's body exactly as Label Studio 1.23 builds it (MLApi._prep_prediction_req)."""
    body = {"tasks": tasks, "project": "1.1777777777", "label_config": label_config,
            "params": {"login": None, "password": None, "context": None}}
    return body


@pytest.fixture
def backend(tmp_path):
    """(client, fake Label Studio, detector) over the synthetic dataset's images, uploaded as project 1."""
    data = synthetic_dataset(tmp_path / "synthetic")
    files = {f"1/0a1b2c3d-{p.name}": p.read_bytes() for p in data.images.iterdir()}
    files["photos/big.png"] = b"\x89PNG" + b"0" * 1_000_001
    files["photos/notes.txt"] = b"not an image"
    fake = FakeLabelStudio(files)
    detector = TruthDetector(data.truth())
    app = make_app(settings(tmp_path, labelstudio_url=LS, labelstudio_token=PAT, max_upload_bytes=1_000_000), detector)
    fetcher = ImageFetcher(LS, PAT, 1_000_000, transport=httpx.MockTransport(fake))
    app.dependency_overrides[get_image_fetcher] = lambda: fetcher
    with TestClient(app) as client:
        client.headers.update(basic())
        yield client, fake, detector, data


# --- the labeling config ---------------------------------------------------------------------------


def test_labeling_config_has_one_label_per_class_with_distinct_colours():
    root = ET.fromstring(CONFIG)
    assert root.tag == "View"
    [image] = root.findall("Image")
    assert (image.get("name"), image.get("value")) == ("image", "$image")
    [rect] = root.findall("RectangleLabels")
    assert (rect.get("name"), rect.get("toName")) == ("label", "image")
    labels = rect.findall("Label")
    assert [lab.get("value") for lab in labels] == CLASSES
    backgrounds = [lab.get("background") for lab in labels]
    assert len(set(backgrounds)) == len(backgrounds) and all(b.startswith("#") and len(b) == 7 for b in backgrounds)
    assert len(set(colours(60))) == 60  # past the palette: still distinct
    parsed = parse_labeling_config(CONFIG)
    assert (parsed.from_name, parsed.to_name, parsed.image_key, parsed.labels) == ("label", "image", "image", tuple(CLASSES))


def test_labeling_config_escapes_names_and_refuses_duplicates():
    odd = ['say "hi" & <bye>', "can"]
    assert parse_labeling_config(labeling_config(odd)).labels == tuple(odd)
    with pytest.raises(ValueError, match="duplicate"):
        labeling_config(["can", "can"])


def test_labeling_config_comes_from_the_class_list_or_the_model_card(tmp_path):
    from pipeline.config import load_params
    from pipeline.inspection import InspectionSpec
    from pipeline.model_card import CARD_FILE, InputSpec, InspectionSection, ModelCard, Thresholds

    assert labeling_config_for(classes=REPO / "configs/classes.yaml") == CONFIG
    card = ModelCard(
        version="0123456789ab", architecture="fcos/mobilenet_v3_small", class_names=["glass", "can"],
        input=InputSpec(min_size=320, max_size=320), thresholds=Thresholds(box_score=0.05, nms_iou=0.5, verdict=0.26),
        fractions={"paper": ["glass"]}, inspection=InspectionSection.from_spec(InspectionSpec.from_params(load_params(REPO / "configs/params.yaml").verdict)),
        dataset_md5="d41d8cd98f00b204e9800998ecf8427e", opset=17,
    )
    (tmp_path / CARD_FILE).write_text(card.to_json())
    assert parse_labeling_config(labeling_config_for(model_dir=tmp_path)).labels == ("glass", "can")
    with pytest.raises(ValueError, match="no model card"):
        labeling_config_for(model_dir=tmp_path / "none")


def test_hand_written_config_is_read_where_its_tags_are():
    xml = """<View><Header value="Bin"/><View style="x">
      <Choices name="q" toName="photo"><Choice value="ok"/></Choices>
      <Image name="photo" value="$img"/>
      <RectangleLabels name="objects" toName="photo"><Label value="Plastic Bag"/><Label value="Can"/></RectangleLabels>
    </View></View>"""
    config = parse_labeling_config(xml)
    assert (config.from_name, config.to_name, config.image_key) == ("objects", "photo", "img")
    assert config.label_for("plastic_bag") == "Plastic Bag" and config.label_for("can") == "Can" and config.label_for("glass") is None


@pytest.mark.parametrize("xml, message", [
    ("", "empty"),
    ("<View><Image", "not XML"),
    ('<View><Image name="i" value="$image"/></View>', "no <RectangleLabels"),
    ('<View><RectangleLabels name="l" toName="i"><Label value="can"/></RectangleLabels></View>', "no <Image"),
    ('<!DOCTYPE x [<!ENTITY a "b">]><View/>', "DOCTYPE"),
    ('<View><Image name="i" value="https://x/y.jpg"/><RectangleLabels name="l" toName="i"/></View>', "task data key"),
])
def test_unusable_configs_say_what_is_missing(xml, message):
    with pytest.raises(LabelConfigError, match=message):
        parse_labeling_config(xml)


# --- the ML backend contract -----------------------------------------------------------------------


def test_health_and_setup_answer_as_label_studio_expects(backend):
    client, *_ = backend
    for path in ("/labelstudio/health", "/labelstudio/"):
        r = client.get(path)
        assert r.status_code == 200 and r.json() == {"status": "UP", "model_class": "binsight", "model_version": "truth-1"}
    setup = {"project": "1.1777777777", "schema": CONFIG, "hostname": "http://localhost:8080",
             "access_token": LEGACY_TOKEN, "extra_params": None}
    r = client.post("/labelstudio/setup", json=setup)
    assert r.status_code == 200 and r.json() == {"model_version": "truth-1"}
    assert client.get("/labelstudio/versions").json() == {"versions": ["truth-1"]}


def test_setup_refuses_a_config_without_boxes_or_without_any_model_class(backend):
    client, *_ = backend
    r = client.post("/labelstudio/setup", json={"project": "1.1", "schema": '<View><Image name="i" value="$image"/></View>'})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_label_config"
    r = client.post("/labelstudio/setup", json={"project": "1.1", "schema": labeling_config(["cat", "dog"])})
    assert r.status_code == 422 and r.json()["error"]["code"] == "no_known_label" and "labelstudio-config" in r.json()["error"]["message"]


def test_predict_returns_rectangles_in_percent_with_scores_and_the_model_version(backend):
    client, fake, detector, data = backend
    r = client.post("/labelstudio/predict", json=predict_body([task(7, "/data/upload/1/0a1b2c3d-bin_a.png")]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["results"] and len(body["results"]) == 1
    prediction = body["results"][0]
    assert set(prediction) == {"result", "score", "model_version"}
    assert prediction["model_version"] == "truth-1" and prediction["score"] == pytest.approx(0.9)
    # The can of bin_a.png: [40.5, 60.25, 80, 100] px of a 320x240 image; the 0.05 detection is below min_detection_score.
    can = prediction["result"][0]
    assert can == {
        "id": "binsight-0", "from_name": "label", "to_name": "image", "type": "rectanglelabels",
        "original_width": 320, "original_height": 240, "image_rotation": 0,
        "value": {"x": pytest.approx(40.5 / 320 * 100), "y": pytest.approx(60.25 / 240 * 100), "width": pytest.approx(25.0),
                  "height": pytest.approx(100 / 240 * 100), "rotation": 0, "rectanglelabels": ["can"]},
        "score": pytest.approx(0.9),
    }
    assert [reg["value"]["rectanglelabels"] for reg in prediction["result"]] == [["can"], ["cardboard"]]
    assert detector.seen == [(320, 240)]
    assert fake.refreshes == 1  # the personal access token was exchanged for an access token


def test_predict_uses_the_configs_names_and_labels(backend):
    client, *_ = backend
    xml = """<View><Image name="photo" value="$img"/>
      <RectangleLabels name="objects" toName="photo"><Label value="Can"/></RectangleLabels></View>"""
    t = task(8, "x")
    t["data"] = {"img": "/data/upload/1/0a1b2c3d-bin_a.png"}
    [prediction] = client.post("/labelstudio/predict", json=predict_body([t], xml)).json()["results"]
    [region] = prediction["result"]  # cardboard has no label in this config: left out
    assert (region["from_name"], region["to_name"], region["value"]["rectanglelabels"]) == ("objects", "photo", ["Can"])


def test_predict_without_label_config_uses_the_projects_setup(backend):
    client, *_ = backend
    body = predict_body([task(7, "/data/upload/1/0a1b2c3d-bin_c.png")], label_config=None)
    r = client.post("/labelstudio/predict", json=body)
    assert r.status_code == 200 and r.json()["results"] == [{"task": 7, "error": {
        "code": "missing_label_config", "message": "no label_config in the request and no /setup of this project before it"}}]
    [entry] = client.post("/labelstudio/predict", json=predict_body(body["tasks"], labeling_config(["cat"]))).json()["results"]
    assert entry["error"]["code"] == "no_known_label"
    xml = CONFIG.replace('name="label"', 'name="boxes"').replace('toName="image"', 'toName="image"')
    assert client.post("/labelstudio/setup", json={"project": "1.1777777777", "schema": xml}).status_code == 200
    [prediction] = client.post("/labelstudio/predict", json=body).json()["results"]
    assert prediction["result"][0]["from_name"] == "boxes"


def test_each_task_gets_its_prediction_or_its_error_in_order(backend):
    client, fake, detector, _ = backend
    tasks = [
        task(1, "/data/upload/1/0a1b2c3d-bin_b.png"),
        task(2, "/data/upload/1/missing.png"),
        task(3, "http://photos.test/photos/big.png"),
        task(4, "http://photos.test/photos/notes.txt"),
        task(5, "ftp://x/y.png"),
        task(6, "/data/local-files/?d=1/0a1b2c3d-bin_d.png"),
        task(7, "s3://bucket/1/0a1b2c3d-bin_c.png"),
    ]
    tasks[3]["data"]["image"] = "http://photos.test/photos/notes.txt"
    results = client.post("/labelstudio/predict", json=predict_body(tasks)).json()["results"]
    assert len(results) == len(tasks)  # Label Studio pairs them by position
    errors = {r["task"]: r["error"]["code"] for r in results if "error" in r}
    assert errors == {2: "image_not_found", 3: "image_too_large", 4: "unsupported_image_format", 5: "unsupported_image_url"}
    assert all("result" not in r for r in results if "error" in r)  # no result: Label Studio stores nothing and asks again
    assert [len(r["result"]) for r in results if "result" in r] == [2, 0, 1]  # bin_d has no object: an empty prediction
    assert results[5]["score"] == 0.0
    assert fake.refreshes == 1  # one access token for the whole batch


def test_label_studio_files_need_its_url_and_token(tmp_path):
    fetcher = ImageFetcher(None, None, 1000)
    with pytest.raises(TaskImageError) as err:
        fetcher.fetch("/data/upload/1/x.png")
    assert err.value.code == "labelstudio_not_configured" and "BINSIGHT_LABELSTUDIO_URL" in err.value.message


def test_legacy_token_is_sent_as_token_and_only_to_label_studio():
    fake = FakeLabelStudio({"1/a.png": png(), "photos/b.png": png(seed=1)})
    fetcher = ImageFetcher(LS + "/", LEGACY_TOKEN, 10**6, transport=httpx.MockTransport(fake))
    assert fetcher.fetch("/data/upload/1/a.png") == png()
    assert fetcher.fetch(f"{LS}/data/upload/1/a.png") == png()  # an absolute URL of Label Studio: its token too
    assert fetcher.fetch("http://photos.test/photos/b.png") == png(seed=1)  # elsewhere: no token (asserted by the fake)
    assert [r.headers.get("authorization") for r in fake.requests] == [f"Token {LEGACY_TOKEN}"] * 2 + [None]
    assert fake.refreshes == 0


def test_a_refused_token_is_a_clear_task_error():
    fake = FakeLabelStudio({"1/a.png": png()})
    fetcher = ImageFetcher(LS, "wrong-token", 10**6, transport=httpx.MockTransport(fake))
    with pytest.raises(TaskImageError) as err:
        fetcher.fetch("/data/upload/1/a.png")
    assert err.value.code == "labelstudio_refused" and "BINSIGHT_LABELSTUDIO_TOKEN" in err.value.message
    expired = jwt({"token_type": "refresh", "exp": int(time.time()) + 60, "jti": "other"})
    with pytest.raises(TaskImageError) as err:
        ImageFetcher(LS, expired, 10**6, transport=httpx.MockTransport(fake)).fetch("/data/upload/1/a.png")
    assert err.value.code == "labelstudio_token_refused"


def test_photo_is_judged_upright_by_its_exif_orientation(backend):
    client, fake, detector, _ = backend
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees: portrait
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(buf, "JPEG", exif=exif)
    fake.files["1/rotated.jpg"] = buf.getvalue()
    [prediction] = client.post("/labelstudio/predict", json=predict_body([task(9, "/data/upload/1/rotated.jpg")])).json()["results"]
    assert detector.seen[-1] == (40, 60)
    assert prediction["result"] == []


def test_the_backend_wants_label_studios_basic_auth(backend, tmp_path):
    client, *_ = backend
    for headers in ({"Authorization": ""}, basic(key="wrong"), basic(user="admin"), {"Authorization": f"Token {KEY}"}):
        r = client.get("/labelstudio/health", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Basic")
    r = client.post("/labelstudio/predict", json=predict_body([]), headers=basic(key="wrong"))
    assert r.status_code == 401

    off = make_app(settings(tmp_path / "off", labelstudio_key=None), TruthDetector())
    with TestClient(off) as c:
        r = c.get("/labelstudio/health", headers=basic())
        assert r.status_code == 404 and r.json()["error"]["code"] == "labelstudio_disabled"
        assert "BINSIGHT_LABELSTUDIO_KEY" in r.json()["error"]["message"]


# --- the importer ----------------------------------------------------------------------------------


def annotations(data: Path) -> dict:
    return json.loads((data / ANNOTATIONS_FILE).read_text())


def boxes_by_file(data: Path) -> dict[str, list[tuple[str, list[float]]]]:
    doc = annotations(data)
    names = {c["id"]: c["name"] for c in doc["categories"]}
    return {
        im["file_name"]: sorted((names[a["category_id"]], a["bbox"]) for a in doc["annotations"] if a["image_id"] == im["id"])
        for im in doc["images"]
    }


def test_round_trip_dataset_to_predictions_to_export_to_dataset(backend, tmp_path, taxonomy):
    """COCO boxes -> the backend's predictions (a detector that sees the truth) -> accepted in Label Studio and
    exported -> imported: the same boxes, within rounding."""
    client, _, _, data = backend
    tasks = [task(i, f"/data/upload/1/0a1b2c3d-{im['file_name']}") for i, im in enumerate(data.coco["images"], start=1)]
    predictions = client.post("/labelstudio/predict", json=predict_body(tasks)).json()["results"]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(export_from_predictions(tasks, predictions)))

    result = import_labelstudio(export, data.images, tmp_path / "data", taxonomy)
    assert result.problems == [] and result.images_added == 4 and result.background_images == 1
    assert result.boxes_added == 5 and result.format == "labelstudio"
    imported = boxes_by_file(tmp_path / "data")
    expected = data.boxes()
    assert sorted(imported) == sorted(expected)
    for name, boxes in expected.items():
        assert [label for label, _ in imported[name]] == [label for label, _ in boxes]
        for (_, got), (_, want) in zip(imported[name], boxes):
            assert got == pytest.approx(want, abs=0.002), name
    source = annotations(tmp_path / "data")["images"][0]["source"]
    assert source["format"] == "labelstudio" and source["path"] == "bin_a.png"


def region(label="can", x=10.0, y=10.0, w=20.0, h=20.0, size=(64, 48), **value) -> dict:
    return {"id": "r1", "from_name": "label", "to_name": "image", "type": "rectanglelabels", "origin": "manual",
            "original_width": size[0], "original_height": size[1], "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label], **value}}


def ls_task(task_id, image, *annotations) -> dict:
    return {"id": task_id, "data": {"image": image}, "annotations": list(annotations), "predictions": [], "meta": {}}


def annotation(ann_id, result, cancelled=False, updated="2026-05-04T06:00:00Z") -> dict:
    return {"id": ann_id, "result": result, "was_cancelled": cancelled, "created_at": "2026-05-01T00:00:00Z", "updated_at": updated}


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "media"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.png", "c.png", "d.png", "e.png", "sub/f.png", "ab12cd34-g.png"]):
        (folder / name).write_bytes(png(seed=i))
    (folder / "broken.png").write_bytes(png(seed=99)[:60])
    return folder


def write_export(tmp_path, tasks) -> Path:
    path = tmp_path / "project-1.json"
    path.write_text(json.dumps(tasks))
    return path


def test_import_takes_the_latest_accepted_annotation_and_finds_files_by_each_url_form(tmp_path, images, taxonomy):
    tasks = [
        ls_task(1, "/data/upload/3/0f0f0f0f-a.png",  # the original file, named without Label Studio's prefix
                annotation(10, [region("can")], updated="2026-05-04T06:00:00Z"),
                annotation(11, [region("glass", x=50)], updated="2026-05-04T07:00:00Z"),  # the latest: taken
                annotation(12, [region("cardboard")], cancelled=True, updated="2026-05-04T08:00:00Z")),  # skipped
        ls_task(2, "/data/local-files/?d=sub/f.png", annotation(20, [region("plastic_bag", x=0, y=0, w=100, h=100)])),
        ls_task(3, "/data/upload/3/ab12cd34-g.png", annotation(30, [])),  # accepted and empty: background
        ls_task(4, "b.png", annotation(40, [region("Plastic Bottle"), {"type": "choices", "value": {"choices": ["ok"]}}])),
    ]
    result = import_labelstudio(write_export(tmp_path, tasks), images, tmp_path / "data", taxonomy)
    assert result.problems == [] and result.images_added == 4 and result.background_images == 1
    assert boxes_by_file(tmp_path / "data") == {
        "a.png": [("glass", [32.0, 4.8, 12.8, 9.6])],
        "sub/f.png": [("plastic_bag", [0.0, 0.0, 64.0, 48.0])],
        "ab12cd34-g.png": [],
        "b.png": [("plastic_bottle", [6.4, 4.8, 12.8, 9.6])],
    }


def test_import_reports_every_problem_by_task_and_skips_those_tasks(tmp_path, images, taxonomy):
    tasks = [
        ls_task(1, "/data/upload/3/0f0f0f0f-missing.png", annotation(10, [region()])),
        ls_task(2, "broken.png", annotation(20, [region()])),
        ls_task(3, "a.png", annotation(30, [region("banana")])),
        ls_task(4, "b.png", annotation(40, [region(x=90, w=30)])),
        ls_task(5, "c.png", annotation(50, [region()], cancelled=True)),
        ls_task(6, "d.png"),
        ls_task(7, "e.png", annotation(70, [region(rotation=15)])),
        ls_task(8, "e.png", annotation(80, [region(size=(48, 64))])),
        ls_task(9, "e.png", annotation(90, [{**region(), "type": "brushlabels", "value": {"format": "rle", "rle": [1], "brushlabels": ["can"]}}])),
        ls_task(10, "e.png", annotation(100, [region(label="can", rectanglelabels=["can", "glass"])])),
        ls_task(11, "sub/f.png", annotation(110, [region()])),  # the one good task
    ]
    export = write_export(tmp_path, tasks)
    result = import_labelstudio(export, images, tmp_path / "data", taxonomy)
    kinds = {p.image_id: p.kind for p in result.problems}
    assert kinds == {1: "missing_file", 2: "truncated_image", 3: "unknown_category", 4: "box_outside_image", 5: "unannotated_task",
                     6: "unannotated_task", 7: "rotated_box", 8: "size_mismatch", 9: "unsupported_region", 10: "malformed_region"}
    assert all(p.file == "project-1.json" and p.line == p.image_id for p in result.problems)  # the task's position in the export
    by_task = {p.image_id: p for p in result.problems}
    assert "cancelled" in by_task[5].detail and "no annotation" in by_task[6].detail
    assert by_task[3].annotation_id == 30 and "banana" in by_task[3].detail
    assert (result.images_found, result.images_added, result.skipped) == (11, 1, 10)
    report = format_report(result.problems)
    assert "unannotated_task (2)" in report and "project-1.json:7: task 7:" in report

    with pytest.raises(ImportRejected):
        import_labelstudio(export, images, tmp_path / "strict", taxonomy, strict=True)
    assert not (tmp_path / "strict").exists()


def test_import_maps_labels_and_refuses_what_is_not_an_export(tmp_path, images, taxonomy):
    tasks = [ls_task(1, "a.png", annotation(10, [region("Tin"), region("Stone")]))]
    result = import_labelstudio(write_export(tmp_path, tasks), images, tmp_path / "data", taxonomy, mapping={"Tin": "can", "Stone": None})
    assert result.boxes_per_class == {"can": 1} and result.boxes_dropped == {"Stone": 1}
    (tmp_path / "coco.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(ValueError, match="binsight import coco"):
        import_labelstudio(tmp_path / "coco.json", images, tmp_path / "data", taxonomy)
    (tmp_path / "min.json").write_text(json.dumps([{"image": "a.png", "label": []}]))
    with pytest.raises(ValueError, match="JSON-MIN"):
        import_labelstudio(tmp_path / "min.json", images, tmp_path / "data", taxonomy)
    with pytest.raises(FileNotFoundError, match="not found"):
        import_labelstudio(tmp_path / "none.json", images, tmp_path / "data", taxonomy)


def test_task_urls_into_the_local_network_are_refused_unless_allowed():
    from serve.labelstudio import ImageFetcher, TaskImageError

    fetcher = ImageFetcher(None, None, 1_000_000)
    for url in ("http://127.0.0.1:5432/", "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/a.png", "http://[::1]/x.png"):
        with pytest.raises(TaskImageError) as err:
            fetcher.fetch(url)
        assert err.value.code == "image_url_forbidden", url
    open_fetcher = ImageFetcher(None, None, 1_000_000, allow_private=True, timeout_s=0.5)
    with pytest.raises(TaskImageError) as err:  # allowed: it is tried (and nothing listens there)
        open_fetcher.fetch("http://127.0.0.1:9/x.png")
    assert err.value.code != "image_url_forbidden"


def test_a_token_refresh_answered_with_html_is_a_clear_task_error():
    import httpx

    from serve.labelstudio import ImageFetcher, TaskImageError

    def handler(request):
        if request.url.path == "/api/token/refresh/":
            return httpx.Response(200, text="<html>proxy login</html>")
        return httpx.Response(200, content=b"")

    token = "x." + base64.urlsafe_b64encode(json.dumps({"token_type": "refresh", "exp": 9e9}).encode()).decode().rstrip("=") + ".y"
    fetcher = ImageFetcher(LS, token, 1_000_000, transport=httpx.MockTransport(handler))
    with pytest.raises(TaskImageError) as err:
        fetcher.fetch("/data/upload/1/a.png")
    assert err.value.code == "labelstudio_token_refused"
