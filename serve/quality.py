"""Is the picture usable? An unusable one gets the verdict `inconclusive`, never `clean`.

Cheap global statistics on a small grey copy: night (too dark), sun into the
bin (blown out), lens covered (no contrast at all), motion or mud (no sharp
edges). Thresholds are settings, to be tuned on a city's own cameras.
"""

from __future__ import annotations

import cv2
import numpy as np

from serve.settings import ServeSettings

ANALYSIS_SIDE = 160


def quality_issue(rgb: np.ndarray, settings: ServeSettings) -> str | None:
    """None when usable, else one of: too_dark, overexposed, covered, blurred."""
    # OpenCV rather than Pillow + numpy: this runs on every upload, and its
    # fused kernels take a third of the time.
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    # An integer box reduction to 160-319 px: the statistics need no exact size.
    factor = max(1, max(grey.shape) // ANALYSIS_SIDE)
    if factor > 1:
        grey = cv2.resize(grey, (grey.shape[1] // factor, grey.shape[0] // factor), interpolation=cv2.INTER_AREA)
    mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(grey))
    if mean < settings.quality_min_brightness:
        return "too_dark"
    if mean > settings.quality_max_brightness or np.count_nonzero(grey >= 250) / grey.size > settings.quality_max_saturated:
        return "overexposed"
    if std < settings.quality_min_contrast:
        return "covered"
    # Variance of the Laplacian (4-neighbour kernel, inner pixels): edges make it large, blur flattens it.
    laplacian = cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F, ksize=1)[1:-1, 1:-1]
    if float(cv2.meanStdDev(laplacian)[1][0, 0]) ** 2 < settings.quality_min_sharpness:
        return "blurred"
    return None
