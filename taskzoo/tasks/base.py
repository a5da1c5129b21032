"""The Task contract every application implements (see DESIGN.md).

A Task instance is made from its config; `run()` then calls, in order: build_data,
build_model, batches, Trainer.fit(step, evaluate), evaluate on the final splits, and
data_state (what `predict --from DIR` needs to rebuild the predictor without the dataset).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import nn

from taskzoo.config import RunConfig, TrainConfig
from taskzoo.data.loader import LoaderSource
from taskzoo.errors import InputError, UsageError, did_you_mean
from taskzoo.jsonable import is_image, json_safe
from taskzoo.runtime import Runtime
from taskzoo.train.types import BatchSource, Callback, FitResult, StepOutput

C = TypeVar("C", bound=RunConfig)


@dataclass
class DataBundle:
    """Splits and whatever the model and predictor need (tasks subclass this)."""

    train: Sequence[Any] | None  # None when rebuilt from a run directory for prediction
    splits: dict[str, Sequence[Any]] = field(default_factory=dict)  # evaluation splits by name
    labels: list[str] = field(default_factory=list)  # class names, index = label id


@dataclass(frozen=True)
class Reference:
    """A published figure to print beside ours."""

    metric: str  # our metric key it compares to, e.g. "dev/accuracy"
    value: float  # the published value on the same 0-1 scale
    source: str  # who, where
    note: str = ""  # what differs (test vs dev, pretrained embeddings, ...)
    dataset: str = ""  # the data it was measured on (the preset_key value); "" = the default


@dataclass(frozen=True)
class CallOption:
    """One keyword option of a predictor's call (`det(image, conf=0.5)`), declared once: its
    value is checked here, and `taskzoo predict` offers it as a flag (`--conf 0.5`) unless
    `cli` is False."""

    name: str
    type: type  # int, float, bool or str; a value is converted to it (the string "0.5" too)
    default: Any = None  # a value that, like None, leaves the predictor's setting (top_k=0)
    help: str = ""
    low: float | None = None  # smallest value in range (excluded when low_open)
    high: float | None = None
    low_open: bool = False
    metavar: str | None = None
    expect: str = ""  # what an error says is expected; empty: said from the type and range
    cli: bool = True  # a `taskzoo predict` flag too (False: only for Python callers)
    choices: tuple[str, ...] = ()  # a str option's valid values; empty: any string
    # offered by `taskzoo serve` too; False for an option that names a file or folder of the
    # machine (a painting's path, a gallery) or writes one: a client never names those
    serve: bool = True

    def is_unset(self, value: Any) -> bool:
        """Whether `value` stands for the predictor's own setting (None always does)."""
        return value is None or (self.default is not None and value == self.default)

    @property
    def flag(self) -> str:
        """The command-line flag: top_k -> --top-k."""
        return "--" + self.name.replace("_", "-")

    def expected(self) -> str:
        """What a valid value is, as error messages say it ("a number in [0, 1]")."""
        if self.expect:
            return self.expect
        if self.type is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.type is str:
            return "a string"
        noun = "a whole number" if self.type is int else "a number"
        if self.low is not None and self.high is not None:
            return f"{noun} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
        return noun

    def check(self, value: Any) -> Any:
        """`value` converted to the option's type; InputError when it is not one or out of range."""
        if self.type is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise InputError(f"{self.name}={value!r}: expected {self.expected()}")
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if self.type is str:
            if not isinstance(value, (str, os.PathLike)):
                raise InputError(f"{self.name}={value!r}: expected {self.expected()}")
            v = os.fspath(value)
            if self.choices and v not in self.choices:
                raise InputError(f"{self.name}={v!r}: expected {self.expected()}."
                                 + did_you_mean(v, self.choices))
            return v
        try:
            v = self.type(value)
        except (TypeError, ValueError):
            raise InputError(f"{self.name}={value!r}: expected {self.expected()}") from None
        below = self.low is not None and (v <= self.low if self.low_open else v < self.low)
        if below or (self.high is not None and v > self.high):
            raise InputError(f"{self.name}={v}: expected {self.expected()}")
        return v


