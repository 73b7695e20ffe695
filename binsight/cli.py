"""The `binsight` command: what users do by hand, one subcommand each (`binsight COMMAND -h` explains it).

    binsight import yolo DIR           [--data data] [--classes configs/classes.yaml] [--map FILE]
                                       [--fraction biowaste] [--strict] [--report reports/import_report.json]
    binsight import coco JSON IMAGES   [--split NAME] and the same options
    binsight import labelstudio EXPORT IMAGES   the same options
    binsight labelstudio-config        [--classes configs/classes.yaml | --model DIR]  Label Studio's labeling config
    binsight serve | create-key NAME (--truck ID | --fleet) | revoke-key NAME | retention [--days N] | migrate | settings
    binsight create-user NAME --role reviewer|admin | set-password NAME | disable-user NAME | enable-user NAME | list-users
    binsight export-reviewed --out DIR  reviewed inspections into a dataset folder, for `dvc add` and `dvc repro`
    binsight gdpr export BIN --out FILE.zip | gdpr delete BIN   a household's data (Art. 15 / Art. 17)
    binsight export inspections|loads|open-data --out ...  statistics for BI tools and the open-data portal
    binsight notices list [--level N] | notices render ID --out FILE.pdf|.html   notices to residents
    binsight registry import-bins CSV [--replace] | import-districts GEOJSON [--name-property P] | relink [--since DATE] | show RFID
    binsight access-log [--bin RFID] [--since DATE] [--user NAME]   who opened which photo, as CSV
    binsight config                    every pipeline parameter with its meaning

The service commands are serve/cli.py's (`python -m serve.cli ...` still
works). A user mistake (a missing file, a folder where a file belongs, invalid
YAML or JSON, a name collision, problems under --strict, a
BINSIGHT_DATABASE_URL that does not lead to a database) ends with one line
`binsight: error: ...` on stderr and exit status 2, never a traceback; an
import refused that way has not touched DATA.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.exc import ArgumentError, OperationalError

from pipeline.config import DEFAULT_CLASSES, Taxonomy, load_taxonomy
from serve import cli as serve_cli
from serve.migrate import SchemaNotCurrent

USER_ERROR = 2
DEFAULT_REPORT = Path("reports/import_report.json")
DATABASE_FREE_COMMANDS = ("import", "labelstudio-config", "config")  # the pipeline's commands: no database

MAP_HELP = """class map (--map): a YAML mapping of source class names to binsight class
names, or to null to drop that class's boxes, e.g.
    Plastics: plastics
    Cardboard: null
Source names not in the map go to the binsight class of the same name
(compared in lower case, other characters as `_`: 'E-waste' -> e_waste); a
source class that reaches no binsight class is an `unknown_category` problem.
A map name that matches no class of the source (data.yaml's names, the COCO
categories) is taken for a typo and refuses the import.

