"""One model method as an ONNX graph: the calls a predictor makes to it recorded, the method
exported from one of them, and an `OrtCall` that takes the method's place on onnxruntime.

A method's arguments may nest tensors in tuples, lists and dicts beside plain constants
(`deterministic=True`, a decoder's state tuple). `flatten` turns such a structure into its
tensor leaves and a JSON skeleton, so a graph takes the leaves as inputs and the manifest
keeps the skeleton; onnxruntime's flat outputs are put back into the method's own structure
the same way. torch's pytree does this too, but only under a private module name.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from taskzoo.errors import UsageError

CONSTANTS = (bool, int, float, str, type(None))


def flatten(obj: Any, leaves: list[torch.Tensor] | None = None) -> tuple[list[torch.Tensor], Any]:
    """(the tensors in `obj`, depth first, and a JSON skeleton that puts them back)."""
    leaves = [] if leaves is None else leaves
    if isinstance(obj, torch.Tensor):
        leaves.append(obj)
        return leaves, {"t": len(leaves) - 1}
    if isinstance(obj, (tuple, list)):
        kind = "tuple" if isinstance(obj, tuple) else "list"
        return leaves, {kind: [flatten(v, leaves)[1] for v in obj]}
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return leaves, {"dict": {k: flatten(v, leaves)[1] for k, v in obj.items()}}
    if isinstance(obj, CONSTANTS):
        return leaves, {"c": obj}
    raise UsageError(f"a {type(obj).__name__} passes through a network call; ONNX export "
                     "takes tensors, tuples, lists, dicts of them and plain constants")


def unflatten(skeleton: Any, leaves: list[Any]) -> Any:
    """The structure `skeleton` describes, its tensors taken from `leaves`."""
    if "t" in skeleton:
        return leaves[skeleton["t"]]
    if "c" in skeleton:
        return skeleton["c"]
    if "dict" in skeleton:
        return {k: unflatten(v, leaves) for k, v in skeleton["dict"].items()}
    items = [unflatten(v, leaves) for v in skeleton.get("tuple", skeleton.get("list", []))]
    return tuple(items) if "tuple" in skeleton else items


@dataclass
class Recorded:
    """The calls of one method while a predictor ran: (args, kwargs) and the outputs."""

    method: str  # "forward", or a dotted path to a submodule's method ("mtcnn.pnet.forward")
    calls: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = field(default_factory=list)


def owner_of(model: nn.Module, method: str) -> tuple[nn.Module, str]:
    """(the module that holds `method`, the method's own name): "a.b.forward" -> (model.a.b,
    "forward"); UsageError naming the path when it leads nowhere."""
    *path, name = method.split(".")
    owner: Any = model
    for part in path:
        owner = getattr(owner, part, None)
    if not isinstance(owner, nn.Module) or not callable(getattr(owner, name, None)):
        raise UsageError(f"{type(model).__name__} has no method {method!r} to export")
    return owner, name


def _detached(obj: Any) -> Any:
    leaves, skeleton = flatten(obj)
    return unflatten(skeleton, [t.detach().clone() for t in leaves])


class Recording:
    """While open, every call of the named methods on `model` is recorded, with its outputs,
    and still runs as it did (the methods are wrapped on the instance, then put back).

    >>> with Recording(model, ("forward",)) as rec:             # doctest: +SKIP
    ...     predictor(["a gripping film"])
    """

    def __init__(self, model: nn.Module, methods: tuple[str, ...], limit: int = 16) -> None:
        self.model, self.methods, self.limit = model, methods, limit
        self.records = {m: Recorded(m) for m in methods}
        self._patched: list[tuple[nn.Module, str, Any]] = []

    def __enter__(self) -> dict[str, Recorded]:
        for method in self.methods:
            owner, name = owner_of(self.model, method)
            original = getattr(owner, name)
            record = self.records[method]

            def wrapper(*args: Any, _orig: Any = original, _rec: Recorded = record,
                        **kwargs: Any) -> Any:
                out = _orig(*args, **kwargs)
                if len(_rec.calls) < self.limit:
                    _rec.calls.append((_detached(args), _detached(kwargs), _detached(out)))
                return out

            self._patched.append((owner, name, owner.__dict__.get(name)))
            setattr(owner, name, wrapper)
        return self.records

    def __exit__(self, *exc: Any) -> None:
        for owner, name, before in reversed(self._patched):
            if before is None:
                delattr(owner, name)
            else:  # a method already replaced on the instance: put that back
                setattr(owner, name, before)
        self._patched.clear()


class MethodModule(nn.Module):
    """`owner.method` with flat tensor inputs and outputs (what torch.export traces)."""

    def __init__(self, owner: nn.Module, name: str, skeleton: Any) -> None:
        super().__init__()
        self.owner, self.name, self.skeleton = owner, name, skeleton
        self.out_skeleton: Any = None

    def forward(self, leaves: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        args, kwargs = unflatten(self.skeleton, leaves)
        out_leaves, self.out_skeleton = flatten(getattr(self.owner, self.name)(*args, **kwargs))
        return tuple(out_leaves)


def input_names(owner: nn.Module, name: str, skeleton: Any) -> list[str]:
    """A readable name per tensor input: the parameter's own, with an index where it nests."""
    params = [p for p in inspect.signature(getattr(owner, name)).parameters]
    names: list[str] = []

    def walk(node: Any, label: str) -> None:
        if "t" in node:
            names.append(label)
        for key in ("tuple", "list"):
            for i, child in enumerate(node.get(key, [])):
                walk(child, f"{label}_{i}")
        for k, child in node.get("dict", {}).items():
            walk(child, f"{label}_{k}")

    args, kwargs = skeleton["tuple"]
    for i, child in enumerate(args["tuple"]):
        walk(child, params[i] if i < len(params) else f"arg{i}")
    for k, child in kwargs["dict"].items():
        walk(child, k)
    seen: dict[str, int] = {}
    out = []
    for n in names:  # unique, as ONNX requires
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def export_method(model: nn.Module, record: Recorded, opset: int = 18) -> tuple[bytes, dict]:
    """The ONNX bytes of `record.method` traced from its largest recorded call, every input
    dimension left to the exporter (`Dim.AUTO`: dynamic unless the code fixes it), and the
    graph's record for the manifest (input names, skeletons)."""
    if not record.calls:
        raise UsageError(f"{record.method} was not called on the example inputs: nothing to trace")
    owner, name = owner_of(model, record.method)
    sizes = [sum(t.numel() for t in flatten((a, k))[0]) for a, k, _ in record.calls]
    args, kwargs, _ = record.calls[sizes.index(max(sizes))]
    leaves, skeleton = flatten((tuple(args), dict(kwargs)))
    names = input_names(owner, name, skeleton)
    wrapper = MethodModule(owner, name, skeleton).eval()
    auto = torch.export.Dim.AUTO
    dynamic = ([{d: auto for d in range(t.dim())} for t in leaves],)
    with torch.no_grad(), warnings.catch_warnings():
        # the exporter's own deprecation notices (torch._check_is_size) are not the user's
        warnings.simplefilter("ignore")
        wrapper(leaves)  # the output skeleton
        program = torch.onnx.export(wrapper, (leaves,), dynamo=True, dynamic_shapes=dynamic,
                                    input_names=names, opset_version=opset, verbose=False,
                                    optimize=True)
    outs = [o.name for o in program.model.graph.outputs]
    graph = {"method": record.method, "inputs": names, "outputs": outs,
             "skeleton": skeleton, "out_skeleton": wrapper.out_skeleton,
             "dtypes": [str(t.dtype).removeprefix("torch.") for t in leaves]}
    return program.model_proto.SerializeToString(), graph


