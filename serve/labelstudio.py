"""Label Studio, for teams that label there: the labeling config, predictions in its format, and its images.

    labeling_config(class_names) -> str            the XML `binsight labelstudio-config` prints
    labeling_config_for(classes=None, model_dir=None)   the same from a class list YAML or a model card
    parse_labeling_config(xml) -> LabelingConfig   which RectangleLabels/Image a prediction belongs to
    to_prediction(detections, w, h, config, version) -> {"result": [...], "score": ..., "model_version": ...}
    ImageFetcher(settings).fetch(url, task_id) -> bytes   a task's image, from Label Studio or any http(s) URL

serve/routers/labelstudio.py puts these behind Label Studio's ML backend
contract (/health, /setup, /predict). Label Studio's rectangles are in
percent of the upright image (x, y, width, height of the top-left corner),
with the image's pixel size beside them as original_width/original_height;
binsight's detections are pixels of the upright photo (x0, y0, x1, y1).
pipeline/importers/labelstudio.py converts the other way when an export is
imported. Imports nothing of the training stack.
"""

from __future__ import annotations

import base64
import colorsys
import ipaddress
import json
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

import httpx

from pipeline.inspection import Detection

# Distinct, colour-blind-friendly first (Okabe-Ito, then Tableau's), bright enough
# behind black label text; classes beyond these get evenly spread hues.
PALETTE = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999",
    "#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1", "#FF9DA7", "#9C755F", "#BAB0AC",
)
MAX_CONFIG_CHARS = 1_000_000
FETCH_TIMEOUT_S = 20.0
TOKEN_MARGIN_S = 30.0  # an access token this close to its expiry is refreshed first
CLOUD_SCHEMES = ("s3", "gs", "azure-blob")


class LabelConfigError(ValueError):
    """A labeling config the backend cannot predict for (no RectangleLabels on an Image, or not XML)."""


class TaskImageError(Exception):
    """A task's image could not be had; `code` names why for Label Studio's log."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def normalise(name: str) -> str:
    """'Plastic Bag' -> 'plastic_bag': how labels of a hand-written config meet class names (as the importers match them)."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def colours(count: int) -> list[str]:
    """`count` distinct background colours: the palette, then evenly spread hues."""
    extra = count - len(PALETTE)
    spread = [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.55, 0.95) for i in range(max(0, extra))]
    return list(PALETTE[:count]) + ["#{:02X}{:02X}{:02X}".format(*(round(c * 255) for c in rgb)) for rgb in spread]


def labeling_config(class_names: Sequence[str]) -> str:
    """The labeling config for binsight's classes: one Image, one RectangleLabels with a label per class."""
    if not class_names:
        raise ValueError("no class names: the labeling config needs at least one label")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"duplicate class names in {list(class_names)}")
    labels = "\n".join(f"    <Label value={quoteattr(name)} background=\"{colour}\"/>" for name, colour in zip(class_names, colours(len(class_names))))
    return (
        "<View>\n"
        '  <Image name="image" value="$image" zoom="true"/>\n'
        '  <RectangleLabels name="label" toName="image">\n'
        f"{labels}\n"
        "  </RectangleLabels>\n"
        "</View>\n"
    )


def labeling_config_for(classes: Path | str | None = None, model_dir: Path | str | None = None) -> str:
    """The labeling config for a model's classes (model_dir/model_card.json), else a class list (default configs/classes.yaml).

    A missing or invalid file raises ValueError (or load_taxonomy's SystemExit) naming it.
    """
    if model_dir is not None:
        from pipeline.model_card import CARD_FILE, ModelCardError, read_card

        try:
            return labeling_config(read_card(Path(model_dir) / CARD_FILE).class_names)
        except ModelCardError as err:
            raise ValueError(str(err)) from None
    from pipeline.config import DEFAULT_CLASSES, load_taxonomy

    return labeling_config(load_taxonomy(classes or DEFAULT_CLASSES).class_names)


