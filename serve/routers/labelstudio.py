"""Label Studio's ML backend: pre-annotations from binsight's model, for teams that label there.

    GET  /labelstudio/health   (and GET /labelstudio/)   {"status": "UP", "model_class": "binsight", "model_version": ...}
    POST /labelstudio/setup    {"project", "schema", ...} -> {"model_version": ...}
    POST /labelstudio/predict  {"tasks": [...], "label_config", "project", "params"} -> {"results": [prediction per task]}
    GET  /labelstudio/versions {"versions": [the model version]}

The contract is Label Studio 1.23's (label_studio/ml/api_connector.py) and
label-studio-ml 2.x's (label_studio_ml/api.py). In Label Studio: Project ->
Settings -> Model -> Connect Model, URL `http://<binsight>/labelstudio`,
"Use Basic Authentication" with BINSIGHT_LABELSTUDIO_USER and
BINSIGHT_LABELSTUDIO_KEY (Basic Auth is the one credential Label Studio sends
to an ML backend; it sends it with every call, /health included). Without
BINSIGHT_LABELSTUDIO_KEY every route answers 404 labelstudio_disabled: the
backend is off.

A prediction is one rectanglelabels region per detection at or above
BINSIGHT_MIN_DETECTION_SCORE whose class has a label in the project's
RectangleLabels (same name, or same normalised name), in percent of the
upright image; `from_name`/`to_name` are that tag's name and toName, from the
label_config sent with /predict (or the schema of the project's last /setup).
The image is the task's data under the Image tag's $key, fetched from Label
Studio (uploads, local files, cloud storage) with BINSIGHT_LABELSTUDIO_TOKEN,
or from any http(s) URL; decoded like an upload (JPEG or PNG, EXIF upright,
size limits) and run through the model as /v1/detect does (downscaled to the
card's inference size, boxes in the photo's pixels).

A task whose image cannot be had gets `{"task": id, "error": {"code",
"message"}}` in its place: no `result`, so Label Studio stores no prediction
for it (an empty one would read as "nothing found"), logs the entry, and asks
again next time. So does every task of a /predict whose labeling config is
unusable (Label Studio logs such entries with their message; of an error
status it would log only the status). /setup answers that case with 422, which
Label Studio shows as the model connection's error state.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from pipeline.inspection import downscale
from serve.dependencies import AppMetrics, ReadyDetector, Settings, Spec
from serve.detector import Detector
from serve.errors import ApiError
from serve.imaging import ImageRejected, decode_image
from serve.labelstudio import ImageFetcher, LabelConfigError, LabelingConfig, TaskImageError, parse_labeling_config, secret_value, to_prediction
from serve.schemas import ErrorResponse
from serve.routers.trucks import timed

MODEL_CLASS = "binsight"
DEFAULT_USER = "labelstudio"
SETUP_CACHE_SIZE = 256  # projects whose /setup schema is remembered for a /predict without label_config
RESPONSES = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "The body is not JSON",
        401: "Missing or wrong Basic Auth (BINSIGHT_LABELSTUDIO_USER, BINSIGHT_LABELSTUDIO_KEY)",
        404: "The backend is off (no BINSIGHT_LABELSTUDIO_KEY)",
        413: "The body is larger than BINSIGHT_MAX_UPLOAD_BYTES",
        422: "No usable labeling config: no RectangleLabels on an Image, or none of its labels is a class of the model",
        503: "No model loaded (yet)",
    }.items()
}

basic_auth = HTTPBasic(auto_error=False, realm="binsight Label Studio backend",
                       description="BINSIGHT_LABELSTUDIO_USER and BINSIGHT_LABELSTUDIO_KEY, as set on Label Studio's model connection.")


async def require_labelstudio_key(settings: Settings, credentials: Annotated[HTTPBasicCredentials | None, Depends(basic_auth)]) -> None:
    """Basic Auth with BINSIGHT_LABELSTUDIO_USER/KEY; 404 when no key is set (the backend is off: there is nothing here), else 401."""
    key = secret_value(getattr(settings, "labelstudio_key", None))
    if not key:
        raise ApiError(404, "labelstudio_disabled", "the Label Studio ML backend is off: set BINSIGHT_LABELSTUDIO_KEY to turn it on")
    user = getattr(settings, "labelstudio_user", DEFAULT_USER)
    given_user, given_key = (credentials.username, credentials.password) if credentials else ("", "")
    # Both compared, always: the time taken says nothing about which one was wrong.
    ok = hmac.compare_digest(given_user.encode(), user.encode()) & hmac.compare_digest(given_key.encode(), key.encode())
    if not ok:
        raise HTTPException(401, "Label Studio's Basic Auth user and password (BINSIGHT_LABELSTUDIO_USER, BINSIGHT_LABELSTUDIO_KEY) are required",
                            headers={"WWW-Authenticate": 'Basic realm="binsight Label Studio backend"'})


async def get_image_fetcher(request: Request, settings: Settings) -> ImageFetcher:
    """Fetches task images with BINSIGHT_LABELSTUDIO_URL/TOKEN; one per app, so that an access token is reused until it expires."""
    fetcher = getattr(request.app.state, "labelstudio_fetcher", None)
    if fetcher is None:
        fetcher = request.app.state.labelstudio_fetcher = ImageFetcher.from_settings(settings)
    return fetcher


router = APIRouter(prefix="/labelstudio", tags=["labelstudio"], dependencies=[Depends(require_labelstudio_key)], responses=RESPONSES)


class HealthOut(BaseModel):
    status: str = Field(description='"UP" once the model is loaded (503 before).')
    model_class: str
    model_version: str


class SetupIn(BaseModel):
    """What Label Studio sends when a model is connected, and before each batch of predictions."""

    model_config = ConfigDict(extra="allow")
    project: StrictStr | StrictInt | None = Field(None, description="'<project id>.<created_at timestamp>'")
    label_config: str | None = Field(None, alias="schema", description="The project's labeling config (XML).")
    hostname: str | None = None
    access_token: str | None = Field(None, description="Not used: binsight fetches images with BINSIGHT_LABELSTUDIO_TOKEN.")
    extra_params: Any = None


class SetupOut(BaseModel):
    model_version: str


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    tasks: list[dict[str, Any]] = Field(description="Label Studio tasks: {'id', 'data': {'image': URL, ...}, ...}.")
    label_config: str | None = Field(None, description="The project's labeling config; unset: the one of its last /setup.")
    project: StrictStr | StrictInt | None = Field(None, description="'<project id>.<created_at timestamp>'")
    params: dict[str, Any] | None = Field(None, description="login, password, context: not used.")


class PredictOut(BaseModel):
    results: list[dict[str, Any]] = Field(
        description="One entry per task, in order: {'result': [rectanglelabels regions], 'score', 'model_version'}, "
        "or {'task', 'error': {'code', 'message'}} when its image could not be had."
    )


@router.get("/health", response_model=HealthOut, summary="Label Studio's health check: UP once the model is loaded.")
@router.get("/", response_model=HealthOut, include_in_schema=False)
async def health(detector: ReadyDetector) -> HealthOut:
    return HealthOut(status="UP", model_class=MODEL_CLASS, model_version=detector.version)


@router.get("/versions", summary="The model versions this backend can predict with: the loaded one.")
async def versions(detector: ReadyDetector) -> dict[str, list[str]]:
    return {"versions": [detector.version]}


@router.post("/setup", response_model=SetupOut, summary="Label Studio connects a project: its labeling config is checked and remembered.")
async def setup(body: SetupIn, request: Request, detector: ReadyDetector) -> SetupOut:
    config = checked_config(body.label_config, detector)
    if body.project is not None:
        remembered = _setup_cache(request)
        remembered[project_id(body.project)] = config
        remembered.move_to_end(project_id(body.project))
        while len(remembered) > SETUP_CACHE_SIZE:
            remembered.popitem(last=False)
    return SetupOut(model_version=detector.version)


@router.post("/predict", response_model=PredictOut, summary="Pre-annotations: the model's boxes for each task's image.")
async def predict(body: PredictIn, request: Request, detector: ReadyDetector, spec: Spec, settings: Settings, metrics: AppMetrics,
                  fetcher: Annotated[ImageFetcher, Depends(get_image_fetcher)]) -> PredictOut:
    try:
        config = predict_config(body, request, detector)
    except ApiError as err:  # said per task: Label Studio logs each entry, not the body of an error status
        return PredictOut(results=[{"task": task.get("id"), "error": {"code": err.code, "message": err.message}} for task in body.tasks])

    def predict_one(task: dict[str, Any], client) -> dict[str, Any]:
        data = task.get("data") if isinstance(task.get("data"), dict) else {}
        url = data.get(config.image_key)
        if not isinstance(url, str):
            raise TaskImageError("no_image_url", f"the task has no image URL under data.{config.image_key} (the Image tag's ${config.image_key})")
        raw = fetcher.fetch(url, task.get("id"), client)
        try:
            rgb, _ = decode_image(raw, settings.max_image_pixels)
        except ImageRejected as err:
            raise TaskImageError(err.code, f"{url}: {err}") from None
        small, scale = downscale(rgb, spec.max_side)
        detections = timed(detector, metrics)(small, scale)  # counted in /metrics like the trucks' inferences
        kept = [d for d in detections if d.score >= settings.min_detection_score]
        return to_prediction(kept, rgb.shape[1], rgb.shape[0], config, detector.version)

    def predict_all() -> list[dict[str, Any]]:
        results = []
        with fetcher.client() as client:
            for task in body.tasks:
                try:
                    results.append(predict_one(task, client))
                except TaskImageError as err:
                    results.append({"task": task.get("id"), "error": {"code": err.code, "message": err.message}})
        return results

    return PredictOut(results=await run_in_threadpool(predict_all))


def predict_config(body: PredictIn, request: Request, detector: Detector) -> LabelingConfig:
    """The request's labeling config, else the one of the project's last /setup; ApiError when there is no usable one."""
    if body.label_config:
        return checked_config(body.label_config, detector)
    config = _setup_cache(request).get(project_id(body.project)) if body.project is not None else None
    if config is None:
        raise ApiError(422, "missing_label_config", "no label_config in the request and no /setup of this project before it", "label_config")
    return config


def checked_config(xml: str | None, detector: Detector) -> LabelingConfig:
    """The labeling config's RectangleLabels, or 422 when there is none or none of its labels is a class of the model."""
    try:
        config = parse_labeling_config(xml or "")
    except LabelConfigError as err:
        raise ApiError(422, "invalid_label_config", str(err), "label_config") from None
    if not any(config.label_for(name) is not None for name in detector.class_names):
        raise ApiError(422, "no_known_label", f"none of the labels of RectangleLabels {config.from_name!r} ({', '.join(config.labels) or 'none'}) "
                       f"is a class of the model ({', '.join(detector.class_names)}); `binsight labelstudio-config` prints a matching config",
                       "label_config")
    return config


def project_id(project: str | int) -> str:
    """'12.1717171717' (project id and creation time, as Label Studio sends it) -> '12'."""
    return str(project).split(".", 1)[0]


def _setup_cache(request: Request) -> OrderedDict[str, LabelingConfig]:
    state = request.app.state
    if not hasattr(state, "labelstudio_configs"):
        state.labelstudio_configs = OrderedDict()
    return state.labelstudio_configs