def same_constants(a: Any, b: Any) -> bool:
    """Whether two skeletons have the same structure and constants (tensors may differ)."""
    if set(a) != set(b):
        return False
    if "t" in a:
        return True
    if "c" in a:
        return a["c"] == b["c"] and type(a["c"]) is type(b["c"])
    if "dict" in a:
        return (a["dict"].keys() == b["dict"].keys()
                and all(same_constants(a["dict"][k], b["dict"][k]) for k in a["dict"]))
    key = "tuple" if "tuple" in a else "list"
    return len(a[key]) == len(b[key]) and all(map(same_constants, a[key], b[key]))


class OrtCall:
    """Takes a model method's place: its arguments flattened into the graph's inputs, run on
    onnxruntime, the outputs put back into the method's structure as CPU tensors."""

    def __init__(self, session: Any, graph: dict[str, Any]) -> None:
        self.session, self.graph = session, graph
        self.out_names = graph["outputs"]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        leaves, skeleton = flatten((tuple(args), dict(kwargs)))
        if not same_constants(skeleton, self.graph["skeleton"]):
            raise UsageError(f"{self.graph['method']} was exported for calls shaped like "
                             f"{_describe(self.graph['skeleton'])}, not {_describe(skeleton)}; "
                             "this call needs backend='torch'")
        feeds = {}
        for name, leaf, dtype in zip(self.graph["inputs"], leaves, self.graph["dtypes"]):
            leaf = leaf.detach().to("cpu", getattr(torch, dtype))
            feeds[name] = leaf.contiguous().numpy()
        outs = self.session.run(self.out_names, feeds)
        return unflatten(self.graph["out_skeleton"], [torch.from_numpy(o) for o in outs])


def _describe(skeleton: Any) -> str:
    if "t" in skeleton:
        return "T"
    if "c" in skeleton:
        return repr(skeleton["c"])
    if "dict" in skeleton:
        return "{" + ", ".join(f"{k}={_describe(v)}" for k, v in skeleton["dict"].items()) + "}"
    key = "tuple" if "tuple" in skeleton else "list"
    return "(" + ", ".join(_describe(v) for v in skeleton[key]) + ")"


class NotExported:
    """Takes the place of a method the export never saw called (another detector, another
    mode): running the untrained torch module behind it would give wrong answers silently."""

    def __init__(self, method: str) -> None:
        self.method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UsageError(f"{self.method} was not reached by the example inputs when this model "
                         "was exported to ONNX, so it has no graph; use backend='torch' for "
                         "this call")