@dataclass(frozen=True)
class LabelingConfig:
    from_name: str  # the RectangleLabels tag's name
    to_name: str  # the Image tag's name (its toName)
    image_key: str  # the task data key the Image shows ($image -> "image")
    labels: tuple[str, ...]  # its Label values

    def label_for(self, class_name: str) -> str | None:
        """The config's label for a binsight class: the same name, else the same normalised name; None if it has none."""
        if class_name in self.labels:
            return class_name
        wanted = normalise(class_name)
        return next((label for label in self.labels if normalise(label) == wanted), None)


def parse_labeling_config(xml: str) -> LabelingConfig:
    """The first RectangleLabels tag that labels an Image, or LabelConfigError saying what is missing."""
    if not isinstance(xml, str) or not xml.strip():
        raise LabelConfigError("the labeling config is empty")
    if len(xml) > MAX_CONFIG_CHARS:
        raise LabelConfigError(f"the labeling config is longer than {MAX_CONFIG_CHARS} characters")
    if re.search(r"<!(DOCTYPE|ENTITY)", xml, re.IGNORECASE):
        raise LabelConfigError("the labeling config declares a DOCTYPE or entities, which Label Studio configs never need")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise LabelConfigError(f"the labeling config is not XML: {err}") from None
    images = {el.get("name"): el for el in root.iter() if el.tag.lower() == "image" and el.get("name")}
    if not images:
        raise LabelConfigError("the labeling config has no <Image name=... value=\"$...\"/> tag")
    for el in root.iter():
        if el.tag.lower() != "rectanglelabels" or not el.get("name"):
            continue
        targets = [t.strip() for t in (el.get("toName") or "").split(",")]
        target = next((t for t in targets if t in images), None)
        if target is None:
            continue
        value = images[target].get("value", "")
        if not value.startswith("$") or len(value) < 2:
            raise LabelConfigError(f"the Image {target!r} reads value={value!r}; binsight needs a task data key such as $image")
        labels = tuple(lab.get("value") for lab in el.iter() if lab.tag.lower() == "label" and lab.get("value") is not None)
        return LabelingConfig(el.get("name"), target, value[1:], labels)
    raise LabelConfigError("the labeling config has no <RectangleLabels name=... toName=...> on an Image; "
                           "`binsight labelstudio-config` prints one for the model's classes")


def to_region(detection: Detection, label: str, width: int, height: int, config: LabelingConfig, index: int) -> dict[str, Any]:
    """One detection as a Label Studio rectangle: percent of the upright image, clipped to it."""
    x0, y0, x1, y1 = detection.box
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    return {
        "id": f"binsight-{index}",
        "from_name": config.from_name,
        "to_name": config.to_name,
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {
            "x": x0 / width * 100,
            "y": y0 / height * 100,
            "width": (x1 - x0) / width * 100,
            "height": (y1 - y0) / height * 100,
            "rotation": 0,
            "rectanglelabels": [label],
        },
        "score": float(detection.score),
    }


def to_prediction(detections: Sequence[Detection], width: int, height: int, config: LabelingConfig, model_version: str) -> dict[str, Any]:
    """A task's prediction: its regions (detections of classes the config has a label for), their mean score, the model version."""
    regions = []
    for detection in detections:
        label = config.label_for(detection.label)
        if label is not None:
            regions.append(to_region(detection, label, width, height, config, len(regions)))
    score = sum(r["score"] for r in regions) / len(regions) if regions else 0.0
    return {"result": regions, "score": score, "model_version": model_version}