Images go to DATA/images, their boxes and metadata into DATA/annotations.json.
An image already in DATA (same content) is not added again; a different image
under a name DATA already holds refuses the whole import; a failing import
leaves DATA as it was. Version the result with `dvc add DATA`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="binsight", description="binsight: contaminant detection in waste-bin photos.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    importing = sub.add_parser("import", help="import a labelled dataset (YOLO, COCO, Label Studio) into the canonical data/ folder",
                               description="Import a labelled dataset into the canonical dataset (annotations.json + images/).")
    formats = importing.add_subparsers(dest="format", required=True, metavar="FORMAT")
    yolo = formats.add_parser(
        "yolo", help="an Ultralytics YOLO dataset (data.yaml + images/labels folders)",
        description=textwrap.fill(
            "Import an Ultralytics YOLO dataset: DIR holds data.yaml (class names) and either "
            "<split>/images + <split>/labels or images/<split> + labels/<split>. Images land in "
            "DATA/images/<split>/...; the split is kept as metadata for the prepare stage."),
        epilog=MAP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    yolo.add_argument("source", type=Path, metavar="DIR", help="the dataset folder (or its data.yaml)")
    _import_options(yolo)
    coco = formats.add_parser(
        "coco", help="a COCO detection file (Label Studio, CVAT, Roboflow exports)",
        description=textwrap.fill(
            "Import a COCO detection file; each image's file_name is looked up under IMAGES "
            "(then by its base name). Any id numbering is accepted; categories are matched by name."),
        epilog=MAP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    coco.add_argument("json", type=Path, metavar="JSON", help="the COCO annotation file")
    coco.add_argument("images", type=Path, metavar="IMAGES", help="the folder the file_names are relative to")
    coco.add_argument("--split", help="the source split these images belong to (train, valid, test): kept as "
                      "metadata for the prepare stage and used as the folder under DATA/images")
    _import_options(coco)
    labelstudio = formats.add_parser(
        "labelstudio", help="a Label Studio JSON export (tasks with their annotations)",
        description=textwrap.fill(
            "Import Label Studio's JSON export (Export -> JSON): of each task the latest annotation that was "
            "not cancelled; its rectangles (percent of the image) become pixel boxes, an empty one makes a "
            "background image, a task with only cancelled annotations is skipped. Each task's image "
            "(/data/upload/N/<id>-<name>, /data/local-files/?d=<path>, a URL or a file name) is looked up "
            "under IMAGES, then by its file name."),
        epilog=MAP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    labelstudio.add_argument("json", type=Path, metavar="EXPORT", help="the JSON export (a list of tasks)")
    labelstudio.add_argument("images", type=Path, metavar="IMAGES", help="the folder holding the images: the originals, "
                             "Label Studio's media/upload folder, or the local-files storage's root")
    _import_options(labelstudio)

    serve_cli.add_commands(sub)
    ls_config = sub.add_parser(
        "labelstudio-config", help="print the Label Studio labeling config (XML) for binsight's classes",
        description=textwrap.fill(
            "Print the labeling config of a Label Studio project for binsight's classes: an Image ($image) and "
            "RectangleLabels with one coloured label per class, the names the ML backend (/labelstudio) and "
            "`binsight import labelstudio` expect. Paste it into Settings -> Labeling Interface -> Code."),
    )
    source = ls_config.add_mutually_exclusive_group()
    source.add_argument("--classes", type=Path, default=DEFAULT_CLASSES, help=f"the class list (default: {DEFAULT_CLASSES})")
    source.add_argument("--model", type=Path, metavar="DIR", help="the classes of the model in DIR (its model_card.json), as the service serves it")
    sub.add_parser("config", help="list every pipeline parameter with its meaning",
                   description="Print every key of the parameter files (configs/params.yaml) with its meaning.")
    return parser


def _import_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=Path("data"), help="the canonical dataset to create or merge into (default: data)")
    parser.add_argument("--classes", type=Path, default=DEFAULT_CLASSES, help=f"the binsight class list to import into (default: {DEFAULT_CLASSES})")
    parser.add_argument("--map", type=Path, metavar="FILE", help="class map YAML: source class name -> binsight class name or null (drop); see below")
    parser.add_argument("--fraction", default="biowaste", help="waste fraction recorded for the imported images (default: biowaste)")
    parser.add_argument("--strict", action="store_true", help="fail on any problem and import nothing (default: skip and count bad items)")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help=f"JSON report of the import (default: {DEFAULT_REPORT})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage mistake: argparse prints usage and one error line, exit 2
    try:
        _check_class_list(args)
        if args.command == "import":
            return _import(args)
        if args.command == "labelstudio-config":
            from serve.labelstudio import labeling_config_for

            print(labeling_config_for(args.classes, args.model), end="")
            return 0
        if args.command == "config":
            from pipeline.config import reference

            print(reference())
            return 0
        return serve_cli.run(args)
    except SystemExit as err:
        if not isinstance(err.code, str) or args.debug:  # an exit status, not a message
            raise
        return _fail(err.code)
    except (ValueError, OSError, SchemaNotCurrent) as err:  # our messages name the file; pydantic's ValidationError is a ValueError
        if args.debug:  # a message that does not explain itself may be a bug: --debug shows where
            raise
        return _fail(_one_line(err))
    except (ArgumentError, OperationalError, ImportError) as err:  # the service commands' database, or its driver
        # Only the service commands open the database: elsewhere an ImportError is a missing package, not a driver.
        problem = _database_problem(err) if args.command not in DATABASE_FREE_COMMANDS else None
        if args.debug or problem is None:  # None: the URL is fine, so the error is a bug
            raise
        return _fail(problem)


def _import(args: argparse.Namespace) -> int:
    from pipeline.coco import write_json_atomic
    from pipeline.importers import ImportRejected, import_coco, import_labelstudio, import_yolo, load_mapping

    _check_import_paths(args)
    taxonomy = _taxonomy(args.classes)
    mapping = load_mapping(args.map) if args.map else None
    options = {"mapping": mapping, "fraction": args.fraction, "strict": args.strict}
    try:
        if args.format == "yolo":
            result = import_yolo(args.source, args.data, taxonomy, **options)
        elif args.format == "labelstudio":
            result = import_labelstudio(args.json, args.images, args.data, taxonomy, **options)
        else:
            result = import_coco(args.json, args.images, args.data, taxonomy, split=args.split, **options)
    except ImportRejected as err:
        write_json_atomic(args.report, err.result.as_dict())
        print(err.result.summary(), file=sys.stderr)
        return _fail(f"{err}; report: {args.report}")
    print(result.summary())
    try:
        write_json_atomic(args.report, result.as_dict())
    except OSError as err:  # checked before the merge, so only a change since then: say that data/ did change
        return _fail(f"imported into {args.data}, but the report could not be written: {_one_line(err)}")
    print(f"report: {args.report}")
    if result.images_added:
        print(f"next: `dvc add {args.data}` to version the result, then `dvc repro`")
    return 0


def _check_class_list(args: argparse.Namespace) -> None:
    """--classes that cannot be read, said before any work: a folder, or the default outside the project folder."""
    classes = getattr(args, "classes", None)
    if classes is None or getattr(args, "model", None) is not None:  # labelstudio-config --model reads no class list
        return
    if classes.is_dir():
        raise ValueError(f"--classes {classes}: is a directory, expected a YAML file")
    # The default is relative to the working directory: it is there only when binsight runs in the checkout.
    if classes == DEFAULT_CLASSES and not classes.exists():
        raise ValueError(f"config file not found: {classes} (the default --classes, looked up in {Path.cwd()}): "
                         "run from the project folder or pass --classes FILE")


def _check_import_paths(args: argparse.Namespace) -> None:
    """Refuse paths that would fail only midway with errno's words (`Is a directory`), each by its option.

    The report is written after the merge: a report path that cannot be written must refuse the
    import before data/ changes, not fail after it did.
    """
    if args.map is not None and args.map.is_dir():
        raise ValueError(f"--map {args.map}: is a directory, expected a YAML file")
    _check_folder("--data", args.data, "the dataset folder (created if absent)")
    _check_file("--report", args.report, "a JSON file name")


def _check_folder(option: str, path: Path, expected: str) -> None:
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: is a file, expected {expected}")
    _check_ancestors(option, path)


def _check_file(option: str, path: Path, expected: str) -> None:
    """A file binsight will write (atomically: a temporary file in its folder, renamed), its missing folders made."""
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a directory, expected {expected}")
    folder = _check_ancestors(option, path)
    try:
        with tempfile.TemporaryFile(dir=folder):  # the surest test of "may I write here": try it
            pass
    except OSError as err:
        raise ValueError(f"{option} {path}: cannot write in {folder}: {err.strerror}") from None


def _check_ancestors(option: str, path: Path) -> Path:
    """The nearest existing folder above path; ValueError when what exists there is a file."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{option} {path}: {parent} is a file, not a folder")
            return parent
    return Path(path.absolute().anchor)


def _database_problem(err: Exception) -> str | None:
    """One line naming BINSIGHT_DATABASE_URL, its password hidden; None when the URL is not at fault."""
    from serve.db import DATABASE_URL_EXAMPLE, DatabaseUrlError, database_url_secrets, masked_database_url, parse_database_url
    from serve.settings import ServeSettings

    try:
        url = ServeSettings().database_url
    except ValueError:  # another setting is wrong: then the service commands stopped before any database work
        return None
    try:
        parsed = parse_database_url(url)  # its message never quotes the URL
    except DatabaseUrlError as bad:
        return str(bad)
    try:
        dialect = parsed.get_dialect()  # an unknown scheme: NoSuchModuleError, an ArgumentError naming the scheme only
    except ArgumentError as bad:
        return f"BINSIGHT_DATABASE_URL is not a database URL ({_one_line(bad)}); {DATABASE_URL_EXAMPLE}"
    try:
        dialect.import_dbapi()
    except ImportError as missing:
        return f"BINSIGHT_DATABASE_URL names the driver {parsed.drivername!r}, which is not installed ({_one_line(missing)})"
    if not isinstance(err, OperationalError):  # the URL is usable: not the user's mistake
        return None
    reason = _one_line(err.orig if err.orig is not None else err)
    for secret in database_url_secrets(parsed):
        reason = reason.replace(secret, "***")
    return f"the database of BINSIGHT_DATABASE_URL={masked_database_url(parsed)} cannot be used: {reason}"


def _taxonomy(path: Path) -> Taxonomy:
    try:
        return load_taxonomy(path)
    except ValidationError as err:
        raise ValueError(f"class list {path}: {_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    if isinstance(err, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or err.title}: {e['msg']}" for e in err.errors())
    return " ".join(str(err).split())


def _fail(message: str) -> int:
    print(f"binsight: error: {message}", file=sys.stderr)
    return USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
