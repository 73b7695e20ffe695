"""Drives a real Label Studio with label-studio-sdk; run by tests/integration/test_labelstudio_live.py in .venv-labelstudio.

    .venv-labelstudio/bin/python tests/integration/ls_driver.py COMMAND '<JSON arguments>'

prints one JSON object. Every command gets {"url", "token"} (Label Studio and
its admin's API token) besides its own arguments:

    token     {} -> {pat}                                                  a personal access token (a JWT refresh token)
              for binsight to fetch images with, as a team would create one in Account & Settings
    project   {title, label_config, backend_url, backend_user, backend_key} -> {project, ml_backend}
              a project with the labeling config and binsight connected as its ML backend (Basic Auth)
    upload    {project, files: [path]} -> {tasks: [{id, data}]}           images uploaded as tasks
    local     {project, path} -> {tasks: [{id, data}]}                    a local-files storage, synced
    tasks     {project, tasks: [data]} -> {tasks: [{id, data}]}           tasks imported as JSON (image URLs)
    predict   {project, tasks: [id]} -> {predictions: {id: [prediction]}, ml_backend}
              the Data Manager's "Retrieve Predictions" on those tasks, then what each task holds
    annotate  {tasks: [{id, result, was_cancelled}]} -> {annotations: [id]}   a labeller's submissions
    export    {project, out} -> {tasks: n}                                 "Export -> JSON" of all tasks, to the file `out`

It lives in its own venv (Label Studio's pins never meet binsight's); it
imports nothing of binsight.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
from label_studio_sdk import LabelStudio


def client(args: dict) -> LabelStudio:
    return LabelStudio(base_url=args["url"], api_key=args["token"], timeout=120)


def ml_state(ls: LabelStudio, backend_id: int) -> dict:
    backend = ls.ml.get(backend_id)
    return {"id": backend.id, "state": backend.state, "model_version": backend.model_version, "error_message": backend.error_message}


def project(args: dict) -> dict:
    ls = client(args)
    created = ls.projects.create(title=args["title"], label_config=args["label_config"])
    backend = ls.ml.create(project=created.id, url=args["backend_url"], title="binsight", auth_method="BASIC_AUTH",
                           basic_auth_user=args["backend_user"], basic_auth_pass=args["backend_key"], is_interactive=False)
    return {"project": created.id, "ml_backend": ml_state(ls, backend.id)}


def token(args: dict) -> dict:
    return {"pat": client(args).tokens.create().token}


def tasks_of(ls: LabelStudio, project_id: int) -> list[dict]:
    return [{"id": t.id, "data": t.data} for t in ls.tasks.list(project=project_id)]


def upload(args: dict) -> dict:
    files = [(Path(p).name, (Path(p).name, Path(p).read_bytes(), "image/png")) for p in args["files"]]  # one field per file: Label Studio reads them by name
    r = httpx.post(f"{args['url']}/api/projects/{args['project']}/import", files=files,
                   headers={"Authorization": f"Token {args['token']}"}, timeout=120)
    r.raise_for_status()
    return {"tasks": tasks_of(client(args), args["project"])}


def local(args: dict) -> dict:
    ls = client(args)
    storage = ls.import_storage.local.create(project=args["project"], path=args["path"], use_blob_urls=True, title="binsight-local")
    ls.import_storage.local.sync(id=storage.id)
    return {"tasks": tasks_of(ls, args["project"])}


def tasks(args: dict) -> dict:
    ls = client(args)
    ls.projects.import_tasks(args["project"], request=[{"data": data} for data in args["tasks"]], commit_to_project=True)
    return {"tasks": tasks_of(ls, args["project"])}


def predict(args: dict) -> dict:
    ls = client(args)
    ls.actions.create(id="retrieve_tasks_predictions", project=args["project"], selected_items={"all": False, "included": args["tasks"]})
    predictions = {}
    for task_id in args["tasks"]:
        predictions[str(task_id)] = [{"result": p.result, "score": p.score, "model_version": p.model_version}
                                     for p in ls.predictions.list(task=task_id)]
    [backend] = ls.ml.list(project=args["project"])
    return {"predictions": predictions, "ml_backend": ml_state(ls, backend.id)}


def annotate(args: dict) -> dict:
    ls = client(args)
    made = []
    for task in args["tasks"]:
        annotation = ls.annotations.create(task["id"], result=task["result"], was_cancelled=task.get("was_cancelled", False))
        made.append(annotation.id)
    return {"annotations": made}


def export(args: dict) -> dict:
    ls = client(args)
    data = b"".join(ls.projects.exports.download_sync(args["project"], export_type="JSON", download_all_tasks=True))
    Path(args["out"]).write_bytes(data)
    return {"tasks": len(json.loads(data))}


COMMANDS = {"token": token, "project": project, "upload": upload, "local": local, "tasks": tasks, "predict": predict, "annotate": annotate, "export": export}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](json.loads(sys.argv[2])), default=str))
