"""A notice as a letter: HTML from the configured Jinja2 template, and a PDF made from the same HTML.

The letter shows the evidence and nothing else of the photo: the stored
photo (already blurred where people were, serve/privacy) cropped to the union
of the confirmed contaminant boxes plus a margin, as a JPEG inside the HTML
(a data: URI; the pages' CSP allows `img-src data:`). The PDF is fpdf2's
rendering of the HTML's <body> (pure Python, no system packages); its
built-in font covers Latin-1, so German umlauts and ß print as they are and
typographic dashes and quotes are replaced by plain ones, unless the
configuration names a TrueType font.
"""

from __future__ import annotations

import base64
import io
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF, TextStyle
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from sqlalchemy.orm import sessionmaker

from pipeline.imageio import open_upright
from serve.db import Bin, Inspection, Notice, as_utc
from serve.notice_config import NoticeConfig

MIN_MARGIN_PX = 8
SHOWN_MAX = (240, 180)  # CSS pixels a crop is shown at, at most (fpdf2 takes them as points: 85 x 64 mm in the PDF)
CROP_QUALITY = 90
# What the built-in PDF fonts (Latin-1) lack but letters often hold: their nearest Latin-1 spelling.
LATIN1_SPELLING = str.maketrans({"–": "-", "—": "-", "‑": "-", "„": '"', "“": '"', "”": '"', "‚": "'", "‘": "'", "’": "'",
                                 "…": "...", "€": "EUR", "•": "-", "\u202f": " ", "\u2009": " "})  # fmt: skip


class LetterError(ValueError):
    """The letter cannot be made; the message says why (a template mistake names the template)."""


@dataclass(frozen=True)
class Crop:
    jpeg: bytes
    width: int
    height: int

    @property
    def uri(self) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(self.jpeg).decode("ascii")


def crop_box(boxes: list[list[float]], width: int, height: int, margin: float) -> tuple[int, int, int, int]:
    """The union of `boxes` grown by `margin` x its larger side on each side (at least MIN_MARGIN_PX), inside the image."""
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    pad = max(MIN_MARGIN_PX, margin * max(x1 - x0, y1 - y0))
    left, top = max(0, math.floor(x0 - pad)), max(0, math.floor(y0 - pad))
    right, bottom = min(width, math.ceil(x1 + pad)), min(height, math.ceil(y1 + pad))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def evidence_crop(image: Path, boxes: list[list[float]], margin: float) -> Crop:
    """The upright photo (boxes are in its pixels) cut to the contaminant boxes and their margin, as a JPEG."""
    picture = open_upright(image)
    area = crop_box(boxes, picture.width, picture.height, margin)
    out = io.BytesIO()
    cut = picture.crop(area).convert("RGB")
    cut.save(out, "JPEG", quality=CROP_QUALITY)
    return Crop(out.getvalue(), cut.width, cut.height)


def contaminant_boxes(inspection: Inspection, notice: Notice) -> list[list[float]]:
    boxes = inspection.reviewed_detections if inspection.reviewed_detections is not None else inspection.detections or []
    return [b["box"] for b in boxes if b["label"] in notice.contaminants]


@dataclass(frozen=True)
class Letter:
    notice: Notice
    inspection: Inspection
    html: str
    crop: Crop | None
    font: Path | None = None

    @property
    def file_stem(self) -> str:
        return f"hinweis-{self.notice.bin_id}-{as_utc(self.notice.issued_at):%Y%m%d}-{self.notice.id[:8]}"

    def pdf(self) -> bytes:
        return html_to_pdf(self.html, self.font)


def _environment(template: Path) -> Environment:
    return Environment(loader=FileSystemLoader(template.parent), autoescape=select_autoescape(default=True, default_for_string=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip


def render_html(config: NoticeConfig, context: dict) -> str:
    try:
        return _environment(config.letter_template).get_template(config.letter_template.name).render(**context)
    except TemplateError as err:
        raise LetterError(f"{config.letter_template}: {type(err).__name__}: {err}") from None


def _day(at: datetime, config: NoticeConfig) -> str:
    return as_utc(at).astimezone(config.zone).strftime("%d.%m.%Y")


def shown_size(crop: Crop) -> dict[str, int]:
    """The crop's size in the letter: at most SHOWN_MAX, never enlarged (its pixels stay the crop's)."""
    scale = min(1.0, SHOWN_MAX[0] / crop.width, SHOWN_MAX[1] / crop.height)
    return {"shown_width": max(1, round(crop.width * scale)), "shown_height": max(1, round(crop.height * scale))}


def letter_context(config: NoticeConfig, notice: Notice, inspection: Inspection, registry: Bin | None, crop: Crop | None) -> dict:
    rules = config.rules(notice.fraction)
    level_count = len(rules.levels) if rules else notice.level
    levels = {level.action: level for level in rules.levels} if rules else {}
    step = levels.get(notice.action)
    captured = as_utc(inspection.captured_at).astimezone(config.zone)
    return {
        "sender": config.sender,
        "bin": {"rfid": notice.bin_id, "address": registry.address if registry else None},
        "fraction_name": rules.name if rules else notice.fraction,
        "finding_date": captured.strftime("%d.%m.%Y"),
        "finding_time": captured.strftime("%H:%M"),
        "letter_date": _day(notice.issued_at, config),
        "contaminants": [config.german_name(c) for c in notice.contaminants],
        "belongs": rules.belongs if rules else [],
        "level": {"number": notice.level, "of": level_count, "title": step.title if step else notice.action, "text": step.text if step else ""},
        "crop": {"uri": crop.uri, "width": crop.width, "height": crop.height, **shown_size(crop)} if crop else None,
        "reference": notice.id[:8].upper(),
    }


def compose(sessions: sessionmaker, image_dir: Path, config: NoticeConfig, notice: Notice) -> Letter:
    """The letter of a stored notice (its finding's crop, when the photo is still stored)."""
    with sessions() as s:
        inspection = s.get(Inspection, notice.inspection_id)
        registry = s.get(Bin, notice.bin_id)
    if inspection is None:
        raise LetterError(f"notice {notice.id}: its inspection {notice.inspection_id} is no longer stored")
    crop = None
    boxes = contaminant_boxes(inspection, notice)
    if inspection.image_path and boxes and (image_dir / inspection.image_path).is_file():
        crop = evidence_crop(image_dir / inspection.image_path, boxes, config.crop_margin)
    html = render_html(config, letter_context(config, notice, inspection, registry, crop))
    return Letter(notice, inspection, html, crop, config.pdf_font)


def _body(html: str) -> str:
    """The <body>'s content: the head (title, styles) is for browsers, and fpdf2 would print a <style>'s text."""
    found = re.search(r"<body[^>]*>(.*)</body>", html, re.S | re.I)
    return found.group(1) if found else html


def html_to_pdf(html: str, font: Path | None = None) -> bytes:
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(22, 18, 20)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    body = _body(html)
    if font is not None:
        pdf.add_font("letter", fname=str(font))
        family = "letter"
    else:
        family = "Helvetica"
        body = body.translate(LATIN1_SPELLING).encode("latin-1", "replace").decode("latin-1")
    pdf.set_font(family, size=10.5)
    headings = {tag: TextStyle(font_family=family, font_style="B", font_size_pt=size, color=(17, 17, 17), t_margin=top, b_margin=0.4)
                for tag, size, top in (("h1", 14, 4), ("h2", 11.5, 3), ("h3", 11, 3))}  # fmt: skip
    pdf.write_html(body, font_family=family, tag_styles=headings, li_prefix_color=(17, 17, 17))  # fpdf2 draws bullets red by default
    return bytes(pdf.output())