def secret_value(value: Any) -> str | None:
    """The text of a setting that may be a pydantic SecretStr, a str or None."""
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT (not verified: Label Studio verifies it), or None for a legacy token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class LabelStudioAuth:
    """The Authorization header for Label Studio's API: `Token <key>` for a legacy token; for a personal
    access token (a JWT refresh token) `Bearer <access token>`, exchanged at /api/token/refresh/ and
    renewed before it expires."""

    def __init__(self, base_url: str, token: str):
        self.base_url, self.token = base_url.rstrip("/"), token
        claims = _jwt_claims(token)
        self.kind = "legacy" if claims is None else ("refresh" if claims.get("token_type") == "refresh" else "access")
        self._access: str | None = token if self.kind == "access" else None
        self._expires = float(claims.get("exp", float("inf"))) if claims and self.kind == "access" else 0.0
        self._lock = threading.Lock()

    def header(self, client: httpx.Client) -> str:
        if self.kind == "legacy":
            return f"Token {self.token}"
        if self.kind == "refresh":
            with self._lock:
                if self._access is None or time.time() > self._expires - TOKEN_MARGIN_S:
                    self._refresh(client)
        return f"Bearer {self._access}"

    def forget(self) -> None:
        """Refused: fetch a new access token next time (a refresh token only)."""
        if self.kind == "refresh":
            with self._lock:
                self._access = None

    def _refresh(self, client: httpx.Client) -> None:
        url = f"{self.base_url}/api/token/refresh/"
        try:
            response = client.post(url, json={"refresh": self.token})
        except httpx.HTTPError as err:
            raise TaskImageError("labelstudio_unreachable", f"Label Studio at {self.base_url} did not answer: {err}") from None
        if response.status_code != 200:
            raise TaskImageError("labelstudio_token_refused", f"Label Studio refused the personal access token at {url} "
                                 f"(HTTP {response.status_code}): create a new one and set BINSIGHT_LABELSTUDIO_TOKEN")
        try:
            access = response.json().get("access")
        except (ValueError, AttributeError):  # not JSON, or not an object: a proxy's login page, say
            access = None
        claims = _jwt_claims(access if isinstance(access, str) else "")
        if not access or claims is None:
            raise TaskImageError("labelstudio_token_refused", f"{url} answered without an access token")
        self._access, self._expires = access, float(claims.get("exp", time.time() + 300))


