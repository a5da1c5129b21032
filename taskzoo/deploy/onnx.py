"""A predictor's networks as ONNX files, and the same predictor running them on onnxruntime.

What is exported is what a call reaches: a predictor names the model methods its calls run
(`Predictor.onnx_methods`: "forward" unless it says otherwise; a dotted path reaches a
submodule's method). Each is recorded while the predictor runs on inputs (the task's example
inputs, or real ones given), traced by torch.export with every input dimension left to the
exporter (`Dim.AUTO`: batch, length and image size stay dynamic unless the code fixes them),
and checked against torch on every recorded call. Pre- and postprocessing, decoding loops
(beam search, box decoding and NMS) and environments stay in Python; `Predictor.onnx_python`
says what.

An export is a folder: one `<method>.onnx` per method and `onnx.json`, the manifest. The
manifest holds what the predictor needs besides the networks (the task's config and data
state: vocabulary, labels, normalisation, input size), each graph's inputs, outputs and
sha256, and the parity measured at export.

    >>> export_onnx("bigru.sst2_distilled", "exports/")               # doctest: +SKIP
    >>> clf = load_onnx("exports/bigru.sst2_distilled")              # doctest: +SKIP
    >>> clf("a gripping , beautiful film")                           # doctest: +SKIP
    {'label': 'positive', 'score': 0.9923}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from taskzoo.errors import RunFileError, UsageError

FORMAT = "taskzoo-onnx/1"
MANIFEST = "onnx.json"
EXTRA = 'pip install -e ".[onnx]"'


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise UsageError(f"backend='onnx' and ONNX export need onnxruntime and onnxscript: {EXTRA}"
                         ) from None
    return onnxruntime


def export_onnx(spec: str | os.PathLike[str], out: str | os.PathLike[str], *,
                inputs: list[Any] | None = None, name: str | None = None) -> Path:
    """Export the networks of the predictor that weights `spec` (a released name, a run
    directory, a `.safetensors` with its card) make into the folder `out/<name>`; returns
    that folder. `inputs` are what the predictor runs on while its calls are recorded (the
    task's example inputs by default). An earlier export there is replaced; a folder holding
    anything else is refused.

    >>> export_onnx("runs/sst2", "exports")          # doctest: +SKIP
    PosixPath('exports/bigru.sst2')
    """
    from taskzoo.weights.resolver import SpecRules, resolve_spec

    _onnxruntime()
    source = resolve_spec(spec, task=None, rules=SpecRules(run_dirs=True))
    name = name or (source.card.name if source.card else Path(str(spec)).resolve().name)
    if not name or "/" in name or name in (".", ".."):
        raise UsageError(f"name={name!r}: expected a plain folder name")
    target = Path(out) / name
    _check_target(target)
    manifest, files = build_export(source, inputs)
    _write_folder(target, manifest, files)
    return target


def build_export(source: Any, inputs: list[Any] | None = None) -> tuple[dict, dict[str, bytes]]:
    """(the manifest, {file name: ONNX bytes}) of the predictor of weights `source`."""
    import torch

    from taskzoo.deploy.graphs import Recording, export_method

    restored = source.restore(device="cpu")
    predictor = restored.predictor()
    methods = tuple(predictor.onnx_methods)
    if not methods:
        raise UsageError(f"the {source.task} predictor runs no network ONNX can hold "
                         f"({predictor.onnx_python or 'nothing to export'})")
    items = list(inputs) if inputs is not None else restored.task.example_inputs(4)
    with Recording(predictor.model, methods) as records:
        predictor.onnx_examples(items)
    graphs, files, missing = [], {}, []
    for method, record in records.items():
        if not record.calls:
            missing.append(method)
            continue
        data, graph = export_method(predictor.model, record)
        graph["file"] = method.replace(".", "_") + ".onnx"
        graph["sha256"] = hashlib.sha256(data).hexdigest()
        graph["parity"] = parity(data, graph, record)
        graphs.append(graph)
        files[graph["file"]] = data
    manifest = {
        "format": FORMAT, "task": source.task, "weights": source.name,
        "config": source.config, "data": source.data, "graphs": graphs,
        "not_exported": missing, "python": predictor.onnx_python,
        "torch": torch.__version__.split("+")[0],
    }
    return manifest, files


def parity(data: bytes, graph: dict[str, Any], record: Any) -> dict[str, Any]:
    """Each recorded call through onnxruntime against torch's own output: the largest
    absolute difference of floating outputs and the count of integer outputs that differ."""
    import torch

    from taskzoo.deploy.graphs import OrtCall, flatten

    call = OrtCall(session(data), graph)
    worst, unequal = 0.0, 0
    for args, kwargs, expected in record.calls:
        got, _ = flatten(call(*args, **kwargs))
        want, _ = flatten(expected)
        for g, w in zip(got, want):
            if w.is_floating_point():
                if g.numel():
                    worst = max(worst, float((g.float() - w.float()).abs().max()))
            else:
                unequal += int(not torch.equal(g.to(w.dtype), w))
    return {"calls": len(record.calls), "max_abs_diff": worst, "integer_outputs_unequal": unequal}


def session(model: bytes | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of `model` on `threads` threads (torch's count by default,
    so a runtime's thread setting holds for both backends)."""
    import torch

    ort = _onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # warnings about unused initialisers are noise to a user
    model = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def load_onnx(path: str | os.PathLike[str], *, threads: int | None = None) -> Any:
    """The predictor of an export folder (or its onnx.json) with its networks on onnxruntime
    (CPU). Each graph is checked against the sha256 its manifest records.

    >>> det = load_onnx("exports/fastestdet.coco")     # doctest: +SKIP
    """
    from taskzoo.deploy.graphs import NotExported, OrtCall, owner_of
    from taskzoo.hub import sha256_file
    from taskzoo.restore import rebuild

    folder = Path(path)
    folder = folder.parent if folder.name == MANIFEST else folder
    manifest = read_manifest(folder)
    where = str(folder / MANIFEST)
    restored = rebuild(manifest["config"], manifest["data"], task=manifest["task"],
                       device="cpu", records=(f'{where} ("config")', f'{where} ("data")'))
    predictor = restored.predictor()
    for graph in manifest["graphs"]:
        file = folder / graph["file"]
        if not file.is_file():
            raise RunFileError(f"{file} is missing; export the weights again")
        if sha256_file(file) != graph["sha256"]:
            raise RunFileError(f"{file} does not match the sha256 in {where}; export again")
        owner, name = owner_of(predictor.model, graph["method"])
        setattr(owner, name, OrtCall(session(file, threads), graph))
    for method in manifest["not_exported"]:
        owner, name = owner_of(predictor.model, method)
        setattr(owner, name, NotExported(method))
    predictor.backend = "onnx"
    return predictor


def read_manifest(folder: Path) -> dict[str, Any]:
    """The export manifest in `folder`; RunFileError when it is missing or not taskzoo's."""
    from taskzoo.restore import json_record

    record, problem = json_record(folder / MANIFEST)
    if problem:
        raise RunFileError(f"{folder / MANIFEST} {problem}: expected the folder "
                           "`taskzoo export --format onnx` writes")
    if record.get("format") != FORMAT:
        raise RunFileError(f"{folder / MANIFEST} is not a {FORMAT} manifest "
                           f"(format {record.get('format')!r}); export again")
    return record


def cached_export(source: Any) -> Path:
    """The export of weights `source` in the cache, made on first use (keyed by the weights'
    sha256, so new weights under the same name export again)."""
    from taskzoo.hub import cache_root, sha256_file

    digest = source.card.sha256 if source.card else sha256_file(source.path)
    label = source.card.name if source.card else "run"
    folder = cache_root() / "onnx" / f"{label}-{digest[:16]}"
    if (folder / MANIFEST).is_file():
        return folder
    manifest, files = build_export(source)
    try:
        _write_folder(folder, manifest, files)
    except FileExistsError:  # another process exported the same weights first
        pass
    return folder


def _check_target(target: Path) -> None:
    """UsageError unless `target` is absent, an empty folder or an earlier export."""
    if not (target.exists() or target.is_symlink()):
        return
    if not target.is_dir() or target.is_symlink():
        raise UsageError(f"{target} exists and is not a folder: choose another --out or --name")
    if any(target.iterdir()) and not _is_manifest(target / MANIFEST):
        raise UsageError(f"{target} already exists and is not an ONNX export of taskzoo's: "
                         "choose another --out or --name (nothing was written)")


def _is_manifest(path: Path) -> bool:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _write_folder(target: Path, manifest: dict[str, Any], files: dict[str, bytes]) -> None:
    """A new export is written in a hidden folder beside `target` and moved into place, so a
    reader never sees half of one. Over an earlier export each file is replaced atomically,
    the manifest last, and only the graphs the old manifest named and the new one does not
    are removed: files someone else put there stay."""
    from taskzoo.files import write_bytes, write_text

    text = json.dumps(manifest, indent=1)
    if target.is_dir():
        old = read_manifest(target) if (target / MANIFEST).is_file() else {"graphs": []}
        for fname, data in files.items():
            write_bytes(target / fname, data)
        write_text(target / MANIFEST, text)
        for graph in old.get("graphs", []):
            stale = target / str(graph.get("file", ""))
            if graph.get("file") not in files and stale.parent == target and stale.is_file():
                stale.unlink()
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)
        (tmp / MANIFEST).write_text(text, encoding="utf-8")
        try:
            tmp.rename(target)
        except OSError as exc:
            if target.exists():
                raise FileExistsError(target) from exc
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
