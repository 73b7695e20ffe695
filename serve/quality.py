"""Is the picture usable? An unusable one gets the verdict `inconclusive`, never `clean`.

Cheap global statistics on a small grey copy: night (too dark), sun into the
bin (blown out), lens covered (no contrast at all), motion or mud (no sharp
edges). Thresholds are settings, to be tuned on a city's own cameras.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from serve.settings import ServeSettings

ANALYSIS_SIDE = 160


def quality_issue(rgb: np.ndarray, settings: ServeSettings) -> str | None:
    """None when usable, else one of: too_dark, overexposed, covered, blurred."""
    grey = Image.fromarray(rgb).convert("L")
    # An integer box reduction to 160-319 px: a tenth of the cost of resampling
    # to an exact size, and the statistics do not need one.
    factor = max(1, max(grey.size) // ANALYSIS_SIDE)
    if factor > 1:
        grey = grey.reduce(factor)
    lum = np.asarray(grey, dtype=np.float32)
    if lum.mean() < settings.quality_min_brightness:
        return "too_dark"
    if lum.mean() > settings.quality_max_brightness or (lum >= 250).mean() > settings.quality_max_saturated:
        return "overexposed"
    if lum.std() < settings.quality_min_contrast:
        return "covered"
    # Variance of the Laplacian: edges make it large, blur flattens it.
    laplacian = lum[1:-1, :-2] + lum[1:-1, 2:] + lum[:-2, 1:-1] + lum[2:, 1:-1] - 4 * lum[1:-1, 1:-1]
    if laplacian.var() < settings.quality_min_sharpness:
        return "blurred"
    return None