@dataclass
class ImageFetcher:
    """Downloads task images: Label Studio's own (uploads, local files, cloud storage) with its API token,
    any other http(s) URL without it; at most max_bytes, within FETCH_TIMEOUT_S."""

    labelstudio_url: str | None
    token: str | None
    max_bytes: int
    timeout_s: float = FETCH_TIMEOUT_S
    transport: httpx.BaseTransport | None = None  # tests hand in a mock
    allow_private: bool = False
    """Fetch task URLs on private, loopback or link-local addresses too (Label Studio's own address always is)."""
    _auth: LabelStudioAuth | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.labelstudio_url = self.labelstudio_url.rstrip("/") if self.labelstudio_url else None
        if self.labelstudio_url and self.token:
            self._auth = LabelStudioAuth(self.labelstudio_url, self.token)

    @classmethod
    def from_settings(cls, settings: Any, transport: httpx.BaseTransport | None = None) -> "ImageFetcher":
        return cls(getattr(settings, "labelstudio_url", None), secret_value(getattr(settings, "labelstudio_token", None)),
                   settings.max_upload_bytes, transport=transport, allow_private=getattr(settings, "labelstudio_fetch_private_urls", False))

    def resolve(self, url: str, task_id: Any = None) -> tuple[str, bool]:
        """(absolute URL, whether it is Label Studio's and needs its token)."""
        if not isinstance(url, str) or not url.strip():
            raise TaskImageError("no_image_url", "the task has no image URL")
        url = url.strip()
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("http", "https"):
            own = self.labelstudio_url is not None and _origin(url) == _origin(self.labelstudio_url)
            return url, own
        if scheme in CLOUD_SCHEMES:
            if task_id is None:
                raise TaskImageError("unsupported_image_url", f"{url}: a cloud storage URL needs the task id")
            fileuri = base64.urlsafe_b64encode(url.encode()).decode()
            return self._own(f"/tasks/{task_id}/presign/?fileuri={fileuri}", url), True
        if scheme:
            raise TaskImageError("unsupported_image_url", f"{url[:80]}: binsight fetches http(s) URLs and Label Studio's own files, not {scheme}: URLs")
        if url.startswith("upload/"):
            url = "/data/" + url
        if url.startswith("/"):
            return self._own(url, url), True
        raise TaskImageError("unsupported_image_url", f"{url[:80]}: not a URL (expected http(s)://..., /data/upload/... or /data/local-files/?d=...)")

    def _own(self, path: str, original: str) -> str:
        if not self.labelstudio_url or not self.token:
            raise TaskImageError("labelstudio_not_configured", f"{original} is a file Label Studio serves: set BINSIGHT_LABELSTUDIO_URL "
                                 "and BINSIGHT_LABELSTUDIO_TOKEN so that binsight can fetch it")
        return self.labelstudio_url + path

    def client(self) -> httpx.Client:
        """An HTTP client for a batch of fetches (close it, or use it in `with`)."""
        # httpx drops the Authorization header on a redirect to another origin (cloud storage's presigned URL).
        # Every request, redirects included, passes the address check first.
        return httpx.Client(timeout=self.timeout_s, follow_redirects=True, max_redirects=5, transport=self.transport,
                            event_hooks={"request": [self._check_address]})  # fmt: skip

    def _check_address(self, request: httpx.Request) -> None:
        """Refuse URLs that point into the service's own network: whoever can create a Label Studio task must not
        probe it through us (the cloud's metadata address, the database port, ...). Label Studio's own origin is fine."""
        if self.allow_private or (self.labelstudio_url and _origin(str(request.url)) == _origin(self.labelstudio_url)):
            return
        host = request.url.host
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except (socket.gaierror, UnicodeError):
            return  # unresolvable: the request itself fails with a clear error
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
                raise TaskImageError("image_url_forbidden", f"{request.url}: {host} is a private or local address; binsight fetches task "
                                     "images there only from Label Studio itself (BINSIGHT_LABELSTUDIO_FETCH_PRIVATE_URLS=true allows it)")

    def fetch(self, url: str, task_id: Any = None, client: httpx.Client | None = None) -> bytes:
        """The image's bytes, or TaskImageError saying why not."""
        absolute, own = self.resolve(url, task_id)
        if client is None:
            with self.client() as own_client:
                return self.fetch(url, task_id, own_client)
        for attempt in (1, 2):
            headers = {"Authorization": self._auth.header(client)} if own and self._auth else {}
            status, data = self._download(client, absolute, headers)
            if status == 401 and own and self._auth and self._auth.kind == "refresh" and attempt == 1:
                self._auth.forget()  # revoked or expired early: one more try with a fresh access token
                continue
            break
        if status in (401, 403) and own:
            raise TaskImageError("labelstudio_refused", f"Label Studio refused {url} (HTTP {status}): check BINSIGHT_LABELSTUDIO_TOKEN "
                                 "(a personal access token, or a legacy token where the organisation allows them)")
        if status == 404:
            raise TaskImageError("image_not_found", f"{url}: HTTP 404")
        if status != 200:
            raise TaskImageError("image_fetch_failed", f"{url}: HTTP {status}")
        return data

    def _download(self, client: httpx.Client, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            with client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    return response.status_code, b""
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > self.max_bytes:
                    raise TaskImageError("image_too_large", f"{url}: {declared} bytes; at most {self.max_bytes} are accepted")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TaskImageError("image_too_large", f"{url}: more than {self.max_bytes} bytes; at most {self.max_bytes} are accepted")
                    chunks.append(chunk)
                return 200, b"".join(chunks)
        except httpx.TooManyRedirects:
            raise TaskImageError("image_fetch_failed", f"{url}: too many redirects") from None
        except httpx.HTTPError as err:
            raise TaskImageError("image_fetch_failed", f"{url}: {type(err).__name__}: {err}") from None
