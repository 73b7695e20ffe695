"""Importers of labelled datasets into the canonical dataset (pipeline/coco.py): data/annotations.json + data/images/.

    from pipeline.importers import import_yolo, import_coco
    result = import_yolo("../shared/data/trashnetpp", "data", load_taxonomy(...), mapping={"Cable": None})
    result = import_coco("export/result.json", "export", "data", taxonomy, split="train")

Both return an `ImportResult` (counts, per-class boxes, every problem by file
and line, `as_dict()` for a JSON report, `summary()` for people) and share
the rules of pipeline/importers/merge.py: no image twice (content hash),
nothing overwritten, all or nothing. Problems use pipeline.validate's kinds
and report format. Without `strict`, items with a problem are skipped and
counted; with it, any problem raises `ImportRejected` and nothing is written.
Bad arguments (missing files, invalid YAML/JSON, an id that is not a number
or string, an unknown fraction, a map to an unknown class, or, for YOLO and COCO,
from a name the source lacks) raise FileNotFoundError or ValueError with a message naming the
file and what is wrong. `binsight import ...` (binsight/cli.py) is the
command line.
"""

from pipeline.importers.coco import import_coco
from pipeline.importers.common import load_mapping
from pipeline.importers.labelstudio import import_labelstudio
from pipeline.importers.merge import NameCollision
from pipeline.importers.result import ImportRejected, ImportResult
from pipeline.importers.yolo import import_yolo

__all__ = ["ImportRejected", "ImportResult", "NameCollision", "import_coco", "import_labelstudio", "import_yolo", "load_mapping"]