class Predictor:
    """Raw inputs -> outputs, the shape of Hugging Face pipelines:
    `items` (one input or many) -> `preprocess` each on the CPU -> `collate` batches ->
    `forward` on the device -> `postprocess` each result with its example. The base owns
    batching (by length when examples have one), device placement, inference mode and
    precision (its runtime's), so a task only says how one input becomes an example and one
    result becomes an output.

    Keyword options of a call are declared in `call_options` and checked by the base; an
    option's default is the predictor's attribute of the same name (what `configure` sets).
    `parse_cli` turns the command line's strings into inputs; `format` prints one result.

    >>> clf = taskzoo.load("sentiment")                   # doctest: +SKIP
    >>> clf(["a gripping film", "dull"])                  # doctest: +SKIP
    [{'label': 'positive', 'score': 0.97}, {'label': 'negative', 'score': 0.91}]
    """

    input_noun: ClassVar[str] = "input"  # what the error messages call one input
    call_options: ClassVar[tuple[CallOption, ...]] = ()  # keyword options of a call (conf=, top_k=)
    # the model methods a call runs ("forward"; a dotted path reaches a submodule's method):
    # what ONNX export records and traces, and what backend="onnx" runs on onnxruntime;
    # () when the predictor runs no network that ONNX can hold
    onnx_methods: ClassVar[tuple[str, ...]] = ("forward",)
    # what stays in Python around the exported networks ("beam search", "box decoding and NMS")
    onnx_python: ClassVar[str] = "preprocessing and postprocessing"
    backend: str = "torch"  # "onnx" when the networks run on onnxruntime (taskzoo.load(backend=))
    # what one input of a `taskzoo serve` request is: "text", "text-pair" ({"question",
    # "context"}), "question-candidates", "image" (the server decodes base64 or an upload into
    # a PIL image first), "observation" (a JSON array or a state number)
    serve_input: ClassVar[str] = "text"
    # the Hugging Face pipeline tag whose response shape `serve_json` gives ("" for none), and
    # that API's parameter names mapped to this predictor's call options ({"threshold": "conf"})
    hf_task: ClassVar[str] = ""
    hf_parameters: ClassVar[dict[str, str]] = {}

    def __init__(self, model: nn.Module, runtime: Runtime, *, batch_size: int = 64) -> None:
        self.model = model.eval()
        self.runtime = runtime
        self.batch_size = batch_size

    @classmethod
    def option_names(cls) -> list[str]:
        """The names of the call options, as declared."""
        return [o.name for o in cls.call_options]

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The options set, each converted and range-checked (None or an option's `default`
        leaves the predictor's setting); InputError for one this predictor does not take."""
        unknown = sorted(set(options) - set(self.option_names()))
        if unknown:
            raise InputError(f"unknown option(s) {', '.join(unknown)}: this predictor "
                             f"takes {', '.join(self.option_names()) or 'none'}")
        declared = {o.name: o for o in self.call_options}
        return {k: declared[k].check(v) for k, v in options.items() if not declared[k].is_unset(v)}

    def configure(self, **options: Any) -> Predictor:
        """Set defaults of the call options (`taskzoo.load(task, conf=0.5)`). An option this
        predictor does not take, or a bad value, is an InputError."""
        for name, value in self.check_options(options).items():
            setattr(self, name, value)
        return self

    def option_defaults(self) -> dict[str, Any]:
        """Each call option's value when a call does not give it."""
        return {o.name: getattr(self, o.name, o.default) for o in self.call_options}

    def onnx_examples(self, items: list[Any]) -> None:
        """The calls ONNX export records (the networks they reach are exported): the predictor
        on `items`, then on the first alone, so the parity check at export meets a second batch
        size and length. A predictor whose options reach other networks calls those too."""
        self(items)
        self(items[:1])

    def stream_cli(self, inputs: Sequence[str], save: str | None, **options: Any) -> list | None:
        """`taskzoo predict`'s hook for inputs processed as streams rather than examples (a
        video): None when `inputs` are ordinary; else one summary (with `format()`) each."""
        return None

    # -- what a task defines
    def items(self, inputs: Any, **options: Any) -> tuple[list[Any], bool]:
        """The inputs as a list, and whether one input was given (one output is returned)."""
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise InputError(f"expected at least one {self.input_noun}, got an empty list")
            return list(inputs), False
        return [inputs], True

    def context(self, items: list[Any], **options: Any) -> dict[str, Any]:
        """State shared by one call's examples (a table built over all of them, options):
        the call's options over their defaults."""
        return {**self.option_defaults(), **options}

    def preprocess(self, item: Any, index: int, ctx: dict[str, Any]) -> Any:
        """One raw input -> one example on the CPU; InputError naming `index` when it is bad."""
        raise NotImplementedError

    def length(self, example: Any) -> int | None:
        """A size to batch similar examples together (sequence length), or None."""
        return None

    def collate(self, examples: list[Any], ctx: dict[str, Any]) -> Any:
        return torch.stack(examples)

    def forward(self, batch: Any, ctx: dict[str, Any]) -> list[Any]:
        """The model on one batch (on the device, in inference mode): one result per example,
        on the CPU."""
        return list(self.model(batch).float().cpu())

    def postprocess(self, result: Any, example: Any, ctx: dict[str, Any]) -> Any:
        """One result (and the example it came from) -> the output a user gets."""
        return result

    def parse_cli(self, args: Sequence[str]) -> list[Any]:
        """The command line's strings as this predictor's inputs (`taskzoo predict` calls it).

        Text predictors take them as they are; others override it (a JSON array for an
        observation vector, paths and globs for images) and raise InputError saying what
        they expect.
        """
        return list(args)

    def save(self, output: Any, path: Path) -> Path:
        """Write one output to `path` (its suffix may change) for `taskzoo predict --save DIR`;
        tasks whose outputs are images or files override it."""
        raise UsageError("--save writes the outputs of tasks that make images; this task's "
                         "outputs are printed (use --json for a machine-readable form)")

    def to_json(self, output: Any) -> Any:
        """One output as JSON-able data (`taskzoo predict --json`)."""
        return output

    def format(self, text: str, output: Any) -> str:
        """One input and its output as one line for `taskzoo predict` (JSON unless overridden)."""
        return json.dumps({"input": text, "output": output}, ensure_ascii=False)

    # -- `taskzoo serve`
    def from_request(self, value: Any) -> Any:
        """One input of a server request (JSON data, or a PIL image the server decoded) -> this
        predictor's input. A string is never a path here: an image predictor refuses one."""
        if self.serve_input == "image" and isinstance(value, (str, bytes, os.PathLike)):
            raise InputError("an image is sent as base64 data or an upload, never a file name")
        return value

    def serve_json(self, output: Any, item: Any = None) -> Any:
        """One output as a server's JSON answer (`item`: the input it came from): the shape
        Hugging Face's inference API gives where `hf_task` is set, else `to_json`'s; an
        image as {"image": "data:image/png;base64,..."}.

        >>> clf.serve_json({"label": "positive", "score": 0.97})    # doctest: +SKIP
        [{'label': 'positive', 'score': 0.97}]
        """
        return json_safe(self.to_json(output) if not is_image(output) else output)

    def serve_response(self, outputs: list[Any], items: list[Any], single: bool) -> Any:
        """A request's answer: one input's JSON, or a list of them for a list of inputs."""
        answers = [self.serve_json(o, i) for o, i in zip(outputs, items)]
        return answers[0] if single else answers

    # -- the pipeline
    def __call__(self, inputs: Any, **options: Any) -> Any:
        options = self.check_options(options)
        items, single = self.items(inputs, **options)
        outputs = self.run(items, self.context(items, **options))
        return outputs[0] if single else outputs

    def run(self, items: list[Any], ctx: dict[str, Any]) -> list[Any]:
        """The outputs of `items` with the call state `ctx`: preprocess, batches on the
        device, postprocess (what a call does once its options are checked)."""
        examples = [self.preprocess(item, i, ctx) for i, item in enumerate(items)]
        lengths = [self.length(e) for e in examples]
        order = list(range(len(examples)))
        if all(n is not None for n in lengths):
            order.sort(key=lambda i: lengths[i])  # less padding; results go back by index
        results: list[Any] = [None] * len(examples)
        with self.runtime.inference():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = self.runtime.to_device(self.collate([examples[i] for i in idx], ctx))
                for i, result in zip(idx, self.forward(batch, ctx)):
                    results[i] = result
        return [self.postprocess(r, e, ctx) for r, e in zip(results, examples)]


def json_argument(args: Sequence[str]) -> Any | None:
    """The one command-line argument as JSON when it looks like an array or object (a pair
    typed as '["question", "context"]'), else None; InputError when it does not parse."""
    if len(args) != 1 or not args[0].lstrip().startswith(("[", "{")):
        return None
    try:
        return json.loads(args[0])
    except json.JSONDecodeError as exc:
        raise InputError(f"the argument looks like JSON but is not: {exc}") from None


class Task(ABC, Generic[C]):
    """One application: data, model, loss, metrics and predictor."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[type]
    description: ClassVar[str] = ""
    monitor: ClassVar[str] = ""  # metric that picks the best checkpoint
    mode: ClassVar[str] = "max"
    ties: ClassVar[str] = "first"  # of equally good evaluations keep the first or the last
    eval_splits: ClassVar[tuple[str, ...]] = ("dev",)  # evaluated during training
    final_splits: ClassVar[tuple[str, ...]] = ("dev",)  # evaluated on the best weights at the end
    references: ClassVar[tuple[Reference, ...]] = ()
    models: ClassVar[tuple[str, ...]] = ()  # model names this task can build (checked up front)
    model_schemes: ClassVar[tuple[str, ...]] = ()  # model=<scheme>:<id> also valid ("hf": hf:<repo>@<commit>)
    presets: ClassVar[dict[str, dict[str, Any]]] = {}  # per-dataset defaults applied before overrides
    throughput_unit: ClassVar[str] = "samples"  # what train/samples_per_s counts (bench column)
    preset_key: ClassVar[str] = "dataset"  # the config field whose value picks the preset
    quick: ClassVar[dict[str, Any]] = {}  # `taskzoo bench --quick`: tiny data, cut budgets
    # `taskzoo bench`'s rows beyond the default recipe: "task:NAME" runs with these overrides
    bench_rows: ClassVar[dict[str, dict[str, Any]]] = {}
    # init= from weights of another label set: tensors of another shape (the head) are
    # re-initialised and listed instead of refused (vision tasks; text tasks keep their labels)
    init_reinit_mismatched: ClassVar[bool] = False
    # config fields that, with the builder's kwargs, identify a task's weights: `init=` takes
    # them from the card it starts from (they decide the network's shape or what it outputs)
    weights_fields: ClassVar[tuple[str, ...]] = ("model",)
    # the default recipe is hours on a GPU (atari): `taskzoo bench` runs it only when named
    # (its --quick smoke always), and no default weights ship unless trained on one
    gpu_recipe: ClassVar[bool] = False

    def __init__(self, cfg: C, runtime: Runtime | None = None) -> None:
        self.cfg = cfg
        self.runtime = runtime or Runtime.create(device="cpu")

    def loader(self, dataset: Sequence[Any], *, collate: Any,
               lengths: Sequence[int] | None = None, transform: Any = None,
               workers: int = 0) -> LoaderSource:
        """The standard supervised BatchSource: seeded by cfg.seed, sharded under DDP;
        `transform` draws from each example's (seed, epoch, index) generator."""
        return LoaderSource(dataset, batch_size=self.cfg.batch_size, collate=collate,
                            seed=self.cfg.seed, lengths=lengths, shard=self.runtime.shard,
                            transform=transform, workers=workers)

    @classmethod
    def implied_overrides(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        """Overrides that others imply, applied before the preset is picked (an image task:
        `data=PATH` means `dataset=folder`). The user's own overrides still win."""
        return {}

    @abstractmethod
    def build_data(self, state: dict[str, Any] | None = None) -> DataBundle:
        """Splits, encoded with `state`'s vocabulary and labels when given (fine-tuning from
        released weights), else with ones built from the training split."""

    @abstractmethod
    def build_model(self, data: DataBundle) -> nn.Module: ...

    @abstractmethod
    def batches(self, data: DataBundle, model: nn.Module) -> BatchSource | None:
        """What the Trainer iterates; None for a task that trains nothing (a pipeline of
        pretrained networks): run() then evaluates and delivers the model as built."""

    @abstractmethod
    def step(self, model: nn.Module, batch: Any) -> StepOutput: ...

    @abstractmethod
    def evaluate(self, model: nn.Module, data: DataBundle, split: str) -> dict[str, float]: ...

    @abstractmethod
    def predictor(self, model: nn.Module, data: DataBundle) -> Predictor: ...

    def train_config(self, source: BatchSource) -> TrainConfig:
        """The Trainer's config; RL tasks translate environment-step budgets into it."""
        return self.cfg

    def callbacks(self) -> list[Callback]:
        """Trainer callbacks the task adds to the caller's (RL: stop once solved)."""
        return []

    def summarize(self, fit: FitResult) -> dict[str, float]:
        """Figures drawn from the whole training history, merged into the final metrics."""
        return {}

    def final_metrics(self, model: nn.Module, data: DataBundle) -> dict[str, float]:
        """Figures measured once on the delivered model after the final evaluation, merged
        into the final metrics: baselines on the same split, other decoding settings."""
        return {}

    def reports(self, model: nn.Module, data: DataBundle) -> dict[str, str | bytes]:
        """Extra files for the run directory after the final evaluation: {name: text or bytes}."""
        return {}

    def train_rate(self, metrics: dict[str, float]) -> tuple[float, str]:
        """(training throughput, its unit) from a run's metrics, for `taskzoo bench`."""
        return float(metrics.get("train/samples_per_s", 0.0)), self.throughput_unit

    def example_inputs(self, n: int) -> list[Any]:
        """`n` raw inputs for the predictor (the benchmark times it on them), offline."""
        raise NotImplementedError(f"task {self.name} declares no example inputs")

    def weights_tag(self) -> str:
        """What a weights name says the weights were trained on (`bilstm.<tag>`): the
        dataset, else the task's name."""
        return str(getattr(self.cfg, "dataset", "") or self.name)

    def dataset_card(self) -> dict[str, Any]:
        """What a weights card says about the training data: name, pinned files, license."""
        return {"name": str(getattr(self.cfg, "dataset", "")), "files": [], "license": "unknown"}

    @abstractmethod
    def data_state(self, data: DataBundle) -> dict[str, Any]:
        """JSON-able state (vocab, labels) needed to rebuild the predictor."""

    @abstractmethod
    def data_from_state(self, state: dict[str, Any]) -> DataBundle:
        """Inverse of data_state: a bundle with no splits, enough for model + predictor."""
