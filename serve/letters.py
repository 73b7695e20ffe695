"""A notice as a letter: HTML from the configured Jinja2 template, and a PDF made from the same HTML.

The letter shows the evidence and nothing else of the photo: the stored
photo (already blurred where people were, serve/privacy) cropped around each
confirmed contaminant box, or group of boxes close together, with a margin and
a cap on each crop's share of the frame (serve/crop_areas.py), as JPEGs inside
the HTML (data: URIs; the pages' CSP allows `img-src data:`), side by side in
one row. The PDF is fpdf2's rendering of the HTML's <body> (pure Python, no
system packages); its
built-in font covers Latin-1, so German umlauts and ß print as they are and
typographic dashes and quotes are replaced by plain ones, unless the
configuration names a TrueType font.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF, TextStyle
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from PIL import UnidentifiedImageError
from sqlalchemy.orm import sessionmaker

from pipeline.imageio import open_upright
from serve.boxes_of_record import boxes_of_record
from serve.crop_areas import plan_crops
from serve.db import Bin, Inspection, Notice, as_utc
from serve.notice_config import NoticeConfig

# The crops' row in the letter, in CSS pixels (fpdf2 takes them as points): the PDF's text column is 168 mm = 476 pt wide.
ROW_WIDTH, ROW_HEIGHT = 460, 180
CROP_MAX_WIDTH = 240  # one crop alone is not shown wider than this (85 mm)
PDF_COLUMN_PT = 476
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


def evidence_crops(image: Path, boxes: list[list[float]], margin: float, max_share: float) -> tuple[list[Crop], int]:
    """The upright photo (boxes are in its pixels) cut to each area of serve/crop_areas.py, as JPEGs; and how many were left out.

    No crops when the photo is not there: retention may delete it at any moment, also between a check and the read, so
    it is simply opened and a missing file is the letter without a photo. LetterError when it is there but unreadable.
    """
    try:
        picture = open_upright(image)  # decodes it whole: a truncated file fails here
    except FileNotFoundError:
        return [], 0
    except (OSError, UnidentifiedImageError) as err:
        raise LetterError(f"the stored photo {image} cannot be read ({type(err).__name__}: {err})") from None
    plan = plan_crops(boxes, picture.width, picture.height, margin, max_share)
    crops = []
    for area in plan.areas:
        out = io.BytesIO()
        cut = picture.crop(area).convert("RGB")
        cut.save(out, "JPEG", quality=CROP_QUALITY)
        crops.append(Crop(out.getvalue(), cut.width, cut.height))
    return crops, plan.left_out


def contaminant_boxes(inspection: Inspection, notice: Notice) -> list[list[float]]:
    """The boxes of what the notice names (the finding's contaminants when it was issued)."""
    return [b["box"] for b in boxes_of_record(inspection) if b["label"] in notice.contaminants]


@dataclass(frozen=True)
class Letter:
    notice: Notice
    inspection: Inspection
    html: str
    crops: tuple[Crop, ...]  # none when the photo is no longer stored
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


def shown_sizes(crops: list[Crop]) -> list[dict[str, int]]:
    """Each crop's size in the letter: one common height, so that the row fits ROW_WIDTH x ROW_HEIGHT, none wider than
    CROP_MAX_WIDTH; a small crop may be enlarged to that height (in the PDF its cell's width decides anyway)."""
    if not crops:
        return []
    aspects = [c.width / c.height for c in crops]
    row = min(ROW_HEIGHT, ROW_WIDTH / sum(aspects))
    out = []
    for aspect in aspects:
        width = min(CROP_MAX_WIDTH, aspect * row)
        out.append({"shown_width": max(1, round(width)), "shown_height": max(1, round(width / aspect))})
    return out


def crops_context(crops: list[Crop]) -> list[dict]:
    """The template's `crops`: each with its data: URI, pixels, shown size and its column's share of the row (percent)."""
    sizes = shown_sizes(crops)
    total = sum(s["shown_width"] for s in sizes)
    return [{"uri": c.uri, "width": c.width, "height": c.height, **size, "column_pct": round(100 * size["shown_width"] / total, 1)}
            for c, size in zip(crops, sizes, strict=True)]  # fmt: skip


def letter_context(config: NoticeConfig, notice: Notice, inspection: Inspection, registry: Bin | None, crops: list[Crop],
                   left_out: int = 0) -> dict:  # fmt: skip
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
        "crops": crops_context(crops),
        "crops_left_out": left_out,
        # The row's share of the PDF's text column: fpdf2 sizes a table's images by their cells, not by width=/height=.
        "crops_row_pct": min(100, round(100 * sum(s["shown_width"] for s in shown_sizes(crops)) / PDF_COLUMN_PT)),
        "reference": notice.id[:8].upper(),
    }


def compose(sessions: sessionmaker, image_dir: Path, config: NoticeConfig, notice: Notice) -> Letter:
    """The letter of a stored notice (its finding's crops, when the photo is still stored)."""
    with sessions() as s:
        inspection = s.get(Inspection, notice.inspection_id)
        registry = s.get(Bin, notice.bin_id)
    if inspection is None:
        raise LetterError(f"notice {notice.id}: its inspection {notice.inspection_id} is no longer stored")
    crops: list[Crop] = []
    left_out = 0
    boxes = contaminant_boxes(inspection, notice)
    if inspection.image_path and boxes:
        crops, left_out = evidence_crops(image_dir / inspection.image_path, boxes, config.crop_margin, config.crop_max_share)
    html = render_html(config, letter_context(config, notice, inspection, registry, crops, left_out))
    return Letter(notice, inspection, html, tuple(crops), config.pdf_font)


def _body(html: str) -> str:
    """The <body>'s content: the head (title, styles) is for browsers, and fpdf2 would print a <style>'s text.

    An <img>'s width= and height= go too: in a table fpdf2 sizes images by their cell and logs a warning per image for them.
    """
    found = re.search(r"<body[^>]*>(.*)</body>", html, re.S | re.I)
    body = found.group(1) if found else html
    return re.sub(r"<img\b[^>]*>", lambda tag: re.sub(r'\s(?:width|height)="[^"]*"', "", tag.group(0)), body)


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
